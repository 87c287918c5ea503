//! Roles as data: what a role should be on a node, what it is, how they
//! differ, and the statement that makes it so. No I/O.

use crate::password::{self, Check, Checker, Encryption};
use crate::secret::Secret;
use crate::sql::{ident, literal};

/// What a role should be on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSpec {
    pub name: String,
    pub login: bool,
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub inherit: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub connection_limit: i64,
    /// `None`: no expiry.
    pub valid_until: Option<String>,
    /// `None`: the role has no password (unless `password_stamps` says
    /// one was set).
    pub password: Option<Secret>,
    /// A write-only password, which the provider does not know between
    /// applies: [`password::stamp`]s of the verifiers found to match it
    /// when it was set last. Any other stored verifier is drift.
    pub password_stamps: Vec<String>,
    /// How the password is stored, whatever a node's
    /// `password_encryption` says.
    pub encryption: Encryption,
    /// The configuration changed the password (its value, or the version
    /// of a write-only one) since the last apply: where the stored password
    /// cannot be read, it is set again rather than taken as in line.
    pub rotate: bool,
}

/// The stored password as the provider could see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredPassword {
    None,
    Some(String),
    /// The provider may not read `pg_authid` (not a superuser).
    Unreadable,
}

/// A role as a node has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleState {
    pub login: bool,
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub inherit: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub connection_limit: i64,
    /// `rolvaliduntil` as text, `None` when not set.
    pub valid_until: Option<String>,
    /// Whether `rolvaliduntil` is the instant the spec asked for (compared
    /// by the server, so that spellings of one time agree).
    pub valid_until_matches: bool,
    pub password: StoredPassword,
}

#[cfg(test)]
impl RoleState {
    /// The role as a node holds it when it is in line with `spec`, with
    /// `stored` as its password.
    pub fn in_line_with(spec: &RoleSpec, stored: String) -> RoleState {
        RoleState {
            login: spec.login,
            superuser: spec.superuser,
            createdb: spec.createdb,
            createrole: spec.createrole,
            inherit: spec.inherit,
            replication: spec.replication,
            bypassrls: spec.bypassrls,
            connection_limit: spec.connection_limit,
            valid_until: spec.valid_until.clone(),
            valid_until_matches: true,
            password: StoredPassword::Some(stored),
        }
    }
}

/// What differs, named as `nodes` shows it: these are also the names of
/// the resource's attributes, which `timescaledb_distributed_role`'s model
/// takes from here.
pub const LOGIN: &str = "login";
pub const SUPERUSER: &str = "superuser";
pub const CREATEDB: &str = "createdb";
pub const CREATEROLE: &str = "createrole";
pub const INHERIT: &str = "inherit";
pub const REPLICATION: &str = "replication";
pub const BYPASSRLS: &str = "bypassrls";
pub const CONNECTION_LIMIT: &str = "connection_limit";
pub const VALID_UNTIL: &str = "valid_until";
pub const PASSWORD: &str = "password";
/// The password is stored as an md5 hash where SCRAM-SHA-256 is wanted.
pub const PASSWORD_MD5: &str = "password (md5 verifier)";
/// The password is stored as a SCRAM verifier where md5 is wanted.
pub const PASSWORD_SCRAM: &str = "password (scram-sha-256 verifier)";

impl RoleSpec {
    /// The attributes in which `state` differs from this spec.
    pub fn differences(&self, state: &RoleState, checker: &Checker) -> Vec<&'static str> {
        let mut out = Vec::new();
        let flags = [
            (LOGIN, self.login, state.login),
            (SUPERUSER, self.superuser, state.superuser),
            (CREATEDB, self.createdb, state.createdb),
            (CREATEROLE, self.createrole, state.createrole),
            (INHERIT, self.inherit, state.inherit),
            (REPLICATION, self.replication, state.replication),
            (BYPASSRLS, self.bypassrls, state.bypassrls),
        ];
        for (name, want, have) in flags {
            if want != have {
                out.push(name);
            }
        }
        if self.connection_limit != state.connection_limit {
            out.push(CONNECTION_LIMIT);
        }
        if !state.valid_until_matches {
            out.push(VALID_UNTIL);
        }
        let password_ok = match (&self.password, &state.password) {
            // Nothing to compare with: only a configured change is made.
            (_, StoredPassword::Unreadable) => !self.rotate,
            (None, StoredPassword::Some(stored)) if !self.password_stamps.is_empty() => {
                if password::kind(stored) == Some(Encryption::Md5) {
                    out.push(PASSWORD_MD5);
                    return out;
                }
                self.password_stamps.contains(&password::stamp(stored))
            }
            (None, StoredPassword::None) => self.password_stamps.is_empty(),
            (None, StoredPassword::Some(_)) | (Some(_), StoredPassword::None) => false,
            (Some(want), StoredPassword::Some(stored)) => {
                // The right password in the wrong form is drift: a data node
                // whose rules say scram-sha-256 refuses an md5-stored role.
                match (password::kind(stored), self.encryption) {
                    (Some(Encryption::Md5), Encryption::ScramSha256) => {
                        out.push(PASSWORD_MD5);
                        return out;
                    }
                    (Some(Encryption::ScramSha256), Encryption::Md5) => {
                        out.push(PASSWORD_SCRAM);
                        return out;
                    }
                    // A stored form the provider cannot check is left alone.
                    _ => checker.check(stored, want.expose(), &self.name) != Check::Differs,
                }
            }
        };
        if !password_ok {
            out.push(PASSWORD);
        }
        out
    }

    /// Whether `differences` include the password in any form.
    fn password_differs(differences: &[&str]) -> bool {
        differences
            .iter()
            .any(|d| [PASSWORD, PASSWORD_MD5, PASSWORD_SCRAM].contains(d))
    }

    /// The role options, with the password as a verifier of the spec's
    /// encryption. `checker` is told the verifier matches the password, so
    /// that reading it back needs no second key derivation. `only`: just the
    /// attributes named (an alteration), else all of them (a creation).
    fn options(&self, only: Option<&[&str]>, checker: &Checker) -> String {
        let wanted = |name: &str| only.is_none_or(|d| d.contains(&name));
        let flag = |on: bool, name: &str| {
            if on {
                name.to_string()
            } else {
                format!("NO{name}")
            }
        };
        let flags = [
            (LOGIN, self.login, "LOGIN"),
            (SUPERUSER, self.superuser, "SUPERUSER"),
            (CREATEDB, self.createdb, "CREATEDB"),
            (CREATEROLE, self.createrole, "CREATEROLE"),
            (INHERIT, self.inherit, "INHERIT"),
            (REPLICATION, self.replication, "REPLICATION"),
            (BYPASSRLS, self.bypassrls, "BYPASSRLS"),
        ];
        let mut parts: Vec<String> = flags
            .iter()
            .filter(|(attr, _, _)| wanted(attr))
            .map(|(_, on, keyword)| flag(*on, keyword))
            .collect();
        if wanted(CONNECTION_LIMIT) {
            parts.push(format!("CONNECTION LIMIT {}", self.connection_limit));
        }
        if wanted(VALID_UNTIL) {
            match (&self.valid_until, only.is_some()) {
                (Some(v), _) => parts.push(format!("VALID UNTIL {}", literal(v))),
                (None, true) => parts.push("VALID UNTIL 'infinity'".into()),
                (None, false) => {}
            }
        }
        if only.is_none_or(Self::password_differs) {
            match &self.password {
                Some(p) => {
                    let verifier = password::encrypt(p, &self.name, self.encryption);
                    checker.trust(verifier.expose(), p.expose(), &self.name);
                    parts.push(format!("PASSWORD {}", literal(verifier.expose())));
                }
                None => parts.push("PASSWORD NULL".into()),
            }
        }
        parts.join(" ")
    }

    /// `CREATE ROLE`, password included.
    pub fn create_sql(&self, checker: &Checker) -> Secret {
        Secret::new(format!(
            "CREATE ROLE {} WITH {}",
            ident(&self.name),
            self.options(None, checker)
        ))
    }

    /// `ALTER ROLE` of the attributes that differ, and only those: each
    /// verifier has a fresh salt, so the password is only sent when it
    /// differs; and PostgreSQL lets a role that is not a superuser alter
    /// another only when no `SUPERUSER`, `REPLICATION` or `BYPASSRLS`
    /// option is named, even one that keeps the attribute as it is.
    pub fn alter_sql(&self, differences: &[&str], checker: &Checker) -> Secret {
        Secret::new(format!(
            "ALTER ROLE {} WITH {}",
            ident(&self.name),
            self.options(Some(differences), checker)
        ))
    }

    pub fn drop_sql(name: &str) -> String {
        format!("DROP ROLE IF EXISTS {}", ident(name))
    }
}

/// How a node's copy of the role compares with the spec, as the resource's
/// `nodes` map shows it. Where the stored password cannot be read, the
/// status says so ([`PASSWORD_UNCHECKED`]) rather than vouch for it.
pub fn status(spec: &RoleSpec, state: Option<&RoleState>, checker: &Checker) -> String {
    match state {
        None => MISSING.into(),
        Some(s) => {
            let d = spec.differences(s, checker);
            let unchecked = s.password == StoredPassword::Unreadable;
            match (d.is_empty(), unchecked) {
                (true, false) => IN_SYNC.into(),
                (true, true) => in_line(false),
                (false, false) => format!("differs: {}", d.join(", ")),
                (false, true) => format!("differs: {}; {PASSWORD_UNCHECKED}", d.join(", ")),
            }
        }
    }
}

/// The status of a node whose copy is as specified: `in sync`, or where
/// the provider may not read stored passwords (`readable` false), `in sync`
/// with the note that the password was not checked.
pub fn in_line(readable: bool) -> String {
    if readable {
        IN_SYNC.into()
    } else {
        format!("{IN_SYNC}; {PASSWORD_UNCHECKED}")
    }
}

/// Whether a status says the node's copy is as specified.
pub fn is_in_line(status: &str) -> bool {
    status == IN_SYNC || status == in_line(false)
}

pub const IN_SYNC: &str = "in sync";
pub const MISSING: &str = "missing";
pub const UNREACHABLE: &str = "unreachable";
/// Said of a node where the provider's role may not read stored passwords.
pub const PASSWORD_UNCHECKED: &str =
    "password unchecked: reading stored passwords takes SELECT on pg_authid (a superuser)";

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RoleSpec {
        RoleSpec {
            rotate: false,
            name: "Test \"Role\"".into(),
            login: true,
            superuser: false,
            createdb: false,
            createrole: false,
            inherit: true,
            replication: false,
            bypassrls: false,
            connection_limit: -1,
            valid_until: None,
            password: Some(Secret::new("it's")),
            password_stamps: Vec::new(),
            encryption: Encryption::ScramSha256,
        }
    }

    fn state() -> RoleState {
        RoleState::in_line_with(
            &spec(),
            password::encrypt(&Secret::new("it's"), "x", Encryption::ScramSha256)
                .expose()
                .to_string(),
        )
    }

    #[test]
    fn a_verifier_the_provider_made_is_read_back_without_a_second_derivation() {
        let checker = Checker::default();
        let sql = spec().create_sql(&checker);
        let stored = sql
            .expose()
            .split("PASSWORD '")
            .nth(1)
            .and_then(|v| v.strip_suffix('\''))
            .unwrap()
            .to_string();
        let mut state = state();
        state.password = StoredPassword::Some(stored.clone());
        assert!(spec().differences(&state, &checker).is_empty());
        assert_eq!(checker.computed(), 0, "the read-back derived the key again");
        // Another verifier of the same password (a new salt) is checked.
        let other = spec().create_sql(&Checker::default());
        assert_ne!(other.expose(), sql.expose());
        let other = other.expose().split("PASSWORD '").nth(1).unwrap();
        state.password = StoredPassword::Some(other.trim_end_matches('\'').to_string());
        assert!(spec().differences(&state, &checker).is_empty());
        assert_eq!(checker.computed(), 1);
    }

    #[test]
    fn statements_quote_everything_and_never_carry_the_plain_password() {
        let sql = spec().create_sql(&Checker::default());
        let sql = sql.expose();
        assert!(sql.starts_with("CREATE ROLE \"Test \"\"Role\"\"\" WITH LOGIN NOSUPERUSER"));
        assert!(sql.contains("PASSWORD 'SCRAM-SHA-256$4096:"));
        assert!(!sql.contains("it's") && !sql.contains("it''s"));
        // Only what differs: a role that is not a superuser may then alter
        // roles, as long as SUPERUSER, REPLICATION and BYPASSRLS are unnamed.
        let alter = spec().alter_sql(&[SUPERUSER], &Checker::default());
        assert_eq!(
            alter.expose(),
            "ALTER ROLE \"Test \"\"Role\"\"\" WITH NOSUPERUSER"
        );
        let alter = spec().alter_sql(&[CONNECTION_LIMIT, VALID_UNTIL], &Checker::default());
        assert_eq!(
            alter.expose(),
            "ALTER ROLE \"Test \"\"Role\"\"\" WITH CONNECTION LIMIT -1 VALID UNTIL 'infinity'"
        );
        let mut s = spec();
        s.password = None;
        s.valid_until = Some("2030-01-01'; DROP ROLE x; --".into());
        let alter = s.alter_sql(&[VALID_UNTIL, PASSWORD], &Checker::default());
        assert!(alter
            .expose()
            .ends_with("VALID UNTIL '2030-01-01''; DROP ROLE x; --' PASSWORD NULL"));
        assert_eq!(
            RoleSpec::drop_sql("Test \"Role\""),
            "DROP ROLE IF EXISTS \"Test \"\"Role\"\"\""
        );
    }

    #[test]
    fn differences_name_the_attributes() {
        assert!(spec().differences(&state(), &Checker::default()).is_empty());
        let mut s = state();
        s.superuser = true;
        s.connection_limit = 3;
        s.password = StoredPassword::Some(
            password::encrypt(&Secret::new("changed"), "x", Encryption::ScramSha256)
                .expose()
                .to_string(),
        );
        assert_eq!(
            spec().differences(&s, &Checker::default()),
            [SUPERUSER, CONNECTION_LIMIT, PASSWORD]
        );
        assert_eq!(
            status(&spec(), Some(&s), &Checker::default()),
            "differs: superuser, connection_limit, password"
        );
        assert_eq!(status(&spec(), None, &Checker::default()), MISSING);
        s.password = StoredPassword::Unreadable;
        assert_eq!(
            spec().differences(&s, &Checker::default()),
            [SUPERUSER, CONNECTION_LIMIT]
        );
        let mut none = spec();
        none.password = None;
        assert_eq!(none.differences(&state(), &Checker::default()), [PASSWORD]);
    }

    #[test]
    fn a_password_that_cannot_be_read_is_set_when_the_configuration_changes_it() {
        let mut s = state();
        s.password = StoredPassword::Unreadable;
        let c = Checker::default();
        assert!(spec().differences(&s, &c).is_empty());
        assert_eq!(status(&spec(), Some(&s), &c), in_line(false));
        assert!(is_in_line(&status(&spec(), Some(&s), &c)));
        assert!(status(&spec(), Some(&s), &c).contains("pg_authid"));
        let mut rotating = spec();
        rotating.rotate = true;
        assert_eq!(rotating.differences(&s, &c), [PASSWORD]);
        assert!(rotating
            .alter_sql(&[PASSWORD], &c)
            .expose()
            .contains("PASSWORD 'SCRAM-SHA-256$"));
        s.superuser = true;
        assert_eq!(
            status(&spec(), Some(&s), &c),
            format!("differs: superuser; {PASSWORD_UNCHECKED}")
        );
        assert!(!is_in_line(&status(&spec(), Some(&s), &c)));
        // Readable: the stored verifier decides, whatever `rotate` says.
        assert!(rotating.differences(&state(), &c).is_empty());
        assert_eq!(status(&rotating, Some(&state()), &c), IN_SYNC);
    }

    #[test]
    fn a_write_only_password_is_judged_by_the_stamp_of_its_verifier() {
        let set = state();
        let StoredPassword::Some(stored) = &set.password else {
            unreachable!()
        };
        let mut wo = spec();
        wo.password = None;
        wo.password_stamps = vec![password::stamp(stored)];
        assert!(
            wo.differences(&set, &Checker::default()).is_empty(),
            "the verifier set last"
        );
        let mut changed = state();
        changed.password = StoredPassword::Some(
            password::encrypt(&Secret::new("it's"), "x", Encryption::ScramSha256)
                .expose()
                .to_string(),
        );
        // The same password with a new salt is a new verifier: set by
        // someone else, so drift.
        assert_eq!(wo.differences(&changed, &Checker::default()), [PASSWORD]);
        let mut gone = state();
        gone.password = StoredPassword::None;
        assert_eq!(wo.differences(&gone, &Checker::default()), [PASSWORD]);
        gone.password = StoredPassword::Unreadable;
        assert!(
            wo.differences(&gone, &Checker::default()).is_empty(),
            "cannot be told"
        );
        let md5 = password::encrypt(&Secret::new("it's"), &spec().name, Encryption::Md5);
        changed.password = StoredPassword::Some(md5.expose().to_string());
        assert_eq!(
            wo.differences(&changed, &Checker::default()),
            [PASSWORD_MD5]
        );
        // No password configured at all: any stored one, in any form, is
        // simply a password that should not be there.
        let mut none = spec();
        none.password = None;
        assert_eq!(none.differences(&changed, &Checker::default()), [PASSWORD]);
    }

    #[test]
    fn the_right_password_in_the_wrong_form_differs() {
        let md5 = password::encrypt(&Secret::new("it's"), &spec().name, Encryption::Md5);
        let mut s = state();
        s.password = StoredPassword::Some(md5.expose().to_string());
        assert_eq!(spec().differences(&s, &Checker::default()), [PASSWORD_MD5]);
        assert_eq!(
            status(&spec(), Some(&s), &Checker::default()),
            "differs: password (md5 verifier)"
        );
        let fix = spec().alter_sql(
            &spec().differences(&s, &Checker::default()),
            &Checker::default(),
        );
        assert!(
            fix.expose().contains("PASSWORD 'SCRAM-SHA-256$"),
            "repaired as SCRAM"
        );
        let mut md5_wanted = spec();
        md5_wanted.encryption = Encryption::Md5;
        assert!(
            md5_wanted.differences(&s, &Checker::default()).is_empty(),
            "md5 when asked for"
        );
        assert_eq!(
            md5_wanted.differences(&state(), &Checker::default()),
            [PASSWORD_SCRAM]
        );
        assert!(md5_wanted
            .create_sql(&Checker::default())
            .expose()
            .contains("PASSWORD 'md5"));
    }
}
