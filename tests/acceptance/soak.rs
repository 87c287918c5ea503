//! One plugin process through 200 create / read / plan / update / destroy
//! cycles of an hba rule, a passfile entry and a distributed role, driven
//! over gRPC as Terraform drives it: every cycle ends in an empty plan, and
//! the provider's memory, open files and server connections do not grow.

use tonic::transport::Channel;

use tsdb_provider::proto::tfplugin6 as pb;
use tsdb_provider::proto::tfplugin6::provider_client::ProviderClient;
use tsdb_provider::resources::{all, DynResource};
use tsdb_provider::schema::object;
use tsdb_provider::value::{msgpack, Value};

use crate::harness::Cluster;
use crate::protocol::{client_identity, connect, dv, provider_config, start_plugin};

const CYCLES: usize = 200;

struct Driver {
    client: ProviderClient<Channel>,
}

fn resource(name: &str) -> std::sync::Arc<dyn DynResource> {
    all().into_iter().find(|r| r.type_name() == name).unwrap()
}

fn config(type_name: &str, pairs: &[(&'static str, Value)]) -> Value {
    let mut v = object(
        resource(type_name)
            .schema()
            .attributes
            .iter()
            .map(|a| (a.name, Value::Null)),
    );
    for (k, x) in pairs {
        v.set_attr(k, x.clone());
    }
    v
}

impl Driver {
    async fn plan(&mut self, type_name: &str, prior: &Value, config: &Value) -> Value {
        let ty = resource(type_name).schema().ty();
        let proposed = if config.is_null() {
            Value::Null
        } else {
            // Terraform's proposed state: the config, with computed values
            // (null in config) carried over from the prior state.
            let mut p = config.clone();
            if let (Value::Object(pm), Value::Object(prior)) = (&mut p, prior) {
                for (k, v) in pm.iter_mut() {
                    if v.is_null() {
                        *v = prior.get(k).cloned().unwrap_or(Value::Null);
                    }
                }
            }
            p
        };
        let r = self
            .client
            .plan_resource_change(pb::plan_resource_change::Request {
                type_name: type_name.into(),
                prior_state: dv(prior, &ty),
                proposed_new_state: dv(&proposed, &ty),
                config: dv(config, &ty),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            r.diagnostics.iter().all(|d| d.severity != 1),
            "{:?}",
            r.diagnostics
        );
        msgpack::decode(&r.planned_state.unwrap().msgpack, &ty).unwrap()
    }

    async fn apply(
        &mut self,
        type_name: &str,
        prior: &Value,
        planned: &Value,
        config: &Value,
    ) -> Value {
        let ty = resource(type_name).schema().ty();
        let r = self
            .client
            .apply_resource_change(pb::apply_resource_change::Request {
                type_name: type_name.into(),
                prior_state: dv(prior, &ty),
                planned_state: dv(planned, &ty),
                config: dv(config, &ty),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.diagnostics.is_empty(), "{type_name}: {:?}", r.diagnostics);
        msgpack::decode(&r.new_state.unwrap().msgpack, &ty).unwrap()
    }

    async fn read(&mut self, type_name: &str, state: &Value) -> Value {
        let ty = resource(type_name).schema().ty();
        let r = self
            .client
            .read_resource(pb::read_resource::Request {
                type_name: type_name.into(),
                current_state: dv(state, &ty),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        msgpack::decode(&r.new_state.unwrap().msgpack, &ty).unwrap()
    }

    /// Create, read, an empty plan, update, read, an empty plan, destroy.
    async fn cycle(&mut self, type_name: &str, first: &Value, second: &Value) {
        let planned = self.plan(type_name, &Value::Null, first).await;
        let state = self.apply(type_name, &Value::Null, &planned, first).await;
        let state = self.read(type_name, &state).await;
        assert_eq!(
            self.plan(type_name, &state, first).await,
            state,
            "{type_name}: plan after create"
        );
        let planned = self.plan(type_name, &state, second).await;
        let state = self.apply(type_name, &state, &planned, second).await;
        let state = self.read(type_name, &state).await;
        assert_eq!(
            self.plan(type_name, &state, second).await,
            state,
            "{type_name}: plan after update"
        );
        self.apply(type_name, &state, &Value::Null, &Value::Null)
            .await;
    }
}

/// Resident memory (kB) and open file descriptors of a process.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

fn server_connections(c: &Cluster) -> usize {
    ["access", "dn1"]
        .iter()
        .map(|n| {
            c.psql(
                n,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'terraform-provider-timescaledb'",
            )
            .parse::<usize>()
            .unwrap()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_cycles_leave_no_growth() {
    let c = Cluster::start(1);
    let terraform = client_identity();
    let plugin = start_plugin(&terraform.pem);
    let pid = plugin.child.id();
    let mut d = Driver {
        client: connect(&plugin, Some(&terraform)).await.unwrap(),
    };
    let pty = tsdb_provider::provider::config::schema().ty();
    let provider = provider_config(&[
        ("host", Value::string("127.0.0.1")),
        ("port", Value::int(i64::from(c.port("access")))),
        ("username", Value::string("postgres")),
        ("sslmode", Value::string("disable")),
        (
            "data_nodes",
            Value::Map(
                [(
                    "dn1".to_string(),
                    Value::map_of_strings([("port", c.port("dn1").to_string())]),
                )]
                .into(),
            ),
        ),
    ]);
    let r = d
        .client
        .configure_provider(pb::configure_provider::Request {
            terraform_version: "1.0.3".into(),
            config: dv(&provider, &pty),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);

    let hba = |method: &str| {
        config(
            "timescaledb_hba_rule",
            &[
                ("node", Value::string("dn1")),
                ("type", Value::string("host")),
                ("databases", Value::list_of_strings(["all"])),
                ("users", Value::list_of_strings(["soak"])),
                ("address", Value::string("198.51.100.7")),
                ("method", Value::string(method)),
            ],
        )
    };
    let passfile = |password: &str| {
        config(
            "timescaledb_passfile_entry",
            &[
                ("username", Value::string("soak")),
                ("password", Value::string(password)),
            ],
        )
    };
    let role = |limit: i64| {
        config(
            "timescaledb_distributed_role",
            &[
                ("name", Value::string("soak")),
                ("password", Value::string("soak pass")),
                ("connection_limit", Value::int(limit)),
            ],
        )
    };
    let mut baseline = None;
    for i in 0..CYCLES {
        d.cycle(
            "timescaledb_hba_rule",
            &hba("reject"),
            &hba("scram-sha-256"),
        )
        .await;
        d.cycle(
            "timescaledb_passfile_entry",
            &passfile("one"),
            &passfile("two"),
        )
        .await;
        d.cycle("timescaledb_distributed_role", &role(3), &role(4))
            .await;
        if i == 9 {
            baseline = Some((usage(pid), server_connections(&c)));
        }
    }
    let ((rss0, fds0), conns0) = baseline.unwrap();
    let ((rss, fds), conns) = (usage(pid), server_connections(&c));
    println!(
        "after cycle 10 and cycle {CYCLES}: RSS {rss0} -> {rss} kB, open files {fds0} -> {fds}, server connections {conns0} -> {conns}"
    );
    assert!(fds <= fds0 + 2, "open files grew from {fds0} to {fds}");
    assert!(
        conns <= conns0.max(8),
        "server connections grew from {conns0} to {conns}"
    );
    assert!(
        rss <= rss0 + 8 * 1024,
        "resident memory grew from {rss0} kB to {rss} kB"
    );
    // And the nodes are as they were.
    assert_eq!(c.leftovers(), Vec::<String>::new());
}
