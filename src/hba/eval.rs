//! Which rule a connection meets first, and whether a change to the file
//! would leave the provider's own connection unable to log in.

use std::net::IpAddr;

use super::address::mask_ip;
use super::{HbaFile, Rule};

/// How the provider's session reaches the server, as the server sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// `None` for a Unix-domain socket.
    pub addr: Option<IpAddr>,
    pub ssl: bool,
    pub database: String,
    pub user: String,
    /// Roles the user is a member of (for `+role` entries).
    pub member_of: Vec<String>,
}

/// What the provider can present when it logs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub password: bool,
    pub client_cert: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Match {
    Yes,
    No,
    Maybe,
}

impl Match {
    fn and(self, other: Match) -> Match {
        match (self, other) {
            (Match::No, _) | (_, Match::No) => Match::No,
            (Match::Yes, Match::Yes) => Match::Yes,
            _ => Match::Maybe,
        }
    }
    fn of(b: bool) -> Match {
        if b {
            Match::Yes
        } else {
            Match::No
        }
    }
}

fn unquoted(item: &str) -> (&str, bool) {
    match item.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => (inner, true),
        None => (item, false),
    }
}

fn match_type(rule: &Rule, c: &ClientInfo) -> Match {
    let tcp = c.addr.is_some();
    Match::of(match rule.conn_type.as_str() {
        "local" => !tcp,
        "host" | "hostnogssenc" => tcp,
        "hostssl" => tcp && c.ssl,
        "hostnossl" => tcp && !c.ssl,
        _ => false,
    })
}

fn match_database(rule: &Rule, c: &ClientInfo) -> Match {
    let mut result = Match::No;
    for item in &rule.databases {
        let (name, quoted) = unquoted(item);
        let m = match (name, quoted) {
            ("all", false) => Match::Yes,
            ("sameuser", false) => Match::of(c.database == c.user),
            ("samerole" | "samegroup", false) => {
                Match::of(c.member_of.contains(&c.database) || c.database == c.user)
            }
            ("replication", false) => Match::No,
            (n, false) if n.starts_with('@') => Match::Maybe,
            (n, _) => Match::of(n == c.database),
        };
        if m == Match::Yes {
            return Match::Yes;
        }
        if m == Match::Maybe {
            result = Match::Maybe;
        }
    }
    result
}

fn match_user(rule: &Rule, c: &ClientInfo) -> Match {
    let mut result = Match::No;
    for item in &rule.users {
        let (name, quoted) = unquoted(item);
        let m = match (name, quoted) {
            ("all", false) => Match::Yes,
            (n, false) if n.starts_with('+') => {
                Match::of(c.member_of.iter().any(|r| r == &n[1..]) || c.user == n[1..])
            }
            (n, false) if n.starts_with('@') => Match::Maybe,
            (n, _) => Match::of(n == c.user),
        };
        if m == Match::Yes {
            return Match::Yes;
        }
        if m == Match::Maybe {
            result = Match::Maybe;
        }
    }
    result
}

fn match_address(rule: &Rule, c: &ClientInfo) -> Match {
    let (Some(addr), Some(client)) = (&rule.address, c.addr) else {
        return Match::Yes;
    };
    match addr.as_str() {
        "all" => Match::Yes,
        "samehost" | "samenet" => Match::Maybe,
        a => match a.split_once('/') {
            Some((ip, p)) => match (ip.parse::<IpAddr>(), p.parse::<u8>()) {
                (Ok(net), Ok(prefix)) => {
                    let client = match (client, net) {
                        (IpAddr::V6(v6), IpAddr::V4(_)) => {
                            v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(client)
                        }
                        _ => client,
                    };
                    Match::of(client.is_ipv4() == net.is_ipv4() && mask_ip(client, prefix) == net)
                }
                _ => Match::Maybe,
            },
            None => Match::Maybe,
        },
    }
}

/// The first rule that certainly matches `client`, and whether some rule
/// before it might match (host names, `samenet`, `@file` lists).
pub fn first_match<'a>(
    rules: impl IntoIterator<Item = &'a Rule>,
    client: &ClientInfo,
) -> Option<(&'a Rule, bool)> {
    let mut uncertain = false;
    for r in rules {
        let m = match_type(r, client)
            .and(match_database(r, client))
            .and(match_user(r, client))
            .and(match_address(r, client));
        match m {
            Match::Yes => return Some((r, uncertain)),
            Match::Maybe => uncertain = true,
            Match::No => {}
        }
    }
    None
}

/// Why a rule would not let the provider in, if it would not.
fn refuses(rule: &Rule, creds: Credentials, client: &ClientInfo) -> Option<String> {
    let needs_cert = rule.method == "cert" || rule.options.contains_key("clientcert");
    match rule.method.as_str() {
        "reject" => Some("its method is `reject`".into()),
        // LDAP, PAM, RADIUS and BSD authentication ask the client for a
        // password in clear too.
        "scram-sha-256" | "md5" | "password" | "ldap" | "pam" | "radius" | "bsd"
            if !creds.password =>
        {
            Some(format!(
                "its method `{}` asks for a password and the provider has none configured",
                rule.method
            ))
        }
        "gss" | "sspi" => Some(format!(
            "the provider cannot authenticate with method `{}`",
            rule.method
        )),
        _ if needs_cert && !creds.client_cert => {
            Some("it requires a client certificate and the provider connects without one".into())
        }
        "peer" | "ident" if client.addr.is_some() => {
            Some(format!("method `{}` cannot work over TCP", rule.method))
        }
        _ => None,
    }
}

/// The verdict on a change of the file for the provider's own connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockoutCheck {
    Safe,
    /// After the change the provider could not log in; the text says why.
    LockedOut(String),
}

impl LockoutCheck {
    /// Compares the rule that admits the provider now with the one that
    /// would admit it after the change. Only a change that makes things
    /// worse is refused: a file that already refuses the provider (it got in
    /// some other way) is not the change's fault.
    pub fn evaluate(
        before: &HbaFile,
        after: &HbaFile,
        client: &ClientInfo,
        creds: Credentials,
    ) -> LockoutCheck {
        let rules_before: Vec<Rule> = before.rules().into_iter().map(|f| f.rule).collect();
        let rules_after: Vec<Rule> = after.rules().into_iter().map(|f| f.rule).collect();
        let now = first_match(&rules_before, client).map(|(r, _)| r);
        let then = first_match(&rules_after, client);
        let who = format!(
            "user {:?} to database {:?} {}",
            client.user,
            client.database,
            match client.addr {
                Some(a) => format!("from {a}{}", if client.ssl { " over SSL" } else { "" }),
                None => "over a Unix-domain socket".to_string(),
            }
        );
        match then {
            None if now.is_some() => LockoutCheck::LockedOut(format!(
                "no rule would match the provider's own connection ({who})"
            )),
            Some((rule, _)) => match refuses(rule, creds, client) {
                Some(why) if now.is_none_or(|n| refuses(n, creds, client).is_none()) => {
                    LockoutCheck::LockedOut(format!(
                        "the provider's own connection ({who}) would first match `{}`, and {why}",
                        rule.render()
                    ))
                }
                _ => LockoutCheck::Safe,
            },
            None => LockoutCheck::Safe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientInfo {
        ClientInfo {
            addr: Some("127.0.0.1".parse().unwrap()),
            ssl: false,
            database: "postgres".into(),
            user: "postgres".into(),
            member_of: vec!["admins".into()],
        }
    }
    const NO_CREDS: Credentials = Credentials {
        password: false,
        client_cert: false,
    };

    /// How the first line of `line` meets `client`: "yes", "maybe" (some
    /// rule before the catch-all might match) or "no".
    fn meets(line: &str, client: &ClientInfo) -> &'static str {
        let f = HbaFile::parse(&format!(
            "{line}\nlocal all all trust\nhost all all all trust\n"
        ));
        let rules: Vec<Rule> = f.rules().into_iter().map(|x| x.rule).collect();
        match first_match(&rules, client) {
            Some((r, _)) if r == &rules[0] => "yes",
            Some((_, true)) => "maybe",
            Some((_, false)) => "no",
            None => panic!("the catch-all lines match every client"),
        }
    }

    #[test]
    fn each_field_matches_as_postgresql_matches_it() {
        let tcp = client();
        let ssl = ClientInfo {
            ssl: true,
            ..client()
        };
        let local = ClientInfo {
            addr: None,
            ..client()
        };
        let on = |db: &str| ClientInfo {
            database: db.into(),
            ..client()
        };
        let from = |a: &str| ClientInfo {
            addr: Some(a.parse().unwrap()),
            ..client()
        };
        let cases: &[(&str, &ClientInfo, &str)] = &[
            ("local all all trust", &tcp, "no"),
            ("local all all trust", &local, "yes"),
            ("host all all all trust", &tcp, "yes"),
            ("host all all all trust", &local, "no"),
            ("hostssl all all all trust", &tcp, "no"),
            ("hostssl all all all trust", &ssl, "yes"),
            ("hostnossl all all all trust", &tcp, "yes"),
            ("hostnossl all all all trust", &ssl, "no"),
            ("hostnogssenc all all all trust", &ssl, "yes"),
            ("hostgssenc all all all trust", &tcp, "no"),
            ("host sameuser all all trust", &tcp, "yes"),
            ("host sameuser all all trust", &on("other"), "no"),
            ("host samerole all all trust", &on("admins"), "yes"),
            ("host samerole all all trust", &on("other"), "no"),
            ("host replication all all trust", &tcp, "no"),
            // The keyword matches replication connections only, never a
            // database of that name.
            ("host replication all all trust", &on("replication"), "no"),
            (
                "host \"replication\" all all trust",
                &on("replication"),
                "yes",
            ),
            ("host @dbs all all trust", &tcp, "maybe"),
            ("host \"all\" all all trust", &tcp, "no"),
            ("host other,postgres all all trust", &tcp, "yes"),
            ("host @dbs,postgres all all trust", &tcp, "yes"),
            ("host @dbs,other all all trust", &tcp, "maybe"),
            ("host all +admins all trust", &tcp, "yes"),
            ("host all +postgres all trust", &tcp, "yes"),
            ("host all +nobody all trust", &tcp, "no"),
            ("host all @users all trust", &tcp, "maybe"),
            ("host all \"all\" all trust", &tcp, "no"),
            ("host all other,postgres all trust", &tcp, "yes"),
            ("host all @users,other all trust", &tcp, "maybe"),
            ("host all all 127.0.0.0/8 trust", &tcp, "yes"),
            ("host all all 10.0.0.0/8 trust", &tcp, "no"),
            ("host all all samehost trust", &tcp, "maybe"),
            ("host all all samenet trust", &tcp, "maybe"),
            ("host all all db.example trust", &tcp, "maybe"),
            ("host all all ::1/128 trust", &tcp, "no"),
            ("host all all ::1/128 trust", &from("::1"), "yes"),
            (
                "host all all 127.0.0.0/8 trust",
                &from("::ffff:127.0.0.1"),
                "yes",
            ),
            ("host all all 127.0.0.0/8 trust", &from("::1"), "no"),
            // One field that certainly does not match outweighs one that might.
            ("host @dbs all 10.0.0.0/8 trust", &tcp, "no"),
            ("host all @users 10.0.0.0/8 trust", &tcp, "no"),
            ("host replication @users all trust", &tcp, "no"),
        ];
        for (line, c, want) in cases {
            assert_eq!(meets(line, c), *want, "{line} for {:?}", c.addr);
        }
    }

    #[test]
    fn methods_refuse_the_provider_as_its_credentials_say() {
        let (tcp, local) = (
            client(),
            ClientInfo {
                addr: None,
                ..client()
            },
        );
        let creds = |password: bool, client_cert: bool| Credentials {
            password,
            client_cert,
        };
        let refused = |line: &str, c: &ClientInfo, cr: Credentials| {
            let f = HbaFile::parse(line);
            refuses(&f.rules()[0].rule, cr, c).is_some()
        };
        let cases: &[(&str, &ClientInfo, Credentials, bool)] = &[
            ("host all all all reject", &tcp, creds(true, true), true),
            ("host all all all trust", &tcp, creds(false, false), false),
            (
                "host all all all scram-sha-256",
                &tcp,
                creds(false, true),
                true,
            ),
            (
                "host all all all scram-sha-256",
                &tcp,
                creds(true, false),
                false,
            ),
            ("host all all all md5", &tcp, creds(false, false), true),
            ("host all all all password", &tcp, creds(false, false), true),
            ("hostssl all all all cert", &tcp, creds(true, false), true),
            ("hostssl all all all cert", &tcp, creds(false, true), false),
            (
                "hostssl all all all trust clientcert=verify-ca",
                &tcp,
                creds(true, false),
                true,
            ),
            (
                "hostssl all all all trust clientcert=verify-ca",
                &tcp,
                creds(false, true),
                false,
            ),
            ("host all all all ident", &tcp, creds(true, true), true),
            // Methods that ask the client for a password in clear.
            (
                "host all all all ldap ldapserver=l",
                &tcp,
                creds(false, true),
                true,
            ),
            (
                "host all all all ldap ldapserver=l",
                &tcp,
                creds(true, false),
                false,
            ),
            ("host all all all pam", &tcp, creds(false, false), true),
            (
                "host all all all radius radiusservers=r radiussecrets=s",
                &tcp,
                creds(false, false),
                true,
            ),
            ("host all all all bsd", &tcp, creds(false, false), true),
            ("host all all all gss", &tcp, creds(true, true), true),
            ("local all all peer", &local, creds(false, false), false),
            ("local all all ident", &local, creds(false, false), false),
        ];
        for (line, c, cr, want) in cases {
            assert_eq!(refused(line, c, *cr), *want, "{line} with {cr:?}");
        }
    }

    #[test]
    fn a_file_that_already_keeps_the_provider_out_is_not_the_change_s_fault() {
        let c = client();
        // No rule for the provider before or after.
        let none = HbaFile::parse("local all all trust\n");
        let other = HbaFile::parse("local all all trust\nhost all all 192.0.2.0/24 trust\n");
        assert_eq!(
            LockoutCheck::evaluate(&none, &other, &c, NO_CREDS),
            LockoutCheck::Safe
        );
        // Refused before and after.
        let reject = HbaFile::parse("host all all all reject\n");
        let reject_too = HbaFile::parse("host all all all reject\nlocal all all trust\n");
        assert_eq!(
            LockoutCheck::evaluate(&reject, &reject_too, &c, NO_CREDS),
            LockoutCheck::Safe
        );
        // Refused before, let in after.
        let trust = HbaFile::parse("host all all all trust\n");
        assert_eq!(
            LockoutCheck::evaluate(&reject, &trust, &c, NO_CREDS),
            LockoutCheck::Safe
        );
    }

    #[test]
    fn finds_first_certain_match() {
        let f = HbaFile::parse(
            "host all all samenet trust\nhost sameuser +admins 127.0.0.0/8 md5\nhost all all all reject\n",
        );
        let rules: Vec<Rule> = f.rules().into_iter().map(|x| x.rule).collect();
        let (r, uncertain) = first_match(&rules, &client()).unwrap();
        assert_eq!(r.method, "md5");
        assert!(uncertain);
        let local = ClientInfo {
            addr: None,
            ..client()
        };
        assert!(first_match(&rules, &local).is_none());
    }

    #[test]
    fn refuses_a_change_that_locks_the_provider_out() {
        let before = HbaFile::parse("host all all 127.0.0.1/32 trust\n");
        let mut after = before.clone();
        after.upsert(
            &Rule::new(
                "host",
                &["all"],
                &["postgres"],
                Some("127.0.0.0/8"),
                "reject",
            )
            .unwrap(),
            1,
        );
        assert!(
            matches!(LockoutCheck::evaluate(&before, &after, &client(), NO_CREDS), LockoutCheck::LockedOut(m) if m.contains("reject"))
        );

        let mut pw = before.clone();
        pw.upsert(
            &Rule::new("host", &["all"], &["all"], Some("all"), "scram-sha-256").unwrap(),
            1,
        );
        assert!(matches!(
            LockoutCheck::evaluate(&before, &pw, &client(), NO_CREDS),
            LockoutCheck::LockedOut(_)
        ));
        let with_pw = Credentials {
            password: true,
            client_cert: false,
        };
        assert_eq!(
            LockoutCheck::evaluate(&before, &pw, &client(), with_pw),
            LockoutCheck::Safe
        );

        // a rule for some other address is fine
        let mut other = before.clone();
        other.upsert(
            &Rule::new("host", &["all"], &["all"], Some("192.0.2.0/24"), "reject").unwrap(),
            1,
        );
        assert_eq!(
            LockoutCheck::evaluate(&before, &other, &client(), NO_CREDS),
            LockoutCheck::Safe
        );

        // removing the only rule that lets the provider in
        let empty = HbaFile::parse("# nothing\n");
        assert!(matches!(
            LockoutCheck::evaluate(&before, &empty, &client(), NO_CREDS),
            LockoutCheck::LockedOut(_)
        ));
    }

    #[test]
    fn ipv4_rules_match_mapped_ipv6_clients() {
        let f = HbaFile::parse("host all all 127.0.0.1/32 trust\n");
        let rules: Vec<Rule> = f.rules().into_iter().map(|x| x.rule).collect();
        let c = ClientInfo {
            addr: Some("::ffff:127.0.0.1".parse().unwrap()),
            ..client()
        };
        assert!(first_match(&rules, &c).is_some());
    }
}
