//! TLS for connections to nodes, with libpq's `sslmode` semantics, on
//! rustls with the aws-lc-rs crypto provider.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use super::conn::SslMode;

pub fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads PEM certificates from PEM text or a file path.
pub fn load_certs(pem_or_path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = pem_text(pem_or_path, Shown::Path)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_bytes()).collect();
    let certs = certs.map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// Reads a private key from PEM text or a file path. No message ever
/// holds the value: whatever its shape, it may be the key itself.
pub fn load_key(pem_or_path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = pem_text(pem_or_path, Shown::Nothing)?;
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| format!("invalid PEM private key: {e}"))?
        .ok_or_else(|| "no PEM private key found".to_string())
}

/// The text of a secret given as text or as a file path (the rules of
/// [`load_key`]); no message holds the value.
pub fn secret_text(value: &str) -> Result<String, String> {
    pem_text(value, Shown::Nothing)
}

/// What of a value a message may show.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// The value, when it is taken as a path (certificates: public).
    Path,
    /// Nothing of it (keys).
    Nothing,
}

/// The PEM text a value holds, or the content of the file it names. A
/// value is PEM text when a `-----BEGIN` line is anywhere in it (after a
/// byte-order mark, or an openssl preamble such as `Bag Attributes`), and
/// text too when it spans lines or is longer than any path: only a single
/// short line is ever read as a path.
fn pem_text(value: &str, shown: Shown) -> Result<String, String> {
    const NOT_SHOWN: &str = "the value is not shown: it may be the key itself";
    let value = value.trim_start_matches('\u{feff}');
    if value.contains("-----BEGIN") {
        return Ok(value.to_string());
    }
    let path_like =
        !value.contains(['\n', '\r', '\0']) && value.len() <= 4096 && !value.trim().is_empty();
    match (path_like, shown) {
        (false, Shown::Path) => Err("neither PEM text (no `-----BEGIN` line) nor a file path".into()),
        (false, Shown::Nothing) => Err(format!(
            "neither PEM text (no `-----BEGIN` line) nor a file path ({NOT_SHOWN})"
        )),
        (true, Shown::Path) => {
            std::fs::read_to_string(value).map_err(|e| format!("cannot read {value}: {e}"))
        }
        (true, Shown::Nothing) => std::fs::read_to_string(value).map_err(|e| {
            format!(
                "not PEM text (no `-----BEGIN` line), and no file of that name can be read ({}; {NOT_SHOWN})",
                e.kind()
            )
        }),
    }
}

/// The handshake-signature methods of a rustls verifier: checked with the
/// algorithms of a crypto provider (`provider: self.field`), or passed on
/// to an inner verifier (`inner: self.field`).
#[macro_export]
macro_rules! handshake_signatures {
    (provider: $self:ident . $field:tt) => {
        $crate::handshake_signatures!(@ $self,
            |m, c, d| rustls::crypto::verify_tls12_signature(m, c, d, &$self.$field.signature_verification_algorithms),
            |m, c, d| rustls::crypto::verify_tls13_signature(m, c, d, &$self.$field.signature_verification_algorithms),
            $self.$field.signature_verification_algorithms.supported_schemes());
    };
    (inner: $self:ident . $field:tt) => {
        $crate::handshake_signatures!(@ $self,
            |m, c, d| $self.$field.verify_tls12_signature(m, c, d),
            |m, c, d| $self.$field.verify_tls13_signature(m, c, d),
            $self.$field.supported_verify_schemes());
    };
    (@ $self:ident, $tls12:expr, $tls13:expr, $schemes:expr) => {
        fn verify_tls12_signature(
            &$self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            ($tls12)(m, c, d)
        }
        fn verify_tls13_signature(
            &$self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            ($tls13)(m, c, d)
        }
        fn supported_verify_schemes(&$self) -> Vec<rustls::SignatureScheme> {
            $schemes
        }
    };
}

/// Accepts any server certificate (sslmode `prefer`/`require` without a
/// root certificate, as libpq does) but still checks handshake signatures.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    crate::handshake_signatures!(provider: self.0);
}

/// Verifies the chain but not the host name (sslmode `verify-ca`).
#[derive(Debug)]
struct ChainOnly(Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        ee: &CertificateDer<'_>,
        im: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(ee, im, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    crate::handshake_signatures!(inner: self.0);
}

/// Builds the rustls client configuration for a mode.
pub fn client_config(
    mode: SslMode,
    root_cert: Option<&str>,
    client_cert: Option<(&str, &str)>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = crypto();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err("sslmode verify-ca and verify-full need `sslrootcert`".into())
        }
        (SslMode::Prefer | SslMode::Require | SslMode::Disable, None) => {
            Arc::new(AnyServerCert(provider.clone()))
        }
        (mode, Some(root)) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(root)? {
                roots.add(c).map_err(|e| format!("sslrootcert: {e}"))?;
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| e.to_string())?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                // libpq: with a root certificate, `require` verifies like `verify-ca`.
                Arc::new(ChainOnly(webpki))
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| format!("client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// tokio-postgres glue for a rustls client configuration.
#[derive(Clone)]
pub struct MakeRustls(pub Arc<ClientConfig>);

pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> MakeTlsConnect<S> for MakeRustls {
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> TlsConnect<S> for RustlsConnect {
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { connector.connect(self.name, stream).await.map(RustlsStream) })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    /// `tls-server-end-point` (RFC 5929): a hash of the certificate the
    /// server presented in this handshake, which the server compares with
    /// its own. A relay that terminates TLS presents another certificate,
    /// so a SCRAM exchange bound to it fails at the real server.
    fn channel_binding(&self) -> ChannelBinding {
        match self
            .0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            Some(cert) => ChannelBinding::tls_server_end_point(end_point_hash(cert)),
            None => ChannelBinding::none(),
        }
    }
}

/// The certificate hashed with the hash of its signature algorithm, SHA-256
/// when that is MD5 or SHA-1 (RFC 5929, section 4.1) or not a hash of the
/// SHA-2 family PostgreSQL's server recognises.
pub fn end_point_hash(der: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    use x509_parser::oid_registry as oids;
    let alg = x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.signature_algorithm.algorithm.clone());
    let is = |o: &x509_parser::der_parser::oid::Oid| alg.as_ref() == Some(o);
    if is(&oids::OID_PKCS1_SHA384WITHRSA) || is(&oids::OID_SIG_ECDSA_WITH_SHA384) {
        sha2::Sha384::digest(der).to_vec()
    } else if is(&oids::OID_PKCS1_SHA512WITHRSA) || is(&oids::OID_SIG_ECDSA_WITH_SHA512) {
        sha2::Sha512::digest(der).to_vec()
    } else {
        sha2::Sha256::digest(der).to_vec()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_BODY: &str = "MC4CAQAwBQYDK2VwBCIEIOcyoJ3TzWv0bMrS8rt3pFVOeOs9v2aJCz3z1mW6HYkq";

    /// A key in every shape a user may paste, broken or not: no error says
    /// any part of it.
    #[test]
    fn no_message_shows_a_key_whatever_its_shape() {
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n");
        let shapes = [
            format!("Bag Attributes\n    localKeyID: 01 02\n{pem}"),
            format!("\u{feff}{pem}"),
            KEY_BODY.to_string(),
            format!("{KEY_BODY}\n{KEY_BODY}"),
            pem.replace("-----BEGIN PRIVATE KEY-----", "----BEGIN PRIVATE KEY----"),
            pem.replace(KEY_BODY, &KEY_BODY[..40]),
            format!("{pem}\0"),
            KEY_BODY.repeat(100),
            pem.replace('\n', "\r\n").replace("BEGIN", "BEGlN"),
        ];
        for (i, shape) in shapes.iter().enumerate() {
            let msg = match load_key(shape) {
                Ok(_) => continue,
                Err(m) => m,
            };
            for part in [&KEY_BODY[..16], &KEY_BODY[20..36], "localKeyID"] {
                assert!(!msg.contains(part), "shape {i}: {msg}");
            }
            let cfg = client_config(SslMode::Require, None, Some(("/nonexistent.crt", shape)));
            if let Err(m) = cfg {
                assert!(!m.contains(&KEY_BODY[..16]), "shape {i}: {m}");
            }
        }
        // A preamble or a byte-order mark in front of a good key is read.
        assert!(load_key(&shapes[0]).is_ok());
        assert!(load_key(&shapes[1]).is_ok());
        // A path that cannot be read says why, without the path.
        let m = load_key("/nonexistent/client.key").unwrap_err();
        assert!(m.contains("not found") && !m.contains("client.key"), "{m}");
        // A certificate path is shown: certificates are public.
        let m = load_certs("/nonexistent/client.crt").unwrap_err();
        assert!(m.contains("/nonexistent/client.crt"), "{m}");
    }

    #[test]
    fn the_end_point_hash_follows_the_signature_algorithm() {
        use sha2::Digest;
        let ca = crate::pki::new_ca(
            crate::pki::distinguished_name([("common_name", "t")]).unwrap(),
            "ecdsa_p384",
            1,
        )
        .unwrap();
        let der = rustls_pemfile::certs(&mut ca.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(end_point_hash(&der), sha2::Sha384::digest(&der).to_vec());
        let ca = crate::pki::new_ca(
            crate::pki::distinguished_name([("common_name", "t")]).unwrap(),
            "ecdsa_p256",
            1,
        )
        .unwrap();
        let der = rustls_pemfile::certs(&mut ca.cert_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(end_point_hash(&der), sha2::Sha256::digest(&der).to_vec());
    }
}
