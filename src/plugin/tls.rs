//! AutoMTLS: the server certificate the plugin presents, and the check that
//! the client is exactly the Terraform process that started us.
//!
//! Terraform puts its client certificate (ECDSA P-521, signed with SHA-512)
//! in `PLUGIN_CLIENT_CERT` and trusts the server certificate we print in the
//! handshake line. The client must present exactly that certificate;
//! anything else, including no certificate, is refused. Verifying its
//! handshake signature needs P-521/SHA-512 support, which the aws-lc-rs
//! crypto provider has.

use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DistinguishedName as TlsName, ServerConfig};

use crate::node::tls::crypto;

/// A fresh self-signed server certificate and its key.
pub struct ServerIdentity {
    pub cert_der: CertificateDer<'static>,
    key_der: PrivateKeyDer<'static>,
}

impl ServerIdentity {
    pub fn generate() -> Result<ServerIdentity, String> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string()]).map_err(|e| e.to_string())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        dn.push(DnType::OrganizationName, "terraform-provider-timescaledb");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::days(1);
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        Ok(ServerIdentity {
            cert_der: cert.der().clone(),
            key_der: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// The handshake's sixth field: the certificate's DER in standard
    /// base64 without padding.
    pub fn handshake_field(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.cert_der.as_ref())
    }
}

/// Accepts exactly one client certificate.
#[derive(Debug)]
pub struct PinnedClientCert {
    der: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PinnedClientCert {
    pub fn from_pem(pem: &str) -> Result<PinnedClientCert, String> {
        let cert = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .ok_or("PLUGIN_CLIENT_CERT holds no PEM certificate")?
            .map_err(|e| format!("PLUGIN_CLIENT_CERT: {e}"))?;
        Ok(PinnedClientCert {
            der: cert.as_ref().to_vec(),
            provider: crypto(),
        })
    }
}

impl ClientCertVerifier for PinnedClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
    crate::handshake_signatures!(provider: self.provider);
}

/// TLS 1.2+ with ALPN `h2` (newer Terraform refuses a server without it).
pub fn server_config(
    identity: &ServerIdentity,
    client: PinnedClientCert,
) -> Result<Arc<ServerConfig>, String> {
    let mut cfg = ServerConfig::builder_with_provider(crypto())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(client))
        .with_single_cert(
            vec![identity.cert_der.clone()],
            identity.key_der.clone_key(),
        )
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}
