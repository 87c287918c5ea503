//! What the provider promises against everyone it does not trust, beside
//! the hostile tenant (`hostile_tenant`): a provider role that may not read
//! what it changes, database owners, the network between Terraform and the
//! nodes, and whoever can edit the state.

use crate::harness::{newest_terraform, terraform_version, Cluster, Terraform};
use crate::secrets_in_state::logs_in_as;

/// The rights "Running without superuser" documents: no superuser, so
/// stored passwords cannot be read.
const NON_SUPERUSER: &str = "CREATE ROLE tfadmin LOGIN CREATEROLE; \
     GRANT pg_read_server_files, pg_write_server_files, pg_read_all_settings TO tfadmin; \
     GRANT EXECUTE ON FUNCTION lo_export(oid, text), pg_reload_conf(), pg_hba_file_rules(), \
     pg_stat_file(text, boolean), pg_read_binary_file(text) TO tfadmin; \
     GRANT SELECT ON pg_hba_file_rules TO tfadmin";

fn scram_rules() -> &'static str {
    "resource \"timescaledb_hba_rule\" \"app\" {\n  for_each = toset([\"access\", \"dn1\"])\n  node = each.key\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"app\"]\n  address = \"127.0.0.1/32\"\n  method = \"scram-sha-256\"\n}\n"
}

/// The `nodes` map of `timescaledb_distributed_role.app` in the state.
fn role_nodes(tf: &Terraform) -> Vec<(String, String)> {
    let show: serde_json::Value =
        serde_json::from_str(&tf.must(&["show", "-json"]).stdout).expect("show -json");
    let resources = show["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let role = resources
        .iter()
        .find(|r| r["address"] == "timescaledb_distributed_role.app")
        .expect("the role in the state");
    role["values"]["nodes"]
        .as_object()
        .expect("nodes")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Each node logs `app` in with `good` and not with `bad`.
#[track_caller]
fn only_password_works(c: &Cluster, good: &str, bad: &str) {
    for node in ["access", "dn1"] {
        assert!(logs_in_as(c, node, "app", good), "{node}: {good:?} refused");
        assert!(
            !logs_in_as(c, node, "app", bad),
            "{node}: {bad:?} still logs in"
        );
    }
}

/// A password the provider may not read back is never taken as in sync: a
/// changed password, a bumped write-only version, and a data node whose
/// `username` alone is not a superuser all reach the nodes, and `nodes`
/// says the password could not be checked.
#[test]
fn a_password_the_provider_cannot_read_is_still_rotated() {
    let c = Cluster::start(1);
    for node in ["access", "dn1"] {
        c.psql(node, NON_SUPERUSER);
    }
    let plain = |provider: &str, password: &str| {
        format!(
            "{provider}{}resource \"timescaledb_distributed_role\" \"app\" {{\n  name = \"app\"\n  login = true\n  password = \"{password}\"\n}}\n",
            scram_rules()
        )
    };
    let tfadmin = c
        .provider_block()
        .replace("username = \"postgres\"", "username = \"tfadmin\"");
    let tf = Terraform::new();
    tf.config(&plain(&tfadmin, "aaaa"));
    tf.init();
    tf.apply();
    only_password_works(&c, "aaaa", "bbbb");
    tf.assert_no_changes();
    for (node, status) in role_nodes(&tf) {
        assert!(status.contains("password unchecked"), "{node}: {status}");
    }

    tf.config(&plain(&tfadmin, "bbbb"));
    let (changes, _) = tf.plan();
    assert!(changes);
    tf.apply();
    only_password_works(&c, "bbbb", "aaaa");
    tf.assert_no_changes();

    // Only the data node's connection is not a superuser's.
    let mixed = c.provider_block().replace(
        &format!("dn1 = {{ port = {} }}", c.port("dn1")),
        &format!(
            "dn1 = {{ port = {}, username = \"tfadmin\" }}",
            c.port("dn1")
        ),
    );
    assert_ne!(mixed, c.provider_block());
    tf.config(&plain(&mixed, "cccc"));
    tf.apply();
    only_password_works(&c, "cccc", "bbbb");
    tf.assert_no_changes();
    tf.destroy();

    // The write-only form: a version bump sets the password again.
    let newest = newest_terraform();
    if terraform_version(&newest) >= vec![1, 11] {
        let write_only = |version: u32| {
            format!(
                "{tfadmin}{}variable \"pw\" {{\n  type = string\n  ephemeral = true\n}}\nresource \"timescaledb_distributed_role\" \"app\" {{\n  name = \"app\"\n  login = true\n  password_wo = var.pw\n  password_wo_version = {version}\n}}\n",
                scram_rules()
            )
        };
        let tf = Terraform::with_binary(newest);
        tf.config(&write_only(1));
        tf.init();
        tf.must(&[
            "apply",
            "-input=false",
            "-auto-approve",
            "-no-color",
            "-var",
            "pw=dddd",
        ]);
        only_password_works(&c, "dddd", "cccc");
        tf.config(&write_only(2));
        tf.must(&[
            "apply",
            "-input=false",
            "-auto-approve",
            "-no-color",
            "-var",
            "pw=eeee",
        ]);
        only_password_works(&c, "eeee", "dddd");
        tf.must(&[
            "destroy",
            "-input=false",
            "-auto-approve",
            "-no-color",
            "-var",
            "pw=eeee",
        ]);
    }
}

/// A `pg_hba.conf` the server could not check, or could not load, is never
/// left on disk: when the check itself fails (the provider's role may not
/// read `pg_hba_file_rules`) or the reload does (no right to
/// `pg_reload_conf`), the previous content is back on disk, byte for byte.
#[test]
fn an_unverified_pg_hba_conf_is_never_left_on_disk() {
    let c = Cluster::start(1);
    c.psql("dn1", NON_SUPERUSER);
    for (right, why) in [
        ("SELECT ON pg_hba_file_rules", "pg_hba_file_rules"),
        ("EXECUTE ON FUNCTION pg_reload_conf()", "pg_reload_conf"),
    ] {
        c.psql("dn1", &format!("REVOKE {right} FROM tfadmin"));
        let before = c.read_hba("dn1");
        let tf = Terraform::new();
        tf.config(&format!(
            "{}resource \"timescaledb_hba_rule\" \"r\" {{\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"app\"]\n  address = \"10.0.0.1\"\n  method = \"scram-sha-256\"\n}}\n",
            c.provider_block()
                .replace("username = \"postgres\"", "username = \"tfadmin\"")
        ));
        tf.init();
        let run = tf.try_apply();
        assert!(!run.ok, "{why}: the apply succeeded:\n{}", run.all());
        assert_eq!(
            c.read_hba("dn1"),
            before,
            "{why}: the new file was left on disk"
        );
        assert!(run.flat().contains(why), "{why}: {}", run.flat());
        assert_eq!(c.hba_errors("dn1"), "");
        c.psql("dn1", &format!("GRANT {right} TO tfadmin"));
    }
    // Without the right to run programs nothing could narrow the mode of a
    // copy written by `lo_export` (0644): none is written.
    use std::os::unix::fs::PermissionsExt;
    let backup = c.hba_path("dn1").with_extension("conf.terraform-backup");
    if let Ok(m) = std::fs::metadata(&backup) {
        assert_eq!(
            m.permissions().mode() & 0o077,
            0,
            "{} is readable by others",
            backup.display()
        );
    }
}

fn server_cert(node: &str, validity: u32, lifecycle: &str) -> String {
    format!(
        r#"resource "timescaledb_certificate_authority" "ca" {{
  subject  = {{ common_name = "Test CA" }}
  key_node = "access"
}}

resource "timescaledb_node_certificate" "server" {{
  kind          = "server"
  node          = "{node}"
  common_name   = "127.0.0.1"
  ip_addresses  = ["127.0.0.1"]
  validity_days = {validity}
  ca_cert_pem   = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node   = timescaledb_certificate_authority.ca.key_node
{lifecycle}}}
"#
    )
}

/// Replacing a server certificate with the new one made first: the old
/// one's destroy finds the new certificate in the file it wrote and leaves
/// the node's TLS alone.
#[test]
fn a_replaced_server_certificate_leaves_tls_on() {
    let c = Cluster::start(1);
    let cbd = "  lifecycle {\n    create_before_destroy = true\n  }\n";
    let tf = Terraform::new();
    tf.config(&format!(
        "{}{}",
        c.provider_block(),
        server_cert("dn1", 30, cbd)
    ));
    tf.init();
    tf.apply();
    assert_eq!(c.psql("dn1", "SHOW ssl"), "on");
    tf.config(&format!(
        "{}{}",
        c.provider_block(),
        server_cert("dn1", 31, cbd)
    ));
    let (changes, plan) = tf.plan();
    assert!(
        changes && plan.stdout.contains("create replacement and then destroy"),
        "{}",
        plan.stdout
    );
    tf.apply();
    assert_eq!(
        c.psql("dn1", "SHOW ssl"),
        "on",
        "the old certificate's destroy turned TLS off"
    );
    assert_eq!(
        c.psql(
            "dn1",
            "SELECT setting FROM pg_file_settings WHERE name = 'ssl' ORDER BY seqno DESC LIMIT 1"
        ),
        "on"
    );
    assert!(c.data_dir("dn1").join("server.key").exists());
    tf.assert_no_changes();
    tf.destroy();
    assert_eq!(c.psql("dn1", "SHOW ssl"), "off");
}

/// A state edited by hand names no path a destroy removes: the files are
/// found where the node keeps them and removed only while they hold the
/// certificate the state records.
#[test]
fn a_tampered_state_cannot_make_destroy_remove_other_files() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    tf.config(&format!(
        "{}{}",
        c.provider_block(),
        server_cert("dn1", 30, "")
    ));
    tf.init();
    tf.apply();
    let victim = tempfile::tempdir().expect("temp dir");
    for f in ["a.crt", "a.key", "a.ca"] {
        std::fs::write(victim.path().join(f), "keep me").unwrap();
    }
    // Files the server's OS user could remove, were it told to.
    let chown = std::process::Command::new("chown")
        .args(["-R", "postgres:"])
        .arg(victim.path())
        .status()
        .expect("chown");
    assert!(chown.success());
    let state_path = tf.work().join("terraform.tfstate");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    for r in state["resources"].as_array_mut().unwrap() {
        let ty = r["type"].as_str().unwrap_or_default().to_string();
        let a = &mut r["instances"][0]["attributes"];
        match Some(ty.as_str()) {
            Some("timescaledb_node_certificate") => {
                a["cert_path"] = victim.path().join("a.crt").display().to_string().into();
                a["key_path"] = victim.path().join("a.key").display().to_string().into();
                a["ca_path"] = victim.path().join("a.ca").display().to_string().into();
                a["cert_pem"] = "".into();
                a["fingerprint_sha256"] = "".into();
            }
            Some("timescaledb_certificate_authority") => {
                a["fingerprint_sha256"] =
                    format!("../../../../../../..{}/a", victim.path().display()).into();
            }
            _ => {}
        }
    }
    std::fs::write(&state_path, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    let run = tf.run(&["destroy", "-input=false", "-auto-approve", "-no-color"]);
    for f in ["a.crt", "a.key", "a.ca"] {
        assert_eq!(
            std::fs::read_to_string(victim.path().join(f)).unwrap_or_default(),
            "keep me",
            "{f} was touched:\n{}",
            run.all()
        );
    }
    // The node's own files hold a certificate the state no longer names:
    // they stay, and so does TLS.
    assert!(c.data_dir("dn1").join("server.crt").exists());
    assert_eq!(c.psql("dn1", "SHOW ssl"), "on");
    assert!(
        run.flat().contains("Not a certificate fingerprint"),
        "{}",
        run.flat()
    );
}

/// The TLS coupling of a TimescaleDB access node fails closed: a data node
/// whose TLS cannot be probed (reached over a Unix socket) and whose `ssl`
/// is off keeps the access node's ssl off.
#[test]
fn the_tls_coupling_guard_fails_closed() {
    let c = Cluster::start(1);
    c.install_distributed_exec_standin();
    let socket_dir = c.data_dir("dn1").parent().unwrap().join("sock-dn1");
    let provider = c.provider_block().replace(
        &format!("dn1 = {{ port = {} }}", c.port("dn1")),
        &format!(
            "dn1 = {{ host = \"{}\", port = {} }}",
            socket_dir.display(),
            c.port("dn1")
        ),
    );
    assert_ne!(provider, c.provider_block());
    let tf = Terraform::new();
    tf.config(&format!("{provider}{}", server_cert("access", 30, "")));
    tf.init();
    let run = tf.try_apply();
    assert!(!run.ok, "{}", run.all());
    assert!(
        run.flat().contains("Data nodes serve no TLS yet"),
        "{}",
        run.flat()
    );
    assert_eq!(c.psql("access", "SHOW ssl"), "off");
}

/// A database owner may attach settings to every session in their
/// database (`ALTER DATABASE ... SET`): a `SET ROLE` to themselves and a
/// search path of their own change nothing of what the provider does
/// there, and the file paths the provider takes from settings are ones
/// the server lets no database owner set.
#[test]
fn a_database_owner_cannot_steer_the_provider() {
    let c = Cluster::start(1);
    for node in ["access", "dn1"] {
        c.psql(node, "CREATE ROLE dbo LOGIN");
        c.psql(node, "CREATE DATABASE tdb OWNER dbo");
        for setting in ["role = 'dbo'", "search_path = public"] {
            let out = c.psql_conn(
                &format!("host=127.0.0.1 port={} dbname=tdb user=dbo", c.port(node)),
                &format!("ALTER DATABASE tdb SET {setting}"),
                &[],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for path in ["timescaledb.passfile", "timescaledb.ssl_dir"] {
            let out = c.psql_conn(
                &format!("host=127.0.0.1 port={} dbname=tdb user=dbo", c.port(node)),
                &format!("ALTER DATABASE tdb SET {path} = '/tmp/elsewhere'"),
                &[],
            );
            assert!(!out.status.success(), "a database owner set {path}");
        }
    }
    let tf = Terraform::new();
    tf.config(&format!(
        "{}resource \"timescaledb_distributed_role\" \"app\" {{\n  name = \"app\"\n  login = true\n}}\n",
        c.provider_block()
            .replace("username = \"postgres\"", "username = \"postgres\"\n  database = \"tdb\"")
    ));
    tf.init();
    tf.apply();
    for node in ["access", "dn1"] {
        assert_eq!(
            c.psql(node, "SELECT count(*) FROM pg_roles WHERE rolname = 'app'"),
            "1",
            "{node}"
        );
    }
    tf.assert_no_changes();
    tf.destroy();
}

/// `+group` in pg_hba.conf counts membership only, never being a superuser:
/// a `+group` reject rule leaves the provider, a superuser outside the
/// group, its way in (and the change is made), and is refused at plan time
/// once the provider is a member.
#[test]
fn a_group_rule_counts_the_provider_only_as_a_member() {
    let c = Cluster::start(1);
    c.psql("dn1", "CREATE ROLE admins");
    let config = format!(
        "{}resource \"timescaledb_hba_rule\" \"admins\" {{\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"+admins\"]\n  address = \"127.0.0.1/32\"\n  method = \"reject\"\n}}\n",
        c.provider_block()
    );
    let tf = Terraform::new();
    tf.config(&config);
    tf.init();
    tf.apply();
    assert!(c
        .read_hba("dn1")
        .contains("host all +admins 127.0.0.1/32 reject"));
    tf.destroy();
    c.psql("dn1", "GRANT admins TO postgres");
    let before = c.read_hba("dn1");
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(
        !run.ok && run.flat().contains("lock the provider out"),
        "{}",
        run.all()
    );
    assert_eq!(c.read_hba("dn1"), before);
}
