//! `timescaledb_distributed_role`: one role on the access node and on every
//! data node, as TimescaleDB multi-node needs it.
//!
//! The access node gets the role as configured; data nodes always get it
//! with LOGIN (the access node logs in as the user) and with the internal
//! password. Statements reach data nodes through `distributed_exec` or
//! direct connections ([`crate::provider::Route`]); reads always look at
//! every node directly, and the `nodes` map says how each node's copy
//! compares, so drift on any one node shows in the plan with its name.

//!
//! The module is split by concern: the model and the resource's contract
//! here; the plan (`plan`), the spec of each node and the stamps of the
//! verifiers set (`spec`), bringing the nodes in line (`converge`), and
//! dropping the role (`drop`).

mod converge;
mod drop;
mod plan;
mod spec;

use std::collections::BTreeMap;

use crate::diag::{AttrPath, Diagnostics};
use crate::password::Encryption;
use crate::provider::ACCESS_NODE;
use crate::role::{self, RoleState};
use crate::schema::{optional, Attribute};
use crate::secret::Secret;
use crate::value::Value;

use super::{
    Applied, ApplyError, Checked, Completion, Ctx, Deleted, PlanInput, Read, Resource, State,
};
use converge::{converge, read_all};
use drop::drop_everywhere;
use spec::{Role, Rotate, Stamps};

crate::model! {
    /// A distributed role, as configured and as kept.
    pub struct Model plan RolePlan {
        NAME => name: String = required("Role name, used exactly as written (case, spaces and quotes included).").force_new(),
        LOGIN => login(role::LOGIN): bool = flag("Whether clients may log in as the role on the access node. Data nodes always get LOGIN.", false),
        PASSWORD => password(role::PASSWORD): Option<Secret> = optional("Password clients use on the access node. Leave it out for a role without a password (trust or certificate authentication).").sensitive(),
        DATA_NODE_PASSWORD => data_node_password: Option<Secret> = optional("Internal password of the role on the data nodes, which the access node presents from its passfile (`timescaledb_passfile_entry`). Defaults to `password`.").sensitive(),
        PASSWORD_WO => password_wo: Option<Secret> = optional("As `password`, kept out of the plan and the state. Conflicts with `password`; needs `password_wo_version`. A password changed by hand on any node still shows in `nodes`: the private state keeps a SHA-256 digest of each salted SCRAM verifier the nodes stored when the password was set (one for all the data nodes when they store the same), and any other verifier is drift.").write_only(),
        DATA_NODE_PASSWORD_WO => data_node_password_wo: Option<Secret> = optional("As `data_node_password`, kept out of the plan and the state. Defaults to `password_wo`; conflicts with `data_node_password`.").write_only(),
        PASSWORD_WO_VERSION => password_wo_version: Option<i64> = optional("Version of the write-only passwords: Terraform cannot see a write-only value change, so change this number to have apply set `password_wo` and `data_node_password_wo` again. Required with them."),
        PASSWORD_ENCRYPTION => password_encryption: String = optional("How the passwords are stored on every node, whatever a node's own `password_encryption` setting says. A password stored in another form (for example an md5 hash set by hand where `scram-sha-256` is asked for) is drift that apply repairs.").one_of(Encryption::NAMES).default(Value::string(Encryption::ScramSha256.name())),
        SUPERUSER => superuser(role::SUPERUSER): bool = flag("`SUPERUSER` on every node.", false),
        CREATEDB => createdb(role::CREATEDB): bool = flag("`CREATEDB` on every node.", false),
        CREATEROLE => createrole(role::CREATEROLE): bool = flag("`CREATEROLE` on every node.", false),
        INHERIT => inherit(role::INHERIT): bool = flag("`INHERIT` on every node.", true),
        REPLICATION => replication(role::REPLICATION): bool = flag("`REPLICATION` on every node.", false),
        BYPASSRLS => bypassrls(role::BYPASSRLS): bool = flag("`BYPASSRLS` on every node.", false),
        CONNECTION_LIMIT => connection_limit(role::CONNECTION_LIMIT): i64 = optional("Connection limit on every node; -1 means none.").default(Value::int(-1)),
        VALID_UNTIL => valid_until(role::VALID_UNTIL): Option<String> = optional("Time after which the role's password is no longer valid (`2030-01-01`, `infinity`). Compared as a time, so any spelling PostgreSQL reads as the same instant plans clean."),
        DATA_NODES => data_nodes: Vec<String> = optional_computed("Data nodes that get the role. Defaults to every data node the provider knows (its `data_nodes` setting or TimescaleDB's catalog), so a data node added later gets the role at the next apply. A data node removed from the list has the role dropped there."),
        DROP_OWNED => drop_owned: bool = flag("On destroy, drop the objects the role owns and its privileges (`DROP OWNED BY`) on every node first, in the database the provider is connected to. When false, destroying a role that still owns or holds privileges on objects fails with the list of them, and nothing is dropped anywhere.", false),
        REASSIGN_OWNED_TO => reassign_owned_to: Option<String> = optional("With `drop_owned`, give the objects the role owns to this role (`REASSIGN OWNED BY ... TO ...`) instead of dropping them."),
        ID => id: Option<String> = computed("The role name, which is also the import ID.").stable(),
        NODES => nodes: BTreeMap<String, String> = computed("How the role on each node (`access` and each data node) compares with the configuration: `in sync`, `missing`, `unreachable`, or `differs: ` and the attributes that differ (e.g. `differs: password, superuser`). After a successful apply every node is `in sync`."),
    }
}

/// A role attribute (`SUPERUSER`, ...) that is a flag.
fn flag(what: &str, default: bool) -> Attribute {
    optional(what).default(Value::Bool(default))
}

pub struct DistributedRole;

#[tonic::async_trait]
impl Resource for DistributedRole {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_distributed_role";

    const DESCRIPTION: &'static str = DESCRIPTION;

    const IMPORT_ID: Option<&'static str> = Some("<role name>");

    fn validate(&self, config: &RolePlan) -> Diagnostics {
        plan::validate(config)
    }

    async fn complete_plan(&self, plan: &mut Completion<'_, Model>) -> Checked {
        plan::complete(plan.ctx, plan.config, plan.planned).await
    }

    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        plan::check(ctx, plan).await
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        plan::check_name(id).map_err(|m| Diagnostics::error("Invalid import ID", m))?;
        let access = ctx.provider.access();
        let a = access.role_read(id, None).await?.ok_or_else(|| {
            Diagnostics::error(
                "Role not found",
                format!("The access node has no role named {id:?}."),
            )
        })?;
        let data_nodes = ctx.provider.data_nodes().await?;
        let mut m = Role::from(Model {
            name: id.to_string(),
            password_encryption: Encryption::ScramSha256.name().to_string(),
            data_nodes: data_nodes.keys().cloned().collect(),
            ..Model::default()
        });
        m.adopt_access(&a);
        let reads = read_all(ctx, &m).await?;
        let statuses = m.statuses(&reads, &ctx.provider.passwords);
        Ok(m.to_model(statuses))
    }

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let private = &prior.private;
        let mut m = Role::from(prior.value);
        if m.write_only() {
            m.stamps = Stamps::parse(private);
        }
        let reads = read_all(ctx, &m).await?;
        let checker = &ctx.provider.passwords;
        m.trust_stamps(&reads, private, checker);
        let all_missing = reads.values().all(|r| matches!(r, Ok(None) | Err(_)));
        if all_missing && matches!(reads.get(ACCESS_NODE), Some(Ok(None))) {
            return Ok(None);
        }
        let mut now = m.clone();
        if let Some(Ok(Some(a))) = reads.get(ACCESS_NODE) {
            now.adopt_access(a);
        }
        // Statuses compare each node with the state, so drift the top-level
        // attributes cannot show (one data node changed) is named.
        let statuses = m.statuses(&reads, checker);
        // Without the write-only password only the stamps of the last apply
        // can judge a verifier: kept as they are until the next apply.
        let private = if m.write_only() {
            private.clone()
        } else {
            m.stamps(&reads, checker)
        };
        Ok(Some(State {
            value: now.to_model(statuses),
            private,
        }))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        converge(ctx, &Role::from(planned), true, &[]).await
    }

    async fn update(&self, ctx: &Ctx, prior: State<Model>, planned: Model) -> Applied<Model> {
        let before = prior.value;
        let mut m = Role::from(planned);
        m.rotate = Rotate::between(&before, &m);
        let removed: Vec<String> = before
            .data_nodes
            .iter()
            .filter(|n| !m.data_nodes.contains(n))
            .cloned()
            .collect();
        converge(ctx, &m, false, &removed).await
    }

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Deleted {
        ctx.check_cancelled()?;
        let m = Role::from(prior);
        drop_everywhere(ctx, &m, &m.targets()).await
    }
}

const DESCRIPTION: &str = "Manages a role on the access node and on every data node, as TimescaleDB multi-node needs: the access node logs in \
         to each data node as the user, so the role must exist everywhere, with LOGIN on the data nodes. Data nodes are \
         reached through `CALL distributed_exec(...)` on the access node or by direct connections (the provider's `fanout` \
         setting); reads always look at every node directly. Passwords are sent to nodes only as SCRAM-SHA-256 (or md5) \
         verifiers the provider computes, and a password changed by hand on any node is found by recomputing the stored \
         verifier from the configured password (only when the stored verifier changed since it was last checked: a \
         digest of each checked verifier is kept in the resource's private state, so refreshes stay cheap). With \
         Terraform 1.11 or later, `password_wo` and `data_node_password_wo` keep the passwords out of the plan and the \
         state; drift is then found from the digests alone. The `nodes` \
         attribute shows how each node's copy compares, so drift on one data node shows in the plan with the node's name.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model as _;
    use crate::schema::object;

    /// A configuration with these attributes set and the rest null.
    pub(super) fn config(pairs: &[(&'static str, Value)]) -> Value {
        let mut v = object(Model::attributes().iter().map(|a| (a.name, Value::Null)));
        for (k, x) in pairs {
            v.set_attr(k, x.clone());
        }
        v
    }
}
