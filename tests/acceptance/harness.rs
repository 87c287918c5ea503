//! Live nodes and the real terraform binary for acceptance tests.
//!
//! Every test gets its own cluster (an access node and data nodes on free
//! loopback ports, started by `tests/cluster.sh`) and its own Terraform
//! working directory; both are removed when the test ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn script() -> PathBuf {
    Path::new(ROOT).join("tests/cluster.sh")
}

pub struct Cluster {
    dir: tempfile::TempDir,
    pub ports: BTreeMap<String, u16>,
    /// The network namespace the nodes run in, when not the test's own.
    netns: Option<String>,
}

impl Cluster {
    /// Starts an access node and `data_nodes` data nodes.
    pub fn start(data_nodes: usize) -> Cluster {
        Cluster::start_in(data_nodes, None)
    }

    /// As [`Cluster::start`], the nodes listening on the loopback of the
    /// network namespace `netns` (nothing outside it reaches them); the
    /// test's own psql runs there too.
    pub fn start_in(data_nodes: usize, netns: Option<&str>) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("tsdb-acc-")
            .tempdir()
            .expect("temp dir");
        let out = Command::new(script())
            .arg("start")
            .arg(dir.path())
            .arg(data_nodes.to_string())
            .env("NETNS", netns.unwrap_or(""))
            .output()
            .expect("run cluster.sh");
        assert!(
            out.status.success(),
            "cluster did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ports = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(n, p)| (n.to_string(), p.trim().parse().expect("port")))
            })
            .collect();
        Cluster {
            dir,
            ports,
            netns: netns.map(str::to_string),
        }
    }

    /// A command run where the nodes are reachable.
    pub fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    pub fn port(&self, node: &str) -> u16 {
        self.ports[node]
    }

    /// Runs SQL with psql as postgres over TCP; returns unaligned output.
    pub fn psql(&self, node: &str, sql: &str) -> String {
        let out = self.psql_output(node, "postgres", sql);
        assert!(
            out.status.success(),
            "psql on {node} failed for {sql}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    pub fn psql_output(&self, node: &str, user: &str, sql: &str) -> Output {
        self.command("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port(node).to_string(),
                "-U",
                user,
                "-d",
                "postgres",
                "-AtX",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env_remove("PGPASSWORD")
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .expect("run psql")
    }

    pub fn hba_path(&self, node: &str) -> PathBuf {
        self.dir.path().join(node).join("pg_hba.conf")
    }

    pub fn read_hba(&self, node: &str) -> String {
        std::fs::read_to_string(self.hba_path(node)).expect("read pg_hba.conf")
    }

    /// Edits pg_hba.conf by hand, as an operator would (no reload).
    pub fn write_hba(&self, node: &str, text: &str) {
        std::fs::write(self.hba_path(node), text).expect("write pg_hba.conf");
    }

    /// Errors the server finds in the file on disk.
    pub fn hba_errors(&self, node: &str) -> String {
        self.psql(
            node,
            "SELECT line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL",
        )
    }

    /// A provider block for this cluster.
    pub fn provider_block(&self) -> String {
        let mut s = format!(
            "provider \"timescaledb\" {{\n  host = \"127.0.0.1\"\n  port = {}\n  username = \"postgres\"\n  sslmode = \"disable\"\n  data_nodes = {{\n",
            self.port("access")
        );
        for (name, port) in &self.ports {
            if name != "access" {
                s.push_str(&format!("    {name} = {{ port = {port} }}\n"));
            }
        }
        s.push_str("  }\n}\n");
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
        // Every node logs every statement with its parameters in full
        // (tests/cluster.sh); whatever the test did, the provider must have
        // left no secret there.
        if !std::thread::panicking() {
            let found = self.secrets_in_logs();
            assert!(
                found.is_empty(),
                "secrets in the servers' logs:\n{}",
                found.join("\n")
            );
        }
    }
}

impl Cluster {
    /// Lines of the nodes' logs, written for the provider's own sessions,
    /// that carry a secret: a private key or passfile content (in clear or
    /// hex-encoded, as bytea parameters are logged) or a role password in
    /// clear. Each is given with its node and line number, the secret cut.
    pub fn secrets_in_logs(&self) -> Vec<String> {
        let mut found = Vec::new();
        for node in self.ports.keys() {
            let log = self.data_dir(node).join("server.log");
            let text = std::fs::read(&log).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            for (i, line) in text.lines().enumerate() {
                if !line.contains(" terraform-provider-timescaledb: ") {
                    continue;
                }
                if let Some(what) = secret_in_log_line(line) {
                    let cut: String = line.chars().take(120).collect();
                    found.push(format!("{node}: server.log:{}: {what}: {cut}...", i + 1));
                }
            }
        }
        found
    }
}

/// What secret a server log line carries, if any.
pub fn secret_in_log_line(line: &str) -> Option<&'static str> {
    const FILE_MARKERS: &[(&str, &str)] = &[
        ("PRIVATE KEY", "a private key"),
        ("managed entries", "passfile content"),
    ];
    let mut texts = vec![line.to_string()];
    // bytea parameters are logged as '\x<hex>'
    for part in line.split("\\x").skip(1) {
        let hex: String = part.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
        if let Ok(bytes) = hex::decode(&hex[..hex.len() & !1]) {
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    for t in &texts {
        for (marker, what) in FILE_MARKERS {
            if t.contains(marker) {
                return Some(what);
            }
        }
    }
    // A role password is only ever sent as a verifier.
    let upper = line.to_ascii_uppercase();
    for (i, _) in upper.match_indices("PASSWORD '") {
        // inside a quoted parameter (distributed_exec's statement) the
        // literal's quotes are doubled
        let value = line[i + "PASSWORD '".len()..].trim_start_matches('\'');
        if !value.starts_with("SCRAM-SHA-256$") && !value.starts_with("md5") {
            return Some("a role password in clear");
        }
    }
    if upper.contains("PASSWORD E'") {
        return Some("a role password in clear");
    }
    None
}

/// A value as a Terraform expression: JSON's own escapes (which HCL reads
/// the same), with `${` and `%{` escaped so a string is never a template.
pub fn hcl(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::String(s) => serde_json::to_string(s)
            .expect("json")
            .replace("${", "$${")
            .replace("%{", "%%{"),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(hcl).collect::<Vec<_>>().join(", "))
        }
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{} = {}", hcl(&Value::String(k.clone())), hcl(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Asserts two texts are equal, printing both in full when they are not.
#[track_caller]
pub fn assert_text_eq(actual: &str, expected: &str, what: &str) {
    if actual != expected {
        panic!(
            "{what} differs\n--- expected ---\n{expected}\n--- actual ---\n{actual}\n--- end ---"
        );
    }
}

pub fn terraform_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TF_ACC_TERRAFORM") {
        return PathBuf::from(p);
    }
    let local = Path::new(ROOT).join(".tools/bin/terraform");
    assert!(
        local.exists(),
        "no terraform: run `make deps` or set TF_ACC_TERRAFORM"
    );
    local
}

/// Every terraform release the tests can use: the one the suite runs with
/// and, when it is another release, `terraform` on the PATH.
pub fn terraform_bins() -> Vec<PathBuf> {
    let mut bins = vec![terraform_bin()];
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("terraform"))
            .find(|f| f.is_file())
    });
    if let Some(p) = on_path {
        if terraform_version(&p) != terraform_version(&bins[0]) {
            bins.push(p);
        }
    }
    bins
}

/// A terraform release's version as numbers (`Terraform v1.11.4`: 1, 11, 4).
pub fn terraform_version(bin: &Path) -> Vec<u32> {
    let out = Command::new(bin)
        .arg("version")
        .output()
        .expect("terraform version");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.split('v').nth(1))
        .map(|v| v.split('.').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// The newest of [`terraform_bins`].
pub fn newest_terraform() -> PathBuf {
    terraform_bins()
        .into_iter()
        .max_by_key(|b| terraform_version(b))
        .expect("a terraform")
}

/// A filesystem mirror holding the provider binary built for this test run.
fn mirror() -> &'static Path {
    static MIRROR: OnceLock<PathBuf> = OnceLock::new();
    MIRROR.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mirror-{}", std::process::id()));
        let version = env!("CARGO_PKG_VERSION");
        let platform = dir.join(format!(
            "registry.terraform.io/local/timescaledb/{version}/linux_amd64"
        ));
        std::fs::create_dir_all(&platform).expect("mirror dir");
        std::fs::copy(
            env!("CARGO_BIN_EXE_terraform-provider-timescaledb"),
            platform.join(format!("terraform-provider-timescaledb_v{version}")),
        )
        .expect("copy provider");
        dir
    })
}

pub struct Terraform {
    dir: tempfile::TempDir,
    rc: PathBuf,
    work: PathBuf,
    bin: PathBuf,
}

pub struct Run {
    pub ok: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// [`Run::all`] with every run of white space made one space, so that
    /// text terraform wraps at its terminal width can be searched.
    pub fn flat(&self) -> String {
        self.all().split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl Terraform {
    pub fn new() -> Terraform {
        Terraform::with_binary(terraform_bin())
    }

    /// As [`Terraform::new`], with another terraform release.
    pub fn with_binary(bin: PathBuf) -> Terraform {
        let dir = tempfile::Builder::new()
            .prefix("tsdb-tf-")
            .tempdir()
            .expect("temp dir");
        let rc = dir.path().join("terraformrc");
        std::fs::write(
            &rc,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n    include = [\"registry.terraform.io/local/*\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/local/*\"]\n  }}\n}}\n",
                mirror().display()
            ),
        )
        .expect("write terraformrc");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        Terraform { dir, rc, work, bin }
    }

    pub fn work(&self) -> PathBuf {
        self.work.clone()
    }

    /// Writes main.tf: the provider requirement plus `body`.
    pub fn config(&self, body: &str) {
        let text = format!("terraform {{\n  required_providers {{\n    timescaledb = {{ source = \"local/timescaledb\" }}\n  }}\n}}\n\n{body}");
        std::fs::write(self.work().join("main.tf"), text).expect("write main.tf");
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// A terraform command in the working directory, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(self.work())
            .env("TF_CLI_CONFIG_FILE", &self.rc)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1");
        cmd
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = self
            .command(args)
            .envs(env.iter().copied())
            .output()
            .expect("run terraform");
        Run {
            ok: out.status.success(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn must(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(r.ok, "terraform {} failed:\n{}", args.join(" "), r.all());
        r
    }

    pub fn init(&self) {
        self.must(&["init", "-input=false", "-no-color"]);
    }

    #[track_caller]
    pub fn apply(&self) -> Run {
        self.must(&["apply", "-input=false", "-auto-approve", "-no-color"])
    }

    pub fn try_apply(&self) -> Run {
        self.run(&["apply", "-input=false", "-auto-approve", "-no-color"])
    }

    /// Plans with `-detailed-exitcode`: returns (has changes, output).
    #[track_caller]
    pub fn plan(&self) -> (bool, Run) {
        let r = self.run(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
        match r.code {
            0 => (false, r),
            2 => (true, r),
            _ => panic!("terraform plan failed:\n{}", r.all()),
        }
    }

    #[track_caller]
    pub fn assert_no_changes(&self) {
        let (changes, r) = self.plan();
        assert!(!changes, "expected no changes, got:\n{}", r.stdout);
    }

    /// Every resource in the state with its `id`, by address.
    pub fn state_ids(&self) -> Vec<(String, String)> {
        let show: serde_json::Value =
            serde_json::from_str(&self.must(&["show", "-json"]).stdout).expect("show -json");
        show["values"]["root_module"]["resources"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter(|r| r["mode"] == "managed")
                    .map(|r| {
                        (
                            r["address"].as_str().unwrap_or_default().to_string(),
                            r["values"]["id"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn destroy(&self) -> Run {
        self.must(&["destroy", "-input=false", "-auto-approve", "-no-color"])
    }
}

impl Cluster {
    /// The node's data directory.
    pub fn data_dir(&self, node: &str) -> PathBuf {
        self.dir.path().join(node)
    }

    /// Stops one node (fast shutdown); `start_node` brings it back on the
    /// same port.
    pub fn stop_node(&self, node: &str) {
        self.cluster_sh(&["stop-node", node]);
    }

    pub fn start_node(&self, node: &str) {
        self.cluster_sh(&["start-node", node]);
    }

    fn cluster_sh(&self, args: &[&str]) {
        let out = Command::new(script())
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .env("NETNS", self.netns.as_deref().unwrap_or(""))
            .output()
            .expect("run cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes the access node look like a TimescaleDB multi-node access node
    /// (see tests/sql/distributed_exec_standin.sql): data nodes as foreign
    /// servers, the catalog view, and `distributed_exec`.
    pub fn install_distributed_exec_standin(&self) {
        let mut sql = String::new();
        let passfile = self.data_dir("access").join("passfile");
        let script =
            std::fs::read_to_string(Path::new(ROOT).join("tests/sql/distributed_exec_standin.sql"))
                .expect("read stand-in");
        sql.push_str(&script.replace(":'passfile'", &format!("'{}'", passfile.display())));
        for (name, port) in &self.ports {
            if name != "access" {
                sql.push_str(&format!(
                    "CREATE SERVER {name} FOREIGN DATA WRAPPER timescaledb_fdw OPTIONS (host '127.0.0.1', port '{port}', dbname 'postgres');\n"
                ));
            }
        }
        let out = self
            .command("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port("access").to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qAtX",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .arg("-c")
            .arg(&sql)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "stand-in install failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A provider block for one fan-out: direct connections to the data
    /// nodes it lists, or `distributed_exec` on the access node with the data
    /// nodes discovered.
    pub fn provider_block_for(&self, direct: bool) -> String {
        if direct {
            self.provider_block().replace(
                "sslmode = \"disable\"",
                "sslmode = \"disable\"\n  fanout = \"direct\"",
            )
        } else {
            self.provider_block_discovering("")
        }
    }

    /// A provider block that lists no data nodes (they are discovered).
    pub fn provider_block_discovering(&self, extra: &str) -> String {
        format!(
            "provider \"timescaledb\" {{\n  host = \"127.0.0.1\"\n  port = {}\n  username = \"postgres\"\n  sslmode = \"disable\"\n{extra}}}\n",
            self.port("access")
        )
    }

    /// Runs psql with a connection string and extra environment, as root
    /// would from a shell; returns the raw output.
    pub fn psql_conn(&self, conninfo: &str, sql: &str, env: &[(&str, &str)]) -> Output {
        self.command("psql")
            .args([conninfo, "-wAtX", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("PGCONNECT_TIMEOUT", "5")
            .envs(env.iter().copied())
            .output()
            .expect("run psql")
    }
}

impl Terraform {
    /// A working directory holding a copy of `examples/`, in the example
    /// `rel` (so that module sources like `../../modules/x` resolve).
    /// The examples are written for the newest Terraform (write-only
    /// attributes, ephemeral variables): they run with it.
    pub fn example(rel: &str) -> Terraform {
        let mut tf = Terraform::with_binary(newest_terraform());
        let root = tf.dir.path().join("examples");
        copy_tree(&Path::new(ROOT).join("examples"), &root);
        tf.work = root.join(rel);
        assert!(tf.work.is_dir(), "no example {rel}");
        tf
    }

    /// Writes `terraform.tfvars.json` in the working directory.
    pub fn vars(&self, json: &serde_json::Value) {
        std::fs::write(
            self.work().join("terraform.tfvars.json"),
            serde_json::to_string_pretty(json).expect("json"),
        )
        .expect("write tfvars");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            if entry.file_name() != ".terraform" {
                copy_tree(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

impl Cluster {
    /// The example variables for this cluster: every node on 127.0.0.1.
    pub fn example_vars(&self) -> serde_json::Value {
        let data_nodes: serde_json::Map<String, serde_json::Value> = self
            .ports
            .iter()
            .filter(|(n, _)| *n != "access")
            .map(|(n, p)| {
                (
                    n.clone(),
                    serde_json::json!({ "host": "127.0.0.1", "port": p }),
                )
            })
            .collect();
        serde_json::json!({
            "access_host": "127.0.0.1",
            "access_port": self.port("access"),
            "access_address": "127.0.0.1",
            "data_nodes": data_nodes,
        })
    }

    /// What the provider may have left on the nodes: managed blocks, roles
    /// other than postgres, TLS. Empty when every node is clean.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for node in self.ports.keys() {
            if self.read_hba(node).contains("BEGIN terraform") {
                out.push(format!("{node}: managed pg_hba.conf rules"));
            }
            let roles = self.psql(
                node,
                "SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' AND rolname <> 'postgres'",
            );
            if !roles.is_empty() {
                out.push(format!("{node}: roles {roles}"));
            }
            if self.psql(node, "SHOW ssl") != "off" {
                out.push(format!("{node}: ssl on"));
            }
            let passfile =
                std::fs::read_to_string(self.data_dir(node).join("passfile")).unwrap_or_default();
            if passfile.contains("BEGIN terraform") {
                out.push(format!("{node}: managed passfile entries"));
            }
        }
        out
    }
}

/// The entries of a `nodes` map that a plan brings back to `in sync`, as
/// (node, what the refresh found), e.g. `("dn2", "differs: password")`.
pub fn drifted_nodes(plan: &str) -> Vec<(String, String)> {
    plan.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("~ \"")?;
            let (node, rest) = l.split_once('"')?;
            let rest = rest.trim_start().strip_prefix("= \"")?;
            let (was, tail) = rest.split_once('"')?;
            (tail.trim() == "-> \"in sync\"").then(|| (node.to_string(), was.to_string()))
        })
        .collect()
}

/// A CA whose key stays on the access node, and a certificate it issued
/// that dn1 serves for `127.0.0.1`: TLS on dn1.
pub fn tls_on_dn1(ca_common_name: &str) -> String {
    format!(
        r#"
resource "timescaledb_certificate_authority" "ca" {{
  subject  = {{ common_name = "{ca_common_name}" }}
  key_node = "access"
}}

resource "timescaledb_node_certificate" "server" {{
  kind         = "server"
  node         = "dn1"
  common_name  = "127.0.0.1"
  ip_addresses = ["127.0.0.1"]
  ca_cert_pem  = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node  = timescaledb_certificate_authority.ca.key_node
}}
"#
    )
}
