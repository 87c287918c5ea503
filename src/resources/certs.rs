//! What the two certificate resources share: the attributes of a
//! certificate's key and renewal, the checks of its days, the renewal
//! decision, and where a CA kept on a node has its key.

use std::sync::Arc;

use crate::diag::{AttrPath, Diagnostics};
use crate::model::Planned;
use crate::node::{CertPaths, Node};
use crate::pki;
use crate::schema::Attribute;
use crate::value::Value;

use super::Ctx;

/// The key algorithm when the configuration gives none.
pub const DEFAULT_KEY_ALGORITHM: &str = "ecdsa_p256";
/// The renewal window when the configuration gives none.
pub const DEFAULT_EARLY_RENEWAL_DAYS: i64 = 30;

/// The attribute names both resources share.
pub const VALIDITY_DAYS: &str = "validity_days";
pub const EARLY_RENEWAL_DAYS: &str = "early_renewal_days";
pub const READY_FOR_RENEWAL: &str = "ready_for_renewal";

pub fn key_algorithm_attr() -> Attribute {
    crate::schema::optional("Key algorithm.")
        .default(Value::string(DEFAULT_KEY_ALGORITHM))
        .one_of(pki::KEY_ALGORITHMS)
        .force_new()
}

pub fn early_renewal_attr() -> Attribute {
    crate::schema::optional(
        "Days before expiry from which `terraform plan` proposes a new certificate.",
    )
    .default(Value::int(DEFAULT_EARLY_RENEWAL_DAYS))
}

pub fn ready_for_renewal_attr() -> Attribute {
    crate::schema::computed(
        "Whether the certificate is inside its renewal window; when it is, the next plan replaces it.",
    )
}

/// Checks a certificate's `validity_days` and `early_renewal_days`, where
/// they are known.
pub fn check_days(validity: &Planned<i64>, early: &Planned<i64>, d: &mut Diagnostics) {
    if let Some(v) = validity.known().filter(|v| !(1..=36_500).contains(*v)) {
        d.push_error(
            Some(AttrPath::attr(VALIDITY_DAYS)),
            "Invalid validity",
            format!("{v} days is out of range: use 1 to 36500."),
        );
    }
    if early.known().is_some_and(|e| *e < 0) {
        d.push_error(
            Some(AttrPath::attr(EARLY_RENEWAL_DAYS)),
            "Invalid renewal window",
            "`early_renewal_days` cannot be negative.",
        );
    }
}

/// Whether a certificate expiring at `not_after` (RFC 3339) is inside a
/// renewal window of `early_days`; `None` when the expiry is not readable.
pub fn ready_for_renewal(not_after: Option<&str>, early_days: i64) -> Option<bool> {
    let t = not_after.and_then(pki::parse_rfc3339)?;
    Some(pki::in_renewal_window(t, early_days))
}

/// `ready_for_renewal` as planned: known when the expiry and the window
/// are, else known after apply.
pub fn planned_readiness(
    not_after: &Planned<Option<String>>,
    early: &Planned<i64>,
) -> Planned<Option<bool>> {
    match early
        .known()
        .and_then(|e| ready_for_renewal(not_after.as_str(), *e))
    {
        Some(ready) => Planned::Known(Some(ready)),
        None => Planned::Unknown,
    }
}

/// A certificate inside the renewal window the plan asks for (or, while
/// that is unknown, the one it had) must be replaced: also when the window
/// was just widened.
pub fn renewal_due(
    prior_not_after: &Option<String>,
    prior_early: i64,
    planned_early: &Planned<i64>,
) -> Option<AttrPath> {
    let early = planned_early.known().copied().unwrap_or(prior_early);
    (ready_for_renewal(prior_not_after.as_deref(), early) == Some(true))
        .then(|| AttrPath::attr(READY_FOR_RENEWAL))
}

/// The node named by a CA's `key_node` and where the key of the CA with
/// this fingerprint lives on it. An unknown node is reported on `attr`, the
/// attribute that names it.
pub async fn ca_key_home(
    ctx: &Ctx,
    name: &str,
    fingerprint: &str,
    attr: &str,
) -> Result<(Arc<Node>, CertPaths), Diagnostics> {
    // The fingerprint names the files: one that is not a fingerprint (a
    // state edited by hand) names none.
    if !pki::is_fingerprint(fingerprint) {
        return Err(Diagnostics::error(
            "Not a certificate fingerprint",
            format!(
                "The state holds {fingerprint:?} as the CA's fingerprint, which is not 64 lower-case hex digits; the provider \
                 will not derive a path on node {name:?} from it. Nothing was read or changed there."
            ),
        ));
    }
    let node = ctx.node(name, attr).await?;
    let paths = node.ca_key_paths(fingerprint).await?;
    Ok((node, paths))
}

/// The CA whose certificate is `ca_cert_pem`, with its key read from the
/// node `key_node` that keeps it. Problems are reported on `cert_attr` or
/// `node_attr`, the attributes that name them.
pub async fn ca_from_node(
    ctx: &Ctx,
    ca_cert_pem: &str,
    key_node: &str,
    cert_attr: &str,
    node_attr: &str,
) -> Result<pki::Ca, Diagnostics> {
    let fingerprint = pki::inspect(ca_cert_pem)
        .map_err(|msg| Diagnostics::attr_error(AttrPath::attr(cert_attr), "Invalid CA", msg))?
        .fingerprint_sha256;
    let (node, paths) = ca_key_home(ctx, key_node, &fingerprint, node_attr).await?;
    let key = node.read_installed(&paths).await?.key.ok_or_else(|| {
        Diagnostics::attr_error(
            AttrPath::attr(node_attr),
            "CA key not found",
            format!("Node {key_node:?} has no key for this CA at {}.", paths.key),
        )
    })?;
    load_ca(ca_cert_pem, &key, cert_attr, node_attr)
}

/// A CA from its certificate and key, each problem on its attribute.
pub fn load_ca(
    ca_cert_pem: &str,
    key: &crate::secret::Secret,
    cert_attr: &str,
    key_attr: &str,
) -> Result<pki::Ca, Diagnostics> {
    pki::Ca::load(ca_cert_pem, key).map_err(|(f, msg)| {
        let attr = if f == pki::CaField::Cert {
            cert_attr
        } else {
            key_attr
        };
        Diagnostics::attr_error(AttrPath::attr(attr), "Invalid CA", msg)
    })
}

/// Every node of the cluster by name: the access node, then the data
/// nodes the provider knows.
pub async fn cluster_nodes(ctx: &Ctx) -> Result<Vec<String>, Diagnostics> {
    let mut all = vec![crate::provider::ACCESS_NODE.to_string()];
    all.extend(
        ctx.provider
            .data_node_infos()
            .await?
            .into_iter()
            .map(|i| i.name),
    );
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_inside_the_window_the_plan_asks_for() {
        let soon = pki::rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(10));
        let at = Some(soon.clone());
        assert_eq!(renewal_due(&at, 5, &Planned::Known(5)), None);
        assert!(
            renewal_due(&at, 5, &Planned::Known(20)).is_some(),
            "window widened"
        );
        assert!(
            renewal_due(&at, 20, &Planned::Unknown).is_some(),
            "the prior window"
        );
        assert_eq!(renewal_due(&None, 20, &Planned::Known(20)), None);
        assert_eq!(
            planned_readiness(&Planned::Known(Some(soon.clone())), &Planned::Known(20)),
            Planned::Known(Some(true))
        );
        assert_eq!(
            planned_readiness(&Planned::Known(Some(soon)), &Planned::Unknown),
            Planned::Unknown
        );
        assert_eq!(
            planned_readiness(&Planned::Unknown, &Planned::Known(1)),
            Planned::Unknown
        );
    }

    #[test]
    fn days_are_checked_where_known() {
        let mut d = Diagnostics::new();
        check_days(&Planned::Known(0), &Planned::Known(-1), &mut d);
        assert_eq!(d.0.len(), 2);
        let mut d = Diagnostics::new();
        check_days(&Planned::Unknown, &Planned::Null, &mut d);
        check_days(&Planned::Known(36_500), &Planned::Known(0), &mut d);
        assert!(d.is_empty());
    }
}
