//! Planning a node certificate: the configuration's checks, the computed
//! values a plan can tell, and the checks against the node.

use super::import::make_id;
use super::*;
use crate::model::{PlanModel as _, Planned};
use crate::pki::{Ca, CaField};

/// The configuration's checks, on what is known of it.
pub(super) fn validate(config: &CertPlan) -> Diagnostics {
    let mut d = Diagnostics::new();
    super::super::certs::check_days(&config.validity_days, &config.early_renewal_days, &mut d);
    match config.kind.known() {
        Some(Kind::Server) => check_server(config, &mut d),
        Some(Kind::User) => check_user(config, &mut d),
        None => {}
    }
    if let Some(items) = config.trusted_ca_pems.known().and_then(Option::as_ref) {
        for (i, pem) in items.iter().enumerate() {
            if let Err(m) = pki::inspect(pem) {
                d.push_error(
                    Some(AttrPath::attr(TRUSTED_CA_PEMS).index(i)),
                    "Invalid CA certificate",
                    m,
                );
            }
        }
    }
    if let Some(items) = config.ip_addresses.known() {
        for (i, s) in items.iter().enumerate() {
            if s.parse::<std::net::IpAddr>().is_err() {
                d.push_error(
                    Some(AttrPath::attr(IP_ADDRESSES).index(i)),
                    "Invalid IP address",
                    format!("{s:?} is not an IP address."),
                );
            }
        }
    }
    let sources: Vec<&str> = [
        (CA_KEY_NODE, config.ca_key_node.is_null()),
        (
            CA_PRIVATE_KEY_PEM_WO,
            config.ca_private_key_pem_wo.is_null(),
        ),
        (CA_PRIVATE_KEY_PEM, config.ca_private_key_pem.is_null()),
    ]
    .into_iter()
    .filter(|(_, null)| !null)
    .map(|(a, _)| a)
    .collect();
    if let [_, second, ..] = sources.as_slice() {
        d.push_error(
            Some(AttrPath::attr(second)),
            "One CA key source",
            ONE_CA_KEY_SOURCE,
        );
    }
    for (key_attr, key) in [
        (CA_PRIVATE_KEY_PEM, &config.ca_private_key_pem),
        (CA_PRIVATE_KEY_PEM_WO, &config.ca_private_key_pem_wo),
    ] {
        if let (Some(cert), Some(key)) = (config.ca_cert_pem.as_str(), key.get()) {
            if let Err((field, m)) = Ca::load(cert, key) {
                let path = match field {
                    CaField::Cert => CA_CERT_PEM,
                    CaField::Key => key_attr,
                };
                d.push_error(Some(AttrPath::attr(path)), "Invalid CA", m);
            }
        }
    }
    d
}

fn check_server(config: &CertPlan, d: &mut Diagnostics) {
    if config.common_name.is_null() {
        d.push_error(
            Some(AttrPath::attr(COMMON_NAME)),
            "Missing common name",
            "A server certificate needs a `common_name` (usually the node's host name).",
        );
    }
    if !config.role.is_null() {
        d.push_error(
            Some(AttrPath::attr(ROLE)),
            "Not for server certificates",
            "`role` names the user of a `kind = \"user\"` certificate.",
        );
    }
}

fn check_user(config: &CertPlan, d: &mut Diagnostics) {
    if config
        .trusted_ca_pems
        .known()
        .is_some_and(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    {
        d.push_error(
            Some(AttrPath::attr(TRUSTED_CA_PEMS)),
            "Not for user certificates",
            "`trusted_ca_pems` are the CAs a node trusts, set on its `kind = \"server\"` certificate.",
        );
    }
    if config.role.is_null() {
        d.push_error(
            Some(AttrPath::attr(ROLE)),
            "Missing role",
            "A user certificate needs the `role` it authenticates (its common name).",
        );
    }
    // Set to something: unknown values are looked at once they are known.
    let set = [
        (COMMON_NAME, config.common_name.get().is_some()),
        (
            DNS_NAMES,
            config.dns_names.known().is_some_and(|l| !l.is_empty()),
        ),
        (
            IP_ADDRESSES,
            config.ip_addresses.known().is_some_and(|l| !l.is_empty()),
        ),
    ];
    for (a, _) in set.into_iter().filter(|(_, set)| *set) {
        d.push_error(
            Some(AttrPath::attr(a)),
            "Not for user certificates",
            format!(
                "A user certificate's common name is the role; `{a}` is for server certificates."
            ),
        );
    }
    if config.configure_ssl.known() == Some(&true) {
        d.push_error(
            Some(AttrPath::attr(CONFIGURE_SSL)),
            "Not for user certificates",
            "`configure_ssl` sets up the node's server certificate; TLS on the access node comes from its own `kind = \"server\"` certificate.",
        );
    }
}

/// Another spelling of the same CA (or the CA read back on import) does not
/// call for a new certificate.
pub(super) fn refine_replace(prior: &Model, planned: &CertPlan, replace: &mut Vec<AttrPath>) {
    if let (Some(cert), Some(ca)) = (prior.cert_pem.as_deref(), planned.ca_cert_pem.as_str()) {
        if pki::issued_by(cert, ca) {
            replace.retain(|p| *p != AttrPath::attr(CA_CERT_PEM));
        }
    }
}

/// The computed values a plan can tell.
pub(super) fn complete(config: &CertPlan, planned: &mut CertPlan) {
    for (conf, plan) in [
        (&config.dns_names, &mut planned.dns_names),
        (&config.ip_addresses, &mut planned.ip_addresses),
    ] {
        if conf.is_null() && plan.is_unknown() {
            plan.set(Vec::new());
        }
    }
    if config.common_name.is_null() && planned.common_name.is_unknown() {
        if let Some(r) = planned.role.get() {
            planned.common_name.set(Some(r.clone()));
        }
    }
    let role = match &planned.role {
        Planned::Unknown => None,
        r => Some(r.get().cloned()),
    };
    if let (Some(node), Some(kind), Some(role)) = (planned.node.known(), planned.kind.known(), role)
    {
        planned.id.set(Some(make_id(node, *kind, role.as_deref())));
    }
    // The node's key gone or not the certificate's: it is kept nowhere
    // else, so apply makes a new key and certificate, in place (a
    // replacement would take the node's TLS away in between).
    let installed = planned.installed.as_str().unwrap_or_default().to_string();
    if KEY_PROBLEMS.iter().any(|p| installed.contains(p)) {
        planned.cert_pem = Planned::Unknown;
        planned.fingerprint = Planned::Unknown;
        planned.public_key_fingerprint = Planned::Unknown;
        planned.not_after = Planned::Unknown;
    }
    if installed.contains(PATHS_MOVED) {
        planned.cert_path = Planned::Unknown;
        planned.key_path = Planned::Unknown;
        planned.ca_path = Planned::Unknown;
    }
    planned.ready_for_renewal =
        super::super::certs::planned_readiness(&planned.not_after, &planned.early_renewal_days);
    planned.installed.set(Some(IN_SYNC.to_string()));
}

/// A new certificate where one from another CA is installed already (by
/// hand or by another resource) is refused at plan time, with the import
/// command: the new one would silently take its place. One from the
/// configured CA is the certificate being renewed or replaced (Terraform
/// plans the new half of a replacement as a create), or one an interrupted
/// apply installed, and is replaced; so is one from a CA the node trusts
/// (`trusted_ca_pems`, or its `root.crt` now): the certificate a CA
/// rotation replaces.
pub(super) async fn check(ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Result<(), Diagnostics> {
    // Only a new certificate is signed: an imported one needs its CA's key
    // only once it is renewed or replaced.
    let config = plan.config;
    let no_key = config.ca_key_node.is_null()
        && config.ca_private_key_pem_wo.is_null()
        && config.ca_private_key_pem.is_null();
    if plan.prior.is_none() && no_key {
        return Err(Diagnostics::attr_error(
            AttrPath::attr(CA_KEY_NODE),
            "No CA key to sign with",
            ONE_CA_KEY_SOURCE,
        ));
    }
    if let Some(replaced) = plan.replaced {
        warn_untrusted_ca(ctx, replaced, plan.planned, &mut plan.warnings).await;
    }
    if plan.prior.is_some() || plan.replacing {
        return Ok(());
    }
    let Some(m) = plan.planned.known() else {
        return Ok(()); // parts still unknown: apply installs, and looks then
    };
    let node = ctx.node(&m.node, NODE).await?;
    let paths = m.paths_on(&node).await?;
    let installed = node.read_installed(&paths).await?;
    let Some(cert) = installed.cert else {
        return Ok(());
    };
    let ours = |ca: &String| pki::issued_by(&cert, ca);
    if ours(&m.ca_cert_pem) || m.trusted_ca_pems.iter().flatten().any(ours) {
        return Ok(());
    }
    // A CA rotation: the certificate there was issued by a CA the node
    // trusts now (its `root.crt`), and the new one from the next CA takes
    // its place.
    if node.trusted_cas().await?.iter().flatten().any(ours) {
        return Ok(());
    }
    let who = pki::inspect(&cert)
        .ok()
        .and_then(|i| i.common_name)
        .map(|cn| format!(" (issued to {cn:?})"))
        .unwrap_or_default();
    Err(Diagnostics::attr_error(
        AttrPath::attr(if m.kind == Kind::Server { NODE } else { ROLE }),
        "Certificate already installed",
        format!(
            "Node {:?} already has a certificate at {}{who}, not issued by the configured CA. Another resource manages it \
             or it was installed by hand; a new one would silently take its place. Manage it with \
             `terraform import <address> '{}'` (or, for a resource that moved to a new address, `terraform state mv`), or \
             remove the files first.",
            m.node,
            paths.cert,
            make_id(&m.node, m.kind, m.role.as_deref())
        ),
    ))
}

/// A certificate reissued by another CA is refused by every node that
/// checks it and does not trust that CA yet, from the moment it is
/// installed: a data node checks the user certificates the access node
/// presents, and the access node checks the data nodes' server
/// certificates against its `ssl_ca_file`. The plan names them, and the
/// overlap that avoids it. A node that cannot be read is left out: the
/// warning is advice, and the apply reports the node itself.
async fn warn_untrusted_ca(
    ctx: &Ctx,
    replaced: &Model,
    planned: &CertPlan,
    warnings: &mut Diagnostics,
) {
    let Some(old) = replaced.cert_pem.as_deref() else {
        return;
    };
    let new_ca = planned.ca_cert_pem.known().map(String::as_str);
    if new_ca.is_some_and(|ca| pki::issued_by(old, ca)) {
        return; // the same CA: a renewal
    }
    let checkers: Vec<String> = match replaced.kind {
        Kind::User => match ctx.provider.data_nodes().await {
            Ok(nodes) => nodes.into_keys().collect(),
            Err(_) => return,
        },
        Kind::Server if replaced.node != ACCESS_NODE => vec![ACCESS_NODE.to_string()],
        Kind::Server => Vec::new(),
    };
    let new_print = new_ca.and_then(|ca| pki::inspect(ca).ok().map(|i| i.fingerprint_sha256));
    let mut refusing = Vec::new();
    for name in checkers {
        let Ok(node) = ctx.node(&name, NODE).await else {
            continue;
        };
        let Ok(Some(trusted)) = node.trusted_cas().await else {
            continue; // no `ssl_ca_file`: the node checks no certificate
        };
        let trusts = new_print.as_ref().is_some_and(|print| {
            trusted
                .iter()
                .any(|t| pki::inspect(t).is_ok_and(|i| i.fingerprint_sha256 == *print))
        });
        if !trusts {
            refusing.push(name);
        }
    }
    if refusing.is_empty() {
        return;
    }
    let which = match replaced.kind {
        Kind::User => format!(
            "The certificate of role {:?}",
            replaced.role.as_deref().unwrap_or_default()
        ),
        Kind::Server => format!("The server certificate of node {:?}", replaced.node),
    };
    let ca = if new_ca.is_some() {
        "its new CA"
    } else {
        "its new CA, made in this same apply"
    };
    warnings.push_warning(
        Some(AttrPath::attr(CA_CERT_PEM)),
        "Nodes that do not trust the new CA will refuse this certificate",
        format!(
            "{which} is reissued by another CA, and {} do not trust {ca}: from the moment the new certificate is \
             installed until they do, they refuse it. Rotate with an overlap instead: first make every node trust both \
             CAs (`trusted_ca_pems` on their server certificates, or the module's `ca_generations = [old, new]`) and \
             apply, then sign with the new CA. Clients that verify the nodes need the new CA first too.",
            refusing.join(", ")
        ),
    );
}
