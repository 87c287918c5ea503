//! The server is the authority on what a pg_hba.conf file says: after every
//! write, the rules PostgreSQL parsed from the file (`pg_hba_file_rules`)
//! are compared with the provider's own reading of the bytes it wrote
//! ([`super::reader`]). Any difference means the provider's model of the
//! file is wrong somewhere, and the file must not stay in force.

use super::reader::{self, Record};
use super::{normalize_address, Rule};

/// One row of `pg_hba_file_rules`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerRule {
    pub line_number: i32,
    pub conn_type: Option<String>,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    pub address: Option<String>,
    pub netmask: Option<String>,
    pub method: Option<String>,
    pub options: Vec<String>,
    pub error: Option<String>,
}

/// Options whose value the view shows as written (`name=value`); the
/// others are shown in forms of the server's own (flags, lists, defaults
/// implied by the method) and are checked by the server's parse alone.
const VERBATIM_OPTIONS: &[&str] = &[
    "map",
    "krb_realm",
    "pamservice",
    "ldapserver",
    "ldapprefix",
    "ldapsuffix",
    "ldapbasedn",
    "ldapbinddn",
    "ldapsearchattribute",
    "ldapsearchfilter",
];

/// What PostgreSQL reports for a `hostssl` rule while its `ssl` is off. The
/// server still loads the file (the message is only logged at reload) and
/// the rule is in force as soon as ssl is on, so it is no error here.
pub const HOSTSSL_WITHOUT_SSL: &str = "hostssl record cannot match because SSL is disabled";

/// Whether a row's error stops the file from being loaded.
pub fn is_fatal(row: &ServerRule) -> bool {
    row.error
        .as_deref()
        .is_some_and(|e| e != HOSTSSL_WITHOUT_SSL || row.conn_type.as_deref() != Some("hostssl"))
}

/// Compares the server's rows with the provider's reading of `bytes`.
/// Returns each difference as `line N: what` (N as the server numbers
/// lines); empty when both read the same rules.
pub fn differences(bytes: &[u8], server: &[ServerRule]) -> Vec<String> {
    let ours = reader::records(bytes);
    let mut out = Vec::new();
    let mut theirs = server.iter().peekable();
    for record in &ours {
        let line = record.line_number as i32;
        // rows the server has before this record that the provider lacks
        while let Some(row) = theirs.next_if(|r| r.line_number < line) {
            out.push(format!(
                "line {}: PostgreSQL reads a rule there that the provider does not see",
                row.line_number
            ));
        }
        match theirs.next_if(|r| r.line_number == line) {
            Some(row) => out.extend(compare(record, row).map(|d| format!("line {line}: {d}"))),
            None => out.push(format!(
                "line {line}: the provider reads a rule there that PostgreSQL does not (was it joined onto the line before?)"
            )),
        }
    }
    for row in theirs {
        out.push(format!(
            "line {}: PostgreSQL reads a rule there that the provider does not see",
            row.line_number
        ));
    }
    out
}

/// How one record and the server's row for the same line differ.
fn compare(record: &Record, row: &ServerRule) -> Option<String> {
    if is_fatal(row) {
        return Some(format!(
            "PostgreSQL refuses the line: {}",
            row.error.as_deref().unwrap_or_default()
        ));
    }
    let rule = match Rule::from_record(record) {
        Ok(Some(r)) => r,
        Ok(None) => return Some("the provider reads no rule there".into()),
        Err(e) => return Some(format!("the provider cannot read the line: {e}")),
    };
    let texts = |i: usize| -> Vec<String> {
        record
            .fields
            .get(i)
            .map(|f| f.iter().map(|t| t.text.clone()).collect())
            .unwrap_or_default()
    };
    if row.conn_type.as_deref() != Some(rule.conn_type.as_str()) {
        return Some(format!(
            "connection type {:?} where the provider reads {:?}",
            row.conn_type, rule.conn_type
        ));
    }
    if row.databases != texts(1) {
        return Some(format!(
            "databases {:?} where the provider reads {:?}",
            row.databases,
            texts(1)
        ));
    }
    if row.users != texts(2) {
        return Some(format!(
            "users {:?} where the provider reads {:?}",
            row.users,
            texts(2)
        ));
    }
    let address = match (&row.address, &row.netmask) {
        (None, _) => None,
        (Some(a), mask) => Some(
            normalize_address(&a.to_ascii_lowercase(), mask.as_deref())
                .unwrap_or_else(|_| a.clone()),
        ),
    };
    if address != rule.address {
        return Some(format!(
            "address {:?} where the provider reads {:?}",
            address, rule.address
        ));
    }
    if row.method.as_deref() != Some(rule.method.as_str()) {
        return Some(format!(
            "method {:?} where the provider reads {:?}",
            row.method, rule.method
        ));
    }
    for name in VERBATIM_OPTIONS {
        let theirs = row
            .options
            .iter()
            .find_map(|o| o.strip_prefix(name)?.strip_prefix('='));
        let ours = rule.options.get(*name).map(String::as_str);
        if theirs != ours && !rule.options.contains_key("ldapurl") {
            return Some(format!(
                "option {name} is {theirs:?} where the provider reads {ours:?}"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        line: i32,
        t: &str,
        db: &[&str],
        user: &[&str],
        addr: Option<(&str, &str)>,
        method: &str,
    ) -> ServerRule {
        ServerRule {
            line_number: line,
            conn_type: Some(t.into()),
            databases: db.iter().map(|s| s.to_string()).collect(),
            users: user.iter().map(|s| s.to_string()).collect(),
            address: addr.map(|a| a.0.to_string()),
            netmask: addr.map(|a| a.1.to_string()),
            method: Some(method.into()),
            options: vec![],
            error: None,
        }
    }

    #[test]
    fn the_same_rules_agree() {
        let file = b"# c\nhost \"my db\",all +g 10.0.0.0/8 md5 # x\nlocal all all peer map=m\n";
        let mut local = row(3, "local", &["all"], &["all"], None, "peer");
        local.options = vec!["map=m".into()];
        let server = [
            row(
                2,
                "host",
                &["my db", "all"],
                &["+g"],
                Some(("10.0.0.0", "255.0.0.0")),
                "md5",
            ),
            local,
        ];
        assert_eq!(differences(file, &server), Vec::<String>::new());
    }

    #[test]
    fn a_swallowed_rule_is_a_difference() {
        // what the server makes of `# note\` followed by a rule: it never
        // sees the second line, while a line-by-line reading would
        let file = b"local all a trust # note\\\nlocal all victim reject\n";
        let server = [row(1, "local", &["all"], &["a"], None, "trust")];
        assert_eq!(
            differences(file, &server),
            Vec::<String>::new(),
            "the reader knows the join"
        );
        let naive = [
            row(1, "local", &["all"], &["a"], None, "trust"),
            row(2, "local", &["all"], &["victim"], None, "reject"),
        ];
        let d = differences(file, &naive);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].starts_with("line 2:"), "{d:?}");
    }

    #[test]
    fn each_field_is_compared() {
        let file = b"host all u 10.0.0.1/32 md5 map=x\n";
        let good = row(
            1,
            "host",
            &["all"],
            &["u"],
            Some(("10.0.0.1", "255.255.255.255")),
            "md5",
        );
        let mut with_map = good.clone();
        with_map.options = vec!["map=x".into()];
        let cases: Vec<(ServerRule, &str)> = vec![
            (
                ServerRule {
                    users: vec!["v".into()],
                    ..with_map.clone()
                },
                "users",
            ),
            (
                ServerRule {
                    databases: vec!["d".into()],
                    ..with_map.clone()
                },
                "databases",
            ),
            (
                ServerRule {
                    method: Some("trust".into()),
                    ..with_map.clone()
                },
                "method",
            ),
            (
                ServerRule {
                    netmask: Some("255.0.0.0".into()),
                    ..with_map.clone()
                },
                "address",
            ),
            (
                ServerRule {
                    conn_type: Some("hostssl".into()),
                    ..with_map.clone()
                },
                "connection type",
            ),
            (good, "option map"),
            (
                ServerRule {
                    error: Some("bad".into()),
                    ..with_map.clone()
                },
                "refuses",
            ),
        ];
        for (server, what) in cases {
            let d = differences(file, &[server]);
            assert!(d.len() == 1 && d[0].contains(what), "{what}: {d:?}");
        }
        assert!(differences(file, &[with_map]).is_empty());
    }

    #[test]
    fn rules_only_one_side_reads_are_named_with_their_line() {
        let file = b"# c\nlocal all a trust\n";
        let extra_before = row(1, "local", &["all"], &["x"], None, "trust");
        let ours = row(2, "local", &["all"], &["a"], None, "trust");
        let extra_after = row(3, "local", &["all"], &["y"], None, "trust");
        let d = differences(file, &[extra_before, ours.clone(), extra_after]);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].starts_with("line 1: PostgreSQL reads a rule there"),
            "{d:?}"
        );
        assert!(
            d[1].starts_with("line 3: PostgreSQL reads a rule there"),
            "{d:?}"
        );
        assert!(differences(file, &[ours]).is_empty());
        let d = differences(file, &[]);
        assert!(
            d.len() == 1 && d[0].starts_with("line 2: the provider reads a rule there"),
            "{d:?}"
        );
    }

    #[test]
    fn hostssl_while_ssl_is_off_is_no_error() {
        let file = b"hostssl all u 10.0.0.1/32 md5\n";
        let mut r = row(
            1,
            "hostssl",
            &["all"],
            &["u"],
            Some(("10.0.0.1", "255.255.255.255")),
            "md5",
        );
        r.error = Some(HOSTSSL_WITHOUT_SSL.into());
        assert!(!is_fatal(&r));
        assert!(differences(file, &[r.clone()]).is_empty());
        r.conn_type = Some("host".into());
        assert!(is_fatal(&r));
    }
}
