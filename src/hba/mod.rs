//! pg_hba.conf as data: parse, normalise, render and edit, with no I/O.
//!
//! The file is kept as its original lines so that everything the provider
//! does not manage survives byte for byte. Managed rules live in a block
//! delimited by two marker comments, placed before the first rule of the
//! file so that they take precedence; inside the block each rule carries its
//! `position` as a short `(N)` prefix of its trailing comment, which keeps
//! the order stable across edits and lets drift in order be read back.

mod address;
mod eval;
pub mod reader;
mod rule;
pub mod verify;

pub use address::{check_address, normalize_address, AddressFault};
pub use eval::{first_match, ClientInfo, Credentials, LockoutCheck};
pub use rule::{Field, Rule, RuleKey, CONNECTION_TYPES, METHODS};

use crate::lines::Lines;

/// First line of the managed block.
pub const BEGIN_MARKER: &str =
    "# BEGIN terraform-provider-timescaledb managed rules: change them with Terraform";
/// Last line of the managed block.
pub const END_MARKER: &str = "# END terraform-provider-timescaledb managed rules";

/// A rule found in the file, with where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub rule: Rule,
    /// Index of the (first) line in the file.
    pub line_index: usize,
    /// How many lines of the file the record spans (more than one when a
    /// line ends in a backslash).
    pub span: usize,
    /// Present when the rule is inside the managed block.
    pub position: Option<i64>,
    /// The line exactly as it is in the file.
    pub text: String,
}

/// A pg_hba.conf file.
#[derive(Clone, Debug, PartialEq)]
pub struct HbaFile {
    text: Lines,
}

impl HbaFile {
    pub fn parse(text: &str) -> HbaFile {
        HbaFile {
            text: Lines::parse(text),
        }
    }

    pub fn render(&self) -> String {
        self.text.render()
    }

    fn block(&self) -> Option<(usize, usize)> {
        self.text.block(BEGIN_MARKER, END_MARKER)
    }

    /// Every rule in the file, in order, as the server reads the file
    /// ([`reader`]), skipping records that do not parse (the server reports
    /// those itself).
    pub fn rules(&self) -> Vec<Found> {
        let block = self.block();
        let mut out = Vec::new();
        for record in reader::records(self.render().as_bytes()) {
            let Ok(Some(mut rule)) = Rule::from_record(&record) else {
                continue;
            };
            let i = record.first_line;
            let in_block = block.is_some_and(|(b, e)| i > b && i < e);
            let mut position = None;
            if in_block {
                let (pos, comment) = split_position(rule.comment.as_deref());
                position = pos;
                rule.comment = comment;
            }
            out.push(Found {
                rule,
                line_index: i,
                span: record.span,
                position,
                text: self.text.lines.get(i).cloned().unwrap_or_default(),
            });
        }
        out
    }

    /// The first rule with this match key; rules inside the managed block
    /// are preferred.
    pub fn find(&self, key: &RuleKey) -> Option<Found> {
        let all = self.rules();
        let mut matching = all.into_iter().filter(|f| &f.rule.key() == key);
        let first = matching.next()?;
        if first.position.is_some() {
            return Some(first);
        }
        Some(matching.find(|f| f.position.is_some()).unwrap_or(first))
    }

    /// Puts `rule` in the file. A rule with the same key outside the managed
    /// block (one adopted by import) is rewritten where it stands; otherwise
    /// the rule goes into the managed block, ordered by `position`.
    pub fn upsert(&mut self, rule: &Rule, position: i64) {
        if let Some(found) = self.find(&rule.key()) {
            let lines = found.line_index..found.line_index + found.span;
            if found.position.is_none() {
                self.text.lines.splice(lines, [rule.render()]);
                return;
            }
            self.text.lines.drain(lines);
        }
        self.place(rule, position);
    }

    /// Puts `rule` in the managed block, ordered by `position`, as a newly
    /// created rule goes: a line with the same key outside the block is
    /// left exactly as it is (the managed rule comes first, so it is the one
    /// in force; removing the managed rule puts that line back in force).
    pub fn add(&mut self, rule: &Rule, position: i64) {
        if let Some(found) = self.find(&rule.key()).filter(|f| f.position.is_some()) {
            self.text
                .lines
                .drain(found.line_index..found.line_index + found.span);
        }
        self.place(rule, position);
    }

    fn place(&mut self, rule: &Rule, position: i64) {
        let (begin, end) = self.ensure_block();
        let mut insert_at = end;
        for i in begin + 1..end {
            if let Ok(Some(r)) = Rule::parse_line(&self.text.lines[i]) {
                if split_position(r.comment.as_deref()).0.unwrap_or(i64::MIN) > position {
                    insert_at = i;
                    break;
                }
            }
        }
        let mut placed = rule.clone();
        placed.comment = Some(match &rule.comment {
            Some(c) if !c.is_empty() => format!("({position}) {c}"),
            _ => format!("({position})"),
        });
        self.text.lines.insert(insert_at, placed.render());
    }

    /// Removes the rule with this key; returns whether one was there. An
    /// emptied managed block is removed too, so the file returns to what it
    /// was before the provider touched it.
    pub fn remove(&mut self, key: &RuleKey) -> bool {
        let Some(found) = self.find(key) else {
            return false;
        };
        self.text
            .lines
            .drain(found.line_index..found.line_index + found.span);
        self.text.drop_block_if_empty(BEGIN_MARKER, END_MARKER);
        true
    }

    /// The rules outside the managed block, in order.
    pub fn unmanaged(&self) -> Vec<Found> {
        self.rules()
            .into_iter()
            .filter(|f| f.position.is_none())
            .collect()
    }

    /// Removes every rule outside the managed block that `keep` does not
    /// keep; comments and blank lines stay. Returns the rules removed.
    pub fn retain_unmanaged(&mut self, keep: impl Fn(&Found) -> bool) -> Vec<Found> {
        let gone: Vec<Found> = self.unmanaged().into_iter().filter(|f| !keep(f)).collect();
        for f in gone.iter().rev() {
            self.text.lines.drain(f.line_index..f.line_index + f.span);
        }
        gone
    }

    fn ensure_block(&mut self) -> (usize, usize) {
        if let Some(b) = self.block() {
            return b;
        }
        let at = self
            .text
            .lines
            .iter()
            .position(|l| matches!(Rule::parse_line(l), Ok(Some(_)) | Err(_)))
            .unwrap_or(self.text.lines.len());
        self.text.insert_block(at, BEGIN_MARKER, END_MARKER)
    }
}

/// Splits a managed rule's comment `(N) text` into position and text.
fn split_position(comment: Option<&str>) -> (Option<i64>, Option<String>) {
    let Some(c) = comment else {
        return (None, None);
    };
    if let Some(rest) = c.strip_prefix('(') {
        if let Some((num, tail)) = rest.split_once(')') {
            if let Ok(n) = num.parse::<i64>() {
                let tail = tail.strip_prefix(' ').unwrap_or(tail);
                return (
                    Some(n),
                    if tail.is_empty() {
                        None
                    } else {
                        Some(tail.to_string())
                    },
                );
            }
        }
    }
    (None, Some(c.to_string()))
}

#[cfg(test)]
mod whole_file_tests {
    use super::*;

    #[test]
    fn only_the_rules_kept_and_the_managed_block_stay() {
        let mut f = HbaFile::parse(
            "# comment\nlocal all all trust\nhost all all 0.0.0.0/0 \\\n  trust\nhost all postgres 127.0.0.1/32 trust\n",
        );
        let managed = Rule::parse_line("host all app 10.0.0.1/32 scram-sha-256")
            .unwrap()
            .unwrap();
        f.add(&managed, 1);
        assert_eq!(f.unmanaged().len(), 3);
        let keep = Rule::parse_line("host all postgres 127.0.0.1/32 trust")
            .unwrap()
            .unwrap()
            .key();
        let gone = f.retain_unmanaged(|x| x.rule.key() == keep);
        assert_eq!(gone.len(), 2);
        let text = f.render();
        assert!(text.starts_with("# comment\n"), "{text}");
        assert!(
            !text.contains("0.0.0.0/0") && !text.contains("local all all"),
            "{text}"
        );
        assert!(text.contains("host all postgres 127.0.0.1/32 trust"));
        assert!(f
            .find(&managed.key())
            .is_some_and(|x| x.position == Some(1)));
        assert_eq!(f.unmanaged().len(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("all".to_string()),
            "[a-z_][a-z0-9_]{0,8}",
            "[A-Za-z0-9_][A-Za-z0-9_ ,.'#-]{0,10}",
        ]
    }

    fn any_rule() -> impl Strategy<Value = (Rule, i64)> {
        (
            prop::sample::select(vec!["local", "host", "hostssl", "hostnossl"]),
            prop::collection::vec(name(), 1..3),
            prop::collection::vec(name(), 1..3),
            (0u8..=255, 0u8..=255, 0u8..=32),
            prop::sample::select(vec!["trust", "reject", "scram-sha-256", "md5", "password"]),
            prop::option::of("[A-Za-z0-9 ,.#'\"-]{1,20}"),
            -1000i64..1000,
        )
            .prop_map(|(t, dbs, users, (a, b, bits), method, comment, position)| {
                let address = (t != "local").then(|| {
                    let ip = std::net::Ipv4Addr::new(192, 0, a, b);
                    let masked =
                        u32::from(ip) & u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                    format!("{}/{bits}", std::net::Ipv4Addr::from(masked))
                });
                let rule = Rule {
                    conn_type: t.to_string(),
                    databases: dbs,
                    users,
                    address,
                    method: method.to_string(),
                    options: Default::default(),
                    comment: comment
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty() && !c.starts_with('(')),
                };
                (rule, position)
            })
    }

    proptest! {
        #[test]
        fn any_text_parses_without_panic_and_renders_back(text in ".*(\\n.*){0,6}") {
            let f = HbaFile::parse(&text);
            prop_assert_eq!(f.render(), text.clone());
            let _ = f.rules();
            for line in text.lines() {
                let _ = Rule::parse_line(line);
            }
        }

        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let text = String::from_utf8_lossy(&bytes);
            let f = HbaFile::parse(&text);
            let _ = f.rules();
            prop_assert_eq!(f.render(), text.into_owned());
        }

        #[test]
        fn rules_round_trip_and_unmanaged_content_survives(
            (rule, position) in any_rule(),
            text in "([^\\n]{0,30}\\n){0,6}",
        ) {
            prop_assume!(rule.check_field().is_ok());
            let parsed = Rule::parse_line(&rule.render()).ok().flatten();
            prop_assert_eq!(parsed.as_ref(), Some(&rule));
            let original = HbaFile::parse(&text);
            prop_assume!(original.find(&rule.key()).is_none() && !text.contains("terraform-provider-timescaledb"));
            let mut f = original.clone();
            f.upsert(&rule, position);
            let found = HbaFile::parse(&f.render()).find(&rule.key());
            prop_assert_eq!(found.map(|x| (x.rule, x.position)), Some((rule.clone(), Some(position))));
            prop_assert!(f.remove(&rule.key()));
            prop_assert_eq!(f.render(), text);
        }
    }

    fn hostile_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "all",
                "\"all\"",
                "replication",
                "\"samerole\"",
                "+g",
                "\"+g\""
            ])
            .prop_map(str::to_string),
            "[a-zA-Z0-9 \"\\\\#,'+@/=\t\u{e9}\u{a0}]{1,12}",
            "\\+[a-z \",#]{1,8}",
        ]
    }

    proptest! {
        #[test]
        fn import_ids_round_trip_for_every_accepted_name(
            dbs in prop::collection::vec(hostile_name(), 1..4),
            users in prop::collection::vec(hostile_name(), 1..4),
            local in any::<bool>(),
        ) {
            let rule = Rule {
                conn_type: if local { "local" } else { "host" }.into(),
                databases: dbs,
                users,
                address: (!local).then(|| "10.0.0.0/8".to_string()),
                method: "trust".into(),
                options: Default::default(),
                comment: None,
            };
            prop_assume!(rule.check().is_ok());
            let back = Rule::parse_key_fields(&rule.render_key_fields());
            prop_assert_eq!(
                back.map(|b| (b.conn_type, b.databases, b.users, b.address)),
                Ok((rule.conn_type.clone(), rule.databases.clone(), rule.users.clone(), rule.address.clone())),
                "{}", rule.render_key_fields()
            );
        }
    }

    const DEFAULT: &str = "# PostgreSQL Client Authentication Configuration File\n\
# TYPE  DATABASE        USER            ADDRESS                 METHOD\n\
\n\
# \"local\" is for Unix domain socket connections only\n\
local   all             all                                     trust\n\
host    all             all             127.0.0.1/32            trust\n\
host    all             all             ::1/128                 trust\n";

    fn rule(addr: &str, method: &str) -> Rule {
        Rule::new("host", &["all"], &["all"], Some(addr), method).unwrap()
    }

    proptest! {
        #[test]
        fn a_created_rule_never_touches_an_unmanaged_line_with_its_key(
            (rule, position) in any_rule(),
            before in "([^\n]{0,30}\n){0,4}",
            after in "([^\n]{0,30}\n){0,4}",
        ) {
            prop_assume!(rule.check_field().is_ok() && !before.contains("terraform-provider") && !after.contains("terraform-provider"));
            let mut existing = rule.clone();
            existing.comment = Some("the operator's own".into());
            let text = format!("{before}{}\n{after}", existing.render());
            let mut f = HbaFile::parse(&text);
            f.add(&rule, position);
            let found = HbaFile::parse(&f.render()).find(&rule.key());
            prop_assert_eq!(found.map(|x| (x.rule, x.position)), Some((rule.clone(), Some(position))));
            prop_assert!(f.render().contains(&existing.render()), "the operator's line stays");
            prop_assert!(f.remove(&rule.key()));
            prop_assert_eq!(f.render(), text);
        }
    }

    #[test]
    fn managed_block_goes_before_the_first_rule_and_keeps_everything_else() {
        let mut f = HbaFile::parse(DEFAULT);
        f.upsert(&rule("192.0.2.20/32", "trust"), 100);
        let text = f.render();
        let expected = DEFAULT.replacen(
            "local   all",
            &format!("{BEGIN_MARKER}\nhost all all 192.0.2.20/32 trust # (100)\n{END_MARKER}\nlocal   all"),
            1,
        );
        assert_eq!(text, expected);
        assert!(f.remove(&rule("192.0.2.20/32", "trust").key()));
        assert_eq!(
            f.render(),
            DEFAULT,
            "destroy restores the file byte for byte"
        );
    }

    /// The addresses of the managed rules, in file order.
    fn managed_addresses(f: &HbaFile) -> Vec<String> {
        f.rules()
            .into_iter()
            .filter(|r| r.position.is_some())
            .map(|r| r.rule.address.unwrap())
            .collect()
    }

    #[test]
    fn positions_order_rules_inside_the_block() {
        let mut f = HbaFile::parse(DEFAULT);
        f.upsert(&rule("10.0.0.3/32", "trust"), 30);
        f.upsert(&rule("10.0.0.1/32", "trust"), 10);
        f.upsert(&rule("10.0.0.2/32", "trust"), 20);
        let managed = managed_addresses(&f);
        assert_eq!(managed, ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"]);
        // moving a rule re-sorts it
        f.upsert(&rule("10.0.0.1/32", "reject"), 40);
        let found = f.find(&rule("10.0.0.1/32", "trust").key()).unwrap();
        assert_eq!(
            (found.position, found.rule.method.as_str()),
            (Some(40), "reject")
        );
        assert_eq!(
            f.rules()
                .iter()
                .rfind(|r| r.position.is_some())
                .unwrap()
                .rule
                .method,
            "reject"
        );
    }

    #[test]
    fn adopted_rules_are_rewritten_in_place() {
        let mut f = HbaFile::parse(DEFAULT);
        f.upsert(&rule("127.0.0.1/32", "scram-sha-256"), 100);
        let text = f.render();
        assert!(!text.contains(BEGIN_MARKER));
        assert!(text.contains("local   all             all                                     trust\nhost all all 127.0.0.1/32 scram-sha-256\n"));
    }

    #[test]
    fn comments_and_positions_round_trip() {
        let mut f = HbaFile::parse(DEFAULT);
        let mut r = rule("192.0.2.0/24", "md5");
        r.comment = Some("access (node) #1".into());
        f.upsert(&r, 5);
        let again = HbaFile::parse(&f.render());
        let found = again.find(&r.key()).unwrap();
        assert_eq!(found.position, Some(5));
        assert_eq!(found.rule, r);
    }

    #[test]
    fn a_position_is_read_only_inside_the_managed_block() {
        // An operator's line outside the block whose comment looks like a
        // position is not a managed rule.
        let mut f = HbaFile::parse(&format!(
            "{DEFAULT}host all all 10.9.9.9/32 trust # (5) by hand\n"
        ));
        f.upsert(&rule("10.0.0.1/32", "trust"), 1);
        let outside = f.find(&rule("10.9.9.9/32", "trust").key()).unwrap();
        assert_eq!(outside.position, None);
        assert_eq!(outside.rule.comment.as_deref(), Some("(5) by hand"));
    }

    #[test]
    fn adding_a_managed_rule_again_moves_it_and_leaves_one() {
        let mut f = HbaFile::parse(DEFAULT);
        f.add(&rule("10.0.0.1/32", "trust"), 10);
        f.add(&rule("10.0.0.2/32", "trust"), 20);
        f.add(&rule("10.0.0.1/32", "reject"), 30);
        let managed: Vec<(String, Option<i64>)> = f
            .rules()
            .into_iter()
            .filter(|r| r.position.is_some())
            .map(|r| (r.rule.address.unwrap(), r.position))
            .collect();
        assert_eq!(
            managed,
            [
                ("10.0.0.2/32".to_string(), Some(20)),
                ("10.0.0.1/32".to_string(), Some(30))
            ]
        );
    }

    #[test]
    fn rules_of_equal_position_keep_the_order_they_came_in() {
        let mut f = HbaFile::parse(DEFAULT);
        for last in 1..=3 {
            f.add(&rule(&format!("10.0.0.{last}/32"), "trust"), 7);
        }
        let managed = managed_addresses(&f);
        assert_eq!(managed, ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"]);
    }

    #[test]
    fn an_empty_comment_writes_the_position_alone() {
        let mut f = HbaFile::parse("");
        let mut r = rule("10.0.0.1/32", "trust");
        r.comment = Some(String::new());
        f.add(&r, 3);
        assert!(
            f.render()
                .contains("host all all 10.0.0.1/32 trust # (3)\n"),
            "{}",
            f.render()
        );
    }

    #[test]
    fn empty_and_unterminated_files() {
        let mut f = HbaFile::parse("");
        f.upsert(&rule("10.0.0.1/32", "trust"), 1);
        assert_eq!(
            f.render(),
            format!("{BEGIN_MARKER}\nhost all all 10.0.0.1/32 trust # (1)\n{END_MARKER}\n")
        );
        let g = HbaFile::parse("local all all trust");
        assert_eq!(g.render(), "local all all trust");
    }
}
