//! `timescaledb_foreign_server_grant`: `GRANT USAGE ON FOREIGN SERVER` on
//! the access node, which a TimescaleDB user needs on each data node's
//! foreign server to reach it.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{AttrPath, Diagnostics};
use crate::model::Planned;
use crate::node::GrantChange;
use crate::value::Value;

use super::{
    default_data_nodes, Applied, Checked, Completion, Ctx, Deleted, PlanInput, Read, Resource,
    State,
};

crate::model! {
    /// A role's `USAGE` on foreign servers, as configured and as kept.
    pub struct Model plan GrantPlan {
        ROLE => role: String = required("Role that receives the privilege, exactly as named.").force_new(),
        SERVERS => servers: BTreeSet<String> = optional_computed("Foreign servers to grant `USAGE` on. Defaults to every data node the provider knows (its `data_nodes` setting or TimescaleDB's catalog), so a data node added later is granted at the next apply."),
        WITH_GRANT_OPTION => with_grant_option: bool = optional("Whether the role may grant the privilege to others.").default(Value::Bool(false)),
        ID => id: Option<String> = computed("The role name.").stable(),
    }
}

pub struct ForeignServerGrant;

#[tonic::async_trait]
impl Resource for ForeignServerGrant {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_foreign_server_grant";

    const DESCRIPTION: &'static str = "Grants a role `USAGE` on foreign servers of the access node (`GRANT USAGE ON FOREIGN SERVER`). On TimescaleDB \
         multi-node every data node is a foreign server named after it, and a user needs this privilege to reach it. The \
         privileges are read back from `pg_foreign_server.srvacl`, so a REVOKE made by hand shows in the plan. Only the \
         servers listed here are managed; privileges on other servers are left alone.";

    const IMPORT_ID: Option<&'static str> = Some("<role> or <role>/<server>,<server>,...");

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let m = prior.value;
        let Some(granted) = ctx.provider.access().server_grants(&m.role).await? else {
            return Ok(None);
        };
        Ok(m.read_back(&granted).map(State::from))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        Ok(apply(ctx, None, planned).await?.into())
    }

    async fn update(&self, ctx: &Ctx, prior: State<Model>, planned: Model) -> Applied<Model> {
        Ok(apply(ctx, Some(&prior.value), planned).await?.into())
    }

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Deleted {
        ctx.check_cancelled()?;
        let access = ctx.provider.access();
        let Some(granted) = access.server_grants(&prior.role).await? else {
            return Ok(Diagnostics::new());
        };
        let revoke: Vec<String> = prior
            .servers
            .iter()
            .filter(|s| granted.contains_key(*s))
            .cloned()
            .collect();
        access
            .change_server_grants(
                &prior.role,
                &GrantChange {
                    revoke,
                    ..Default::default()
                },
            )
            .await
            .map(|_| Diagnostics::new())
            .map_err(Diagnostics::from)
    }

    fn validate(&self, config: &GrantPlan) -> Diagnostics {
        let mut d = Diagnostics::new();
        if let Some(r) = config.role.as_str() {
            if r.is_empty() {
                d.push_error(
                    Some(AttrPath::attr(ROLE)),
                    "Invalid role name",
                    "`role` cannot be empty.",
                );
            }
        }
        if let Some(items) = config.servers.known() {
            if items.is_empty() {
                d.push_error(
                    Some(AttrPath::attr(SERVERS)),
                    "No servers",
                    "`servers` cannot be empty; leave it out to grant on every data node's foreign server.",
                );
            }
        }
        d
    }

    async fn complete_plan(&self, plan: &mut Completion<'_, Model>) -> Checked {
        let ctx = plan.ctx;
        let config = plan.config;
        let planned = &mut *plan.planned;
        planned.id = planned.role.map(|r| Some(r.clone()));
        if config.servers.is_null() {
            match default_data_nodes(ctx).await? {
                Some(all) if all.is_empty() => {
                    return Err(Diagnostics::attr_error(
                        AttrPath::attr(SERVERS),
                        "No data nodes to grant on",
                        "The provider knows no data nodes (neither its `data_nodes` setting nor TimescaleDB's catalog names any); list the foreign servers in `servers`.",
                    ))
                }
                Some(all) => planned.servers.set(all.into_iter().collect()),
                None => planned.servers = Planned::Unknown,
            }
        }
        Ok(())
    }

    /// Foreign servers the access node does not have are refused; the
    /// role is not looked up, since it may be made in the same apply.
    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        let Some(servers) = plan.planned.servers.known() else {
            return Ok(());
        };
        let servers: Vec<String> = servers.iter().cloned().collect();
        let missing = ctx.provider.access().missing_servers(&servers).await?;
        if !missing.is_empty() {
            return Err(Diagnostics::attr_error(
                AttrPath::attr(SERVERS),
                "Unknown foreign server",
                format!(
                    "The access node has no foreign server named {}. TimescaleDB names each data node's foreign server after the data node.",
                    missing.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        let (role, servers) = match id.rsplit_once('/') {
            Some((r, s)) => (
                r.to_string(),
                Some(
                    s.split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect::<Vec<_>>(),
                ),
            ),
            None => (id.to_string(), None),
        };
        let granted = ctx
            .provider
            .access()
            .server_grants(&role)
            .await?
            .ok_or_else(|| {
                Diagnostics::error(
                    "Role not found",
                    format!("The access node has no role named {role:?}."),
                )
            })?;
        let servers = servers.unwrap_or_else(|| granted.keys().cloned().collect());
        let not_granted: Vec<&String> = servers
            .iter()
            .filter(|s| !granted.contains_key(*s))
            .collect();
        if servers.is_empty() || !not_granted.is_empty() {
            return Err(Diagnostics::error(
                "Grant not found",
                format!(
                    "Role {role:?} has no USAGE on foreign server{} {}.",
                    if not_granted.len() == 1 { "" } else { "s" },
                    if servers.is_empty() {
                        "at all".to_string()
                    } else {
                        not_granted
                            .iter()
                            .map(|s| format!("{s:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ));
        }
        Ok(Model {
            with_grant_option: servers.iter().all(|s| granted[s]),
            servers: servers.into_iter().collect(),
            id: Some(role.clone()),
            role,
        })
    }
}

/// Grants what `m` asks for and takes away what `before` had that `m` no
/// longer has, in one transaction; returns the state read back.
async fn apply(ctx: &Ctx, before: Option<&Model>, mut m: Model) -> Result<Model, Diagnostics> {
    m.id = Some(m.role.clone());
    ctx.check_cancelled()?;
    let access = ctx.provider.access();
    let current = access
        .server_grants(&m.role)
        .await?
        .ok_or_else(|| {
            Diagnostics::attr_error(
                AttrPath::attr(ROLE),
                "Role not found",
                format!(
                    "The access node has no role named {:?}; create it first (`timescaledb_distributed_role`).",
                    m.role
                ),
            )
        })?;
    let mut change = GrantChange {
        with_grant_option: m.with_grant_option,
        ..Default::default()
    };
    if let Some(b) = before {
        change.revoke = b
            .servers
            .iter()
            .filter(|s| !m.servers.contains(*s) && current.contains_key(*s))
            .cloned()
            .collect();
    }
    for s in &m.servers {
        match current.get(s) {
            Some(g) if *g == m.with_grant_option => {}
            Some(true) => change.revoke_option.push(s.clone()),
            _ => change.grant.push(s.clone()),
        }
    }
    // Every role's privileges, read in the transaction that made the change.
    let all = access.change_server_grants(&m.role, &change).await?;
    let granted = all.get(&m.role).cloned().unwrap_or_default();
    match m.read_back(&granted) {
        Some(now) if now == m => Ok(now),
        _ => Err(Diagnostics::error(
            "Grant not in force after apply",
            format!(
                "After granting, role {:?} has USAGE on {:?} rather than the servers asked for.",
                m.role,
                granted.keys().collect::<Vec<_>>()
            ),
        )),
    }
}

impl Model {
    /// The managed part of what is granted; `None` when none of it is.
    fn read_back(&self, granted: &BTreeMap<String, bool>) -> Option<Model> {
        let servers: BTreeSet<String> = self
            .servers
            .iter()
            .filter(|s| granted.contains_key(*s))
            .cloned()
            .collect();
        if servers.is_empty() {
            return None;
        }
        // One server without the grant option the state claims (or with one
        // it does not) is enough to show the difference.
        let with_grant_option = if servers.iter().all(|s| granted[s] == self.with_grant_option) {
            self.with_grant_option
        } else {
            !self.with_grant_option
        };
        Some(Model {
            role: self.role.clone(),
            servers,
            with_grant_option,
            id: Some(self.role.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_shows_revokes_and_grant_option_changes() {
        let m = Model {
            role: "r".into(),
            servers: BTreeSet::from(["dn1".into(), "dn2".into()]),
            with_grant_option: false,
            id: Some("r".into()),
        };
        let all = BTreeMap::from([
            ("dn1".to_string(), false),
            ("dn2".to_string(), false),
            ("other".to_string(), true),
        ]);
        assert_eq!(m.read_back(&all).unwrap(), m);
        let one = BTreeMap::from([("dn2".to_string(), false)]);
        assert_eq!(
            m.read_back(&one).unwrap().servers,
            BTreeSet::from(["dn2".into()])
        );
        let opt = BTreeMap::from([("dn1".to_string(), true), ("dn2".to_string(), false)]);
        assert!(m.read_back(&opt).unwrap().with_grant_option);
        assert_eq!(m.read_back(&BTreeMap::new()), None);
    }
}
