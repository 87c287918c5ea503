//! The libpq password file format (`~/.pgpass`, `PGPASSFILE`, and the
//! passfile TimescaleDB's access node reads): `host:port:database:user:password`,
//! with `:` and `\` escaped by a backslash, `*` matching anything in the
//! first four fields, `#` starting a comment line, first match winning.

/// One entry. Fields hold their unescaped values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub hostname: String,
    pub port: String,
    pub database: String,
    pub username: String,
    pub password: String,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == ':' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Entry {
    /// The entry as one line, escaped as libpq reads it.
    pub fn render(&self) -> String {
        [
            &self.hostname,
            &self.port,
            &self.database,
            &self.username,
            &self.password,
        ]
        .iter()
        .map(|f| escape(f))
        .collect::<Vec<_>>()
        .join(":")
    }

    /// Parses a line the way libpq does; comments, blank lines and lines
    /// with fewer than five fields give `None`.
    pub fn parse(line: &str) -> Option<Entry> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = Vec::with_capacity(5);
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        if fields.len() < 4 {
            return None;
        }
        fields.push(cur);
        let mut it = fields.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Some(Entry {
            hostname: next(),
            port: next(),
            database: next(),
            username: next(),
            password: next(),
        })
    }

    /// Whether libpq would use this entry for a connection.
    pub fn matches(&self, host: &str, port: &str, database: &str, user: &str) -> bool {
        let m = |pat: &str, v: &str| pat == "*" || pat == v;
        // libpq treats the default socket directory as "localhost"
        let host_ok =
            m(&self.hostname, host) || (host.starts_with('/') && self.hostname == "localhost");
        host_ok && m(&self.port, port) && m(&self.database, database) && m(&self.username, user)
    }
}

/// The password libpq would take from `text` for this connection.
pub fn lookup(text: &str, host: &str, port: &str, database: &str, user: &str) -> Option<String> {
    text.lines()
        .filter_map(Entry::parse)
        .find(|e| e.matches(host, port, database, user))
        .map(|e| e.password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let e = Entry {
            hostname: "*".into(),
            port: "5432".into(),
            database: "*".into(),
            username: "odd:user\\name".into(),
            password: "p:a\\s*s w'o\"rd ü".into(),
        };
        let line = e.render();
        assert_eq!(line, r#"*:5432:*:odd\:user\\name:p\:a\\s*s w'o"rd ü"#);
        assert_eq!(Entry::parse(&line), Some(e));
    }

    #[test]
    fn first_match_wins_and_comments_are_skipped() {
        let text = "# comment\nlocalhost:5432:*:postgres:first\n*:*:*:postgres:second\n*:*:*:*:any\nbroken:line\n";
        assert_eq!(
            lookup(text, "localhost", "5432", "db", "postgres").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(text, "10.0.0.1", "5433", "db", "postgres").as_deref(),
            Some("second")
        );
        assert_eq!(
            lookup(text, "10.0.0.1", "5433", "db", "other").as_deref(),
            Some("any")
        );
        assert_eq!(lookup("", "h", "1", "d", "u"), None);
    }

    #[test]
    fn a_colon_in_the_password_field_needs_no_escape() {
        // libpq splits only the first four fields
        assert_eq!(Entry::parse("*:*:*:u:a:b").unwrap().password, "a:b");
    }
}
