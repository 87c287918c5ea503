//! Planning a role: the configuration's checks, each node's status after
//! apply, and a role of that name that exists already.

use std::collections::BTreeMap;

use super::spec::Role;
use super::*;
use crate::model::{PlanModel as _, Planned};
use crate::node::Node;
use crate::password::Checker;
use crate::sql;

/// PostgreSQL cuts longer names short (NAMEDATALEN - 1).
const MAX_NAME_BYTES: usize = 63;

/// The configuration's checks, on what is known of it.
pub(super) fn validate(config: &RolePlan) -> Diagnostics {
    let mut d = Diagnostics::new();
    if let Some(Err(m)) = config.name.as_str().map(check_name) {
        d.push_error(Some(AttrPath::attr(NAME)), "Invalid role name", m);
    }
    if let Some(to) = config.reassign_owned_to.as_str() {
        if let Err(m) = check_name(to) {
            d.push_error(
                Some(AttrPath::attr(REASSIGN_OWNED_TO)),
                "Invalid role name",
                m,
            );
        }
        if matches!(config.drop_owned, Planned::Known(false) | Planned::Null) {
            d.push_error(
                Some(AttrPath::attr(REASSIGN_OWNED_TO)),
                "reassign_owned_to needs drop_owned",
                "Objects are reassigned as part of dropping what the role owns on destroy; set `drop_owned = true` too.",
            );
        }
    }
    check_write_only(config, &mut d);
    for (a, p) in [
        (PASSWORD, &config.password),
        (DATA_NODE_PASSWORD, &config.data_node_password),
        (PASSWORD_WO, &config.password_wo),
        (DATA_NODE_PASSWORD_WO, &config.data_node_password_wo),
    ] {
        if p.get().is_some_and(|p| p.expose().contains('\0')) {
            d.push_error(
                Some(AttrPath::attr(a)),
                "Invalid password",
                "A password cannot contain a NUL character: libpq ends a password there, so no client could ever send the password the verifier is made from.",
            );
        }
    }
    if let Some(n) = config.connection_limit.known() {
        if *n < -1 || *n > i64::from(i32::MAX) {
            d.push_error(
                Some(AttrPath::attr(CONNECTION_LIMIT)),
                "Invalid connection limit",
                format!("{n} is not a connection limit: use -1 (no limit) or a whole number of connections."),
            );
        }
    }
    if let Some(items) = config.data_nodes.known() {
        for (i, item) in items.iter().enumerate() {
            if item == ACCESS_NODE {
                d.push_error(
                    Some(AttrPath::attr(DATA_NODES).index(i)),
                    "Not a data node",
                    "The access node always gets the role; list data nodes only.",
                );
            }
        }
    }
    d
}

/// The plain and the write-only form of the passwords do not mix, and a
/// write-only password comes with the version that says when it changed.
fn check_write_only(config: &RolePlan, d: &mut Diagnostics) {
    let write_only = !config.password_wo.is_null() || !config.data_node_password_wo.is_null();
    for (plain, set, wo) in [
        (PASSWORD, !config.password.is_null(), PASSWORD_WO),
        (
            DATA_NODE_PASSWORD,
            !config.data_node_password.is_null(),
            DATA_NODE_PASSWORD_WO,
        ),
    ] {
        if set && write_only {
            d.push_error(
                Some(AttrPath::attr(plain)),
                "Conflicting password forms",
                format!("`{plain}` is kept in state and `{wo}` is not; use the write-only form for both passwords, or the plain form for both."),
            );
        }
    }
    let versioned = !config.password_wo_version.is_null();
    if write_only && !versioned {
        d.push_error(
            Some(AttrPath::attr(PASSWORD_WO_VERSION)),
            "Missing password version",
            "A write-only password is not in the state, so Terraform cannot see it change: set `password_wo_version`, and change it whenever a write-only password changes.",
        );
    }
    let wo_known = !config.password_wo.is_unknown() && !config.data_node_password_wo.is_unknown();
    if versioned && !write_only && wo_known {
        d.push_error(
            Some(AttrPath::attr(PASSWORD_WO_VERSION)),
            "Version without a write-only password",
            "`password_wo_version` versions `password_wo` and `data_node_password_wo`; set one of them, or remove the version.",
        );
    }
    if write_only && config.password_encryption.as_str() == Some("md5") {
        d.push_error(
            Some(AttrPath::attr(PASSWORD_ENCRYPTION)),
            "md5 with a write-only password",
            "A write-only password is checked for drift by a digest of the verifier each node stores; an md5 verifier has no salt, so that digest would let anyone with the state test guesses of the password. Use `scram-sha-256`, or the plain `password`.",
        );
    }
}

pub(super) fn check_name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("A role name cannot be empty.".into());
    }
    if n.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{n:?} is {} bytes long; PostgreSQL keeps only the first {MAX_NAME_BYTES}, so the role would get another name.",
            n.len()
        ));
    }
    if n.contains('\0') {
        return Err("A role name cannot contain a NUL character.".into());
    }
    Ok(())
}

/// The computed values: the ID, the data nodes when left out, and each
/// node's status after apply.
pub(super) async fn complete(
    ctx: Option<&Ctx>,
    config: &RolePlan,
    planned: &mut RolePlan,
) -> Result<(), Diagnostics> {
    // A create (or replace) has no id yet; what it achieves on each node is
    // known after apply: a data node that cannot be reached then is
    // recorded as such, not promised as in sync.
    let creating = planned.id.is_unknown();
    planned.id = planned.name.map(|n| Some(n.clone()));
    if config.data_nodes.is_null() {
        planned.data_nodes = match super::super::default_data_nodes(ctx).await? {
            Some(all) => Planned::Known(all),
            None => Planned::Unknown,
        };
    }
    planned.nodes = match (ctx, planned.data_nodes.known()) {
        (Some(ctx), Some(data_nodes)) if !creating => {
            let names = std::iter::once(ACCESS_NODE).chain(data_nodes.iter().map(String::as_str));
            planned_statuses(ctx, names).await
        }
        _ => Planned::Unknown,
    };
    Ok(())
}

/// Each node's status after apply: in line, with the note where the stored
/// password cannot be read; unknown when a node cannot tell now.
async fn planned_statuses<'a>(
    ctx: &Ctx,
    names: impl Iterator<Item = &'a str>,
) -> Planned<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for n in names {
        let readable = match ctx.provider.node(n).await {
            Ok(node) => node.reads_passwords().await,
            Err(e) => Err(e),
        };
        match readable {
            Ok(r) => m.insert(n.to_string(), role::in_line(r)),
            Err(_) => return Planned::Unknown,
        };
    }
    Planned::Known(m)
}

/// The checks against the nodes: `valid_until` read as a time by the
/// server, data nodes the provider knows, and a role of that name that
/// exists already.
pub(super) async fn check(ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Result<(), Diagnostics> {
    let access = ctx.provider.access();
    if let Some(v) = plan.planned.valid_until.as_str() {
        let mut s = access.session().await?;
        if let Err(e) = s.client().query_one(sql::CHECK_TIMESTAMP, &[&v]).await {
            let msg = access.pg_err("checking valid_until", &e).message;
            return Err(Diagnostics::attr_error(
                AttrPath::attr(VALID_UNTIL),
                "Invalid timestamp",
                format!("{v:?} is not a time PostgreSQL understands ({msg}); write it as `2030-01-01` or `2030-01-01 00:00:00+00`, or `infinity`."),
            ));
        }
    }
    if let Some(items) = plan.planned.data_nodes.known() {
        let known = ctx.provider.data_nodes().await?;
        for (i, n) in items.iter().enumerate() {
            if !known.contains_key(n) {
                let names: Vec<&str> = known.keys().map(String::as_str).collect();
                return Err(Diagnostics::attr_error(
                    AttrPath::attr(DATA_NODES).index(i),
                    "Unknown data node",
                    format!(
                        "The provider knows no data node named {n:?}; known data nodes: {}.",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    if plan.prior.is_none() {
        check_not_taken(&access, plan, &ctx.provider.passwords).await?;
    }
    Ok(())
}

/// At plan time, before anything is made: a role of that name on the access
/// node is adopted when it is exactly what is planned (an apply cut off
/// before Terraform recorded it), and refused with the import command
/// otherwise, so that the conflict shows before a CA, certificates or
/// settings are installed in the same apply. While parts of the role are
/// unknown, apply makes the same decision.
async fn check_not_taken(
    access: &Node,
    plan: &mut PlanInput<'_, Model>,
    checker: &Checker,
) -> Result<(), Diagnostics> {
    let Some(m) = plan.planned.known().map(Role::from) else {
        return Ok(());
    };
    let existing = access.role_read(&m.name, m.valid_until.as_deref()).await?;
    let Some(existing) = existing else {
        return Ok(());
    };
    if m.spec_for(ACCESS_NODE)
        .differences(&existing, checker)
        .is_empty()
    {
        plan.warnings.push_warning(
            None,
            "Identical role will be adopted",
            format!(
                "The access node already has a role named {:?} exactly as configured, most likely from an apply that was interrupted; applying records it in the state.",
                m.name
            ),
        );
        return Ok(());
    }
    Err(exists_error(&m.name))
}

pub(super) fn exists_error(name: &str) -> Diagnostics {
    Diagnostics::attr_error(
        AttrPath::attr(NAME),
        "Role already exists",
        format!(
            "The access node already has a role named {name:?}, with other attributes than configured. Adopt it with `terraform import <address> '{name}'` instead of creating it."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::*;
    use crate::value::Value;

    #[test]
    fn names_and_limits_are_checked_on_the_right_attribute() {
        let paths = |v: &Value| -> Vec<String> {
            validate(&RolePlan::decode_plan(v).unwrap())
                .0
                .iter()
                .map(|d| d.path.clone().map(|p| p.to_string()).unwrap_or_default())
                .collect()
        };
        assert!(paths(&config(&[(NAME, Value::string("Test \"Rôle\" x"))])).is_empty());
        assert_eq!(
            paths(&config(&[(NAME, Value::string("x".repeat(64)))])),
            ["name"]
        );
        assert_eq!(
            paths(&config(&[
                (NAME, Value::string("r")),
                (REASSIGN_OWNED_TO, Value::string("postgres")),
                (CONNECTION_LIMIT, Value::int(-2)),
                (DATA_NODES, Value::list_of_strings(["dn1", "access"])),
            ])),
            ["reassign_owned_to", "connection_limit", "data_nodes[1]"]
        );
    }

    #[test]
    fn unknown_values_are_checked_once_known() {
        let unknown = config(&[
            (NAME, Value::Unknown),
            (CONNECTION_LIMIT, Value::Unknown),
            (DATA_NODES, Value::Unknown),
        ]);
        assert!(validate(&RolePlan::decode_plan(&unknown).unwrap()).is_empty());
    }
}
