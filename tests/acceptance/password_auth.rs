//! The trust and password parts of multi-node authentication against live
//! nodes: distributed roles, foreign server grants, passfile entries and
//! the pg_hba.conf rules that make the data nodes ask for passwords.

use crate::harness::{hcl, Cluster, Terraform};

/// An internal password with every character libpq's passfile escaping and
/// SQL quoting must survive.
const INTERNAL: &str = "p:a\\s*s w'o\"rd ü";

/// Text with every run of whitespace made one space (Terraform wraps long
/// diagnostics).
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The password half of the runbook: `postgres` and `testrole` log in to
/// the data nodes with internal passwords from the access node's passfile.
fn password_half(provider: &str) -> String {
    format!(
        r#"{provider}
resource "timescaledb_distributed_role" "testrole" {{
  name               = "testrole"
  login              = true
  password           = "clientpass"
  data_node_password = {internal}
}}

resource "timescaledb_foreign_server_grant" "testrole" {{
  role = timescaledb_distributed_role.testrole.name
}}

resource "timescaledb_passfile_entry" "postgres" {{
  username = "postgres"
  password = "xyzzy"
  position = 20
}}

resource "timescaledb_passfile_entry" "testrole" {{
  username = timescaledb_distributed_role.testrole.name
  password = {internal}
  position = 10
}}

resource "timescaledb_hba_rule" "scram" {{
  for_each  = toset(["dn1", "dn2"])
  node      = each.key
  type      = "host"
  databases = ["all"]
  users     = ["testrole"]
  address   = "127.0.0.1"
  method    = "scram-sha-256"
  position  = 10
}}
"#,
        internal = hcl(&INTERNAL.into())
    )
}

/// Logs in to `node` as `user` with the access node's passfile and no
/// other source of passwords, the way the access node's own libpq does.
pub(crate) fn login_with_passfile(c: &Cluster, node: &str, user: &str) -> std::process::Output {
    let passfile = c.data_dir("access").join("passfile");
    c.psql_conn(
        &format!(
            "host=127.0.0.1 port={} dbname=postgres user={user}",
            c.port(node)
        ),
        "SELECT current_user",
        &[("PGPASSFILE", passfile.to_str().unwrap())],
    )
}

fn role_everywhere(c: &Cluster, name: &str) -> Vec<String> {
    ["access", "dn1", "dn2"]
        .iter()
        .map(|n| {
            c.psql(
                n,
                &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{name}'"),
            )
        })
        .collect()
}

#[test]
fn password_half_through_distributed_exec() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    let tf = Terraform::new();
    tf.config(&password_half(&c.provider_block_discovering("")));
    tf.init();
    tf.apply();

    // The role went to the data nodes through distributed_exec.
    assert_eq!(
        c.psql(
            "access",
            "SELECT kind, node_list FROM standin_calls ORDER BY id"
        ),
        "CREATE ROLE|{dn1,dn2}"
    );
    assert_eq!(role_everywhere(&c, "testrole"), ["t", "t", "t"]);
    assert_eq!(
        c.psql("access", "SELECT string_agg(srvname, ',' ORDER BY srvname) FROM pg_foreign_server WHERE has_server_privilege('testrole', oid, 'USAGE')"),
        "dn1,dn2"
    );
    // libpq takes the internal password from the passfile the provider wrote.
    for node in ["dn1", "dn2"] {
        let out = login_with_passfile(&c, node, "testrole");
        assert!(
            out.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And the access node reaches the data nodes as testrole, through the
    // stand-in's libpq with the same passfile.
    const AS_TESTROLE: &str = "SET ROLE testrole; CALL distributed_exec($$SET work_mem = '64kB'$$)";
    c.psql("access", AS_TESTROLE);
    let mode = std::fs::metadata(c.data_dir("access").join("passfile")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    tf.assert_no_changes();
    // The verified verifiers' digests are kept privately with the role, so
    // the next refresh needs no key derivation.
    let state: serde_json::Value =
        serde_json::from_str(&tf.must(&["state", "pull"]).stdout).unwrap();
    let role = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "timescaledb_distributed_role")
        .unwrap();
    assert!(
        role["instances"][0]["private"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{role}"
    );
    // A passfile entry whose password is in the state compares it as it
    // is: nothing kept privately for Terraform to rewrite.
    for r in state["resources"].as_array().unwrap() {
        if r["type"] == "timescaledb_passfile_entry" {
            assert!(r["instances"][0].get("private").is_none(), "{r}");
        }
    }

    // Drift on one data node: a password changed by hand.
    c.psql("dn2", "ALTER ROLE testrole PASSWORD 'changed by hand'");
    assert!(!login_with_passfile(&c, "dn2", "testrole").status.success());
    let out = c.psql_output("access", "postgres", AS_TESTROLE);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (changes, plan) = tf.plan();
    assert!(changes, "{}", plan.stdout);
    assert_eq!(
        crate::harness::drifted_nodes(&plan.stdout),
        [("dn2".to_string(), "differs: password".to_string())],
        "only dn2 drifted:\n{}",
        plan.stdout
    );
    // A revoke by hand, a line removed from the passfile, a mode changed,
    // a role dropped on one node.
    c.psql("access", "REVOKE USAGE ON FOREIGN SERVER dn1 FROM testrole");
    let passfile = c.data_dir("access").join("passfile");
    let text = std::fs::read_to_string(&passfile).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("*:*:*:postgres:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&passfile, without).unwrap();
    c.psql("dn1", "DROP ROLE testrole");
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let (changes, plan) = tf.plan();
    assert!(changes);
    for expected in [
        "\"missing\" -> \"in sync\"",
        "+ \"dn1\"",
        "\"0644\" -> \"0600\"",
        "timescaledb_passfile_entry.postgres will be created",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "{expected} not in:\n{}",
            plan.stdout
        );
    }
    tf.apply();
    tf.assert_no_changes();
    assert!(login_with_passfile(&c, "dn1", "testrole").status.success());
    assert!(login_with_passfile(&c, "dn2", "testrole").status.success());
    c.psql("access", AS_TESTROLE);

    // Import of each resource kind adopts what is there.
    for addr in [
        "timescaledb_distributed_role.testrole",
        "timescaledb_foreign_server_grant.testrole",
        "timescaledb_passfile_entry.testrole",
        "timescaledb_passfile_entry.postgres",
    ] {
        tf.must(&["state", "rm", addr]);
    }
    tf.must(&[
        "import",
        "-no-color",
        "timescaledb_distributed_role.testrole",
        "testrole",
    ]);
    tf.must(&[
        "import",
        "-no-color",
        "timescaledb_foreign_server_grant.testrole",
        "testrole",
    ]);
    tf.must(&[
        "import",
        "-no-color",
        "timescaledb_passfile_entry.testrole",
        "*:*:*:testrole",
    ]);
    tf.must(&[
        "import",
        "-no-color",
        "timescaledb_passfile_entry.postgres",
        "access *:*:*:postgres",
    ]);
    // The imported role's passwords cannot be read back, only checked:
    // the first apply sets them from the configuration.
    tf.apply();
    tf.assert_no_changes();

    tf.destroy();
    assert_eq!(role_everywhere(&c, "testrole"), ["", "", ""]);
    let text = std::fs::read_to_string(&passfile).unwrap();
    assert!(
        !text.contains("testrole") && !text.contains("BEGIN"),
        "{text}"
    );
}

#[test]
fn direct_connections_with_hostile_names_and_passwords() {
    let c = Cluster::start(2);
    let names = ["Test \"Rôle\" x", "r'; DROP TABLE t; --", "UPPER case"];
    let passwords = [INTERNAL, "*:*:*:*", "\\\\:: '' \"\" ü€"];
    let mut body = c.provider_block();
    for (i, (n, p)) in names.iter().zip(passwords).enumerate() {
        body.push_str(&format!(
            r#"
resource "timescaledb_distributed_role" "r{i}" {{
  name     = {name}
  login    = true
  password = {password}
}}

resource "timescaledb_passfile_entry" "r{i}" {{
  username = timescaledb_distributed_role.r{i}.name
  database = "template1"
  password = {password}
  position = {i}
}}
"#,
            name = hcl(&(*n).into()),
            password = hcl(&(*p).into())
        ));
    }
    // Passwords are asked for on connections to template1 only, so the
    // provider's own (trusted) session to postgres is untouched.
    body.push_str(
        r#"
resource "timescaledb_hba_rule" "scram" {
  for_each  = toset(["dn1", "dn2"])
  node      = each.key
  type      = "host"
  databases = ["template1"]
  users     = ["all"]
  address   = "127.0.0.1"
  method    = "scram-sha-256"
  position  = 10
}
"#,
    );
    let tf = Terraform::new();
    tf.config(&body);
    tf.init();
    let run = tf.run_env(
        &["apply", "-input=false", "-auto-approve", "-no-color"],
        &[("TF_LOG", "trace")],
    );
    assert!(run.ok, "{}", run.all());
    for p in passwords {
        assert!(
            !run.all().contains(p),
            "a password appears in terraform's trace log"
        );
    }
    // Nothing was injected: the names exist exactly, on every node.
    for node in ["access", "dn1", "dn2"] {
        let got = c.psql(
            node,
            "SELECT string_agg(rolname, '|' ORDER BY rolname) FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' AND rolname <> 'postgres'",
        );
        let mut want = names.to_vec();
        want.sort();
        assert_eq!(got, want.join("|"), "{node}");
    }
    // libpq reads every password back from the file the provider wrote.
    let passfile = c.data_dir("access").join("passfile");
    for n in names {
        for node in ["dn1", "dn2"] {
            let conninfo = format!(
                "host=127.0.0.1 port={} dbname=template1 user='{}'",
                c.port(node),
                n.replace('\\', "\\\\").replace('\'', "\\'")
            );
            let out = c.psql_conn(
                &conninfo,
                "SELECT current_user",
                &[("PGPASSFILE", passfile.to_str().unwrap())],
            );
            assert!(
                out.status.success(),
                "{n} on {node}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), n);
            // and without the passfile the server asks for a password
            let out = c.psql_conn(&conninfo, "SELECT 1", &[]);
            assert!(!out.status.success());
        }
    }
    tf.assert_no_changes();
    tf.destroy();
    for node in ["access", "dn1", "dn2"] {
        assert_eq!(
            c.psql(node, "SELECT count(*) FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' AND rolname <> 'postgres'"),
            "0"
        );
    }
}

#[test]
fn a_data_node_down_during_apply_converges() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    let tf = Terraform::new();
    let config = |limit: i32| {
        format!(
            "{}\nresource \"timescaledb_distributed_role\" \"app\" {{\n  name = \"app\"\n  connection_limit = {limit}\n}}\n",
            c.provider_block_discovering("")
        )
    };
    tf.config(&config(5));
    tf.init();
    c.stop_node("dn2");
    // The create cannot finish on dn2; it still succeeds where it can and
    // says plainly what is left, so that Terraform does not taint the role
    // (a tainted role would be dropped everywhere at the next apply).
    let run = tf.try_apply();
    let out = run.flat();
    assert!(run.ok, "{out}");
    assert!(
        out.contains("Warning: Role \"app\" is not yet on every node") && out.contains("\"dn2\""),
        "{out}"
    );
    // What exists is recorded.
    let show = tf.must(&[
        "state",
        "show",
        "-no-color",
        "timescaledb_distributed_role.app",
    ]);
    assert!(show.stdout.contains("\"unreachable\""), "{}", show.stdout);
    assert_eq!(
        c.psql(
            "access",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"
        ),
        "1"
    );
    assert_eq!(
        c.psql("dn1", "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"),
        "1"
    );
    assert!(!show.stdout.contains("tainted"), "{}", show.stdout);
    c.start_node("dn2");
    let (changes, plan) = tf.plan();
    assert!(
        changes && plan.stdout.contains("1 to change, 0 to destroy"),
        "finished in place, not replaced:\n{}",
        plan.stdout
    );
    tf.apply();
    tf.assert_no_changes();
    assert_eq!(
        c.psql(
            "dn2",
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app'"
        ),
        "5"
    );
    for node in ["access", "dn1", "dn2"] {
        let log = std::fs::read_to_string(c.data_dir(node).join("server.log")).unwrap();
        assert!(!log.contains("DROP ROLE"), "{node} dropped a role:\n{log}");
    }

    // The same for an update.
    c.stop_node("dn1");
    tf.config(&config(7));
    let run = tf.try_apply();
    assert!(!run.ok && run.all().contains("dn1"), "{}", run.all());
    assert_eq!(
        c.psql(
            "dn2",
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app'"
        ),
        "7"
    );
    c.start_node("dn1");
    tf.apply();
    tf.assert_no_changes();
    assert_eq!(
        c.psql(
            "dn1",
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app'"
        ),
        "7"
    );
    tf.destroy();
    for node in ["access", "dn1", "dn2"] {
        assert_eq!(
            c.psql(node, "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"),
            "0"
        );
    }
}

#[test]
fn a_role_that_owns_objects_is_dropped_nowhere_unless_asked() {
    let c = Cluster::start(2);
    let tf = Terraform::new();
    let config = |extra: &str| {
        format!(
            "{}\nresource \"timescaledb_distributed_role\" \"owner\" {{\n  name = \"owner\"\n{extra}}}\n",
            c.provider_block()
        )
    };
    tf.config(&config(""));
    tf.init();
    tf.apply();
    c.psql(
        "dn1",
        "CREATE TABLE owned(); ALTER TABLE owned OWNER TO owner",
    );
    let run = tf.run(&["destroy", "-auto-approve", "-no-color"]);
    assert!(!run.ok);
    assert!(
        squash(&run.all())
            .contains("on node \"dn1\" the role owns 1 object in database \"postgres\""),
        "{}",
        run.all()
    );
    for node in ["access", "dn1", "dn2"] {
        assert_eq!(
            c.psql(
                node,
                "SELECT count(*) FROM pg_roles WHERE rolname = 'owner'"
            ),
            "1",
            "{node}"
        );
    }
    tf.config(&config(
        "  drop_owned = true\n  reassign_owned_to = \"postgres\"\n",
    ));
    tf.apply();
    tf.destroy();
    assert_eq!(
        c.psql(
            "dn1",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'owned'"
        ),
        "postgres"
    );
    for node in ["access", "dn1", "dn2"] {
        assert_eq!(
            c.psql(
                node,
                "SELECT count(*) FROM pg_roles WHERE rolname = 'owner'"
            ),
            "0"
        );
    }
}

#[test]
fn trust_half_with_fanout_direct_and_discovered_nodes() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    let tf = Terraform::new();
    tf.config(&format!(
        r#"{}
data "timescaledb_data_nodes" "all" {{}}

resource "timescaledb_distributed_role" "testrole" {{
  name = "testrole"
}}

resource "timescaledb_foreign_server_grant" "testrole" {{
  role = timescaledb_distributed_role.testrole.name
}}

resource "timescaledb_hba_rule" "trust_access_node" {{
  for_each  = toset([for n in data.timescaledb_data_nodes.all.nodes : n.name])
  node      = each.key
  type      = "host"
  databases = ["all"]
  users     = [timescaledb_distributed_role.testrole.name]
  address   = "127.0.0.1/32"
  method    = "trust"
  position  = 10
}}

output "nodes" {{
  value = [for n in data.timescaledb_data_nodes.all.nodes : "${{n.name}}:${{n.port}}:${{n.source}}:${{n.reachable}}"]
}}
"#,
        c.provider_block_discovering("  fanout = \"direct\"\n")
    ));
    tf.init();
    tf.apply();
    let out = tf.must(&["output", "-json", "nodes"]);
    assert_eq!(
        out.stdout.trim(),
        format!(
            "[\"dn1:{}:timescaledb:true\",\"dn2:{}:timescaledb:true\"]",
            c.port("dn1"),
            c.port("dn2")
        )
    );
    // `fanout = "direct"` wins over the access node's distributed_exec.
    assert_eq!(c.psql("access", "SELECT count(*) FROM standin_calls"), "0");
    for node in ["access", "dn1", "dn2"] {
        assert_eq!(
            c.psql(node, "SELECT rolcanlogin::text || ':' || (rolpassword IS NULL)::text FROM pg_authid WHERE rolname = 'testrole'"),
            if node == "access" { "false:true" } else { "true:true" },
            "{node}"
        );
    }
    // testrole reaches the data nodes without any password.
    c.psql(
        "access",
        "SET ROLE testrole; CALL distributed_exec($$SET work_mem = '64kB'$$)",
    );
    tf.assert_no_changes();
    tf.destroy();
}

#[test]
fn a_grant_option_is_read_back_and_its_loss_by_hand_is_drift() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    let tf = Terraform::new();
    tf.config(&format!(
        r#"{}
resource "timescaledb_distributed_role" "lead" {{
  name = "lead"
}}

resource "timescaledb_foreign_server_grant" "lead" {{
  role              = timescaledb_distributed_role.lead.name
  with_grant_option = true
}}

resource "timescaledb_distributed_role" "plain" {{
  name = "plain"
}}

resource "timescaledb_foreign_server_grant" "plain" {{
  role = timescaledb_distributed_role.plain.name
}}
"#,
        c.provider_block()
    ));
    tf.init();
    tf.apply();
    let grantable = |role: &str| {
        c.psql(
            "access",
            &format!(
                "SELECT count(*) FILTER (WHERE a.is_grantable) || '/' || count(*) FROM pg_foreign_server s, \
                 aclexplode(s.srvacl) a WHERE a.grantee = '{role}'::regrole AND a.privilege_type = 'USAGE'"
            ),
        )
    };
    assert_eq!(grantable("lead"), "2/2");
    assert_eq!(grantable("plain"), "0/2");
    tf.assert_no_changes();
    c.psql(
        "access",
        "REVOKE GRANT OPTION FOR USAGE ON FOREIGN SERVER dn1 FROM lead",
    );
    let (changes, plan) = tf.plan();
    assert!(changes, "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("# timescaledb_foreign_server_grant.lead will be updated in-place"),
        "{}",
        plan.stdout
    );
    assert!(
        !plan
            .stdout
            .contains("# timescaledb_foreign_server_grant.plain"),
        "{}",
        plan.stdout
    );
    tf.apply();
    assert_eq!(grantable("lead"), "2/2");
    tf.assert_no_changes();
    tf.destroy();
}

#[test]
fn valid_until_is_compared_as_a_time() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    tf.config(&format!(
        "{}resource \"timescaledb_distributed_role\" \"r\" {{\n  name = \"expiring\"\n  login = true\n  valid_until = \"2030-01-01\"\n}}\n",
        c.provider_block()
    ));
    tf.init();
    tf.apply();
    // The node stores `2030-01-01 00:00:00+00`; the configured spelling plans clean.
    tf.assert_no_changes();
    c.psql("dn1", "ALTER ROLE expiring VALID UNTIL '2031-06-01'");
    let (changes, plan) = tf.plan();
    assert!(changes);
    assert!(
        plan.stdout
            .contains("\"differs: valid_until\" -> \"in sync\""),
        "{}",
        plan.stdout
    );
    tf.apply();
    tf.assert_no_changes();
    assert_eq!(
        c.psql("dn1", "SELECT rolvaliduntil = '2030-01-01'::timestamptz FROM pg_roles WHERE rolname = 'expiring'"),
        "t"
    );
    tf.destroy();
}

#[test]
fn a_role_that_exists_already_is_refused_at_plan_time_or_adopted() {
    let c = Cluster::start(1);
    c.psql("access", "CREATE ROLE app NOLOGIN CONNECTION LIMIT 3");
    let tf = Terraform::new();
    let config = |limit: i32| {
        format!(
            "{}resource \"timescaledb_certificate_authority\" \"ca\" {{\n  subject = {{ common_name = \"conflict\" }}\n}}\nresource \"timescaledb_distributed_role\" \"app\" {{\n  name = \"app\"\n  login = true\n  connection_limit = {limit}\n}}\n",
            c.provider_block()
        )
    };
    tf.config(&config(5));
    tf.init();
    // Refused by the plan, before the CA (or anything else) is made.
    let r = tf.run(&["plan", "-no-color"]);
    let out = r.flat();
    assert!(!r.ok, "{out}");
    assert!(
        out.contains("Role already exists")
            && out.contains("name = \"app\"")
            && out.contains("terraform import <address> 'app'"),
        "{out}"
    );
    let r = tf.try_apply();
    assert!(
        !r.ok && !r.all().contains("Creation complete"),
        "{}",
        r.all()
    );
    // Exactly as configured: adopted with a warning.
    c.psql("access", "ALTER ROLE app LOGIN CONNECTION LIMIT 5");
    c.psql("dn1", "CREATE ROLE app LOGIN CONNECTION LIMIT 5");
    let r = tf.apply();
    assert!(
        r.all().contains("Identical role will be adopted"),
        "{}",
        r.all()
    );
    tf.assert_no_changes();
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}
