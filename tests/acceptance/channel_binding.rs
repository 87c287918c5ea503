//! SCRAM channel binding against a relay on the network between the
//! provider and a node.
//!
//! The relay terminates the provider's TLS with a certificate of its own
//! and opens its own TLS to the real node, passing the PostgreSQL protocol
//! through. It records the SASL mechanism the provider chose (it sees the
//! exchange in clear) and, in one mode, strips SCRAM-SHA-256-PLUS from the
//! mechanisms the server offers. With `sslmode = "require"` and no
//! `sslrootcert` only channel binding keeps such a relay from passing the
//! provider's login on to the node.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tsdb_provider::node::{ChannelBinding, ConnSpec, SslMode};
use tsdb_provider::secret::Secret;

use crate::harness::{Cluster, Terraform};

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const PLUS: &str = "SCRAM-SHA-256-PLUS";

/// A certificate and its key, as PEM and as rustls wants them.
struct Cert {
    pem: String,
    key_pem: String,
}

impl Cert {
    fn new() -> Cert {
        let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        Cert {
            pem: c.cert.pem(),
            key_pem: c.signing_key.serialize_pem(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let der = CertificateDer::from(
            rustls_pemfile::certs(&mut self.pem.as_bytes())
                .next()
                .unwrap()
                .unwrap()
                .to_vec(),
        );
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let key = match key {
            PrivateKeyDer::Pkcs8(k) => {
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.secret_pkcs8_der().to_vec()))
            }
            other => other,
        };
        Arc::new(
            rustls::ServerConfig::builder_with_provider(tsdb_provider::node::tls::crypto())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![der], key)
                .unwrap(),
        )
    }
}

/// A relay in front of `upstream`, presenting `cert`; `strip` takes
/// SCRAM-SHA-256-PLUS out of what the server offers. The mechanisms
/// clients chose are recorded.
struct Relay {
    addr: SocketAddr,
    chosen: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    async fn start(upstream: SocketAddr, cert: &Cert, strip: bool) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let chosen = Arc::new(Mutex::new(Vec::new()));
        let config = cert.server_config();
        let seen = chosen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (config, seen) = (config.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = relay(client, upstream, config, strip, seen).await;
                });
            }
        });
        Relay { addr, chosen }
    }

    fn chosen(&self) -> Vec<String> {
        self.chosen.lock().unwrap().clone()
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    config: Arc<rustls::ServerConfig>,
    strip: bool,
    seen: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut request = [0u8; 8];
    client.read_exact(&mut request).await?;
    if request != SSL_REQUEST {
        return Ok(()); // this relay speaks TLS only
    }
    client.write_all(b"S").await?;
    let client = tokio_rustls::TlsAcceptor::from(config)
        .accept(client)
        .await?;
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&SSL_REQUEST).await?;
    let mut answer = [0u8; 1];
    up.read_exact(&mut answer).await?;
    let tls = tsdb_provider::node::tls::client_config(SslMode::Require, None, None)
        .map_err(std::io::Error::other)?;
    let up = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), up)
        .await?;
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = tokio::io::split(up);
    let to_server = async {
        // The startup message has no type byte.
        let mut len = [0u8; 4];
        cr.read_exact(&mut len).await?;
        let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
        cr.read_exact(&mut body).await?;
        uw.write_all(&len).await?;
        uw.write_all(&body).await?;
        loop {
            let (ty, body) = read_message(&mut cr).await?;
            if ty == b'p' && body.starts_with(b"SCRAM-SHA-256") {
                let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body[..end]).into_owned());
            }
            write_message(&mut uw, ty, &body).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    };
    let to_client = async {
        loop {
            let (ty, mut body) = read_message(&mut ur).await?;
            // AuthenticationSASL: code 10, then the mechanisms.
            if strip && ty == b'R' && body.starts_with(&[0, 0, 0, 10]) {
                let kept: Vec<&[u8]> = body[4..]
                    .split(|b| *b == 0)
                    .filter(|m| !m.is_empty() && *m != PLUS.as_bytes())
                    .collect();
                let mut b = vec![0, 0, 0, 10];
                for m in kept {
                    b.extend_from_slice(m);
                    b.push(0);
                }
                b.push(0);
                body = b;
            }
            write_message(&mut cw, ty, &body).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    };
    tokio::select! {
        r = to_server => r,
        r = to_client => r,
    }
}

async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    r.read_exact(&mut body).await?;
    Ok((head[0], body))
}

async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    ty: u8,
    body: &[u8],
) -> std::io::Result<()> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    w.write_all(&m).await
}

/// dn1 with TLS (`cert`) and a password login over it for `binder`.
fn tls_node(c: &Cluster, cert: &Cert) {
    let dir = c.data_dir("dn1");
    std::fs::write(dir.join("server.crt"), &cert.pem).unwrap();
    std::fs::write(dir.join("server.key"), &cert.key_pem).unwrap();
    for f in ["server.crt", "server.key"] {
        let p = dir.join(f);
        let ok = std::process::Command::new("chown")
            .arg("postgres:")
            .arg(&p)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    c.psql("dn1", "ALTER SYSTEM SET ssl = on");
    c.psql(
        "dn1",
        "CREATE ROLE binder LOGIN SUPERUSER PASSWORD 'binder pass'",
    );
    let hba = c.read_hba("dn1");
    c.write_hba(
        "dn1",
        &format!("hostssl all binder 127.0.0.1/32 scram-sha-256\nhost all binder 127.0.0.1/32 reject\n{hba}"),
    );
    c.psql("dn1", "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.psql("dn1", "SHOW ssl"), "on");
}

fn spec(port: u16, binding: ChannelBinding) -> ConnSpec {
    ConnSpec {
        host: "127.0.0.1".into(),
        port,
        database: "postgres".into(),
        user: "binder".into(),
        password: Some(Secret::new("binder pass")),
        sslmode: SslMode::Require,
        sslrootcert: None,
        clientcert: None,
        channel_binding: binding,
        connect_timeout: Duration::from_secs(5),
        bastion: None,
    }
}

#[test]
fn channel_binding_keeps_a_relay_from_passing_the_login_on() {
    let c = Cluster::start(1);
    let real = Cert::new();
    tls_node(&c, &real);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node: SocketAddr = format!("127.0.0.1:{}", c.port("dn1")).parse().unwrap();
    let login = |port: u16, binding: ChannelBinding| {
        rt.block_on(async {
            match spec(port, binding).connect("dn1").await {
                Ok(client) => client
                    .query_one("SELECT 1", &[])
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.message),
            }
        })
    };
    // Against the node itself: bound, whatever the mode asks beyond.
    login(c.port("dn1"), ChannelBinding::Require).expect("require, straight to the node");
    login(c.port("dn1"), ChannelBinding::Prefer).expect("prefer, straight to the node");

    // A relay with the node's own certificate and key changes nothing the
    // binding covers: `prefer` binds (SCRAM-SHA-256-PLUS, as the relay saw)
    // and gets in.
    let same = rt.block_on(Relay::start(node, &real, false));
    login(same.addr.port(), ChannelBinding::Prefer)
        .expect("prefer, through a relay with the node's certificate");
    assert_eq!(same.chosen(), vec![PLUS.to_string()]);

    // A relay with a certificate of its own: the binding does not match
    // what the node presented, so the node refuses, with `require` and
    // with `prefer` alike.
    let mitm = rt.block_on(Relay::start(node, &Cert::new(), false));
    for binding in [ChannelBinding::Require, ChannelBinding::Prefer] {
        let e = login(mitm.addr.port(), binding).expect_err("a relay passed the login on");
        assert!(e.contains("channel binding"), "{binding:?}: {e}");
    }
    assert_eq!(mitm.chosen(), vec![PLUS.to_string(), PLUS.to_string()]);
    // `disable` binds nothing, as libpq: the relay gets the session.
    login(mitm.addr.port(), ChannelBinding::Disable).expect("disable passes through");

    // A relay that takes SCRAM-SHA-256-PLUS out of the offer: `require`
    // refuses before sending anything of the password; `prefer` falls back
    // to unbound SCRAM but says it could have bound (the `y` flag of RFC
    // 5802), and the node, which does offer binding, sees the downgrade
    // and refuses.
    let stripping = rt.block_on(Relay::start(node, &Cert::new(), true));
    let e = login(stripping.addr.port(), ChannelBinding::Require)
        .expect_err("require through a stripping relay");
    assert!(e.contains("channel binding"), "{e}");
    assert!(stripping.chosen().is_empty(), "{:?}", stripping.chosen());
    let e = login(stripping.addr.port(), ChannelBinding::Prefer)
        .expect_err("prefer through a stripping relay");
    assert!(e.contains("channel binding"), "{e}");
    assert_eq!(stripping.chosen(), vec!["SCRAM-SHA-256".to_string()]);

    // Through Terraform: the provider block's `channel_binding`.
    let tf = Terraform::new();
    let config = |port: u16, binding: &str| {
        format!(
            "provider \"timescaledb\" {{\n  host = \"127.0.0.1\"\n  port = {port}\n  username = \"binder\"\n  password = \"binder pass\"\n  sslmode = \"require\"\n  channel_binding = \"{binding}\"\n  fanout = \"direct\"\n  data_nodes = {{}}\n}}\nresource \"timescaledb_hba_rule\" \"r\" {{\n  node = \"access\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"app\"]\n  address = \"10.0.0.1\"\n  method = \"scram-sha-256\"\n}}\n"
        )
    };
    tf.config(&config(mitm.addr.port(), "require"));
    tf.init();
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(
        !run.ok && run.flat().contains("channel binding"),
        "{}",
        run.all()
    );
    tf.config(&config(same.addr.port(), "require"));
    tf.must(&["plan", "-input=false", "-no-color"]);
    tf.config(&config(same.addr.port(), "required"));
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(
        !run.ok && run.flat().contains("channel_binding"),
        "{}",
        run.all()
    );
    tf.config(
        &config(same.addr.port(), "require")
            .replace("sslmode = \"require\"", "sslmode = \"disable\""),
    );
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(
        !run.ok && run.flat().contains("Channel binding without TLS"),
        "{}",
        run.all()
    );
    drop(rt);
}
