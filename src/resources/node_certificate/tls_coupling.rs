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
    let nodes = ctx.provider.data_nodes().await?;
    let (mut plain, mut unknown) = (Vec::new(), Vec::new());
    for (name, node) in nodes.iter() {
        match serves_tls(node).await {
            Some(true) => {}
            Some(false) => plain.push(format!("{name:?}")),
            None => unknown.push(format!("{name:?}")),
        }
    }
    if plain.is_empty() && unknown.is_empty() {
        return Ok(());
    }
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
    Err(Diagnostics::attr_error(
        AttrPath::attr(NODE),
        "Data nodes serve no TLS yet",
        format!(
            "Turning ssl on at the access node now could cut it off from its data nodes: {}, and while its ssl is on, \
             TimescaleDB reaches data nodes over TLS only. Nothing was installed. {ORDER_HINT}",
            why.join("; ")
        ),
    ))
}

/// Refuses to take a data node's TLS away while the access node serves
/// TLS, or while it cannot be told whether it does; nothing is removed
/// then.
pub async fn before_data_node_tls_goes(ctx: &Ctx, data_node: &str) -> Result<(), Diagnostics> {
    if !coupled(ctx).await? {
        return Ok(());
    }
    let why = match serves_tls(&ctx.provider.access()).await {
        Some(false) => return Ok(()),
        Some(true) => "The access node has ssl on",
        None => "Whether the access node has ssl on cannot be told (no TLS handshake and no `ssl` setting could be read)",
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
