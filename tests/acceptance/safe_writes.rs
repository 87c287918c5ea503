//! What a resource says is what the server enforces: hostile values are
//! refused on their attribute before anything is written, files holding
//! secrets are never readable by other OS users and leave nothing behind,
//! and passwords are stored the way the configuration says.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::{Cluster, Run, Terraform};

fn hba_rule(name: &str, body: &str) -> String {
    format!("resource \"timescaledb_hba_rule\" \"{name}\" {{\n  node = \"access\"\n{body}\n}}\n")
}

/// `terraform validate` fails, and the diagnostic points at `attribute`
/// and says `why`.
#[track_caller]
fn refused_at_validate(tf: &Terraform, attribute: &str, why: &str) -> Run {
    let r = tf.run(&["validate", "-no-color"]);
    assert!(!r.ok, "validate accepted it:\n{}", r.all());
    let out = r.all();
    assert!(
        out.contains(&format!("{attribute} ")) && out.contains(why),
        "expected an error on `{attribute}` saying {why:?}:\n{out}"
    );
    r
}

#[test]
fn a_comment_or_a_nul_can_never_switch_off_the_next_rule() {
    let c = Cluster::start(0);
    c.psql("access", "CREATE ROLE victim LOGIN");
    let victim_logs_in = || {
        c.psql_output("access", "victim", "SELECT 1")
            .status
            .success()
    };
    assert!(victim_logs_in(), "the stock file lets everyone in over TCP");
    let before = c.read_hba("access");
    let victim_rule = hba_rule(
        "b",
        "  type = \"host\"\n  databases = [\"all\"]\n  users = [\"victim\"]\n  address = \"127.0.0.1\"\n  method = \"reject\"\n  position = 20",
    );
    let tf = Terraform::new();
    let config = |comment: &str| {
        tf.config(&format!(
            "{}{}{victim_rule}",
            c.provider_block(),
            hba_rule(
                "a",
                &format!("  type = \"local\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  method = \"trust\"\n  position = 10\n  comment = \"{comment}\""),
            )
        ))
    };
    config("note");
    tf.init();
    for (comment, why) in [
        ("note\\\\", "end with a backslash"),
        ("a\\u0000b", "NUL"),
        ("two\\nlines", "line break"),
        (" padded", "start or end with a space"),
    ] {
        config(comment);
        refused_at_validate(&tf, "comment", why);
        let r = tf.try_apply();
        assert!(!r.ok, "apply went ahead with comment {comment:?}");
        assert_eq!(c.read_hba("access"), before, "nothing may be written");
    }
    config("note");
    tf.apply();
    assert!(
        !victim_logs_in(),
        "the reject rule is in force:\n{}",
        c.read_hba("access")
    );
    tf.assert_no_changes();
    tf.destroy();
    assert_eq!(c.read_hba("access"), before);
}

#[test]
fn hostile_values_are_refused_on_their_attribute() {
    let c = Cluster::start(0);
    let tf = Terraform::new();
    tf.config(&c.provider_block());
    tf.init();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            hba_rule("r", "  type = \"host\"\n  databases = [\"all\", null]\n  users = [\"all\"]\n  address = \"all\"\n  method = \"trust\""),
            "databases",
            "cannot hold null",
        ),
        (
            hba_rule("r", "  type = \"local\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  method = \"peer\"\n  options = { map = \"m\\u0000x\" }"),
            "options",
            "NUL",
        ),
        (
            hba_rule("r", "  type = \"local\"\n  databases = [\"all\"]\n  users = [\"@admins\"]\n  method = \"trust\""),
            "users",
            "read the names from the file",
        ),
        (
            hba_rule("r", "  type = \"local\"\n  databases = [\"all\"]\n  users = [\"\\\"app\\\"\"]\n  method = \"trust\""),
            "users",
            "needs no double quotes",
        ),
        (
            "resource \"timescaledb_passfile_entry\" \"p\" {\n  hostname = \"dn1\"\n  port = \"5432\"\n  database = \"*\"\n  username = \"u\"\n  password = \"pw\\u0000tail\"\n}\n".to_string(),
            "password",
            "NUL",
        ),
        (
            "resource \"timescaledb_passfile_entry\" \"p\" {\n  hostname = \"dn1\\r\"\n  port = \"5432\"\n  database = \"*\"\n  username = \"u\"\n  password = \"pw\"\n}\n".to_string(),
            "hostname",
            "carriage return",
        ),
        (
            "resource \"timescaledb_distributed_role\" \"r\" {\n  name = \"u\"\n  password = \"pw\\u0000\"\n  data_nodes = []\n}\n".to_string(),
            "password",
            "NUL",
        ),
    ];
    for (body, attribute, why) in cases {
        tf.config(&format!("{}{body}", c.provider_block()));
        refused_at_validate(&tf, attribute, why);
    }
}

#[test]
fn a_rule_for_quoted_names_imports_by_its_id() {
    let c = Cluster::start(0);
    let tf = Terraform::new();
    tf.config(&format!(
        "{}{}",
        c.provider_block(),
        hba_rule(
            "r",
            "  type = \"host\"\n  databases = [\"my db\", \"\\\"all\\\"\"]\n  users = [\"o'brien \\\"x\\\"\", \"+ops team\"]\n  address = \"10.0.0.0/8\"\n  method = \"md5\"",
        )
    ));
    tf.init();
    tf.apply();
    let show: serde_json::Value =
        serde_json::from_str(&tf.must(&["show", "-json"]).stdout).unwrap();
    let id = show["values"]["root_module"]["resources"][0]["values"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        id,
        "access host \"my db\",\"all\" \"o'brien \"\"x\"\"\",+\"ops team\" 10.0.0.0/8"
    );
    assert_eq!(
        c.psql(
            "access",
            "SELECT database::text || ' ' || user_name::text FROM pg_hba_file_rules WHERE auth_method = 'md5' AND address = '10.0.0.0'"
        ),
        "{\"my db\",all} {\"o'brien \\\"x\\\"\",\"+ops team\"}"
    );
    tf.must(&["state", "rm", "timescaledb_hba_rule.r"]);
    tf.must(&[
        "import",
        "-input=false",
        "-no-color",
        "timescaledb_hba_rule.r",
        &id,
    ]);
    tf.assert_no_changes();
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn secret_files_leave_no_copy_and_follow_no_link() {
    let c = Cluster::start(1);
    let dir = c.data_dir("access");
    let passfile = dir.join("passfile");
    // What a killed write of earlier releases, or another user, left behind:
    // a readable staging copy, a backup holding passwords, a staging
    // directory that is a link elsewhere, and a passfile that is a link.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(elsewhere.path().join("keep"), "untouched").unwrap();
    std::fs::write(dir.join("passfile.terraform-new"), "old:copy:*:u:secret\n").unwrap();
    std::fs::write(
        dir.join("passfile.terraform-backup"),
        "old:backup:*:u:secret\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), dir.join("passfile.terraform-new.d")).unwrap();
    let target = elsewhere.path().join("target");
    std::fs::write(&target, "not a passfile\n").unwrap();
    std::os::unix::fs::symlink(&target, &passfile).unwrap();

    let tf = Terraform::new();
    tf.config(&format!(
        "{}resource \"timescaledb_passfile_entry\" \"p\" {{\n  hostname = \"127.0.0.1\"\n  port = \"{}\"\n  database = \"*\"\n  username = \"testrole\"\n  password = \"s3cret:pw\"\n}}\n",
        c.provider_block(),
        c.port("dn1")
    ));
    tf.init();
    tf.apply();
    let meta = std::fs::symlink_metadata(&passfile).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the link is replaced, not followed"
    );
    assert_eq!(mode(&passfile), 0o600);
    assert!(std::fs::read_to_string(&passfile)
        .unwrap()
        .contains("s3cret\\:pw"));
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "not a passfile\n"
    );
    assert_eq!(
        std::fs::read_to_string(elsewhere.path().join("keep")).unwrap(),
        "untouched"
    );
    for leftover in [
        "passfile.terraform-new",
        "passfile.terraform-backup",
        "passfile.terraform-new.d",
    ] {
        assert!(
            std::fs::symlink_metadata(dir.join(leftover)).is_err(),
            "{leftover} is still there"
        );
    }
    tf.destroy();
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("passfile."))
        .collect();
    assert!(left.is_empty(), "left beside the passfile: {left:?}");
    assert!(!std::fs::read_to_string(&passfile)
        .unwrap()
        .contains("s3cret"));
}

#[test]
fn passwords_are_scram_everywhere_and_an_md5_verifier_is_drift() {
    let c = Cluster::start(1);
    // A node that would store md5 by default.
    c.psql("dn1", "ALTER SYSTEM SET password_encryption = 'md5'");
    c.psql("dn1", "SELECT pg_reload_conf()");
    let tf = Terraform::new();
    let role = |extra: &str| {
        format!(
            "{}resource \"timescaledb_distributed_role\" \"r\" {{\n  name = \"app\"\n  login = true\n  password = \"app pass\"\n{extra}}}\n",
            c.provider_block_for(true),
        )
    };
    tf.config(&role(""));
    tf.init();
    tf.apply();
    let stored = |node: &str| {
        c.psql(
            node,
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'",
        )
    };
    for node in ["access", "dn1"] {
        assert!(
            stored(node).starts_with("SCRAM-SHA-256$"),
            "{node}: {}",
            stored(node)
        );
    }
    tf.assert_no_changes();

    // The same password, set by hand as md5: the data node's scram rules
    // would refuse it, so it is drift, shown on that node.
    c.psql(
        "dn1",
        "SET password_encryption = 'md5'; ALTER ROLE app PASSWORD 'app pass'",
    );
    assert!(stored("dn1").starts_with("md5"));
    let (changes, plan) = tf.plan();
    assert!(changes, "{}", plan.stdout);
    assert_eq!(
        crate::harness::drifted_nodes(&plan.stdout),
        [(
            "dn1".to_string(),
            "differs: password (md5 verifier)".to_string()
        )],
        "{}",
        plan.stdout
    );
    tf.apply();
    assert!(
        stored("dn1").starts_with("SCRAM-SHA-256$"),
        "{}",
        stored("dn1")
    );
    tf.assert_no_changes();

    // md5 only when asked for.
    tf.config(&role("  password_encryption = \"md5\"\n"));
    tf.apply();
    for node in ["access", "dn1"] {
        assert!(stored(node).starts_with("md5"), "{node}: {}", stored(node));
    }
    tf.assert_no_changes();
}

/// Reads `path` over and over until `stop`, and returns how many reads
/// were made and every read that was not a whole file (one that does not
/// end with `tail`, or no file at all).
fn watch(
    path: std::path::PathBuf,
    tail: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut reads, mut torn) = (0u64, Vec::new());
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            reads += 1;
            match std::fs::read(&path) {
                Ok(b) if b.ends_with(tail.as_bytes()) => {}
                Ok(b) => torn.push(format!("{} bytes, not ending with the padding", b.len())),
                Err(e) => torn.push(format!("unreadable: {e}")),
            }
        }
        (reads, torn)
    })
}

/// Lines a reader skips (comments), a few megabytes of them, ending with a
/// line no partial write can end with.
fn padding(what: &str) -> String {
    let mut s = String::new();
    for i in 0..20_000 {
        s.push_str(&format!(
            "# {what} padding line {i:06} ................................\n"
        ));
    }
    s.push_str("# end of the padding\n");
    s
}

/// Files are replaced in one step: a reader looking at the passfile and at
/// `pg_hba.conf` all the while the provider rewrites them (megabytes each,
/// five times) only ever sees a whole file, the old or the new one. A
/// provider that wrote in place (truncate, then write in chunks) is seen
/// half-written. What a reader can see at any moment is also what a crash
/// at that moment leaves.
#[test]
fn readers_only_ever_see_whole_files() {
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let c = Cluster::start(0);
    let tf = Terraform::new();
    let config = |version: u32| {
        format!(
            "{}resource \"timescaledb_passfile_entry\" \"e\" {{\n  username = \"whole\"\n  password = \"pw-{version}\"\n}}\n{}",
            c.provider_block(),
            hba_rule(
                "r",
                &format!("  type = \"host\"\n  databases = [\"all\"]\n  users = [\"whole\"]\n  address = \"192.0.2.{version}\"\n  method = \"reject\""),
            )
        )
    };
    tf.config(&config(1));
    tf.init();
    tf.apply();
    let passfile = c.data_dir("access").join("passfile");
    let (pass_tail, hba_tail) = (padding("passfile"), padding("pg_hba.conf"));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&passfile)
        .unwrap()
        .write_all(pass_tail.as_bytes())
        .unwrap();
    c.write_hba("access", &(c.read_hba("access") + &hba_tail));
    tf.assert_no_changes();

    let stop = Arc::new(AtomicBool::new(false));
    let watchers = [
        watch(passfile.clone(), pass_tail.clone(), stop.clone()),
        watch(c.hba_path("access"), hba_tail.clone(), stop.clone()),
    ];
    for version in 2..=6 {
        tf.config(&config(version));
        tf.apply();
    }
    stop.store(true, Ordering::SeqCst);
    for (w, name) in watchers.into_iter().zip(["passfile", "pg_hba.conf"]) {
        let (reads, torn) = w.join().unwrap();
        assert!(reads > 50, "{name}: only {reads} reads");
        assert!(
            torn.is_empty(),
            "{name}: {} of {reads} reads saw a torn file: {:?}",
            torn.len(),
            &torn[..torn.len().min(5)]
        );
    }
    let file = std::fs::read_to_string(&passfile).unwrap();
    assert!(file.contains(":whole:pw-6\n") && file.ends_with(&pass_tail));
    assert!(
        c.read_hba("access").contains("192.0.2.6/32") && c.read_hba("access").ends_with(&hba_tail)
    );
    tf.destroy();
}
