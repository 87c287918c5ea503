//! `timescaledb_role_membership` with `+group` rules: a member gets in on
//! every data node and a non-member does not; a membership revoked by hand
//! on one data node is drift naming that node and is repaired; `exact`
//! revokes members nobody configured; import adopts; through
//! `distributed_exec` (the stand-in) and over direct connections alike.

use crate::harness::{drifted_nodes, terraform_bin, terraform_version, Cluster, Terraform};

fn role(name: &str, login: bool) -> String {
    format!("resource \"timescaledb_distributed_role\" \"{name}\" {{\n  name  = \"{name}\"\n  login = {login}\n}}\n")
}

/// A rule on `node`; every rule but the provider's own way in (position 1)
/// depends on it, so a destroy removes the way in last.
fn rule(node: &str, position: u32, users: &str, method: &str) -> String {
    let after = if position == 1 {
        String::new()
    } else {
        format!("  depends_on = [timescaledb_hba_rule.{node}_1]\n")
    };
    format!(
        "resource \"timescaledb_hba_rule\" \"{node}_{position}\" {{\n  node      = \"{node}\"\n  type      = \"host\"\n  databases = [\"all\"]\n  users     = [\"{users}\"]\n  address   = \"127.0.0.1/32\"\n  method    = \"{method}\"\n  position  = {position}\n{after}}}\n"
    )
}

fn membership(exact: bool, extra: &str) -> String {
    format!(
        "resource \"timescaledb_role_membership\" \"grp\" {{\n  group   = timescaledb_distributed_role.grp.name\n  members = [timescaledb_distributed_role.alice.name]\n  exact   = {exact}\n{extra}}}\n"
    )
}

/// Whether `user` logs in to `node` (no password: the rules say trust or
/// reject).
fn logs_in(c: &Cluster, node: &str, user: &str) -> bool {
    c.psql_output(node, user, "SELECT 1").status.success()
}

fn run(direct: bool) {
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();
    let provider = c.provider_block_for(direct);
    let roles = format!(
        "{}{}{}",
        role("grp", false),
        role("alice", true),
        role("bob", true)
    );
    let way_in = format!(
        "{}{}",
        rule("dn1", 1, "postgres", "trust"),
        rule("dn2", 1, "postgres", "trust")
    );
    let tf = Terraform::new();
    tf.config(&format!("{provider}{roles}{way_in}"));
    tf.init();
    tf.apply();

    // PostgreSQL 16's options are refused on these servers, on the attribute.
    tf.config(&format!(
        "{provider}{roles}{way_in}{}",
        membership(false, "  inherit_option = false\n")
    ));
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(
        !run.ok && run.flat().contains("Not on this PostgreSQL release"),
        "{}",
        run.all()
    );

    // Members of grp get in on every data node, others do not.
    let group_rules: String = ["dn1", "dn2"]
        .iter()
        .map(|n| {
            format!(
                "{}{}",
                rule(n, 2, "+grp", "trust"),
                rule(n, 3, "all", "reject")
            )
        })
        .collect();
    let config = |exact: bool| {
        format!(
            "{provider}{roles}{way_in}{group_rules}{}",
            membership(exact, "")
        )
    };
    tf.config(&config(false));
    tf.apply();
    for node in ["dn1", "dn2"] {
        assert!(logs_in(&c, node, "alice"), "{node}: a member is refused");
        assert!(!logs_in(&c, node, "bob"), "{node}: a non-member gets in");
    }
    tf.assert_no_changes();
    let calls = c.psql(
        "access",
        "SELECT count(*) FROM standin_calls WHERE kind LIKE 'GRANT %'",
    );
    if direct {
        assert_eq!(calls, "0");
    } else {
        assert_ne!(calls, "0", "the membership went through distributed_exec");
    }

    // Revoked by hand on one data node: drift naming that node, repaired.
    c.psql("dn2", "REVOKE grp FROM alice");
    assert!(!logs_in(&c, "dn2", "alice"));
    let (changes, plan) = tf.plan();
    assert!(changes, "{}", plan.stdout);
    assert_eq!(
        drifted_nodes(&plan.stdout),
        vec![("dn2".to_string(), "differs: not members: alice".to_string())],
        "{}",
        plan.stdout
    );
    tf.apply();
    assert!(logs_in(&c, "dn2", "alice"));
    tf.assert_no_changes();

    // Import adopts the membership as it is.
    let id = tf
        .state_ids()
        .into_iter()
        .find(|(a, _)| a == "timescaledb_role_membership.grp")
        .map(|(_, id)| id)
        .unwrap();
    tf.must(&["state", "rm", "timescaledb_role_membership.grp"]);
    tf.must(&[
        "import",
        "-input=false",
        "-no-color",
        "timescaledb_role_membership.grp",
        &id,
    ]);
    tf.assert_no_changes();

    // A member nobody configured, added by hand: left alone, until `exact`.
    for node in ["access", "dn1", "dn2"] {
        c.psql(node, "CREATE ROLE carol LOGIN");
    }
    c.psql("dn1", "GRANT grp TO carol");
    assert!(logs_in(&c, "dn1", "carol"));
    tf.assert_no_changes();
    tf.config(&config(true));
    let (changes, plan) = tf.plan();
    assert!(changes);
    assert!(
        plan.flat()
            .contains("Members nobody configured will be revoked")
            && plan.flat().contains("dn1: carol"),
        "{}",
        plan.all()
    );
    tf.apply();
    assert!(!logs_in(&c, "dn1", "carol"));
    assert!(logs_in(&c, "dn1", "alice"));
    tf.assert_no_changes();

    // The way in removed while the rule refusing everyone else stays: the
    // removals planned with it do not hide that, so it is refused (at plan
    // time where Terraform plans destroys, at apply time before that) and
    // dn2's file is untouched.
    let before = c.read_hba("dn2");
    tf.config(
        &config(true)
            .replace(&rule("dn2", 1, "postgres", "trust"), "")
            .replace("  depends_on = [timescaledb_hba_rule.dn2_1]\n", ""),
    );
    let r = tf.try_apply();
    assert!(
        !r.ok && r.flat().contains("lock the provider out of node \"dn2\""),
        "{}",
        r.all()
    );
    if terraform_version(&terraform_bin()) >= vec![1, 3] {
        assert!(r.flat().contains("While planning a change"), "{}", r.all());
    }
    assert_eq!(c.read_hba("dn2"), before);
    tf.config(&config(true));
    tf.assert_no_changes();

    // A whole destroy removes the way in last, after the rules that depend
    // on it, at plan time and at apply time alike.
    tf.destroy();
    for node in ["access", "dn1", "dn2"] {
        c.psql(node, "DROP ROLE carol");
    }
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

#[test]
fn a_group_rule_admits_members_through_distributed_exec() {
    run(false);
}

#[test]
fn a_group_rule_admits_members_over_direct_connections() {
    run(true);
}
