//! Dropping the role: everywhere or nowhere.

use std::sync::Arc;

use super::spec::Role;
use super::*;
use crate::node::{Node, NodeError};
use crate::role::RoleSpec;

/// Drops the role from `targets` (the access node last). Nothing is dropped
/// anywhere when a node cannot be reached or still has objects depending on
/// the role (unless `drop_owned` asks for them to go).
pub(super) async fn drop_everywhere(ctx: &Ctx, m: &Role, targets: &[String]) -> Deleted {
    let mut nodes = Vec::new();
    for n in targets {
        nodes.push(ctx.provider.node(n).await?);
    }
    let (present, blocked) = where_it_is(m, &nodes).await?;
    if !blocked.is_empty() {
        if !m.drop_owned {
            return Err(Diagnostics::error(
                format!("Role {:?} still owns or holds privileges on objects", m.name),
                format!(
                    "It was dropped nowhere: {}. Revoke or remove those (for grants managed by Terraform, destroy them first), or set `drop_owned = true` (with `reassign_owned_to` to keep owned objects under another role) to have them dropped with the role.",
                    blocked.join("; ")
                ),
            ));
        }
        drop_owned(m, &present).await?;
    }
    let statement = Secret::new(RoleSpec::drop_sql(&m.name));
    let data: Vec<String> = present
        .iter()
        .filter(|n| n.name != ACCESS_NODE)
        .map(|n| n.name.clone())
        .collect();
    let doing = format!("dropping role {:?}", m.name);
    let outcomes = ctx
        .provider
        .exec_on_data_nodes(&data, &doing, &statement, |node: Arc<Node>| {
            let statement = statement.clone();
            let doing = doing.clone();
            let name = m.name.clone();
            async move { node.role_exec(&doing, &name, &statement).await }
        })
        .await;
    let mut d = Diagnostics::new();
    outcomes.report(&mut d, &mut Default::default());
    if d.has_errors() {
        return Err(d);
    }
    if present.iter().any(|n| n.name == ACCESS_NODE) {
        ctx.provider
            .access()
            .role_exec(&doing, &m.name, &statement)
            .await?;
    }
    // Warnings only (a fallback to direct connections): shown with the
    // success.
    Ok(d)
}

/// The nodes that have the role, and for each that has objects depending
/// on it, what they are. Every node must answer: one that cannot is an
/// error, and then nothing is dropped anywhere.
async fn where_it_is(
    m: &Role,
    nodes: &[Arc<Node>],
) -> Result<(Vec<Arc<Node>>, Vec<String>), Diagnostics> {
    let checks = crate::provider::fan_out(nodes.iter().map(|node| {
        let name = m.name.clone();
        async move {
            let exists = node.role_read(&name, None).await?.is_some();
            let deps = if exists {
                node.role_dependents(&name).await?
            } else {
                Vec::new()
            };
            Ok::<_, NodeError>((exists, deps))
        }
    }))
    .await;
    let mut blocked = Vec::new();
    let mut present = Vec::new();
    let mut d = Diagnostics::new();
    for (node, r) in nodes.iter().zip(checks) {
        match r {
            Err(e) => d.extend(Diagnostics::from(&e)),
            Ok((false, _)) => {}
            Ok((true, deps)) => {
                if !deps.is_empty() {
                    blocked.push(format!(
                        "on node {:?} the role {}",
                        node.name,
                        deps.join(", ")
                    ));
                }
                present.push(node.clone());
            }
        }
    }
    if d.has_errors() {
        d.push_error(
            None,
            format!("Role {:?} was not dropped", m.name),
            "A node could not be checked, so the role was dropped nowhere; run destroy again when every node is back.",
        );
        return Err(d);
    }
    Ok((present, blocked))
}

/// `DROP OWNED` (after `REASSIGN OWNED` when asked) on every node that has
/// the role; stops at a node where objects in other databases remain.
async fn drop_owned(m: &Role, present: &[Arc<Node>]) -> Result<(), Diagnostics> {
    for node in present {
        node.role_drop_owned(&m.name, m.reassign_owned_to.as_deref())
            .await?;
        let left = node.role_dependents(&m.name).await?;
        if !left.is_empty() {
            return Err(Diagnostics::error(
                format!("Role {:?} still has objects in other databases", m.name),
                format!(
                    "DROP OWNED only reaches the database the provider is connected to; on node {:?} the role still {}. Nothing more was dropped.",
                    node.name,
                    left.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
