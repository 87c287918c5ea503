//! Keys and certificates for the certificate set-up of a cluster: a root CA,
//! server certificates for nodes, client certificates for roles. Pure: no
//! I/O, and private keys only ever in [`Secret`]s.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, RsaKeySize, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::secret::Secret;

/// Key algorithms a certificate may use; PostgreSQL's OpenSSL accepts all.
pub const KEY_ALGORITHMS: &[&str] = &[
    "ecdsa_p256",
    "ecdsa_p384",
    "rsa2048",
    "rsa3072",
    "rsa4096",
    "ed25519",
];

/// Keys a subject may set.
pub const SUBJECT_KEYS: &[&str] = &[
    "common_name",
    "organization",
    "organizational_unit",
    "country",
    "province",
    "locality",
];

/// Backdating of `not_before`, for nodes whose clocks run a little behind.
const BACKDATE: Duration = Duration::minutes(5);

/// A certificate and its key, as issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-256 of the DER encoding, lower-case hex.
    pub fingerprint_sha256: String,
    pub common_name: Option<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The raw subject public key, to match keys against certificates.
    pub public_key: Vec<u8>,
}

fn generate_key(algorithm: &str) -> Result<KeyPair, String> {
    let r = match algorithm {
        "ecdsa_p256" => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        "ecdsa_p384" => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        "ed25519" => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        "rsa2048" => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        "rsa3072" => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        "rsa4096" => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
        other => return Err(format!("unknown key algorithm {other:?}")),
    };
    r.map_err(|e| format!("generating a {algorithm} key failed: {e}"))
}

/// How long a certificate is valid from now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// 1 to 36500 days: node certificates and CAs.
    Days(i64),
    /// 1 to 1440 minutes: short-lived client certificates.
    Minutes(i64),
}

impl Lifetime {
    fn duration(self) -> Result<Duration, String> {
        match self {
            Lifetime::Days(d) if (1..=36_500).contains(&d) => Ok(Duration::days(d)),
            Lifetime::Days(d) => Err(format!(
                "a validity of {d} days is out of range (1 to 36500)"
            )),
            Lifetime::Minutes(m) if (1..=1440).contains(&m) => Ok(Duration::minutes(m)),
            Lifetime::Minutes(m) => Err(format!(
                "a validity of {m} minutes is out of range (1 to 1440)"
            )),
        }
    }
}

fn validity(params: &mut CertificateParams, lifetime: Lifetime) -> Result<(), String> {
    let lifetime = lifetime.duration()?;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

/// A distinguished name from `subject` keys (see [`SUBJECT_KEYS`]).
pub fn distinguished_name<'a, I: IntoIterator<Item = (&'a str, &'a str)>>(
    subject: I,
) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for (k, v) in subject {
        let ty = match k {
            "common_name" => DnType::CommonName,
            "organization" => DnType::OrganizationName,
            "organizational_unit" => DnType::OrganizationalUnitName,
            "country" => DnType::CountryName,
            "province" => DnType::StateOrProvinceName,
            "locality" => DnType::LocalityName,
            other => return Err(format!("unknown subject key {other:?}")),
        };
        dn.push(ty, v);
    }
    Ok(dn)
}

/// A self-signed root CA.
pub fn new_ca(dn: DistinguishedName, algorithm: &str, days: i64) -> Result<Issued, String> {
    let key = generate_key(algorithm)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, Lifetime::Days(days))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("signing the CA certificate failed: {e}"))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key.serialize_pem()),
    })
}

/// What a leaf certificate is for.
#[derive(Clone, Debug)]
pub enum Usage {
    /// A node's server certificate with these subject alternative names.
    Server {
        dns_names: Vec<String>,
        ip_addresses: Vec<std::net::IpAddr>,
    },
    /// A client certificate; PostgreSQL maps its common name to the role.
    Client,
}

/// A CA given by the user: its certificate and key, checked to belong
/// together.
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
}

impl Ca {
    pub fn load(cert_pem: &str, key_pem: &Secret) -> Result<Ca, (CaField, String)> {
        let info = inspect(cert_pem).map_err(|e| (CaField::Cert, e))?;
        let key = KeyPair::from_pem(key_pem.expose()).map_err(|_| {
            (
                CaField::Key,
                "not a PEM private key this provider can read (PKCS#8, or PKCS#1/SEC1 for RSA/EC keys)".to_string(),
            )
        })?;
        if key.public_key_raw() != info.public_key.as_slice() {
            return Err((
                CaField::Key,
                "the private key does not belong to the CA certificate".into(),
            ));
        }
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key,
        })
    }

    /// Issues a certificate for `common_name`.
    pub fn issue(
        &self,
        common_name: &str,
        usage: &Usage,
        algorithm: &str,
        lifetime: Lifetime,
    ) -> Result<Issued, String> {
        self.sign(
            common_name,
            usage,
            generate_key(algorithm)?,
            algorithm,
            lifetime,
        )
    }

    /// Issues a certificate for `common_name` with a key that exists
    /// already (the key comes back unchanged in [`Issued::key_pem`]).
    pub fn issue_for_key(
        &self,
        common_name: &str,
        usage: &Usage,
        key_pem: &Secret,
        lifetime: Lifetime,
    ) -> Result<Issued, String> {
        let algorithm =
            key_algorithm(key_pem).ok_or("the key's algorithm is not one the provider uses")?;
        let key = KeyPair::from_pem(key_pem.expose())
            .map_err(|_| "the key cannot be read".to_string())?;
        self.sign(common_name, usage, key, algorithm, lifetime)
    }

    fn sign(
        &self,
        common_name: &str,
        usage: &Usage,
        key: KeyPair,
        algorithm: &str,
        lifetime: Lifetime,
    ) -> Result<Issued, String> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if algorithm.starts_with("rsa") {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        match usage {
            Usage::Server {
                dns_names,
                ip_addresses,
            } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                for d in dns_names {
                    params.subject_alt_names.push(SanType::DnsName(
                        d.clone()
                            .try_into()
                            .map_err(|_| format!("{d:?} is not a DNS name"))?,
                    ));
                }
                for ip in ip_addresses {
                    params.subject_alt_names.push(SanType::IpAddress(*ip));
                }
            }
            Usage::Client => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        validity(&mut params, lifetime)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|e| format!("the CA certificate cannot issue certificates: {e}"))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| format!("signing the certificate failed: {e}"))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: Secret::new(key.serialize_pem()),
        })
    }
}

impl Ca {
    /// A certificate revocation list of this CA naming `serials`, valid
    /// from now (backdated as certificates are) for `days`, numbered by the
    /// time it is made so that a later list has a larger number.
    pub fn revocation_list(
        &self,
        serials: &[Vec<u8>],
        days: i64,
    ) -> Result<RevocationList, String> {
        let lifetime = Lifetime::Days(days).duration()?;
        let now = OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - BACKDATE,
            next_update: now + lifetime,
            crl_number: SerialNumber::from((now.unix_timestamp_nanos() / 1000) as u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s),
                    revocation_time: now - BACKDATE,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
            .map_err(|e| format!("the CA certificate cannot sign a revocation list: {e}"))?;
        let crl = params
            .signed_by(&issuer)
            .map_err(|e| format!("signing the revocation list failed: {e}"))?;
        Ok(RevocationList {
            pem: crl
                .pem()
                .map_err(|e| format!("encoding the revocation list failed: {e}"))?,
            next_update: now + lifetime,
        })
    }
}

/// A signed certificate revocation list.
#[derive(Clone, Debug)]
pub struct RevocationList {
    pub pem: String,
    pub next_update: OffsetDateTime,
}

/// A certificate's serial number (big-endian bytes).
pub fn serial(pem: &str) -> Result<Vec<u8>, String> {
    let der = first_der(pem)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(cert.raw_serial().to_vec())
}

/// Which CA input is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaField {
    Cert,
    Key,
}

fn first_der(pem: &str) -> Result<Vec<u8>, String> {
    let mut reader = pem.as_bytes();
    let first = rustls_pemfile::certs(&mut reader).next();
    match first {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(format!("not a PEM certificate: {e}")),
        None => Err("no PEM certificate found".into()),
    }
}

/// Reads the first certificate of a PEM text.
pub fn inspect(pem: &str) -> Result<CertInfo, String> {
    let der = first_der(pem)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                    GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            ip_addresses.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(CertInfo {
        fingerprint_sha256: fingerprint(&der),
        common_name,
        dns_names,
        ip_addresses,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

impl CertInfo {
    /// SHA-256 of the certificate's raw subject public key, lower-case hex:
    /// names the key pair without holding the private key.
    pub fn public_key_fingerprint(&self) -> String {
        fingerprint(&self.public_key)
    }
}

/// SHA-256 of DER bytes, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The subject of a certificate as `subject` keys ([`SUBJECT_KEYS`]); an
/// error names a field those keys cannot say, or one given twice.
pub fn subject(pem: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    use x509_parser::oid_registry as oids;
    let der = first_der(pem)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let names = [
        (oids::OID_X509_COMMON_NAME, "common_name"),
        (oids::OID_X509_ORGANIZATION_NAME, "organization"),
        (oids::OID_X509_ORGANIZATIONAL_UNIT, "organizational_unit"),
        (oids::OID_X509_COUNTRY_NAME, "country"),
        (oids::OID_X509_STATE_OR_PROVINCE_NAME, "province"),
        (oids::OID_X509_LOCALITY_NAME, "locality"),
    ];
    let mut out = std::collections::BTreeMap::new();
    for attr in cert.subject().iter_attributes() {
        let oid = attr.attr_type();
        let Some((_, key)) = names.iter().find(|(o, _)| o == oid) else {
            return Err(format!(
                "its subject has a field ({oid}) that `subject` cannot hold ({})",
                SUBJECT_KEYS.join(", ")
            ));
        };
        let value = attr
            .as_str()
            .map_err(|_| format!("its subject's {key} is not a text string"))?;
        if out.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("its subject has {key} more than once"));
        }
    }
    Ok(out)
}

/// The common name of a certificate's issuer.
pub fn issuer_name(pem: &str) -> Option<String> {
    let der = first_der(pem).ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    let cn = cert.issuer().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_string())
}

/// The PEM certificates in a text (a CA file, a chain), each with its
/// trailing newline, in their order.
pub fn pem_certificates(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    text.split_inclusive(END)
        .filter_map(|b| b.find("-----BEGIN CERTIFICATE-----").map(|i| &b[i..]))
        .filter(|b| b.ends_with(END))
        .map(|b| format!("{b}\n"))
        .collect()
}

/// A fingerprint as people write it (`AB:CD:...` from openssl, any case)
/// in the form the provider keeps: lower-case hex without colons.
pub fn normalize_fingerprint(s: &str) -> String {
    s.trim().replace(':', "").to_ascii_lowercase()
}

/// Whether `s` is a SHA-256 fingerprint as [`fingerprint`] writes it (64
/// lower-case hex digits): what a state holds is checked before it names
/// anything on a node.
pub fn is_fingerprint(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether a certificate is made for a server to present (extended key
/// usage `serverAuth`), as node certificates of `kind = "server"` are.
pub fn serves_tls(pem: &str) -> bool {
    let Ok(der) = first_der(pem) else {
        return false;
    };
    let Ok((_, cert)) = X509Certificate::from_der(&der) else {
        return false;
    };
    matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.server_auth)
}

/// Whether `cert_pem` was signed by the CA in `ca_pem`.
pub fn issued_by(cert_pem: &str, ca_pem: &str) -> bool {
    let (Ok(der), Ok(ca_der)) = (first_der(cert_pem), first_der(ca_pem)) else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        X509Certificate::from_der(&der),
        X509Certificate::from_der(&ca_der),
    ) else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// Whether `key_pem` is the private key of the certificate.
pub fn key_matches(info: &CertInfo, key_pem: &Secret) -> bool {
    KeyPair::from_pem(key_pem.expose())
        .map(|k| k.public_key_raw() == info.public_key.as_slice())
        .unwrap_or(false)
}

/// The key algorithm of a PEM private key, as [`KEY_ALGORITHMS`] names it.
pub fn key_algorithm(key_pem: &Secret) -> Option<&'static str> {
    let key = KeyPair::from_pem(key_pem.expose()).ok()?;
    let alg = key.algorithm();
    if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Some("ecdsa_p256")
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        Some("ecdsa_p384")
    } else if alg == &rcgen::PKCS_ED25519 {
        Some("ed25519")
    } else {
        rsa_by_key_length(key.public_key_raw().len())
    }
}

/// An RSA key's algorithm name from the length of its DER public key: the
/// modulus plus a few bytes of framing (270, 398 and 526 bytes).
fn rsa_by_key_length(n: usize) -> Option<&'static str> {
    match n {
        n if n > 500 => Some("rsa4096"),
        n if n > 380 => Some("rsa3072"),
        n if n > 250 => Some("rsa2048"),
        _ => None,
    }
}

/// Whether a certificate expiring at `not_after` should be renewed now.
pub fn in_renewal_window(not_after: OffsetDateTime, early_renewal_days: i64) -> bool {
    OffsetDateTime::now_utc() >= not_after - Duration::days(early_renewal_days)
}

/// RFC 3339 text of a time.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Parses RFC 3339 text.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificates_of_a_bundle_come_out_whole_and_in_order() {
        let ca = |cn: &str| {
            new_ca(
                distinguished_name([("common_name", cn)]).unwrap(),
                "ed25519",
                30,
            )
            .unwrap()
            .cert_pem
        };
        let (a, b) = (ca("a"), ca("b"));
        let text = format!(
            "# trusted\n{}\nBag Attributes: x\n{}  \n",
            a.trim(),
            b.trim()
        );
        let blocks = pem_certificates(&text);
        assert_eq!(
            blocks,
            vec![format!("{}\n", a.trim()), format!("{}\n", b.trim())]
        );
        assert_eq!(
            inspect(&blocks[1]).unwrap().common_name.as_deref(),
            Some("b")
        );
        assert!(pem_certificates("no certificate here").is_empty());
    }

    #[test]
    fn a_subject_reads_back_as_the_keys_that_made_it() {
        let subject: std::collections::BTreeMap<String, String> = SUBJECT_KEYS
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    if *k == "country" {
                        "NL".into()
                    } else {
                        format!("the {k}")
                    },
                )
            })
            .collect();
        let dn = distinguished_name(subject.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        let ca = new_ca(dn, "ecdsa_p256", 30).unwrap();
        assert_eq!(super::subject(&ca.cert_pem).unwrap(), subject);
        let dn = distinguished_name([("common_name", "only a name")]).unwrap();
        let ca = new_ca(dn, "ed25519", 30).unwrap();
        assert_eq!(
            super::subject(&ca.cert_pem)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec![("common_name".to_string(), "only a name".to_string())]
        );
        let fp = inspect(&ca.cert_pem).unwrap().fingerprint_sha256;
        let openssl: Vec<String> = fp
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        assert_eq!(normalize_fingerprint(&openssl.join(":")), fp);
    }

    #[test]
    fn a_ca_issues_server_and_client_certificates() {
        for alg in KEY_ALGORITHMS
            .iter()
            .filter(|a| **a != "rsa4096" && **a != "rsa3072")
        {
            let dn =
                distinguished_name([("common_name", "Test CA"), ("organization", "Ops")]).unwrap();
            let ca = new_ca(dn, alg, 30).unwrap();
            let ca_info = inspect(&ca.cert_pem).unwrap();
            assert_eq!(ca_info.common_name.as_deref(), Some("Test CA"));
            let loaded = Ca::load(&ca.cert_pem, &ca.key_pem).unwrap();
            let server = loaded
                .issue(
                    "dn1.example",
                    &Usage::Server {
                        dns_names: vec!["localhost".into()],
                        ip_addresses: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
                    },
                    alg,
                    Lifetime::Days(10),
                )
                .unwrap();
            let info = inspect(&server.cert_pem).unwrap();
            assert_eq!(info.common_name.as_deref(), Some("dn1.example"));
            assert_eq!(info.dns_names, ["localhost"]);
            assert_eq!(info.ip_addresses, ["127.0.0.1", "::1"]);
            assert!(issued_by(&server.cert_pem, &ca.cert_pem), "{alg}");
            assert!(serves_tls(&server.cert_pem));
            assert!(!serves_tls(&ca.cert_pem));
            let key_print = info.public_key_fingerprint();
            assert_eq!(key_print.len(), 64);
            assert!(key_print.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_ne!(key_print, ca_info.public_key_fingerprint());
            assert_eq!(info.fingerprint_sha256.len(), 64);
            assert_ne!(info.fingerprint_sha256, ca_info.fingerprint_sha256);
            assert_ne!(info.fingerprint_sha256, key_print);
            assert!(key_matches(&info, &server.key_pem));
            assert!(!key_matches(&info, &ca.key_pem));
            assert_eq!(key_algorithm(&server.key_pem), Some(*alg));
            assert!(!in_renewal_window(info.not_after, 5));
            assert!(in_renewal_window(info.not_after, 11));
            let client = loaded
                .issue("Test \"Rôle\"", &Usage::Client, alg, Lifetime::Days(10))
                .unwrap();
            assert_eq!(
                inspect(&client.cert_pem).unwrap().common_name.as_deref(),
                Some("Test \"Rôle\"")
            );
            assert!(!serves_tls(&client.cert_pem));
            let other = new_ca(
                distinguished_name([("common_name", "Other")]).unwrap(),
                alg,
                30,
            )
            .unwrap();
            assert!(!issued_by(&server.cert_pem, &other.cert_pem));
            // Another CA of the very same name did not sign it either.
            let namesake = new_ca(
                distinguished_name([("common_name", "Test CA"), ("organization", "Ops")]).unwrap(),
                alg,
                30,
            )
            .unwrap();
            assert!(!issued_by(&server.cert_pem, &namesake.cert_pem), "{alg}");
        }
    }

    #[test]
    fn certificates_are_valid_from_a_little_before_now_with_random_positive_serials() {
        let mut first_bytes = std::collections::BTreeSet::new();
        for _ in 0..8 {
            let dn = distinguished_name([("common_name", "CA")]).unwrap();
            let ca = new_ca(dn, "ecdsa_p256", 1).unwrap();
            let info = inspect(&ca.cert_pem).unwrap();
            let now = OffsetDateTime::now_utc();
            assert!(
                info.not_before <= now && info.not_before >= now - BACKDATE - Duration::minutes(1)
            );
            let (_, pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes()).unwrap();
            let cert = pem.parse_x509().unwrap();
            // The 16 random bytes, as drawn (DER drops leading zero bytes
            // and adds one before a high bit).
            let raw: Vec<u8> = cert
                .tbs_certificate
                .raw_serial()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect();
            assert!(raw.len() <= 16, "{raw:?}");
            let first = if raw.len() == 16 { raw[0] } else { 0 };
            assert!(first < 0x80, "serial {raw:02x?} is not positive as drawn");
            first_bytes.insert(first);
        }
        assert!(
            first_bytes.len() > 1,
            "serials all begin with {first_bytes:?}"
        );
    }

    #[test]
    fn key_algorithms_are_told_apart_by_key_size() {
        for alg in ["rsa2048", "ecdsa_p384", "ed25519"] {
            let key = Secret::new(generate_key(alg).unwrap().serialize_pem());
            assert_eq!(key_algorithm(&key), Some(alg));
        }
        // Larger RSA keys by the length of their public key (making them
        // takes seconds).
        for (n, alg) in [
            (270, Some("rsa2048")),
            (398, Some("rsa3072")),
            (526, Some("rsa4096")),
        ] {
            assert_eq!(rsa_by_key_length(n), alg);
        }
        for (n, alg) in [
            (250, None),
            (251, Some("rsa2048")),
            (380, Some("rsa2048")),
            (381, Some("rsa3072")),
            (500, Some("rsa3072")),
            (501, Some("rsa4096")),
        ] {
            assert_eq!(rsa_by_key_length(n), alg, "{n}");
        }
        // A key the provider does not make is named by none of them.
        let p521 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
        assert_eq!(key_algorithm(&Secret::new(p521.serialize_pem())), None);
        assert_eq!(key_algorithm(&Secret::new("not a key")), None);
    }

    #[test]
    fn times_round_trip_through_rfc3339() {
        let t = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        assert_eq!(rfc3339(t), "2030-03-17T17:46:40Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("2030-03-17"), None);
    }

    #[test]
    fn mismatched_or_broken_ca_inputs_name_the_field() {
        let a = new_ca(
            distinguished_name([("common_name", "A")]).unwrap(),
            "ecdsa_p256",
            1,
        )
        .unwrap();
        let b = new_ca(
            distinguished_name([("common_name", "B")]).unwrap(),
            "ecdsa_p256",
            1,
        )
        .unwrap();
        assert_eq!(
            Ca::load(&a.cert_pem, &b.key_pem).err().unwrap().0,
            CaField::Key
        );
        assert_eq!(
            Ca::load("garbage", &a.key_pem).err().unwrap().0,
            CaField::Cert
        );
        assert_eq!(
            Ca::load(
                &a.cert_pem,
                &Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            )
            .err()
            .unwrap()
            .0,
            CaField::Key
        );
        assert!(
            !format!("{:?}", a).contains("PRIVATE KEY"),
            "keys never print"
        );
    }
}
