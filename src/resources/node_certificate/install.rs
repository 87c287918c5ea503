//! Issuing a node certificate with the CA and installing it on its node,
//! and comparing what a node holds with the state.

use super::import::make_id;
use super::*;
use crate::node::{Install, Installed};
use crate::pki::{Ca, Lifetime, Usage};
use crate::resources::certs;

/// The first PEM block of a text, with its trailing newline.
pub(super) fn first_pem_block(text: &str) -> String {
    const END: &str = "-----END CERTIFICATE-----";
    match text.find(END) {
        Some(i) => format!("{}\n", &text[..i + END.len()]),
        None => text.to_string(),
    }
}

/// Compares what is installed (and, for a server certificate, what the
/// node serves) with the state: `in sync`, or what differs.
pub(super) async fn check_installed(
    node: &Node,
    m: &Model,
    fingerprint: &str,
    paths: &CertPaths,
    installed: &Installed,
) -> Result<String, Diagnostics> {
    let mut problems: Vec<String> = Vec::new();
    let cert_info = match &installed.cert {
        None => {
            problems.push("certificate file missing".into());
            None
        }
        Some(text) => match pki::inspect(text) {
            Ok(info) if info.fingerprint_sha256 == fingerprint => Some(info),
            _ => {
                problems.push("certificate file replaced".into());
                None
            }
        },
    };
    match (&installed.key, &cert_info) {
        (None, _) => problems.push("key file missing".into()),
        (Some(k), Some(info)) if !pki::key_matches(info, k) => {
            problems.push("key file replaced".into())
        }
        _ => {}
    }
    if let Some(mode) = installed.key_mode.filter(|m| *m != 0o600) {
        problems.push(format!("key file mode {mode:04o}"));
    }
    if m.kind == Kind::User {
        if let Some(text) = &installed.cert {
            if cert_info.is_some() && !text.contains(m.ca_cert_pem.trim()) {
                problems.push("CA chain missing from the certificate file".into());
            }
        }
    }
    if m.kind == Kind::Server {
        match &installed.ca {
            None => problems.push("CA file missing".into()),
            Some(ca) if ca.trim() != m.ca_bundle().trim() => {
                problems.push("CA file replaced".into())
            }
            _ => {}
        }
        if m.configure_ssl {
            let settings = node.ssl_settings().await?;
            let want = [
                "on",
                &paths.cert,
                &paths.key,
                paths.ca.as_deref().unwrap_or_default(),
            ];
            if settings.iter().zip(want).any(|(have, want)| have != want) {
                problems.push("ssl settings changed".into());
            }
            // What the server serves, unless it cannot be probed.
            if let Ok(served) = node.served_fingerprint().await {
                if served.as_deref() != Some(fingerprint) {
                    problems.push("not served by the node".into());
                }
            }
        }
    }
    Ok(if problems.is_empty() {
        IN_SYNC.to_string()
    } else {
        problems.join(", ")
    })
}

/// The key a new user certificate keeps: the one on the node, when the
/// certificate there is the same role's from another CA (a CA rotation),
/// and the key is that certificate's and of the configured algorithm. Then
/// the new certificate replaces the old in one file replacement, and no
/// connection the access node opens meanwhile reads a certificate with the
/// other one's key (TimescaleDB reads both files at every connection).
/// Otherwise (a first certificate, a renewal by the same CA, a key gone or
/// not matching) a new key.
pub(super) async fn key_to_keep(ctx: &Ctx, m: &Model) -> Result<Option<Secret>, Diagnostics> {
    if m.kind != Kind::User {
        return Ok(None);
    }
    let node = ctx.node(&m.node, NODE).await?;
    let installed = node.read_installed(&m.paths_on(&node).await?).await?;
    let (Some(cert), Some(key)) = (installed.cert, installed.key) else {
        return Ok(None);
    };
    let Ok(info) = pki::inspect(&cert) else {
        return Ok(None);
    };
    let keep = info.common_name.as_deref() == Some(m.subject_name())
        && pki::key_matches(&info, &key)
        && pki::key_algorithm(&key) == Some(m.key_algorithm.as_str())
        && !pki::issued_by(&cert, &m.ca_cert_pem);
    Ok(keep.then_some(key))
}

/// A certificate signed by the CA, for `keep` (a key on the node already)
/// or a new key. A new key never leaves the provider's memory but to the
/// node.
pub(super) async fn issue(
    ctx: &Ctx,
    m: &Model,
    keep: Option<&Secret>,
) -> Result<(String, Secret), Diagnostics> {
    let ca = load_ca(ctx, m).await?;
    let usage = match m.kind {
        Kind::Server => Usage::Server {
            dns_names: m.dns_names.clone(),
            ip_addresses: m
                .ip_addresses
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
        },
        _ => Usage::Client,
    };
    let lifetime = Lifetime::Days(m.validity_days);
    let issued = match keep {
        Some(key) => ca.issue_for_key(m.subject_name(), &usage, key, lifetime),
        None => ca.issue(m.subject_name(), &usage, &m.key_algorithm, lifetime),
    }
    .map_err(|msg| Diagnostics::error("Could not issue the certificate", msg))?;
    Ok((issued.cert_pem, issued.key_pem))
}

/// The CA that signs: its certificate, and its key from the node that
/// keeps it or from the configuration.
async fn load_ca(ctx: &Ctx, m: &Model) -> Result<Ca, Diagnostics> {
    match (&m.ca_key_node, m.ca_key()) {
        (Some(name), _) => {
            certs::ca_from_node(ctx, &m.ca_cert_pem, name, CA_CERT_PEM, CA_KEY_NODE).await
        }
        (None, Some(key)) => certs::load_ca(&m.ca_cert_pem, key, CA_CERT_PEM, CA_PRIVATE_KEY_PEM),
        (None, None) => Err(Diagnostics::attr_error(
            AttrPath::attr(CA_KEY_NODE),
            "No CA key",
            "Set `ca_key_node`, `ca_private_key_pem_wo` or `ca_private_key_pem`.",
        )),
    }
}

/// Installs the certificate in `state` with its key and fills in the
/// computed values. The key goes to the node only.
pub(super) async fn install(
    ctx: &Ctx,
    mut state: Model,
    key_pem: Secret,
) -> Result<Model, Diagnostics> {
    let cert_pem = state.cert_pem.clone().unwrap_or_default();
    let info =
        pki::inspect(&cert_pem).map_err(|msg| Diagnostics::error("Unreadable certificate", msg))?;
    let node = ctx.node(&state.node, NODE).await?;
    if state.configures_ssl() && state.node == ACCESS_NODE {
        tls_coupling::before_access_node_tls_comes(ctx).await?;
    }
    let paths = state.paths_on(&node).await?;
    node.install_cert(
        paths.clone(),
        Install {
            cert_pem: cert_pem.clone(),
            key_pem,
            // A user certificate's file carries its CA; a server's CA file
            // holds every CA the node trusts.
            ca_pem: Some(match state.kind {
                Kind::Server => state.ca_bundle(),
                Kind::User => state.ca_cert_pem.clone(),
            }),
            configure_ssl: state.configures_ssl(),
            fingerprint: info.fingerprint_sha256.clone(),
        },
    )
    .await?;
    state.fingerprint = Some(info.fingerprint_sha256.clone());
    state.public_key_fingerprint = Some(info.public_key_fingerprint());
    state.not_after = Some(pki::rfc3339(info.not_after));
    state.cert_path = Some(paths.cert.clone());
    state.key_path = Some(paths.key.clone());
    state.ca_path = paths.ca.clone();
    state.id = Some(make_id(&state.node, state.kind, state.role.as_deref()));
    state.ready_for_renewal =
        ready_for_renewal(state.not_after.as_deref(), state.early_renewal_days);
    let installed = node.read_installed(&paths).await?;
    let status =
        check_installed(&node, &state, &info.fingerprint_sha256, &paths, &installed).await?;
    if status != IN_SYNC {
        return Err(Diagnostics::error(
            "Certificate not in place after install",
            format!("On node {:?}: {status}.", state.node),
        ));
    }
    state.installed = Some(status);
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user certificate file carries the chain after the certificate;
    /// import and the checks take the certificate alone.
    #[test]
    fn the_first_pem_block_is_the_certificate_alone() {
        let leaf = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----";
        let ca = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            first_pem_block(&format!("{leaf}\n{ca}")),
            format!("{leaf}\n")
        );
        assert_eq!(first_pem_block(&format!("{leaf}\n")), format!("{leaf}\n"));
        assert_eq!(first_pem_block("not pem"), "not pem");
    }
}
