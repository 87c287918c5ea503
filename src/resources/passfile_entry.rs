//! `timescaledb_passfile_entry`: one line of the password file a node's
//! server reads when it connects onward (TimescaleDB's access node uses it
//! to log in to data nodes with the internal passwords).

use crate::diag::{AttrPath, Diagnostics};
use crate::model::PlanModel as _;
use crate::node::{PassSnapshot, PASSFILE_MODE};
use crate::passfile::{Entry, Key, PassFile};
use crate::password::{self, Check, Checker, Encryption};
use crate::provider::ACCESS_NODE;
use crate::secret::Secret;
use crate::value::Value;

use super::{Applied, Checked, Completion, Ctx, Deleted, PlanInput, Read, Resource, State};

crate::model! {
    /// A password file entry, as configured and as kept.
    pub struct Model plan EntryPlan {
        NODE => node: String = optional("Node whose password file holds the entry: `access` or the name of a data node.").default(Value::string(ACCESS_NODE)).force_new(),
        HOSTNAME => hostname: String = optional("Host name the entry applies to, as the connection names it, or `*` for any.").default(Value::string(WILDCARD)).force_new(),
        PORT => port: String = optional("Port the entry applies to, or `*` for any.").default(Value::string(WILDCARD)).force_new(),
        DATABASE => database: String = optional("Database the entry applies to, or `*` for any.").default(Value::string(WILDCARD)).force_new(),
        USERNAME => username: String = required("Role the entry applies to, or `*` for any.").force_new(),
        PASSWORD => password: Option<Secret> = optional("The password, kept in state (marked sensitive). Any character is allowed but a NUL byte, a line break and a carriage return, which libpq's password file reader cannot carry. Set this or `password_wo`.").sensitive(),
        PASSWORD_WO => password_wo: Option<Secret> = optional("The password, kept out of the plan and the state; the same characters as `password` are allowed. Needs `password_wo_version`. A password changed by hand in the file still shows in `password_status`: the private state keeps a SCRAM-SHA-256 verifier of the password written (salted, as PostgreSQL stores role passwords), never the password.").write_only(),
        PASSWORD_WO_VERSION => password_wo_version: Option<i64> = optional("Version of `password_wo`: Terraform cannot see a write-only value change, so change this number to have apply write `password_wo` again. Required with it."),
        PASSWORD_STATUS => password_status: Option<String> = computed("Whether the file holds the password last written: `in sync`, or `differs` after a change by hand; apply writes it again."),
        POSITION => position: i64 = optional("Order among the managed entries of the file; lower comes first, and the first matching entry wins.").default(Value::int(DEFAULT_POSITION)),
        ID => id: Option<String> = computed("The node name and the entry's first four fields as written in the file (`access *:*:*:testrole`), which is also the import ID.").stable(),
        PATH => path: Option<String> = computed("Absolute path of the password file on the node.").stable(),
        FILE_MODE => file_mode: Option<String> = computed("Permission bits of the file, `0600` after every apply. Another value means the file was changed by hand and libpq ignores it; the next apply puts it right. Reported as `0600` when the provider may not run programs on the server (it then cannot look)."),
    }
}

const DESCRIPTION: &str = "Manages one entry of the password file a node's server uses when it connects to other nodes: on a TimescaleDB \
         access node, the internal passwords it logs in to data nodes with. The file is `timescaledb.passfile` when that \
         setting is set and `<data_directory>/passfile` otherwise; it is read and written through SQL on the node, always \
         with mode 0600 (libpq ignores a password file others can read). Entries the provider manages are kept in a marked \
         block at the top of the file, ordered by `position`; other lines are kept byte for byte. Fields are escaped as \
         libpq reads them (`:` and `\\` preceded by `\\`).";

const DEFAULT_POSITION: i64 = 100;
const WILDCARD: &str = "*";
const IN_SYNC: &str = "in sync";
const DIFFERS: &str = "differs";

pub struct PassfileEntry;

fn mode_string(m: u32) -> String {
    format!("{m:04o}")
}

#[tonic::async_trait]
impl Resource for PassfileEntry {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_passfile_entry";

    const DESCRIPTION: &'static str = DESCRIPTION;

    const IMPORT_ID: Option<&'static str> =
        Some("[<node> ]<hostname>:<port>:<database>:<username>");

    fn validate(&self, config: &EntryPlan) -> Diagnostics {
        let mut d = Diagnostics::new();
        check_password_form(config, &mut d);
        let (password_attr, password) = if config.password_wo.is_null() {
            (PASSWORD, config.password.get())
        } else {
            (PASSWORD_WO, config.password_wo.get())
        };
        let password = password.map(|p| p.expose().to_string());
        let mut fields = Vec::new();
        for (a, v) in [
            (HOSTNAME, config.hostname.known().cloned()),
            (PORT, config.port.known().cloned()),
            (DATABASE, config.database.known().cloned()),
            (USERNAME, config.username.known().cloned()),
            (password_attr, password),
        ] {
            if let Some(s) = v {
                if let Err(m) = check_field(a, &s) {
                    d.push_error(Some(AttrPath::attr(a)), "Invalid passfile field", m);
                }
                fields.push(s);
            }
        }
        if let [hostname, port, database, username, password] = fields.as_slice() {
            let entry = Entry {
                hostname: hostname.clone(),
                port: port.clone(),
                database: database.clone(),
                username: username.clone(),
                password: password.clone(),
            };
            if d.is_empty() && !entry.reads_back() {
                d.push_error(
                    Some(AttrPath::attr(password_attr)),
                    "Invalid passfile entry",
                    "libpq would not read this entry back as written; check the fields for characters its password file reader treats specially.",
                );
            }
        }
        d
    }

    async fn complete_plan(&self, plan: &mut Completion<'_, Model>) -> Checked {
        let planned = &mut *plan.planned;
        // After apply the file always has the mode libpq wants and the
        // password last written; a change by hand shows as a change here.
        planned.file_mode.set(Some(mode_string(PASSFILE_MODE)));
        planned.password_status.set(Some(IN_SYNC.to_string()));
        Ok(())
    }

    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        // Checked here, for a new entry, not at validate: configuration
        // generated on import leaves the password out for the user to
        // supply (an update without one fails at apply, writing nothing).
        if plan.prior.is_none()
            && plan.config.password.is_null()
            && plan.config.password_wo.is_null()
        {
            return Err(missing_password());
        }
        if plan.prior.is_some() {
            return Ok(());
        }
        // Everything known, or apply looks at the file again.
        let Some(m) = plan.planned.known() else {
            return Ok(());
        };
        let m = Line::try_from(m)?;
        let node = ctx.node(&m.node, NODE).await?;
        let snap = node.passfile_read().await?;
        if let Some(found) = snap.find(&m.key()) {
            if found.position == Some(m.position) && found.entry == m.entry {
                // Made by an apply that was cut off before Terraform could
                // record it: adopted.
                plan.warnings.push_warning(
                    None,
                    "Identical managed entry will be adopted",
                    format!(
                        "{} on node {:?} already has this exact entry in its managed block (line {}), most likely from an apply that was interrupted; applying records it in the state.",
                        snap.path, m.node, found.line_index + 1
                    ),
                );
                return Ok(());
            }
            if found.position.is_some() {
                return Err(Diagnostics::attr_error(
                    AttrPath::attr(USERNAME),
                    "Entry already managed",
                    format!(
                        "{} on node {:?} already has a managed entry for `{}` (line {}). Another resource manages it, or it was left by an earlier apply: import it with `terraform import <address> '{}'`.",
                        snap.path, m.node, m.key(), found.line_index + 1, m.id()
                    ),
                ));
            }
            plan.warnings.push_warning(
                None,
                "Existing line will be taken over",
                format!(
                    "{} on node {:?} already has an entry for `{}` at line {}; applying rewrites that line in place to match this resource.",
                    snap.path, m.node, m.key(), found.line_index + 1
                ),
            );
        }
        Ok(())
    }

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let m = Line::try_from(prior.value)?;
        let node = ctx.node(&m.node, NODE).await?;
        let snap = node.passfile_read().await?;
        let verifier = Private::parse(&prior.private).verifier;
        let checker = &ctx.provider.passwords;
        Ok(m.read_back(&snap, verifier.as_deref(), checker)
            .map(|value| State {
                value,
                private: prior.private.clone(),
            }))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        Ok(write(ctx, Line::try_from(planned)?, true).await?.into())
    }

    async fn update(&self, ctx: &Ctx, _prior: State<Model>, planned: Model) -> Applied<Model> {
        Ok(write(ctx, Line::try_from(planned)?, false).await?.into())
    }

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Deleted {
        ctx.check_cancelled()?;
        let m = Line::try_from(prior)?;
        let node = ctx.node(&m.node, NODE).await?;
        let key = m.key();
        node.passfile_edit(move |f: &mut PassFile| {
            f.remove(&key);
            Ok(())
        })
        .await?;
        Ok(Diagnostics::new())
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        let (node_name, fields) = match id.trim().split_once(' ') {
            Some((n, f)) if !n.contains(':') => (n.to_string(), f.trim()),
            _ => (ACCESS_NODE.to_string(), id.trim()),
        };
        let key = Entry::parse(&format!("{fields}:"))
            .filter(|e| e.password.is_empty())
            .map(|e| e.key())
            .ok_or_else(|| {
                Diagnostics::error(
                    "Invalid import ID",
                    format!(
                        "{id:?} is not an entry's first four fields. The ID is `hostname:port:database:username` as written in \
                         the file (with `:` and `\\` escaped by `\\`), optionally preceded by the node name and a space: \
                         `*:*:*:testrole` or `access *:*:*:testrole`."
                    ),
                )
            })?;
        let node = ctx.provider.node(&node_name).await?;
        let snap = node.passfile_read().await?;
        let found = snap.find(&key).ok_or_else(|| {
            Diagnostics::error(
                "Entry not found",
                format!(
                    "{} on node {node_name:?} has no entry for `{key}`.",
                    snap.path
                ),
            )
        })?;
        let m = Line {
            node: node_name,
            entry: found.entry.clone(),
            position: found.position.unwrap_or(DEFAULT_POSITION),
            write_only: false,
            password_wo_version: None,
        };
        Ok(m.to_model(&snap, IN_SYNC))
    }
}

/// Writes the entry (refusing, on create, a managed entry of the same key
/// that is not this one); returns the state read back, with a verifier of
/// a write-only password as private data.
async fn write(ctx: &Ctx, m: Line, creating: bool) -> Result<State<Model>, Diagnostics> {
    ctx.check_cancelled()?;
    if m.entry.password.is_empty() {
        return Err(missing_password());
    }
    let node = ctx.node(&m.node, NODE).await?;
    let (entry, position, id) = (m.entry.clone(), m.position, m.id());
    let snap = node
            .passfile_edit(move |f: &mut PassFile| {
                if creating {
                    if let Some(found) = f.find(&entry.key()).filter(|x| {
                        x.position.is_some() && !(x.position == Some(position) && x.entry == entry)
                    }) {
                        return Err(format!(
                            "a managed entry for `{}` already exists (line {}); import it with ID '{id}' instead of creating it again",
                            entry.key(),
                            found.line_index + 1
                        ));
                    }
                }
                f.upsert(&entry, position);
                Ok(())
            })
            .await?;
    if let Some(mode) = snap.mode.filter(|m| *m != PASSFILE_MODE) {
        return Err(Diagnostics::error(
                "Passfile has the wrong mode",
                format!(
                    "{} on node {:?} was written but has mode {}; libpq ignores a password file that others can read.",
                    snap.path,
                    m.node,
                    mode_string(mode)
                ),
            ));
    }
    // For a write-only password, a SCRAM verifier of the password written:
    // what PostgreSQL itself would store for it (salted, 4096 rounds of
    // PBKDF2), enough to tell later whether the file still holds it. A
    // password in the state is compared as it is: no verifier to make, and
    // nothing private for Terraform to keep.
    let private = Private {
        verifier: m.write_only.then(|| {
            password::encrypt(
                &Secret::new(m.entry.password.clone()),
                &m.entry.username,
                Encryption::ScramSha256,
            )
            .expose()
            .to_string()
        }),
    };
    let state = m
        .read_back(&snap, private.verifier.as_deref(), &ctx.provider.passwords)
        .ok_or_else(|| {
            Diagnostics::error(
                "Entry missing after write",
                format!(
                    "The entry for `{}` was written to {} but is not there when read back.",
                    m.key(),
                    snap.path
                ),
            )
        })?;
    Ok(State {
        value: state,
        private: private.encode(),
    })
}

/// A field libpq can read back as written: one line, not empty.
fn check_field(name: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!(
            "`{name}` cannot be empty; use \"*\" to match anything."
        ));
    }
    crate::passfile::check_field(s).map_err(|why| format!("`{name}` {why}."))?;
    if name == PORT && s != WILDCARD && s.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "{s:?} is not a port: use a number from 1 to 65535, or \"*\"."
        ));
    }
    Ok(())
}

fn missing_password() -> Diagnostics {
    Diagnostics::attr_error(
        AttrPath::attr(PASSWORD),
        "Missing password",
        "Set `password_wo` (Terraform 1.11 or later; kept out of the plan and the state) or `password`.",
    )
}

/// Not both of `password` and `password_wo`; a write-only password with
/// its version.
fn check_password_form(config: &EntryPlan, d: &mut Diagnostics) {
    let (plain, wo) = (&config.password, &config.password_wo);
    if !plain.is_null() && !wo.is_null() {
        d.push_error(
            Some(AttrPath::attr(PASSWORD)),
            "Conflicting password forms",
            "Set `password` (kept in state) or `password_wo` (write-only), not both.",
        );
    }
    if !wo.is_null() && config.password_wo_version.is_null() {
        d.push_error(
            Some(AttrPath::attr(PASSWORD_WO_VERSION)),
            "Missing password version",
            "A write-only password is not in the state, so Terraform cannot see it change: set `password_wo_version`, and change it whenever `password_wo` changes.",
        );
    }
    if wo.is_null() && !plain.is_unknown() && !config.password_wo_version.is_null() {
        d.push_error(
            Some(AttrPath::attr(PASSWORD_WO_VERSION)),
            "Version without a write-only password",
            "`password_wo_version` versions `password_wo`; set it, or remove the version.",
        );
    }
}

/// What the resource keeps in its private state.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Private {
    /// A SCRAM-SHA-256 verifier of the password last written.
    verifier: Option<String>,
}

impl Private {
    fn parse(bytes: &[u8]) -> Private {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
    /// Nothing (no private state at all) when there is no verifier.
    fn encode(&self) -> Vec<u8> {
        match self.verifier {
            None => Vec::new(),
            Some(_) => serde_json::to_vec(self).unwrap_or_default(),
        }
    }
}

/// The entry as the resource's operations work on it: the model's fields
/// checked and its password resolved (plain or write-only).
#[derive(Clone, Debug, PartialEq)]
struct Line {
    node: String,
    entry: Entry,
    position: i64,
    /// The password comes from `password_wo`: never written to the state.
    write_only: bool,
    password_wo_version: Option<i64>,
}

impl TryFrom<Model> for Line {
    type Error = Diagnostics;

    fn try_from(m: Model) -> Result<Line, Diagnostics> {
        let mut d = Diagnostics::new();
        for (a, s) in [
            (HOSTNAME, &m.hostname),
            (PORT, &m.port),
            (DATABASE, &m.database),
            (USERNAME, &m.username),
        ] {
            if let Err(msg) = check_field(a, s) {
                d.push_error(Some(AttrPath::attr(a)), "Invalid passfile field", msg);
            }
        }
        d.into_result()?;
        Ok(Line {
            write_only: m.password_wo.is_some() || m.password_wo_version.is_some(),
            entry: Entry {
                password: m
                    .password
                    .or(m.password_wo)
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
                hostname: m.hostname,
                port: m.port,
                database: m.database,
                username: m.username,
            },
            node: m.node,
            position: m.position,
            password_wo_version: m.password_wo_version,
        })
    }
}

impl Line {
    fn key(&self) -> Key {
        self.entry.key()
    }

    fn id(&self) -> String {
        format!("{} {}", self.node, self.key())
    }

    /// The state as the file shows it, or `None` when the entry is gone.
    /// The prior value keeps the position of an adopted line outside the
    /// managed block. The file's password is compared with the one last
    /// written: the state's, or for a write-only password the `verifier`
    /// kept in private state.
    fn read_back(
        &self,
        snap: &PassSnapshot,
        verifier: Option<&str>,
        checker: &Checker,
    ) -> Option<Model> {
        let found = snap.find(&self.key())?;
        let have = &found.entry.password;
        // The model holds the password in the plain form and during an
        // apply; only a refresh of a write-only password needs the verifier.
        let same = match verifier {
            _ if !self.entry.password.is_empty() => *have == self.entry.password,
            Some(v) => checker.check(v, have, &self.entry.username) == Check::Matches,
            None => false,
        };
        let now = Line {
            entry: found.entry.clone(),
            position: found.position.unwrap_or(self.position),
            ..self.clone()
        };
        Some(now.to_model(snap, if same { IN_SYNC } else { DIFFERS }))
    }

    fn to_model(&self, snap: &PassSnapshot, password_status: &str) -> Model {
        let mode = snap.mode.unwrap_or(PASSFILE_MODE);
        Model {
            node: self.node.clone(),
            hostname: self.entry.hostname.clone(),
            port: self.entry.port.clone(),
            database: self.entry.database.clone(),
            username: self.entry.username.clone(),
            password: (!self.write_only).then(|| Secret::new(self.entry.password.clone())),
            password_wo: None,
            password_wo_version: self.password_wo_version,
            password_status: Some(password_status.to_string()),
            position: self.position,
            id: Some(self.id()),
            path: Some(snap.path.clone()),
            file_mode: Some(mode_string(mode)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model as _;

    #[test]
    fn fields_are_checked_on_the_right_attribute() {
        let mut v =
            crate::schema::object(Model::attributes().iter().map(|a| (a.name, Value::Null)));
        v.set_attr(USERNAME, Value::string("testrole"));
        v.set_attr(PASSWORD, Value::string("a:b\\c *'\" ü"));
        assert!(crate::resources::DynResource::validate(&PassfileEntry, &v).is_empty());
        v.set_attr(PORT, Value::string("54x"));
        v.set_attr(PASSWORD, Value::string("two\nlines"));
        v.set_attr(DATABASE, Value::string(""));
        let paths: Vec<String> = crate::resources::DynResource::validate(&PassfileEntry, &v)
            .0
            .iter()
            .map(|d| d.path.clone().map(|p| p.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(paths, ["port", "database", "password"]);
    }

    #[test]
    fn ids_escape_the_fields() {
        let m = Line {
            node: "access".into(),
            entry: Entry {
                hostname: "*".into(),
                port: "5432".into(),
                database: "d:b".into(),
                username: "r\\x".into(),
                password: "p".into(),
            },
            position: 1,
            write_only: false,
            password_wo_version: None,
        };
        assert_eq!(m.id(), "access *:5432:d\\:b:r\\\\x");
        let back = Entry::parse(&format!("{}:", m.key())).unwrap();
        assert_eq!(back.key(), m.key());
    }
}
