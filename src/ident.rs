//! pg_ident.conf as data: parse, render and edit, with no I/O.
//!
//! The server reads pg_ident.conf with the same reader as pg_hba.conf
//! ([`crate::hba::reader`]): a mapping is three fields, the map's name, the
//! system user name (a regular expression when it starts with `/`) and the
//! database user name (where `\1` stands for the regular expression's first
//! group). The file is kept as its lines, so everything the provider does
//! not manage survives byte for byte; managed mappings live in a block
//! between two marker comments.

use crate::hba::reader::{self, MAX_TOKEN_BYTES};
use crate::lines::Lines;

/// First line of the managed block.
pub const BEGIN_MARKER: &str =
    "# BEGIN terraform-provider-timescaledb managed mappings: change them with Terraform";
/// Last line of the managed block.
pub const END_MARKER: &str = "# END terraform-provider-timescaledb managed mappings";

/// One mapping: which system user may log in as which database user under
/// the map's name. All three fields identify it: a map may give one system
/// user several database users, and any of them is allowed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mapping {
    pub map: String,
    pub system_user: String,
    pub database_user: String,
}

/// Which field of a mapping a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Map,
    SystemUser,
    DatabaseUser,
}

impl Mapping {
    /// Whether the system user is a regular expression.
    pub fn is_regex(&self) -> bool {
        self.system_user.starts_with('/')
    }

    /// The line the provider writes.
    pub fn render(&self) -> String {
        format!(
            "{} {} {}",
            render_name(&self.map),
            self.render_system_user(),
            render_database_user(&self.database_user)
        )
    }

    /// A regular expression stands unquoted (quotes make it a name in
    /// PostgreSQL 16); a name is quoted where it must be.
    fn render_system_user(&self) -> String {
        if self.is_regex() {
            self.system_user.clone()
        } else {
            render_name(&self.system_user)
        }
    }

    /// Checks that the server reads the mapping back exactly as meant; the
    /// error names the field at fault.
    pub fn check(&self) -> Result<(), (Field, String)> {
        for (field, what, v) in [
            (Field::Map, "map name", &self.map),
            (Field::SystemUser, "system user name", &self.system_user),
            (
                Field::DatabaseUser,
                "database user name",
                &self.database_user,
            ),
        ] {
            check_text(what, v).map_err(|m| (field, m))?;
        }
        if self.is_regex() {
            let re = &self.system_user;
            if re.len() < 2 || re.contains([' ', '\t', ',', '#', '"']) || re.ends_with('\\') {
                return Err((
                    Field::SystemUser,
                    format!(
                        "the regular expression {re:?} is empty or holds blanks, commas, `#`, double quotes or a final \
                         backslash: it must be written without quotes, where those end or join the field"
                    ),
                ));
            }
        }
        for (field, token) in [
            (Field::Map, render_name(&self.map)),
            (Field::SystemUser, self.render_system_user()),
            (
                Field::DatabaseUser,
                render_database_user(&self.database_user),
            ),
        ] {
            if token.len() >= MAX_TOKEN_BYTES {
                return Err((
                    field,
                    format!(
                        "{} bytes is too long for pg_ident.conf (PostgreSQL 15 and earlier take at most {}, quotes included)",
                        token.len(),
                        MAX_TOKEN_BYTES - 1
                    ),
                ));
            }
        }
        let line = self.render();
        match reader::records(line.as_bytes()).as_slice() {
            [r] if r.error.is_none() && Mapping::from_record(r).as_ref() == Some(self) => Ok(()),
            _ => Err((
                Field::Map,
                format!("{line:?} cannot be written so that PostgreSQL reads it back unchanged"),
            )),
        }
    }

    /// A mapping from a record of the reader: three single-token fields.
    pub fn from_record(r: &reader::Record) -> Option<Mapping> {
        match r.fields.as_slice() {
            [m, s, d] if m.len() == 1 && s.len() == 1 && d.len() == 1 => Some(Mapping {
                map: m[0].text.clone(),
                system_user: s[0].text.clone(),
                database_user: d[0].text.clone(),
            }),
            _ => None,
        }
    }

    /// The import ID: the node's name, then the line as written.
    pub fn id(&self, node: &str) -> String {
        format!("{node} {}", self.render())
    }

    /// A mapping from the fields of an import ID (after the node's name),
    /// written as in the file.
    pub fn parse_line(line: &str) -> Result<Mapping, String> {
        match reader::records(line.as_bytes()).as_slice() {
            [r] if r.error.is_none() => Mapping::from_record(r).ok_or_else(|| {
                format!("{line:?} is not a map name, a system user and a database user")
            }),
            [r] => Err(r.error.clone().unwrap_or_default()),
            _ => Err(format!("{line:?} is not one line of pg_ident.conf")),
        }
    }
}

/// What no field may hold: empty, or what ends or joins the server's lines.
fn check_text(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(format!("the {what} cannot be empty"));
    }
    if v.contains('\0') {
        return Err(format!(
            "the {what} cannot contain a NUL byte (PostgreSQL's line reader stops there and joins the next line on)"
        ));
    }
    if v.contains(['\n', '\r']) {
        return Err(format!(
            "the {what} cannot contain a line break or carriage return"
        ));
    }
    Ok(())
}

/// Whether a name can stand in the file without quotes, and means itself
/// there: no `@` (a file to include), `+` or `/` (a group or a regular
/// expression) in front.
fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['@', '+', '/'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-' | '.' | '@' | '\\'))
        && !s.ends_with('\\')
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

fn render_name(s: &str) -> String {
    if is_plain(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

/// A database user name, quoted too when PostgreSQL 16 would read it as a
/// keyword (`all`), so that every release reads it as the name itself.
fn render_database_user(s: &str) -> String {
    if s == "all" {
        quote(s)
    } else {
        render_name(s)
    }
}

/// A mapping found in the file, with where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub mapping: Mapping,
    /// Index of the (first) line in the file.
    pub line_index: usize,
    /// How many lines the record spans.
    pub span: usize,
    /// Whether it is inside the managed block.
    pub managed: bool,
    /// The line exactly as it is in the file.
    pub text: String,
}

/// A pg_ident.conf file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentFile {
    text: Lines,
}

impl IdentFile {
    pub fn parse(text: &str) -> IdentFile {
        IdentFile {
            text: Lines::parse(text),
        }
    }

    pub fn render(&self) -> String {
        self.text.render()
    }

    /// Every mapping in the file, in order, as the server reads the file;
    /// records the server refuses are left out (it reports those itself).
    pub fn mappings(&self) -> Vec<Found> {
        let block = self.text.block(BEGIN_MARKER, END_MARKER);
        reader::records(self.render().as_bytes())
            .iter()
            .filter(|r| r.error.is_none())
            .filter_map(|r| {
                let mapping = Mapping::from_record(r)?;
                let i = r.first_line;
                Some(Found {
                    mapping,
                    line_index: i,
                    span: r.span,
                    managed: block.is_some_and(|(b, e)| i > b && i < e),
                    text: self.text.lines.get(i).cloned().unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The mapping, preferring one in the managed block.
    pub fn find(&self, m: &Mapping) -> Option<Found> {
        let mut matching = self.mappings().into_iter().filter(|f| &f.mapping == m);
        let first = matching.next()?;
        if first.managed {
            return Some(first);
        }
        Some(matching.find(|f| f.managed).unwrap_or(first))
    }

    /// Whether any mapping of the file has this map name.
    pub fn has_map(&self, name: &str) -> bool {
        self.mappings().iter().any(|f| f.mapping.map == name)
    }

    /// Puts the mapping in the managed block (in order), unless it is there
    /// already; a line outside the block is left as it is.
    pub fn add(&mut self, m: &Mapping) {
        if self.find(m).is_some_and(|f| f.managed) {
            return;
        }
        let (begin, end) = match self.text.block(BEGIN_MARKER, END_MARKER) {
            Some(b) => b,
            None => {
                let at = self.text.lines.len();
                self.text.insert_block(at, BEGIN_MARKER, END_MARKER)
            }
        };
        let line = m.render();
        let at = (begin + 1..end)
            .find(|i| self.text.lines[*i].as_str() > line.as_str())
            .unwrap_or(end);
        self.text.lines.insert(at, line);
    }

    /// Removes the mapping (the managed one first); returns whether one was
    /// there. An emptied block goes too.
    pub fn remove(&mut self, m: &Mapping) -> bool {
        let Some(found) = self.find(m) else {
            return false;
        };
        self.text
            .lines
            .drain(found.line_index..found.line_index + found.span);
        self.text.drop_block_if_empty(BEGIN_MARKER, END_MARKER);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(map: &str, system: &str, db: &str) -> Mapping {
        Mapping {
            map: map.into(),
            system_user: system.into(),
            database_user: db.into(),
        }
    }

    #[test]
    fn mappings_are_written_as_the_server_reads_them() {
        for mapping in [
            m("certmap", "app.example.com", "app"),
            m("certmap", "/^(.*)@example\\.com$", "\\1"),
            m("with space", "a \"quoted\" name", "all"),
            m("x", "@not-a-file", "+not-a-group"),
            m("é", "ünï", "Z#z,y"),
        ] {
            mapping
                .check()
                .unwrap_or_else(|e| panic!("{mapping:?}: {e:?}"));
            let back = Mapping::parse_line(&mapping.render()).unwrap();
            assert_eq!(back, mapping);
        }
        assert_eq!(m("all", "a", "all").render(), "all a \"all\"");
        assert_eq!(m("map", "/re", "u").render(), "map /re u");
    }

    #[test]
    fn what_the_server_would_read_otherwise_is_refused_on_its_field() {
        let field = |x: Mapping| x.check().unwrap_err().0;
        assert_eq!(field(m("", "a", "b")), Field::Map);
        assert_eq!(field(m("a", "x\ny", "b")), Field::SystemUser);
        assert_eq!(field(m("a", "b", "c\0")), Field::DatabaseUser);
        assert_eq!(field(m("a", "/with space", "b")), Field::SystemUser);
        assert_eq!(field(m("a", "/ends\\", "b")), Field::SystemUser);
        assert_eq!(field(m("a", "/", "b")), Field::SystemUser);
        assert!(m("a", "b", &"n".repeat(300)).check().is_err());
    }

    #[test]
    fn the_managed_block_keeps_everything_else_byte_for_byte() {
        let original = "# pg_ident.conf\nmymap  root   postgres\r\n\n";
        let mut f = IdentFile::parse(original);
        let a = m("certmap", "app.example.com", "app");
        f.add(&a);
        f.add(&a);
        assert_eq!(f.mappings().iter().filter(|x| x.mapping == a).count(), 1);
        assert!(f.find(&a).unwrap().managed);
        assert!(f.has_map("mymap") && f.has_map("certmap") && !f.has_map("other"));
        assert!(f.remove(&a));
        assert_eq!(f.render(), original);
        assert!(!f.remove(&a));
    }
}
