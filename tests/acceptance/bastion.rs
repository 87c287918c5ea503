//! Nodes the provider cannot reach except through an SSH bastion.
//!
//! The nodes run in a network namespace made for the test, on its loopback,
//! which nothing outside the namespace reaches; Terraform, and so the
//! provider, runs in the test's own namespace. The one way in is a real
//! OpenSSH server (key-only) on the namespace's end of a veth pair. Direct
//! connections fail; the runbook (trust, password, certificate, drift,
//! destroy) passes through the bastion; a bastion whose host key is not the
//! pinned one is refused before the provider authenticates; a data node
//! behind a bastion of its own goes through that one; a bastion killed in
//! the middle of a write leaves the file whole, and the next apply puts it
//! in force.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::examples::{certificate_logins, merge, password_logins, works_as_testrole};
use crate::harness::{Cluster, Terraform};
use crate::sshd::{Agent, Netns, Sshd};

/// The trust, password and certificate halves of the runbook in turn, with
/// drift and destroy, every connection through the bastion.
#[test]
fn the_runbook_through_a_bastion_with_nodes_out_of_reach() {
    let ns = Netns::new();
    let b = Sshd::in_netns(&ns, 22);
    let c = Cluster::start_in(2, Some(&ns.name));
    c.install_distributed_exec_standin();

    // From where Terraform runs, the nodes cannot be reached directly.
    let direct = Terraform::new();
    direct.config(&format!(
        "{}data \"timescaledb_hba_rules\" \"dn1\" {{\n  node = \"dn1\"\n}}\n",
        c.provider_block()
    ));
    direct.init();
    let r = direct.run(&["plan", "-input=false", "-no-color"]);
    assert!(!r.ok && r.flat().contains("connect"), "{}", r.all());

    let tf = Terraform::example("bastion");
    let base = merge(c.example_vars(), b.vars(&b.host_key));
    tf.vars(&base);
    tf.init();
    tf.must(&[
        "apply",
        "-input=false",
        "-auto-approve",
        "-no-color",
        "-parallelism=50",
    ]);
    works_as_testrole(&c);
    tf.assert_no_changes();
    assert!(
        b.log().contains("Accepted publickey for root"),
        "{}",
        b.log()
    );

    let password = merge(
        base.clone(),
        json!({ "auth_method": "password", "testrole_client_password": "clientpass", "testrole_internal_password": "internalpass" }),
    );
    tf.vars(&password);
    tf.apply();
    password_logins(&c);
    works_as_testrole(&c);
    tf.assert_no_changes();

    tf.vars(&merge(
        base.clone(),
        json!({ "auth_method": "certificate" }),
    ));
    tf.apply();
    certificate_logins(&c, "testrole");
    works_as_testrole(&c);
    tf.assert_no_changes();

    // Drift on a data node is seen and repaired through the bastion.
    c.psql("dn2", "ALTER ROLE testrole CONNECTION LIMIT 7");
    let (changes, plan) = tf.plan();
    assert!(changes, "{}", plan.all());
    tf.apply();
    assert_eq!(
        c.psql(
            "dn2",
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'testrole'"
        ),
        "-1"
    );
    tf.assert_no_changes();

    tf.destroy();
    assert_eq!(c.leftovers(), Vec::<String>::new());
}

/// A bastion that presents another host key is refused during the
/// handshake: the provider never authenticates to it, and says which key it
/// saw and which it expected.
#[test]
fn a_bastion_with_another_host_key_is_refused_before_anything_is_sent() {
    let ns = Netns::new();
    let b = Sshd::in_netns(&ns, 22);
    let c = Cluster::start_in(1, Some(&ns.name));
    let other = b.other_key();
    let tf = Terraform::example("bastion");
    tf.vars(&merge(c.example_vars(), b.vars(&other)));
    tf.init();
    let r = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(
        !r.ok
            && r.flat().contains("does not match the pinned key")
            && r.flat().contains("bastion root@"),
        "{}",
        r.all()
    );
    assert!(
        !b.log().contains("publickey"),
        "the provider offered its key:\n{}",
        b.log()
    );
    assert!(!r.all().contains("OPENSSH PRIVATE KEY"));
}

/// The bastion's key may stay in an SSH agent, which signs for the
/// provider: an agent without the key, or without the one named, fails the
/// plan naming the agent, and the bastion saw no login; with the key (among
/// others, or picked by its public key) the plan reads through the bastion;
/// with no agent named where Terraform runs, the plan fails on `agent`.
#[test]
fn the_bastion_key_can_stay_in_an_ssh_agent() {
    let ns = Netns::new();
    let b = Sshd::in_netns(&ns, 22);
    let c = Cluster::start_in(1, Some(&ns.name));
    let agent = Agent::start();
    let sock = agent.socket();
    let tf = Terraform::new();
    let config = |auth: &str| {
        let provider = c.provider_block();
        let provider = provider.trim_end().strip_suffix('}').unwrap();
        tf.config(&format!(
            "{provider}{}}}\ndata \"timescaledb_hba_rules\" \"dn1\" {{\n  node = \"dn1\"\n}}\n",
            b.block_with(auth)
        ));
    };
    let plan = || {
        tf.run_env(
            &["plan", "-input=false", "-no-color"],
            &[("SSH_AUTH_SOCK", &sock)],
        )
    };
    config("agent = true");
    tf.init();

    let r = plan();
    assert!(
        !r.ok
            && r.flat()
                .contains(&format!("the SSH agent at {sock} holds no key"))
            && r.flat().contains(&b.name()),
        "{}",
        r.all()
    );
    assert!(!b.log().contains("Accepted"), "{}", b.log());

    // The agent's first key is not the one the bastion knows: the next is.
    b.other_key();
    agent.add(&b.key_path().with_file_name("other_key"));
    agent.add(&b.key_path());
    let r = plan();
    assert!(r.ok, "{}", r.all());
    assert!(
        b.log().contains("Accepted publickey for root"),
        "{}",
        b.log()
    );

    config("agent = true\n    agent_identity = \"nobody@nowhere\"");
    let r = plan();
    assert!(
        !r.ok
            && r.flat()
                .contains("holds no key whose comment or public key is \"nobody@nowhere\""),
        "{}",
        r.all()
    );
    let public = std::fs::read_to_string(b.key_path().with_extension("pub")).unwrap();
    config(&format!(
        "agent = true\n    agent_identity = \"{}\"",
        public.trim()
    ));
    assert!(plan().ok);

    let r = tf.run_env(
        &["plan", "-input=false", "-no-color"],
        &[("SSH_AUTH_SOCK", "")],
    );
    assert!(
        !r.ok && r.flat().contains("No SSH agent") && r.flat().contains("SSH_AUTH_SOCK is not set"),
        "{}",
        r.all()
    );
}

/// A `pg_hba.conf` rule on `node` for `user`, as a resource named `name`.
fn rule(name: &str, node: &str, user: &str, method: &str) -> String {
    format!(
        "resource \"timescaledb_hba_rule\" \"{name}\" {{\n  node = \"{node}\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"{user}\"]\n  address = \"127.0.0.1/32\"\n  method = \"{method}\"\n  position = 0\n}}\n"
    )
}

/// dn2 sits behind a bastion of its own (its `data_nodes` entry says so);
/// the access node and dn1 behind the provider's. That bastion is killed
/// while the provider, having written dn2's new pg_hba.conf, waits to
/// check it: the file is whole (the old content or the new, never a part),
/// the apply fails naming the node and the bastion, and once the bastion is
/// back the next apply puts the file in force and converges.
#[test]
fn a_bastion_killed_in_the_middle_of_a_write_leaves_the_file_whole_and_the_next_apply_converges() {
    let ns = Netns::new();
    let a = Sshd::in_netns(&ns, 22);
    let mut b = Sshd::in_netns(&ns, 2222);
    let c = Cluster::start_in(2, Some(&ns.name));
    c.psql("dn2", "CREATE ROLE lateuser LOGIN");
    let provider = format!(
        "provider \"timescaledb\" {{\n  host = \"127.0.0.1\"\n  port = {}\n  username = \"postgres\"\n  sslmode = \"disable\"\n  fanout = \"direct\"\n  data_nodes = {{\n    dn1 = {{ port = {} }}\n    dn2 = {{\n      port = {}\n      bastion_port = \"{}\"\n      bastion_host_key = \"{}\"\n      bastion_private_key = \"{}\"\n    }}\n  }}\n{}}}\n",
        c.port("access"),
        c.port("dn1"),
        c.port("dn2"),
        b.port,
        b.host_key,
        b.key_path().display(),
        a.block()
    );
    let tf = Terraform::new();
    let base = format!(
        "{provider}{}{}",
        rule("one", "dn1", "alice", "scram-sha-256"),
        rule("two", "dn2", "bob", "scram-sha-256")
    );
    tf.config(&base);
    tf.init();
    tf.apply();
    tf.assert_no_changes();
    for (s, what) in [(&a, "the provider's bastion"), (&b, "dn2's bastion")] {
        assert!(
            s.log().contains("Accepted publickey for root"),
            "{what} was not used:\n{}",
            s.log()
        );
    }

    // With dn2's bastion down, dn2 and only dn2 cannot be reached.
    b.kill();
    let r = tf.run(&["plan", "-input=false", "-no-color"]);
    let flat = r.flat();
    assert!(
        !r.ok && flat.contains("dn2") && flat.contains(&b.name()),
        "{}",
        r.all()
    );
    assert!(!flat.contains(&format!("{} ", a.name())), "{}", r.all());
    b.restart();
    tf.assert_no_changes();

    // lateuser gets in until the new rule is in force.
    assert!(c
        .psql_output("dn2", "lateuser", "SELECT 1")
        .status
        .success());
    let before = c.read_hba("dn2");
    tf.config(&format!(
        "{base}{}",
        rule("late", "dn2", "lateuser", "reject")
    ));
    // The provider checks a new file with pg_hba_file_rules after writing
    // it: a lock on that view holds it right there.
    let mut holder = c
        .command("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port("dn2").to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-AtX",
            "-c",
            "BEGIN; LOCK TABLE pg_catalog.pg_hba_file_rules IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let waiting = |q: &str| {
        c.psql(
            "dn2",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE {q}"),
        ) != "0"
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !waiting("query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()") {
        assert!(Instant::now() < deadline, "the lock was not taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let apply = std::thread::scope(|scope| {
        let run = scope.spawn(|| tf.run(&["apply", "-auto-approve", "-input=false", "-no-color"]));
        let deadline = Instant::now() + Duration::from_secs(120);
        while !(c.read_hba("dn2").contains("lateuser")
            && waiting("wait_event_type = 'Lock' AND query LIKE '%pg_hba_file_rules%'"))
        {
            assert!(
                Instant::now() < deadline && !run.is_finished(),
                "the provider did not stop after writing dn2's pg_hba.conf:\n{}",
                c.read_hba("dn2")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b.kill();
        // The backend, not just its client: a backend asleep holds its
        // lock until it wakes.
        c.psql(
            "dn2",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()",
        );
        let _ = holder.wait();
        run.join().unwrap()
    });
    let flat = apply.flat();
    assert!(
        !apply.ok && flat.contains("dn2") && flat.contains(&b.name()),
        "{}\n{}\n{}",
        apply.all(),
        c.read_hba("dn2"),
        b.log()
    );
    // The file is whole: every line of the old file, the new rule, nothing
    // the server cannot read; and it was never put in force.
    let now = c.read_hba("dn2");
    assert_eq!(c.hba_errors("dn2"), "");
    assert!(
        now.lines()
            .any(|l| l.contains("lateuser") && l.contains("reject")),
        "{now}\n{}\n{}",
        apply.all(),
        b.log()
    );
    for line in before.lines().filter(|l| !l.trim().is_empty()) {
        assert!(now.contains(line), "lost {line:?}:\n{now}");
    }
    assert!(
        c.psql_output("dn2", "lateuser", "SELECT 1")
            .status
            .success(),
        "the rule was put in force although the provider could not check it"
    );

    // The bastion back, the next apply converges: the rule is in force.
    b.restart();
    tf.apply();
    let out = c.psql_output("dn2", "lateuser", "SELECT 1");
    assert!(
        !out.status.success(),
        "the rule written before the bastion died is not in force"
    );
    assert_eq!(c.hba_errors("dn2"), "");
    tf.assert_no_changes();

    tf.destroy();
    c.psql("dn2", "DROP ROLE lateuser");
    assert_eq!(c.leftovers(), Vec::<String>::new());
    assert!(!c.read_hba("dn2").contains("lateuser"));
}
