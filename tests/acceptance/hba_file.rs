//! `timescaledb_hba_file` and `timescaledb_hba_rules`: in the whole-file
//! mode a rule added by hand shows in the plan and is gone after apply, the
//! lines `keep` names stay, a removal that would lock the provider out is
//! refused at plan time with nothing changed, and the data source lists the
//! rules as the server reads them; through `distributed_exec` (the
//! stand-in) and over direct connections alike.

use crate::harness::{Cluster, Terraform};

const WAY_IN: &str = r#"
resource "timescaledb_hba_rule" "way_in" {
  node      = "dn1"
  type      = "host"
  databases = ["all"]
  users     = ["postgres"]
  address   = "127.0.0.1/32"
  method    = "trust"
  position  = 1
}
"#;

/// The way in, dn1 held to it and to `keep`, and the data source.
fn config(provider: &str, keep: &str, extra: &str) -> String {
    format!(
        r#"{provider}{WAY_IN}
resource "timescaledb_hba_file" "dn1" {{
  node       = "dn1"
  keep       = [{keep}]
  depends_on = [timescaledb_hba_rule.way_in]
}}

data "timescaledb_hba_rules" "dn1" {{
  node       = "dn1"
  depends_on = [timescaledb_hba_file.dn1]
}}

output "rules" {{
  value = [for r in data.timescaledb_hba_rules.dn1.rules : "${{r.type}} ${{join(",", r.users)}} ${{coalesce(r.address, "-")}} ${{coalesce(r.netmask, "-")}} ${{r.method}}"]
}}
{extra}"#
    )
}

/// The rules dn1's server reads in its file, as the data source writes them.
fn server_rules(c: &Cluster) -> Vec<String> {
    c.psql(
        "dn1",
        "SELECT type || ' ' || array_to_string(user_name, ',') || ' ' || coalesce(address, '-') || ' ' || coalesce(netmask, '-') || ' ' || auth_method \
         FROM pg_hba_file_rules ORDER BY line_number",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn append_and_reload(c: &Cluster, node: &str, line: &str) {
    let mut text = c.read_hba(node);
    text.push_str(line);
    text.push('\n');
    c.write_hba(node, &text);
    c.psql(node, "SELECT pg_reload_conf()");
}

fn run(direct: bool) {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    let provider = c.provider_block_for(direct);
    // One run: the way in is planned and written before the file is held to
    // it, so the lines initdb wrote go in the same apply.
    let tf = Terraform::new();
    tf.config(&config(&provider, "", ""));
    tf.init();
    tf.apply();
    assert_eq!(
        server_rules(&c),
        vec!["host postgres 127.0.0.1 255.255.255.255 trust"],
        "{}",
        c.read_hba("dn1")
    );
    let listed: Vec<String> =
        serde_json::from_str(&tf.must(&["output", "-json", "rules"]).stdout).unwrap();
    assert_eq!(listed, server_rules(&c));
    tf.assert_no_changes();

    // A trust line added by hand is drift, named in the plan, gone after
    // apply.
    append_and_reload(&c, "dn1", "host all all 0.0.0.0/0 trust");
    let (changes, plan) = tf.plan();
    assert!(
        changes
            && plan
                .stdout
                .contains("timescaledb_hba_file.dn1 will be updated in-place")
            && plan.stdout.contains("\"host all all 0.0.0.0/0 trust\""),
        "{}",
        plan.stdout
    );
    tf.apply();
    assert!(
        !c.read_hba("dn1").contains("0.0.0.0/0"),
        "{}",
        c.read_hba("dn1")
    );
    assert_eq!(
        server_rules(&c),
        vec!["host postgres 127.0.0.1 255.255.255.255 trust"]
    );
    tf.assert_no_changes();

    // The lines `keep` names stay; an ID of another node's rule is refused
    // on its element.
    append_and_reload(&c, "dn1", "host all postgres 127.0.0.0/8 trust");
    let kept = r#""dn1 host all postgres 127.0.0.0/8""#;
    tf.config(&config(&provider, kept, ""));
    tf.apply();
    assert!(c
        .read_hba("dn1")
        .contains("host all postgres 127.0.0.0/8 trust"));
    tf.assert_no_changes();
    tf.config(&config(
        &provider,
        r#""dn2 host all postgres 127.0.0.0/8""#,
        "",
    ));
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(
        !run.ok
            && run.flat().contains("Invalid rule ID")
            && run
                .flat()
                .contains("is not an ID of a rule of node \"dn1\""),
        "{}",
        run.all()
    );

    // dn2's only way in is what initdb wrote: holding dn2 to no rules at all
    // would lock the provider out, so the plan is refused and dn2's file is
    // not touched.
    let dn2 = r#"
resource "timescaledb_hba_file" "dn2" {
  node = "dn2"
}
"#;
    let before = c.read_hba("dn2");
    tf.config(&config(&provider, kept, dn2));
    let run = tf.try_apply();
    assert!(
        !run.ok
            && run
                .flat()
                .contains("Change refused: it would lock the provider out of node \"dn2\"")
            && run.flat().contains("depends_on"),
        "{}",
        run.all()
    );
    assert_eq!(c.read_hba("dn2"), before);

    // Destroying changes nothing in the file but the provider's own rule;
    // the kept line is the way in now.
    tf.config(&config(&provider, kept, ""));
    tf.destroy();
    assert_eq!(
        server_rules(&c),
        vec!["host postgres 127.0.0.0 255.0.0.0 trust"]
    );
}

#[test]
fn undeclared_rules_are_drift_through_distributed_exec() {
    run(false);
}

#[test]
fn undeclared_rules_are_drift_over_direct_connections() {
    run(true);
}
