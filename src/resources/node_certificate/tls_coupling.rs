//! TimescaleDB multi-node couples the access node's TLS with its data
//! nodes': while the access node's `ssl` is on, it opens every data-node
//! connection with `sslmode=require`, so a data node that serves no TLS can
//! no longer be reached (every distributed query and `distributed_exec`
//! fails). Turning the access node's ssl on must therefore come after every
//! data node serves TLS, and a data node's TLS may only go once the access
//! node's is off. Plain PostgreSQL fleets (no `distributed_exec`) have no
//! such coupling.

use super::*;
use crate::provider::Route;

const ORDER_HINT: &str = "In the configuration, make the access node's server certificate depend on the data nodes' \
     (`depends_on = [timescaledb_node_certificate.<data nodes>]`): Terraform then creates it after them and destroys it \
     before them. The certificate guide explains the order.";

async fn coupled(ctx: &Ctx) -> Result<bool, Diagnostics> {
    Ok(matches!(
        ctx.provider.route().await?,
        Route::DistributedExec { .. }
    ))
}

/// Whether `node` serves TLS now: seen in a handshake, or where none
/// can be tried (a Unix socket, a probe that fails) from its `ssl`
/// setting. `None` when neither tells.
async fn serves_tls(node: &Node) -> Option<bool> {
    match node.served_fingerprint().await {
        Ok(served) => Some(served.is_some()),
        Err(_) => match node.setting("ssl").await {
            Ok(Some(v)) => Some(v == "on"),
            _ => None,
        },
    }
}

/// Refuses to turn the access node's TLS on while a data node serves
/// none, or while it cannot be told whether one does; nothing is
/// installed then.
pub async fn before_access_node_tls_comes(ctx: &Ctx) -> Result<(), Diagnostics> {
    if !coupled(ctx).await? {
        return Ok(());
    }
    let mut data_nodes = Vec::new();
    for (name, node) in ctx.provider.data_nodes().await?.iter() {
        data_nodes.push((name.clone(), serves_tls(node).await));
    }
    match why_not_turn_on(&data_nodes) {
        None => Ok(()),
        Some(why) => Err(Diagnostics::attr_error(
            AttrPath::attr(NODE),
            "Data nodes serve no TLS yet",
            format!(
                "Turning ssl on at the access node now could cut it off from its data nodes: {why}, and while its ssl is \
                 on, TimescaleDB reaches data nodes over TLS only. Nothing was installed. {ORDER_HINT}"
            ),
        )),
    }
}

/// Refuses to take a data node's TLS away while the access node serves
/// TLS, or while it cannot be told whether it does; nothing is removed
/// then.
pub async fn before_data_node_tls_goes(ctx: &Ctx, data_node: &str) -> Result<(), Diagnostics> {
    if !coupled(ctx).await? {
        return Ok(());
    }
    let Some(why) = why_not_take_away(serves_tls(&ctx.provider.access()).await) else {
        return Ok(());
    };
    Err(Diagnostics::attr_error(
        AttrPath::attr(NODE),
        "The access node still requires TLS to its data nodes",
        format!(
            "{why}, and while it has, TimescaleDB reaches data node {data_node:?} over TLS only; removing its server \
             certificate now would cut the access node off from it. Nothing was removed. Destroy the access node's server \
             certificate first. {ORDER_HINT}"
        ),
    ))
}

/// Why the access node's TLS may not come, given whether each data node
/// serves TLS (`None`: it cannot be told); `None` when it may.
fn why_not_turn_on(data_nodes: &[(String, Option<bool>)]) -> Option<String> {
    let names = |want: Option<bool>| {
        data_nodes
            .iter()
            .filter(|(_, tls)| *tls == want)
            .map(|(n, _)| format!("{n:?}"))
            .collect::<Vec<_>>()
    };
    let (plain, unknown) = (names(Some(false)), names(None));
    let mut why = Vec::new();
    if !plain.is_empty() {
        why.push(format!("data node(s) {} serve no TLS", plain.join(", ")));
    }
    if !unknown.is_empty() {
        why.push(format!(
            "whether data node(s) {} serve TLS cannot be told (no TLS handshake and no `ssl` setting could be read)",
            unknown.join(", ")
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Why a data node's TLS may not go, given whether the access node serves
/// TLS (`None`: it cannot be told); `None` when it may.
fn why_not_take_away(access_tls: Option<bool>) -> Option<&'static str> {
    match access_tls {
        Some(false) => None,
        Some(true) => Some("The access node has ssl on"),
        None => Some(
            "Whether the access node has ssl on cannot be told (no TLS handshake and no `ssl` setting could be read)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What cannot be told counts as the unsafe answer.
    #[test]
    fn the_coupling_fails_closed() {
        let n = |name: &str, tls| (name.to_string(), tls);
        assert_eq!(
            why_not_turn_on(&[n("dn1", Some(true)), n("dn2", Some(true))]),
            None
        );
        assert_eq!(why_not_turn_on(&[]), None);
        let why = why_not_turn_on(&[n("dn1", Some(true)), n("dn2", Some(false)), n("dn3", None)])
            .unwrap();
        assert!(
            why.contains("\"dn2\" serve no TLS")
                && why.contains("\"dn3\" serve TLS cannot be told"),
            "{why}"
        );
        assert!(!why.contains("dn1"), "{why}");
        assert_eq!(why_not_take_away(Some(false)), None);
        assert!(why_not_take_away(Some(true)).is_some());
        assert!(why_not_take_away(None).is_some());
    }
}
