//! `timescaledb_user_certificate`: a short-lived client certificate and key
//! for a role, made for one Terraform run and kept nowhere: signed in the
//! provider's memory with the CA key read from the node that keeps it.

use crate::diag::{AttrPath, Diagnostics};
use crate::log;
use crate::model::Planned;
use crate::pki::{self, Lifetime, Usage};
use crate::resources::certs::{ca_from_node, key_algorithm_attr};
use crate::resources::Ctx;
use crate::secret::Secret;
use crate::value::Value;

use super::{EphemeralResource, Opened, Renewed};

/// Minutes a certificate is valid when the configuration gives none.
const DEFAULT_VALIDITY_MINUTES: i64 = 15;

crate::model! {
    /// A short-lived user certificate, as configured and as opened.
    pub struct Model plan CertificatePlan {
        ROLE => role: String = required("Role the certificate authenticates: its common name, which PostgreSQL's `cert` method matches against the user name."),
        VALIDITY_MINUTES => validity_minutes: i64 = optional("Minutes the certificate is valid, from 1 to 1440.").default(Value::int(DEFAULT_VALIDITY_MINUTES)),
        KEY_ALGORITHM => key_algorithm: String = key_algorithm_attr(),
        CA_CERT_PEM => ca_cert_pem: String = required("The CA certificate (PEM) that signs, e.g. `timescaledb_certificate_authority.<name>.cert_pem`."),
        CA_KEY_NODE => ca_key_node: String = required("Node that keeps the CA's private key (`timescaledb_certificate_authority.<name>.key_node`): the key is read there, through SQL, for the signature, and goes nowhere else."),
        CERT_PEM => cert_pem: Option<String> = computed("The certificate, PEM, for libpq's `sslcert` or a `clientcert` block."),
        PRIVATE_KEY_PEM => private_key_pem: Option<Secret> = computed("The certificate's private key, PEM (PKCS#8), for libpq's `sslkey` or a `clientcert` block.").sensitive(),
        NOT_AFTER => not_after: Option<String> = computed("Expiry of the certificate, RFC 3339."),
        FINGERPRINT => fingerprint("fingerprint_sha256"): Option<String> = computed("SHA-256 fingerprint of the certificate (DER), lower-case hex."),
    }
}

const DESCRIPTION: &str = "Issues a short-lived client certificate and key for a role, for one Terraform run (Terraform 1.10 or \
     later): signed with the CA key read, through SQL, from the node that keeps it (`timescaledb_certificate_authority` \
     with `key_node`), valid for minutes, and never in a plan or the state. Use it where a run must log in as a role \
     with certificate authentication: another provider's configuration, this provider's `clientcert` block (an aliased \
     provider that acts as the role), or a provisioner that runs `psql`. Nothing is written to any node; the \
     certificate simply expires.";

pub struct UserCertificate;

/// What Terraform hands back to renew and close: which certificate it was.
#[derive(serde::Serialize, serde::Deserialize)]
struct Private {
    fingerprint: String,
    not_after: String,
}

#[tonic::async_trait]
impl EphemeralResource for UserCertificate {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_user_certificate";
    const DESCRIPTION: &'static str = DESCRIPTION;

    fn validate(&self, config: &CertificatePlan) -> Diagnostics {
        let mut d = Diagnostics::new();
        if let Some(r) = config.role.as_str() {
            if r.is_empty() || r.contains('\0') {
                d.push_error(
                    Some(AttrPath::attr(ROLE)),
                    "Invalid role name",
                    "A role name is not empty and holds no NUL character.",
                );
            }
        }
        if let Planned::Known(m) = config.validity_minutes {
            if !(1..=1440).contains(&m) {
                d.push_error(
                    Some(AttrPath::attr(VALIDITY_MINUTES)),
                    "Invalid validity",
                    format!("{m} minutes is out of range: use 1 to 1440 (a day)."),
                );
            }
        }
        d
    }

    async fn open(&self, ctx: &Ctx, mut m: Model) -> Result<Opened<Model>, Diagnostics> {
        ctx.check_cancelled()?;
        let ca = ca_from_node(
            ctx,
            &m.ca_cert_pem,
            &m.ca_key_node,
            CA_CERT_PEM,
            CA_KEY_NODE,
        )
        .await?;
        let issued = ca
            .issue(
                &m.role,
                &Usage::Client,
                &m.key_algorithm,
                Lifetime::Minutes(m.validity_minutes),
            )
            .map_err(|msg| Diagnostics::error("Could not issue the certificate", msg))?;
        let info = pki::inspect(&issued.cert_pem)
            .map_err(|msg| Diagnostics::error("Could not read the new certificate", msg))?;
        let private = Private {
            fingerprint: info.fingerprint_sha256.clone(),
            not_after: pki::rfc3339(info.not_after),
        };
        log::info(
            "short-lived certificate issued",
            &[("role", &m.role), ("not_after", &private.not_after)],
        );
        m.cert_pem = Some(issued.cert_pem);
        m.private_key_pem = Some(issued.key_pem);
        m.not_after = Some(private.not_after.clone());
        m.fingerprint = Some(private.fingerprint.clone());
        Ok(Opened {
            result: m,
            // Short-lived by design: it is not renewed, it expires.
            renew_at: None,
            private: serde_json::to_vec(&private).unwrap_or_default(),
        })
    }

    /// Never asked for (`open` sets no renewal time); a certificate is not
    /// extended, so a renewal changes nothing and says so in the log.
    async fn renew(&self, _ctx: &Ctx, private: &[u8]) -> Result<Renewed, Diagnostics> {
        let p = parse(private)?;
        log::info(
            "short-lived certificate not renewed: it expires as issued",
            &[("fingerprint", &p.fingerprint), ("not_after", &p.not_after)],
        );
        Ok(Renewed {
            renew_at: None,
            private: private.to_vec(),
        })
    }

    /// Nothing was made on any node, so nothing is taken back: the
    /// certificate and its key lived in Terraform's memory for this run and
    /// expire on their own.
    async fn close(&self, _ctx: &Ctx, private: &[u8]) -> Result<(), Diagnostics> {
        let p = parse(private)?;
        log::info(
            "short-lived certificate closed",
            &[("fingerprint", &p.fingerprint), ("not_after", &p.not_after)],
        );
        Ok(())
    }
}

fn parse(private: &[u8]) -> Result<Private, Diagnostics> {
    serde_json::from_slice(private).map_err(|_| {
        Diagnostics::error(
            "Unreadable private data",
            "Terraform handed back private data this provider did not write for a user certificate.",
        )
    })
}
