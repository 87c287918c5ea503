//! One pg_hba.conf record.

use std::collections::BTreeMap;

use super::address::normalize_address;

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
            if c.contains('\n') || c.contains('\r') {
                return Err((Field::Comment, "a comment must fit on one line".into()));
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
        if value.contains('"') || value.contains('\n') || value.contains('\r') {
            return Err(format!(
                "option `{name}` cannot contain a double quote or a line break"
            ));
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
        s.push(' ');
        s.push_str(&self.method);
        for (k, v) in &self.options {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '#' || c == ',') {
                s.push('"');
                s.push_str(v);
                s.push('"');
            } else {
                s.push_str(v);
            }
        }
        if let Some(c) = &self.comment {
            s.push_str(" # ");
            s.push_str(c);
        }
        s
    }

    /// Parses the match fields of a rule (type, databases, users and, but for
    /// `local`, the address with an optional netmask), as an import ID gives
    /// them. Unlike a file line, a bare IP address here needs no mask.
    pub fn parse_key_fields(fields: &str) -> Result<Rule, String> {
        let (tokens, _) = tokenize(fields)?;
        let line = match tokens.as_slice() {
            [t, d, u] if t == "local" => format!("{t} {d} {u} trust"),
            [t, d, u, a] if t != "local" => format!("{t} {d} {u} {} trust", normalize_address(a, None)?),
            [t, d, u, a, m] if t != "local" => format!("{t} {d} {u} {} trust", normalize_address(a, Some(m))?),
            _ => return Err(format!("expected `<type> <databases> <users>` and, but for `local`, an address; got {} fields", tokens.len())),
        };
        Rule::parse_line(&line)?.ok_or_else(|| "no rule fields".to_string())
    }

    /// Parses one line. Blank lines, comments and `include` directives give
    /// `Ok(None)`; a line PostgreSQL would not accept gives `Err`.
    pub fn parse_line(line: &str) -> Result<Option<Rule>, String> {
        let (tokens, comment) = tokenize(line)?;
        let Some(first) = tokens.first() else {
            return Ok(None);
        };
        if first.starts_with("include") {
            return Ok(None);
        }
        let conn_type = first.clone();
        let need = |i: usize, what: &str| {
            tokens
                .get(i)
                .cloned()
                .ok_or_else(|| format!("missing {what}"))
        };
        let databases = split_items(&need(1, "database field")?);
        let users = split_items(&need(2, "user field")?);
        let mut i = 3;
        let address = if conn_type == "local" {
            None
        } else {
            let a = need(3, "address field")?;
            i = 4;
            let is_ip = a.parse::<std::net::IpAddr>().is_ok();
            let mask = if is_ip {
                i = 5;
                Some(need(4, "IP mask")?)
            } else {
                None
            };
            Some(normalize_address(&a, mask.as_deref())?)
        };
        let method = need(i, "authentication method")?;
        let mut options = BTreeMap::new();
        for t in &tokens[i + 1..] {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| format!("authentication option {t:?} is not in name=value form"))?;
            options.insert(k.to_string(), unquote(v));
        }
        let rule = Rule {
            conn_type,
            databases,
            users,
            address,
            method,
            options,
            comment,
        };
        if !CONNECTION_TYPES.contains(&rule.conn_type.as_str()) {
            return Err(format!("unknown connection type {:?}", rule.conn_type));
        }
        Ok(Some(rule))
    }
}

fn check_item(item: &str) -> Result<(), String> {
    if item.is_empty() {
        return Err("empty database or user name".into());
    }
    let inner = item.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
    let bare = inner.unwrap_or(item);
    if bare.contains('"') || bare.contains('\n') || bare.contains('\r') {
        return Err(format!(
            "name {item:?} cannot contain a double quote or a line break"
        ));
    }
    Ok(())
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-' | '.' | '+' | '@' | '/')
        })
}

fn render_items(items: &[String]) -> String {
    items
        .iter()
        .map(|i| {
            if is_plain(i) || (i.starts_with('"') && i.ends_with('"') && i.len() >= 2) {
                i.clone()
            } else {
                format!("\"{i}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

const KEYWORDS: &[&str] = &["all", "sameuser", "samerole", "samegroup", "replication"];

/// Splits a comma-separated field; quotes are dropped from names that do
/// not need them and kept on keywords, where they mean a literal name.
fn split_items(field: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in field.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    items.push(cur);
    items
        .into_iter()
        .map(
            |i| match i.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(inner)
                    if KEYWORDS.contains(&inner)
                        || inner.starts_with('+')
                        || inner.starts_with('@') =>
                {
                    i
                }
                Some(inner) => inner.to_string(),
                None => i,
            },
        )
        .collect()
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}

/// Splits a line into whitespace-separated tokens (double quotes group) and
/// its trailing comment.
pub(crate) fn tokenize(line: &str) -> Result<(Vec<String>, Option<String>), String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for (idx, c) in line.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '#' if !quoted => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
                let text = line[idx + 1..].trim();
                return Ok((
                    tokens,
                    if text.is_empty() {
                        None
                    } else {
                        Some(text.to_string())
                    },
                ));
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted string".into());
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    Ok((tokens, None))
}

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

    #[test]
    fn keys_ignore_item_order() {
        let a = Rule::new("host", &["a", "b"], &["u"], Some("all"), "trust").unwrap();
        let b = Rule::new("host", &["b", "a"], &["u"], Some("all"), "md5").unwrap();
        assert_eq!(a.key(), b.key());
    }
}
