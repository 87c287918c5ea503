//! A tenant on every node tries to make the provider run its code.
//!
//! An unprivileged role with CREATE on `public` (as TimescaleDB users who
//! make hypertables have) plants look-alikes of every function and
//! operator the provider's SQL names: for each catalog overload of the
//! name, a function in `public` with one argument type swapped for another
//! (or all of them `text`; and the same for each shorter signature a call
//! may use by leaving defaulted arguments out), which would win PostgreSQL's overload
//! resolution wherever the catalog's needs an implicit cast or takes an
//! untyped literal. Each look-alike reports that it ran (a WARNING, which
//! reaches the server's log even when the provider's transaction is rolled
//! back) and tries to make the tenant a superuser.
//!
//! The names come from the SQL text itself: every string literal in the
//! provider's source is scanned, so a new statement is covered without
//! editing this test; and every statement the provider's sessions sent, as
//! the servers logged them, is scanned again at the end, so a name built at
//! run time that the source scan missed fails the test.
//!
//! Then the provider (a superuser) runs every resource and the data source
//! through a whole lifecycle (create, a clean plan, drift by hand, repair,
//! import, destroy), once through `distributed_exec` (the stand-in) and once
//! over direct connections. Not one look-alike may run, and the tenant must
//! be no superuser anywhere.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::harness::{Cluster, Terraform, ROOT};

const TENANT: &str = "tenant";
const FIRED: &str = "tenant look-alike fired";

/// Argument types a look-alike puts where the catalog's function has
/// another: the types literals and columns the provider writes most often
/// are, and the polymorphic ones.
const SWAPS: &[&str] = &[
    "text",
    "integer",
    "bigint",
    "smallint",
    "numeric",
    "name",
    "oid",
    "regclass",
    "regrole",
    "regtype",
    "\"char\"",
    "boolean",
    "bytea",
    "character varying",
    "timestamp with time zone",
    "double precision",
    "inet",
    "aclitem",
    "text[]",
    "name[]",
    "anyelement",
    "anycompatible",
];

/// Operator characters, as PostgreSQL's lexer has them.
const OPERATOR_CHARS: &str = "+-*/<>=~!@#%^&|`?";

/// Every string literal in the Rust files under `dir` (escapes resolved,
/// line continuations joined).
fn string_literals(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            string_literals(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            out.extend(literals_of(&text));
        }
    }
}

/// The string literals of one Rust source text.
fn literals_of(src: &str) -> Vec<String> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            '/' if b.get(i + 1) == Some(&'/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if b.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '\'' => {
                // A char literal ('"', '\'', '\n') or a lifetime.
                if b.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < b.len() && b[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            'r' if (b.get(i + 1) == Some(&'"') || b.get(i + 1) == Some(&'#'))
                && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                j += 1;
                let start = j;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                        break;
                    }
                    j += 1;
                }
                out.push(b[start..j.min(b.len())].iter().collect());
                i = j + 1 + hashes;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < b.len() && b[i] != '"' {
                    if b[i] == '\\' {
                        i += 1;
                        match b.get(i) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('\n') => {
                                s.push(' ');
                                while b.get(i + 1).is_some_and(|c| c.is_whitespace()) {
                                    i += 1;
                                }
                            }
                            Some(c) => s.push(*c),
                            None => {}
                        }
                    } else {
                        s.push(b[i]);
                    }
                    i += 1;
                }
                out.push(s);
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// The function names (lower case) and operators a piece of SQL names:
/// an identifier followed by `(`, and runs of operator characters, outside
/// string literals, quoted identifiers, dollar quotes and comments.
fn sql_names(sql: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let b: Vec<char> = sql.chars().collect();
    let (mut funcs, mut ops) = (BTreeSet::new(), BTreeSet::new());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\'' {
            // 'it''s', E'a\'b'
            let escapes = i > 0 && (b[i - 1] == 'E' || b[i - 1] == 'e');
            i += 1;
            while i < b.len() {
                if escapes && b[i] == '\\' {
                    i += 2;
                    continue;
                }
                if b[i] == '\'' {
                    if b.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += 1;
            }
            let name: String = b[start..i.min(b.len())].iter().collect();
            i += 1;
            let mut j = i;
            while b.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            if b.get(j) == Some(&'(') {
                funcs.insert(name.to_lowercase());
            }
        } else if c == '$' {
            // $tag$ ... $tag$, or a parameter ($1)
            let mut j = i + 1;
            while b.get(j).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                j += 1;
            }
            if b.get(j) == Some(&'$') && !b[i + 1..j].iter().all(char::is_ascii_digit) {
                let tag: String = b[i..=j].iter().collect();
                let rest: String = b[j + 1..].iter().collect();
                i = match rest.find(&tag) {
                    Some(k) => j + 1 + rest[..k].chars().count() + tag.chars().count(),
                    None => b.len(),
                };
            } else {
                i = j;
            }
        } else if c == '-' && b.get(i + 1) == Some(&'-') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            let mut j = i;
            while b.get(j).is_some_and(|c| c.is_whitespace()) {
                j += 1;
            }
            if b.get(j) == Some(&'(') {
                funcs.insert(word.to_lowercase());
            }
            match word.to_uppercase().as_str() {
                "LIKE" => {
                    ops.insert("~~".to_string());
                    ops.insert("!~~".to_string());
                }
                "ILIKE" => {
                    ops.insert("~~*".to_string());
                }
                "IN" | "DISTINCT" | "BETWEEN" => {
                    for o in ["=", "<>", ">=", "<="] {
                        ops.insert(o.to_string());
                    }
                }
                _ => {}
            }
        } else if OPERATOR_CHARS.contains(c) {
            let start = i;
            while i < b.len() && OPERATOR_CHARS.contains(b[i]) {
                i += 1;
            }
            ops.insert(b[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
    (funcs, ops)
}

/// The function names and operators the provider's SQL text names.
fn names_in_source() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut literals = Vec::new();
    string_literals(&Path::new(ROOT).join("src"), &mut literals);
    let (mut funcs, mut ops) = (BTreeSet::new(), BTreeSet::new());
    for l in literals {
        let (f, o) = sql_names(&l);
        funcs.extend(f);
        ops.extend(o);
    }
    (funcs, ops)
}

/// Every statement the provider's sessions (and the stand-in's sessions
/// on its behalf) sent to `node`, as the server logged it.
fn logged_statements(c: &Cluster, node: &str) -> Vec<String> {
    let text = std::fs::read(c.data_dir(node).join("server.log")).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let starts_entry = line.len() > 4 && line.starts_with("20") && line.as_bytes()[4] == b'-';
        if starts_entry {
            out.extend(current.take());
            let ours =
                line.contains(" terraform-provider-timescaledb: ") || line.contains(" dblink: ");
            let statement = ["statement: ", "execute <unnamed>: ", "execute s"]
                .iter()
                .find_map(|m| line.find(m).map(|k| &line[k + m.len()..]));
            if let (true, Some(s)) = (ours, statement) {
                // `execute s0: SELECT ...`
                let s = s.split_once(": ").map_or(s, |(head, tail)| {
                    if head.chars().all(|c| c.is_ascii_alphanumeric()) {
                        tail
                    } else {
                        s
                    }
                });
                current = Some(s.to_string());
            }
        } else if let Some(cur) = current.as_mut() {
            cur.push('\n');
            cur.push_str(line);
        }
    }
    out.extend(current);
    out
}

impl Cluster {
    /// psql as postgres with a search path no tenant can write to, so that
    /// the test's own statements never run a look-alike.
    fn pinned(&self, node: &str, sql: &str) -> String {
        pinned_as(self, node, "postgres", sql)
    }
}

fn pinned_as(c: &Cluster, node: &str, user: &str, sql: &str) -> String {
    run_pinned(
        c,
        node,
        user,
        &["-c", sql],
        &sql.chars().take(300).collect::<String>(),
    )
}

/// psql as `user` on `node` with a search path no tenant can write to;
/// its output, or a failure naming `what`.
fn run_pinned(c: &Cluster, node: &str, user: &str, args: &[&str], what: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port(node).to_string(),
            "-U",
            user,
            "-d",
            "postgres",
            "-qAtX",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(args)
        .env("PGOPTIONS", "-c search_path=pg_catalog,pg_temp")
        .env_remove("PGPASSWORD")
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql as {user} on {node} failed for {what}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn sql_array(items: &BTreeSet<String>) -> String {
    format!(
        "ARRAY[{}]::text[]",
        items
            .iter()
            .map(|s| format!("'{}'", s.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The tenant plants its look-alikes on `node`; returns how many it made.
fn plant(c: &Cluster, node: &str, funcs: &BTreeSet<String>, ops: &BTreeSet<String>) -> u64 {
    c.pinned(
        node,
        &format!("CREATE ROLE {TENANT} LOGIN; GRANT CREATE ON SCHEMA public TO {TENANT}"),
    );
    let swaps = SWAPS
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    let script = format!(
        r#"
CREATE FUNCTION public.tenant_fired(sig text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    RAISE WARNING '{FIRED}: % as %', sig, current_user;
    BEGIN
        EXECUTE 'ALTER ROLE {TENANT} SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
END
$f$;

-- One look-alike: a function (or procedure) in public; 1 when made.
CREATE FUNCTION public.tenant_make(fname text, kind "char", args text[], ret text, is_set boolean) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $m$
DECLARE
    sig text := fname || '(' || array_to_string(args, ', ') || ')';
    poly boolean := array_to_string(args, ' ') ~ '\manycompatible|\manyelement|\manyarray|\manynonarray|\manyenum|\manyrange';
    body text;
BEGIN
    IF ret IS NOT NULL AND NOT poly THEN
        ret := regexp_replace(ret, '\many(compatible)?(array)\M', 'text[]', 'g');
        ret := regexp_replace(ret, '\many(compatible)?(element|nonarray|enum|range|compatiblenonarray)?\M', 'text', 'g');
    END IF;
    IF kind = 'p' THEN
        EXECUTE format('CREATE PROCEDURE public.%I(%s) LANGUAGE plpgsql AS %L', fname, array_to_string(args, ', '),
            format('BEGIN PERFORM public.tenant_fired(%L); END', sig));
        RETURN 1;
    END IF;
    IF is_set OR ret = 'void' OR ret LIKE 'TABLE(%' OR ret LIKE 'SETOF %' THEN
        body := format('BEGIN PERFORM public.tenant_fired(%L); RETURN; END', sig);
    ELSE
        body := format('BEGIN PERFORM public.tenant_fired(%L); RETURN NULL; END', sig);
    END IF;
    EXECUTE format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
        fname, array_to_string(args, ', '), ret, body);
    RETURN 1;
EXCEPTION WHEN OTHERS THEN
    RETURN 0;
END
$m$;

-- One look-alike operator, with its function.
CREATE FUNCTION public.tenant_make_op(op text, l text, r text, res text, n int) RETURNS int
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $m$
DECLARE
    fn text := 'tenant_op_' || n;
BEGIN
    IF public.tenant_make(fn, 'f', array_remove(ARRAY[l, r], NULL), res, false) = 0 THEN
        RETURN 0;
    END IF;
    EXECUTE format('CREATE OPERATOR public.%s (%s RIGHTARG = %s, FUNCTION = public.%I)',
        op, CASE WHEN l IS NULL THEN '' ELSE format('LEFTARG = %s,', l) END, r, fn);
    RETURN 1;
EXCEPTION WHEN OTHERS THEN
    RETURN 0;
END
$m$;

DO $plant$
DECLARE
    funcs text[] := {funcs};
    ops text[] := {ops};
    swaps text[] := ARRAY[{swaps}];
    p record;
    o record;
    v text[];
    base text[];
    cut int;
    s text;
    i int;
    n int := 0;
    made int := 0;
BEGIN
    FOR p IN
        SELECT pr.proname::text AS name, pr.prokind AS kind, pr.proretset AS is_set,
               ARRAY(SELECT format_type(t, NULL) FROM unnest(pr.proargtypes::oid[]) WITH ORDINALITY AS u(t, k) ORDER BY k) AS args,
               pg_get_function_result(pr.oid) AS ret, pr.pronargdefaults AS defaults
        FROM pg_proc pr WHERE pr.proname = ANY(funcs)
    LOOP
        -- The whole signature, and each shorter one a call may use by
        -- leaving defaulted arguments out.
        FOR cut IN 0 .. p.defaults LOOP
            base := p.args[1 : cardinality(p.args) - cut];
            made := made + public.tenant_make(p.name, p.kind, ARRAY(SELECT 'text' FROM generate_series(1, cardinality(base))), p.ret, p.is_set);
            IF cut > 0 THEN
                made := made + public.tenant_make(p.name, p.kind, base, p.ret, p.is_set);
            END IF;
            FOR i IN 1 .. cardinality(base) LOOP
                FOREACH s IN ARRAY swaps LOOP
                    CONTINUE WHEN s = base[i];
                    v := base;
                    v[i] := s;
                    made := made + public.tenant_make(p.name, p.kind, v, p.ret, p.is_set);
                END LOOP;
            END LOOP;
        END LOOP;
    END LOOP;
    FOR o IN
        SELECT oprname::text AS op, CASE WHEN oprleft = 0 THEN NULL ELSE format_type(oprleft, NULL) END AS l,
               format_type(oprright, NULL) AS r, format_type(oprresult, NULL) AS res
        FROM pg_operator WHERE oprname = ANY(ops)
    LOOP
        FOREACH s IN ARRAY swaps LOOP
            IF o.l IS NOT NULL AND s <> o.l THEN
                n := n + 1;
                made := made + public.tenant_make_op(o.op, s, o.r, o.res, n);
            END IF;
            IF s <> o.r THEN
                n := n + 1;
                made := made + public.tenant_make_op(o.op, o.l, s, o.res, n);
            END IF;
        END LOOP;
    END LOOP;
    RAISE NOTICE 'planted %', made;
    CREATE TABLE public.tenant_planted (made int);
    INSERT INTO public.tenant_planted VALUES (made);
END
$plant$;
"#,
        funcs = sql_array(funcs),
        ops = sql_array(ops),
    );
    let file = c.data_dir(node).with_extension("plant.sql");
    std::fs::write(&file, script).expect("write plant script");
    let path = file.display().to_string();
    run_pinned(c, node, TENANT, &["-f", &path], "the planting script");
    pinned_as(c, node, TENANT, "SELECT made FROM public.tenant_planted")
        .parse()
        .expect("count")
}

/// Names that the catalogs of `node` have as functions, of those given.
fn catalog_functions(c: &Cluster, node: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    let found = c.pinned(
        node,
        &format!(
            "SELECT string_agg(DISTINCT proname::text, ' ') FROM pg_proc WHERE proname = ANY({})",
            sql_array(names)
        ),
    );
    found.split_whitespace().map(str::to_string).collect()
}

fn config(c: &Cluster, direct: bool) -> String {
    let provider = if direct {
        c.provider_block().replace(
            "sslmode = \"disable\"",
            "sslmode = \"prefer\"\n  fanout = \"direct\"",
        )
    } else {
        c.provider_block_discovering("")
            .replace("sslmode = \"disable\"", "sslmode = \"prefer\"")
    };
    format!(
        r#"{provider}
data "timescaledb_data_nodes" "all" {{}}

resource "timescaledb_certificate_authority" "ca" {{
  subject  = {{ common_name = "Tenant test CA" }}
  key_node = "access"
}}

resource "timescaledb_node_certificate" "server" {{
  for_each     = toset(data.timescaledb_data_nodes.all.nodes[*].name)
  kind         = "server"
  node         = each.key
  common_name  = "127.0.0.1"
  ip_addresses = ["127.0.0.1"]
  ca_cert_pem  = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node  = timescaledb_certificate_authority.ca.key_node
}}

resource "timescaledb_node_certificate" "access_server" {{
  kind         = "server"
  node         = "access"
  common_name  = "127.0.0.1"
  ip_addresses = ["127.0.0.1"]
  ca_cert_pem  = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node  = timescaledb_certificate_authority.ca.key_node
  depends_on   = [timescaledb_node_certificate.server]
}}

resource "timescaledb_node_certificate" "user" {{
  for_each    = toset(["postgres", "app"])
  kind        = "user"
  role        = each.key
  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node = timescaledb_certificate_authority.ca.key_node
}}

resource "timescaledb_certificate_revocation_list" "ca" {{
  ca_cert_pem              = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node              = timescaledb_certificate_authority.ca.key_node
  nodes                    = data.timescaledb_data_nodes.all.nodes[*].name
  revoked_certificate_pems = []
  depends_on               = [timescaledb_node_certificate.server]
}}

data "timescaledb_certificates" "all" {{
  depends_on = [timescaledb_node_certificate.user, timescaledb_node_certificate.access_server]
}}

resource "timescaledb_distributed_role" "app" {{
  name               = "app"
  login              = true
  password           = "client pass"
  data_node_password = "internal pass"
  connection_limit   = 5
  valid_until        = "2090-01-01"
  depends_on         = [timescaledb_node_certificate.user, timescaledb_node_certificate.access_server]
}}

resource "timescaledb_foreign_server_grant" "app" {{
  role = timescaledb_distributed_role.app.name
}}

resource "timescaledb_passfile_entry" "app" {{
  username = timescaledb_distributed_role.app.name
  password = "internal pass"
}}

resource "timescaledb_ident_mapping" "app" {{
  node              = "dn1"
  map               = "certmap"
  system_username   = "/^(.*)@example\\.com$"
  database_username = "\\1"
}}

resource "timescaledb_role_membership" "app" {{
  group   = timescaledb_distributed_role.app.name
  members = ["postgres"]
}}

resource "timescaledb_hba_rule" "app" {{
  for_each  = toset(data.timescaledb_data_nodes.all.nodes[*].name)
  node      = each.key
  type      = "host"
  databases = ["all"]
  users     = [timescaledb_distributed_role.app.name]
  address   = "127.0.0.1/32"
  method    = "scram-sha-256"
}}

resource "timescaledb_hba_file" "dn2" {{
  node       = "dn2"
  keep       = ["dn2 host all all 127.0.0.1/32"]
  depends_on = [timescaledb_hba_rule.app]
}}

data "timescaledb_hba_rules" "dn2" {{
  node = "dn2"
}}
"#
    )
}

/// Create, a clean plan, drift made by hand on every kind of object,
/// repair, import of every importable resource, destroy.
fn lifecycle(c: &Cluster, tf: &Terraform) {
    tf.init();
    tf.apply();
    tf.assert_no_changes();

    c.pinned("dn1", "ALTER ROLE app CONNECTION LIMIT 7");
    c.pinned("access", "REVOKE USAGE ON FOREIGN SERVER dn1 FROM app");
    c.pinned("dn2", "REVOKE app FROM postgres");
    let ident = c.data_dir("dn1").join("pg_ident.conf");
    let text = std::fs::read_to_string(&ident).expect("pg_ident.conf");
    std::fs::write(&ident, text.replace("certmap /^", "othermap /^")).expect("edit pg_ident.conf");
    let hba = c.read_hba("dn2");
    let rule = hba
        .lines()
        .find(|l| l.starts_with("host all app "))
        .expect("the rule on dn2")
        .to_string();
    c.write_hba(
        "dn2",
        &format!(
            "{}host all all 0.0.0.0/0 trust\n",
            hba.replace(&format!("{rule}\n"), "")
        ),
    );
    let passfile = c.data_dir("access").join("passfile");
    let text = std::fs::read_to_string(&passfile).expect("passfile");
    std::fs::write(
        &passfile,
        text.lines()
            .filter(|l| !l.contains(":app:"))
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .expect("write passfile");
    std::fs::remove_file(c.data_dir("dn1").join("server.key")).expect("remove key");
    let (changes, plan) = tf.plan();
    assert!(changes, "drift not seen:\n{}", plan.stdout);
    for addr in [
        "timescaledb_distributed_role.app",
        "timescaledb_foreign_server_grant.app",
        "timescaledb_role_membership.app",
        "timescaledb_ident_mapping.app",
        "timescaledb_hba_rule.app[\"dn2\"]",
        "timescaledb_hba_file.dn2",
        "timescaledb_passfile_entry.app",
        "timescaledb_node_certificate.server[\"dn1\"]",
    ] {
        assert!(
            plan.stdout.contains(addr),
            "{addr} not in:\n{}",
            plan.stdout
        );
    }
    tf.apply();
    tf.assert_no_changes();

    let ids = tf.state_ids();
    let mut imported = 0;
    for (addr, id) in &ids {
        if addr.starts_with("timescaledb_hba_file")
            || addr.starts_with("timescaledb_certificate_revocation_list")
        {
            continue; // cannot be imported
        }
        // A CA by the node that keeps its key and its fingerprint.
        let id = if addr.starts_with("timescaledb_certificate_authority") {
            format!("access {id}")
        } else {
            id.clone()
        };
        tf.must(&["state", "rm", addr]);
        tf.must(&["import", "-input=false", "-no-color", addr, &id]);
        imported += 1;
    }
    assert!(imported >= 9, "{ids:?}");
    tf.apply();
    tf.assert_no_changes();
    tf.destroy();
}

fn run(direct: bool) {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    let (funcs, ops) = names_in_source();
    // The names the catalogs know: only those can have look-alikes.
    let known = catalog_functions(&c, "access", &funcs);
    for f in [
        "acldefault",
        "pg_has_role",
        "lo_from_bytea",
        "pg_read_binary_file",
        "distributed_exec",
    ] {
        assert!(
            known.contains(f),
            "{f} not found in the source's SQL: {known:?}"
        );
    }
    assert!(ops.contains("="), "{ops:?}");
    println!(
        "functions: {}\noperators: {}",
        known.iter().cloned().collect::<Vec<_>>().join(" "),
        ops.iter().cloned().collect::<Vec<_>>().join(" ")
    );
    let mut offsets = Vec::new();
    for node in ["access", "dn1", "dn2"] {
        let made = plant(&c, node, &known, &ops);
        assert!(made > 1000, "{node}: only {made} look-alikes");
        println!("{node}: {made} look-alikes planted");
        offsets.push((node, log_len(&c, node)));
    }

    let tf = Terraform::new();
    tf.config(&config(&c, direct));
    lifecycle(&c, &tf);

    // Through distributed_exec or not, as asked.
    let calls = c.pinned("access", "SELECT count(*) FROM public.standin_calls");
    if direct {
        assert_eq!(calls, "0");
    } else {
        assert_ne!(calls, "0");
    }

    let mut fired = Vec::new();
    let mut called = BTreeSet::new();
    for (node, offset) in offsets {
        let log = std::fs::read(c.data_dir(node).join("server.log")).unwrap_or_default();
        let log = String::from_utf8_lossy(&log[offset.min(log.len())..]).into_owned();
        fired.extend(
            log.lines()
                .filter(|l| l.contains(FIRED))
                .map(|l| format!("{node}: {l}")),
        );
        for s in logged_statements(&c, node) {
            called.extend(sql_names(&s).0);
        }
        assert_eq!(
            c.pinned(
                node,
                &format!("SELECT rolsuper FROM pg_roles WHERE rolname = '{TENANT}'")
            ),
            "f",
            "{node}: the tenant became a superuser"
        );
    }
    assert!(
        fired.is_empty(),
        "{} look-alikes ran as the provider:\n{}",
        fired.len(),
        fired.into_iter().take(40).collect::<Vec<_>>().join("\n")
    );
    // Every function the provider called was planted against.
    let called = catalog_functions(&c, "access", &called);
    assert!(called.len() > 10, "{called:?}");
    let missed: Vec<&String> = called.difference(&known).collect();
    assert!(
        missed.is_empty(),
        "functions the provider called that the scan of its source missed: {missed:?}"
    );
}

fn log_len(c: &Cluster, node: &str) -> usize {
    std::fs::metadata(c.data_dir(node).join("server.log")).map_or(0, |m| m.len() as usize)
}

#[test]
fn no_look_alike_runs_through_distributed_exec() {
    run(false);
}

#[test]
fn no_look_alike_runs_over_direct_connections() {
    run(true);
}

#[test]
fn the_scan_finds_names_in_sql_text() {
    let (f, o) = sql_names(
        "SELECT acldefault('S', x), \"Quoted\"(1) FROM t WHERE a = 'lower(' AND b LIKE $1 -- upper(\n AND $x$ trim( $x$ || E'\\'abs('",
    );
    assert_eq!(
        f.into_iter().collect::<Vec<_>>(),
        vec!["acldefault".to_string(), "quoted".to_string()]
    );
    assert!(
        o.contains("=") && o.contains("~~") && o.contains("||"),
        "{o:?}"
    );
    let lits =
        literals_of("let a = \"x(\\\"y\\\")\"; let c = '\"'; let r = r#\"z(\"\"#; // \"no(\"\n");
    assert_eq!(lits, vec!["x(\"y\")".to_string(), "z(\"".to_string()]);
}
