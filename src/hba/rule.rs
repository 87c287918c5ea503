//! One pg_hba.conf record.

use std::collections::BTreeMap;

use super::address::normalize_address;
use super::reader::{self, Record, Token};

/// Connection types a record can start with.
pub const CONNECTION_TYPES: &[&str] = &[
    "local",
    "host",
    "hostssl",
    "hostnossl",
    "hostgssenc",
    "hostnogssenc",
];

/// Authentication methods PostgreSQL accepts.
pub const METHODS: &[&str] = &[
    "trust",
    "reject",
    "scram-sha-256",
    "md5",
    "password",
    "gss",
    "sspi",
    "ident",
    "peer",
    "ldap",
    "radius",
    "cert",
    "pam",
    "bsd",
];

/// The part of a rule a problem concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Type,
    Databases,
    Users,
    Address,
    Method,
    Option(String),
    Comment,
}

/// A parsed record. Database and user items are kept as written, except
/// that quotes around names that need none are dropped; an item still in
/// quotes (such as `"all"`) is a literal name, not a keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub conn_type: String,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    /// Canonical address (CIDR, keyword or host name); `None` for `local`.
    pub address: Option<String>,
    pub method: String,
    pub options: BTreeMap<String, String>,
    pub comment: Option<String>,
}

/// What identifies a record: first match wins, so two records with the
/// same connection type, databases, users and address can never both take
/// effect.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKey {
    pub conn_type: String,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    pub address: Option<String>,
}

impl std::fmt::Display for RuleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.conn_type,
            self.databases.join(","),
            self.users.join(",")
        )?;
        if let Some(a) = &self.address {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

impl Rule {
    /// Builds and checks a record from its parts.
    pub fn new(
        conn_type: &str,
        databases: &[&str],
        users: &[&str],
        address: Option<&str>,
        method: &str,
    ) -> Result<Rule, String> {
        let r = Rule {
            conn_type: conn_type.to_string(),
            databases: databases.iter().map(|s| s.to_string()).collect(),
            users: users.iter().map(|s| s.to_string()).collect(),
            address: match address {
                Some(a) => Some(normalize_address(a, None)?),
                None => None,
            },
            method: method.to_string(),
            options: BTreeMap::new(),
            comment: None,
        };
        r.check()?;
        Ok(r)
    }

    pub fn key(&self) -> RuleKey {
        let norm = |items: &[String]| {
            let mut v = items.to_vec();
            v.sort();
            v
        };
        RuleKey {
            conn_type: self.conn_type.clone(),
            databases: norm(&self.databases),
            users: norm(&self.users),
            address: self.address.clone(),
        }
    }

    /// Checks what PostgreSQL itself would refuse, with a reason a user can act on.
    pub fn check(&self) -> Result<(), String> {
        self.check_field().map_err(|(_, m)| m)
    }

    /// Like [`Rule::check`], also naming the part of the rule at fault.
    pub fn check_field(&self) -> Result<(), (Field, String)> {
        self.check_shape()?;
        for (name, value) in &self.options {
            self.check_option(name, value)
                .map_err(|m| (Field::Option(name.clone()), m))?;
        }
        if let Some(c) = &self.comment {
            check_comment(c).map_err(|m| (Field::Comment, m))?;
        }
        self.check_read_back()
    }

    /// Renders the rule as the provider writes it (a managed rule's
    /// position in front of the comment) and reads it back as the server
    /// will: anything the reader takes differently from what was meant is
    /// refused, naming the first field that differs.
    fn check_read_back(&self) -> Result<(), (Field, String)> {
        let mut placed = self.clone();
        placed.comment = Some(match &self.comment {
            Some(c) => format!("(0) {c}"),
            None => "(0)".into(),
        });
        for rule in [self, &placed] {
            let line = rule.render();
            let back = match reader::records(line.as_bytes()).as_slice() {
                [r] => Rule::from_record(r),
                _ => Err("the line is not read back as one record".into()),
            };
            let differs = |field: Field, what: &str| {
                Err((
                    field,
                    format!("PostgreSQL would not read the {what} back as written (the line would be `{}`)", line.escape_debug()),
                ))
            };
            let back = match back {
                Ok(Some(b)) => b,
                Ok(None) | Err(_) => return differs(Field::Comment, "rule"),
            };
            if back.conn_type != rule.conn_type {
                return differs(Field::Type, "connection type");
            }
            if back.databases != rule.databases {
                return differs(Field::Databases, "databases");
            }
            if back.users != rule.users {
                return differs(Field::Users, "users");
            }
            if back.address != rule.address {
                return differs(Field::Address, "address");
            }
            if back.method != rule.method {
                return differs(Field::Method, "method");
            }
            if let Some((k, _)) = rule
                .options
                .iter()
                .find(|(k, v)| back.options.get(*k) != Some(*v))
            {
                return differs(Field::Option(k.clone()), "option");
            }
            if back.options.len() != rule.options.len() || back.comment != rule.comment {
                return differs(Field::Comment, "comment");
            }
        }
        Ok(())
    }

    fn check_shape(&self) -> Result<(), (Field, String)> {
        if !CONNECTION_TYPES.contains(&self.conn_type.as_str()) {
            return Err((
                Field::Type,
                format!("unknown connection type {:?}", self.conn_type),
            ));
        }
        if !METHODS.contains(&self.method.as_str()) {
            return Err((
                Field::Method,
                format!("unknown authentication method {:?}", self.method),
            ));
        }
        let local = self.conn_type == "local";
        match (&self.address, local) {
            (Some(_), true) => {
                return Err((
                    Field::Address,
                    "`local` rules match Unix-domain sockets and take no address".into(),
                ))
            }
            (None, false) => {
                return Err((
                    Field::Address,
                    format!("`{}` rules need an address", self.conn_type),
                ))
            }
            _ => {}
        }
        if self.databases.is_empty() {
            return Err((
                Field::Databases,
                "list at least one database (or `all`)".into(),
            ));
        }
        if self.users.is_empty() {
            return Err((Field::Users, "list at least one user (or `all`)".into()));
        }
        for item in &self.databases {
            check_item(item).map_err(|m| (Field::Databases, m))?;
        }
        for item in &self.users {
            check_item(item).map_err(|m| (Field::Users, m))?;
        }
        match self.method.as_str() {
            "peer" if !local => Err((
                Field::Method,
                "method `peer` is only available for `local` rules".into(),
            )),
            "cert" if self.conn_type != "hostssl" => Err((
                Field::Method,
                "method `cert` needs an SSL connection: use type `hostssl`".into(),
            )),
            "sspi" => Err((
                Field::Method,
                "method `sspi` exists only on Windows servers".into(),
            )),
            _ => Ok(()),
        }
    }

    fn check_option(&self, name: &str, value: &str) -> Result<(), String> {
        if let Some(what) = line_breaking(value) {
            return Err(format!("option `{name}` cannot contain {what}"));
        }
        let allowed: &[&str] = match self.method.as_str() {
            "ident" | "peer" => &["map"],
            "gss" => &["include_realm", "krb_realm", "map"],
            "cert" => &["map", "clientname"],
            "pam" => &["pamservice", "pam_use_hostname"],
            "ldap" => &[
                "ldapserver",
                "ldapport",
                "ldapscheme",
                "ldaptls",
                "ldapprefix",
                "ldapsuffix",
                "ldapbasedn",
                "ldapbinddn",
                "ldapbindpasswd",
                "ldapsearchattribute",
                "ldapsearchfilter",
                "ldapurl",
            ],
            "radius" => &[
                "radiusservers",
                "radiussecrets",
                "radiusidentifiers",
                "radiusports",
            ],
            _ => &[],
        };
        match name {
            "clientcert" => {
                if self.conn_type != "hostssl" {
                    return Err("option `clientcert` is only valid on `hostssl` rules".into());
                }
                match value {
                    "verify-full" => Ok(()),
                    "verify-ca" if self.method == "cert" => {
                        Err("method `cert` always verifies the full certificate: use `clientcert = \"verify-full\"` or leave it out".into())
                    }
                    "verify-ca" => Ok(()),
                    "1" | "0" | "no-verify" => Err(format!(
                        "`clientcert={value}` is not accepted by PostgreSQL 14 and later; use `verify-ca` or `verify-full`"
                    )),
                    other => Err(format!("`clientcert` must be `verify-ca` or `verify-full`, not {other:?}")),
                }
            }
            "clientname" => {
                if !matches!(value, "CN" | "DN") {
                    return Err(format!("`clientname` must be `CN` or `DN`, not {value:?}"));
                }
                if self.method != "cert" && !self.options.contains_key("clientcert") {
                    return Err(
                        "`clientname` only applies with method `cert` or a `clientcert` option"
                            .into(),
                    );
                }
                Ok(())
            }
            _ if allowed.contains(&name) => Ok(()),
            _ => Err(format!(
                "option `{name}` is not valid for method `{}`{}",
                self.method,
                if allowed.is_empty() {
                    String::new()
                } else {
                    format!(" (valid: {})", allowed.join(", "))
                }
            )),
        }
    }

    /// The record as one line, fields separated by single spaces.
    pub fn render(&self) -> String {
        let mut s = self.render_key_fields();
        s.push(' ');
        s.push_str(&self.method);
        for (k, v) in &self.options {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(&render_option_value(v));
        }
        if let Some(c) = &self.comment {
            s.push_str(" # ");
            s.push_str(c);
        }
        s
    }

    /// The match fields (type, databases, users and, but for `local`, the
    /// address) as written in the file: with the node name in front, the
    /// import ID. [`Rule::parse_key_fields`] reads it back.
    pub fn render_key_fields(&self) -> String {
        let mut s = format!(
            "{} {} {}",
            self.conn_type,
            render_items(&self.databases),
            render_items(&self.users)
        );
        if let Some(a) = &self.address {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// Parses the match fields of a rule (type, databases, users and, but for
    /// `local`, the address with an optional netmask), as an import ID gives
    /// them. Unlike a file line, a bare IP address here needs no mask.
    pub fn parse_key_fields(fields: &str) -> Result<Rule, String> {
        let record = single_record(fields)?.ok_or_else(|| "no rule fields".to_string())?;
        let n = record.fields.len();
        let is_local = record.fields[0][0].text == "local";
        let address = match (is_local, n) {
            (true, 3) => None,
            (false, 4) => Some(normalize_address(&single(&record, 3, "address")?, None)?),
            (false, 5) => Some(normalize_address(
                &single(&record, 3, "address")?,
                Some(&single(&record, 4, "IP mask")?),
            )?),
            _ => return Err(format!("expected `<type> <databases> <users>` and, but for `local`, an address; got {n} fields")),
        };
        Ok(Rule {
            conn_type: single(&record, 0, "connection type")?,
            databases: items(&record.fields[1]),
            users: items(&record.fields[2]),
            address,
            method: "trust".into(),
            options: BTreeMap::new(),
            comment: None,
        })
    }

    /// Parses one line as the server reads it ([`super::reader`]). Blank
    /// lines, comments and `include` directives give `Ok(None)`; a line
    /// PostgreSQL would not accept gives `Err`.
    pub fn parse_line(line: &str) -> Result<Option<Rule>, String> {
        match single_record(line)? {
            Some(record) => Rule::from_record(&record),
            None => Ok(None),
        }
    }

    /// The rule a record of the file stands for.
    pub fn from_record(record: &Record) -> Result<Option<Rule>, String> {
        if let Some(e) = &record.error {
            return Err(e.clone());
        }
        let Some(first) = record.fields.first() else {
            return Ok(None);
        };
        if first[0].text.starts_with("include") {
            return Ok(None);
        }
        let conn_type = single(record, 0, "connection type")?;
        let need = |i: usize, what: &str| -> Result<&Vec<Token>, String> {
            record
                .fields
                .get(i)
                .ok_or_else(|| format!("missing {what}"))
        };
        let databases = items(need(1, "database field")?);
        let users = items(need(2, "user field")?);
        let mut i = 3;
        let address = if conn_type == "local" {
            None
        } else {
            need(3, "address field")?;
            let a = single(record, 3, "address")?;
            i = 4;
            let mask = if a.parse::<std::net::IpAddr>().is_ok() {
                need(4, "IP mask")?;
                i = 5;
                Some(single(record, 4, "IP mask")?)
            } else {
                None
            };
            Some(normalize_address(&a, mask.as_deref())?)
        };
        need(i, "authentication method")?;
        let method = single(record, i, "authentication method")?;
        let mut options = BTreeMap::new();
        for t in record.fields[i + 1..].iter().flatten() {
            let (k, v) = t.text.split_once('=').ok_or_else(|| {
                format!(
                    "authentication option {:?} is not in name=value form",
                    t.text
                )
            })?;
            options.insert(k.to_string(), v.to_string());
        }
        if !CONNECTION_TYPES.contains(&conn_type.as_str()) {
            return Err(format!("unknown connection type {conn_type:?}"));
        }
        Ok(Some(Rule {
            conn_type,
            databases,
            users,
            address,
            method,
            options,
            comment: record.comment.clone(),
        }))
    }
}

/// The one record in `text` (a line or an import ID), if any.
fn single_record(text: &str) -> Result<Option<Record>, String> {
    let mut records = reader::records(text.as_bytes());
    match records.len() {
        0 => Ok(None),
        1 => Ok(records.pop()),
        _ => Err("more than one record".into()),
    }
}

/// Field `i` of a record, which must hold a single item.
fn single(record: &Record, i: usize, what: &str) -> Result<String, String> {
    match record.fields.get(i).map(Vec::as_slice) {
        Some([t]) => Ok(t.text.clone()),
        Some(_) => Err(format!("multiple values specified for the {what}")),
        None => Err(format!("missing {what}")),
    }
}

/// Database or user items as the provider writes them: a quoted token
/// that would otherwise be a keyword (`"all"`, `"+x"`, ...) keeps its
/// quotes, since they make it a literal name.
fn items(tokens: &[Token]) -> Vec<String> {
    tokens
        .iter()
        .map(|t| {
            if t.quoted && has_meaning_unquoted(&t.text) {
                format!("\"{}\"", t.text)
            } else {
                t.text.clone()
            }
        })
        .collect()
}

/// Whether an unquoted item means something other than a name: a keyword,
/// `+role` (members of), `@file` (names read from a file) or, from
/// PostgreSQL 16 on, `/regex`.
fn has_meaning_unquoted(text: &str) -> bool {
    KEYWORDS.contains(&text) || text.starts_with(['+', '@', '/'])
}

fn literal_name(item: &str) -> Option<&str> {
    if item.len() >= 2 {
        item.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
    } else {
        None
    }
}

/// A comment is everything after `#` to the end of the line, so it can
/// hold anything but what ends or joins lines; the reader also takes a
/// final backslash as joining the next line into this one, which would
/// hide the next rule from the server.
fn check_comment(c: &str) -> Result<(), String> {
    if let Some(what) = line_breaking(c) {
        return Err(format!("a comment cannot contain {what}"));
    }
    if c.ends_with('\\') {
        return Err("a comment cannot end with a backslash: PostgreSQL would read the next line of pg_hba.conf as part of this one, and the rule written there would never be in force".into());
    }
    if c.trim_matches([' ', '\t']) != c {
        return Err(
            "a comment cannot start or end with a space or tab (PostgreSQL's reader drops them)"
                .into(),
        );
    }
    Ok(())
}

/// Characters no field may hold: the server's line reader ends or joins
/// lines at them.
fn line_breaking(s: &str) -> Option<&'static str> {
    if s.contains('\0') {
        Some("a NUL byte (PostgreSQL's line reader stops there and joins the next line on)")
    } else if s.contains('\n') || s.contains('\r') {
        Some("a line break or carriage return")
    } else {
        None
    }
}

fn check_item(item: &str) -> Result<(), String> {
    if item.is_empty() || literal_name(item) == Some("") {
        return Err("empty database or user name".into());
    }
    if let Some(what) = line_breaking(item) {
        return Err(format!("name {item:?} cannot contain {what}"));
    }
    if let Some(file) = item.strip_prefix('@') {
        return Err(format!(
            "`{item}` would make PostgreSQL read the names from the file {:?}, which this provider does not manage; \
             for a role or database whose name starts with `@`, write it in double quotes (\"\\\"{item}\\\"\")",
            file
        ));
    }
    if let Some(inner) = literal_name(item) {
        if !has_meaning_unquoted(inner) {
            return Err(format!(
                "{item:?} needs no double quotes: write it as {inner:?} (quotes mark a keyword such as `all`, or a name \
                 starting with `+`, `@` or `/`, as a literal name)"
            ));
        }
    } else if item.starts_with('/') {
        return Err(format!(
            "PostgreSQL 16 and later read an unquoted name starting with `/` as a regular expression; for the name \
             itself write it in double quotes (\"\\\"{item}\\\"\")"
        ));
    }
    let rendered = render_item(item);
    match reader::records(format!("local {rendered} x trust").as_bytes()).as_slice() {
        [r] if r.error.is_none() && r.fields.len() == 4 && items(&r.fields[1]) == [item] => Ok(()),
        [r] if r.error.is_some() => Err(format!(
            "name {item:?} is too long for pg_hba.conf (PostgreSQL 15 and earlier take at most {} bytes, quotes included)",
            reader::MAX_TOKEN_BYTES - 1
        )),
        _ => Err(format!("name {item:?} cannot be written so that PostgreSQL reads it back unchanged")),
    }
}

/// Whether a name can stand in the file without quotes.
fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['@', '/'])
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-' | '.' | '+' | '@' | '/')
        })
}

/// `text` in double quotes, with quotes inside doubled (the server reads
/// `""` inside quotes as one `"`).
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn render_item(item: &str) -> String {
    match literal_name(item) {
        Some(inner) => quote(inner),
        None if is_plain(item) => item.to_string(),
        // `+` must stay outside the quotes to keep its meaning; a quote
        // opening inside a token still groups what follows.
        None => match item.strip_prefix('+') {
            Some(group) => format!("+{}", quote(group)),
            None => quote(item),
        },
    }
}

fn render_items(items: &[String]) -> String {
    items
        .iter()
        .map(|i| render_item(i))
        .collect::<Vec<_>>()
        .join(",")
}

/// An option value as written after `name=`: quoted unless it is made of
/// characters that never mean anything to the reader.
fn render_option_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '$' | '-' | '.' | '+' | '@' | '/' | ':' | '=')
        });
    if plain {
        v.to_string()
    } else {
        quote(v)
    }
}

const KEYWORDS: &[&str] = &["all", "sameuser", "samerole", "samegroup", "replication"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_shapes() {
        let r =
            Rule::parse_line("host    all       all   192.0.2.20/32   scram-sha-256 # access node")
                .unwrap()
                .unwrap();
        assert_eq!(r.conn_type, "host");
        assert_eq!(r.address.as_deref(), Some("192.0.2.20/32"));
        assert_eq!(r.comment.as_deref(), Some("access node"));
        let r = Rule::parse_line("host all all 192.168.12.0 255.255.255.0 md5")
            .unwrap()
            .unwrap();
        assert_eq!(r.address.as_deref(), Some("192.168.12.0/24"));
        let r = Rule::parse_line("hostssl all all all cert clientcert=verify-full clientname=CN")
            .unwrap()
            .unwrap();
        assert_eq!(r.options.get("clientname").map(String::as_str), Some("CN"));
        let r = Rule::parse_line(r#"local "My DB","all" +admins peer map=omicron"#)
            .unwrap()
            .unwrap();
        assert_eq!(r.databases, ["My DB", "\"all\""]);
        assert_eq!(r.users, ["+admins"]);
        assert_eq!(Rule::parse_line("   # just a comment").unwrap(), None);
        assert_eq!(Rule::parse_line("").unwrap(), None);
        assert_eq!(Rule::parse_line("include_dir conf.d").unwrap(), None);
    }

    #[test]
    fn key_fields_take_bare_addresses_and_masks() {
        let k = Rule::parse_key_fields("host all testrole 127.0.0.1")
            .unwrap()
            .key();
        assert_eq!(k.address.as_deref(), Some("127.0.0.1/32"));
        let k = Rule::parse_key_fields(r#"host "my db" all 10.0.0.0 255.0.0.0"#)
            .unwrap()
            .key();
        assert_eq!(
            (k.databases[0].as_str(), k.address.as_deref()),
            ("my db", Some("10.0.0.0/8"))
        );
        assert!(Rule::parse_key_fields("local all postgres").is_ok());
        assert!(Rule::parse_key_fields("local all postgres 10.0.0.1").is_err());
        assert!(Rule::parse_key_fields("host all").is_err());
    }

    #[test]
    fn the_runbooks_bare_address_needs_a_mask() {
        // `host all all 192.0.2.20 trust` reads `trust` as the IP mask.
        assert!(Rule::parse_line("host all all 192.0.2.20 trust").is_err());
    }

    #[test]
    fn render_then_parse_is_identity() {
        let mut r = Rule::new(
            "hostssl",
            &["app db", "\"all\""],
            &["testrole", "Ünïcode"],
            Some("2001:db8::/32"),
            "ldap",
        )
        .unwrap();
        r.options
            .insert("ldapserver".into(), "ldap.example.com".into());
        r.options
            .insert("ldapsearchfilter".into(), "(uid=$username) x".into());
        r.comment = Some("quoted \"comment\" # with hash".into());
        let line = r.render();
        assert_eq!(Rule::parse_line(&line).unwrap().unwrap(), r, "{line}");
    }

    #[test]
    fn refuses_what_postgresql_refuses() {
        let bad = |t: &str, addr: Option<&str>, m: &str, opts: &[(&str, &str)]| {
            let mut r = Rule::new(t, &["all"], &["all"], addr, "trust").unwrap();
            r.method = m.into();
            r.options = opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            r.check().unwrap_err()
        };
        assert!(bad("hostssl", Some("all"), "cert", &[("clientcert", "1")]).contains("verify-full"));
        assert!(bad("host", Some("all"), "cert", &[]).contains("hostssl"));
        assert!(bad("host", Some("all"), "peer", &[]).contains("local"));
        assert!(bad("host", Some("all"), "md5", &[("map", "x")]).contains("not valid for method"));
        assert!(
            bad("host", Some("all"), "trust", &[("clientcert", "verify-ca")]).contains("hostssl")
        );
        assert!(bad(
            "hostssl",
            Some("all"),
            "cert",
            &[("clientcert", "verify-ca")]
        )
        .contains("verify-full"));
        assert!(Rule::new("local", &["all"], &["all"], Some("10.0.0.0/8"), "trust").is_err());
        assert!(Rule::new("host", &["all"], &["all"], None, "trust").is_err());
        assert!(Rule::new("host", &["all"], &["all"], Some("all"), "magic").is_err());
    }

    /// `check_field` of a rule of this type, address, method and options.
    fn verdict(
        t: &str,
        addr: Option<&str>,
        method: &str,
        opts: &[(&str, &str)],
    ) -> Result<(), (Field, String)> {
        let mut r = Rule::new(t, &["all"], &["all"], addr, "trust").unwrap();
        r.method = method.into();
        r.options = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        r.check_field()
    }

    /// Type, address, method and options of a rule.
    type Shape<'a> = (&'a str, Option<&'a str>, &'a str, &'a [(&'a str, &'a str)]);

    /// A shape, the part refused and words of the reason.
    type Refusal<'a> = (
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a [(&'a str, &'a str)],
        Field,
        &'a str,
    );

    #[test]
    fn each_method_takes_the_options_postgresql_takes() {
        let ok: &[Shape] = &[
            ("local", None, "peer", &[("map", "m")]),
            ("host", Some("all"), "ident", &[("map", "m")]),
            (
                "host",
                Some("all"),
                "gss",
                &[("include_realm", "0"), ("krb_realm", "R"), ("map", "m")],
            ),
            (
                "hostssl",
                Some("all"),
                "cert",
                &[("map", "m"), ("clientname", "DN")],
            ),
            (
                "hostssl",
                Some("all"),
                "cert",
                &[("clientcert", "verify-full")],
            ),
            (
                "hostssl",
                Some("all"),
                "scram-sha-256",
                &[("clientcert", "verify-ca"), ("clientname", "CN")],
            ),
            (
                "host",
                Some("all"),
                "pam",
                &[("pamservice", "p"), ("pam_use_hostname", "1")],
            ),
            (
                "host",
                Some("all"),
                "ldap",
                &[("ldapserver", "l"), ("ldapbasedn", "dc=x")],
            ),
            (
                "host",
                Some("all"),
                "radius",
                &[("radiusservers", "r"), ("radiussecrets", "s")],
            ),
        ];
        for (t, a, m, o) in ok {
            assert_eq!(verdict(t, *a, m, o), Ok(()), "{t} {m} {o:?}");
        }
        let refused: &[Refusal] = &[
            ("host", Some("all"), "sspi", &[], Field::Method, "Windows"),
            ("host", Some("all"), "peer", &[], Field::Method, "local"),
            ("host", Some("all"), "cert", &[], Field::Method, "hostssl"),
            (
                "host",
                Some("all"),
                "md5",
                &[("map", "m")],
                Field::Option("map".into()),
                "not valid for method",
            ),
            (
                "host",
                Some("all"),
                "gss",
                &[("ldapserver", "l")],
                Field::Option("ldapserver".into()),
                "valid: include_realm",
            ),
            (
                "hostssl",
                Some("all"),
                "md5",
                &[("clientname", "CN")],
                Field::Option("clientname".into()),
                "only applies",
            ),
            (
                "hostssl",
                Some("all"),
                "cert",
                &[("clientname", "UID")],
                Field::Option("clientname".into()),
                "must be `CN` or `DN`",
            ),
            (
                "hostssl",
                Some("all"),
                "trust",
                &[("clientcert", "maybe")],
                Field::Option("clientcert".into()),
                "must be `verify-ca` or `verify-full`",
            ),
            (
                "hostssl",
                Some("all"),
                "trust",
                &[("clientcert", "no-verify")],
                Field::Option("clientcert".into()),
                "PostgreSQL 14",
            ),
            (
                "host",
                Some("all"),
                "trust",
                &[("clientcert", "verify-ca")],
                Field::Option("clientcert".into()),
                "hostssl",
            ),
        ];
        for (t, a, m, o, field, text) in refused {
            let (f, msg) = verdict(t, *a, m, o).unwrap_err();
            assert_eq!(&f, field, "{t} {m} {o:?}: {msg}");
            assert!(msg.contains(text), "{t} {m} {o:?}: {msg}");
        }
        let mut no_address = Rule::new("host", &["all"], &["all"], Some("all"), "trust").unwrap();
        no_address.address = None;
        let (f, msg) = no_address.check_field().unwrap_err();
        assert_eq!((f, msg.contains("need an address")), (Field::Address, true));
    }

    #[test]
    fn a_rule_is_refused_when_it_would_not_read_back_as_meant() {
        let good = Rule::new("host", &["all"], &["all"], Some("all"), "trust").unwrap();
        assert_eq!(good.check_read_back(), Ok(()));
        let mut nul = good.clone();
        nul.databases = vec!["a\0b".into()];
        assert!(nul.check_read_back().is_err());
        let mut blanks = good.clone();
        blanks.comment = Some(" padded ".into());
        assert_eq!(blanks.check_read_back().unwrap_err().0, Field::Comment);
        assert_eq!(
            good.key().to_string(),
            "host all all all",
            "the key as messages show it"
        );
    }

    #[test]
    fn names_and_comments_are_refused_with_the_reason() {
        let long = "n".repeat(300);
        let refused: &[(&str, &str)] = &[
            ("", "empty"),
            ("\"\"", "empty"),
            ("a\0b", "NUL"),
            ("a\nb", "line break"),
            ("a\rb", "line break"),
            ("@file", "read the names from the file"),
            ("\"plain\"", "needs no double quotes"),
            ("/re", "regular expression"),
            (long.as_str(), "too long"),
        ];
        for (item, why) in refused {
            let msg = check_item(item).unwrap_err();
            assert!(msg.contains(why), "{item:?}: {msg}");
        }
        for item in [
            "all",
            "\"all\"",
            "\"+g\"",
            "\"@f\"",
            "+group",
            "Test \"Role\"",
            "r\u{f4}le",
            "a,b",
        ] {
            assert_eq!(check_item(item), Ok(()), "{item:?}");
        }
        let comments: &[(&str, &str)] = &[
            ("a\0b", "NUL"),
            ("a\nb", "line break"),
            ("ends\\", "backslash"),
            (" lead", "space or tab"),
            ("trail\t", "space or tab"),
        ];
        for (c, why) in comments {
            let msg = check_comment(c).unwrap_err();
            assert!(msg.contains(why), "{c:?}: {msg}");
        }
        assert_eq!(check_comment("fine # with a hash, \"quotes\""), Ok(()));
        assert_eq!(literal_name("\"x\""), Some("x"));
        assert_eq!(literal_name("\""), None);
        assert_eq!(literal_name("x"), None);
    }

    #[test]
    fn option_values_are_quoted_only_when_they_must_be() {
        for plain in ["verify-full", "a.b_c$d-e+f@g/h:i=j", "0"] {
            assert_eq!(render_option_value(plain), plain);
        }
        assert_eq!(render_option_value(""), "\"\"");
        assert_eq!(render_option_value("a b"), "\"a b\"");
        assert_eq!(render_option_value("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(render_option_value("x,y"), "\"x,y\"");
    }

    #[test]
    fn keys_ignore_item_order() {
        let a = Rule::new("host", &["a", "b"], &["u"], Some("all"), "trust").unwrap();
        let b = Rule::new("host", &["b", "a"], &["u"], Some("all"), "md5").unwrap();
        assert_eq!(a.key(), b.key());
    }
}
