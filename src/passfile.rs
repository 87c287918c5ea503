//! The libpq password file format (`~/.pgpass`, `PGPASSFILE`, and the
//! passfile TimescaleDB's access node reads): `host:port:database:user:password`,
//! with `:` and `\` escaped by a backslash, `*` matching anything in the
//! first four fields, `#` starting a comment line, first match winning.
//!
//! [`PassFile`] edits such a file the way `timescaledb_passfile_entry`
//! needs: entries the provider manages sit in a marked block at the top of
//! the file (so they win over older lines), each preceded by a `# position N`
//! comment that keeps their order; every other line is kept byte for byte.

use crate::lines::Lines;

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
        let line = [
            &self.hostname,
            &self.port,
            &self.database,
            &self.username,
            &self.password,
        ]
        .iter()
        .map(|f| escape(f))
        .collect::<Vec<_>>()
        .join(":");
        // libpq skips lines starting with `#` before unescaping
        if line.starts_with('#') {
            format!("\\{line}")
        } else {
            line
        }
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

/// What libpq itself (`passwordFromFile` and `pwdfMatchesString` in
/// `fe-connect.c`) takes from a password file for a connection, byte for
/// byte: lines are read with `fgets`, so a NUL byte cuts a line and joins
/// the next one on; only a line whose very first byte is `#` is a comment;
/// trailing `\r`/`\n` are stripped; a field is exactly `*` (a wildcard) or
/// is compared with `\` escaping the next byte; the password runs to the
/// first unescaped `:`.
pub fn libpq_lookup(
    bytes: &[u8],
    host: &str,
    port: &str,
    database: &str,
    user: &str,
) -> Option<Vec<u8>> {
    let mut pos = 0;
    while pos < bytes.len() {
        let mut buf: Vec<u8> = Vec::new();
        // fgets + strlen until the buffer ends with a newline or the file ends
        while pos < bytes.len() {
            let (kept, next, _) = crate::lines::c_line(bytes, pos);
            buf.extend_from_slice(kept);
            pos = next;
            if buf.last() == Some(&b'\n') {
                break;
            }
        }
        if buf.first() == Some(&b'#') {
            continue;
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.is_empty() {
            continue;
        }
        let mut rest: &[u8] = &buf;
        let mut matched = true;
        for token in [host, port, database, user] {
            match pwdf_match(rest, token.as_bytes()) {
                Some(after) => rest = after,
                None => {
                    matched = false;
                    break;
                }
            }
        }
        if matched {
            let mut password = Vec::new();
            let mut i = 0;
            while i < rest.len() && rest[i] != b':' {
                if rest[i] == b'\\' && i + 1 < rest.len() {
                    i += 1;
                }
                password.push(rest[i]);
                i += 1;
            }
            return Some(password);
        }
    }
    None
}

/// libpq's `pwdfMatchesString`: what follows the field when it matches
/// `token`.
fn pwdf_match<'a>(buf: &'a [u8], token: &[u8]) -> Option<&'a [u8]> {
    if buf.starts_with(b"*:") {
        return Some(&buf[2..]);
    }
    let (mut b, mut t) = (0, 0);
    let mut bslash = false;
    while b < buf.len() {
        if buf[b] == b'\\' && !bslash {
            b += 1;
            bslash = true;
        }
        let c = buf.get(b).copied().unwrap_or(0);
        if c == b':' && t == token.len() && !bslash {
            return Some(&buf[b + 1..]);
        }
        bslash = false;
        if t == token.len() || c != token[t] {
            return None;
        }
        b += 1;
        t += 1;
    }
    None
}

/// Checks that a field can be written so that libpq reads it back exactly:
/// libpq's reader treats a NUL byte, a line feed and a trailing carriage
/// return specially, so none of them can be part of a field.
pub fn check_field(value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err("cannot contain a NUL byte: libpq stops reading the line there and joins the next one on".into());
    }
    if value.contains(['\n', '\r']) {
        return Err("cannot contain a line break or carriage return: the password file has one entry per line".into());
    }
    Ok(())
}

impl Entry {
    /// Whether libpq, connecting with this entry's own match fields (a
    /// wildcard standing for any value), reads exactly this entry's
    /// password from its rendered line.
    pub fn reads_back(&self) -> bool {
        let probe = |f: &str| {
            if f == "*" {
                "any".to_string()
            } else {
                f.to_string()
            }
        };
        libpq_lookup(
            self.render().as_bytes(),
            &probe(&self.hostname),
            &probe(&self.port),
            &probe(&self.database),
            &probe(&self.username),
        )
        .is_some_and(|p| p == self.password.as_bytes())
    }
}

/// First line of the managed block.
pub const BEGIN_MARKER: &str =
    "# BEGIN terraform-provider-timescaledb managed entries: change them with Terraform";
/// Last line of the managed block.
pub const END_MARKER: &str = "# END terraform-provider-timescaledb managed entries";
const POSITION_PREFIX: &str = "# position ";

/// What identifies an entry: the four match fields, unescaped.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub hostname: String,
    pub port: String,
    pub database: String,
    pub username: String,
}

impl Entry {
    pub fn key(&self) -> Key {
        Key {
            hostname: self.hostname.clone(),
            port: self.port.clone(),
            database: self.database.clone(),
            username: self.username.clone(),
        }
    }
}

impl std::fmt::Display for Key {
    /// The match fields as they are written in the file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            escape(&self.hostname),
            escape(&self.port),
            escape(&self.database),
            escape(&self.username)
        )
    }
}

/// An entry found in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub entry: Entry,
    pub line_index: usize,
    /// Present when the entry is inside the managed block.
    pub position: Option<i64>,
}

/// A password file, kept as its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassFile {
    text: Lines,
}

impl PassFile {
    pub fn parse(text: &str) -> PassFile {
        PassFile {
            text: Lines::parse(text),
        }
    }

    pub fn render(&self) -> String {
        self.text.render()
    }

    fn block(&self) -> Option<(usize, usize)> {
        self.text.block(BEGIN_MARKER, END_MARKER)
    }

    fn position_at(&self, i: usize) -> Option<i64> {
        let prev = self.text.lines.get(i.checked_sub(1)?)?;
        prev.trim_end()
            .strip_prefix(POSITION_PREFIX)?
            .trim()
            .parse()
            .ok()
    }

    /// Every entry in file order (what libpq would consider).
    pub fn entries(&self) -> Vec<Found> {
        let block = self.block();
        self.text
            .lines
            .iter()
            .enumerate()
            .filter_map(|(i, line)| {
                let entry = Entry::parse(line)?;
                let in_block = block.is_some_and(|(b, e)| i > b && i < e);
                Some(Found {
                    entry,
                    line_index: i,
                    position: if in_block { self.position_at(i) } else { None },
                })
            })
            .collect()
    }

    /// The entry with this key: the managed one when there is one, else the
    /// first in the file.
    pub fn find(&self, key: &Key) -> Option<Found> {
        let matching: Vec<Found> = self
            .entries()
            .into_iter()
            .filter(|f| &f.entry.key() == key)
            .collect();
        matching
            .iter()
            .find(|f| f.position.is_some())
            .or(matching.first())
            .cloned()
    }

    /// Puts `entry` in the file. An entry with the same key outside the
    /// managed block (one adopted by import) is rewritten where it stands;
    /// otherwise the entry goes into the managed block, ordered by
    /// `position`.
    pub fn upsert(&mut self, entry: &Entry, position: i64) {
        if let Some(found) = self.find(&entry.key()) {
            if found.position.is_none() {
                self.text.lines[found.line_index] = entry.render();
                return;
            }
            self.remove_at(found.line_index);
        }
        let (begin, end) = self.ensure_block();
        let mut insert_at = end;
        for i in begin + 1..end {
            if Entry::parse(&self.text.lines[i]).is_some()
                && self.position_at(i).unwrap_or(i64::MIN) > position
            {
                // before this entry's position comment
                insert_at = i - 1;
                break;
            }
        }
        self.text.lines.insert(insert_at, entry.render());
        self.text
            .lines
            .insert(insert_at, format!("{POSITION_PREFIX}{position}"));
        self.tidy();
    }

    /// Removes the entry with this key; returns whether one was there. An
    /// emptied managed block is removed too.
    pub fn remove(&mut self, key: &Key) -> bool {
        let Some(found) = self.find(key) else {
            return false;
        };
        self.remove_at(found.line_index);
        self.tidy();
        true
    }

    /// Drops position comments left without their entry (a line deleted by
    /// hand) and an emptied managed block.
    fn tidy(&mut self) {
        let Some((b, e)) = self.block() else { return };
        let orphans: Vec<usize> = (b + 1..e)
            .filter(|&i| {
                self.text.lines[i].starts_with(POSITION_PREFIX)
                    && (i + 1 >= e || Entry::parse(&self.text.lines[i + 1]).is_none())
            })
            .collect();
        for i in orphans.into_iter().rev() {
            self.text.lines.remove(i);
        }
        self.text.drop_block_if_empty(BEGIN_MARKER, END_MARKER);
    }

    /// Removes the line at `i`, with its position comment when it has one.
    fn remove_at(&mut self, i: usize) {
        let in_block = self.block().is_some_and(|(b, e)| i > b && i < e);
        self.text.lines.remove(i);
        if in_block && i > 0 && self.text.lines[i - 1].starts_with(POSITION_PREFIX) {
            self.text.lines.remove(i - 1);
        }
    }

    fn ensure_block(&mut self) -> (usize, usize) {
        if let Some(b) = self.block() {
            return b;
        }
        self.text.insert_block(0, BEGIN_MARKER, END_MARKER)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comment_line_is_never_an_entry_however_many_colons() {
        assert_eq!(Entry::parse("# host:5432:db:user:secret"), None);
        assert_eq!(Entry::parse(""), None);
        assert!(Entry::parse("host:5432:db:user:secret").is_some());
    }

    #[test]
    fn only_a_socket_directory_counts_as_localhost() {
        let e = |h: &str| Entry::parse(&format!("{h}:*:*:*:pw")).unwrap();
        assert!(e("localhost").matches("/var/run/postgresql", "5432", "d", "u"));
        assert!(!e("localhost").matches("db.example", "5432", "d", "u"));
        assert!(!e("other").matches("/var/run/postgresql", "5432", "d", "u"));
        assert!(e("db.example").matches("db.example", "5432", "d", "u"));
    }

    #[test]
    fn a_trailing_backslash_is_part_of_the_password() {
        assert_eq!(
            libpq_lookup(b"*:*:*:u:pw\\\n", "h", "1", "d", "u").as_deref(),
            Some(&b"pw\\"[..])
        );
        assert_eq!(
            libpq_lookup(b"*:*:*:u:pw\\", "h", "1", "d", "u").as_deref(),
            Some(&b"pw\\"[..])
        );
    }

    #[test]
    fn libpq_reads_what_the_provider_writes() {
        for (fields, password) in [
            (["h", "5432", "db", "u"], "plain"),
            (["#h", "*", "d:b", "u\\"], "p:a\\ss#word"),
            (["*", "*", "*", "\u{e9}\u{1f4a5}"], ":\\"),
            (["h", "1", "db", "u"], " lead and trail "),
        ] {
            let e = Entry {
                hostname: fields[0].into(),
                port: fields[1].into(),
                database: fields[2].into(),
                username: fields[3].into(),
                password: password.into(),
            };
            assert!(e.reads_back(), "{:?} -> {}", e.key(), e.render());
        }
        // What the field checks refuse would not read back either.
        for (user, password) in [("u", "a\0b"), ("u", "two\nlines"), ("u\nv", "p")] {
            let e = Entry {
                username: user.into(),
                password: password.into(),
                ..entry_of(["h", "1", "db", "u"])
            };
            assert!(!e.reads_back(), "{:?} reads back", e.render());
        }
    }

    fn entry_of(fields: [&str; 4]) -> Entry {
        Entry {
            hostname: fields[0].into(),
            port: fields[1].into(),
            database: fields[2].into(),
            username: fields[3].into(),
            password: String::new(),
        }
    }

    #[test]
    fn libpq_cuts_at_nul_and_skips_hash_lines() {
        let file = b"h:1:d:u:pw\0rest\nh:1:d:v:second\n";
        // the NUL ends line one; line two is joined on after it
        assert_eq!(
            libpq_lookup(file, "h", "1", "d", "u"),
            Some(b"pwh".to_vec())
        );
        assert_eq!(libpq_lookup(file, "h", "1", "d", "v"), None);
        assert_eq!(libpq_lookup(b"#h:1:d:u:x\n", "#h", "1", "d", "u"), None);
        assert_eq!(
            libpq_lookup(b"\\#h:1:d:u:x\r\n", "#h", "1", "d", "u"),
            Some(b"x".to_vec())
        );
        assert!(
            check_field("a\0b").is_err()
                && check_field("a\rb").is_err()
                && check_field("a:b\\").is_ok()
        );
    }
    use proptest::prelude::*;

    /// A field as a user may write it: one line, not empty.
    fn field() -> impl Strategy<Value = String> {
        "[^\\n\\r]{1,12}"
    }

    fn any_entry() -> impl Strategy<Value = Entry> {
        (field(), field(), field(), field(), field()).prop_map(|(h, p, d, u, pw)| Entry {
            hostname: h,
            port: p,
            database: d,
            username: u,
            password: pw,
        })
    }

    proptest! {
        #[test]
        fn any_text_parses_and_renders_back_byte_for_byte(text in ".*(\\n.*){0,6}") {
            prop_assert_eq!(PassFile::parse(&text).render(), text.clone());
            for line in text.lines() {
                let _ = Entry::parse(line);
            }
        }

        #[test]
        fn entries_round_trip_through_their_line(e in any_entry()) {
            prop_assert_eq!(Entry::parse(&e.render()), Some(e));
        }

        #[test]
        fn managing_an_entry_and_removing_it_gives_the_file_back(
            text in "([^\\n]{0,20}\\n){0,6}",
            e in any_entry(),
            position in -5i64..5,
        ) {
            let original = PassFile::parse(&text);
            prop_assume!(original.find(&e.key()).is_none() && !text.contains("terraform-provider-timescaledb"));
            let mut f = original.clone();
            f.upsert(&e, position);
            let found = PassFile::parse(&f.render()).find(&e.key());
            prop_assert_eq!(found.map(|x| (x.entry, x.position)), Some((e.clone(), Some(position))));
            prop_assert!(f.remove(&e.key()));
            prop_assert_eq!(f.render(), text);
        }
    }

    fn entry(user: &str, password: &str) -> Entry {
        Entry {
            hostname: "*".into(),
            port: "*".into(),
            database: "*".into(),
            username: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn managed_entries_go_first_in_position_order_and_the_rest_is_kept() {
        let original = "# mine\nhost1:5432:db:alice:secret\r\nno final newline";
        let mut f = PassFile::parse(original);
        f.upsert(&entry("testrole", "b"), 20);
        f.upsert(&entry("postgres", "a"), 10);
        f.upsert(&entry("zed", "c"), 30);
        let users: Vec<(String, Option<i64>)> = f
            .entries()
            .into_iter()
            .map(|x| (x.entry.username, x.position))
            .collect();
        assert_eq!(
            users,
            [
                ("postgres".to_string(), Some(10)),
                ("testrole".to_string(), Some(20)),
                ("zed".to_string(), Some(30)),
                ("alice".to_string(), None),
            ]
        );
        assert_eq!(
            lookup(&f.render(), "h", "1", "d", "testrole").as_deref(),
            Some("b")
        );
        // moving, changing and removing everything gives the file back
        f.upsert(&entry("postgres", "a2"), 40);
        let again = PassFile::parse(&f.render());
        assert_eq!(again, f);
        let found = again.find(&entry("postgres", "").key()).unwrap();
        assert_eq!(
            (found.position, found.entry.password.as_str()),
            (Some(40), "a2")
        );
        for u in ["postgres", "testrole", "zed"] {
            assert!(f.remove(&entry(u, "").key()));
        }
        assert!(!f.remove(&entry("zed", "").key()));
        assert_eq!(f.render(), original);
    }

    #[test]
    fn entries_of_equal_position_stay_in_the_order_they_were_written() {
        let mut f = PassFile::parse("");
        for u in ["first", "second", "third"] {
            f.upsert(&entry(u, "p"), 5);
        }
        let users: Vec<String> = f.entries().into_iter().map(|x| x.entry.username).collect();
        assert_eq!(users, ["first", "second", "third"]);
    }

    #[test]
    fn removing_an_adopted_entry_keeps_a_comment_above_it_that_looks_like_a_position() {
        let managed = entry("managed", "m");
        let adopted = entry("alice", "a");
        let lines = |f: &PassFile| f.render().lines().map(str::to_string).collect::<Vec<_>>();
        // The adopted line after the managed block, and before it.
        for block_first in [true, false] {
            let mut f = PassFile::parse("");
            f.upsert(&managed, 1);
            let block = f.render();
            let theirs = format!("{POSITION_PREFIX}7\n{}\n", adopted.render());
            let text = if block_first {
                format!("{block}{theirs}")
            } else {
                format!("{theirs}{block}")
            };
            let mut f = PassFile::parse(&text);
            assert_eq!(f.find(&adopted.key()).unwrap().position, None);
            assert!(f.remove(&adopted.key()));
            let kept = lines(&f);
            assert!(
                kept.iter().any(|l| *l == format!("{POSITION_PREFIX}7")),
                "block first: {block_first}: {kept:?}"
            );
            assert_eq!(f.find(&managed.key()).unwrap().position, Some(1));
        }
    }

    #[test]
    fn removing_a_managed_entry_leaves_the_others_their_positions() {
        let mut f = PassFile::parse("");
        for (u, p) in [("a", 10), ("b", 20), ("c", 30)] {
            f.upsert(&entry(u, "p"), p);
        }
        assert!(f.remove(&entry("a", "").key()));
        let left: Vec<(String, Option<i64>)> = f
            .entries()
            .into_iter()
            .map(|x| (x.entry.username, x.position))
            .collect();
        assert_eq!(
            left,
            [("b".to_string(), Some(20)), ("c".to_string(), Some(30))]
        );
    }

    #[test]
    fn an_existing_line_is_adopted_in_place() {
        let mut f = PassFile::parse("a:1:b:postgres:old\n*:*:*:postgres:other\n");
        let mut e = entry("postgres", "new");
        e.hostname = "a".into();
        e.port = "1".into();
        e.database = "b".into();
        f.upsert(&e, 100);
        assert_eq!(f.render(), "a:1:b:postgres:new\n*:*:*:postgres:other\n");
        assert_eq!(f.find(&e.key()).unwrap().position, None);
    }

    #[test]
    fn position_comments_left_by_a_hand_edit_are_cleaned_up() {
        let mut f = PassFile::parse("");
        f.upsert(&entry("a", "1"), 1);
        f.upsert(&entry("b", "2"), 2);
        let hand_edited: String = f
            .render()
            .lines()
            .filter(|l| !l.ends_with(":a:1"))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut g = PassFile::parse(&hand_edited);
        g.upsert(&entry("a", "1"), 1);
        assert_eq!(g, f);
        assert!(g.remove(&entry("a", "").key()) && g.remove(&entry("b", "").key()));
        assert_eq!(g.render(), "");
    }

    #[test]
    fn empty_file() {
        let mut f = PassFile::parse("");
        f.upsert(&entry("u", "p:w"), 1);
        assert_eq!(
            f.render(),
            format!("{BEGIN_MARKER}\n# position 1\n*:*:*:u:p\\:w\n{END_MARKER}\n")
        );
        assert!(f.remove(&entry("u", "").key()));
        assert_eq!(f.render(), "");
    }

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
