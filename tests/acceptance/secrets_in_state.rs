//! No password and no private key in Terraform's state or plans: the
//! module applied with write-only passwords and with keys that stay on the
//! nodes (newest Terraform), drift of either still seen and repaired, and
//! the plain forms on a Terraform without write-only attributes.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::harness::{newest_terraform, terraform_version, Cluster, Terraform, ROOT};

const CLIENT: &str = "Cl1ent-pw-9f2c";
const INTERNAL: &str = "Int3rnal-pw-77ab";
const ROTATED: &str = "R0tated-pw-c4d1";
const BY_HAND: &str = "By-hand-pw-0e5a";

fn cluster() -> Cluster {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    c
}

/// Every byte of a saved plan: the plan file is a zip archive, read entry
/// by entry with Python's zipfile (Python is there: `make deps` uses it).
fn plan_file_bytes(path: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nfor n in z.namelist():\n    sys.stdout.buffer.write(z.read(n))",
        ])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Plans to a file, then checks the state, the plan file and the plan as
/// JSON for every secret; applies the saved plan.
#[track_caller]
fn apply_through_saved_plan(tf: &Terraform, secrets: &[&str]) {
    tf.must(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    let texts = [
        ("saved plan", plan_file_bytes(&tf.work().join("tfplan"))),
        (
            "terraform show -json tfplan",
            tf.must(&["show", "-json", "tfplan"]).stdout,
        ),
    ];
    for (what, text) in &texts {
        assert!(text.len() > 100, "{what} is empty");
        for s in secrets.iter().chain(&["PRIVATE KEY"]) {
            assert!(!text.contains(s), "{what} holds {s:?}");
        }
    }
    tf.must(&["apply", "-input=false", "-no-color", "tfplan"]);
    assert_state_clean(tf, secrets);
}

/// The CA key files kept on the access node.
fn ca_key_files(c: &Cluster) -> Vec<std::path::PathBuf> {
    let dir = c.data_dir("access").join("timescaledb/ca");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|e| e == "key"));
    out
}

/// The one CA key kept on the access node.
#[track_caller]
fn ca_key(c: &Cluster) -> String {
    let files = ca_key_files(c);
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read_to_string(&files[0]).unwrap()
}

/// The state file, and each resource's private data in it (which
/// Terraform stores base64-encoded), hold none of `secrets`.
#[track_caller]
fn assert_state_clean(tf: &Terraform, secrets: &[&str]) {
    use base64::Engine as _;
    let state = std::fs::read_to_string(tf.work().join("terraform.tfstate")).expect("state");
    assert!(state.contains("timescaledb_"), "no resources in the state");
    let json: serde_json::Value = serde_json::from_str(&state).expect("state JSON");
    let mut private = String::new();
    for r in json["resources"].as_array().into_iter().flatten() {
        for i in r["instances"].as_array().into_iter().flatten() {
            if let Some(p) = i["private"].as_str() {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .expect("private is base64");
                private.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    for s in secrets.iter().chain(&["PRIVATE KEY"]) {
        assert!(!state.contains(s), "terraform.tfstate holds {s:?}");
        assert!(
            !private.contains(s),
            "private data in terraform.tfstate holds {s:?}"
        );
    }
}

/// `testrole` logs in to `node` with `password`, over a rule that asks for
/// it (the module's scram rule comes first on the data nodes).
fn logs_in(c: &Cluster, node: &str, password: &str) -> bool {
    logs_in_as(c, node, "testrole", password)
}

/// `user` logs in to `node` with `password` over TCP.
pub(crate) fn logs_in_as(c: &Cluster, node: &str, user: &str, password: &str) -> bool {
    c.psql_conn(
        &format!(
            "host=127.0.0.1 port={} dbname=postgres user={user}",
            c.port(node)
        ),
        "SELECT 1",
        &[("PGPASSWORD", password)],
    )
    .status
    .success()
}

fn set_passfile_password(c: &Cluster, password: &str) {
    let path = c.data_dir("access").join("passfile");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(":testrole:"))
        .unwrap()
        .to_string();
    let (key, _) = line.rsplit_once(':').unwrap();
    std::fs::write(&path, text.replace(&line, &format!("{key}:{password}"))).unwrap();
}

#[test]
fn the_module_keeps_no_secret_in_state_or_plan_and_still_sees_drift() {
    let c = cluster();
    let tf = Terraform::example("environments/staging");
    let mut vars = c.example_vars();
    vars.as_object_mut().unwrap().extend(
        json!({ "testrole_client_password": CLIENT, "testrole_internal_password": INTERNAL })
            .as_object()
            .unwrap()
            .clone(),
    );
    tf.vars(&vars);
    tf.init();
    apply_through_saved_plan(&tf, &[CLIENT, INTERNAL]);
    assert!(logs_in(&c, "dn1", INTERNAL) && logs_in(&c, "dn2", INTERNAL));
    assert!(logs_in(&c, "access", CLIENT));
    tf.assert_no_changes();

    // A password changed by hand on one data node: named in the plan,
    // repaired by apply (the write-only value is in the configuration).
    c.psql("dn2", &format!("ALTER ROLE testrole PASSWORD '{BY_HAND}'"));
    let (changes, plan) = tf.plan();
    let text = plan.flat();
    assert!(
        changes && text.contains("\"dn2\" = \"differs: password\" -> \"in sync\""),
        "{text}"
    );
    assert!(
        !text.contains("\"dn1\" = \"differs"),
        "only dn2 drifted: {text}"
    );
    tf.apply();
    assert!(logs_in(&c, "dn2", INTERNAL) && !logs_in(&c, "dn2", BY_HAND));
    tf.assert_no_changes();

    // The passfile's password changed by hand.
    set_passfile_password(&c, BY_HAND);
    let (changes, plan) = tf.plan();
    assert!(
        changes
            && plan
                .flat()
                .contains("password_status = \"differs\" -> \"in sync\""),
        "{}",
        plan.stdout
    );
    tf.apply();
    let file = std::fs::read_to_string(c.data_dir("access").join("passfile")).unwrap();
    assert!(file.contains(&format!(":testrole:{INTERNAL}")) && !file.contains(BY_HAND));
    tf.assert_no_changes();

    // Rotation: a new password and a new version.
    vars["testrole_internal_password"] = json!(ROTATED);
    vars["testrole_password_version"] = json!(2);
    tf.vars(&vars);
    apply_through_saved_plan(&tf, &[CLIENT, INTERNAL, ROTATED]);
    assert!(logs_in(&c, "dn1", ROTATED) && !logs_in(&c, "dn1", INTERNAL));
    let file = std::fs::read_to_string(c.data_dir("access").join("passfile")).unwrap();
    assert!(file.contains(&format!(":testrole:{ROTATED}")));
    tf.assert_no_changes();

    // Certificates: the CA's key on the access node, each node's key on
    // its node, none in the state or the plan.
    vars["auth_method"] = json!("certificate");
    tf.vars(&vars);
    apply_through_saved_plan(&tf, &[CLIENT, INTERNAL, ROTATED]);
    assert!(ca_key(&c).contains("PRIVATE KEY"));
    for (node, file) in [("dn1", "server.key"), ("access", "server.key")] {
        let key = std::fs::read_to_string(c.data_dir(node).join(file)).unwrap();
        assert!(key.contains("PRIVATE KEY"), "{node}:{file}");
    }
    tf.assert_no_changes();

    // A node's key removed by hand: only a new key and certificate can
    // repair it, signed with the CA key from the access node, in place (the
    // node keeps serving TLS, which the access node requires).
    let key_path = c.data_dir("dn1").join("server.key");
    let old_key = std::fs::read_to_string(&key_path).unwrap();
    std::fs::remove_file(&key_path).unwrap();
    let (changes, plan) = tf.plan();
    let text = plan.flat();
    assert!(
        changes
            && text.contains(
                "module.auth.timescaledb_node_certificate.server[\"dn1\"] will be updated in-place"
            )
            && text.contains("installed = \"key file missing\" -> \"in sync\""),
        "{text}"
    );
    tf.apply();
    let new_key = std::fs::read_to_string(&key_path).unwrap();
    assert!(new_key.contains("PRIVATE KEY") && new_key != old_key);
    assert_state_clean(&tf, &[CLIENT, INTERNAL, ROTATED]);
    tf.assert_no_changes();

    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
    assert!(ca_key_files(&c).is_empty(), "the CA key goes with the CA");
}

/// A state from the plain form moves to keys outside the state in place;
/// then renewal of a node certificate and of the CA, with every key outside
/// the state: the node certificate is re-signed with the key kept on the
/// access node, and a new CA writes a new key there.
#[test]
fn certificates_move_out_of_state_and_renew_there() {
    let c = Cluster::start(1);
    let tf = Terraform::with_binary(newest_terraform());
    let body = |early: u32| {
        format!(
            "{}resource \"timescaledb_certificate_authority\" \"ca\" {{\n  subject = {{ common_name = \"renewing CA\" }}\n  key_node = \"access\"\n  validity_days = 30\n  early_renewal_days = {early}\n}}\nresource \"timescaledb_node_certificate\" \"s\" {{\n  kind = \"server\"\n  node = \"dn1\"\n  common_name = \"localhost\"\n  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem\n  ca_key_node = timescaledb_certificate_authority.ca.key_node\n  validity_days = 10\n  early_renewal_days = {early}\n}}\n",
            c.provider_block()
        )
    };
    // The plain form: the CA's key in state, passed to the certificate.
    let plain = body(1).replace("  key_node = \"access\"\n", "").replace(
        "ca_key_node = timescaledb_certificate_authority.ca.key_node",
        "ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem",
    );
    tf.config(&plain);
    tf.init();
    tf.apply();
    let state = std::fs::read_to_string(tf.work().join("terraform.tfstate")).unwrap();
    assert!(
        state.contains("PRIVATE KEY"),
        "the plain form keeps the CA key in state"
    );
    assert!(ca_key_files(&c).is_empty());
    let before = fingerprints(&tf);
    tf.config(&body(1));
    let (changes, plan) = tf.plan();
    let text = plan.flat();
    assert!(
        changes
            && !text.contains("must be replaced")
            && text.contains("0 to add, 2 to change, 0 to destroy"),
        "{text}"
    );
    tf.apply();
    assert_state_clean(&tf, &[]);
    assert!(ca_key(&c).contains("PRIVATE KEY"));
    assert_eq!(before, fingerprints(&tf), "nothing re-issued");
    tf.assert_no_changes();
    let fingerprint = |tf: &Terraform, address: &str| {
        let show: serde_json::Value =
            serde_json::from_str(&tf.must(&["show", "-json"]).stdout).unwrap();
        show["values"]["root_module"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == address)
            .map(|r| {
                r["values"]["fingerprint_sha256"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap()
    };
    let (ca1, cert1) = (
        fingerprint(&tf, "timescaledb_certificate_authority.ca"),
        fingerprint(&tf, "timescaledb_node_certificate.s"),
    );
    let ca_key1 = ca_key(&c);

    // The node certificate enters its window (10 days left, 20 asked).
    let tf_body = body(1).replacen(
        "validity_days = 10\n  early_renewal_days = 1",
        "validity_days = 10\n  early_renewal_days = 20",
        1,
    );
    tf.config(&tf_body);
    tf.apply();
    let cert2 = fingerprint(&tf, "timescaledb_node_certificate.s");
    assert_ne!(cert1, cert2, "renewed");
    assert_eq!(
        ca1,
        fingerprint(&tf, "timescaledb_certificate_authority.ca")
    );
    assert_eq!(ca_key1, ca_key(&c));
    assert_state_clean(&tf, &[]);

    // Then the CA (30 days left, 40 asked): a new CA with a new key on the
    // access node, and the certificate it signed replaced with it.
    tf.config(&body(40));
    tf.apply();
    // One key on the node: the old CA's went with it.
    let ca_key2 = ca_key(&c);
    assert!(ca_key2.contains("PRIVATE KEY") && ca_key2 != ca_key1);
    assert_ne!(
        ca1,
        fingerprint(&tf, "timescaledb_certificate_authority.ca")
    );
    assert_ne!(cert2, fingerprint(&tf, "timescaledb_node_certificate.s"));
    assert_state_clean(&tf, &[]);
    tf.destroy();
}

/// Every certificate fingerprint in the state, by address.
fn fingerprints(tf: &Terraform) -> Vec<(String, String)> {
    let show: serde_json::Value =
        serde_json::from_str(&tf.must(&["show", "-json"]).stdout).unwrap();
    show["values"]["root_module"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = r["values"]["fingerprint_sha256"]
                .as_str()
                .unwrap_or_default();
            (r["address"].as_str().unwrap().to_string(), f.to_string())
        })
        .collect()
}

/// The Terraform `make deps` installs (1.0.3) has no write-only
/// attributes: a write-only password is refused on it with what to do,
/// and the plain module form works there.
fn old_terraform() -> std::path::PathBuf {
    let bin = Path::new(ROOT).join(".tools/bin/terraform");
    assert!(bin.exists(), "run `make deps` first");
    assert!(
        terraform_version(&bin) < vec![1, 11],
        "{} is not older than 1.11",
        bin.display()
    );
    bin
}

#[test]
fn write_only_attributes_are_refused_by_an_older_terraform() {
    let c = Cluster::start(1);
    let tf = Terraform::with_binary(old_terraform());
    tf.config(&format!(
        "{}resource \"timescaledb_distributed_role\" \"r\" {{\n  name = \"wo_role\"\n  password_wo = \"{CLIENT}\"\n  password_wo_version = 1\n}}\n",
        c.provider_block()
    ));
    tf.init();
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(!run.ok);
    let text = run.flat();
    assert!(
        text.contains("Write-only attributes need Terraform 1.11 or later")
            && text.contains("password_wo"),
        "{text}"
    );
    assert!(
        c.psql(
            "access",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'wo_role'"
        ) == "0"
    );
}

#[test]
fn the_plain_module_form_works_on_an_older_terraform() {
    let c = cluster();
    let tf = Terraform::with_binary(old_terraform());
    let root = tf.work().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let module = Path::new(ROOT).join("examples/modules/multinode-auth-plain");
    tf.config(&format!(
        "{}module \"auth\" {{\n  source = \"{}\"\n  auth_method = \"password\"\n  access_address = \"127.0.0.1\"\n  nodes = {{ access = \"127.0.0.1\", dn1 = \"127.0.0.1\", dn2 = \"127.0.0.1\" }}\n  roles = {{ testrole = {{ client_password = \"{CLIENT}\", internal_password = \"{INTERNAL}\" }} }}\n}}\n",
        c.provider_block(),
        module.display()
    ));
    tf.init();
    tf.apply();
    assert!(logs_in(&c, "dn1", INTERNAL) && logs_in(&c, "access", CLIENT));
    tf.assert_no_changes();
    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// A role and a passfile entry with plain passwords move to write-only ones
/// in place, as the guide says: an update, nothing replaced, the passwords
/// gone from the state, the role still logging in with the same password.
#[test]
fn plain_passwords_move_to_write_only_in_place() {
    let c = Cluster::start(1);
    let tf = Terraform::with_binary(newest_terraform());
    let plain = format!(
        "{}resource \"timescaledb_distributed_role\" \"r\" {{\n  name = \"mover\"\n  login = true\n  password = \"{CLIENT}\"\n}}\nresource \"timescaledb_passfile_entry\" \"e\" {{\n  username = timescaledb_distributed_role.r.name\n  password = \"{INTERNAL}\"\n}}\n",
        c.provider_block()
    );
    tf.config(&plain);
    tf.init();
    tf.apply();
    let state = std::fs::read_to_string(tf.work().join("terraform.tfstate")).unwrap();
    assert!(
        state.contains(CLIENT),
        "the plain form keeps the password in state"
    );
    let verifier = || {
        c.psql(
            "access",
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'mover'",
        )
    };
    let before = verifier();
    // The secrets now come from ephemeral variables into write-only
    // attributes (given in a tfvars file, so they stay out of the config).
    let write_only = format!(
        "{}variable \"client\" {{\n  type = string\n  ephemeral = true\n}}\nvariable \"internal\" {{\n  type = string\n  ephemeral = true\n}}\nresource \"timescaledb_distributed_role\" \"r\" {{\n  name = \"mover\"\n  login = true\n  password_wo = var.client\n  password_wo_version = 1\n}}\nresource \"timescaledb_passfile_entry\" \"e\" {{\n  username = timescaledb_distributed_role.r.name\n  password_wo = var.internal\n  password_wo_version = 1\n}}\n",
        c.provider_block()
    );
    tf.config(&write_only);
    tf.vars(&json!({ "client": CLIENT, "internal": INTERNAL }));
    let (changes, plan) = tf.plan();
    let text = plan.flat();
    assert!(
        changes && text.contains("0 to add, 2 to change, 0 to destroy"),
        "{text}"
    );
    tf.apply();
    assert_state_clean(&tf, &[CLIENT, INTERNAL]);
    assert_eq!(verifier(), before, "the node's password was not set again");
    let file = std::fs::read_to_string(c.data_dir("access").join("passfile")).unwrap();
    assert!(file.contains(&format!(":mover:{INTERNAL}")));
    tf.assert_no_changes();
    tf.destroy();
}

/// A write-only password from an ordinary variable (neither sensitive nor
/// ephemeral): Terraform shows it in no plan and no apply output, and it
/// is in no state, whatever the attribute's other flags.
#[test]
fn a_write_only_value_from_a_plain_variable_is_never_shown() {
    let c = Cluster::start(1);
    let tf = Terraform::with_binary(newest_terraform());
    let config = |version: u32| {
        format!(
            "{}variable \"pw\" {{\n  type = string\n}}\nresource \"timescaledb_distributed_role\" \"r\" {{\n  name = \"plainvar\"\n  login = true\n  password_wo = var.pw\n  password_wo_version = {version}\n}}\nresource \"timescaledb_passfile_entry\" \"e\" {{\n  username = timescaledb_distributed_role.r.name\n  password_wo = var.pw\n  password_wo_version = {version}\n}}\nresource \"timescaledb_hba_rule\" \"s\" {{\n  node = \"access\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [timescaledb_distributed_role.r.name]\n  address = \"127.0.0.1\"\n  method = \"scram-sha-256\"\n  position = 10\n}}\n",
            c.provider_block()
        )
    };
    tf.config(&config(1));
    tf.init();
    for (version, pw) in [(1, CLIENT), (2, ROTATED)] {
        tf.config(&config(version));
        tf.vars(&json!({ "pw": pw }));
        tf.must(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
        let outputs = [
            (
                "terraform show tfplan",
                tf.must(&["show", "-no-color", "tfplan"]),
            ),
            (
                "terraform apply tfplan",
                tf.must(&["apply", "-input=false", "-no-color", "tfplan"]),
            ),
        ];
        for (what, run) in &outputs {
            let text = run.flat();
            assert!(!text.contains(pw), "{what} shows the password: {text}");
        }
        // A new resource lists its write-only attributes, without values.
        let shown = outputs[0].1.flat();
        assert!(
            version > 1 || shown.contains("password_wo = (write-only attribute)"),
            "{shown}"
        );
        assert_state_clean(&tf, &[pw]);
        assert!(logs_in_as(&c, "access", "plainvar", pw));
        assert!(!logs_in_as(&c, "access", "plainvar", BY_HAND));
    }
    tf.assert_no_changes();
}
