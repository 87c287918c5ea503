//! Reaching nodes through an SSH bastion.
//!
//! One SSH connection per bastion carries every connection to the nodes
//! behind it, each in its own `direct-tcpip` channel; the PostgreSQL
//! protocol, TLS included, runs inside the channel exactly as it would over
//! TCP, so `sslmode` and `verify-full` still check the node itself. The
//! bastion's host key is pinned (a key, or a known_hosts file): a key that
//! does not match ends the handshake before the provider authenticates or
//! asks for anything, and there is no trust on first use. A connection that
//! has dropped is made again at the next use.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{known_hosts, ssh_key, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelStream;

use crate::secret::Secret;

/// How the bastion's host key is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeys {
    /// The keys given in the configuration (OpenSSH public key lines).
    Pinned(Vec<String>),
    /// The keys a known_hosts file records for the bastion's name and port.
    KnownHosts(String),
}

/// How the provider proves itself to the bastion.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// A private key, text or a file path.
    Key(Secret),
    /// The keys an SSH agent holds (its socket in `SSH_AUTH_SOCK`);
    /// `identity`, when given, picks one by its comment or public key line.
    Agent { identity: Option<String> },
}

/// A bastion as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct BastionSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: ClientAuth,
    pub host_keys: HostKeys,
}

/// The variable that names the SSH agent's socket.
pub const AGENT_SOCKET_VAR: &str = "SSH_AUTH_SOCK";

impl fmt::Debug for BastionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BastionSpec")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("host_keys", &self.host_keys)
            .finish_non_exhaustive()
    }
}

impl BastionSpec {
    /// `user@host:port`, for messages.
    pub fn name(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }

    /// The pinned keys, parsed; an error names the entry.
    pub fn pinned_keys(lines: &[String]) -> Result<Vec<ssh_key::PublicKey>, String> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                ssh_key::PublicKey::from_openssh(l.trim()).map_err(|e| {
                    format!(
                        "host key {} is not an OpenSSH public key line such as `ssh-ed25519 AAAA...`: {e}",
                        i + 1
                    )
                })
            })
            .collect()
    }

    /// Whether the provider can authenticate as configured, checked before
    /// any connection: the private key parses, or the agent's socket is
    /// named. No message holds the key.
    pub fn check_auth(&self) -> Result<(), String> {
        match &self.auth {
            ClientAuth::Key(k) => private_key(k).map(drop),
            ClientAuth::Agent { .. } => agent_socket().map(drop),
        }
    }

    /// The keys the bastion may present.
    fn expected(&self) -> Result<Vec<ssh_key::PublicKey>, String> {
        match &self.host_keys {
            HostKeys::Pinned(lines) => Self::pinned_keys(lines),
            HostKeys::KnownHosts(path) => {
                if let Err(e) = std::fs::metadata(path) {
                    return Err(format!("known_hosts file {path} cannot be read: {e}"));
                }
                let keys = known_hosts::known_host_keys_path(&self.host, self.port, path)
                    .map_err(|e| format!("known_hosts file {path}: {e}"))?;
                if keys.is_empty() {
                    return Err(format!(
                        "known_hosts file {path} has no key for {} (the provider never trusts a bastion on first use)",
                        host_port(&self.host, self.port)
                    ));
                }
                Ok(keys.into_iter().map(|(_, k)| k).collect())
            }
        }
    }
}

/// Where the SSH agent listens.
fn agent_socket() -> Result<String, String> {
    match std::env::var(AGENT_SOCKET_VAR) {
        Ok(s) if !s.is_empty() => Ok(s),
        _ => Err(format!(
            "the SSH agent is to be used, but {AGENT_SOCKET_VAR} is not set where Terraform runs (start `ssh-agent` and `ssh-add` the key first)"
        )),
    }
}

/// A private key, parsed. No message holds the value.
fn private_key(secret: &Secret) -> Result<ssh_key::PrivateKey, String> {
    let value = secret.expose();
    // PuTTY keys have no `-----BEGIN` line; every other form is read as
    // TLS keys are.
    let text = if value.starts_with("PuTTY-User-Key-File-") {
        value.to_string()
    } else {
        super::tls::secret_text(value).map_err(|e| format!("private_key: {e}"))?
    };
    russh::keys::decode_secret_key(&text, None).map_err(|e| {
        let why = match e {
            russh::keys::Error::KeyIsEncrypted => {
                "it is encrypted with a passphrase; give an unencrypted key (held as a sensitive value), or add it to an SSH agent and use `agent` instead"
            }
            _ => "it is not an OpenSSH, PKCS#8 or PuTTY private key",
        };
        format!("private_key cannot be used: {why}")
    })
}

/// The name known_hosts records for a host and port.
fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// One bastion and its shared SSH connection.
pub struct Bastion {
    spec: BastionSpec,
    timeout: Duration,
    handle: tokio::sync::Mutex<Option<Arc<Handle<Checker>>>>,
}

impl fmt::Debug for Bastion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bastion")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Checks the host key during the handshake and remembers why it refused.
struct Checker {
    expected: Vec<ssh_key::PublicKey>,
    refused: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(c) => {
                *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                    "the bastion presented a host certificate ({}); pin its key instead",
                    c.algorithm()
                ));
                return Ok(false);
            }
        };
        let ok = self.expected.iter().any(|e| e.key_data() == key.key_data());
        if !ok {
            *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!(
                "its host key {} does not match the pinned key{} ({}); nothing was sent to it",
                key.fingerprint(ssh_key::HashAlg::Sha256),
                if self.expected.len() == 1 { "" } else { "s" },
                self.expected
                    .iter()
                    .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(ok)
    }
}

impl Bastion {
    pub fn new(spec: BastionSpec, timeout: Duration) -> Bastion {
        Bastion {
            spec,
            timeout,
            handle: Default::default(),
        }
    }

    pub fn spec(&self) -> &BastionSpec {
        &self.spec
    }

    /// A stream to `host:port` as the bastion sees it. The SSH connection
    /// is made at the first use and again when it has dropped.
    pub async fn open(&self, host: &str, port: u16) -> Result<ChannelStream<Msg>, String> {
        let handle = self.connected().await?;
        match handle
            .channel_open_direct_tcpip(host, port.into(), "127.0.0.1", 0)
            .await
        {
            Ok(ch) => Ok(ch.into_stream()),
            Err(e) if handle.is_closed() => {
                // Dropped since the last use: once more on a new connection.
                self.forget(&handle).await;
                let handle = self.connected().await?;
                handle
                    .channel_open_direct_tcpip(host, port.into(), "127.0.0.1", 0)
                    .await
                    .map(|ch| ch.into_stream())
                    .map_err(|e2| forward_refused(host, port, &e2).unwrap_or_else(|| format!("the connection to the bastion dropped ({e}), and again on a new one: {e2}")))
            }
            Err(e) => Err(forward_refused(host, port, &e).unwrap_or_else(|| e.to_string())),
        }
    }

    async fn forget(&self, dropped: &Arc<Handle<Checker>>) {
        let mut slot = self.handle.lock().await;
        if slot.as_ref().is_some_and(|h| Arc::ptr_eq(h, dropped)) {
            *slot = None;
        }
    }

    async fn connected(&self) -> Result<Arc<Handle<Checker>>, String> {
        let mut slot = self.handle.lock().await;
        if let Some(h) = slot.as_ref().filter(|h| !h.is_closed()) {
            return Ok(h.clone());
        }
        let h = Arc::new(
            tokio::time::timeout(self.timeout, self.handshake())
                .await
                .map_err(|_| format!("no SSH handshake within {:?}", self.timeout))??,
        );
        *slot = Some(h.clone());
        Ok(h)
    }

    async fn handshake(&self) -> Result<Handle<Checker>, String> {
        let expected = self.spec.expected()?;
        let key = match &self.spec.auth {
            ClientAuth::Key(k) => Some(private_key(k)?),
            ClientAuth::Agent { .. } => None,
        };
        let refused = Arc::new(Mutex::new(None));
        let checker = Checker {
            expected,
            refused: refused.clone(),
        };
        let config = Arc::new(client::Config {
            nodelay: true,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            ..Default::default()
        });
        let addr = (self.spec.host.as_str(), self.spec.port);
        let mut h = match client::connect(config, addr, checker).await {
            Ok(h) => h,
            Err(e) => {
                let why = refused.lock().unwrap_or_else(|p| p.into_inner()).take();
                return Err(why.unwrap_or_else(|| format!("SSH connection failed: {e}")));
            }
        };
        let hash = h.best_supported_rsa_hash().await.ok().flatten().flatten();
        let Some(key) = key else {
            let ClientAuth::Agent { identity } = &self.spec.auth else {
                unreachable!("a key was read for key authentication")
            };
            self.agent_auth(&mut h, identity.as_deref(), hash).await?;
            return Ok(h);
        };
        let auth = h
            .authenticate_publickey(
                self.spec.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(|e| format!("SSH authentication failed: {e}"))?;
        if !auth.success() {
            return Err(format!(
                "the bastion refused the key for user {:?}",
                self.spec.user
            ));
        }
        Ok(h)
    }

    /// Authenticates with the agent's keys (those `identity` picks), one
    /// after the other as OpenSSH does, the agent signing; the keys never
    /// leave it.
    async fn agent_auth(
        &self,
        h: &mut Handle<Checker>,
        identity: Option<&str>,
        rsa_hash: Option<ssh_key::HashAlg>,
    ) -> Result<(), String> {
        let socket = agent_socket()?;
        let mut agent = AgentClient::connect_uds(&socket)
            .await
            .map_err(|e| format!("the SSH agent at {socket} cannot be reached: {e}"))?;
        let held = agent
            .request_identities()
            .await
            .map_err(|e| format!("the SSH agent at {socket} did not list its keys: {e}"))?;
        let keys = agent_keys(held, identity);
        if keys.is_empty() {
            return Err(match identity {
                None => format!("the SSH agent at {socket} holds no key"),
                Some(i) => format!(
                    "the SSH agent at {socket} holds no key whose comment or public key is {i:?}"
                ),
            });
        }
        for key in &keys {
            let hash = matches!(key.algorithm(), ssh_key::Algorithm::Rsa { .. })
                .then_some(rsa_hash)
                .flatten();
            let auth = h
                .authenticate_publickey_with(self.spec.user.clone(), key.clone(), hash, &mut agent)
                .await
                .map_err(|e| format!("SSH authentication with the agent's key failed: {e}"))?;
            if auth.success() {
                return Ok(());
            }
        }
        Err(format!(
            "the bastion refused {} for user {:?}",
            if keys.len() == 1 {
                "the agent's key".to_string()
            } else {
                format!("each of the agent's {} keys", keys.len())
            },
            self.spec.user
        ))
    }
}

/// The agent's plain keys (not certificates) that `identity` picks: by
/// comment, or by public key line.
fn agent_keys(held: Vec<AgentIdentity>, identity: Option<&str>) -> Vec<ssh_key::PublicKey> {
    let wanted = identity.map(|i| (i, ssh_key::PublicKey::from_openssh(i.trim()).ok()));
    held.into_iter()
        .filter_map(|id| match id {
            AgentIdentity::PublicKey { key, comment } => Some((key, comment)),
            AgentIdentity::Certificate { .. } => None,
        })
        .filter(|(key, comment)| match &wanted {
            None => true,
            Some((i, parsed)) => {
                comment == i
                    || parsed
                        .as_ref()
                        .is_some_and(|p| p.key_data() == key.key_data())
            }
        })
        .map(|(key, _)| key)
        .collect()
}

/// The message for a forward the bastion refused, when it was that.
fn forward_refused(host: &str, port: u16, e: &russh::Error) -> Option<String> {
    match e {
        russh::Error::ChannelOpenFailure(reason) => Some(format!(
            "the bastion could not open a connection to {}: {reason:?} (is the node up, and may the bastion forward to it?)",
            host_port_plain(host, port)
        )),
        _ => None,
    }
}

fn host_port_plain(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &str, host_keys: HostKeys) -> BastionSpec {
        BastionSpec {
            host: "bastion.example".into(),
            port: 2222,
            user: "tf".into(),
            auth: ClientAuth::Key(Secret::new(key.to_string())),
            host_keys,
        }
    }

    #[test]
    fn no_message_shows_the_private_key() {
        for key in [
            "not a key at all\nsecond line",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n",
            "/no/such/secret-key-file",
        ] {
            let e = spec(key, HostKeys::Pinned(vec![])).check_auth().unwrap_err();
            assert!(!e.contains("secret"), "{e}");
            assert!(!e.contains("c2VjcmV0"), "{e}");
        }
    }

    #[test]
    fn pinned_keys_must_be_openssh_lines() {
        let e = BastionSpec::pinned_keys(&["AAAA".into()]).unwrap_err();
        assert!(e.contains("host key 1"), "{e}");
        let ok = BastionSpec::pinned_keys(&[
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ comment".into(),
        ]);
        assert_eq!(ok.unwrap().len(), 1);
    }

    #[test]
    fn a_known_hosts_file_without_the_bastion_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(
            &path,
            "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n",
        )
        .unwrap();
        let s = spec("", HostKeys::KnownHosts(path.display().to_string()));
        let e = s.expected().unwrap_err();
        assert!(
            e.contains("[bastion.example]:2222") && e.contains("first use"),
            "{e}"
        );
        std::fs::write(
            &path,
            "[bastion.example]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n",
        )
        .unwrap();
        assert_eq!(s.expected().unwrap().len(), 1);
    }
}
