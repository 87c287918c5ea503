//! `make bench`: plan and apply at fleet scale, against a plain-psql
//! baseline, with the costs counted where they happen.
//!
//! For each terraform release, fleet (an access node and 2 or 16 data nodes)
//! and size (N = 100, 500, 2000 resources, the runbook's mix: per user a
//! distributed role with client and internal passwords on every node, its
//! foreign server grant, the access node's passfile line and a scram
//! pg_hba.conf rule on a data node) it runs the real terraform binary: apply from empty, plan
//! with no changes, the same plan with every connection through an SSH
//! bastion (an OpenSSH server on loopback), plan after 1% drift, destroy. The floor no provider can
//! go under is measured beside it in the same run, with the same terraform:
//! as many built-in `terraform_data` resources holding the same fields, with
//! the same dependencies (Terraform 1.4 and later), each of its steps right
//! after the provider's. Plans, which change nothing and take seconds, are
//! taken three times each (`TSDB_BENCH_PLAN_RUNS`), alternating with the
//! floor's, and the median run counts. Three floors can be measured
//! (`TSDB_BENCH_FLOORS`, `fields,schema` unless told): `fields` holds the
//! fields the configuration sets; `sensitive` the same with the passwords
//! marked sensitive, as the provider's schema marks them; `schema` every
//! attribute each of the provider's resources holds in its state after the
//! apply (defaults, computed values and null attributes included), with the
//! same values and sensitive marks: what Terraform itself spends on
//! resources of that shape. Per step it records wall time, the
//! provider's CPU time and peak RSS (measured by a wrapper the mirror runs
//! the provider under, from the kernel's rusage of the process), terraform's
//! own CPU time, and the SQL statements and connections each node received
//! (counted in each server's log with `log_statement = all` and
//! `log_connections = on`, not by the provider). The baseline reaches the
//! same end state, reads it back and removes it with psql: one session per
//! node, the fewest statements. Results go to stdout as a table and to
//! `bench/results.json`.
//!
//! `TSDB_BENCH_SIZES=100,500`, `TSDB_BENCH_DATA_NODES=2` and
//! `TSDB_BENCH_TERRAFORM=/usr/local/bin/terraform` narrow the run.
//! `TSDB_BENCH_PROFILE=1` prints, per step, the kinds of statement each
//! node received most; `TSDB_BENCH_PERF=<dir>` records a CPU profile of
//! each provider process with `perf record` into that directory (read it
//! with `perf report -i <file>`; the provider's CPU time then includes
//! perf's own).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../acceptance/harness.rs"]
#[allow(dead_code)]
mod harness;
#[path = "../acceptance/sshd.rs"]
#[allow(dead_code)]
mod sshd;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use harness::{hcl, Cluster, Terraform, ROOT};

const BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-timescaledb");

/// The nodes of a fleet, in order.
fn node_names(data_nodes: usize) -> Vec<String> {
    std::iter::once("access".to_string())
        .chain((1..=data_nodes).map(|i| format!("dn{i}")))
        .collect()
}

/// Cumulative CPU seconds of this process's waited-for children.
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = stat.rsplit_once(") ").unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields after "(comm) ": state=0 ... cutime=13, cstime=14
    let ticks: f64 = f[13].parse::<f64>().unwrap() + f[14].parse::<f64>().unwrap();
    ticks / 100.0
}

/// CPU seconds the servers have used so far: each postmaster (from its
/// `postmaster.pid`) and every live process under it, with what their
/// exited children used (backends that ended, programs a backend ran).
fn servers_cpu(data_dirs: &[PathBuf]) -> f64 {
    let roots: Vec<u32> = data_dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("postmaster.pid")).ok())
        .filter_map(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
        .collect();
    let mut ticks = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // after "(comm) ": state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14
        let ppid: u32 = f.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if roots.contains(&pid) || roots.contains(&ppid) {
            ticks += f[11..15]
                .iter()
                .map(|v| v.parse::<f64>().unwrap_or(0.0))
                .sum::<f64>();
        }
    }
    ticks / 100.0
}

/// The system's Python, not a version manager's shim (which would add a
/// shell script or two to every start of the provider, counted as
/// terraform's time).
fn python() -> String {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(|p| format!("{p} -S"))
        .unwrap_or_else(|| "/usr/bin/env python3".into())
}

/// A provider mirror whose plugin is the real binary under a wrapper that
/// records the kernel's rusage of it when it exits.
fn bench_mirror(dir: &Path) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let platform = dir.join(format!(
        "mirror/registry.terraform.io/local/timescaledb/{version}/linux_amd64"
    ));
    std::fs::create_dir_all(&platform).unwrap();
    let wrapper = platform.join(format!("terraform-provider-timescaledb_v{version}"));
    std::fs::write(
        &wrapper,
        format!(
            r#"#!{python}
# Runs the provider and appends its rusage (CPU seconds, peak RSS) to
# $TSDB_BENCH_RUSAGE when it exits. With $TSDB_BENCH_PERF (a directory) the
# provider runs under `perf record`, one profile per process.
import json, os, resource, signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
perf = os.environ.get("TSDB_BENCH_PERF")
prefix = []
if perf:
    out = os.path.join(perf, "provider-%d.data" % os.getpid())
    prefix = ["perf", "record", "-q", "-F", "499", "-g", "-o", out, "--"]
p = subprocess.Popen(prefix + [{bin:?}] + sys.argv[1:])
signal.signal(signal.SIGTERM, lambda *_: p.terminate())
rc = p.wait()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(os.environ["TSDB_BENCH_RUSAGE"], "a") as f:
    f.write(json.dumps({{"cpu": ru.ru_utime + ru.ru_stime, "maxrss_kb": ru.ru_maxrss}}) + "\n")
sys.exit(rc)
"#,
            bin = BIN,
            python = python()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let rc = dir.join("terraformrc");
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n    include = [\"registry.terraform.io/local/*\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/local/*\"]\n  }}\n}}\n",
            dir.join("mirror").display()
        ),
    )
    .unwrap();
    rc
}

/// One user of the bench's mix.
struct User {
    name: String,
    password: String,
    internal: String,
    node: String,
    address: String,
}

/// Per-node counts of logged statements and connections.
#[derive(Clone, Default)]
struct ServerCounts {
    statements: BTreeMap<String, u64>,
    connections: BTreeMap<String, u64>,
    /// Per node, statements by kind (their text with literals and numbers
    /// blanked, cut short): where the statements go.
    kinds: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A statement's kind: its first line with literals and numbers blanked,
/// cut at 72 characters.
fn statement_kind(text: &str) -> String {
    let mut out = String::new();
    let mut in_literal = false;
    let mut last_digit = false;
    for c in text.chars() {
        if in_literal {
            if c == '\'' {
                in_literal = false;
            }
            continue;
        }
        match c {
            '\'' => {
                in_literal = true;
                out.push_str("'?'");
            }
            '0'..='9' if !last_digit => out.push('#'),
            '0'..='9' => {}
            _ => out.push(c),
        }
        last_digit = c.is_ascii_digit();
        if out.len() >= 72 {
            break;
        }
    }
    out
}

struct Logs {
    files: BTreeMap<String, PathBuf>,
}

impl Logs {
    fn offsets(&self) -> BTreeMap<String, u64> {
        self.files
            .iter()
            .map(|(n, p)| {
                (
                    n.clone(),
                    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
                )
            })
            .collect()
    }

    /// What each node logged since `from`.
    fn counts_since(&self, from: &BTreeMap<String, u64>) -> ServerCounts {
        // give the servers a moment to flush the last lines
        std::thread::sleep(Duration::from_millis(200));
        let mut out = ServerCounts::default();
        for (n, p) in &self.files {
            let bytes = std::fs::read(p).unwrap_or_default();
            let start = (from[n] as usize).min(bytes.len());
            let text = String::from_utf8_lossy(&bytes[start..]);
            let mut st = 0;
            let mut conns = 0;
            let kinds = out.kinds.entry(n.clone()).or_default();
            for line in text.lines() {
                let statement = line
                    .split_once("LOG:  statement: ")
                    .map(|(_, s)| s)
                    .or_else(|| {
                        line.split_once("LOG:  execute ")
                            .and_then(|(_, s)| s.split_once(": "))
                            .map(|(_, s)| s)
                    });
                if let Some(text) = statement {
                    st += 1;
                    *kinds.entry(statement_kind(text)).or_default() += 1;
                } else if line.contains("LOG:  connection authorized") {
                    conns += 1;
                }
            }
            out.statements.insert(n.clone(), st);
            out.connections.insert(n.clone(), conns);
        }
        out
    }
}

struct Step {
    name: &'static str,
    wall: f64,
    /// The wall time of every run of a step taken more than once (plans);
    /// the step's own figures are those of the median run.
    walls: Vec<f64>,
    /// CPU seconds of the PostgreSQL servers (all nodes) during the step.
    servers_cpu: f64,
    /// How many provider processes terraform started.
    provider_processes: usize,
    provider_cpu: f64,
    terraform_cpu: f64,
    provider_rss_mb: f64,
    /// Size of the state file after the step: terraform copies and
    /// encodes the state as it works, so its cost grows with this.
    state_bytes: u64,
    server: ServerCounts,
}

/// A `terraform_data` floor and its steps so far.
/// What a floor's `terraform_data` resources hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FloorKind {
    /// The fields the configuration sets.
    Fields,
    /// The same, with the passwords marked sensitive.
    Sensitive,
    /// Every attribute each resource of the provider holds in its state
    /// after the apply, with the same values and sensitive marks.
    Schema,
}

impl FloorKind {
    /// `TSDB_BENCH_FLOORS`: a comma-separated list of `fields`,
    /// `sensitive`, `schema`; `fields,schema` unless told.
    fn chosen() -> Vec<FloorKind> {
        let list = std::env::var("TSDB_BENCH_FLOORS").unwrap_or_else(|_| "fields,schema".into());
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s {
                "fields" => FloorKind::Fields,
                "sensitive" => FloorKind::Sensitive,
                "schema" => FloorKind::Schema,
                other => {
                    panic!("TSDB_BENCH_FLOORS: unknown floor {other:?} (fields, sensitive, schema)")
                }
            })
            .collect()
    }

    /// Its name in the table and its key in `bench/results.json`.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            FloorKind::Fields => ("floor", "floor_terraform_data"),
            FloorKind::Sensitive => ("floor*", "floor_terraform_data_sensitive"),
            FloorKind::Schema => ("floor+", "floor_terraform_data_schema"),
        }
    }
}

struct Floor {
    tf: Terraform,
    kind: FloorKind,
    /// For the schema floor: the provider's resources as its state held
    /// them after the apply (taken at the floor's first step, which runs
    /// right after the provider's apply).
    resources: Option<Vec<StateResource>>,
    steps: Vec<Step>,
}

struct Fleet {
    cluster: Cluster,
    names: Vec<String>,
    logs: Logs,
    work: tempfile::TempDir,
    rc: PathBuf,
    rusage: PathBuf,
    data_dirs: Vec<PathBuf>,
}

impl Fleet {
    fn start(data_nodes: usize) -> Fleet {
        let cluster = Cluster::start(data_nodes);
        let names = node_names(data_nodes);
        let mut files = BTreeMap::new();
        for n in &names {
            for setting in ["log_statement = 'all'", "log_connections = on"] {
                cluster.psql(n, &format!("ALTER SYSTEM SET {setting}"));
            }
            cluster.psql(n, "SELECT pg_reload_conf()");
            files.insert(n.clone(), cluster.data_dir(n).join("server.log"));
        }
        let servers: String = names[1..]
            .iter()
            .map(|n| format!("CREATE SERVER {n} FOREIGN DATA WRAPPER bench_fdw;"))
            .collect();
        cluster.psql(
            "access",
            &format!("CREATE FOREIGN DATA WRAPPER bench_fdw; {servers}"),
        );
        let work = tempfile::Builder::new()
            .prefix("tsdb-bench-")
            .tempdir()
            .unwrap();
        let rc = bench_mirror(work.path());
        let rusage = work.path().join("rusage.jsonl");
        let data_dirs = names.iter().map(|n| cluster.data_dir(n)).collect();
        Fleet {
            data_dirs,
            cluster,
            names,
            logs: Logs { files },
            work,
            rc,
            rusage,
        }
    }

    /// The runbook's mix: per user, a distributed role with its client and
    /// internal passwords on every node, its grant on every data node's
    /// foreign server, the access node's passfile line with the internal
    /// password, and a scram rule for it in a data node's pg_hba.conf
    /// (spread over the data nodes). `n` / 4 users.
    fn config(&self, n: usize) -> String {
        let mut body = self.cluster.provider_block().replace(
            "sslmode = \"disable\"",
            "sslmode = \"disable\"\n  fanout = \"direct\"",
        );
        for (i, u) in self.users(n).iter().enumerate() {
            body.push_str(&format!(
                "resource \"timescaledb_distributed_role\" \"r{i}\" {{\n  name = \"{name}\"\n  login = true\n  password = \"{pw}\"\n  data_node_password = \"{internal}\"\n}}\n\
                 resource \"timescaledb_foreign_server_grant\" \"g{i}\" {{\n  role = timescaledb_distributed_role.r{i}.name\n}}\n\
                 resource \"timescaledb_passfile_entry\" \"p{i}\" {{\n  username = timescaledb_distributed_role.r{i}.name\n  password = \"{internal}\"\n  position = {i}\n}}\n\
                 resource \"timescaledb_hba_rule\" \"h{i}\" {{\n  node = \"{node}\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [timescaledb_distributed_role.r{i}.name]\n  address = \"{address}\"\n  method = \"scram-sha-256\"\n  position = {i}\n}}\n",
                name = u.name, pw = u.password, internal = u.internal, node = u.node, address = u.address,
            ));
        }
        body
    }

    /// The users of the mix at size `n`.
    fn users(&self, n: usize) -> Vec<User> {
        let data_nodes = &self.names[1..];
        (0..n / 4)
            .map(|i| User {
                name: format!("role{i}"),
                password: format!("client pw {i}"),
                internal: format!("internal pw {i}"),
                node: data_nodes[i % data_nodes.len()].clone(),
                address: format!("198.18.{}.{}/32", i / 250, i % 250),
            })
            .collect()
    }

    /// The floor: as many of Terraform's built-in `terraform_data` as the
    /// mix has resources, holding the same fields, with the same
    /// dependencies (each grant, passfile line and rule on its role).
    /// `changed` gives that many roles another value, for a plan that has
    /// changes to show. With `sensitive` the passwords are marked
    /// sensitive, as the provider's schema marks them.
    fn fields_floor_config(&self, n: usize, changed: usize, sensitive: bool) -> String {
        let secret = |v: &str| {
            if sensitive {
                format!("sensitive(\"{v}\")")
            } else {
                format!("\"{v}\"")
            }
        };
        let mut body = String::new();
        for (i, u) in self.users(n).iter().enumerate() {
            let pw = secret(if i < changed {
                "changed"
            } else {
                u.password.as_str()
            });
            let internal = secret(&u.internal);
            body.push_str(&format!(
                "resource \"terraform_data\" \"r{i}\" {{\n  input = {{\n    name = \"{name}\"\n    login = true\n    password = {pw}\n    data_node_password = {internal}\n  }}\n}}\n\
                 resource \"terraform_data\" \"g{i}\" {{\n  input = {{\n    role = terraform_data.r{i}.input.name\n  }}\n}}\n\
                 resource \"terraform_data\" \"p{i}\" {{\n  input = {{\n    username = terraform_data.r{i}.input.name\n    password = {internal}\n    position = {i}\n  }}\n}}\n\
                 resource \"terraform_data\" \"h{i}\" {{\n  input = {{\n    node = \"{node}\"\n    type = \"host\"\n    databases = [\"all\"]\n    users = [terraform_data.r{i}.input.name]\n    address = \"{address}\"\n    method = \"scram-sha-256\"\n    position = {i}\n  }}\n}}\n",
                name = u.name, node = u.node, address = u.address,
            ));
        }
        body
    }

    /// A floor's terraform, in a directory of its own, for steps taken one
    /// at a time beside the provider's (same terraform, same run).
    fn floor(&self, bin: &Path, kind: FloorKind) -> Floor {
        let tf = Terraform::with_binary(bin.to_path_buf());
        tf.config("");
        tf.run(&["init", "-input=false"]);
        Floor {
            tf,
            kind,
            resources: None,
            steps: Vec::new(),
        }
    }

    /// One step of a floor, with `changed` of its roles given another
    /// value. The schema floor takes its resources from the provider's
    /// state in `ours` at its first step, right after the provider's apply.
    fn floor_step(
        &self,
        floor: &mut Floor,
        ours: &Terraform,
        n: usize,
        changed: usize,
        args: &[&str],
        expect: i32,
    ) -> Step {
        let config = match floor.kind {
            FloorKind::Fields => self.fields_floor_config(n, changed, false),
            FloorKind::Sensitive => self.fields_floor_config(n, changed, true),
            FloorKind::Schema => {
                let resources = floor.resources.get_or_insert_with(|| state_resources(ours));
                schema_floor_config(resources, changed)
            }
        };
        floor.tf.config(&config);
        self.terraform(&floor.tf, floor.kind.names().1, args, &[expect])
    }

    /// One terraform command in `tf`'s directory, measured; `who` names its
    /// kept state (`TSDB_BENCH_KEEP`).
    fn terraform(&self, tf: &Terraform, who: &str, args: &[&str], expect: &[i32]) -> Step {
        let _ = std::fs::remove_file(&self.rusage);
        let offsets = self.logs.offsets();
        let cpu0 = children_cpu();
        let servers0 = servers_cpu(&self.data_dirs);
        let t = Instant::now();
        let rc = self.rc.to_string_lossy().to_string();
        let rusage = self.rusage.to_string_lossy().to_string();
        let run = tf.run_env(
            args,
            &[
                ("TF_CLI_CONFIG_FILE", rc.as_str()),
                ("TSDB_BENCH_RUSAGE", rusage.as_str()),
            ],
        );
        let wall = t.elapsed().as_secs_f64();
        let total_cpu = children_cpu() - cpu0;
        let servers = servers_cpu(&self.data_dirs) - servers0;
        assert!(
            expect.contains(&run.code),
            "terraform {args:?} exited {}:\n{}",
            run.code,
            run.all()
        );
        let records: Vec<serde_json::Value> = std::fs::read_to_string(&self.rusage)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // (a fold from 0.0: an empty sum of f64 is -0.0)
        let provider_cpu: f64 = records
            .iter()
            .map(|r| r["cpu"].as_f64().unwrap_or(0.0))
            .fold(0.0, |a, b| a + b);
        let rss = records
            .iter()
            .map(|r| r["maxrss_kb"].as_f64().unwrap_or(0.0))
            .fold(0.0, f64::max);
        Step {
            name: "",
            wall,
            walls: vec![wall],
            servers_cpu: servers,
            provider_processes: records.len(),
            provider_cpu,
            terraform_cpu: (total_cpu - provider_cpu).max(0.0),
            provider_rss_mb: rss / 1024.0,
            state_bytes: state_bytes(tf, who),
            server: self.logs.counts_since(&offsets),
        }
    }

    /// The same end state by psql, one session per node at once; returns
    /// the step with the statements the servers logged.
    fn psql_step(&self, scripts: &BTreeMap<String, String>) -> Step {
        let offsets = self.logs.offsets();
        let servers0 = servers_cpu(&self.data_dirs);
        let t = Instant::now();
        let handles: Vec<_> = scripts
            .iter()
            .map(|(node, sql)| {
                let path = self.work.path().join(format!("{node}.sql"));
                std::fs::write(&path, sql).unwrap();
                let port = self.cluster.port(node);
                std::thread::spawn(move || {
                    let out = Command::new("psql")
                        .args([
                            "-h",
                            "127.0.0.1",
                            "-p",
                            &port.to_string(),
                            "-U",
                            "postgres",
                            "-d",
                            "postgres",
                            "-qAtX",
                        ])
                        .args(["-v", "ON_ERROR_STOP=1", "-f"])
                        .arg(&path)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let wall = t.elapsed().as_secs_f64();
        Step {
            name: "",
            wall,
            walls: vec![wall],
            servers_cpu: servers_cpu(&self.data_dirs) - servers0,
            provider_processes: 0,
            provider_cpu: 0.0,
            terraform_cpu: 0.0,
            provider_rss_mb: 0.0,
            state_bytes: 0,
            server: self.logs.counts_since(&offsets),
        }
    }

    fn file_write_sql(path: &Path, content: &[u8]) -> String {
        format!(
            "BEGIN;\nSELECT lo_from_bytea(0, '\\x{}'::bytea) AS lo \\gset\nSELECT lo_export(:lo, '{}');\nROLLBACK;\n",
            hex::encode(content),
            path.display()
        )
    }
}

/// The state file's size; with `TSDB_BENCH_KEEP=<dir>` a copy of the
/// first one of each `who` (the apply's) is kept there too, as
/// `<who>.tfstate`, for a look at what a resource holds.
/// `config` with `bastion` (a `bastion` block) in its provider block.
fn with_bastion(config: &str, bastion: &str) -> String {
    let (provider, rest) = config
        .split_once("\n}\n")
        .expect("the configuration opens with the provider block");
    format!("{provider}\n{bastion}}}\n{rest}")
}

fn state_bytes(tf: &Terraform, who: &str) -> u64 {
    let path = tf.work().join("terraform.tfstate");
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if let Some(dir) = std::env::var_os("TSDB_BENCH_KEEP") {
        let dir = PathBuf::from(dir);
        let _ = std::fs::create_dir_all(&dir);
        let keep = dir.join(format!("{who}.tfstate"));
        if !keep.exists() {
            let _ = std::fs::copy(&path, keep);
        }
    }
    size
}

/// One resource instance of a state file.
struct StateResource {
    /// The name in its address (`r0`, `g0`, ...).
    name: String,
    attributes: serde_json::Map<String, serde_json::Value>,
    /// The top-level attributes the state marks sensitive.
    sensitive: Vec<String>,
}

/// The managed resources of a terraform working directory's state file.
fn state_resources(tf: &Terraform) -> Vec<StateResource> {
    let path = tf.work().join("terraform.tfstate");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    for r in state["resources"].as_array().into_iter().flatten() {
        if r["mode"] != "managed" {
            continue;
        }
        for inst in r["instances"].as_array().into_iter().flatten() {
            out.push(StateResource {
                name: r["name"].as_str().unwrap().to_string(),
                attributes: inst["attributes"].as_object().unwrap().clone(),
                sensitive: inst["sensitive_attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|path| path[0]["value"].as_str().map(str::to_string))
                    .collect(),
            });
        }
    }
    out
}

/// The schema floor: a `terraform_data` per resource of the provider's
/// state, holding every attribute the resource holds, with the same values,
/// sensitive marks and dependencies (a grant's, passfile line's and rule's
/// role name taken from its role's). `changed` of the roles get another
/// client password, as in the fields floor. The object is held in
/// `triggers_replace`, which the state keeps once, where `input` is kept
/// twice (again as `output`): a resource of the provider keeps each
/// attribute once.
fn schema_floor_config(resources: &[StateResource], changed: usize) -> String {
    let mut body = String::new();
    for r in resources {
        let (kind, index) = r.name.split_at(1);
        let role = format!("terraform_data.r{index}.triggers_replace.name");
        body.push_str(&format!(
            "resource \"terraform_data\" \"{}\" {{\n  triggers_replace = {{\n",
            r.name
        ));
        for (key, value) in &r.attributes {
            let mut expr = match (kind, key.as_str()) {
                ("g", "role") | ("p", "username") => role.clone(),
                ("h", "users") => format!("[{role}]"),
                ("r", "password") if index.parse::<usize>().unwrap() < changed => {
                    "\"changed\"".into()
                }
                _ => hcl(value),
            };
            if r.sensitive.contains(key) {
                expr = format!("sensitive({expr})");
            }
            body.push_str(&format!("    {key} = {expr}\n"));
        }
        body.push_str("  }\n}\n");
    }
    body
}

/// How many times each plan is taken (`TSDB_BENCH_PLAN_RUNS`, 3 unless
/// told).
fn plan_runs() -> usize {
    std::env::var("TSDB_BENCH_PLAN_RUNS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&k| k > 0)
        .unwrap_or(3)
}

/// The run of median wall time, carrying the wall times of all.
fn median(mut runs: Vec<Step>) -> Step {
    let walls: Vec<f64> = runs.iter().map(|s| s.wall).collect();
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let mut s = runs.swap_remove(runs.len() / 2);
    s.walls = walls;
    s
}

fn sizes() -> Vec<usize> {
    std::env::var("TSDB_BENCH_SIZES")
        .unwrap_or_else(|_| "100,500,2000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn fleets() -> Vec<usize> {
    std::env::var("TSDB_BENCH_DATA_NODES")
        .unwrap_or_else(|_| "2,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// The terraform releases to measure with: `TSDB_BENCH_TERRAFORM` (paths,
/// comma-separated), else every release the tests use.
fn terraforms() -> Vec<PathBuf> {
    match std::env::var("TSDB_BENCH_TERRAFORM") {
        Ok(list) => list.split(',').map(PathBuf::from).collect(),
        Err(_) => harness::terraform_bins(),
    }
}

/// Milliseconds from exec to the handshake line, median of 21 starts.
fn startup_ms() -> f64 {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let mut child = Command::new(BIN)
            .env(
                "TF_PLUGIN_MAGIC_COOKIE",
                tsdb_provider::plugin::MAGIC_COOKIE_VALUE,
            )
            .env("PLUGIN_PROTOCOL_VERSIONS", "6")
            .env("PLUGIN_CLIENT_CERT", &cert)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// Milliseconds one SCRAM-SHA-256 verifier takes to make (4096 rounds of
/// PBKDF2, the cost of every password the provider sets), median of 21.
fn scram_ms() -> f64 {
    use tsdb_provider::password::{encrypt, Encryption};
    use tsdb_provider::secret::Secret;
    let password = Secret::new("a password of usual length");
    let mut times: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(encrypt(&password, "role", Encryption::ScramSha256));
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

fn per_node(c: &ServerCounts, which: fn(&ServerCounts) -> &BTreeMap<String, u64>) -> String {
    which(c)
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn max_node(m: &BTreeMap<String, u64>) -> u64 {
    m.values().copied().max().unwrap_or(0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` builds this
    // target too but must not start a twenty-minute run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("the fleet benchmark runs with `make bench` (cargo bench --bench fleet)");
        return;
    }
    let startup = startup_ms();
    println!("plugin start-up to handshake: {startup:.2} ms (median of 21)");
    let scram = scram_ms();
    println!(
        "one SCRAM-SHA-256 verifier: {scram:.2} ms (median of 21); a role with client and internal passwords \
         costs two when it is created or its password changes, none when it is read back or refreshed"
    );
    let mut results = Vec::new();
    for bin in terraforms() {
        let version = harness::terraform_version(&bin);
        println!(
            "\nterraform {} ({})",
            version
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("."),
            bin.display()
        );
        println!(
            "{:>3} {:>5} {:<30} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9} {:>9}  statements per node",
            "DN", "N", "step", "wall s", "prov s", "tf s", "pg s", "RSS MB", "state KB", "max stmt", "max conn"
        );
        for data_nodes in fleets() {
            for n in sizes() {
                results.push(run(&bin, &version, data_nodes, n));
            }
        }
    }
    let out = json!({
        "machine": machine(),
        "startup_ms_median": startup,
        "scram_verifier_ms_median": scram,
        "runs": results,
    });
    let dir = Path::new(ROOT).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("\nsaved {}", path.display());
}

/// One fleet and size with one terraform release: the provider's steps,
/// the `terraform_data` floor (Terraform 1.4 and later have it) and the
/// psql baseline.
fn run(bin: &Path, version: &[u32], data_nodes: usize, n: usize) -> serde_json::Value {
    let fleet = Fleet::start(data_nodes);
    let tf = Terraform::with_binary(bin.to_path_buf());
    tf.config(&fleet.config(n));
    tf.run_env(
        &["init", "-input=false"],
        &[("TF_CLI_CONFIG_FILE", fleet.rc.to_str().unwrap())],
    );
    // The floor in the same run, each of its steps right after the
    // provider's, so both meet the machine in the same state; on request a
    // second floor with its passwords marked sensitive.
    let mut floors = Vec::new();
    if version >= &[1, 4][..] {
        for kind in FloorKind::chosen() {
            floors.push(fleet.floor(bin, kind));
        }
    }
    // A step of ours and of each floor, `runs` times alternating (the
    // median run counts); `changed` of the floors' roles get another value.
    // Plans change nothing and take seconds, and single runs of the same
    // plan vary by a fifth: they are taken several times.
    let step = |floors: &mut Vec<Floor>,
                name: &'static str,
                args: &[&str],
                expect: i32,
                changed: usize,
                runs: usize| {
        let mut ours = Vec::new();
        let mut theirs: Vec<Vec<Step>> = floors.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            ours.push(fleet.terraform(&tf, "ours", args, &[expect]));
            for (f, runs) in floors.iter_mut().zip(&mut theirs) {
                let mut s = fleet.floor_step(f, &tf, n, changed, args, expect);
                s.name = name;
                runs.push(s);
            }
        }
        for (f, runs) in floors.iter_mut().zip(theirs) {
            f.steps.push(median(runs));
        }
        let mut s = median(ours);
        s.name = name;
        s
    };
    let apply = ["apply", "-auto-approve", "-input=false", "-no-color"];
    let plan = ["plan", "-detailed-exitcode", "-input=false", "-no-color"];
    let destroy = ["destroy", "-auto-approve", "-input=false", "-no-color"];
    let mut steps = vec![step(&mut floors, "apply", &apply, 0, 0, 1)];
    // The end state, for the baseline to write by hand.
    let files: BTreeMap<String, (PathBuf, Vec<u8>)> = fleet
        .names
        .iter()
        .map(|node| {
            let p = fleet.cluster.data_dir(node).join("pg_hba.conf");
            (node.clone(), (p.clone(), std::fs::read(&p).unwrap()))
        })
        .collect();
    let passfile_path = fleet.cluster.data_dir("access").join("passfile");
    let passfile = std::fs::read(&passfile_path).unwrap();
    steps.push(step(
        &mut floors,
        "plan (no changes)",
        &plan,
        0,
        0,
        plan_runs(),
    ));
    // The same plan with every connection through an SSH bastion (an
    // OpenSSH server on loopback): what the tunnel costs.
    let bastion = sshd::Sshd::on_loopback();
    let direct = fleet.config(n);
    tf.config(&with_bastion(&direct, &bastion.block()));
    let through_bastion = step(
        &mut Vec::new(),
        "plan (no changes, bastion)",
        &plan,
        0,
        0,
        plan_runs(),
    );
    tf.config(&direct);
    drop(bastion);
    // 1% drift, half of it on roles of one data node, half revoked grants.
    let drift = (n / 100).max(2);
    let users = fleet.users(n);
    let roles = users.len();
    let mut sql = String::new();
    for i in 0..drift / 2 {
        sql.push_str(&format!("ALTER ROLE role{} CONNECTION LIMIT 7;", i % roles));
    }
    fleet.cluster.psql("dn1", &sql);
    let mut sql = String::new();
    for i in 0..drift - drift / 2 {
        sql.push_str(&format!(
            "REVOKE USAGE ON FOREIGN SERVER dn1 FROM role{};",
            roles - 1 - i % roles
        ));
    }
    fleet.cluster.psql("access", &sql);
    steps.push(step(
        &mut floors,
        "plan (1% drift)",
        &plan,
        2,
        drift,
        plan_runs(),
    ));
    steps.push(step(&mut floors, "destroy", &destroy, 0, 0, 1));
    steps.push(through_bastion);

    // The baseline: the same end state by psql, read back, removed.
    let originals: BTreeMap<String, Vec<u8>> = fleet
        .names
        .iter()
        .map(|node| (node.clone(), std::fs::read(&files[node].0).unwrap()))
        .collect();
    let role_names: Vec<String> = users.iter().map(|u| u.name.clone()).collect();
    let servers = fleet.names[1..].join(", ");
    let mut apply = BTreeMap::new();
    let mut read = BTreeMap::new();
    let mut destroy = BTreeMap::new();
    for node in &fleet.names {
        let (path, content) = &files[node];
        let mut a = Fleet::file_write_sql(path, content);
        let mut r = format!(
            "SELECT pg_read_file('{}');\nSELECT rolname, rolpassword FROM pg_authid;\n",
            path.display()
        );
        let mut d = Fleet::file_write_sql(path, &originals[node]);
        if node == "access" {
            a.push_str(&Fleet::file_write_sql(&passfile_path, &passfile));
            r.push_str(&format!(
                "SELECT pg_read_file('{}');\nSELECT srvname, srvacl FROM pg_foreign_server;\n",
                passfile_path.display()
            ));
            d.push_str(&format!(
                "REVOKE USAGE ON FOREIGN SERVER {servers} FROM {};\n",
                role_names.join(", ")
            ));
            d.push_str(&Fleet::file_write_sql(&passfile_path, b""));
        }
        a.push_str("SELECT pg_reload_conf();\n");
        for u in &users {
            let pw = if node == "access" {
                &u.password
            } else {
                &u.internal
            };
            a.push_str(&format!("CREATE ROLE {} LOGIN PASSWORD '{pw}';\n", u.name));
            d.push_str(&format!("DROP ROLE {};\n", u.name));
        }
        if node == "access" {
            a.push_str(&format!(
                "GRANT USAGE ON FOREIGN SERVER {servers} TO {};\n",
                role_names.join(", ")
            ));
        }
        d.push_str("SELECT pg_reload_conf();\n");
        apply.insert(node.clone(), a);
        read.insert(node.clone(), r);
        destroy.insert(node.clone(), d);
    }
    let mut b = Vec::new();
    for (name, scripts) in [
        ("apply", &apply),
        ("read back", &read),
        ("destroy", &destroy),
    ] {
        let mut s = fleet.psql_step(scripts);
        s.name = name;
        b.push(s);
    }

    for (who, s) in steps
        .iter()
        .map(|s| ("ours", s))
        .chain(
            floors
                .iter()
                .flat_map(|f| f.steps.iter().map(move |s| (f.kind.names().0, s))),
        )
        .chain(b.iter().map(|s| ("psql", s)))
    {
        println!(
            "{:>3} {:>5} {:<30} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.1} {:>8.0} {:>9} {:>9}  {}",
            data_nodes,
            n,
            format!("{who} {}", s.name),
            s.wall,
            s.provider_cpu,
            s.terraform_cpu,
            s.servers_cpu,
            s.provider_rss_mb,
            s.state_bytes as f64 / 1024.0,
            max_node(&s.server.statements),
            max_node(&s.server.connections),
            per_node(&s.server, |c| &c.statements)
        );
    }
    if std::env::var_os("TSDB_BENCH_PROFILE").is_some() {
        for s in &steps {
            for node in ["access", "dn1"] {
                let mut kinds: Vec<(&String, &u64)> =
                    s.server.kinds.get(node).into_iter().flatten().collect();
                kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                println!("    {} on {node}:", s.name);
                for (k, c) in kinds.iter().take(12) {
                    println!("    {c:>8}  {k}");
                }
            }
        }
    }
    let ratio = |ours: &Step, base: &Step| ours.wall / base.wall.max(1e-3);
    let access_per_resource = steps[0]
        .server
        .statements
        .get("access")
        .copied()
        .unwrap_or(0) as f64
        / n as f64;
    if floors.is_empty() {
        println!(
                    "{:>3} {:>5} ratios: apply {:.2}x psql, plan {:.2}x psql read-back, destroy {:.2}x psql; access node statements per resource in apply {:.1}",
                    data_nodes, n, ratio(&steps[0], &b[0]), ratio(&steps[1], &b[1]), ratio(&steps[3], &b[2]), access_per_resource
                );
    }
    println!(
        "{:>3} {:>5} through a bastion: plan {:.2}x the direct plan",
        data_nodes,
        n,
        ratio(&steps[4], &steps[1])
    );
    for f in &floors {
        let floor = &f.steps;
        println!(
                    "{:>3} {:>5} against the {}: apply {:.2}x, plan {:.2}x, plan after drift {:.2}x, destroy {:.2}x; access node statements per resource in apply {:.1}",
                    data_nodes, n, f.kind.names().0, ratio(&steps[0], &floor[0]), ratio(&steps[1], &floor[1]), ratio(&steps[2], &floor[2]), ratio(&steps[3], &floor[3]), access_per_resource
                );
    }
    let step_json = |s: &Step| {
        json!({
            "step": s.name,
            "wall_s": s.wall,
            "wall_s_every_run": s.walls,
            "provider_cpu_s": s.provider_cpu,
            "terraform_cpu_s": s.terraform_cpu,
            "servers_cpu_s": s.servers_cpu,
            "provider_processes": s.provider_processes,
            "provider_peak_rss_mb": s.provider_rss_mb,
            "state_bytes": s.state_bytes,
            "statements": s.server.statements,
            "connections": s.server.connections,
            "statement_kinds": s.server.kinds,
        })
    };
    let mut out = json!({
        "terraform": version,
        "data_nodes": data_nodes,
        "resources": n,
        "ours": steps.iter().map(step_json).collect::<Vec<_>>(),
        "psql_baseline": b.iter().map(step_json).collect::<Vec<_>>(),
    });
    for f in &floors {
        out[f.kind.names().1] = f.steps.iter().map(step_json).collect();
    }
    out
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let pg = String::from_utf8_lossy(
        &Command::new("psql")
            .arg("--version")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .trim()
    .to_string();
    json!({ "cpu": model, "cores": cores, "memory": mem, "psql": pg })
}
