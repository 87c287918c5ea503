//! Opt-in: the runbook against a real TimescaleDB multi-node cluster (up to
//! 2.13) that the tester already has, through the `multinode-auth` module.
//!
//!   TSDB_ACCESS_NODE=host:port     the access node (required to run)
//!   TSDB_PASSWORD=...              the password of `postgres` (the role the
//!                                  examples log in as), if the nodes ask
//!                                  for one
//!   TSDB_ACCESS_ADDRESS=10.0.0.10  the access node's address as the data
//!                                  nodes see it (default: its host)
//!
//! The data nodes are read from the access node's catalog. For each method
//! switch (password, certificate, trust, and back) a role creates, fills and
//! counts a distributed hypertable; then one destroy leaves no role behind.
//! Without TSDB_ACCESS_NODE the test prints one line and passes.

use std::process::Command;

use serde_json::json;

use crate::harness::Terraform;

struct Real {
    host: String,
    port: u16,
    password: Option<String>,
    access_address: String,
}

impl Real {
    fn from_env() -> Option<Real> {
        let node = std::env::var("TSDB_ACCESS_NODE").ok()?;
        let (host, port) = node
            .rsplit_once(':')
            .expect("TSDB_ACCESS_NODE is host:port");
        Some(Real {
            host: host.to_string(),
            port: port.parse().expect("TSDB_ACCESS_NODE port"),
            password: std::env::var("TSDB_PASSWORD").ok(),
            access_address: std::env::var("TSDB_ACCESS_ADDRESS")
                .unwrap_or_else(|_| host.to_string()),
        })
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("PGUSER", "postgres".to_string())];
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.clone()));
        }
        env
    }

    /// psql on the access node; `Err` carries stderr.
    fn psql(&self, sql: &str) -> Result<String, String> {
        // One session, each statement sent on its own: TimescaleDB forwards
        // statements to data nodes one at a time.
        let mut cmd = Command::new("psql");
        cmd.args([
            "-h",
            &self.host,
            "-p",
            &self.port.to_string(),
            "-d",
            "postgres",
        ])
        .args(["-AtX", "-v", "ON_ERROR_STOP=1"]);
        for statement in sql.split("; ").filter(|s| !s.trim().is_empty()) {
            cmd.args(["-c", statement]);
        }
        let out = cmd.envs(self.env()).output().expect("run psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The data nodes as the catalog names them, with host and port.
    fn data_nodes(&self) -> serde_json::Value {
        let rows = self
            .psql(
                "SELECT node_name, (SELECT split_part(o, '=', 2) FROM unnest(options) o WHERE o LIKE 'host=%'), \
                 (SELECT split_part(o, '=', 2) FROM unnest(options) o WHERE o LIKE 'port=%') \
                 FROM timescaledb_information.data_nodes ORDER BY node_name",
            )
            .expect("read the data nodes");
        let mut nodes = serde_json::Map::new();
        for row in rows.lines() {
            let f: Vec<&str> = row.split('|').collect();
            nodes.insert(
                f[0].to_string(),
                json!({ "host": f[1], "port": f[2].parse::<u16>().expect("port") }),
            );
        }
        assert!(!nodes.is_empty(), "the access node has no data nodes");
        serde_json::Value::Object(nodes)
    }
}

/// As the role, through the access node: a distributed hypertable made,
/// filled and counted, which reaches every data node as that role.
fn distributed_hypertable_as_testrole(real: &Real, method: &str) {
    let sql = "SET ROLE testrole; \
        DROP TABLE IF EXISTS tf_acceptance_readings; \
        CREATE TABLE tf_acceptance_readings (time timestamptz NOT NULL, v int); \
        SELECT create_distributed_hypertable('tf_acceptance_readings', 'time'); \
        INSERT INTO tf_acceptance_readings SELECT now() - i * interval '1 hour', i FROM generate_series(1, 1000) i; \
        SELECT count(*) FROM tf_acceptance_readings; \
        DROP TABLE tf_acceptance_readings";
    let out = real.psql(sql).unwrap_or_else(|e| panic!("{method}: {e}"));
    assert!(out.lines().any(|l| l == "1000"), "{method}: {out}");
}

#[test]
fn the_runbook_on_a_real_timescaledb_multinode_cluster() {
    let Some(real) = Real::from_env() else {
        println!("TSDB_ACCESS_NODE is not set: the real TimescaleDB multi-node cluster tests did not run");
        return;
    };
    let tf = Terraform::example("environments/staging");
    let vars = json!({
        "access_host": real.host,
        "access_port": real.port,
        "access_address": real.access_address,
        "data_nodes": real.data_nodes(),
        "testrole_client_password": "real cluster client password",
        "testrole_internal_password": "real cluster internal password",
    });
    let env = real.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = |args: &[&str]| {
        let r = tf.run_env(args, &env);
        assert!(r.ok, "terraform {}:\n{}", args.join(" "), r.all());
        r
    };
    run(&["init", "-input=false", "-no-color"]);
    for method in [
        "password",
        "certificate",
        "password",
        "trust",
        "certificate",
        "trust",
    ] {
        let mut v = vars.clone();
        v["auth_method"] = json!(method);
        tf.vars(&v);
        run(&["apply", "-input=false", "-auto-approve", "-no-color"]);
        // The role may create tables on the access node and, through it,
        // on the data nodes.
        real.psql("GRANT CREATE ON SCHEMA public TO testrole; CALL distributed_exec($$GRANT CREATE ON SCHEMA public TO testrole$$)")
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        distributed_hypertable_as_testrole(&real, method);
        println!(
            "{method}: applied; as testrole a distributed hypertable was made, filled and counted"
        );
        let r = tf.run_env(
            &["plan", "-input=false", "-no-color", "-detailed-exitcode"],
            &env,
        );
        assert_eq!(
            r.code,
            0,
            "{method}: a second plan found changes:\n{}",
            r.all()
        );
        real.psql("REVOKE CREATE ON SCHEMA public FROM testrole; CALL distributed_exec($$REVOKE CREATE ON SCHEMA public FROM testrole$$)")
            .unwrap_or_else(|e| panic!("{method}: {e}"));
    }
    run(&["destroy", "-input=false", "-auto-approve", "-no-color"]);
    assert_eq!(
        real.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'testrole'")
            .unwrap(),
        "0"
    );
}
