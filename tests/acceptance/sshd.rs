//! A real OpenSSH server (Debian's `openssh-server`, key-only) as a
//! bastion, and a network namespace of its own for nodes nothing else
//! reaches: both started and removed by the test.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

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

/// A new ed25519 key pair at `path` (and `path.pub`); the public key line.
pub fn keygen(path: &Path) -> String {
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

/// A network namespace joined to the test's by a veth pair on a /30 of its
/// own. What listens on the namespace's loopback is out of the test's
/// reach; its end of the pair (`inside`) is reachable.
pub struct Netns {
    pub name: String,
    host_veth: String,
    /// The namespace's end of the veth pair.
    pub inside: String,
}

impl Netns {
    pub fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        loop {
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
            return Netns {
                name: ns,
                host_veth: h,
                inside: format!("{net}.2"),
            };
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
        let _ = sh(&["ip", "link", "del", &self.host_veth]);
    }
}

/// An OpenSSH server that accepts one client key and forwards TCP.
pub struct Sshd {
    dir: tempfile::TempDir,
    netns: Option<String>,
    pub addr: String,
    pub port: u16,
    child: Option<Child>,
    /// The server's host key, an OpenSSH public key line.
    pub host_key: String,
}

impl Sshd {
    /// On the test's loopback, on a free port (`make bench` plans through
    /// it).
    #[allow(dead_code)]
    pub fn on_loopback() -> Sshd {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Sshd::start(None, "127.0.0.1", port)
    }

    /// In `ns`, on its end of the veth pair: the one way in.
    pub fn in_netns(ns: &Netns, port: u16) -> Sshd {
        Sshd::start(Some(&ns.name), &ns.inside, port)
    }

    fn start(netns: Option<&str>, addr: &str, port: u16) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("tsdb-ssh-")
            .tempdir()
            .unwrap();
        let host_key = keygen(&dir.path().join("host_key"));
        let client = keygen(&dir.path().join("client_key"));
        std::fs::write(dir.path().join("authorized_keys"), format!("{client}\n")).unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("sshd_config"),
            format!(
                "Port {port}\nListenAddress {addr}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 AllowTcpForwarding yes\nUsePAM no\nMaxStartups 100\nMaxSessions 1000\nLogLevel VERBOSE\n"
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut s = Sshd {
            dir,
            netns: netns.map(str::to_string),
            addr: addr.to_string(),
            port,
            child: None,
            host_key,
        };
        s.restart();
        s
    }

    /// Starts the server (again, after [`Sshd::kill`]) with the same port
    /// and host key.
    pub fn restart(&mut self) {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/sshd"]);
                c
            }
            None => Command::new("/usr/sbin/sshd"),
        };
        let child = cmd
            .args(["-D", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .arg("-E")
            .arg(self.dir.path().join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd (make deps installs openssh-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect((self.addr.as_str(), self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server and every session it serves, at once (SIGKILL):
    /// every tunnel through it drops mid-stream.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut pids = vec![child.id()];
        let mut i = 0;
        while i < pids.len() {
            pids.extend(children_of(pids[i]));
            i += 1;
        }
        // One signal for all, the listener first: a client whose session
        // drops must not find the listener still accepting.
        let pids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        let mut args = vec!["kill", "-KILL"];
        args.extend(pids.iter().map(String::as_str));
        let _ = sh(&args);
        let _ = child.wait();
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Another key pair, not the server's: a host key it does not have.
    pub fn other_key(&self) -> String {
        keygen(&self.dir.path().join("other_key"))
    }

    /// `user@host:port` as the provider names it.
    pub fn name(&self) -> String {
        format!("root@{}:{}", self.addr, self.port)
    }

    /// The bastion settings of `examples/bastion`, pinning `host_key`.
    pub fn vars(&self, host_key: &str) -> serde_json::Value {
        json!({
            "bastion": { "host": self.addr, "port": self.port, "user": "root", "host_keys": [host_key] },
            "bastion_private_key": self.key_path().display().to_string(),
        })
    }

    /// A provider `bastion` block for this server.
    pub fn block(&self) -> String {
        self.block_with(&format!("private_key = \"{}\"", self.key_path().display()))
    }

    /// A `bastion` block that authenticates as `auth` says.
    pub fn block_with(&self, auth: &str) -> String {
        format!(
            "  bastion {{\n    host        = \"{}\"\n    port        = {}\n    user        = \"root\"\n    {auth}\n    host_key    = [\"{}\"]\n  }}\n",
            self.addr, self.port, self.host_key
        )
    }
}

/// An SSH agent of the test's own, on a socket in a temporary directory.
pub struct Agent {
    dir: tempfile::TempDir,
    child: Child,
}

impl Agent {
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("start ssh-agent (make deps installs openssh-client)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { dir, child }
    }

    pub fn socket(&self) -> String {
        self.dir.path().join("agent.sock").display().to_string()
    }

    /// Adds the private key in `path` (its public half next to it).
    pub fn add(&self, path: &Path) {
        let out = Command::new("ssh-add")
            .arg(path)
            .env("SSH_AUTH_SOCK", self.socket())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}
