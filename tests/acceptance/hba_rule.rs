//! timescaledb_hba_rule against live nodes.

use crate::harness::{assert_text_eq, Cluster, Terraform};

fn rule(name: &str, node: &str, body: &str) -> String {
    format!("resource \"timescaledb_hba_rule\" \"{name}\" {{\n  node = \"{node}\"\n{body}\n}}\n")
}

const HOST_RULE: &str = "  type = \"host\"\n  databases = [\"all\"]\n  users = [\"testrole\"]\n  address = \"127.0.0.1\"\n";

#[test]
fn create_update_replace_destroy() {
    let c = Cluster::start(1);
    let original = c.read_hba("dn1");
    let tf = Terraform::new();
    tf.config(&format!(
        "{}{}",
        c.provider_block(),
        rule(
            "r",
            "dn1",
            &format!("{HOST_RULE}  method = \"trust\"\n  comment = \"access node\"")
        )
    ));
    tf.init();
    tf.apply();
    let expected_line = "host all testrole 127.0.0.1/32 trust # (100) access node";
    assert!(
        c.read_hba("dn1").contains(expected_line),
        "{}",
        c.read_hba("dn1")
    );
    assert_eq!(
        c.psql(
            "dn1",
            "SELECT auth_method FROM pg_hba_file_rules WHERE 'testrole' = ANY(user_name)"
        ),
        "trust"
    );
    assert_eq!(c.hba_errors("dn1"), "");
    // The content replaced is kept beside the file, readable by the
    // server's OS user only.
    let backup = c.hba_path("dn1").with_extension("conf.terraform-backup");
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup).unwrap().permissions())
            & 0o777,
        0o600
    );
    tf.assert_no_changes();

    // in place: method and comment
    tf.config(&format!(
        "{}{}",
        c.provider_block(),
        rule(
            "r",
            "dn1",
            &format!("{HOST_RULE}  method = \"scram-sha-256\"")
        )
    ));
    let (changes, plan) = tf.plan();
    assert!(
        changes && plan.stdout.contains("1 to change, 0 to destroy"),
        "{}",
        plan.stdout
    );
    tf.apply();
    assert!(
        c.read_hba("dn1")
            .contains("host all testrole 127.0.0.1/32 scram-sha-256 # (100)\n"),
        "{}",
        c.read_hba("dn1")
    );
    tf.assert_no_changes();

    // replace: a different address is a different rule
    tf.config(&format!("{}{}", c.provider_block(), rule("r", "dn1", "  type = \"host\"\n  databases = [\"all\"]\n  users = [\"testrole\"]\n  address = \"10.1.0.0\"\n  netmask = \"255.255.0.0\"\n  method = \"md5\"")));
    let (_, plan) = tf.plan();
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    tf.apply();
    let text = c.read_hba("dn1");
    assert!(
        text.contains("host all testrole 10.1.0.0/16 md5 # (100)\n")
            && !text.contains("127.0.0.1/32 scram"),
        "{text}"
    );
    tf.assert_no_changes();

    tf.destroy();
    assert_text_eq(&c.read_hba("dn1"), &original, "pg_hba.conf after destroy");
}

#[test]
fn drift_is_detected_and_repaired_and_import_adopts() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    let body = format!(
        "{}{}",
        c.provider_block(),
        rule("r", "dn1", &format!("{HOST_RULE}  method = \"trust\""))
    );
    tf.config(&body);
    tf.init();
    tf.apply();

    // a hand edit of the method
    let edited = c
        .read_hba("dn1")
        .replace("127.0.0.1/32 trust # (100)", "127.0.0.1/32 reject # (100)");
    c.write_hba("dn1", &edited);
    let (changes, plan) = tf.plan();
    assert!(changes, "hand edit not detected");
    assert!(
        plan.stdout.contains("\"reject\" -> \"trust\""),
        "{}",
        plan.stdout
    );
    tf.apply();
    assert!(c.read_hba("dn1").contains("127.0.0.1/32 trust # (100)"));
    tf.assert_no_changes();

    // the line deleted by hand
    let removed: String = c
        .read_hba("dn1")
        .lines()
        .filter(|l| !l.contains("testrole"))
        .map(|l| format!("{l}\n"))
        .collect();
    c.write_hba("dn1", &removed);
    let (changes, plan) = tf.plan();
    assert!(
        changes && plan.stdout.contains("1 to add"),
        "{}",
        plan.stdout
    );
    tf.apply();
    tf.assert_no_changes();

    // forget it, then import it back by its ID
    tf.must(&["state", "rm", "timescaledb_hba_rule.r"]);
    tf.must(&[
        "import",
        "-no-color",
        "timescaledb_hba_rule.r",
        "dn1 host all testrole 127.0.0.1",
    ]);
    tf.assert_no_changes();
    tf.must(&["state", "rm", "timescaledb_hba_rule.r"]);
    tf.must(&[
        "import",
        "-no-color",
        "timescaledb_hba_rule.r",
        "dn1 host all testrole 127.0.0.1 255.255.255.255",
    ]);
    let (changes, plan) = tf.plan();
    assert!(
        changes && plan.stdout.contains("netmask"),
        "an ID spelled differently from the configuration shows the spelling change: {}",
        plan.stdout
    );
    tf.apply();
    tf.assert_no_changes();

    // adopt a line the provider never wrote (initdb's own rule)
    tf.config(&format!(
        "{body}\n{}",
        rule("initdb", "dn1", "  type = \"host\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"::1/128\"\n  method = \"trust\"")
    ));
    tf.must(&[
        "import",
        "-no-color",
        "timescaledb_hba_rule.initdb",
        "dn1 host all all ::1/128",
    ]);
    tf.assert_no_changes();
    let bad = tf.run(&[
        "import",
        "-no-color",
        "timescaledb_hba_rule.initdb",
        "dn1 host all all 10.9.9.9/32",
    ]);
    assert!(
        !bad.ok && bad.all().contains("Rule not found"),
        "{}",
        bad.all()
    );
}

#[test]
fn twenty_rules_in_parallel_on_one_node_all_land() {
    let c = Cluster::start(1);
    let original = c.read_hba("dn1");
    let tf = Terraform::new();
    tf.config(&format!(
        "{}resource \"timescaledb_hba_rule\" \"many\" {{\n  count = 20\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"10.0.${{count.index}}.0/24\"\n  method = \"scram-sha-256\"\n  position = count.index\n}}\n",
        c.provider_block()
    ));
    tf.init();
    tf.must(&[
        "apply",
        "-input=false",
        "-auto-approve",
        "-no-color",
        "-parallelism=20",
    ]);
    let text = c.read_hba("dn1");
    let managed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("host all all 10.0."))
        .collect();
    let expected: Vec<String> = (0..20)
        .map(|i| format!("host all all 10.0.{i}.0/24 scram-sha-256 # ({i})"))
        .collect();
    assert_eq!(managed, expected, "every rule present, in position order");
    assert_eq!(c.hba_errors("dn1"), "");
    tf.assert_no_changes();
    tf.must(&[
        "destroy",
        "-input=false",
        "-auto-approve",
        "-no-color",
        "-parallelism=20",
    ]);
    assert_text_eq(&c.read_hba("dn1"), &original, "pg_hba.conf after destroy");
}

#[test]
fn bad_rules_are_refused_and_nothing_changes() {
    let c = Cluster::start(1);
    let original = c.read_hba("dn1");
    let tf = Terraform::new();
    tf.config(&c.provider_block());
    tf.init();

    // refused at plan time, on the attribute, before any node is touched
    tf.config(&format!("{}{}", c.provider_block(), rule("r", "dn1", "  type = \"hostssl\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"all\"\n  method = \"cert\"\n  options = { clientcert = \"1\" }")));
    let r = tf.run(&["plan", "-no-color"]);
    assert!(
        !r.ok && r.all().contains("clientcert=1") && r.all().contains("options"),
        "{}",
        r.all()
    );
    tf.config(&format!("{}{}", c.provider_block(), rule("r", "dn1", "  type = \"host\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"192.0.2.20/24\"\n  method = \"trust\"")));
    let r = tf.run(&["plan", "-no-color"]);
    assert!(!r.ok && r.all().contains("192.0.2.0/24"), "{}", r.all());

    // a rule that would lock the provider out is refused at plan time
    tf.config(&format!("{}{}", c.provider_block(), rule("r", "dn1", "  type = \"host\"\n  databases = [\"all\"]\n  users = [\"postgres\"]\n  address = \"127.0.0.0/8\"\n  method = \"reject\"\n  position = 1")));
    let r = tf.run(&["plan", "-no-color"]);
    assert!(
        !r.ok && r.all().contains("lock the provider out"),
        "{}",
        r.all()
    );

    // A file the server itself refuses (a rule PostgreSQL cannot parse
    // reaches it only through a hand edit here, since the provider refuses
    // such values at validate time) is not put in force: an unmanaged line
    // the server rejects makes the provider's next write fail, and the old
    // file stays.
    let broken = format!("{original}host all all 10.0.0.0/8 md5 ldapserver=x\n");
    c.write_hba("dn1", &broken);
    tf.config(&format!("{}{}", c.provider_block(), rule("r", "dn1", "  type = \"host\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"192.0.2.0/24\"\n  method = \"scram-sha-256\"")));
    let r = tf.try_apply();
    assert!(
        !r.ok && r.all().contains("PostgreSQL refused the new file"),
        "{}",
        r.all()
    );
    assert_text_eq(
        &c.read_hba("dn1"),
        &broken,
        "pg_hba.conf after a refused change",
    );
    c.write_hba("dn1", &original);

    // hostssl while the node's ssl is off: PostgreSQL loads such a file
    // and the rule is in force once ssl is on, so it is a warning
    tf.config(&format!("{}{}", c.provider_block(), rule("r", "dn1", "  type = \"hostssl\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"192.0.2.0/24\"\n  method = \"scram-sha-256\"")));
    let r = tf.apply();
    assert!(
        r.all().contains("hostssl rule on a node without TLS"),
        "{}",
        r.all()
    );
    assert!(c
        .read_hba("dn1")
        .contains("hostssl all all 192.0.2.0/24 scram-sha-256 # (100)"));
    tf.destroy();
    assert_text_eq(&c.read_hba("dn1"), &original, "pg_hba.conf after destroy");
    assert_eq!(
        c.psql("dn1", "SELECT 1"),
        "1",
        "the server still accepts connections"
    );
}

#[test]
fn rules_on_every_node_with_discovery_data_source() {
    let c = Cluster::start(2);
    let tf = Terraform::new();
    tf.config(&format!(
        "{}data \"timescaledb_data_nodes\" \"all\" {{}}\n\
         resource \"timescaledb_hba_rule\" \"dn\" {{\n  for_each = toset([for n in data.timescaledb_data_nodes.all.nodes : n.name])\n  node = each.key\n{HOST_RULE}  method = \"trust\"\n}}\n\
         output \"names\" {{ value = sort([for n in data.timescaledb_data_nodes.all.nodes : n.name]) }}\n",
        c.provider_block()
    ));
    tf.init();
    tf.apply();
    for node in ["dn1", "dn2"] {
        assert!(
            c.read_hba(node)
                .contains("host all testrole 127.0.0.1/32 trust"),
            "{node}"
        );
    }
    assert!(!c.read_hba("access").contains("testrole"));
    let out = tf.must(&["output", "-json", "names"]);
    assert_eq!(out.stdout.trim(), r#"["dn1","dn2"]"#);
    tf.assert_no_changes();
}

#[test]
fn an_unreachable_node_is_named_in_the_error() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    let block = c.provider_block().replace(
        &format!("dn1 = {{ port = {} }}", c.port("dn1")),
        "dn1 = { port = 1 }",
    );
    tf.config(&format!(
        "{block}{}",
        rule("r", "dn1", &format!("{HOST_RULE}  method = \"trust\""))
    ));
    tf.init();
    let r = tf.try_apply();
    assert!(
        !r.ok && r.all().contains("Cannot reach node \"dn1\"") && r.all().contains("127.0.0.1:1"),
        "{}",
        r.all()
    );
}

#[test]
fn two_terraform_processes_editing_one_file_both_land() {
    let c = Cluster::start(1);
    let workspaces: Vec<Terraform> = (0..2)
        .map(|w| {
            let tf = Terraform::new();
            tf.config(&format!(
                "{}resource \"timescaledb_hba_rule\" \"r\" {{\n  count = 8\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"all\"]\n  address = \"10.{w}.${{count.index}}.0/24\"\n  method = \"md5\"\n}}\n",
                c.provider_block()
            ));
            tf.init();
            tf
        })
        .collect();
    std::thread::scope(|s| {
        for tf in &workspaces {
            s.spawn(|| {
                tf.must(&[
                    "apply",
                    "-input=false",
                    "-auto-approve",
                    "-no-color",
                    "-parallelism=8",
                ])
            });
        }
    });
    let text = c.read_hba("dn1");
    for w in 0..2 {
        for i in 0..8 {
            assert!(
                text.contains(&format!("host all all 10.{w}.{i}.0/24 md5")),
                "10.{w}.{i}.0/24 lost:\n{text}"
            );
        }
    }
    assert_eq!(c.hba_errors("dn1"), "");
    for tf in &workspaces {
        tf.assert_no_changes();
    }
}

#[test]
fn diagnostics_say_what_is_wrong_and_where() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    // An unknown node is the `node` attribute's fault.
    tf.config(&format!(
        "{}{}",
        c.provider_block(),
        rule("r", "dn3", &format!("{HOST_RULE}  method = \"trust\""))
    ));
    tf.init();
    let r = tf.run(&["plan", "-no-color"]);
    let out = r.all();
    assert!(!r.ok, "{out}");
    assert!(out.contains("Unknown node \"dn3\""), "{out}");
    assert!(
        out.contains("node = \"dn3\""),
        "the diagnostic points at `node`:\n{out}"
    );
    assert!(out.contains("known nodes: access, dn1"), "{out}");

    // A node that asks for a password the provider does not have refused
    // its credentials: it is reachable.
    c.psql(
        "access",
        "CREATE ROLE needs_pw LOGIN SUPERUSER PASSWORD 'secret pw'",
    );
    let hba = c.read_hba("access");
    c.write_hba(
        "access",
        &format!("host all needs_pw 127.0.0.1/32 scram-sha-256\n{hba}"),
    );
    c.psql("access", "SELECT pg_reload_conf()");
    tf.config(&format!(
        "{}{}",
        c.provider_block()
            .replace("username = \"postgres\"", "username = \"needs_pw\""),
        rule("r", "access", &format!("{HOST_RULE}  method = \"trust\""))
    ));
    let r = tf.run_env(&["plan", "-no-color"], &[("PGPASSFILE", "/nonexistent")]);
    let out = r.flat();
    assert!(!r.ok, "{out}");
    assert!(
        out.contains("refused the provider's credentials")
            && out.contains("asks for a password and the provider has none"),
        "{out}"
    );
    assert!(!out.contains("Cannot reach"), "{out}");
}
