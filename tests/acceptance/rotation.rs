//! Replacing the cluster CA of a running three-node cluster with no
//! connection refused, through the production environment's one input
//! (`ca_generations`): trust both, sign with the new one, trust only the
//! new one. TLS is on every node; the access node reaches each data node
//! through the stand-in's TLS-only path with each role's certificate, and a
//! client reaches every node with `verify-full`, both opening new
//! connections the whole time. Then the overlap is skipped on purpose, and
//! the same load counts the connections that fail: it can see them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::examples::merge;
use crate::harness::{hcl, Cluster, Terraform};

const ROLES: [&str; 2] = ["testrole", "reporter"];
const DATA_NODES: [&str; 2] = ["dn1", "dn2"];

/// On the access node: connects to `node` as `as_user` the way
/// TimescaleDB does (the stand-in's options: TLS required, the access
/// node's `ssl_ca_file` trusted, the user's certificate presented) and
/// says `ok` or why not.
const PROBE: &str = "CREATE FUNCTION public.rotation_probe(node name, as_user name) RETURNS text \
     LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $p$ BEGIN \
     PERFORM public.standin_run(public.standin_connect(node, as_user), ARRAY['SET work_mem = ''64kB''']); RETURN 'ok'; \
     EXCEPTION WHEN OTHERS THEN RETURN SQLERRM; END $p$";

/// The plan's warning for a certificate reissued by a CA the nodes that
/// check it do not trust.
const UNTRUSTED: &str = "Nodes that do not trust the new CA will refuse this certificate";

/// Connections opened and refused while the load runs.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    rounds: AtomicUsize,
    opened: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Load {
    /// One round: every data node from the access node as every role, and
    /// every node from a client with `verify-full` against `bundle`.
    fn round(&self, c: &Cluster, bundle: &Path) {
        let probes = c.psql_output(
            "access",
            "postgres",
            &format!(
                "SELECT n || ' as ' || r || ': ' || public.rotation_probe(n, r) FROM unnest(ARRAY['{}']) n, unnest(ARRAY['{}']) r",
                DATA_NODES.join("','"),
                ROLES.join("','")
            ),
        );
        let mut failed = Vec::new();
        let text = String::from_utf8_lossy(&probes.stdout).to_string();
        if !probes.status.success() {
            failed.push(format!(
                "the probe itself: {}",
                String::from_utf8_lossy(&probes.stderr)
            ));
        }
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.opened.fetch_add(1, Ordering::SeqCst);
            if !line.ends_with(": ok") {
                failed.push(format!("access node to {line}"));
            }
        }
        for node in ["access", "dn1", "dn2"] {
            let out = c.psql_conn(
                &format!(
                    "host=127.0.0.1 port={} dbname=postgres user=postgres sslmode=verify-full sslrootcert={}",
                    c.port(node),
                    bundle.display()
                ),
                "SELECT 1",
                &[],
            );
            self.opened.fetch_add(1, Ordering::SeqCst);
            if !out.status.success() {
                failed.push(format!(
                    "client to {node}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        self.failures.lock().unwrap().extend(failed);
        self.rounds.fetch_add(1, Ordering::SeqCst);
    }

    /// Waits for a round that starts after now to end.
    fn one_more_round(&self) {
        let start = self.rounds.load(Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.rounds.load(Ordering::SeqCst) < start + 2 {
            assert!(Instant::now() < deadline, "the load stopped");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Connections opened and the failures since the last call.
    fn take(&self) -> (usize, Vec<String>) {
        (
            self.opened.swap(0, Ordering::SeqCst),
            std::mem::take(&mut *self.failures.lock().unwrap()),
        )
    }
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The environment's `auth` output.
fn auth_output(tf: &Terraform) -> serde_json::Value {
    serde_json::from_str(&tf.must(&["output", "-json", "auth"]).stdout).unwrap()
}

/// The fingerprint of the CA certificate in the `auth` output `key`.
fn ca_fingerprint(tf: &Terraform, key: &str) -> String {
    let pem = auth_output(tf)[key].as_str().unwrap().to_string();
    tsdb_provider::pki::inspect(&pem)
        .unwrap()
        .fingerprint_sha256
}

/// The CAs the nodes trust now (`pem`, from a configuration's output) as
/// the client's `sslrootcert`, written beside and renamed over, so the
/// client never reads half a file.
fn write_bundle(pem: &str, bundle: &Path) {
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");
    let next = bundle.with_extension("next");
    std::fs::write(&next, pem).unwrap();
    std::fs::rename(&next, bundle).unwrap();
}

/// The environment's `ca_bundle_pem`.
fn module_bundle(tf: &Terraform) -> String {
    auth_output(tf)["ca_bundle_pem"]
        .as_str()
        .expect("ca_bundle_pem")
        .to_string()
}

/// Runs `steps` while the load runs, once a first round saw nothing
/// refused; the load stops however the steps end (a failed assertion too).
fn under_load(c: &Cluster, bundle: &Path, steps: impl FnOnce(&Load)) {
    let load = Load::default();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !load.stop.load(Ordering::SeqCst) {
                load.round(c, bundle);
            }
        });
        let _stop = StopOnDrop(&load.stop);
        load.one_more_round();
        let (opened, failed) = load.take();
        assert!(failed.is_empty(), "before the rotation: {failed:#?}");
        println!("before the rotation: {opened} connections, none refused");
        steps(&load);
    });
}

/// After a step's apply: a round on the old bundle, the clients given the
/// new one (`pem`), a round on it; nothing refused.
fn nothing_refused(load: &Load, step: &str, bundle: &Path, pem: &str) {
    load.one_more_round();
    write_bundle(pem, bundle);
    load.one_more_round();
    let (opened, failed) = load.take();
    println!("{step}: {opened} connections, {} refused", failed.len());
    assert!(failed.is_empty(), "{step}: {failed:#?}");
}

/// The CAs in the environment's `ca_bundle_pem`.
fn ca_pems(tf: &Terraform) -> Vec<String> {
    tsdb_provider::pki::pem_certificates(&module_bundle(tf))
}

/// The certificates the cluster serves and presents: each node's server
/// certificate and each role's on the access node.
fn cluster_certificates(c: &Cluster) -> Vec<String> {
    let mut files: Vec<std::path::PathBuf> = ["access", "dn1", "dn2"]
        .iter()
        .map(|n| c.data_dir(n).join("server.crt"))
        .collect();
    files.extend(ROLES.iter().map(|r| crate::certificates::user_cert(c, r).0));
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect()
}

/// Applies as a terminal's Ctrl-C stops it: SIGINT to terraform's process
/// group once the first certificate from `ca` is in place, one change at a
/// time. Asserts the stop came half way: some certificates reissued, not
/// all, and that nothing was left unreadable.
fn interrupt_when_reissued(c: &Cluster, tf: &Terraform, ca: &str) {
    let reissued = || {
        cluster_certificates(c)
            .iter()
            .filter(|pem| tsdb_provider::pki::issued_by(pem, ca))
            .count()
    };
    let all = cluster_certificates(c).len();
    let mut cmd = tf.command(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-parallelism=1",
    ]);
    // The plan shows whole certificates: more than a pipe holds unread.
    let log = tempfile::NamedTempFile::new().unwrap();
    cmd.stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    let text = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let start = Instant::now();
    while reissued() == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the apply ended before it reissued a certificate:\n{}",
            text()
        );
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no certificate was reissued within three minutes:\n{}",
            text()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    crate::reliability::signal_group(child.id(), "-INT");
    child.wait().unwrap();
    let text = text();
    assert!(text.contains("Interrupt received"), "{text}");
    let done = reissued();
    println!("stopped with {done} of {all} certificates reissued");
    assert!(
        done < all,
        "the interrupt came too late to test anything:\n{text}"
    );
    assert!(
        cluster_certificates(c)
            .iter()
            .all(|pem| tsdb_provider::pki::inspect(pem).is_ok()),
        "a certificate file is not whole"
    );
}

/// What `timescaledb_certificates` lists now, read by its own
/// configuration.
fn listed(ds: &Terraform) -> Vec<serde_json::Value> {
    ds.apply();
    let out: serde_json::Value =
        serde_json::from_str(&ds.must(&["output", "-json", "certificates"]).stdout).unwrap();
    out.as_array().cloned().unwrap_or_default()
}

/// Checks the list in the overlap: every node serves a certificate from
/// `signing` and trusts both CAs; the access node presents a certificate
/// for each role and keeps both CAs; every certificate has its expiry.
fn check_listed_in_overlap(list: &[serde_json::Value], signing: &str, next: &str) {
    let of = |node: &str, kind: &str| -> Vec<&serde_json::Value> {
        list.iter()
            .filter(|c| c["node"] == node && c["kind"] == kind)
            .collect()
    };
    for node in ["access", "dn1", "dn2"] {
        let served = of(node, "server");
        assert_eq!(served.len(), 1, "{node}: {list:#?}");
        assert_eq!(served[0]["signed_by"], signing, "{node}: {list:#?}");
        assert_eq!(
            served[0]["trusted_by"],
            json!(["access", "dn1", "dn2"]),
            "{list:#?}"
        );
        assert_eq!(served[0]["issuer"], "TimescaleDB cluster CA", "{list:#?}");
        let days = served[0]["days_left"].as_i64().unwrap();
        assert!((88..=90).contains(&days), "{days}: {list:#?}");
        let mut trusted: Vec<&str> = of(node, "trusted_ca")
            .iter()
            .map(|c| c["fingerprint_sha256"].as_str().unwrap())
            .collect();
        trusted.sort();
        let mut want = vec![signing, next];
        want.sort();
        assert_eq!(trusted, want, "{node}: {list:#?}");
    }
    let mut users: Vec<&str> = of("access", "user")
        .iter()
        .map(|c| {
            assert_eq!(c["signed_by"], signing, "{list:#?}");
            assert_eq!(
                c["trusted_by"],
                json!(["access", "dn1", "dn2"]),
                "{list:#?}"
            );
            c["subject"].as_str().unwrap()
        })
        .collect();
    users.sort();
    assert_eq!(users, ["reporter", "testrole"], "{list:#?}");
    assert_eq!(of("access", "ca").len(), 2, "{list:#?}");
    assert!(
        list.iter()
            .all(|c| c["not_after"].as_str().is_some_and(|t| t.len() >= 20)),
        "{list:#?}"
    );
}

#[test]
fn the_ca_is_replaced_with_no_connection_refused_and_skipping_the_overlap_is_seen() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    c.psql("access", PROBE);
    let tf = Terraform::example("environments/prod");
    let vars =
        |generations: &[&str]| merge(c.example_vars(), json!({ "ca_generations": generations }));
    tf.vars(&vars(&["1"]));
    tf.init();
    tf.apply();
    // A state from the module's releases that counted its one CA (`ca[0]`)
    // is moved, not replaced.
    tf.must(&[
        "state",
        "mv",
        "module.auth.timescaledb_certificate_authority.ca[\"1\"]",
        "module.auth.timescaledb_certificate_authority.ca[0]",
    ]);
    let (_, plan) = tf.plan();
    assert!(
        plan.stdout
            .contains("ca[0] has moved to module.auth.timescaledb_certificate_authority.ca[\"1\"]")
            && plan
                .stdout
                .contains("Plan: 0 to add, 0 to change, 0 to destroy."),
        "{}",
        plan.stdout
    );
    tf.apply();
    tf.assert_no_changes();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("clients-root.crt");
    write_bundle(&module_bundle(&tf), &bundle);

    // The certificates data source, in a configuration of its own.
    let ds = Terraform::new();
    ds.config(&format!(
        "{}data \"timescaledb_certificates\" \"all\" {{}}\noutput \"certificates\" {{\n  value = data.timescaledb_certificates.all.certificates\n}}\n",
        c.provider_block()
    ));
    ds.init();

    under_load(&c, &bundle, |load| {
        // The module's sequence: each step one change of `ca_generations`.
        for (step, generations) in [
            ("trust both CAs", &["1", "2"][..]),
            ("sign with the new CA", &["2", "1"][..]),
            ("trust only the new CA", &["2"][..]),
        ] {
            tf.vars(&vars(generations));
            let (_, plan) = tf.plan();
            assert!(!plan.stdout.contains(UNTRUSTED), "{step}: {}", plan.stdout);
            if generations == ["2", "1"] {
                // Stopped half way (Ctrl-C), then run again.
                let signing = ca_fingerprint(&tf, "ca_cert_pem");
                let next = ca_pems(&tf)
                    .into_iter()
                    .find(|p| tsdb_provider::pki::inspect(p).unwrap().fingerprint_sha256 != signing)
                    .unwrap();
                interrupt_when_reissued(&c, &tf, &next);
                load.one_more_round();
                let (opened, failed) = load.take();
                println!(
                    "{step}, stopped half way: {opened} connections, {} refused",
                    failed.len()
                );
                assert!(failed.is_empty(), "{step}, stopped: {failed:#?}");
            }
            tf.apply();
            if generations == ["1", "2"] {
                let signing = ca_fingerprint(&tf, "ca_cert_pem");
                let next = ca_pems(&tf)
                    .iter()
                    .map(|p| tsdb_provider::pki::inspect(p).unwrap().fingerprint_sha256)
                    .find(|f| *f != signing)
                    .unwrap();
                check_listed_in_overlap(&listed(&ds), &signing, &next);
            }
            nothing_refused(
                load,
                &format!("{step} ({generations:?})"),
                &bundle,
                &module_bundle(&tf),
            );
        }
        tf.assert_no_changes();

        // The overlap skipped: a new CA that signs and alone is trusted, in
        // one apply. The same load sees the refusals.
        tf.vars(&vars(&["3"]));
        let (_, plan) = tf.plan();
        assert!(plan.stdout.contains(UNTRUSTED), "{}", plan.stdout);
        tf.apply();
        load.one_more_round();
        let (opened, failed) = load.take();
        println!(
            "without the overlap ([\"3\"]): {opened} connections, {} refused",
            failed.len()
        );
        assert!(
            !failed.is_empty(),
            "no connection was refused although nodes stopped trusting each other's CA: the load does not see refusals"
        );
        write_bundle(&module_bundle(&tf), &bundle);
        // A round under way read the old bundle: the next ones count.
        load.one_more_round();
        load.take();
        load.one_more_round();
        let (_, failed) = load.take();
        assert!(failed.is_empty(), "after the jump settled: {failed:#?}");
    });
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// The guide's sequence with the resources themselves
/// (`examples/ca-rotation`, one value of `step` each: trust both, sign
/// with the new CA, trust only the new CA) under the same load: nothing
/// refused, and no step draws the warning for an untrusted CA.
#[test]
fn the_guides_resource_steps_replace_the_ca_with_no_connection_refused() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    c.psql("access", PROBE);
    let tf = Terraform::example("ca-rotation");
    let vars = |step: u32| merge(c.example_vars(), json!({ "step": step }));
    let bundle_pem = || -> String {
        serde_json::from_str(&tf.must(&["output", "-json", "ca_bundle_pem"]).stdout).unwrap()
    };
    tf.vars(&vars(0));
    tf.init();
    tf.apply();
    tf.assert_no_changes();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("clients-root.crt");
    write_bundle(&bundle_pem(), &bundle);
    let first = cluster_certificates(&c);
    under_load(&c, &bundle, |load| {
        for (step, name) in [
            (1, "trust both CAs"),
            (2, "sign with the new CA"),
            (3, "trust only the new CA"),
        ] {
            tf.vars(&vars(step));
            let (changes, plan) = tf.plan();
            assert!(
                changes && !plan.stdout.contains(UNTRUSTED),
                "{name}: {}",
                plan.stdout
            );
            // One change at a time: each mix of old and new the step goes
            // through lasts long enough for the load to meet it.
            tf.must(&[
                "apply",
                "-auto-approve",
                "-input=false",
                "-no-color",
                "-parallelism=1",
            ]);
            nothing_refused(
                load,
                &format!("step {step}, {name}"),
                &bundle,
                &bundle_pem(),
            );
        }
    });
    tf.assert_no_changes();
    // Every certificate was reissued, by the one CA left.
    let pems = tsdb_provider::pki::pem_certificates(&bundle_pem());
    assert_eq!(pems.len(), 1);
    for (before, now) in first.iter().zip(cluster_certificates(&c)) {
        assert_ne!(*before, now);
        assert!(tsdb_provider::pki::issued_by(&now, &pems[0]));
    }
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// A CA that renews itself through the overlap (`renewal = "overlap"`),
/// with the server certificates trusting `trusted_cert_pems` when `wired`.
fn renewing_config(c: &Cluster, early: u32, wired: bool) -> String {
    let trusted = if wired {
        "timescaledb_certificate_authority.ca.trusted_cert_pems"
    } else {
        "[]"
    };
    let server = |name: &str, node: &str, after: &str| {
        format!(
            r#"resource "timescaledb_node_certificate" "{name}" {{
  kind            = "server"
  node            = "{node}"
  common_name     = "127.0.0.1"
  ip_addresses    = ["127.0.0.1"]
  ca_cert_pem     = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node     = timescaledb_certificate_authority.ca.key_node
  trusted_ca_pems = {trusted}
  lifecycle {{
    create_before_destroy = true
  }}
  depends_on = [{after}]
}}
"#
        )
    };
    let mut hcl = format!(
        r#"{}
resource "timescaledb_certificate_authority" "ca" {{
  subject            = {{ common_name = "Renewing cluster CA" }}
  key_node           = "access"
  validity_days      = 30
  early_renewal_days = {early}
  renewal            = "overlap"
}}
output "ca_bundle_pem" {{
  value = join("", timescaledb_certificate_authority.ca.trusted_cert_pems)
}}
output "next_cert_pem" {{
  value = timescaledb_certificate_authority.ca.next_cert_pem
}}
"#,
        c.provider_block()
    );
    hcl += &server("dn1", "dn1", "");
    hcl += &server("dn2", "dn2", "");
    hcl += &server(
        "access",
        "access",
        "timescaledb_node_certificate.dn1, timescaledb_node_certificate.dn2",
    );
    for role in ROLES {
        hcl += &format!(
            r#"resource "timescaledb_distributed_role" "{role}" {{
  name  = "{role}"
  login = true
}}
resource "timescaledb_foreign_server_grant" "{role}" {{
  role = timescaledb_distributed_role.{role}.name
}}
resource "timescaledb_node_certificate" "{role}" {{
  kind        = "user"
  role        = timescaledb_distributed_role.{role}.name
  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node = timescaledb_certificate_authority.ca.key_node
  lifecycle {{
    create_before_destroy = true
  }}
}}
"#
        );
    }
    for node in DATA_NODES {
        hcl += &format!(
            r#"resource "timescaledb_hba_rule" "{node}" {{
  node      = "{node}"
  type      = "hostssl"
  databases = ["all"]
  users     = ["{}"]
  address   = "127.0.0.1"
  method    = "cert"
  options   = {{ clientcert = "verify-full" }}
  depends_on = [timescaledb_node_certificate.access]
}}
"#,
            ROLES.join("\", \"")
        );
    }
    hcl
}

/// A CA inside its renewal window renews itself through the overlap, one
/// step per apply, under the connection load: nothing refused. The step
/// that needs the nodes to trust the next CA waits, and says so, while the
/// server certificates do not take `trusted_cert_pems`.
#[test]
fn a_ca_inside_its_renewal_window_renews_through_the_overlap_with_no_connection_refused() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    c.psql("access", PROBE);
    let tf = Terraform::new();
    let output = |name: &str| -> serde_json::Value {
        serde_json::from_str(&tf.must(&["output", "-json", name]).stdout).unwrap()
    };
    let bundle_pem = || output("ca_bundle_pem").as_str().unwrap().to_string();
    tf.config(&renewing_config(&c, 5, false));
    tf.init();
    tf.apply();
    tf.assert_no_changes();
    let first = cluster_certificates(&c);
    let first_ca = bundle_pem();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("clients-root.crt");
    write_bundle(&first_ca, &bundle);
    under_load(&c, &bundle, |load| {
        // The window opens: the next CA is made, in place (nothing is
        // replaced), and kept on the access node.
        tf.config(&renewing_config(&c, 40, false));
        let (changes, plan) = tf.plan();
        assert!(
            changes
                && plan
                    .stdout
                    .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
            "{}",
            plan.stdout
        );
        tf.apply();
        assert!(output("next_cert_pem").as_str().is_some());
        nothing_refused(load, "the next CA made", &bundle, &bundle_pem());
        // Not trusted by the nodes yet: the next CA does not sign, and the
        // plan says why.
        let (changes, plan) = tf.plan();
        assert!(
            !changes && plan.stdout.contains("The next CA waits to sign"),
            "{}",
            plan.stdout
        );
        tf.config(&renewing_config(&c, 40, true));
        tf.apply();
        nothing_refused(load, "both CAs trusted", &bundle, &bundle_pem());
        // Every node trusts both: the next CA signs, and every certificate
        // is reissued by it while the old one is still trusted.
        let (changes, plan) = tf.plan();
        assert!(
            changes && !plan.stdout.contains(UNTRUSTED),
            "{}",
            plan.stdout
        );
        tf.apply();
        nothing_refused(load, "signed by the next CA", &bundle, &bundle_pem());
        // Nothing of the old CA in use: it is trusted no longer.
        tf.config(&renewing_config(&c, 5, true));
        tf.apply();
        nothing_refused(load, "the old CA let go", &bundle, &bundle_pem());
    });
    tf.assert_no_changes();
    let pems = tsdb_provider::pki::pem_certificates(&bundle_pem());
    assert_eq!(pems.len(), 1);
    assert_ne!(pems[0], first_ca);
    for (before, now) in first.iter().zip(cluster_certificates(&c)) {
        assert_ne!(*before, now);
        assert!(tsdb_provider::pki::issued_by(&now, &pems[0]));
    }
    // Only the renewed CA's key is left on the access node.
    let kept: Vec<_> = std::fs::read_dir(c.data_dir("access").join("timescaledb/ca"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// One role's certificate revoked without replacing the CA: the data
/// nodes refuse it at its next login (from the access node, and from a
/// client presenting it), every other certificate still logs in; the list
/// taken out of force by hand is seen by the plan and put back; destroyed,
/// the certificate logs in again.
#[test]
fn a_revoked_certificate_is_refused_at_its_next_login_and_the_others_still_get_in() {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    c.psql("access", PROBE);
    let env = Terraform::example("environments/prod");
    env.vars(&c.example_vars());
    env.init();
    env.apply();
    let (crt, _) = crate::certificates::user_cert(&c, "testrole");
    let revoked = tsdb_provider::pki::pem_certificates(&std::fs::read_to_string(crt).unwrap())
        .into_iter()
        .next()
        .unwrap();
    let ca = auth_output(&env)["ca_cert_pem"]
        .as_str()
        .unwrap()
        .to_string();
    let probe = |node: &str, role: &str| {
        c.psql(
            "access",
            &format!("SELECT public.rotation_probe('{node}', '{role}')"),
        )
    };
    for node in DATA_NODES {
        assert_eq!(probe(node, "testrole"), "ok");
    }

    let tf = Terraform::new();
    let list = |revoked: &[&str]| {
        format!(
            "{}resource \"timescaledb_certificate_revocation_list\" \"l\" {{\n  ca_cert_pem = {}\n  ca_key_node = \"access\"\n  nodes = [\"dn1\", \"dn2\"]\n  revoked_certificate_pems = {}\n}}\noutput \"crl\" {{\n  value = timescaledb_certificate_revocation_list.l.crl_pem\n}}\n",
            c.provider_block(),
            hcl(&json!(ca)),
            hcl(&json!(revoked))
        )
    };
    tf.config(&list(&[&revoked]));
    tf.init();
    tf.apply();
    tf.assert_no_changes();
    let refused = |node: &str| {
        let why = probe(node, "testrole");
        assert!(why != "ok", "{node}: the revoked certificate still logs in");
        assert_eq!(probe(node, "reporter"), "ok", "{node}");
        why
    };
    for node in DATA_NODES {
        let why = refused(node);
        println!("{node}: testrole refused: {why}");
        let client = crate::certificates::cert_login(
            &c,
            node,
            "testrole",
            Some(&crate::certificates::user_cert(&c, "testrole")),
        );
        assert!(
            !client.status.success(),
            "{node}: a client with the revoked certificate got in"
        );
        let other = crate::certificates::cert_login(
            &c,
            node,
            "reporter",
            Some(&crate::certificates::user_cert(&c, "reporter")),
        );
        assert!(
            other.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&other.stderr)
        );
    }

    // Taken out of force by hand: the plan sees it, apply puts it back.
    c.psql("dn1", "ALTER SYSTEM RESET ssl_crl_file");
    c.psql("dn1", "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        probe("dn1", "testrole"),
        "ok",
        "the list was not out of force"
    );
    let (changes, plan) = tf.plan();
    assert!(
        changes && plan.stdout.contains("dn1: ssl_crl_file not set to it"),
        "{}",
        plan.stdout
    );
    tf.apply();
    refused("dn1");
    tf.assert_no_changes();

    // dn2's server certificate listed too: the plan says who refuses it. A
    // client that checks the list (`sslcrl`) no longer reaches dn2 and still
    // reaches dn1; the access node, given no `sslcrl` by TimescaleDB, still
    // reaches dn2, as the warning says.
    let served = std::fs::read_to_string(c.data_dir("dn2").join("server.crt")).unwrap();
    tf.config(&list(&[&revoked, &served]));
    let (changes, plan) = tf.plan();
    assert!(
        changes
            && plan
                .stdout
                .contains("A server certificate: only clients that check the list refuse it"),
        "{}",
        plan.stdout
    );
    tf.apply();
    let dir = tempfile::tempdir().unwrap();
    let (root, crl) = (dir.path().join("root.crt"), dir.path().join("root.crl"));
    std::fs::write(&root, &ca).unwrap();
    let output: serde_json::Value =
        serde_json::from_str(&tf.must(&["output", "-json", "crl"]).stdout).unwrap();
    std::fs::write(&crl, output.as_str().unwrap()).unwrap();
    let client = |node: &str, sslcrl: bool| {
        let mut conninfo = format!(
            "host=127.0.0.1 port={} dbname=postgres user=postgres sslmode=verify-full sslrootcert={}",
            c.port(node),
            root.display()
        );
        if sslcrl {
            conninfo.push_str(&format!(" sslcrl={}", crl.display()));
        }
        c.psql_conn(&conninfo, "SELECT 1", &[])
    };
    let to_dn2 = client("dn2", true);
    assert!(
        !to_dn2.status.success(),
        "a client checking the list reached dn2 with its revoked certificate"
    );
    println!(
        "dn2's server certificate, to a client with sslcrl: {}",
        String::from_utf8_lossy(&to_dn2.stderr).trim()
    );
    for (node, sslcrl) in [("dn1", true), ("dn2", false)] {
        let out = client(node, sslcrl);
        assert!(
            out.status.success(),
            "{node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(probe("dn2", "reporter"), "ok");
    tf.assert_no_changes();

    tf.destroy();
    for node in DATA_NODES {
        assert_eq!(
            probe(node, "testrole"),
            "ok",
            "{node}: still refused after destroy"
        );
        assert!(!c.data_dir(node).join("root.crl").exists());
        assert_eq!(c.psql(node, "SHOW ssl_crl_file"), "");
    }
    env.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}
