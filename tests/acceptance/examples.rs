//! Every example under `examples/` applied to live nodes, re-planned with no
//! changes, and destroyed leaving the nodes clean; and an environment moved
//! from password to certificate authentication.

use serde_json::json;

use crate::certificates::{cert_login, user_cert};
use crate::harness::{Cluster, Terraform};
use crate::password_auth::login_with_passfile;

/// A cluster whose access node looks like a TimescaleDB multi-node access
/// node (foreign servers for the data nodes, distributed_exec).
fn cluster() -> Cluster {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    c
}

pub(crate) fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// `init`, `apply`, checks, a plan with no changes, `destroy`, clean nodes.
fn round_trip(c: &Cluster, tf: &Terraform, check: impl Fn()) {
    tf.init();
    tf.apply();
    check();
    tf.assert_no_changes();
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

pub(crate) fn works_as_testrole(c: &Cluster) {
    c.psql(
        "access",
        "SET ROLE testrole; CALL distributed_exec($$SET work_mem = '64kB'$$)",
    );
}

pub(crate) fn certificate_logins(c: &Cluster, role: &str) {
    let cert = user_cert(c, role);
    for node in ["dn1", "dn2"] {
        let out = cert_login(c, node, role, Some(&cert));
        assert!(
            out.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!cert_login(c, node, role, None).status.success());
    }
}

pub(crate) fn password_logins(c: &Cluster) {
    for node in ["dn1", "dn2"] {
        let out = login_with_passfile(c, node, "testrole");
        assert!(
            out.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn quickstart() {
    let c = Cluster::start(2);
    let tf = Terraform::example("quickstart");
    tf.vars(&json!({
        "access_port": c.port("access"),
        "dn1_port": c.port("dn1"),
        "dn2_port": c.port("dn2"),
    }));
    round_trip(&c, &tf, || {
        assert!(c
            .read_hba("dn1")
            .contains("host all testrole 127.0.0.1/32 trust"));
    });
}

#[test]
fn trust() {
    let c = cluster();
    let tf = Terraform::example("trust");
    tf.vars(&c.example_vars());
    round_trip(&c, &tf, || works_as_testrole(&c));
}

#[test]
fn password() {
    let c = cluster();
    let tf = Terraform::example("password");
    tf.vars(&merge(
        c.example_vars(),
        json!({ "testrole_client_password": "client pass", "testrole_internal_password": "int:ernal\\pass" }),
    ));
    round_trip(&c, &tf, || {
        password_logins(&c);
        works_as_testrole(&c);
    });
}

#[test]
fn certificate() {
    let c = cluster();
    let tf = Terraform::example("certificate");
    tf.vars(&c.example_vars());
    round_trip(&c, &tf, || {
        certificate_logins(&c, "testrole");
        assert_eq!(c.psql("access", "SHOW ssl"), "on");
    });
}

#[test]
fn environment_dev() {
    let c = cluster();
    let tf = Terraform::example("environments/dev");
    tf.vars(&c.example_vars());
    round_trip(&c, &tf, || {
        works_as_testrole(&c);
        assert!(c
            .read_hba("dn2")
            .contains("host all testrole 127.0.0.1/32 trust # (10) access node (trust)"));
    });
}

#[test]
fn environment_prod() {
    let c = cluster();
    let tf = Terraform::example("environments/prod");
    tf.vars(&c.example_vars());
    round_trip(&c, &tf, || {
        certificate_logins(&c, "testrole");
        certificate_logins(&c, "reporter");
    });
}

#[test]
fn module_variables_are_validated() {
    let c = Cluster::start(1);
    let tf = Terraform::example("environments/staging");
    tf.vars(&merge(
        c.example_vars(),
        json!({
            "auth_method": "kerberos",
            "access_address": "not an address",
            "testrole_client_password": "a",
            "testrole_internal_password": "b",
        }),
    ));
    tf.init();
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(!run.ok);
    let all = run.all();
    assert!(
        all.contains("must be one of trust, password or certificate"),
        "{all}"
    );
    assert!(
        all.contains("must be an IP address or a CIDR range"),
        "{all}"
    );
}

/// Staging moves from password to certificate authentication: the plan
/// creates the new rule before it removes the old one, and at no point of
/// the apply is testrole without a way in.
#[test]
fn environment_staging_moves_from_password_to_certificate() {
    let c = cluster();
    let tf = Terraform::example("environments/staging");
    let vars = merge(
        c.example_vars(),
        json!({ "testrole_client_password": "clientpass", "testrole_internal_password": "internalpass" }),
    );
    tf.vars(&vars);
    // No way in for testrole but the ones the module makes: the test
    // cluster's catch-all trust rules come after a reject.
    let hba = c.read_hba("dn1");
    let first_rule = hba.find("\nlocal").unwrap() + 1;
    c.write_hba(
        "dn1",
        &format!(
            "{}host all testrole 127.0.0.0/8 reject\n{}",
            &hba[..first_rule],
            &hba[first_rule..]
        ),
    );
    c.psql("dn1", "SELECT pg_reload_conf()");
    tf.init();
    tf.apply();
    password_logins(&c);
    works_as_testrole(&c);
    tf.assert_no_changes();

    tf.vars(&merge(vars, json!({ "auth_method": "certificate" })));
    let (changes, plan) = tf.plan();
    assert!(changes);
    for expected in [
        "module.auth.timescaledb_certificate_authority.ca[\"1\"] will be created",
        "module.auth.timescaledb_node_certificate.server[\"dn1\"] will be created",
        "module.auth.timescaledb_node_certificate.user[\"testrole\"] will be created",
        "+/- create replacement and then destroy",
        "module.auth.timescaledb_hba_rule.access_node[\"dn1\"] must be replaced",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "{expected} not in:\n{}",
            plan.stdout
        );
    }
    // Watch the way in while the apply runs: the passfile login or the
    // certificate login must work at every moment.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let ports = (c.port("dn1"), c.data_dir("access"), c.data_dir("dn1"));
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut probes = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                probes += 1;
                if !way_in(ports.0, &ports.1, &ports.2) {
                    failures.push(probes);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            (probes, failures)
        })
    };
    tf.apply();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (probes, failures) = watcher.join().unwrap();
    assert!(
        probes > 5 && failures.is_empty(),
        "{} of {probes} probes found no way in",
        failures.len()
    );
    // The probe itself works after the move (by certificate now).
    assert!(way_in(
        c.port("dn1"),
        &c.data_dir("access"),
        &c.data_dir("dn1")
    ));
    let out = login_with_passfile(&c, "dn1", "testrole");
    assert!(
        !out.status.success(),
        "the password rule is gone:\n{}\n{}",
        c.psql(
            "dn1",
            "SELECT line_number, type, user_name, auth_method, error FROM pg_hba_file_rules"
        ),
        String::from_utf8_lossy(&out.stdout)
    );
    certificate_logins(&c, "testrole");
    assert!(c
        .read_hba("dn1")
        .contains("hostssl all testrole 127.0.0.1/32 cert clientcert=verify-full"));
    assert!(!c.read_hba("dn1").contains("scram-sha-256 # (10)"));
    tf.assert_no_changes();
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
    assert!(c
        .read_hba("dn1")
        .contains("host all testrole 127.0.0.0/8 reject\nlocal"));
}

/// Whether testrole gets in to the data node at `port` from the access
/// node's side: with the passfile password, or with its certificate once
/// the node runs TLS.
fn way_in(port: u16, access: &std::path::Path, dn: &std::path::Path) -> bool {
    let psql = |conninfo: String, env: Option<(&str, String)>| {
        let mut cmd = std::process::Command::new("psql");
        cmd.args([&conninfo, "-wAtX", "-c", "SELECT 1"])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("PGCONNECT_TIMEOUT", "5");
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        cmd.output().map(|o| o.status.success()).unwrap_or(false)
    };
    let base = format!("host=127.0.0.1 port={port} dbname=postgres user=testrole");
    if psql(
        format!("{base} sslmode=prefer"),
        Some(("PGPASSFILE", access.join("passfile").display().to_string())),
    ) {
        return true;
    }
    let certs = access.join("timescaledb/certs");
    let base_name = "9e87613bf77d50f190dca2a795efcc44"; // md5("testrole")
    psql(
        format!(
            "{base} sslmode=verify-ca sslrootcert={} sslcert={} sslkey={}",
            dn.join("root.crt").display(),
            certs.join(format!("{base_name}.crt")).display(),
            certs.join(format!("{base_name}.key")).display()
        ),
        None,
    )
}

/// Every switch of authentication method, in both directions, takes one
/// apply, and the certificate set-up is destroyed in one run: against the
/// stand-in, which couples the access node's TLS with the data nodes' as
/// TimescaleDB does, so the order of the certificates matters.
#[test]
fn environment_staging_switches_every_way_in_one_apply_each() {
    let c = cluster();
    let tf = Terraform::example("environments/staging");
    let vars = merge(
        c.example_vars(),
        json!({ "testrole_client_password": "clientpass", "testrole_internal_password": "internalpass" }),
    );
    tf.init();
    // trust -> certificate -> password -> certificate -> trust -> password
    // -> trust -> certificate: each of the six directed switches once.
    for method in [
        "trust",
        "certificate",
        "password",
        "certificate",
        "trust",
        "password",
        "trust",
        "certificate",
    ] {
        tf.vars(&merge(vars.clone(), json!({ "auth_method": method })));
        let r = tf.try_apply();
        assert!(r.ok, "switching to {method}:\n{}", r.all());
        works_as_testrole(&c);
        tf.assert_no_changes();
    }
    assert_eq!(c.psql("access", "SHOW ssl"), "on");
    let r = tf.run(&["destroy", "-input=false", "-auto-approve", "-no-color"]);
    assert!(r.ok, "destroy in one run:\n{}", r.all());
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// With TimescaleDB multi-node, the access node reaches data nodes over
/// TLS only while its own ssl is on (the stand-in does the same). The
/// provider refuses to break that: the access node's TLS does not come
/// before every data node serves TLS, and a data node's TLS does not go
/// while the access node's is on; each refusal says what to write.
#[test]
fn the_access_node_tls_waits_for_the_data_nodes_and_goes_first() {
    let c = cluster();
    let tf = Terraform::new();
    let cert = |name: &str, node: &str| {
        format!(
            "resource \"timescaledb_node_certificate\" \"{name}\" {{\n  kind = \"server\"\n  node = \"{node}\"\n  common_name = \"localhost\"\n  ip_addresses = [\"127.0.0.1\"]\n  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem\n  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem\n}}\n"
        )
    };
    let config = |certs: &[(&str, &str)]| {
        let mut s = format!(
            "{}resource \"timescaledb_certificate_authority\" \"ca\" {{\n  subject = {{ common_name = \"coupling\" }}\n}}\n",
            c.provider_block_discovering("")
        );
        for (name, node) in certs {
            s.push_str(&cert(name, node));
        }
        s
    };
    // The access node alone first: refused, and its ssl stays off.
    tf.config(&config(&[("access", "access")]));
    tf.init();
    let r = tf.try_apply();
    let out = r.flat();
    assert!(!r.ok, "{out}");
    assert!(
        out.contains("Data nodes serve no TLS yet")
            && out.contains("\"dn1\", \"dn2\"")
            && out.contains("depends_on"),
        "{out}"
    );
    assert_eq!(c.psql("access", "SHOW ssl"), "off");
    works_as_testrole_or_postgres(&c);

    // With the data nodes' first, it goes through.
    tf.config(&config(&[("dn1", "dn1"), ("dn2", "dn2")]));
    tf.apply();
    tf.config(&config(&[
        ("dn1", "dn1"),
        ("dn2", "dn2"),
        ("access", "access"),
    ]));
    tf.apply();
    assert_eq!(c.psql("access", "SHOW ssl"), "on");
    works_as_testrole_or_postgres(&c);

    // Taking dn2's TLS away now is refused, and dn2 still serves it.
    tf.config(&config(&[("dn1", "dn1"), ("access", "access")]));
    let r = tf.try_apply();
    let out = r.flat();
    assert!(!r.ok, "{out}");
    assert!(
        out.contains("The access node still requires TLS to its data nodes")
            && out.contains("depends_on"),
        "{out}"
    );
    assert_eq!(c.psql("dn2", "SHOW ssl"), "on");
    works_as_testrole_or_postgres(&c);

    // What the refusals prevent: dn2 without TLS while the access node's
    // ssl is on cuts it off, as on a real cluster.
    c.psql("dn2", "ALTER SYSTEM SET ssl = off");
    c.psql("dn2", "SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = c.psql_output(
        "access",
        "postgres",
        "CALL distributed_exec($$SET work_mem = '64kB'$$, '{dn2}')",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not support SSL"),
        "{err}"
    );
    // A role still reaches every node: distributed_exec cannot reach dn2,
    // the failed call changed nothing, and the provider goes over its own
    // connections instead, saying so.
    let roles = Terraform::new();
    roles.config(&format!(
        "{}resource \"timescaledb_distributed_role\" \"r\" {{\n  name = \"fallback\"\n  login = true\n}}\n",
        c.provider_block_discovering("")
    ));
    roles.init();
    for (args, what) in [
        (
            vec!["apply", "-input=false", "-auto-approve", "-no-color"],
            "1",
        ),
        (
            vec!["destroy", "-input=false", "-auto-approve", "-no-color"],
            "0",
        ),
    ] {
        let r = roles.run(&args);
        let out = r.flat();
        assert!(r.ok, "{out}");
        assert!(
            out.contains("Warning: distributed_exec could not reach the data nodes")
                && out.contains("over its own connections instead"),
            "{out}"
        );
        for node in ["access", "dn1", "dn2"] {
            assert_eq!(
                c.psql(
                    node,
                    "SELECT count(*) FROM pg_roles WHERE rolname = 'fallback'"
                ),
                what,
                "{node} after {}",
                args[0]
            );
        }
    }
    c.psql("dn2", "ALTER SYSTEM RESET ssl");
    c.psql("dn2", "SELECT pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(300));

    // The access node first, then the data nodes: one destroy.
    tf.config(&config(&[("dn1", "dn1"), ("dn2", "dn2")]));
    tf.apply();
    let r = tf.run(&["destroy", "-input=false", "-auto-approve", "-no-color"]);
    assert!(r.ok, "{}", r.all());
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// A distributed call as the provider's own role, which needs no role of
/// the example's.
fn works_as_testrole_or_postgres(c: &Cluster) {
    c.psql("access", "CALL distributed_exec($$SET work_mem = '64kB'$$)");
}

/// The stand-in runs a transactional `distributed_exec` as TimescaleDB
/// does, as one distributed transaction: a call that fails on the second
/// node leaves the first unchanged, which the provider relies on when it
/// reads a failed call as "no data node changed".
#[test]
fn a_distributed_call_that_fails_on_one_node_changes_none() {
    let c = cluster();
    let has = |node: &str| {
        c.psql(
            node,
            "SELECT count(*) FROM pg_roles WHERE rolname = 'twopc'",
        )
    };
    c.psql("dn2", "CREATE ROLE twopc");
    let out = c.psql_output(
        "access",
        "postgres",
        "CALL distributed_exec($$CREATE ROLE twopc$$)",
    );
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(has("dn1"), "0", "dn1 kept a change of a failed call");
    for node in ["dn1", "dn2"] {
        assert_eq!(c.psql(node, "SELECT count(*) FROM pg_prepared_xacts"), "0");
    }
    c.psql("dn2", "DROP ROLE twopc");
    c.psql("access", "CALL distributed_exec($$CREATE ROLE twopc$$)");
    assert_eq!((has("dn1"), has("dn2")), ("1".into(), "1".into()));
    c.psql("access", "CALL distributed_exec($$DROP ROLE twopc$$)");
    assert_eq!((has("dn1"), has("dn2")), ("0".into(), "0".into()));
}
