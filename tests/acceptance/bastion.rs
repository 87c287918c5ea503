//! Nodes the provider cannot reach except through an SSH bastion.
//!
//! Terraform, and so the provider, runs in a network namespace made for the
//! test; the nodes listen on the loopback of the test's own namespace, which
//! nothing in that namespace can reach. The one way across is a real
//! OpenSSH server (key-only) on a veth pair between the two. Direct
//! connections fail; the runbook (trust, password, certificate, drift,
//! destroy) passes through the bastion; a bastion whose host key is not the
//! pinned one is refused before the provider authenticates.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::examples::{certificate_logins, merge, password_logins, works_as_testrole};
use crate::harness::{Cluster, Terraform};

/// A network namespace joined to the test's by a veth pair, and an OpenSSH
/// server on the test's end of it.
pub struct Bastion {
    dir: tempfile::TempDir,
    pub ns: String,
    host_veth: String,
    /// The bastion's address, as seen from inside the namespace.
    pub addr: String,
    pub port: u16,
    sshd: Child,
    /// The bastion's host key, an OpenSSH public key line.
    pub host_key: String,
}

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")))
}

#[track_caller]
fn must(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keygen(path: &std::path::Path) -> String {
    must(&[
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "tsdb-test",
        "-f",
        path.to_str().unwrap(),
    ]);
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

impl Bastion {
    pub fn start() -> Bastion {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = tempfile::Builder::new()
            .prefix("tsdb-ssh-")
            .tempdir()
            .unwrap();
        // A namespace, a veth pair and a /30 of their own.
        let (ns, host_veth, addr) = loop {
            let n = (std::process::id() * 7 + NEXT.fetch_add(1, Ordering::SeqCst)) % 16000;
            let ns = format!("tsdbssh{n}");
            let (h, p) = (format!("tsh{n}h"), format!("tsh{n}n"));
            let net = format!("10.{}.{}", 100 + n / 256, n % 256);
            if !sh(&["ip", "netns", "add", &ns]).status.success() {
                continue;
            }
            if !sh(&["ip", "link", "add", &h, "type", "veth", "peer", "name", &p])
                .status
                .success()
            {
                must(&["ip", "netns", "del", &ns]);
                continue;
            }
            must(&["ip", "link", "set", &p, "netns", &ns]);
            must(&["ip", "addr", "add", &format!("{net}.1/30"), "dev", &h]);
            must(&["ip", "link", "set", &h, "up"]);
            for cmd in [
                vec!["ip", "link", "set", "lo", "up"],
                vec!["ip", "addr", "add", &format!("{net}.2/30"), "dev", &p],
                vec!["ip", "link", "set", &p, "up"],
            ] {
                let mut args = vec!["ip", "netns", "exec", &ns];
                args.extend(cmd);
                must(&args);
            }
            break (ns, h, format!("{net}.1"));
        };
        let host_key = keygen(&dir.path().join("host_key"));
        let client = keygen(&dir.path().join("client_key"));
        std::fs::write(dir.path().join("authorized_keys"), format!("{client}\n")).unwrap();
        let port = std::net::TcpListener::bind(format!("{addr}:0"))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("sshd_config"),
            format!(
                "Port {port}\nListenAddress {addr}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 AllowTcpForwarding yes\nUsePAM no\nMaxStartups 100\nLogLevel VERBOSE\n"
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-f"])
            .arg(dir.path().join("sshd_config"))
            .arg("-E")
            .arg(dir.path().join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd (make deps installs openssh-server)");
        let b = Bastion {
            dir,
            ns,
            host_veth,
            addr,
            port,
            sshd,
            host_key,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect((b.addr.as_str(), b.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start:\n{}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The provider's `bastion` settings as the example's variables.
    pub fn vars(&self, host_key: &str) -> serde_json::Value {
        json!({
            "bastion": { "host": self.addr, "port": self.port, "user": "root", "host_keys": [host_key] },
            "bastion_private_key": self.key_path().display().to_string(),
        })
    }
}

impl Drop for Bastion {
    fn drop(&mut self) {
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        let _ = sh(&["ip", "netns", "del", &self.ns]);
        let _ = sh(&["ip", "link", "del", &self.host_veth]);
    }
}

/// The trust, password and certificate halves of the runbook in turn, with
/// drift and destroy, every connection through the bastion.
#[test]
fn the_runbook_through_a_bastion_with_nodes_out_of_reach() {
    let b = Bastion::start();
    let c = Cluster::start(2);
    c.install_distributed_exec_standin();

    // From where Terraform runs, the nodes cannot be reached directly.
    let direct = Terraform::new().in_netns(&b.ns);
    direct.config(&format!(
        "{}data \"timescaledb_hba_rules\" \"dn1\" {{\n  node = \"dn1\"\n}}\n",
        c.provider_block()
    ));
    direct.init();
    let r = direct.run(&["plan", "-input=false", "-no-color"]);
    assert!(!r.ok && r.flat().contains("connect"), "{}", r.all());

    let tf = Terraform::example("bastion").in_netns(&b.ns);
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
    let b = Bastion::start();
    let c = Cluster::start(1);
    let other = keygen(&b.dir.path().join("other_key"));
    let tf = Terraform::example("bastion").in_netns(&b.ns);
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
