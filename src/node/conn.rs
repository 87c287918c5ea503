//! How to reach one node, and opening a connection to it.

use std::sync::Arc;
use std::time::Duration;

use russh::client::Msg;
use russh::ChannelStream;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Client;

use super::bastion::Bastion;
use super::error::{ErrorKind, NodeError};
use super::tls;
use crate::log;
use crate::secret::Secret;

/// libpq's `channel_binding` values.
pub const CHANNEL_BINDINGS: &[&str] = &["disable", "prefer", "require"];

/// Whether SCRAM authentication is bound to the TLS channel
/// (SCRAM-SHA-256-PLUS with `tls-server-end-point`), as libpq's
/// `channel_binding`: a relay that terminates TLS with a certificate of its
/// own cannot pass a bound exchange on to the real server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChannelBinding {
    /// Never bind.
    Disable,
    /// Bind when the server offers it over TLS (libpq's default).
    #[default]
    Prefer,
    /// Refuse to log in unless the exchange is bound: no TLS, a server
    /// that does not offer SCRAM-SHA-256-PLUS, or a method without SCRAM
    /// (`trust`, `cert`, `md5`) fails the connection.
    Require,
}

impl ChannelBinding {
    pub fn parse(s: &str) -> Option<ChannelBinding> {
        Some(match s {
            "disable" => ChannelBinding::Disable,
            "prefer" => ChannelBinding::Prefer,
            "require" => ChannelBinding::Require,
            _ => return None,
        })
    }

    fn to_pg(self) -> tokio_postgres::config::ChannelBinding {
        match self {
            ChannelBinding::Disable => tokio_postgres::config::ChannelBinding::Disable,
            ChannelBinding::Prefer => tokio_postgres::config::ChannelBinding::Prefer,
            ChannelBinding::Require => tokio_postgres::config::ChannelBinding::Require,
        }
    }
}

/// Settings every session of the provider starts with, sent in the startup
/// packet: they take precedence over anything other roles can attach to the
/// provider's sessions (`ALTER DATABASE ... SET`, which a database owner
/// may run, and `ALTER ROLE ... SET`).
///
/// - `search_path`: nothing but `pg_catalog`, with the session's own
///   temporary schema last, so no function, operator or table that another
///   role creates (a look-alike of a catalog function in `public`, with
///   argument types that win PostgreSQL's overload resolution) is ever
///   resolved by the provider's statements. Extension objects are named
///   with their schema.
/// - `role`: a database owner may attach `SET ROLE` to every session in
///   their database; the provider acts as the role it logs in as, or not
///   at all.
pub const SESSION_SETTINGS: &str = "-c search_path=pg_catalog,pg_temp -c role=none";

/// libpq's `sslmode` values this provider supports.
pub const SSL_MODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Everything needed to open a session on a node.
#[derive(Clone, Debug)]
pub struct ConnSpec {
    /// Host name, IP address, or a Unix-socket directory (starts with `/`).
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
    pub sslmode: SslMode,
    pub sslrootcert: Option<String>,
    /// Client certificate and key, each PEM text or a file path.
    pub clientcert: Option<(String, Secret)>,
    pub channel_binding: ChannelBinding,
    pub connect_timeout: Duration,
    /// The SSH bastion every connection to the node goes through.
    pub bastion: Option<Arc<Bastion>>,
}

impl ConnSpec {
    /// `host:port` (or the socket path) for messages, and the bastion the
    /// node is reached through when there is one.
    pub fn address(&self) -> String {
        let at = if self.host.starts_with('/') {
            format!("{}/.s.PGSQL.{}", self.host, self.port)
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        match &self.bastion {
            Some(b) => format!("{at} through the bastion {}", b.spec().name()),
            None => at,
        }
    }

    /// Opens a session. `node` names the node in errors.
    pub async fn connect(&self, node: &str) -> Result<Client, NodeError> {
        let doing = "connecting";
        let fail = |kind, m: String| NodeError::new(node, &self.address(), kind, doing, m);
        let mut cfg = tokio_postgres::Config::new();
        let unix = self.host.starts_with('/');
        if unix {
            cfg.host_path(&self.host);
        } else {
            cfg.host(&self.host);
        }
        cfg.port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .application_name("terraform-provider-timescaledb")
            .options(SESSION_SETTINGS)
            .channel_binding(self.channel_binding.to_pg())
            .connect_timeout(self.connect_timeout);
        if let Some(p) = &self.password {
            cfg.password(p.expose());
        }
        let mode = if unix { SslMode::Disable } else { self.sslmode };
        let pg_mode = match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        };
        cfg.ssl_mode(pg_mode);
        let tls_config = match mode {
            SslMode::Disable => None,
            _ => {
                let cert = self
                    .clientcert
                    .as_ref()
                    .map(|(c, k)| (c.as_str(), k.expose()));
                Some(
                    tls::client_config(mode, self.sslrootcert.as_deref(), cert)
                        .map_err(|m| fail(ErrorKind::Unreachable, format!("TLS set-up: {m}")))?,
                )
            }
        };
        let connected = match (&self.bastion, tls_config) {
            (Some(b), tls_config) => {
                let stream = self.tunnel(node, b).await?;
                match tls_config {
                    None => {
                        self.finish(node, cfg.connect_raw(stream, tokio_postgres::NoTls))
                            .await?
                    }
                    Some(c) => {
                        let tls = <tls::MakeRustls as MakeTlsConnect<ChannelStream<Msg>>>::make_tls_connect(
                            &mut tls::MakeRustls(c),
                            &self.host,
                        )
                        .map_err(|e| fail(ErrorKind::Unreachable, format!("TLS set-up: {e}")))?;
                        self.finish(node, cfg.connect_raw(stream, tls)).await?
                    }
                }
            }
            (None, None) => {
                self.finish(node, cfg.connect(tokio_postgres::NoTls))
                    .await?
            }
            (None, Some(c)) => self.finish(node, cfg.connect(tls::MakeRustls(c))).await?,
        };
        connected.map_err(|e| NodeError::from_pg(node, &self.address(), doing, &e))
    }
}

impl ConnSpec {
    /// Waits for a connection attempt within the timeout and starts the
    /// task that drives the connection.
    async fn finish<R, S, F>(
        &self,
        node: &str,
        connect: F,
    ) -> Result<Result<Client, tokio_postgres::Error>, NodeError>
    where
        F: std::future::Future<
            Output = Result<(Client, tokio_postgres::Connection<R, S>), tokio_postgres::Error>,
        >,
        R: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(r) => Ok(r.map(|(client, conn)| {
                spawn_connection(node, conn);
                client
            })),
            Err(_) => Err(NodeError::new(
                node,
                &self.address(),
                ErrorKind::Unreachable,
                "connecting",
                format!("timed out after {:?}", self.connect_timeout),
            )),
        }
    }
}

/// A byte stream to a node: TCP, or a channel through a bastion.
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

impl ConnSpec {
    /// A TCP stream to the node, through the bastion when there is one.
    pub async fn stream(&self, node: &str) -> Result<Box<dyn Stream>, NodeError> {
        if let Some(b) = &self.bastion {
            return Ok(Box::new(self.tunnel(node, b).await?));
        }
        let fail = |m: String| self.unreachable(node, m);
        let addr = (self.host.as_str(), self.port);
        match tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(addr)).await
        {
            Ok(r) => Ok(Box::new(r.map_err(|e| fail(e.to_string()))?)),
            Err(_) => Err(fail(format!("timed out after {:?}", self.connect_timeout))),
        }
    }

    /// The node could not be reached: `m` says why.
    fn unreachable(&self, node: &str, m: String) -> NodeError {
        NodeError::new(
            node,
            &self.address(),
            ErrorKind::Unreachable,
            "connecting",
            m,
        )
    }

    /// A stream to the node through `bastion`, within the connect timeout.
    pub async fn tunnel(
        &self,
        node: &str,
        bastion: &Bastion,
    ) -> Result<ChannelStream<Msg>, NodeError> {
        let fail = |m: String| self.unreachable(node, m);
        if self.host.starts_with('/') {
            return Err(fail("a Unix socket cannot be reached through a bastion; give the node's host name or address as the bastion sees it".into()));
        }
        match tokio::time::timeout(self.connect_timeout, bastion.open(&self.host, self.port)).await
        {
            Ok(r) => r.map_err(fail),
            Err(_) => Err(fail(format!("timed out after {:?}", self.connect_timeout))),
        }
    }
}

fn spawn_connection<F>(node: &str, conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    let node = node.to_string();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            log::debug("node connection ended", &[("node", &node), ("error", &e)]);
        }
    });
}
