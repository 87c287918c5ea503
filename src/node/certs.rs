//! Certificates and keys installed on a node: a server certificate the node
//! serves, or the client certificates TimescaleDB's access node presents to
//! data nodes. Files are written through SQL (keys 0600, replaced in one
//! step), settings with ALTER SYSTEM, and what the node serves is checked
//! with a TLS handshake of its own.

use std::sync::Arc;
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::{ErrorKind, NodeError};
use super::{files, Node};
use crate::secret::Secret;
use crate::{log, pki, sql};

/// Where a certificate lives on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: String,
    pub key: String,
    /// The CA file (server certificates only).
    pub ca: Option<String>,
    /// A directory to create first (client certificates).
    pub dir: Option<String>,
}

/// What a certificate file on a node is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertFileKind {
    /// The certificate the node serves (`ssl_cert_file`).
    Server,
    /// The CAs the node trusts (`ssl_ca_file`).
    TrustedCa,
    /// A role's certificate TimescaleDB presents from this node.
    User,
    /// A CA whose key the node keeps.
    KeptCa,
}

impl CertFileKind {
    pub fn name(self) -> &'static str {
        match self {
            CertFileKind::Server => "server",
            CertFileKind::TrustedCa => "trusted_ca",
            CertFileKind::User => "user",
            CertFileKind::KeptCa => "ca",
        }
    }
}

/// The certificate files a node uses, as in force, absolute.
struct SslFiles {
    on: bool,
    cert_file: String,
    ca_file: String,
    /// `ssl_crl_file` as in force.
    crl_file: String,
    /// Where the provider installs a revocation list: `root.crl` in the
    /// data directory.
    crl_path: String,
}

/// A certificate file on a node and its text.
#[derive(Clone, Debug)]
pub struct CertFile {
    pub kind: CertFileKind,
    pub path: String,
    pub text: String,
}

/// The contents of the installed files (`None` when missing).
#[derive(Clone, Debug, Default)]
pub struct Installed {
    pub cert: Option<String>,
    pub key: Option<Secret>,
    pub ca: Option<String>,
    /// Permission bits of the key file, when it exists and the provider
    /// may run programs to look.
    pub key_mode: Option<u32>,
}

/// What to install.
pub struct Install {
    pub cert_pem: String,
    pub key_pem: Secret,
    pub ca_pem: Option<String>,
    /// Point the node's `ssl*` settings at the files and turn TLS on.
    pub configure_ssl: bool,
    /// Expected fingerprint of the served certificate, checked after the
    /// reload when `configure_ssl` is set.
    pub fingerprint: String,
}

/// The `ssl` settings a server certificate is installed with.
pub const SSL_SETTINGS: [&str; 4] = ["ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"];

/// md5 hex of the role name: the file name TimescaleDB looks for.
pub fn user_cert_base(role: &str) -> String {
    hex::encode(Md5::digest(role.as_bytes()))
}

impl Node {
    /// The node's data directory, from what the provider's session may
    /// do with files there (asked once per node; the directory cannot
    /// change while the server runs).
    async fn data_directory(&self) -> Result<String, NodeError> {
        let mut s = self.session().await?;
        let rights = self.file_rights(s.client()).await?;
        let dir = rights.data_directory.as_deref().ok_or_else(|| {
            self.err(
                ErrorKind::Permission,
                "locating the data directory",
                "data_directory is not readable; the provider's role must be a superuser",
            )
        })?;
        Ok(dir.trim_end_matches('/').to_string())
    }

    /// Paths of the server certificate: `server.crt`, `server.key` and
    /// `root.crt` in the data directory.
    pub async fn server_cert_paths(&self) -> Result<CertPaths, NodeError> {
        let dir = self.data_directory().await?;
        Ok(CertPaths {
            cert: format!("{dir}/server.crt"),
            key: format!("{dir}/server.key"),
            ca: Some(format!("{dir}/root.crt")),
            dir: None,
        })
    }

    /// Paths of a certificate authority kept on the node (as the runbook
    /// keeps its CA on the access node), named by the certificate's
    /// fingerprint so that a CA and the one renewing it never share a
    /// file: `<data_directory>/timescaledb/ca/<first 16 hex digits>.crt`
    /// and `.key`.
    pub async fn ca_key_paths(&self, fingerprint_sha256: &str) -> Result<CertPaths, NodeError> {
        let data = self.data_directory().await?;
        let dir = format!("{data}/timescaledb/ca");
        let base: String = fingerprint_sha256.chars().take(16).collect();
        Ok(CertPaths {
            cert: format!("{dir}/{base}.crt"),
            key: format!("{dir}/{base}.key"),
            ca: None,
            dir: Some(dir),
        })
    }

    /// Every certificate file the node holds for the cluster, with its
    /// text: the certificate it serves and the CAs it trusts (as its `ssl`
    /// settings in force name them), the role certificates TimescaleDB
    /// presents from it, and the CAs whose keys it keeps. Listing the
    /// directories needs `pg_ls_dir` (a superuser, or a grant).
    pub async fn certificate_files(&self) -> Result<Vec<CertFile>, NodeError> {
        let users = self.user_cert_paths("").await?;
        let cas = self.ca_key_paths("").await?;
        let ssl = self.ssl_files().await?;
        let mut s = self.session().await?;
        let tx = self.begin(&mut s).await?;
        let mut wanted: Vec<(CertFileKind, String)> = Vec::new();
        if ssl.on {
            wanted.push((CertFileKind::Server, ssl.cert_file));
            if !ssl.ca_file.is_empty() {
                wanted.push((CertFileKind::TrustedCa, ssl.ca_file));
            }
        }
        for (kind, dir) in [
            (CertFileKind::User, users.dir.unwrap_or_default()),
            (CertFileKind::KeptCa, cas.dir.unwrap_or_default()),
        ] {
            let rows = tx
                .query(sql::CRT_FILES, &[&dir])
                .await
                .map_err(|e| self.pg_err(format!("listing {dir}"), &e))?;
            wanted.extend(
                rows.iter()
                    .map(|r| (kind, format!("{dir}/{}", r.get::<_, String>(0)))),
            );
        }
        let mut out = Vec::new();
        for (kind, path) in wanted {
            if let Some(text) = self.read_text(&tx, &path).await? {
                out.push(CertFile { kind, path, text });
            }
        }
        let _ = tx.rollback().await;
        Ok(out)
    }

    /// The certificate files in force, as absolute paths.
    async fn ssl_files(&self) -> Result<SslFiles, NodeError> {
        let mut s = self.session().await?;
        let row = s
            .client()
            .query_one(sql::SSL_FILES, &[])
            .await
            .map_err(|e| self.pg_err("reading the ssl settings", &e))?;
        let data: String = row.get(0);
        let absolute = |i: usize| {
            let p: String = row.get(i);
            if p.is_empty() || p.starts_with('/') {
                p
            } else {
                format!("{data}/{p}")
            }
        };
        Ok(SslFiles {
            on: row.get::<_, String>(1) == "on",
            cert_file: absolute(2),
            ca_file: absolute(3),
            crl_file: absolute(4),
            crl_path: format!("{data}/root.crl"),
        })
    }

    /// The CA certificates the node trusts for the certificates clients
    /// present: its `ssl_ca_file` in force, and nothing else read. `None`
    /// when none is set (the node checks no client certificate).
    pub async fn trusted_cas(&self) -> Result<Option<Vec<String>>, NodeError> {
        let ca_file = self.ssl_files().await?.ca_file;
        if ca_file.is_empty() {
            return Ok(None);
        }
        let mut s = self.session().await?;
        let text = self.read_text(s.client(), &ca_file).await?;
        Ok(Some(pki::pem_certificates(&text.unwrap_or_default())))
    }

    /// Installs `crl_pem` (signed by the CA `ca_pem`) as the node's
    /// `ssl_crl_file`, reloads, and waits until the setting is in force.
    /// Refused while the node trusts another CA as well: with a revocation
    /// list set, PostgreSQL refuses every client certificate whose CA has
    /// no list in the file.
    pub async fn install_crl(&self, crl_pem: &str, ca_pem: &str) -> Result<(), NodeError> {
        let SslFiles {
            crl_path: path,
            crl_file: in_force,
            ca_file,
            ..
        } = self.ssl_files().await?;
        let ca = pki::inspect(ca_pem)
            .map(|i| i.fingerprint_sha256)
            .unwrap_or_default();
        let mut s = self.session().await?;
        let tx = self.begin(&mut s).await?;
        let others: Vec<String> = match self.read_text(&tx, &ca_file).await {
            Ok(Some(text)) if !ca_file.is_empty() => pki::pem_certificates(&text)
                .iter()
                .filter_map(|p| pki::inspect(p).ok())
                .filter(|i| i.fingerprint_sha256 != ca)
                .map(|i| i.common_name.unwrap_or(i.fingerprint_sha256))
                .collect(),
            _ => Vec::new(),
        };
        if !others.is_empty() {
            return Err(self.err(
                ErrorKind::Rejected,
                format!("installing a revocation list as {path}"),
                format!(
                    "the node trusts other CAs besides the list's ({}); once ssl_crl_file is set PostgreSQL refuses every \
                     client certificate whose CA has no list in it, so their certificates would be refused. Revoke once a \
                     CA rotation has dropped them from every node's trust; nothing was changed",
                    others.join(", ")
                ),
            ));
        }
        let rights = self.file_rights(&tx).await?;
        files::replace(&tx, &path, crl_pem.as_bytes(), Some(0o644), &rights)
            .await
            .map_err(|e| self.pg_err(format!("writing {path}"), &e))?;
        let _ = tx.rollback().await;
        drop(s);
        if in_force != path {
            self.alter_system("ssl_crl_file", Some(&path)).await?;
        }
        self.reload().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.ssl_files().await?.crl_file == path {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(self.err(
                    ErrorKind::Sql,
                    format!("installing a revocation list as {path}"),
                    "the server did not take ssl_crl_file within 10 seconds of the reload; the list is not known to be in force",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How the node's revocation list compares with `crl_pem`: the problems
    /// found, none when it is in force.
    pub async fn crl_problems(&self, crl_pem: &str) -> Result<Vec<String>, NodeError> {
        let SslFiles {
            crl_path: path,
            crl_file: in_force,
            ..
        } = self.ssl_files().await?;
        let mut s = self.session().await?;
        let text = self.read_text(s.client(), &path).await?;
        let mut problems = Vec::new();
        match text {
            None => problems.push("revocation list missing".to_string()),
            Some(t) if t.trim() != crl_pem.trim() => {
                problems.push("revocation list replaced".to_string())
            }
            _ => {}
        }
        if in_force != path {
            problems.push("ssl_crl_file not set to it".to_string());
        }
        Ok(problems)
    }

    /// Takes the revocation list out of force and removes the file, while
    /// they are `crl_pem`'s: a list another one replaced stays.
    pub async fn uninstall_crl(&self, crl_pem: &str) -> Result<(), NodeError> {
        let SslFiles {
            crl_path: path,
            crl_file: in_force,
            ..
        } = self.ssl_files().await?;
        let mut s = self.session().await?;
        let tx = self.begin(&mut s).await?;
        let ours = self
            .read_text(&tx, &path)
            .await?
            .is_some_and(|t| t.trim() == crl_pem.trim());
        if !ours {
            return Ok(());
        }
        if in_force == path {
            self.alter_system("ssl_crl_file", None).await?;
            self.reload().await?;
        }
        files::remove(&tx, &path)
            .await
            .map_err(|e| self.pg_err(format!("removing {path}"), &e))?;
        let _ = tx.rollback().await;
        Ok(())
    }

    /// Paths of a role's client certificate where TimescaleDB (2.13) looks:
    /// `<timescaledb.ssl_dir>/<md5>.crt` when that is set, else
    /// `<data_directory>/timescaledb/certs/<md5>.crt`.
    pub async fn user_cert_paths(&self, role: &str) -> Result<CertPaths, NodeError> {
        let data = self.data_directory().await?;
        let mut s = self.session().await?;
        let row = s
            .client()
            .query_one(sql::SHOW_SETTING, &[&"timescaledb.ssl_dir"])
            .await
            .map_err(|e| self.pg_err("reading timescaledb.ssl_dir", &e))?;
        let dir = match row.get::<_, Option<String>>(0).filter(|d| !d.is_empty()) {
            Some(d) if d.starts_with('/') => d.trim_end_matches('/').to_string(),
            Some(d) => format!("{data}/{}", d.trim_end_matches('/')),
            None => format!("{data}/timescaledb/certs"),
        };
        let base = user_cert_base(role);
        Ok(CertPaths {
            cert: format!("{dir}/{base}.crt"),
            key: format!("{dir}/{base}.key"),
            ca: None,
            dir: Some(dir),
        })
    }

    /// Reads the installed files.
    pub async fn read_installed(&self, paths: &CertPaths) -> Result<Installed, NodeError> {
        let mut s = self.session().await?;
        let tx = self.begin(&mut s).await?;
        let mut out = Vec::new();
        for p in std::iter::once(&paths.cert)
            .chain(std::iter::once(&paths.key))
            .chain(paths.ca.iter())
        {
            let bytes = files::read(&tx, p)
                .await
                .map_err(|e| self.pg_err(format!("reading {p}"), &e))?;
            out.push(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()));
        }
        let mut it = out.into_iter();
        let cert = it.next().flatten();
        let key = it.next().flatten().map(Secret::new);
        let ca = it.next().flatten();
        let programs = self.file_rights(&tx).await?.programs;
        let key_mode = if programs && key.is_some() {
            files::mode(&tx, &paths.key)
                .await
                .map_err(|e| self.pg_err(format!("reading the mode of {}", paths.key), &e))?
        } else {
            None
        };
        let _ = tx.rollback().await;
        Ok(Installed {
            cert,
            key,
            ca,
            key_mode,
        })
    }

    /// The node's current `ssl` settings, in [`SSL_SETTINGS`] order.
    ///
    /// Read from the configuration files (`pg_file_settings`), which is what
    /// the next reload or restart takes, rather than from a session that may
    /// not have seen the latest reload yet. A setting no file sets is empty;
    /// `ssl` is given as `on` or `off` otherwise.
    pub async fn ssl_settings(&self) -> Result<Vec<String>, NodeError> {
        let mut s = self.session().await?;
        let names: Vec<&str> = SSL_SETTINGS.to_vec();
        let rows = s
            .client()
            .query(sql::FILE_SETTINGS, &[&names])
            .await
            .map_err(|e| self.pg_err("reading the ssl settings", &e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let value: String = r.get::<_, Option<String>>(1).unwrap_or_default();
                if name == "ssl" && !value.is_empty() {
                    let on = ["on", "true", "yes", "1"].contains(&value.to_lowercase().as_str());
                    if on { "on" } else { "off" }.to_string()
                } else {
                    value
                }
            })
            .collect())
    }

    /// Installs a certificate as described in the module docs. Runs in its
    /// own task so that a cancelled request cannot stop it halfway.
    pub async fn install_cert(
        self: &Arc<Self>,
        paths: CertPaths,
        what: Install,
    ) -> Result<(), NodeError> {
        let node = self.clone();
        let task = tokio::spawn(async move { node.install_inner(&paths, &what).await });
        task.await.unwrap_or_else(|e| {
            Err(self.err(
                ErrorKind::Sql,
                "installing a certificate",
                format!("internal error: {e}"),
            ))
        })
    }

    async fn install_inner(&self, paths: &CertPaths, what: &Install) -> Result<(), NodeError> {
        let _guard = self.edit_lock.lock().await;
        let mut session = self.session().await?;
        let tx = self.begin(&mut session).await?;
        let rights = self.file_rights(&tx).await?;
        if !rights.programs {
            return Err(self.err(
                ErrorKind::Permission,
                format!("installing {}", paths.cert),
                "writing a private key with mode 0600 needs the right to run programs on the server (superuser or pg_execute_server_program)",
            ));
        }
        if let Some(dir) = &paths.dir {
            files::make_dir(&tx, dir)
                .await
                .map_err(|e| self.pg_err(format!("creating {dir}"), &e))?;
        }
        let mut cert_file = what.cert_pem.clone();
        if paths.ca.is_none() {
            // A client certificate file carries the chain to the root the
            // data nodes trust.
            if let Some(ca) = &what.ca_pem {
                cert_file.push_str(ca);
            }
        }
        files::replace(
            &tx,
            &paths.key,
            what.key_pem.expose().as_bytes(),
            Some(0o600),
            &rights,
        )
        .await
        .map_err(|e| self.pg_err(format!("writing {}", paths.key), &e))?;
        files::replace(&tx, &paths.cert, cert_file.as_bytes(), Some(0o644), &rights)
            .await
            .map_err(|e| self.pg_err(format!("writing {}", paths.cert), &e))?;
        if let (Some(ca_path), Some(ca)) = (&paths.ca, &what.ca_pem) {
            files::replace(&tx, ca_path, ca.as_bytes(), Some(0o644), &rights)
                .await
                .map_err(|e| self.pg_err(format!("writing {ca_path}"), &e))?;
        }
        let _ = tx.rollback().await;
        log::info(
            "certificate installed",
            &[("node", &self.name), ("path", &paths.cert)],
        );
        if !what.configure_ssl {
            return Ok(());
        }
        self.serve_installed(paths, &what.fingerprint).await
    }

    /// Points the `ssl` settings at the installed files, reloads, and waits
    /// until the node serves the certificate with `fingerprint`; if it
    /// does not, the previous settings are put back.
    async fn serve_installed(&self, paths: &CertPaths, fingerprint: &str) -> Result<(), NodeError> {
        let before = self.ssl_settings().await?;
        let want = [
            "on".to_string(),
            paths.cert.clone(),
            paths.key.clone(),
            paths.ca.clone().unwrap_or_default(),
        ];
        for (i, name) in SSL_SETTINGS.iter().enumerate() {
            if before[i] != want[i] {
                self.alter_system(name, Some(&want[i])).await?;
            }
        }
        self.reload().await?;
        match self.wait_until_served(fingerprint).await {
            Ok(()) => Ok(()),
            Err(why) => {
                // Put the settings back; the files stay for inspection. What
                // could not be put back is said, not hidden.
                let mut not_restored = Vec::new();
                for (i, name) in SSL_SETTINGS.iter().enumerate() {
                    if before[i] != want[i] {
                        let value = Some(before[i].as_str()).filter(|v| !v.is_empty());
                        if let Err(e) = self.alter_system(name, value).await {
                            not_restored.push(format!("{name} ({})", e.message));
                        }
                    }
                }
                if let Err(e) = self.reload().await {
                    not_restored.push(format!("the reload ({})", e.message));
                }
                let outcome = if not_restored.is_empty() {
                    "the previous ssl settings were put back".to_string()
                } else {
                    format!(
                        "putting the previous ssl settings back failed for {}: check the node's ssl settings before it restarts",
                        not_restored.join(", ")
                    )
                };
                Err(self.err(
                    ErrorKind::Rejected,
                    format!("serving {}", paths.cert),
                    format!("{why}; {outcome}. The server log says why it could not load the certificate"),
                ))
            }
        }
    }

    async fn alter_system(&self, name: &str, value: Option<&str>) -> Result<(), NodeError> {
        let stmt = sql::alter_system(name, value);
        let mut s = self.session().await?;
        s.client()
            .batch_execute(&stmt)
            .await
            .map_err(|e| self.pg_err(format!("setting {name}"), &e))
    }

    async fn reload(&self) -> Result<(), NodeError> {
        let mut s = self.session().await?;
        s.client()
            .query_one(sql::RELOAD, &[])
            .await
            .map_err(|e| self.pg_err("reloading the configuration", &e))?;
        Ok(())
    }

    /// Probes until the node serves the certificate with `fingerprint`.
    async fn wait_until_served(&self, fingerprint: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let served = self.served_fingerprint().await;
            if matches!(&served, Ok(Some(f)) if f == fingerprint) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(not_served(served));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The SHA-256 fingerprint of the certificate the node serves, or
    /// `None` when it does not offer TLS. Errors when the node cannot be
    /// probed (a Unix socket address).
    pub async fn served_fingerprint(&self) -> Result<Option<String>, String> {
        if self.spec.host.starts_with('/') {
            return Err(
                "the provider reaches this node over a Unix socket, where PostgreSQL offers no TLS"
                    .into(),
            );
        }
        let addr = format!("{}:{}", self.spec.host, self.spec.port);
        let probe = async {
            let mut tcp = self
                .spec
                .stream(&self.name)
                .await
                .map_err(|e| e.to_string())?;
            // SSLRequest: length 8, code 80877103.
            tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
                .await
                .map_err(|e| e.to_string())?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer)
                .await
                .map_err(|e| e.to_string())?;
            if answer[0] != b'S' {
                return Ok(None);
            }
            let config = super::tls::client_config(super::SslMode::Require, None, None)?;
            let name = rustls::pki_types::ServerName::try_from("localhost")
                .map_err(|e| e.to_string())?
                .to_owned();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            let der = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec())
                .ok_or("the node presented no certificate")?;
            Ok(Some(pki::fingerprint(&der)))
        };
        tokio::time::timeout(Duration::from_secs(5), probe)
            .await
            .unwrap_or_else(|_| Err(format!("no TLS answer from {addr} within 5 seconds")))
    }

    /// Whether the certificate file at `paths` is the certificate with this
    /// fingerprint (which must be one, as [`pki::is_fingerprint`] says).
    pub async fn holds_cert(
        &self,
        paths: &CertPaths,
        fingerprint: &str,
    ) -> Result<bool, NodeError> {
        if !pki::is_fingerprint(fingerprint) {
            return Ok(false);
        }
        let installed = self.read_installed(paths).await?;
        Ok(installed
            .cert
            .as_deref()
            .and_then(|c| pki::inspect(c).ok())
            .is_some_and(|i| i.fingerprint_sha256 == fingerprint))
    }

    /// Removes a certificate's files when the certificate file there is
    /// still the one with `fingerprint` (the one the state records): a file
    /// replaced since (by hand, or by the certificate that replaces this one
    /// at the same path) is left alone, and so are the `ssl` settings. For
    /// a server certificate whose settings point at its file, the settings
    /// are reset first (`reset_ssl`). `paths` must come from the node
    /// ([`Node::server_cert_paths`] and friends), never from a state.
    pub async fn uninstall_cert(
        &self,
        paths: &CertPaths,
        fingerprint: &str,
        reset_ssl: bool,
    ) -> Result<(), NodeError> {
        let _guard = self.edit_lock.lock().await;
        if !self.holds_cert(paths, fingerprint).await? {
            log::info(
                "certificate files left in place: they hold another certificate",
                &[("node", &self.name), ("path", &paths.cert)],
            );
            return Ok(());
        }
        if reset_ssl {
            let now = self.ssl_settings().await?;
            if now[1] == paths.cert {
                for name in SSL_SETTINGS {
                    self.alter_system(name, None).await?;
                }
                self.reload().await?;
            }
        }
        let now = self.ssl_settings().await?;
        if [&now[1], &now[2]]
            .iter()
            .any(|p| **p == paths.cert || **p == paths.key)
        {
            // Still in force: removing the files would keep the server from
            // starting next time. They stay.
            return Ok(());
        }
        let mut s = self.session().await?;
        let tx = self.begin(&mut s).await?;
        let mut to_remove = vec![paths.cert.clone(), paths.key.clone()];
        to_remove.extend(paths.ca.clone());
        for p in to_remove {
            files::remove(&tx, &p)
                .await
                .map_err(|e| self.pg_err(format!("removing {p}"), &e))?;
        }
        let _ = tx.rollback().await;
        Ok(())
    }
}

fn not_served(served: Result<Option<String>, String>) -> String {
    match served {
        Ok(Some(f)) => {
            format!("after the reload the node still serves another certificate (SHA-256 {f})")
        }
        Ok(None) => "after the reload the node still does not offer TLS".into(),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TimescaleDB 2.13 looks for a role's certificate by the md5 of its
    /// name, exactly as written.
    #[test]
    fn user_certificates_are_named_by_the_md5_of_the_role() {
        assert_eq!(
            user_cert_base("postgres"),
            "e8a48653851e28c69d0506508fb27fc5"
        );
        assert_ne!(user_cert_base("Postgres"), user_cert_base("postgres"));
    }

    #[test]
    fn what_is_not_served_is_said() {
        assert!(not_served(Ok(Some("ab".into()))).contains("SHA-256 ab"));
        assert!(not_served(Ok(None)).contains("does not offer TLS"));
        assert_eq!(not_served(Err("probe failed".into())), "probe failed");
    }
}
