//! Differential tests against PostgreSQL's own readers: values drawn from a
//! hostile alphabet are either refused by the resource's validation, or
//! written exactly as the provider writes them and then read by the real
//! server (pg_hba.conf, through `pg_hba_file_rules`) or the real libpq
//! (`psql` with `PGPASSFILE`), which must take them as meant.
//!
//! `TSDB_FUZZ_CASES` sets how many rules are drawn (`make fuzz` draws many
//! more) and `TSDB_FUZZ_SEED` the seed; every run prints both.

use std::collections::BTreeMap;
use std::process::Command;

use tsdb_provider::hba::verify::{differences, ServerRule};
use tsdb_provider::hba::{normalize_address, HbaFile, Rule};
use tsdb_provider::passfile::{Entry, PassFile};
use tsdb_provider::resources::hba_rule::HbaRule;
use tsdb_provider::resources::passfile_entry::PassfileEntry;
use tsdb_provider::resources::DynResource;
use tsdb_provider::schema::object;
use tsdb_provider::sql::{ident, literal};
use tsdb_provider::value::Value;

use crate::harness::Cluster;

/// A small deterministic generator (xorshift64*), so a failing run can be
/// repeated from its printed seed.
struct Gen(u64);

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    /// A string over the hostile alphabet.
    fn text(&mut self, max: usize) -> String {
        let n = self.below(max + 1);
        let mut s: String = (0..n).map(|_| *self.pick(HOSTILE)).collect();
        if self.chance(6) {
            let at = self.below(s.chars().count() + 1);
            s.insert(
                s.char_indices().nth(at).map_or(s.len(), |(i, _)| i),
                *self.pick(LINE_BREAKING),
            );
        }
        s
    }
}

/// Characters any of the readers gives a meaning: quotes, backslash,
/// comment and list separators, every kind of white space (only space, tab
/// and CR separate fields for the server), line ends, NUL, the `+` / `@` /
/// `/` prefixes, the passfile's `:` and `*`, and multi-byte UTF-8.
const HOSTILE: &[char] = &[
    'a', 'b', 'Z', '0', '_', '-', '.', '$', ' ', '\t', '"', '\\', '#', ',', '\'', '=', '*', ':',
    '+', '@', '/', '(', ')', 'é', 'ß', '💥', '\u{a0}', '\u{2003}', '\u{b}', '\u{c}',
];

/// What ends or joins lines for every reader; drawn into a few strings.
const LINE_BREAKING: &[char] = &['\0', '\r', '\n'];

const KEYWORDS: &[&str] = &["all", "sameuser", "samerole", "samegroup", "replication"];

fn seed() -> u64 {
    std::env::var("TSDB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

fn cases(default: usize) -> usize {
    std::env::var("TSDB_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A database or user item as a user might write it.
fn item(g: &mut Gen) -> String {
    match g.below(10) {
        0 => g.pick(KEYWORDS).to_string(),
        1 => format!("\"{}\"", g.pick(KEYWORDS)),
        2 => format!("{}{}", g.pick(&["+", "@", "/", "\"+", "\"@"]), g.text(6))
            .replace("\"+", "\"+x\"")
            .replace("\"@", "\"@y\""),
        3 => "n".repeat(230 + g.below(40)),
        4 => format!("\"all{}\"", "q".repeat(230 + g.below(40))).replace("\"all", "\"+"),
        _ => format!(
            "{}{}",
            g.pick(&["a", "Z", "\"", "\\", "#", " ", "é", ","]),
            g.text(11)
        ),
    }
}

fn hba_config(g: &mut Gen) -> Value {
    let conn_type = *g.pick(&["local", "host", "hostnossl", "host"]);
    let list = |g: &mut Gen| {
        let n = 1 + g.below(3);
        let mut v: Vec<Value> = (0..n).map(|_| Value::string(item(g))).collect();
        if g.chance(2) {
            v.push(Value::Null);
        }
        Value::List(v)
    };
    let databases = list(g);
    let users = list(g);
    let address = (conn_type != "local").then(|| {
        g.pick(&[
            "127.0.0.1/32",
            "10.0.0.0/8",
            "all",
            "samehost",
            "samenet",
            "db.example.com",
            "2001:db8::/32",
            "::1/128",
        ])
        .to_string()
    });
    let (method, option) = match g.below(6) {
        0 if conn_type == "local" => ("peer", Some("map")),
        0 => ("ident", Some("map")),
        1 => ("pam", Some("pamservice")),
        2 => ("md5", None),
        3 => ("reject", None),
        4 => ("trust", None),
        _ => ("scram-sha-256", None),
    };
    let options = match option {
        Some(name) if g.chance(80) => Value::map_of_strings([(name, g.text(14))]),
        _ => Value::Null,
    };
    let comment = if g.chance(70) {
        let mut c = g.text(20);
        if g.chance(15) {
            c.push('\\');
        }
        Value::string(c)
    } else {
        Value::Null
    };
    let mut v = object(
        HbaRule
            .schema()
            .attributes
            .iter()
            .map(|a| (a.name, Value::Null)),
    );
    v.set_attr("type", Value::string(conn_type));
    v.set_attr("databases", databases);
    v.set_attr("users", users);
    v.set_attr("address", Value::opt_string(address));
    v.set_attr("method", Value::string(method));
    v.set_attr("options", options);
    v.set_attr("comment", comment);
    v
}

/// The rule a configuration that passed validation stands for.
fn rule_of(v: &Value) -> Rule {
    let strings = |name: &str| match v.attr(name) {
        Value::List(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    Rule {
        conn_type: v.attr("type").as_str().unwrap().to_string(),
        databases: strings("databases"),
        users: strings("users"),
        address: v
            .attr("address")
            .as_str()
            .map(|a| normalize_address(a, None).unwrap()),
        method: v.attr("method").as_str().unwrap().to_string(),
        options: match v.attr("options") {
            Value::Map(m) => m
                .iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_string()))
                .collect(),
            _ => BTreeMap::new(),
        },
        comment: v
            .attr("comment")
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(port: u16) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
}

/// Text of a database or user item as the server keeps it.
fn server_text(item: &str) -> String {
    match item.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) if item.len() >= 2 => inner.to_string(),
        _ => item.to_string(),
    }
}

/// Rules drawn per file written: one file of many rules per round keeps
/// the server's work to one parse per round.
const ROUND: usize = 1200;

#[test]
fn hba_rules_are_read_by_postgresql_exactly_as_the_provider_reads_them() {
    let seed = seed();
    let n = cases(ROUND);
    let c = Cluster::start(0);
    let mut g = Gen::new(seed);
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut written = 0;
    let rt = runtime();
    let client = rt.block_on(connect(c.port("access")));
    for round in 0..n.div_ceil(ROUND) {
        let drawn = ROUND.min(n - round * ROUND);
        let accepted = hba_round(&c, &rt, &client, &mut g, drawn, &mut refused, seed);
        written += accepted;
    }
    println!(
        "pg_hba.conf differential: seed {seed}, {n} drawn, {written} written, refused: {refused:?}"
    );
    assert!(written * 4 >= n, "too few cases written: {written}");
    assert!(refused.values().sum::<usize>() * 20 >= n, "too few refused");
}

/// Draws `drawn` rules, writes those validation accepts as the provider
/// would, and compares with what the server reads; returns how many were
/// written.
fn hba_round(
    c: &Cluster,
    rt: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    g: &mut Gen,
    drawn: usize,
    refused: &mut BTreeMap<String, usize>,
    seed: u64,
) -> usize {
    let base = "local all all trust\nhost all all 127.0.0.1/32 trust\n";
    let mut file = HbaFile::parse(base);
    let mut accepted: Vec<Rule> = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for i in 0..drawn {
        let config = hba_config(g);
        let diags = HbaRule.validate(&config);
        if let Some(d) = diags.0.first() {
            let at = d.path.clone().map(|p| p.to_string()).unwrap_or_default();
            let at = at.split('[').next().unwrap_or_default().to_string();
            *refused.entry(format!("{at}: {}", d.summary)).or_default() += 1;
            if std::env::var("TSDB_FUZZ_VERBOSE").is_ok() {
                println!("refused {at}: {}", d.detail.escape_debug());
            }
            continue;
        }
        let rule = rule_of(&config);
        if !keys.insert(rule.key()) {
            continue; // same match fields drawn twice: one rule
        }
        file.add(&rule, i as i64);
        accepted.push(rule);
    }
    let text = file.render();
    c.write_hba("access", &text);
    let rows = rt
        .block_on(client.query(tsdb_provider::sql::HBA_FILE_RULES, &[]))
        .unwrap();
    let server: Vec<ServerRule> = rows.iter().map(tsdb_provider::node::server_rule).collect();
    // The provider's reading of the bytes equals the server's.
    let diffs = differences(text.as_bytes(), &server);
    assert!(
        diffs.is_empty(),
        "seed {seed}: {} divergences:\n{}\n--- file ---\n{}",
        diffs.len(),
        diffs.join("\n"),
        text.escape_debug()
    );
    // And the server holds every accepted rule as meant, on the line the
    // provider put it.
    assert_eq!(
        server.len(),
        accepted.len() + 2,
        "seed {seed}: rules in force"
    );
    let mut managed = file.rules();
    managed.retain(|f| f.position.is_some());
    assert_eq!(managed.len(), accepted.len());
    for found in &managed {
        let row = server
            .iter()
            .find(|r| r.line_number as usize == found.line_index + 1)
            .unwrap_or_else(|| panic!("seed {seed}: no rule on line {}", found.line_index + 1));
        let want = accepted
            .iter()
            .find(|r| r.key() == found.rule.key())
            .expect("an accepted rule");
        let texts = |v: &[String]| v.iter().map(|s| server_text(s)).collect::<Vec<_>>();
        assert_eq!(
            row.databases,
            texts(&want.databases),
            "seed {seed}: {:?}",
            found.text
        );
        assert_eq!(
            row.users,
            texts(&want.users),
            "seed {seed}: {:?}",
            found.text
        );
        assert_eq!(row.method.as_deref(), Some(want.method.as_str()));
        for (k, v) in &want.options {
            assert!(
                row.options.contains(&format!("{k}={v}")),
                "seed {seed}: option {k}={v:?} not in {:?}",
                row.options
            );
        }
        assert_eq!(row.error, None, "seed {seed}: {:?}", found.text);
    }
    accepted.len()
}

#[test]
fn passfile_entries_are_read_by_libpq_exactly_as_written() {
    let seed = seed();
    let n = cases(1200) / 30;
    let c = Cluster::start(0);
    let port = c.port("access").to_string();
    c.write_hba(
        "access",
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    );
    c.psql("access", "SELECT pg_reload_conf()");
    let mut g = Gen::new(seed ^ 0x5a5a);
    let mut accepted: Vec<Entry> = Vec::new();
    let mut refused = 0;
    while accepted.len() < n {
        let mut username = g.text(14);
        if g.chance(10) {
            const TAILS: &[&str] = &["#", "*", ":", "\\"];
            let tail = g.pick(TAILS).to_string();
            username.push_str(&tail);
        }
        let entry = Entry {
            hostname: g.pick(&["127.0.0.1", "*"]).to_string(),
            port: if g.chance(50) {
                port.clone()
            } else {
                "*".into()
            },
            database: g.pick(&["postgres", "*"]).to_string(),
            username: format!("{}{username}", g.pick(&["u", "#", "\\", "*x"])),
            password: format!("{}{}", g.pick(&["p", ":", "\\", " ", "#"]), g.text(16)),
        };
        let mut config = object(
            PassfileEntry
                .schema()
                .attributes
                .iter()
                .map(|a| (a.name, Value::Null)),
        );
        for (k, v) in [
            ("hostname", &entry.hostname),
            ("port", &entry.port),
            ("database", &entry.database),
            ("username", &entry.username),
            ("password", &entry.password),
        ] {
            config.set_attr(k, Value::string(v));
        }
        if !PassfileEntry.validate(&config).is_empty() {
            refused += 1;
            continue;
        }
        if entry.username.len() > 63 || accepted.iter().any(|e| e.username == entry.username) {
            continue;
        }
        accepted.push(entry);
    }
    let mut file = PassFile::parse("");
    for (i, e) in accepted.iter().enumerate() {
        file.upsert(e, i as i64);
    }
    let passfile = c.data_dir("access").join("differential.passfile");
    std::fs::write(&passfile, file.render()).unwrap();
    let mut perms = std::fs::metadata(&passfile).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&passfile, perms).unwrap();
    runtime().block_on(async {
        let client = connect(c.port("access")).await;
        for e in &accepted {
            client
                .batch_execute(&format!(
                    "CREATE ROLE {} LOGIN PASSWORD {}",
                    ident(&e.username),
                    literal(&e.password)
                ))
                .await
                .unwrap();
        }
    });
    println!(
        "passfile differential: seed {seed}, {} logins, {refused} refused",
        accepted.len()
    );
    for e in &accepted {
        let out = Command::new("psql")
            .args(["-wAtX", "-c", "SELECT current_user"])
            .env_remove("PGPASSWORD")
            .env("PGPASSFILE", &passfile)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", &port)
            .env("PGDATABASE", "postgres")
            .env("PGUSER", &e.username)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seed {seed}: libpq did not log in as {:?} with the entry {:?}: {}",
            e.username,
            e.render(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim_end_matches('\n'),
            e.username,
            "seed {seed}"
        );
    }
    assert!(
        refused > 0,
        "seed {seed}: the alphabet holds NUL and line breaks, some entries must be refused"
    );
}

/// A field of a mapping as a user might write it: hostile text, or a
/// regular expression, a would-be file or group, a keyword, a long name.
fn ident_field(g: &mut Gen, system: bool) -> String {
    match g.below(9) {
        0 if system => format!("/^{}$", g.text(8)),
        0 => "\\1".to_string(),
        1 => format!("{}{}", g.pick(&["@", "+", "/"]), g.text(6)),
        2 => g.pick(&["all", "\"all\"", "sameuser"]).to_string(),
        3 => "n".repeat(230 + g.below(40)),
        _ => format!(
            "{}{}",
            g.pick(&["a", "Z", "\"", "\\", "#", " ", "é", ","]),
            g.text(11)
        ),
    }
}

/// Mappings drawn from the hostile alphabet are refused by the provider's
/// checks (the pure ones, then the server's regular-expression engine, as
/// a plan checks them), or written into pg_ident.conf as the provider
/// writes them and read by the server (`pg_ident_file_mappings`) exactly as
/// meant, on the line the provider put them.
#[test]
fn ident_mappings_are_read_by_postgresql_exactly_as_the_provider_reads_them() {
    use tsdb_provider::ident::{IdentFile, Mapping};
    let seed = seed();
    let n = cases(600).min(2000);
    let c = Cluster::start(0);
    let mut g = Gen::new(seed);
    let rt = runtime();
    let client = rt.block_on(connect(c.port("access")));
    let path = c.data_dir("access").join("pg_ident.conf");
    // Lines the provider does not manage, as an operator might write them:
    // a comment of three words, a trailing comment, quotes, a backslash
    // joining two lines.
    let base = format!(
        "{}# a b\nmymap \"quoted user\" x # trailing\nother root \\\n  postgres\n",
        std::fs::read_to_string(&path).unwrap()
    );
    let mut file = IdentFile::parse(&base);
    let mut accepted = std::collections::BTreeSet::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..n {
        let m = Mapping {
            map: ident_field(&mut g, false),
            system_user: ident_field(&mut g, true),
            database_user: ident_field(&mut g, false),
        };
        if let Err((field, why)) = m.check() {
            let why: String = why
                .split([':', '"'])
                .next()
                .unwrap_or_default()
                .replace(char::is_numeric, "")
                .chars()
                .take(40)
                .collect();
            *refused.entry(format!("{field:?}: {why}")).or_default() += 1;
            continue;
        }
        if m.is_regex() {
            let checked = rt.block_on(
                client.query_one(tsdb_provider::sql::CHECK_REGEX, &[&&m.system_user[1..]]),
            );
            if checked.is_err() {
                *refused
                    .entry("SystemUser: invalid regular expression".into())
                    .or_default() += 1;
                continue;
            }
        }
        file.add(&m);
        accepted.insert(m);
    }
    let text = file.render();
    std::fs::write(&path, &text).unwrap();
    let rows = rt
        .block_on(client.query(tsdb_provider::sql::IDENT_FILE_MAPPINGS, &[]))
        .unwrap();
    let mut divergences = Vec::new();
    let mine: Vec<_> = file.mappings();
    for row in &rows {
        let line: i32 = row.get(0);
        let error: Option<String> = row.get(4);
        let server = (
            row.get::<_, Option<String>>(1).unwrap_or_default(),
            row.get::<_, Option<String>>(2).unwrap_or_default(),
            row.get::<_, Option<String>>(3).unwrap_or_default(),
        );
        match mine.iter().find(|f| f.line_index as i32 + 1 == line) {
            _ if error.is_some() => {
                divergences.push(format!("line {line}: the server refuses it: {error:?}"))
            }
            Some(f)
                if (
                    f.mapping.map.clone(),
                    f.mapping.system_user.clone(),
                    f.mapping.database_user.clone(),
                ) == server => {}
            Some(f) => divergences.push(format!(
                "line {line}: {:?} read by the server as {server:?}",
                f.mapping
            )),
            None => divergences.push(format!("line {line}: the provider reads no mapping there")),
        }
    }
    let managed = mine.iter().filter(|f| f.managed).count();
    println!(
        "pg_ident.conf differential: seed {seed}, {n} drawn, {} written, refused: {refused:?}",
        accepted.len()
    );
    assert!(
        divergences.is_empty(),
        "seed {seed}: {} divergences:\n{}",
        divergences.len(),
        divergences.join("\n")
    );
    assert_eq!(
        rows.len(),
        mine.len(),
        "seed {seed}: mappings the server holds"
    );
    assert_eq!(managed, accepted.len(), "seed {seed}");
    assert!(
        accepted.len() * 5 >= n,
        "too few written: {}",
        accepted.len()
    );
    assert!(refused.values().sum::<usize>() * 10 >= n, "too few refused");
}
