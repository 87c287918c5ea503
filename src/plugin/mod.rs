//! Running as a Terraform plugin: the go-plugin handshake, the listener,
//! AutoMTLS, and the gRPC services.

mod services;
pub mod tls;

use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use crate::log;
use crate::proto::{health, plugin as plugin_pb, tfplugin6};
use crate::server::ProviderServer;

/// The go-plugin handshake cookie Terraform sets for its providers.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own protocol version (the first handshake field).
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The Terraform plugin protocol version this provider speaks.
pub const APP_PROTOCOL_VERSION: u32 = 6;
/// Largest gRPC message either way (large plans carry big states).
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
/// The provider's address as Terraform configurations use it.
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/local/timescaledb";

/// How the plugin was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Started by Terraform: handshake line, AutoMTLS when asked.
    Managed,
    /// Started by a developer: no TLS, print a `TF_REATTACH_PROVIDERS` value.
    Debug,
}

/// Why the plugin could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Picks the protocol version from what Terraform offers.
pub fn negotiate(offered: Option<&str>) -> Result<u32, StartError> {
    let Some(list) = offered.filter(|s| !s.trim().is_empty()) else {
        return Ok(APP_PROTOCOL_VERSION);
    };
    let ok = list
        .split(',')
        .filter_map(|v| v.trim().parse::<u32>().ok())
        .any(|v| v == APP_PROTOCOL_VERSION);
    if ok {
        Ok(APP_PROTOCOL_VERSION)
    } else {
        Err(StartError(format!(
            "this provider speaks plugin protocol {APP_PROTOCOL_VERSION} (Terraform 1.0 and later, OpenTofu); the client offered {list}"
        )))
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One accepted connection, plain or TLS, Unix or TCP.
struct Conn(Box<dyn Io>);

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

enum Listener {
    Unix(UnixListener, std::path::PathBuf),
    Tcp(TcpListener),
}

impl Listener {
    async fn bind() -> Result<Listener, StartError> {
        let dir = std::env::var("PLUGIN_UNIX_SOCKET_DIR")
            .or_else(|_| std::env::var("TMPDIR"))
            .unwrap_or_else(|_| "/tmp".to_string());
        let path = std::path::Path::new(&dir).join(format!("plugin{}", rand::random::<u64>()));
        match UnixListener::bind(&path) {
            Ok(l) => return Ok(Listener::Unix(l, path)),
            Err(e) => log::warn(
                "cannot listen on a Unix socket; falling back to TCP",
                &[("error", &e)],
            ),
        }
        let min: u16 = std::env::var("PLUGIN_MIN_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let max: u16 = std::env::var("PLUGIN_MAX_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let ports: Vec<u16> = if min > 0 && max >= min {
            (min..=max).collect()
        } else {
            vec![0]
        };
        for port in ports {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
                return Ok(Listener::Tcp(l));
            }
        }
        Err(StartError(
            "could not listen on a Unix socket or a loopback TCP port".into(),
        ))
    }

    fn network_and_address(&self) -> (&'static str, String) {
        match self {
            Listener::Unix(_, p) => ("unix", p.display().to_string()),
            Listener::Tcp(l) => (
                "tcp",
                l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            ),
        }
    }

    async fn accept(&self) -> std::io::Result<Box<dyn Io>> {
        Ok(match self {
            Listener::Unix(l, _) => Box::new(l.accept().await?.0),
            Listener::Tcp(l) => Box::new(l.accept().await?.0),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Serves the provider until Terraform asks it to shut down.
pub async fn serve(mode: Mode) -> Result<(), StartError> {
    let version = match mode {
        Mode::Managed => negotiate(std::env::var("PLUGIN_PROTOCOL_VERSIONS").ok().as_deref())?,
        Mode::Debug => APP_PROTOCOL_VERSION,
    };
    let listener = Arc::new(Listener::bind().await?);
    let tls = match mode {
        Mode::Managed => auto_mtls()?,
        Mode::Debug => None,
    };
    let (network, address) = listener.network_and_address();

    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Conn>>(16);
    accept_connections(
        listener.clone(),
        tls.as_ref().map(|(_, a)| a.clone()),
        tx,
        shutdown.clone(),
    );

    let provider = Arc::new(ProviderServer::new());
    let router = router(provider.clone(), &shutdown);

    // Terraform sends StopProvider for Ctrl-C; the signal itself must not
    // kill the plugin in the middle of a change.
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            log::debug(
                "ignoring SIGINT; Terraform stops the provider through StopProvider",
                &[],
            );
        }
    });

    write_handshake(
        mode,
        version,
        network,
        &address,
        tls.as_ref().map(|(c, _)| c.as_str()),
    )?;

    if mode == Mode::Managed {
        stop_when_orphaned(shutdown.clone());
    }

    let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
    let stop = shutdown.clone();
    router
        .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await })
        .await
        .map_err(|e| StartError(format!("gRPC server: {e}")))?;
    provider.shutdown().await;
    drop(listener);
    Ok(())
}

/// With Terraform's client certificate in `PLUGIN_CLIENT_CERT` (AutoMTLS):
/// the certificate to announce in the handshake and the TLS acceptor that
/// admits only Terraform's.
fn auto_mtls() -> Result<Option<(String, tokio_rustls::TlsAcceptor)>, StartError> {
    let pem = match std::env::var("PLUGIN_CLIENT_CERT") {
        Ok(pem) if !pem.is_empty() => pem,
        _ => return Ok(None),
    };
    let identity = tls::ServerIdentity::generate()
        .map_err(|e| StartError(format!("server certificate: {e}")))?;
    let client = tls::PinnedClientCert::from_pem(&pem).map_err(StartError)?;
    let config = tls::server_config(&identity, client).map_err(StartError)?;
    Ok(Some((
        identity.handshake_field(),
        tokio_rustls::TlsAcceptor::from(config),
    )))
}

/// The gRPC services: the provider, and go-plugin's controller, stdio,
/// broker and health.
fn router(
    provider: Arc<ProviderServer>,
    shutdown: &CancellationToken,
) -> tonic::transport::server::Router {
    let svc = tfplugin6::provider_server::ProviderServer::from_arc(provider)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(svc)
        .add_service(
            plugin_pb::grpc_controller_server::GrpcControllerServer::new(services::Controller {
                shutdown: shutdown.clone(),
            }),
        )
        .add_service(plugin_pb::grpc_stdio_server::GrpcStdioServer::new(
            services::Stdio {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(plugin_pb::grpc_broker_server::GrpcBrokerServer::new(
            services::Broker {
                shutdown: shutdown.clone(),
            },
        ))
        .add_service(health::health_server::HealthServer::new(services::Health))
}

/// Accepts connections until `shutdown`, each through the TLS handshake
/// that admits only Terraform's certificate (when `acceptor` is set), and
/// hands them to the gRPC server.
fn accept_connections(
    listener: Arc<Listener>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Conn>>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let io = tokio::select! {
                r = listener.accept() => r,
                _ = shutdown.cancelled() => break,
            };
            let io = match io {
                Ok(io) => io,
                Err(e) => {
                    log::warn("accept failed", &[("error", &e)]);
                    continue;
                }
            };
            let tx = tx.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let conn = match acceptor {
                    None => Conn(io),
                    Some(a) => match a.accept(io).await {
                        Ok(s) => Conn(Box::new(s)),
                        Err(e) => {
                            log::warn("refused a connection that did not present Terraform's client certificate", &[("error", &e)]);
                            return;
                        }
                    },
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
}

/// The line on stdout that tells Terraform where the plugin listens (or,
/// in debug mode, how to attach to it).
fn write_handshake(
    mode: Mode,
    version: u32,
    network: &str,
    address: &str,
    cert: Option<&str>,
) -> Result<(), StartError> {
    let mut stdout = std::io::stdout().lock();
    match mode {
        Mode::Managed => {
            let cert = cert.unwrap_or("");
            writeln!(stdout, "{CORE_PROTOCOL_VERSION}|{version}|{network}|{address}|grpc|{cert}")
        }
        Mode::Debug => {
            let reattach = serde_json::json!({
                PROVIDER_ADDRESS: {
                    "Protocol": "grpc",
                    "ProtocolVersion": version,
                    "Pid": std::process::id(),
                    "Test": true,
                    "Addr": { "Network": network, "String": address }
                }
            });
            writeln!(
                stdout,
                "Provider started. To attach Terraform, set TF_REATTACH_PROVIDERS in the shell that runs it:\n\n\tTF_REATTACH_PROVIDERS='{reattach}'\n"
            )
        }
    }
    .and_then(|_| stdout.flush())
    .map_err(|e| StartError(format!("writing the handshake: {e}")))
}

/// A plugin whose Terraform died (killed, crashed) would otherwise run on
/// forever, holding sessions on the nodes: stop when the parent goes.
fn stop_when_orphaned(shutdown: CancellationToken) {
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != parent {
                log::warn("Terraform went away; the provider stops", &[]);
                shutdown.cancel();
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_protocol_six_only() {
        assert_eq!(negotiate(Some("5,6")).unwrap(), 6);
        assert_eq!(negotiate(Some("6")).unwrap(), 6);
        assert_eq!(negotiate(None).unwrap(), 6);
        assert!(negotiate(Some("5")).unwrap_err().0.contains("protocol 6"));
    }

    #[test]
    fn handshake_certificate_is_unpadded_standard_base64() {
        let id = tls::ServerIdentity::generate().unwrap();
        let field = id.handshake_field();
        assert!(!field.contains('=') && !field.contains('-') && !field.contains('_'));
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(field)
            .unwrap();
        assert_eq!(der, id.cert_der.as_ref());
    }
}
