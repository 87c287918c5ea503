//! `timescaledb_distributed_role`: one role on the access node and on every
//! data node, as TimescaleDB multi-node needs it.
//!
//! The access node gets the role as configured; data nodes always get it
//! with LOGIN (the access node logs in as the user) and with the internal
//! password. Statements reach data nodes through `distributed_exec` or
//! direct connections ([`crate::provider::Route`]); reads always look at
//! every node directly, and the `nodes` map says how each node's copy
//! compares, so drift on any one node shows in the plan with its name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diag::{AttrPath, Diagnostics};
use crate::model::Model as _;
use crate::node::{ErrorKind, Node, NodeError};
use crate::password::{self, Checker, Encryption};
use crate::provider::{FanOut, ACCESS_NODE};
use crate::role::{self, RoleSpec, RoleState, StoredPassword, MISSING, UNREACHABLE};
use crate::schema::{optional, Attribute};
use crate::secret::Secret;
use crate::sql;
use crate::value::Value;

use super::{
    default_data_nodes, plan_id_from, Applied, ApplyError, Ctx, Import, ModifyPlan, PlanInput,
    Read, Resource, State, ValidateConfig,
};

crate::model! {
    /// A distributed role, as configured and as kept.
    pub struct Model {
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

/// PostgreSQL cuts longer names short (NAMEDATALEN - 1).
const MAX_NAME_BYTES: usize = 63;

pub struct DistributedRole;

/// The outcome of reading one node.
type NodeRead = Result<Option<RoleState>, NodeError>;

impl ValidateConfig for DistributedRole {
    fn validate(&self, config: &Value) -> Diagnostics {
        let mut d = Diagnostics::new();
        if let Value::String(n) = config.attr(NAME) {
            if let Err(m) = check_name(n) {
                d.push_error(Some(AttrPath::attr(NAME)), "Invalid role name", m);
            }
        }
        if let Value::String(n) = config.attr(REASSIGN_OWNED_TO) {
            if let Err(m) = check_name(n) {
                d.push_error(
                    Some(AttrPath::attr(REASSIGN_OWNED_TO)),
                    "Invalid role name",
                    m,
                );
            }
            if matches!(config.attr(DROP_OWNED), Value::Bool(false) | Value::Null) {
                d.push_error(
                    Some(AttrPath::attr(REASSIGN_OWNED_TO)),
                    "reassign_owned_to needs drop_owned",
                    "Objects are reassigned as part of dropping what the role owns on destroy; set `drop_owned = true` too.",
                );
            }
        }
        check_write_only(config, &mut d);
        for a in [
            PASSWORD,
            DATA_NODE_PASSWORD,
            PASSWORD_WO,
            DATA_NODE_PASSWORD_WO,
        ] {
            if let Value::String(p) = config.attr(a) {
                if p.contains('\0') {
                    d.push_error(
                        Some(AttrPath::attr(a)),
                        "Invalid password",
                        "A password cannot contain a NUL character: libpq ends a password there, so no client could ever send the password the verifier is made from.",
                    );
                }
            }
        }
        if let Value::Number(n) = config.attr(CONNECTION_LIMIT) {
            if n.as_i64().is_none_or(|i| i < -1 || i > i64::from(i32::MAX)) {
                d.push_error(
                    Some(AttrPath::attr(CONNECTION_LIMIT)),
                    "Invalid connection limit",
                    format!("{n} is not a connection limit: use -1 (no limit) or a whole number of connections."),
                );
            }
        }
        if let Value::List(items) = config.attr(DATA_NODES) {
            for (i, item) in items.iter().enumerate() {
                if item.as_str() == Some(ACCESS_NODE) {
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
}

#[tonic::async_trait]
impl ModifyPlan for DistributedRole {
    async fn complete_plan(
        &self,
        ctx: Option<&Ctx>,
        config: &Value,
        planned: &mut Value,
    ) -> Result<(), Diagnostics> {
        // A create (or replace) has no id yet; what it achieves on each
        // node is known after apply: a data node that cannot be reached
        // then is recorded as such, not promised as in sync.
        let creating = planned.attr(ID).is_unknown();
        plan_id_from(planned, NAME, ID);
        if config.attr(DATA_NODES).is_null() {
            let all = default_data_nodes(ctx).await?;
            planned.set_attr(
                DATA_NODES,
                all.map_or(Value::Unknown, Value::list_of_strings),
            );
        }
        // After apply every node has the role as configured (and says so,
        // where the provider may not read the stored password).
        let nodes = match (ctx, planned.attr(DATA_NODES)) {
            (Some(ctx), Value::List(items))
                if !creating && planned.attr(DATA_NODES).is_wholly_known() =>
            {
                let names =
                    std::iter::once(ACCESS_NODE).chain(items.iter().filter_map(Value::as_str));
                planned_statuses(ctx, names).await
            }
            _ => Value::Unknown,
        };
        planned.set_attr(NODES, if creating { Value::Unknown } else { nodes });
        Ok(())
    }

    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_>) -> Result<(), Diagnostics> {
        let access = ctx.provider.access();
        if let Value::String(v) = plan.planned.attr(VALID_UNTIL) {
            let mut s = access.session().await?;
            if let Err(e) = s.client().query_one(sql::CHECK_TIMESTAMP, &[v]).await {
                let msg = access.pg_err("checking valid_until", &e).message;
                return Err(Diagnostics::attr_error(
                    AttrPath::attr(VALID_UNTIL),
                    "Invalid timestamp",
                    format!("{v:?} is not a time PostgreSQL understands ({msg}); write it as `2030-01-01` or `2030-01-01 00:00:00+00`, or `infinity`."),
                ));
            }
        }
        if let Value::List(items) = plan.planned.attr(DATA_NODES) {
            let known = ctx.provider.data_nodes().await?;
            for (i, item) in items.iter().enumerate() {
                if let Some(n) = item.as_str() {
                    if !known.contains_key(n) {
                        let names: Vec<&str> = known.keys().map(String::as_str).collect();
                        return Err(Diagnostics::attr_error(
                            AttrPath::attr(DATA_NODES).index(i),
                            "Unknown data node",
                            format!("The provider knows no data node named {n:?}; known data nodes: {}.", if names.is_empty() { "none".to_string() } else { names.join(", ") }),
                        ));
                    }
                }
            }
        }
        if plan.prior.is_none() && plan.planned.attr(NAME).is_wholly_known() {
            check_not_taken(&access, plan, &ctx.provider.passwords).await?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Resource for DistributedRole {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_distributed_role";

    const DESCRIPTION: &'static str = DESCRIPTION;

    crate::offers!(ValidateConfig, ModifyPlan, Import);

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

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Result<(), Diagnostics> {
        ctx.check_cancelled()?;
        let m = Role::from(prior);
        drop_everywhere(ctx, &m, &m.targets()).await
    }
}

#[tonic::async_trait]
impl Import for DistributedRole {
    type Model = Model;

    fn id_format(&self) -> &'static str {
        "<role name>"
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        check_name(id).map_err(|m| Diagnostics::error("Invalid import ID", m))?;
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
}

/// Each node's status after apply: in line, with the note where the stored
/// password cannot be read; unknown when a node cannot tell now.
async fn planned_statuses<'a>(ctx: &Ctx, names: impl Iterator<Item = &'a str>) -> Value {
    let mut m = BTreeMap::new();
    for n in names {
        let readable = match ctx.provider.node(n).await {
            Ok(node) => node.reads_passwords().await,
            Err(e) => Err(e),
        };
        match readable {
            Ok(r) => m.insert(n.to_string(), Value::string(role::in_line(r))),
            Err(_) => return Value::Unknown,
        };
    }
    Value::Map(m)
}

/// At plan time, before anything is made: a role of that name on the access
/// node is adopted when it is exactly what is planned (an apply cut off
/// before Terraform recorded it), and refused with the import command
/// otherwise, so that the conflict shows before a CA, certificates or
/// settings are installed in the same apply.
async fn check_not_taken(
    access: &Node,
    plan: &mut PlanInput<'_>,
    checker: &Checker,
) -> Result<(), Diagnostics> {
    let Ok(m) = Model::from_value(plan.planned).map(Role::from) else {
        return Ok(()); // parts still unknown: apply checks again
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

fn exists_error(name: &str) -> Diagnostics {
    Diagnostics::attr_error(
        AttrPath::attr(NAME),
        "Role already exists",
        format!(
            "The access node already has a role named {name:?}, with other attributes than configured. Adopt it with `terraform import <address> '{name}'` instead of creating it."
        ),
    )
}

/// The plain and the write-only form of the passwords do not mix, and a
/// write-only password comes with the version that says when it changed.
fn check_write_only(config: &Value, d: &mut Diagnostics) {
    let set = |a: &str| !config.attr(a).is_null();
    let write_only = set(PASSWORD_WO) || set(DATA_NODE_PASSWORD_WO);
    for (plain, wo) in [
        (PASSWORD, PASSWORD_WO),
        (DATA_NODE_PASSWORD, DATA_NODE_PASSWORD_WO),
    ] {
        if set(plain) && write_only {
            d.push_error(
                Some(AttrPath::attr(plain)),
                "Conflicting password forms",
                format!("`{plain}` is kept in state and `{wo}` is not; use the write-only form for both passwords, or the plain form for both."),
            );
        }
    }
    if write_only && !set(PASSWORD_WO_VERSION) {
        d.push_error(
            Some(AttrPath::attr(PASSWORD_WO_VERSION)),
            "Missing password version",
            "A write-only password is not in the state, so Terraform cannot see it change: set `password_wo_version`, and change it whenever a write-only password changes.",
        );
    }
    if set(PASSWORD_WO_VERSION)
        && !write_only
        && config.attr(PASSWORD_WO).is_wholly_known()
        && config.attr(DATA_NODE_PASSWORD_WO).is_wholly_known()
    {
        d.push_error(
            Some(AttrPath::attr(PASSWORD_WO_VERSION)),
            "Version without a write-only password",
            "`password_wo_version` versions `password_wo` and `data_node_password_wo`; set one of them, or remove the version.",
        );
    }
    if write_only && config.attr(PASSWORD_ENCRYPTION).as_str() == Some("md5") {
        d.push_error(
            Some(AttrPath::attr(PASSWORD_ENCRYPTION)),
            "md5 with a write-only password",
            "A write-only password is checked for drift by a digest of the verifier each node stores; an md5 verifier has no salt, so that digest would let anyone with the state test guesses of the password. Use `scram-sha-256`, or the plain `password`.",
        );
    }
}

fn check_name(n: &str) -> Result<(), String> {
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

/// Reads the role on the access node and each data node of `m`, at once.
/// An unreachable data node is an outcome, not an error; an unreachable
/// access node is an error.
async fn read_all(ctx: &Ctx, m: &Role) -> Result<BTreeMap<String, NodeRead>, Diagnostics> {
    let mut nodes = Vec::new();
    for n in m.targets() {
        nodes.push((n.clone(), ctx.provider.node(&n).await));
    }
    let reads = crate::provider::fan_out(nodes.into_iter().map(|(n, node)| {
        let valid_until = m.valid_until.clone();
        let name = m.name.clone();
        async move {
            let r = match node {
                Ok(node) => node.role_read(&name, valid_until.as_deref()).await,
                Err(e) => Err(e),
            };
            (n, r)
        }
    }))
    .await;
    let reads: BTreeMap<String, NodeRead> = reads.into_iter().collect();
    if let Some(Err(e)) = reads.get(ACCESS_NODE) {
        return Err(Diagnostics::from(e));
    }
    for r in reads.values() {
        if let Err(e) = r {
            if !is_unreachable(e) {
                return Err(Diagnostics::from(e));
            }
        }
    }
    Ok(reads)
}

fn is_unreachable(e: &NodeError) -> bool {
    matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Authentication)
}

/// What an apply found wrong so far: diagnostics, and the nodes they are
/// about (which then are not reported again as out of line).
#[derive(Default)]
struct Outcome {
    diags: Diagnostics,
    failed: std::collections::BTreeSet<String>,
}

/// Makes every node of `m` hold the role as specified, and drops it from
/// `removed` data nodes. Returns the state with its private data (stamps of
/// the verifiers now in place), or the state that exists now with
/// diagnostics naming each node that could not be brought in line.
async fn converge(
    ctx: &Ctx,
    m: &Role,
    creating: bool,
    removed: &[String],
) -> Result<State<Model>, ApplyError<Model>> {
    ctx.check_cancelled()?;
    let reads = read_all(ctx, m).await?;
    // The access node first: when it fails nothing else is touched.
    converge_access(ctx, m, creating, reads.get(ACCESS_NODE)).await?;
    let mut outcome = Outcome::default();
    converge_data_nodes(ctx, m, &reads, &mut outcome).await;
    if !removed.is_empty() {
        if let Err(d) = drop_everywhere(ctx, m, removed).await {
            outcome.failed.extend(removed.iter().cloned());
            outcome.diags.extend(d);
        }
    }
    // What is there now decides the state.
    let reads = read_all(ctx, m).await?;
    conclude(m, creating, &reads, outcome, &ctx.provider.passwords)
}

/// Creates or alters the role on the access node. A role found there on
/// create is adopted when it is exactly as specified (an apply cut off
/// before Terraform could record it leaves just that behind), refused
/// otherwise.
async fn converge_access(
    ctx: &Ctx,
    m: &Role,
    creating: bool,
    read: Option<&NodeRead>,
) -> Result<(), Diagnostics> {
    let access = ctx.provider.access();
    let checker = &ctx.provider.passwords;
    let spec = m.spec_for(ACCESS_NODE);
    match read {
        Some(Ok(Some(state))) if creating && !spec.differences(state, checker).is_empty() => {
            Err(exists_error(&m.name))
        }
        Some(Ok(Some(state))) => {
            let d = spec.differences(state, checker);
            if !d.is_empty() {
                access
                    .role_exec(
                        &format!("altering role {:?}", m.name),
                        &m.name,
                        &spec.alter_sql(&d, checker),
                    )
                    .await?;
            }
            Ok(())
        }
        _ => Ok(access
            .role_exec(
                &format!("creating role {:?}", m.name),
                &m.name,
                &spec.create_sql(checker),
            )
            .await?),
    }
}

/// Creates or alters the role on the data nodes, grouped by what each
/// needs (one `distributed_exec` call per group).
async fn converge_data_nodes(
    ctx: &Ctx,
    m: &Role,
    reads: &BTreeMap<String, NodeRead>,
    outcome: &mut Outcome,
) {
    let spec = m.spec_for("data node");
    let checker = &ctx.provider.passwords;
    let mut to_create = Vec::new();
    let mut to_alter = Vec::new();
    let mut alter_diffs: Vec<&'static str> = Vec::new();
    for n in &m.data_nodes {
        match reads.get(n) {
            Some(Ok(None)) => to_create.push(n.clone()),
            Some(Ok(Some(state))) => {
                let d = spec.differences(state, checker);
                if !d.is_empty() {
                    for x in d {
                        if !alter_diffs.contains(&x) {
                            alter_diffs.push(x);
                        }
                    }
                    to_alter.push(n.clone());
                }
            }
            Some(Err(e)) => {
                outcome.failed.insert(n.clone());
                outcome.diags.extend(Diagnostics::from(e));
            }
            None => {}
        }
    }
    for (nodes, verb) in [(to_create, "creating"), (to_alter, "altering")] {
        if nodes.is_empty() {
            continue; // no statement to build (a password verifier costs a key derivation)
        }
        let statement = match verb {
            "creating" => spec.create_sql(checker),
            _ => spec.alter_sql(&alter_diffs, checker),
        };
        let doing = format!("{verb} role {:?}", m.name);
        let fan = ctx
            .provider
            .exec_on_data_nodes(&nodes, &doing, &statement, |node: Arc<Node>| {
                let (doing, statement) = (doing.clone(), statement.clone());
                let name = m.name.clone();
                async move { node.role_exec(&doing, &name, &statement).await }
            })
            .await;
        collect(&mut outcome.diags, &mut outcome.failed, fan);
    }
}

/// The result of an apply from what the nodes hold now.
fn conclude(
    m: &Role,
    creating: bool,
    reads: &BTreeMap<String, NodeRead>,
    outcome: Outcome,
    checker: &Checker,
) -> Result<State<Model>, ApplyError<Model>> {
    let Outcome { mut diags, failed } = outcome;
    // What was sent is what is asked for now: a password that cannot be
    // read back is no longer to be set.
    let m = &Role {
        rotate: Rotate::default(),
        ..m.clone()
    };
    let statuses = m.statuses(reads, checker);
    let state = State {
        value: m.to_model(statuses.clone()),
        private: m.stamps(reads, checker),
    };
    for (n, s) in &statuses {
        if !role::is_in_line(s) && !failed.contains(n) {
            diags.push_error(
                Some(AttrPath::attr(NODES).key(n)),
                "Role not in line after apply",
                format!("On node {n:?} the role is {s} after the change was made."),
            );
        }
    }
    if !diags.has_errors() {
        if diags.is_empty() {
            return Ok(state);
        }
        // Warnings only (a fallback to direct connections): shown with the
        // result.
        return Err(ApplyError::unfinished(state, diags));
    }
    // A create that made the role on the access node but not on every data
    // node (one down, or a distributed_exec call that failed as a whole):
    // recorded as made, with warnings, so that Terraform does not taint it
    // and drop the role everywhere at the next apply.
    if creating
        && statuses
            .get(ACCESS_NODE)
            .is_some_and(|s| role::is_in_line(s))
    {
        let mut warnings = Diagnostics::new();
        for d in diags.0 {
            warnings.push_warning(d.path, d.summary, d.detail);
        }
        warnings.push_warning(
            None,
            format!("Role {:?} is not yet on every node", m.name),
            "The role was created where it could be and is recorded in the state; `nodes` shows where it is not yet. \
             Run apply again once those nodes are back: it finishes the role there, in place (nothing is dropped).",
        );
        return Err(ApplyError::unfinished(state, warnings));
    }
    diags.push_error(
        None,
        format!("Role {:?} is not yet on every node", m.name),
        "What was made is recorded in the state (see `nodes`); run apply again once the nodes named above are back to finish.",
    );
    // Without private data: the stamps of a failed apply are not kept.
    Err(ApplyError {
        diags,
        partial: Some(State::from(state.value)),
    })
}

/// Adds each failed node's diagnostic (once per distinct message: a failed
/// `distributed_exec` fails every node of the call with one message).
/// A fallback from `distributed_exec` to direct connections is a warning.
fn collect(diags: &mut Diagnostics, failed: &mut std::collections::BTreeSet<String>, fan: FanOut) {
    if let Some(why) = fan.fell_back {
        diags.push_warning(None, "distributed_exec could not reach the data nodes", why);
    }
    let mut seen = Vec::new();
    for (n, r) in fan.outcomes {
        if let Err(e) = r {
            failed.insert(n);
            if !seen.contains(&e.message) {
                seen.push(e.message.clone());
                diags.extend(Diagnostics::from(&e));
            }
        }
    }
}

/// Drops the role from `targets` (the access node last). Nothing is dropped
/// anywhere when a node cannot be reached or still has objects depending on
/// the role (unless `drop_owned` asks for them to go).
async fn drop_everywhere(ctx: &Ctx, m: &Role, targets: &[String]) -> Result<(), Diagnostics> {
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
    collect(&mut d, &mut Default::default(), outcomes);
    if d.has_errors() {
        return Err(d);
    }
    if present.iter().any(|n| n.name == ACCESS_NODE) {
        ctx.provider
            .access()
            .role_exec(&doing, &m.name, &statement)
            .await?;
    }
    // Warnings only (a fallback to direct connections): the server shows
    // them with the successful destroy.
    if d.is_empty() {
        Ok(())
    } else {
        Err(d)
    }
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

/// The role as the resource's operations work on it: the model, and for
/// write-only passwords the private state's stamps of the verifiers set by
/// the last apply.
#[derive(Clone, Debug, PartialEq)]
struct Role {
    model: Model,
    stamps: Stamps,
    rotate: Rotate,
}

impl From<Model> for Role {
    fn from(model: Model) -> Role {
        Role {
            model,
            stamps: Stamps::default(),
            rotate: Rotate::default(),
        }
    }
}

/// Which passwords the configuration changed since the last apply (see
/// [`RoleSpec::rotate`]): a node whose stored password the provider may
/// not read gets those set again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Rotate {
    access: bool,
    data: bool,
}

impl Rotate {
    fn between(before: &Model, after: &Model) -> Rotate {
        let data = |m: &Model| m.data_node_password.clone().or(m.password.clone());
        let both = before.password_wo_version != after.password_wo_version
            || before.password_encryption != after.password_encryption;
        Rotate {
            access: both || before.password != after.password,
            data: both || data(before) != data(after),
        }
    }
}

/// The private state: [`password::stamp`]s of the stored verifiers found
/// to match the configured passwords, by the password they match (the
/// access node's, the data nodes'). The data nodes normally store one and
/// the same verifier, so the state holds one digest for all of them, not
/// one per node: Terraform writes every resource's private state out again
/// with each resource it applies.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Stamps {
    #[serde(rename = "a", default, skip_serializing_if = "BTreeSet::is_empty")]
    access: BTreeSet<String>,
    #[serde(rename = "d", default, skip_serializing_if = "BTreeSet::is_empty")]
    data: BTreeSet<String>,
}

impl Stamps {
    /// Reads the private state: this form, or the one earlier releases
    /// wrote (a stamp by node name). Anything else holds no stamps.
    fn parse(private: &[u8]) -> Stamps {
        if let Ok(by_node) = serde_json::from_slice::<BTreeMap<String, String>>(private) {
            let mut s = Stamps::default();
            for (node, stamp) in by_node {
                s.insert(&node, stamp);
            }
            return s;
        }
        serde_json::from_slice(private).unwrap_or_default()
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn insert(&mut self, node: &str, stamp: String) {
        if node == ACCESS_NODE {
            self.access.insert(stamp);
        } else {
            self.data.insert(stamp);
        }
    }

    /// The stamps a verifier on `node` may match.
    fn of(&self, node: &str) -> &BTreeSet<String> {
        if node == ACCESS_NODE {
            &self.access
        } else {
            &self.data
        }
    }
}

impl std::ops::Deref for Role {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}

impl std::ops::DerefMut for Role {
    fn deref_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

impl Role {
    /// The passwords come from the write-only attributes: known during an
    /// apply only, never written to the state.
    fn write_only(&self) -> bool {
        self.password_wo.is_some()
            || self.data_node_password_wo.is_some()
            || self.password_wo_version.is_some()
    }

    fn encryption(&self) -> Encryption {
        match self.password_encryption.as_str() {
            "md5" => Encryption::Md5,
            _ => Encryption::ScramSha256,
        }
    }

    /// The access node and the data nodes, in that order.
    fn targets(&self) -> Vec<String> {
        std::iter::once(ACCESS_NODE.to_string())
            .chain(self.data_nodes.iter().cloned())
            .collect()
    }

    /// What the role should be on `node`: data nodes always get LOGIN and
    /// the internal password.
    fn spec_for(&self, node: &str) -> RoleSpec {
        let access = node == ACCESS_NODE;
        let client = self.password.as_ref().or(self.password_wo.as_ref());
        RoleSpec {
            name: self.name.clone(),
            login: self.login || !access,
            superuser: self.superuser,
            createdb: self.createdb,
            createrole: self.createrole,
            inherit: self.inherit,
            replication: self.replication,
            bypassrls: self.bypassrls,
            connection_limit: self.connection_limit,
            valid_until: self.valid_until.clone(),
            password: if access {
                client.cloned()
            } else {
                (self.data_node_password.as_ref())
                    .or(self.data_node_password_wo.as_ref())
                    .or(client)
                    .cloned()
            },
            password_stamps: if self.write_only() {
                self.stamps.of(node).iter().cloned().collect()
            } else {
                Vec::new()
            },
            encryption: self.encryption(),
            rotate: if access {
                self.rotate.access
            } else {
                self.rotate.data
            },
        }
    }

    /// Takes the attributes the access node shows (passwords excepted: only
    /// their agreement can be read).
    fn adopt_access(&mut self, a: &RoleState) {
        self.login = a.login;
        self.superuser = a.superuser;
        self.createdb = a.createdb;
        self.createrole = a.createrole;
        self.inherit = a.inherit;
        self.replication = a.replication;
        self.bypassrls = a.bypassrls;
        self.connection_limit = a.connection_limit;
        if !a.valid_until_matches {
            self.valid_until = a.valid_until.clone().filter(|v| v != "infinity");
        }
    }

    /// Stored verifiers the private data says were found to match: they
    /// are trusted without recomputing the key derivation.
    fn trust_stamps(&self, reads: &BTreeMap<String, NodeRead>, private: &[u8], checker: &Checker) {
        let stamps = Stamps::parse(private);
        for (node, read) in reads {
            let Ok(Some(state)) = read else { continue };
            if let (StoredPassword::Some(stored), Some(p)) =
                (&state.password, self.spec_for(node).password)
            {
                if stamps.of(node).contains(&password::stamp(stored)) {
                    checker.trust(stored, p.expose(), &self.name);
                }
            }
        }
    }

    /// Private data for the state: for each node whose stored verifier
    /// matches the configured password, a digest of that verifier.
    fn stamps(&self, reads: &BTreeMap<String, NodeRead>, checker: &Checker) -> Vec<u8> {
        let mut out = Stamps::default();
        for (node, read) in reads {
            let Ok(Some(state)) = read else { continue };
            if let (StoredPassword::Some(stored), Some(p)) =
                (&state.password, self.spec_for(node).password)
            {
                if checker.check(stored, p.expose(), &self.name) == password::Check::Matches {
                    out.insert(node, password::stamp(stored));
                }
            }
        }
        out.to_bytes()
    }

    fn statuses(
        &self,
        reads: &BTreeMap<String, NodeRead>,
        checker: &Checker,
    ) -> BTreeMap<String, String> {
        self.targets()
            .into_iter()
            .map(|n| {
                let status = match reads.get(&n) {
                    Some(Ok(state)) => role::status(&self.spec_for(&n), state.as_ref(), checker),
                    Some(Err(_)) => UNREACHABLE.to_string(),
                    None => MISSING.to_string(),
                };
                (n, status)
            })
            .collect()
    }

    /// The model to keep in state, with each node's status: write-only
    /// values are in neither form.
    fn to_model(&self, nodes: BTreeMap<String, String>) -> Model {
        let mut m = self.model.clone();
        if self.write_only() {
            m.password = None;
            m.data_node_password = None;
        }
        m.password_wo = None;
        m.data_node_password_wo = None;
        m.id = Some(m.name.clone());
        m.nodes = nodes;
        m
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

    use crate::role::IN_SYNC;
    use crate::schema::object;

    fn config(pairs: &[(&'static str, Value)]) -> Value {
        let mut v = object(Model::attributes().iter().map(|a| (a.name, Value::Null)));
        for (k, x) in pairs {
            v.set_attr(k, x.clone());
        }
        v
    }

    #[test]
    fn names_and_limits_are_checked_on_the_right_attribute() {
        let paths = |v: &Value| -> Vec<String> {
            DistributedRole
                .validate(v)
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
    fn data_nodes_get_login_and_the_internal_password() {
        let m = Role::from(
            Model::from_value(&config(&[
                (NAME, Value::string("testrole")),
                (PASSWORD, Value::string("clientpass")),
                (DATA_NODE_PASSWORD, Value::string("internalpass")),
                (DATA_NODES, Value::list_of_strings(["dn1"])),
            ]))
            .unwrap(),
        );
        let a = m.spec_for(ACCESS_NODE);
        let d = m.spec_for("dn1");
        assert!(!a.login && d.login);
        assert_eq!(a.password.unwrap().expose(), "clientpass");
        assert_eq!(d.password.unwrap().expose(), "internalpass");
        assert_eq!(m.targets(), ["access", "dn1"]);
    }

    /// Sixteen data nodes storing the same verifier, as the provider sets
    /// them, and the access node its own.
    fn wide_role() -> (Role, BTreeMap<String, NodeRead>) {
        let nodes: Vec<String> = (1..=16).map(|i| format!("dn{i}")).collect();
        let m = Role::from(
            Model::from_value(&config(&[
                (NAME, Value::string("wide")),
                (PASSWORD, Value::string("clientpass")),
                (DATA_NODE_PASSWORD, Value::string("internalpass")),
                (DATA_NODES, Value::list_of_strings(nodes.iter().cloned())),
            ]))
            .unwrap(),
        );
        let stored = |node: &str| {
            let p = m.spec_for(node).password.unwrap();
            password::encrypt(&p, "wide", Encryption::ScramSha256)
                .expose()
                .to_string()
        };
        let (client, internal) = (stored(ACCESS_NODE), stored("dn1"));
        let reads = m
            .targets()
            .into_iter()
            .map(|n| {
                let password = if n == ACCESS_NODE { &client } else { &internal };
                let state = RoleState::in_line_with(&m.spec_for(&n), password.clone());
                (n, Ok(Some(state)))
            })
            .collect();
        (m, reads)
    }

    #[test]
    fn the_private_state_holds_a_stamp_per_verifier_not_per_node() {
        let (m, reads) = wide_role();
        let private = m.stamps(&reads, &Checker::default());
        let stamps = Stamps::parse(&private);
        assert_eq!((stamps.access.len(), stamps.data.len()), (1, 1));
        assert!(private.len() < 160, "{}", String::from_utf8_lossy(&private));
        // A later refresh trusts every node's verifier from those two
        // stamps: no key derivation at all.
        let checker = Checker::default();
        m.trust_stamps(&reads, &private, &checker);
        assert_eq!(m.stamps(&reads, &checker), private);
        assert_eq!(checker.computed(), 0);
    }

    #[test]
    fn stamps_written_by_node_by_earlier_releases_are_still_read() {
        let (m, reads) = wide_role();
        let by_node: BTreeMap<String, String> = reads
            .iter()
            .map(|(n, r)| match r {
                Ok(Some(RoleState {
                    password: StoredPassword::Some(p),
                    ..
                })) => (n.clone(), password::stamp(p)),
                _ => unreachable!(),
            })
            .collect();
        let old = serde_json::to_vec(&by_node).unwrap();
        let checker = Checker::default();
        m.trust_stamps(&reads, &old, &checker);
        assert_eq!(
            Stamps::parse(&m.stamps(&reads, &checker)),
            Stamps::parse(&old)
        );
        assert_eq!(checker.computed(), 0);
        // Write-only: a data node's verifier is judged against the data
        // nodes' stamps, the access node's against its own.
        let mut wo = m.clone();
        (wo.password, wo.data_node_password) = (None, None);
        wo.password_wo_version = Some(1);
        wo.stamps = Stamps::parse(&old);
        let statuses = wo.statuses(&reads, &Checker::default());
        assert!(statuses.values().all(|s| s == IN_SYNC), "{statuses:?}");
        let client = match &reads[ACCESS_NODE] {
            Ok(state) => state.clone(),
            Err(_) => unreachable!(),
        };
        let mut swapped = reads;
        swapped.insert("dn3".into(), Ok(client));
        let statuses = wo.statuses(&swapped, &Checker::default());
        assert_ne!(
            statuses["dn3"], IN_SYNC,
            "the client password's verifier on a data node"
        );
        assert_eq!(statuses["dn2"], IN_SYNC);
    }
}
