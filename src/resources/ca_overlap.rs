//! Renewing a CA through an overlap (`renewal = "overlap"`): one step per
//! apply, each taken only once the nodes are seen ready for it. Inside the
//! renewal window the next CA is made and trusted beside the current one;
//! once every node that trusts the current CA trusts the next one too, the
//! next one signs (the certificates are reissued by it while the old one is
//! still trusted); once no node serves or presents a certificate of the
//! old one, it is trusted no longer. A step the nodes are not ready for
//! waits, and the plan says what for.

use crate::diag::{AttrPath, Diagnostics};
use crate::model::Planned;
use crate::node::CertFileKind;
use crate::pki;

use super::certificate_authority::{CaPlan, KEY_NODE, NEXT_CERT_PEM, RETIRING_CERT_PEM};
use super::certs::{ca_key_home, cluster_nodes, ready_for_renewal};
use super::Ctx;

/// The value of `renewal` that renews through an overlap.
pub const OVERLAP: &str = "overlap";

/// Plans the next step of an overlap renewal on a CA that exists: the next
/// CA made, the next CA signing, or the old one let go; or nothing, with a
/// warning saying what the step waits for.
pub async fn plan_step(
    ctx: &Ctx,
    p: &mut CaPlan,
    warnings: &mut Diagnostics,
) -> Result<(), Diagnostics> {
    let (Some(cert), Some(early)) = (
        p.cert_pem.as_str().map(str::to_string),
        p.early_renewal_days.known().copied(),
    ) else {
        return Ok(());
    };
    if let Some(next) = p.next_cert_pem.as_str().map(str::to_string) {
        let waiting = not_trusting(ctx, &cert, &next).await?;
        if waiting.is_empty() {
            return promote(ctx, p, cert, &next).await;
        }
        warnings.push_warning(
            Some(AttrPath::attr(NEXT_CERT_PEM)),
            "The next CA waits to sign",
            format!(
                "The CA is inside its renewal window and its successor is made, but {} not trust it yet. It signs only \
                 once every node that trusts this CA trusts it too: give `trusted_cert_pems` to the server certificates' \
                 `trusted_ca_pems` and apply; the plan after that lets it sign.",
                waiting.join(", ")
            ),
        );
    } else if let Some(old) = p.retiring_cert_pem.as_str().map(str::to_string) {
        let users = still_used(ctx, &old).await?;
        if users.is_empty() {
            p.retiring_cert_pem = Planned::Null;
        } else {
            warnings.push_warning(
                Some(AttrPath::attr(RETIRING_CERT_PEM)),
                "The old CA stays trusted",
                format!(
                    "The renewed CA signs now, but certificates of the old one are still in use ({}); the old CA stays \
                     trusted until none is. They are reissued by the new CA when their `ca_cert_pem` follows `cert_pem` \
                     (with `create_before_destroy`).",
                    users.join(", ")
                ),
            );
        }
    } else if ready_for_renewal(p.not_after.as_str(), early) == Some(true) {
        p.next_cert_pem = Planned::Unknown;
    }
    Ok(())
}

/// The CAs the nodes must trust while the plan's step is in force.
pub fn trusted(p: &CaPlan) -> Planned<Option<Vec<String>>> {
    let (Some(cert), Some(next), Some(retiring)) = (
        p.cert_pem.known(),
        known_or_null(&p.next_cert_pem),
        known_or_null(&p.retiring_cert_pem),
    ) else {
        return Planned::Unknown;
    };
    let all = cert.iter().chain(next.iter()).chain(retiring.iter());
    Planned::Known(Some(all.cloned().collect()))
}

fn known_or_null(v: &Planned<Option<String>>) -> Option<Option<String>> {
    match v {
        Planned::Null => Some(None),
        Planned::Unknown => None,
        Planned::Known(x) => Some(x.clone()),
    }
}

/// The next CA signs from now on; the current one is still trusted.
async fn promote(ctx: &Ctx, p: &mut CaPlan, cert: String, next: &str) -> Result<(), Diagnostics> {
    let info =
        pki::inspect(next).map_err(|e| Diagnostics::error("Unreadable next CA certificate", e))?;
    if let Some(node) = p.key_node.get() {
        let (_, paths) = ca_key_home(ctx, node, &info.fingerprint_sha256, KEY_NODE).await?;
        p.key_path.set(Some(paths.key));
    }
    p.retiring_cert_pem.set(Some(cert));
    p.cert_pem.set(Some(next.to_string()));
    p.fingerprint.set(Some(info.fingerprint_sha256.clone()));
    p.id.set(Some(info.fingerprint_sha256));
    p.not_after.set(Some(pki::rfc3339(info.not_after)));
    p.next_cert_pem = Planned::Null;
    Ok(())
}

fn fingerprint(pem: &str) -> String {
    pki::inspect(pem)
        .map(|i| i.fingerprint_sha256)
        .unwrap_or_default()
}

/// The nodes that trust `cert` but not `next` (a node that cannot be read
/// is one: it is not seen to trust it).
async fn not_trusting(ctx: &Ctx, cert: &str, next: &str) -> Result<Vec<String>, Diagnostics> {
    let (cert, next) = (fingerprint(cert), fingerprint(next));
    let mut out = Vec::new();
    for name in cluster_nodes(ctx).await? {
        let files = match ctx.node(&name, KEY_NODE).await?.certificate_files().await {
            Ok(f) => f,
            Err(e) => {
                out.push(format!("{name} (not readable: {e})"));
                continue;
            }
        };
        let trusted: Vec<String> = files
            .iter()
            .filter(|f| f.kind == CertFileKind::TrustedCa)
            .flat_map(|f| pki::pem_certificates(&f.text))
            .map(|pem| fingerprint(&pem))
            .collect();
        if trusted.contains(&cert) && !trusted.contains(&next) {
            out.push(name);
        }
    }
    Ok(match out.len() {
        0 => out,
        1 => vec![format!("node {} does", out[0])],
        _ => vec![format!("nodes {} do", out.join(", "))],
    })
}

/// Where a certificate signed by `old` is still served or presented
/// (`node: path`), or a node that cannot be read.
async fn still_used(ctx: &Ctx, old: &str) -> Result<Vec<String>, Diagnostics> {
    let mut out = Vec::new();
    for name in cluster_nodes(ctx).await? {
        let files = match ctx.node(&name, KEY_NODE).await?.certificate_files().await {
            Ok(f) => f,
            Err(e) => {
                out.push(format!("{name}: not readable: {e}"));
                continue;
            }
        };
        for f in files
            .iter()
            .filter(|f| matches!(f.kind, CertFileKind::Server | CertFileKind::User))
        {
            let first = pki::pem_certificates(&f.text).into_iter().next();
            if first.is_some_and(|pem| pki::issued_by(&pem, old)) {
                out.push(format!("{name}: {}", f.path));
            }
        }
    }
    Ok(out)
}
