//! `timescaledb_foreign_server_grant`: `GRANT USAGE ON FOREIGN SERVER` on
//! the access node, which a TimescaleDB user needs on each data node's
//! foreign server to reach it.

use std::collections::BTreeMap;

use crate::diag::{AttrPath, Diagnostics};
use crate::node::GrantChange;
use crate::schema::{object, Attribute, Fields, Mode, Schema};
use crate::value::{Type, Value};

use super::{
    default_data_nodes, plan_id_from, ApplyError, Ctx, Import, PlanInput, Resource, State,
};

pub const ROLE: &str = "role";
pub const SERVERS: &str = "servers";
pub const WITH_GRANT_OPTION: &str = "with_grant_option";
pub const ID: &str = "id";

pub struct ForeignServerGrant;

#[tonic::async_trait]
impl Resource for ForeignServerGrant {
    fn type_name(&self) -> &'static str {
        "timescaledb_foreign_server_grant"
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut d = Diagnostics::new();
        if let Value::String(r) = config.attr(ROLE) {
            if r.is_empty() {
                d.push_error(
                    Some(AttrPath::attr(ROLE)),
                    "Invalid role name",
                    "`role` cannot be empty.",
                );
            }
        }
        if let Value::Set(items) = config.attr(SERVERS) {
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

    async fn complete_plan(
        &self,
        ctx: Option<&Ctx>,
        config: &Value,
        planned: &mut Value,
    ) -> Result<(), Diagnostics> {
        plan_id_from(planned, ROLE, ID);
        if config.attr(SERVERS).is_null() {
            let servers = match default_data_nodes(ctx).await? {
                Some(all) if all.is_empty() => {
                    return Err(Diagnostics::attr_error(
                        AttrPath::attr(SERVERS),
                        "No data nodes to grant on",
                        "The provider knows no data nodes (neither its `data_nodes` setting nor TimescaleDB's catalog names any); list the foreign servers in `servers`.",
                    ))
                }
                Some(all) => Value::set(all.into_iter().map(Value::string).collect()),
                None => Value::Unknown,
            };
            planned.set_attr(SERVERS, servers);
        }
        Ok(())
    }

    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_>) -> Result<(), Diagnostics> {
        if !plan.planned.attr(SERVERS).is_wholly_known() {
            return Ok(());
        }
        let servers = Fields::new(plan.planned).strings(SERVERS);
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

    async fn read(&self, ctx: &Ctx, prior: &State) -> Result<Option<State>, Diagnostics> {
        let m = Model::from_value(&prior.value)?;
        let Some(granted) = ctx.provider.access().server_grants(&m.role).await? else {
            return Ok(None);
        };
        Ok(m.read_back(&granted).map(|x| x.to_state().into()))
    }

    async fn create(&self, ctx: &Ctx, planned: &Value) -> Result<State, ApplyError> {
        let m = Model::from_value(planned)?;
        Ok(apply(ctx, None, &m).await?.into())
    }

    async fn update(&self, ctx: &Ctx, prior: &State, planned: &Value) -> Result<State, ApplyError> {
        let before = Model::from_value(&prior.value)?;
        let m = Model::from_value(planned)?;
        Ok(apply(ctx, Some(&before), &m).await?.into())
    }

    async fn delete(&self, ctx: &Ctx, prior: &Value) -> Result<(), Diagnostics> {
        ctx.check_cancelled()?;
        let m = Model::from_value(prior)?;
        let access = ctx.provider.access();
        let Some(granted) = access.server_grants(&m.role).await? else {
            return Ok(());
        };
        let revoke: Vec<String> = m
            .servers
            .iter()
            .filter(|s| granted.contains_key(*s))
            .cloned()
            .collect();
        access
            .change_server_grants(
                &m.role,
                &GrantChange {
                    revoke,
                    ..Default::default()
                },
            )
            .await
            .map_err(Diagnostics::from)
    }

    fn importer(&self) -> Option<&dyn Import> {
        Some(self)
    }
}

#[tonic::async_trait]
impl Import for ForeignServerGrant {
    fn id_format(&self) -> &'static str {
        "<role> or <role>/<server>,<server>,..."
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Value, Diagnostics> {
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
        let m = Model {
            role,
            with_grant_option: servers.iter().all(|s| granted[s]),
            servers,
        };
        Ok(m.to_state())
    }
}

/// Grants what `m` asks for and takes away what `before` had that `m` no
/// longer has, in one transaction; returns the state read back.
async fn apply(ctx: &Ctx, before: Option<&Model>, m: &Model) -> Result<Value, Diagnostics> {
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
            .filter(|s| !m.servers.contains(s) && current.contains_key(*s))
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
    access.change_server_grants(&m.role, &change).await?;
    let granted = access.server_grants(&m.role).await?.unwrap_or_default();
    match m.read_back(&granted) {
        Some(now) if now == *m => Ok(now.to_state()),
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

#[derive(Clone, Debug, PartialEq)]
struct Model {
    role: String,
    servers: Vec<String>,
    with_grant_option: bool,
}

impl Model {
    fn from_value(v: &Value) -> Result<Model, Diagnostics> {
        let mut f = Fields::new(v);
        let m = Model {
            role: f.string(ROLE),
            servers: f.strings(SERVERS),
            with_grant_option: f.bool_or(WITH_GRANT_OPTION, false),
        };
        f.finish()?;
        Ok(m)
    }

    /// The managed part of what is granted; `None` when none of it is.
    fn read_back(&self, granted: &BTreeMap<String, bool>) -> Option<Model> {
        let servers: Vec<String> = self
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
        })
    }

    fn to_state(&self) -> Value {
        object([
            (ROLE, Value::string(&self.role)),
            (
                SERVERS,
                Value::set(self.servers.iter().map(Value::string).collect()),
            ),
            (WITH_GRANT_OPTION, Value::Bool(self.with_grant_option)),
            (ID, Value::string(&self.role)),
        ])
    }
}

fn schema() -> Schema {
    Schema::new(
        "Grants a role `USAGE` on foreign servers of the access node (`GRANT USAGE ON FOREIGN SERVER`). On TimescaleDB \
         multi-node every data node is a foreign server named after it, and a user needs this privilege to reach it. The \
         privileges are read back from `pg_foreign_server.srvacl`, so a REVOKE made by hand shows in the plan. Only the \
         servers listed here are managed; privileges on other servers are left alone.",
        vec![
            Attribute::new(ROLE, Type::String, Mode::Required, "Role that receives the privilege, exactly as named.").force_new(),
            Attribute::new(SERVERS, Type::set(Type::String), Mode::OptionalComputed, "Foreign servers to grant `USAGE` on. Defaults to every data node the provider knows (its `data_nodes` setting or TimescaleDB's catalog), so a data node added later is granted at the next apply."),
            Attribute::new(WITH_GRANT_OPTION, Type::Bool, Mode::Optional, "Whether the role may grant the privilege to others.").default(Value::Bool(false)),
            Attribute::new(ID, Type::String, Mode::Computed, "The role name.").stable(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_shows_revokes_and_grant_option_changes() {
        let m = Model {
            role: "r".into(),
            servers: vec!["dn1".into(), "dn2".into()],
            with_grant_option: false,
        };
        let all = BTreeMap::from([
            ("dn1".to_string(), false),
            ("dn2".to_string(), false),
            ("other".to_string(), true),
        ]);
        assert_eq!(m.read_back(&all).unwrap(), m);
        let one = BTreeMap::from([("dn2".to_string(), false)]);
        assert_eq!(m.read_back(&one).unwrap().servers, ["dn2"]);
        let opt = BTreeMap::from([("dn1".to_string(), true), ("dn2".to_string(), false)]);
        assert!(m.read_back(&opt).unwrap().with_grant_option);
        assert_eq!(m.read_back(&BTreeMap::new()), None);
    }
}
