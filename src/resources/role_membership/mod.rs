//! `timescaledb_role_membership`: the members of a group, on the access
//! node and every data node, as a `+group` rule in pg_hba.conf needs them
//! on each node it is written to.
//!
//! The comparison of a node's members with the configuration and the
//! statements that bring it in line are pure (`compare`); this module reads
//! the nodes, sends the statements (through `distributed_exec` or direct
//! connections, as [`crate::provider::Route`] says) and concludes from what
//! the nodes hold afterwards.

mod compare;

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{AttrPath, Diagnostics};
use crate::model::{PlanModel as _, Planned};
use crate::node::Membership;
use crate::provider::ACCESS_NODE;
use crate::secret::Secret;
use crate::sql::MemberOptions;
use crate::value::Value;

use super::{
    default_data_nodes, read_nodes, Applied, ApplyError, Checked, Completion, Ctx, Deleted,
    NodeRead, PlanInput, Read, Resource, State,
};
use compare::{union, Differences, Want, IN_SYNC, UNREACHABLE};

crate::model! {
    /// A group's members, as configured and as kept.
    pub struct Model plan MembershipPlan {
        GROUP => group: String = required("The role granted (the group), exactly as named: what a `+group` entry of `pg_hba.conf` names.").force_new(),
        MEMBERS => members: BTreeSet<String> = required("Roles that are members of the group, on the access node and on every data node in `data_nodes`."),
        ADMIN_OPTION => admin_option: bool = optional("Whether the members may grant the group to others (`WITH ADMIN OPTION`).").default(Value::Bool(false)),
        INHERIT_OPTION => inherit_option: Option<bool> = optional("PostgreSQL 16 and later: whether the members use the group's privileges without `SET ROLE` (the membership's `INHERIT` option). Left out, the server's default stands and is not compared. Refused at plan time on a node that runs an earlier release."),
        SET_OPTION => set_option: Option<bool> = optional("PostgreSQL 16 and later: whether the members may `SET ROLE` to the group (the membership's `SET` option). Left out, the server's default stands and is not compared. Refused at plan time on a node that runs an earlier release."),
        EXACT => exact: bool = optional("When true, the group has these members and no others: a member added by hand on any node is drift, and apply revokes it. When false, other members of the group are left alone.").default(Value::Bool(false)),
        DATA_NODES => data_nodes: Vec<String> = optional_computed("Data nodes whose group gets the members. Defaults to every data node the provider knows (its `data_nodes` setting or TimescaleDB's catalog)."),
        ID => id: Option<String> = computed("The group's name, which is also the import ID.").stable(),
        NODES => nodes: BTreeMap<String, String> = computed("How the membership on each node (`access` and each data node) compares with the configuration: `in sync`, `group missing`, `unreachable`, or `differs: ` and what (`not members: alice`, `other options: bob`, `members not configured: carol`). After a successful apply every node is `in sync`."),
    }
}

const DESCRIPTION: &str = "Makes roles members of a group on the access node and on every data node (`GRANT <group> TO \
     <members>`), as a `+group` rule in `pg_hba.conf` needs on each node it is written to: pg_hba.conf counts \
     membership only, never superuser-ness. The group and the members must exist on every node (for example as \
     `timescaledb_distributed_role`s). Statements reach the data nodes through `distributed_exec` or the provider's own \
     connections, as the provider's `fanout` says; reads look at every node, and `nodes` names each node where the \
     membership differs, so a membership revoked by hand on one data node shows in the plan with the node's name. With \
     `exact`, the group has the configured members and no others. PostgreSQL 16's `INHERIT` and `SET` options are \
     managed where the servers have them.";

pub struct RoleMembership;

/// The nodes' memberships of the group, `None` where the group is missing.
type Reads = BTreeMap<String, NodeRead<Option<BTreeMap<String, Membership>>>>;

#[tonic::async_trait]
impl Resource for RoleMembership {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_role_membership";
    const DESCRIPTION: &'static str = DESCRIPTION;
    const IMPORT_ID: Option<&'static str> = Some("<group>");

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let mut m = prior.value;
        let reads = read_all(ctx, &m).await?;
        if matches!(reads.get(ACCESS_NODE), Some(Ok(None))) {
            return Ok(None);
        }
        m.nodes = statuses(&m, &reads);
        Ok(Some(m.into()))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        converge(ctx, planned, &[]).await
    }

    async fn update(&self, ctx: &Ctx, prior: State<Model>, planned: Model) -> Applied<Model> {
        let before = prior.value;
        // Members taken out of the configuration, and data nodes taken out
        // of the list, lose the membership there.
        let dropped: Vec<String> = before
            .members
            .difference(&planned.members)
            .cloned()
            .collect();
        let left: Vec<String> = (before.data_nodes.iter())
            .filter(|n| !planned.data_nodes.contains(n))
            .cloned()
            .collect();
        if !left.is_empty() {
            revoke_everywhere(ctx, &before.group, &before.members, &left).await?;
        }
        converge(ctx, planned, &dropped).await
    }

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Deleted {
        ctx.check_cancelled()?;
        revoke_everywhere(ctx, &prior.group, &prior.members, &prior.targets()).await
    }

    fn validate(&self, config: &MembershipPlan) -> Diagnostics {
        let mut d = Diagnostics::new();
        if config.group.as_str() == Some("") {
            d.push_error(
                Some(AttrPath::attr(GROUP)),
                "Invalid group",
                "`group` cannot be empty.",
            );
        }
        if let Some(members) = config.members.known() {
            if members.is_empty() {
                d.push_error(
                    Some(AttrPath::attr(MEMBERS)),
                    "No members",
                    "`members` cannot be empty; destroy the resource to revoke every member.",
                );
            }
            if let Some(g) = config.group.as_str().filter(|g| members.contains(*g)) {
                d.push_error(
                    Some(AttrPath::attr(MEMBERS)),
                    "A group cannot be its own member",
                    format!("{g:?} is the group itself."),
                );
            }
        }
        if let Some(items) = config.data_nodes.known() {
            for (i, n) in items.iter().enumerate().filter(|(_, n)| *n == ACCESS_NODE) {
                d.push_error(
                    Some(AttrPath::attr(DATA_NODES).index(i)),
                    "Not a data node",
                    format!("{n:?} names the access node, which always gets the membership; list data nodes only."),
                );
            }
        }
        d
    }

    async fn complete_plan(&self, plan: &mut Completion<'_, Model>) -> Checked {
        let planned = &mut *plan.planned;
        let creating = planned.id.is_unknown();
        planned.id = planned.group.map(|g| Some(g.clone()));
        if plan.config.data_nodes.is_null() {
            planned.data_nodes = match default_data_nodes(plan.ctx).await? {
                Some(all) => Planned::Known(all),
                None => Planned::Unknown,
            };
        }
        // After apply every node is in line; what a create makes is known
        // then (a data node down is recorded as such).
        planned.nodes = match planned.data_nodes.known() {
            Some(dns) if !creating => Planned::Known(
                std::iter::once(ACCESS_NODE.to_string())
                    .chain(dns.iter().cloned())
                    .map(|n| (n, IN_SYNC.to_string()))
                    .collect(),
            ),
            _ => Planned::Unknown,
        };
        Ok(())
    }

    /// Data nodes the provider knows, and servers that have the options
    /// asked for; the roles are not looked up, since they may be made in
    /// the same apply.
    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        let Some(data_nodes) = plan.planned.data_nodes.known() else {
            return Ok(());
        };
        let known = ctx.provider.data_nodes().await?;
        for (i, n) in data_nodes.iter().enumerate() {
            if !known.contains_key(n) {
                return Err(Diagnostics::attr_error(
                    AttrPath::attr(DATA_NODES).index(i),
                    "Unknown data node",
                    format!("The provider knows no data node named {n:?}."),
                ));
            }
        }
        let nodes: Vec<String> = std::iter::once(ACCESS_NODE.to_string())
            .chain(data_nodes.iter().cloned())
            .collect();
        let asked = [
            (INHERIT_OPTION, plan.planned.inherit_option.get().is_some()),
            (SET_OPTION, plan.planned.set_option.get().is_some()),
        ];
        options_supported(ctx, &nodes, &asked).await?;
        // Turning `exact` on revokes what nobody configured: the plan says
        // what, where (the state, made without `exact`, could not show it).
        let turning_exact =
            plan.planned.exact.known() == Some(&true) && plan.prior.is_none_or(|p| !p.exact);
        if let (true, Some(m)) = (turning_exact, plan.planned.known()) {
            let reads = read_all(ctx, &m).await?;
            let extra: Vec<String> = reads
                .iter()
                .filter_map(|(n, r)| {
                    let d = m.want().differences(r.as_ref().ok()?.as_ref()?);
                    (!d.extra.is_empty()).then(|| format!("{n}: {}", d.extra.join(", ")))
                })
                .collect();
            if !extra.is_empty() {
                plan.warnings.push_warning(
                    Some(AttrPath::attr(EXACT)),
                    "Members nobody configured will be revoked",
                    format!(
                        "With `exact`, apply revokes the membership of {:?} from {}.",
                        m.group,
                        extra.join("; ")
                    ),
                );
            }
        }
        Ok(())
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        let members = ctx.provider.access().members_of(id).await?.ok_or_else(|| {
            Diagnostics::error(
                "Group not found",
                format!("The access node has no role named {id:?}."),
            )
        })?;
        if members.is_empty() {
            return Err(Diagnostics::error(
                "No members",
                format!("Role {id:?} has no members on the access node: there is no membership to import."),
            ));
        }
        let mut m = Model {
            group: id.to_string(),
            admin_option: members.values().all(|how| how.admin),
            members: members.keys().cloned().collect(),
            data_nodes: ctx.provider.data_nodes().await?.keys().cloned().collect(),
            id: Some(id.to_string()),
            ..Model::default()
        };
        let reads = read_all(ctx, &m).await?;
        m.nodes = statuses(&m, &reads);
        Ok(m)
    }
}

impl Model {
    fn want(&self) -> Want {
        Want {
            group: self.group.clone(),
            members: self.members.clone(),
            options: MemberOptions {
                admin: self.admin_option,
                inherit: self.inherit_option,
                set: self.set_option,
            },
            exact: self.exact,
        }
    }

    /// The access node and the data nodes, in that order.
    fn targets(&self) -> Vec<String> {
        std::iter::once(ACCESS_NODE.to_string())
            .chain(self.data_nodes.iter().cloned())
            .collect()
    }
}

async fn read_all(ctx: &Ctx, m: &Model) -> Result<Reads, Diagnostics> {
    read_nodes(ctx, &m.targets(), |node| {
        let group = m.group.clone();
        async move { node.members_of(&group).await }
    })
    .await
}

fn statuses(m: &Model, reads: &Reads) -> BTreeMap<String, String> {
    let want = m.want();
    m.targets()
        .into_iter()
        .map(|n| {
            let status = match reads.get(&n) {
                Some(Ok(have)) => want.status(have.as_ref()),
                _ => UNREACHABLE.to_string(),
            };
            (n, status)
        })
        .collect()
}

/// Refuses the options of PostgreSQL 16 (`asked`: by attribute) on a node
/// that runs an earlier release, on the attribute that asks for them.
async fn options_supported(ctx: &Ctx, nodes: &[String], asked: &[(&str, bool)]) -> Checked {
    for (attr, _) in asked.iter().filter(|(_, asked)| *asked) {
        for n in nodes {
            let version = ctx.node(n, DATA_NODES).await?.server_version_num().await?;
            if version < 160_000 {
                return Err(Diagnostics::attr_error(
                    AttrPath::attr(attr),
                    "Not on this PostgreSQL release",
                    format!(
                        "Node {n:?} runs PostgreSQL {}, which has no `{}` option on a membership (PostgreSQL 16 and later). \
                         Leave the attribute out for such nodes.",
                        version / 10_000,
                        if *attr == INHERIT_OPTION { "INHERIT" } else { "SET" }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What an apply found wrong so far: diagnostics, and the nodes they are
/// about (which then are not reported again as out of line).
#[derive(Default)]
struct Progress {
    diags: Diagnostics,
    failed: BTreeSet<String>,
}

/// Makes every node of `m` hold the membership (the access node first),
/// revoking `dropped` members too; returns the state with each node's
/// status, or the state that exists now with the nodes that could not be
/// brought in line.
async fn converge(ctx: &Ctx, mut m: Model, dropped: &[String]) -> Applied<Model> {
    ctx.check_cancelled()?;
    m.id = Some(m.group.clone());
    // Checked at plan time where the values were known then.
    let asked = [
        (INHERIT_OPTION, m.inherit_option.is_some()),
        (SET_OPTION, m.set_option.is_some()),
    ];
    options_supported(ctx, &m.targets(), &asked).await?;
    let want = m.want();
    let reads = read_all(ctx, &m).await?;
    let differences = |have: &BTreeMap<String, Membership>| {
        let mut d = want.differences(have);
        for x in dropped.iter().filter(|x| have.contains_key(*x)) {
            if !d.extra.contains(x) {
                d.extra.push(x.clone());
            }
        }
        d
    };
    let doing = format!("changing the members of {:?}", m.group);
    let Some(Ok(Some(have))) = reads.get(ACCESS_NODE) else {
        return Err(Diagnostics::attr_error(
            AttrPath::attr(GROUP),
            "Group not found",
            format!(
                "The access node has no role named {:?}; create it first (`timescaledb_distributed_role`).",
                m.group
            ),
        )
        .into());
    };
    if let Some(st) = want.statements(&differences(have)) {
        ctx.provider.access().membership_exec(&doing, &st).await?;
    }
    let mut progress = Progress::default();
    let mut nodes = Vec::new();
    let mut diffs: Vec<Differences> = Vec::new();
    for n in &m.data_nodes {
        match reads.get(n) {
            Some(Ok(Some(have))) => {
                let d = differences(have);
                if !d.is_empty() {
                    nodes.push(n.clone());
                    diffs.push(d);
                }
            }
            Some(Ok(None)) => {
                progress.failed.insert(n.clone());
                progress.diags.push_error(
                    Some(AttrPath::attr(NODES).key(n)),
                    "Group missing on a data node",
                    format!("Data node {n:?} has no role named {:?}; create it there first (`timescaledb_distributed_role` makes it on every node).", m.group),
                );
            }
            Some(Err(e)) => {
                progress.failed.insert(n.clone());
                progress.diags.extend(Diagnostics::from(e));
            }
            None => {}
        }
    }
    if let Some(st) = want.statements(&union(&diffs)) {
        exec_on_data_nodes(ctx, &nodes, &doing, &st, &mut progress).await;
    }
    let reads = read_all(ctx, &m).await?;
    conclude(m, &reads, progress)
}

/// Runs membership statements on data nodes, as the provider's `fanout`
/// says; what fails goes to `progress`.
async fn exec_on_data_nodes(
    ctx: &Ctx,
    nodes: &[String],
    doing: &str,
    statements: &str,
    progress: &mut Progress,
) {
    let fan = ctx
        .provider
        .exec_on_data_nodes(nodes, doing, &Secret::new(statements), |node| {
            let (doing, st) = (doing.to_string(), statements.to_string());
            async move { node.membership_exec(&doing, &st).await }
        })
        .await;
    fan.report(&mut progress.diags, &mut progress.failed);
}

/// The result of an apply from what the nodes hold now: every node in line
/// but those already reported, or the state as it is with the errors.
fn conclude(mut m: Model, reads: &Reads, mut progress: Progress) -> Applied<Model> {
    m.nodes = statuses(&m, reads);
    for (n, s) in &m.nodes {
        if s != IN_SYNC && !progress.failed.contains(n) {
            progress.diags.push_error(
                Some(AttrPath::attr(NODES).key(n)),
                "Membership not in line after apply",
                format!("On node {n:?} the membership is {s} after the change was made."),
            );
        }
    }
    if progress.diags.has_errors() {
        return Err(ApplyError {
            diags: progress.diags,
            partial: Some(m.into()),
        });
    }
    Ok(super::Done {
        state: m.into(),
        warnings: progress.diags,
    })
}

/// Takes the membership of `members` in `group` away on `targets`, where the
/// group exists. Every node must answer first: nothing is revoked anywhere
/// while one cannot.
async fn revoke_everywhere(
    ctx: &Ctx,
    group: &str,
    members: &BTreeSet<String>,
    targets: &[String],
) -> Deleted {
    let reads = read_nodes(ctx, targets, |node| {
        let group = group.to_string();
        async move { node.members_of(&group).await }
    })
    .await?;
    let mut unreachable = Vec::new();
    let mut present = Vec::new();
    for (n, r) in &reads {
        match r {
            Err(_) => unreachable.push(format!("{n:?}")),
            Ok(Some(have)) if members.iter().any(|m| have.contains_key(m)) => {
                present.push(n.clone())
            }
            Ok(_) => {}
        }
    }
    if !unreachable.is_empty() {
        return Err(Diagnostics::error(
            format!("The members of {group:?} were revoked nowhere"),
            format!(
                "Node(s) {} cannot be reached; run again once they are back.",
                unreachable.join(", ")
            ),
        ));
    }
    let members: Vec<String> = members.iter().cloned().collect();
    let st = crate::sql::revoke_membership(group, &members);
    let doing = format!("revoking the members of {group:?}");
    let (mut diags, mut failed) = (Diagnostics::new(), BTreeSet::new());
    let data: Vec<String> = present
        .iter()
        .filter(|n| *n != ACCESS_NODE)
        .cloned()
        .collect();
    let fan = ctx
        .provider
        .exec_on_data_nodes(&data, &doing, &Secret::new(st.clone()), |node| {
            let (doing, st) = (doing.clone(), st.clone());
            async move { node.membership_exec(&doing, &st).await }
        })
        .await;
    fan.report(&mut diags, &mut failed);
    if diags.has_errors() {
        return Err(diags);
    }
    if present.iter().any(|n| n == ACCESS_NODE) {
        ctx.provider.access().membership_exec(&doing, &st).await?;
    }
    Ok(diags)
}
