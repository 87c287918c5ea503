//! Import IDs of node certificates, and adopting an installed one.

use super::install::first_pem_block;
use super::*;
use crate::resources::certs::DEFAULT_EARLY_RENEWAL_DAYS;

/// The certificate a node holds, by `<node> server` or `<node> user <role>`.
pub(super) async fn import(ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
    let (node_name, kind, role) = parse_import_id(id)?;
    let node = ctx.provider.node(node_name).await?;
    let probe = Model {
        kind,
        role: role.clone(),
        ..Model::default()
    };
    let paths = probe.paths_on(&node).await?;
    let installed = node.read_installed(&paths).await?;
    let (Some(cert_file), Some(key)) = (&installed.cert, &installed.key) else {
        return Err(Diagnostics::error(
            "Certificate not found",
            format!(
                "Node {node_name:?} has no certificate and key at {} and {}.",
                paths.cert, paths.key
            ),
        ));
    };
    let info = pki::inspect(cert_file).map_err(|m| {
        Diagnostics::error("Unreadable certificate", format!("{}: {m}", paths.cert))
    })?;
    let leaf = first_pem_block(cert_file);
    // A server's CA file holds every CA the node trusts: the one that
    // issued the certificate is `ca_cert_pem`, the others are trusted too.
    let (ca_pem, trusted) = match kind {
        Kind::Server => split_ca_file(installed.ca.as_deref().unwrap_or_default(), &leaf),
        _ => (
            cert_file
                .strip_prefix(&leaf)
                .map(|rest| rest.trim_start().to_string())
                .unwrap_or_default(),
            None,
        ),
    };
    let ssl = node.ssl_settings().await?;
    let configure_ssl = kind == Kind::Server && ssl[1] == paths.cert;
    let days = (info.not_after - info.not_before).whole_days();
    let mut state = Model {
        kind,
        node: node_name.to_string(),
        id: Some(make_id(node_name, kind, role.as_deref())),
        role,
        common_name: info.common_name.clone(),
        dns_names: info.dns_names.clone(),
        ip_addresses: info.ip_addresses.clone(),
        ca_cert_pem: ca_pem,
        trusted_ca_pems: trusted,
        ca_key_node: None,
        ca_private_key_pem_wo: None,
        ca_private_key_pem: None,
        key_algorithm: pki::key_algorithm(key).unwrap_or_default().to_string(),
        validity_days: days,
        early_renewal_days: DEFAULT_EARLY_RENEWAL_DAYS,
        configure_ssl,
        cert_pem: Some(leaf),
        public_key_fingerprint: Some(info.public_key_fingerprint()),
        fingerprint: Some(info.fingerprint_sha256.clone()),
        not_after: Some(pki::rfc3339(info.not_after)),
        cert_path: Some(paths.cert.clone()),
        key_path: Some(paths.key.clone()),
        ca_path: paths.ca.clone(),
        ready_for_renewal: None,
        installed: None,
    };
    let status =
        check_installed(&node, &state, &info.fingerprint_sha256, &paths, &installed).await?;
    state.installed = Some(status);
    state.ready_for_renewal =
        ready_for_renewal(state.not_after.as_deref(), state.early_renewal_days);
    Ok(state)
}

/// A CA file as `ca_cert_pem` (the CA that issued `leaf`, or the whole
/// file when none did) and the other CAs in it, in their order.
fn split_ca_file(text: &str, leaf: &str) -> (String, Option<Vec<String>>) {
    let blocks = pki::pem_certificates(text);
    match blocks.iter().position(|b| pki::issued_by(leaf, b)) {
        Some(i) => {
            let others: Vec<String> = (blocks.iter().enumerate())
                .filter(|(j, _)| *j != i)
                .map(|(_, b)| b.clone())
                .collect();
            (blocks[i].clone(), Some(others).filter(|o| !o.is_empty()))
        }
        None => (text.to_string(), None),
    }
}

/// `<node> server` or `<node> user <role>`.
pub(super) fn parse_import_id(id: &str) -> Result<(&str, Kind, Option<String>), Diagnostics> {
    let bad = || {
        Diagnostics::error(
            "Invalid import ID",
            format!("{id:?} is not `<node> server` or `<node> user <role>`, e.g. `dn1 server` or `access user testrole`."),
        )
    };
    let (node_name, rest) = id.split_once(' ').ok_or_else(bad)?;
    match rest.split_once(' ') {
        Some(("user", r)) if !r.is_empty() => Ok((node_name, Kind::User, Some(r.to_string()))),
        None if rest == "server" => Ok((node_name, Kind::Server, None)),
        _ => Err(bad()),
    }
}

pub(super) fn make_id(node: &str, kind: Kind, role: Option<&str>) -> String {
    match (kind, role) {
        (Kind::User, Some(r)) => format!("{node} user {r}"),
        _ => format!("{node} {}", kind.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ids_round_trip_and_bad_ones_say_the_form() {
        for (node, kind, role) in [
            ("dn1", Kind::Server, None),
            ("access", Kind::User, Some("testrole")),
            ("access", Kind::User, Some("Test \"Role\" with spaces")),
        ] {
            let id = make_id(node, kind, role);
            let (n, k, r) = parse_import_id(&id).unwrap();
            assert_eq!((n, k, r.as_deref()), (node, kind, role), "{id}");
        }
        for bad in [
            "dn1",
            "dn1 user",
            "dn1 user ",
            "dn1 client x",
            "dn1 server x",
            "",
        ] {
            let d = parse_import_id(bad).unwrap_err();
            assert!(
                d.0[0]
                    .detail
                    .contains("`<node> server` or `<node> user <role>`"),
                "{bad:?}"
            );
        }
    }
}
