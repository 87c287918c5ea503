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
