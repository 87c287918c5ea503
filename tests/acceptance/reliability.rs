//! Faults, concurrency, hostile input and secrets: the provider killed or
//! interrupted mid-write, connections dropped by the server, 300 resources
//! applied with -parallelism=50 ten times, injection attempts in string
//! attributes, and every secret kept out of logs and output.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Cluster, Terraform};

/// The provider processes under terraform `pid` (terraform runs itself
/// again as a child, which starts the providers).
fn provider_children(pid: u32) -> Vec<u32> {
    let mut procs = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse::<u32>().ok())
        {
            procs.push((p, ppid, comm.contains("terraform-provi")));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            procs
                .iter()
                .filter(|(_, pp, _)| *pp == parent)
                .map(|(p, _, _)| *p),
        );
        i += 1;
    }
    procs
        .iter()
        .filter(|(p, _, provider)| *provider && tree.contains(p))
        .map(|(p, _, _)| *p)
        .collect()
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// Signals a whole process group.
pub(crate) fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, "--", &format!("-{pgid}")])
        .status();
}

/// Starts a terraform command in the background.
fn spawn(tf: &Terraform, args: &[&str]) -> Child {
    spawn_command(tf, args).spawn().expect("start terraform")
}

fn spawn_command(tf: &Terraform, args: &[&str]) -> Command {
    let mut cmd = tf.command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn hba_rules(node: &str, n: usize, octet: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "resource \"timescaledb_hba_rule\" \"{node}_{i}\" {{\n  node = \"{node}\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"198.18.{octet}.{i}\"\n  method = \"reject\"\n  position = {i}\n}}\n"
            )
        })
        .collect()
}

fn passfile_entries(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "resource \"timescaledb_passfile_entry\" \"u{i}\" {{\n  username = \"u{i}\"\n  password = \"p:{i}\\\\x\"\n  position = {i}\n}}\n"
            )
        })
        .collect()
}

/// The passfile, when there is one, is whole: it ends with a newline, its
/// managed block is opened and closed once, and every line in it is a
/// marker, a position comment, or exactly one of the entries
/// [`passfile_entries`] writes (a line cut short would change a password).
fn passfile_is_whole(c: &Cluster) -> Result<(), String> {
    let path = c.data_dir("access").join("passfile");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(()); // not written yet when the kill came
    };
    if text.is_empty() {
        return Ok(()); // emptied by a destroy
    }
    if !text.ends_with('\n') {
        return Err(format!("no final newline:\n{text}"));
    }
    let begins = text.lines().filter(|l| l.starts_with("# BEGIN ")).count();
    let ends = text.lines().filter(|l| l.starts_with("# END ")).count();
    if begins != ends || begins > 1 {
        return Err(format!("{begins} block openings, {ends} closings:\n{text}"));
    }
    for line in text.lines() {
        let entry_ok = tsdb_provider::passfile::Entry::parse(line).is_some_and(|e| {
            e.username
                .strip_prefix('u')
                .is_some_and(|i| e.password == format!("p:{i}\\x"))
                && (e.hostname, e.port.as_str(), e.database.as_str()) == ("*".to_string(), "*", "*")
        });
        let comment_ok = line.starts_with("# BEGIN ")
            || line.starts_with("# END ")
            || line
                .strip_prefix("# position ")
                .is_some_and(|n| n.parse::<i64>().is_ok());
        if !entry_ok && !comment_ok {
            return Err(format!("unexpected line {line:?} in:\n{text}"));
        }
    }
    Ok(())
}

fn managed_hba_rules(c: &Cluster, node: &str) -> usize {
    c.read_hba(node)
        .lines()
        .filter(|l| l.contains("reject # ("))
        .count()
}

#[test]
fn the_provider_killed_mid_write_never_leaves_a_broken_file() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    tf.config(&format!(
        "{}{}{}",
        c.provider_block(),
        hba_rules("dn1", 30, 1),
        passfile_entries(30)
    ));
    tf.init();
    let mut interrupted = 0;
    for round in 0..8u64 {
        let args = if round % 4 == 3 {
            vec!["destroy", "-auto-approve", "-no-color", "-parallelism=2"]
        } else {
            vec!["apply", "-auto-approve", "-no-color", "-parallelism=2"]
        };
        let mut child = spawn(&tf, &args);
        // Kill the provider at a different moment of each run: early in
        // planning, in the middle of the writes, near their end.
        let delay = Duration::from_millis(150 + 110 * round);
        let start = Instant::now();
        let mut killed = false;
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() >= delay && !killed {
                for p in provider_children(child.id()) {
                    signal(p, "-KILL");
                    killed = true;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let ok = child.wait().unwrap().success();
        if !ok {
            interrupted += 1;
        }
        // Whatever moment the kill hit, the files in force are whole and
        // valid, and the node restarts with them.
        assert_eq!(c.hba_errors("dn1"), "", "round {round}");
        passfile_is_whole(&c).unwrap();
        c.stop_node("dn1");
        c.start_node("dn1");
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} runs were cut off by the kill"
    );
    // The next apply converges, adopting what an interrupted apply made.
    tf.apply();
    tf.assert_no_changes();
    assert_eq!(managed_hba_rules(&c, "dn1"), 30);
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

#[test]
fn ctrl_c_stops_cleanly_and_the_next_apply_converges() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    tf.config(&format!(
        "{}{}{}",
        c.provider_block(),
        hba_rules("dn1", 60, 2),
        passfile_entries(10)
    ));
    tf.init();
    // As a terminal's Ctrl-C does: SIGINT to terraform's whole process
    // group, once the first rules are on the node.
    let mut cmd = spawn_command(
        &tf,
        &["apply", "-auto-approve", "-no-color", "-parallelism=1"],
    );
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    while managed_hba_rules(&c, "dn1") < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the apply did not get three rules in within three minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    signal_group(child.id(), "-INT");
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Interrupt received"), "{text}");
    assert_eq!(c.hba_errors("dn1"), "");
    passfile_is_whole(&c).unwrap();
    let partial = managed_hba_rules(&c, "dn1");
    assert!(
        partial < 60,
        "the interrupt came too late to test anything ({partial} rules made):\n{text}"
    );
    tf.apply();
    tf.assert_no_changes();
    assert_eq!(managed_hba_rules(&c, "dn1"), 60);
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

#[test]
fn connections_dropped_by_the_server_mid_apply() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    let roles: String = (0..5)
        .map(|i| format!("resource \"timescaledb_distributed_role\" \"r{i}\" {{\n  name = \"dropped{i}\"\n}}\n"))
        .collect();
    tf.config(&format!(
        "{}{}{roles}",
        c.provider_block(),
        hba_rules("dn1", 20, 3)
    ));
    tf.init();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let port = c.port("dn1");
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let out = Command::new("psql")
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-AtXc"])
                    .arg("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'terraform-provider-timescaledb'")
                    .output()
                    .unwrap();
                kills += String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<u32>()
                    .unwrap_or(0);
                std::thread::sleep(Duration::from_millis(40));
            }
            kills
        })
    };
    let run = tf.run(&["apply", "-auto-approve", "-no-color", "-parallelism=4"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let kills = killer.join().unwrap();
    assert!(kills > 0, "no connection was dropped");
    if !run.ok {
        // The failure says which node dropped the connection (not only a
        // resource address that happens to hold "dn1").
        let text = run.flat();
        assert!(text.contains("on node \"dn1\""), "{text}");
        assert!(!text.contains("on node \"access\""), "{text}");
    }
    assert_eq!(c.hba_errors("dn1"), "");
    tf.apply();
    tf.assert_no_changes();
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

#[test]
fn three_hundred_resources_with_parallelism_50_ten_times() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    // Thirty more foreign servers, so one role gets many grants at once.
    let servers: String = (0..30)
        .map(|i| format!("CREATE SERVER s{i} FOREIGN DATA WRAPPER extra_fdw;"))
        .collect();
    c.psql(
        "access",
        &format!("CREATE FOREIGN DATA WRAPPER extra_fdw; {servers}"),
    );
    let mut body = c.provider_block();
    for (octet, node) in ["access", "dn1", "dn2"].iter().enumerate() {
        body.push_str(&hba_rules(node, 40, 10 + octet));
    }
    body.push_str(&passfile_entries(110));
    for i in 0..20 {
        body.push_str(&format!(
            "resource \"timescaledb_distributed_role\" \"r{i}\" {{\n  name = \"r{i}\"\n  password = \"pw {i}\"\n}}\nresource \"timescaledb_foreign_server_grant\" \"r{i}\" {{\n  role = timescaledb_distributed_role.r{i}.name\n}}\n"
        ));
    }
    for i in 0..30 {
        body.push_str(&format!(
            "resource \"timescaledb_foreign_server_grant\" \"r0_s{i}\" {{\n  role = timescaledb_distributed_role.r0.name\n  servers = [\"s{i}\"]\n}}\n"
        ));
    }
    let tf = Terraform::new();
    tf.config(&body);
    tf.init();
    for round in 0..10 {
        let run = tf.run(&["apply", "-auto-approve", "-no-color", "-parallelism=50"]);
        assert!(run.ok, "round {round}:\n{}", run.all());
        assert!(run.stdout.contains("300 added"), "{}", run.stdout);
        for node in ["access", "dn1", "dn2"] {
            assert_eq!(managed_hba_rules(&c, node), 40, "round {round} {node}");
            assert_eq!(c.hba_errors(node), "");
            assert_eq!(
                c.psql(
                    node,
                    "SELECT count(*) FROM pg_roles WHERE rolname ~ '^r[0-9]+$'"
                ),
                "20"
            );
        }
        let passfile = std::fs::read_to_string(c.data_dir("access").join("passfile")).unwrap();
        assert_eq!(
            passfile
                .lines()
                .filter(|l| l.starts_with("*:*:*:u"))
                .count(),
            110
        );
        assert_eq!(
            c.psql("access", "SELECT count(*) FROM pg_foreign_server s, aclexplode(s.srvacl) a WHERE a.grantee = 'r0'::regrole"),
            "32"
        );
        let run = tf.run(&["destroy", "-auto-approve", "-no-color", "-parallelism=50"]);
        assert!(run.ok, "round {round}:\n{}", run.all());
        let text = run.all();
        assert!(!text.contains("concurrently updated") && !text.contains("deadlock"));
        assert_eq!(c.leftovers(), Vec::<String>::new(), "round {round}");
    }
}

#[test]
fn injection_attempts_do_what_they_say_or_are_refused() {
    let c = Cluster::start(1);
    let hba_before = c.read_hba("dn1");
    let tf = Terraform::new();
    let attempt = |body: &str| {
        tf.config(&format!("{}{body}", c.provider_block()));
        let run = tf.try_apply();
        assert!(!run.ok, "accepted:\n{body}");
        run.flat()
    };
    // A canary the payloads try to drop (PostgreSQL never drops the
    // bootstrap superuser, so that would prove nothing), and a real foreign
    // server, so that a grant reaches SQL.
    c.psql(
        "access",
        "CREATE ROLE canary; CREATE EXTENSION postgres_fdw; CREATE SERVER dn1 FOREIGN DATA WRAPPER postgres_fdw",
    );
    let canary_alive = || {
        c.psql(
            "access",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'canary'",
        ) == "1"
    };
    tf.config(&c.provider_block());
    tf.init();
    let out = attempt("resource \"timescaledb_hba_rule\" \"x\" {\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"10.0.0.1\"\n  method = \"reject\"\n  comment = \"x\\nhost all all 0.0.0.0/0 trust\"\n}\n");
    assert!(
        out.contains("on main.tf") && out.contains("comment"),
        "{out}"
    );
    let out = attempt("resource \"timescaledb_hba_rule\" \"x\" {\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\\nhost all all 0.0.0.0/0 trust\"]\n  users = [\"all\"]\n  address = \"10.0.0.1\"\n  method = \"reject\"\n}\n");
    assert!(out.contains("databases"), "{out}");
    let out = attempt("resource \"timescaledb_passfile_entry\" \"x\" {\n  username = \"u\\n*:*:*:postgres:stolen\"\n  password = \"p\"\n}\n");
    assert!(out.contains("cannot contain a line break"), "{out}");
    let out = attempt("resource \"timescaledb_distributed_role\" \"x\" {\n  name = \"x\"\n  valid_until = \"2030-01-01'; DROP ROLE canary; --\"\n}\n");
    assert!(out.contains("Invalid timestamp"), "{out}");
    // Nothing changed anywhere.
    assert_eq!(c.read_hba("dn1"), hba_before);
    assert!(!c.data_dir("access").join("passfile").exists());
    assert!(canary_alive());

    // A grant to a role whose name is SQL: the statement is sent and grants
    // exactly that role, and nothing else happens.
    let odd_role = "x\"; DROP ROLE canary; --";
    c.psql("access", "CREATE ROLE \"x\"\"; DROP ROLE canary; --\"");
    tf.config(&format!(
        "{}resource \"timescaledb_foreign_server_grant\" \"x\" {{\n  role = {}\n  servers = [\"dn1\"]\n}}\n",
        c.provider_block(),
        serde_json::to_string(odd_role).unwrap()
    ));
    tf.apply();
    assert_eq!(
        c.psql("access", "SELECT r.rolname FROM pg_foreign_server s, aclexplode(s.srvacl) a JOIN pg_roles r ON r.oid = a.grantee WHERE s.srvname = 'dn1' AND r.rolname <> 'postgres'"),
        odd_role
    );
    assert!(canary_alive(), "the payload ran");
    tf.destroy();
    c.psql(
        "access",
        "DROP ROLE \"x\"\"; DROP ROLE canary; --\"; DROP ROLE canary; DROP SERVER dn1; DROP EXTENSION postgres_fdw",
    );
    assert_eq!(c.leftovers(), Vec::<String>::new());

    // Values that are odd but valid are taken literally.
    let odd = "CN\" = x,\nO=evil'; --";
    tf.config(&format!(
        "{}resource \"timescaledb_certificate_authority\" \"ca\" {{\n  subject = {{ common_name = {} }}\n}}\noutput \"ca\" {{\n  value = timescaledb_certificate_authority.ca.cert_pem\n}}\n",
        c.provider_block(),
        serde_json::to_string(odd).unwrap()
    ));
    tf.apply();
    let pem: String =
        serde_json::from_str(tf.must(&["output", "-json", "ca"]).stdout.trim()).unwrap();
    let info = tsdb_provider::pki::inspect(&pem).unwrap();
    assert_eq!(info.common_name.as_deref(), Some(odd));
    tf.destroy();
}

#[test]
fn secrets_never_reach_logs_output_or_diagnostics() {
    let c = Cluster::start(1);
    let secrets = [
        "Pr0vider-S3cret",
        "client-S3cret",
        "internal-S3cret",
        "passfile-S3cret",
    ];
    let provider = c.provider_block().replace(
        "username = \"postgres\"",
        &format!("username = \"postgres\"\n  password = \"{}\"", secrets[0]),
    );
    let body = format!(
        r#"{provider}
resource "timescaledb_distributed_role" "r" {{
  name               = "secretive"
  login              = true
  password           = "{}"
  data_node_password = "{}"
}}
resource "timescaledb_passfile_entry" "e" {{
  username = "secretive"
  password = "{}"
}}
resource "timescaledb_certificate_authority" "ca" {{
  subject = {{ common_name = "Secret CA" }}
}}
resource "timescaledb_node_certificate" "dn1" {{
  kind               = "server"
  node               = "dn1"
  common_name        = "localhost"
  ca_cert_pem        = timescaledb_certificate_authority.ca.cert_pem
  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem
}}
"#,
        secrets[1], secrets[2], secrets[3]
    );
    let tf = Terraform::new();
    tf.config(&body);
    tf.init();
    let trace = [("TF_LOG", "trace")];
    let mut logs = String::new();
    for args in [
        vec!["apply", "-auto-approve", "-no-color"],
        vec!["plan", "-no-color"],
    ] {
        let run = tf.run_env(&args, &trace);
        assert!(run.ok, "{}", run.all());
        logs.push_str(&run.all());
    }
    // Drift in a password, so the refresh compares the secrets with what
    // the node stores.
    c.psql("dn1", "ALTER ROLE secretive PASSWORD 'hand'");
    let run = tf.run_env(&["plan", "-no-color"], &trace);
    assert!(
        run.ok && run.all().contains("differs: password"),
        "{}",
        run.all()
    );
    logs.push_str(&run.all());
    // The keys: the CA's, as stored in the state, and the node's, which
    // is on the node only.
    let state = tf.must(&["state", "pull"]).stdout;
    let mut keys: Vec<String> = state
        .split("\"private_key_pem\": \"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|pem| pem.replace("\\n", "\n"))
        .collect();
    assert_eq!(keys.len(), 1, "the CA's key only");
    keys.push(std::fs::read_to_string(c.data_dir("dn1").join("server.key")).unwrap());
    assert!(keys[1].contains("PRIVATE KEY"));
    // Files holding secrets belong to the server's OS user, mode 0600.
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        for (node, file) in [("access", "passfile"), ("dn1", "server.key")] {
            let owner = std::fs::metadata(c.data_dir(node)).unwrap().uid();
            let meta = std::fs::metadata(c.data_dir(node).join(file)).unwrap();
            assert_eq!(
                (meta.uid(), meta.permissions().mode() & 0o777),
                (owner, 0o600),
                "{file}"
            );
        }
    }
    // A change a node refuses, so diagnostics carry what the provider was
    // doing (the other resources are destroyed meanwhile).
    c.psql(
        "dn1",
        "CREATE TABLE owned_by_secretive (); ALTER TABLE owned_by_secretive OWNER TO secretive",
    );
    let run = tf.run_env(&["destroy", "-auto-approve", "-no-color"], &trace);
    assert!(!run.ok && run.all().contains("owns"), "{}", run.all());
    logs.push_str(&run.all());
    c.psql("dn1", "DROP TABLE owned_by_secretive");
    let run = tf.run_env(&["destroy", "-auto-approve", "-no-color"], &trace);
    assert!(run.ok, "{}", run.all());
    logs.push_str(&run.all());
    assert!(logs.len() > 100_000, "trace logs are unexpectedly short");
    for s in secrets {
        assert!(!logs.contains(s), "{s} appears in the logs or output");
    }
    for key in &keys {
        for line in key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
        {
            assert!(
                !logs.contains(line),
                "a private key line appears in the logs or output"
            );
        }
    }
}

#[test]
fn a_rule_that_passes_the_checks_but_stops_the_login_is_rolled_back() {
    // The provider presents a password, so a SCRAM rule for its own role
    // looks safe; but the role has no password on the node, so the login
    // after the reload fails and the previous file must come back.
    let c = Cluster::start(1);
    let before = c.read_hba("dn1");
    let provider = c.provider_block().replace(
        "username = \"postgres\"",
        "username = \"postgres\"\n  password = \"not the real one\"",
    );
    let tf = Terraform::new();
    tf.config(&format!(
        "{provider}resource \"timescaledb_hba_rule\" \"r\" {{\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"postgres\"]\n  address = \"127.0.0.1\"\n  method = \"scram-sha-256\"\n  position = 1\n}}\n"
    ));
    tf.init();
    let run = tf.try_apply();
    assert!(!run.ok);
    let text = run.flat();
    assert!(
        text.contains("could not log in again") && text.contains("restored"),
        "{text}"
    );
    assert_eq!(c.read_hba("dn1"), before);
    assert_eq!(c.hba_errors("dn1"), "");
    // The restored file is the one in force: the provider still gets in.
    assert_eq!(c.psql("dn1", "SELECT 1"), "1");
    tf.config(&c.provider_block());
    tf.assert_no_changes();
}

#[test]
fn a_provider_whose_terraform_died_stops_and_lets_go_of_its_sessions() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    tf.config(&format!(
        "{}{}",
        c.provider_block(),
        hba_rules("dn1", 60, 4)
    ));
    tf.init();
    let mut cmd = spawn_command(
        &tf,
        &["apply", "-auto-approve", "-no-color", "-parallelism=1"],
    );
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while managed_hba_rules(&c, "dn1") < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the apply did not get two rules in within a minute"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let providers = provider_children(child.id());
    assert!(!providers.is_empty());
    // Kill every terraform process, but not the providers.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let pgrp = stat
            .rsplit_once(") ")
            .and_then(|(_, r)| r.split_whitespace().nth(2)?.parse::<u32>().ok());
        if pgrp == Some(child.id()) && !providers.contains(&p) {
            signal(p, "-KILL");
        }
    }
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while providers
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // A zombie has no /proc/<pid>/fd entries left; a live process has.
    let alive: Vec<&u32> = providers
        .iter()
        .filter(|p| {
            std::fs::read_dir(format!("/proc/{p}/fd"))
                .map(|d| d.count() > 0)
                .unwrap_or(false)
        })
        .collect();
    assert!(
        alive.is_empty(),
        "provider {alive:?} still running after its terraform died"
    );
    assert_eq!(
        c.psql("dn1", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'terraform-provider-timescaledb'"),
        "0"
    );
    assert_eq!(c.hba_errors("dn1"), "");
}

#[test]
fn a_provider_role_without_superuser_works_with_granted_rights() {
    // The least the provider needs: reading and writing server files,
    // reloading, the settings, the rules view, and CREATEROLE. It may not
    // run programs (so files are rewritten in place) nor read passwords.
    let c = Cluster::start(1);
    for node in ["access", "dn1"] {
        c.psql(
            node,
            "CREATE ROLE tfadmin LOGIN CREATEROLE; \
             GRANT pg_read_server_files, pg_write_server_files, pg_read_all_settings TO tfadmin; \
             GRANT EXECUTE ON FUNCTION lo_export(oid, text), pg_reload_conf(), pg_hba_file_rules(), \
             pg_stat_file(text, boolean), pg_read_binary_file(text) TO tfadmin; \
             GRANT SELECT ON pg_hba_file_rules TO tfadmin",
        );
    }
    let provider = c
        .provider_block()
        .replace("username = \"postgres\"", "username = \"tfadmin\"");
    let tf = Terraform::new();
    let body = |extra: &str| {
        format!(
            "{provider}resource \"timescaledb_hba_rule\" \"r\" {{\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"app\"]\n  address = \"10.0.0.1\"\n  method = \"scram-sha-256\"\n}}\nresource \"timescaledb_distributed_role\" \"app\" {{\n  name = \"app\"\n  login = true\n  password = \"app pass\"\n}}\n{extra}"
        )
    };
    tf.config(&body(""));
    tf.init();
    tf.apply();
    assert!(c
        .read_hba("dn1")
        .contains("host all app 10.0.0.1/32 scram-sha-256"));
    assert_eq!(
        c.psql(
            "dn1",
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'"
        ),
        "t"
    );
    tf.assert_no_changes();
    // A passfile cannot be created 0600 without running programs: refused
    // with the reason, and nothing is written.
    tf.config(&body("resource \"timescaledb_passfile_entry\" \"p\" {\n  username = \"app\"\n  password = \"x\"\n}\n"));
    let run = tf.try_apply();
    assert!(!run.ok);
    let text = run.flat();
    assert!(text.contains("pg_execute_server_program"), "{text}");
    assert!(!c.data_dir("access").join("passfile").exists());
    tf.config(&body(""));
    tf.destroy();
    assert_eq!(c.hba_errors("dn1"), "");
    assert!(!c.read_hba("dn1").contains("BEGIN terraform"));
    assert_eq!(
        c.psql("dn1", "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"),
        "0"
    );
}

/// A role is dropped nowhere while one of its nodes cannot be reached: the
/// destroy fails naming the node and every copy stays.
#[test]
fn a_role_is_dropped_nowhere_while_a_node_is_unreachable() {
    let c = Cluster::start(2);
    let tf = Terraform::new();
    tf.config(&format!(
        "{}resource \"timescaledb_distributed_role\" \"r\" {{\n  name = \"kept\"\n  login = true\n}}\n",
        c.provider_block()
    ));
    tf.init();
    tf.apply();
    c.stop_node("dn2");
    let r = tf.run(&["destroy", "-auto-approve", "-no-color"]);
    let out = r.flat();
    assert!(!r.ok, "{out}");
    assert!(out.contains("\"dn2\""), "{out}");
    for node in ["access", "dn1"] {
        assert_eq!(
            c.psql(node, "SELECT count(*) FROM pg_roles WHERE rolname = 'kept'"),
            "1",
            "{node}"
        );
    }
    c.start_node("dn2");
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// The lockout check runs again at apply time: a plan that was safe when it
/// was made is refused when the file changed since so that applying it
/// would lock the provider out, and nothing is written.
#[test]
fn the_lockout_check_runs_again_at_apply_time() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    let rule = |name: &str, position: i32, address: &str, method: &str| {
        format!(
            "resource \"timescaledb_hba_rule\" \"{name}\" {{\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"postgres\"]\n  address = \"{address}\"\n  method = \"{method}\"\n  position = {position}\n}}\n"
        )
    };
    let way_in = rule("way_in", 1, "127.0.0.1/32", "trust");
    let reject = rule("reject", 5, "127.0.0.0/8", "reject");
    tf.config(&format!("{}{way_in}", c.provider_block()));
    tf.init();
    tf.apply();
    // With the way in first, a later reject of the provider's network is
    // safe: the plan says so and is saved.
    tf.config(&format!("{}{way_in}{reject}", c.provider_block()));
    tf.must(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    // Then the way in goes, by hand, before the plan is applied.
    let without: String = c
        .read_hba("dn1")
        .lines()
        .filter(|l| !l.starts_with("host all postgres 127.0.0.1/32 trust"))
        .map(|l| format!("{l}\n"))
        .collect();
    c.write_hba("dn1", &without);
    c.psql("dn1", "SELECT pg_reload_conf()");
    let r = tf.run(&["apply", "-input=false", "-no-color", "tfplan"]);
    let out = r.flat();
    assert!(!r.ok && out.contains("lock the provider out"), "{out}");
    assert_eq!(c.read_hba("dn1"), without, "nothing was written");
    assert_eq!(c.psql("dn1", "SELECT 1"), "1");
}

/// A file that is not UTF-8 is never edited: the provider says so and
/// leaves it byte for byte.
#[test]
fn a_file_that_is_not_utf8_is_refused_and_left_alone() {
    let c = Cluster::start(1);
    let mut bytes = c.read_hba("dn1").into_bytes();
    bytes.extend_from_slice(b"# latin-1 \xe9t\xe9\n");
    std::fs::write(c.hba_path("dn1"), &bytes).unwrap();
    let tf = Terraform::new();
    tf.config(&format!(
        "{}resource \"timescaledb_hba_rule\" \"r\" {{\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"app\"]\n  address = \"10.0.0.0/8\"\n  method = \"md5\"\n}}\n",
        c.provider_block()
    ));
    tf.init();
    let r = tf.try_apply();
    let out = r.flat();
    assert!(!r.ok && out.contains("not valid UTF-8"), "{out}");
    assert_eq!(std::fs::read(c.hba_path("dn1")).unwrap(), bytes);
}
