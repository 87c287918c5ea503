//! Bringing every node in line with the role: read every node, create or
//! alter where needed (the access node first), and conclude from what the
//! nodes hold afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::drop::drop_everywhere;
use super::plan::exists_error;
use super::spec::{Role, Rotate};
use super::*;
use crate::node::Node;
use crate::password::Checker;
use crate::resources::Done;

/// The outcome of reading one node.
pub(super) type NodeRead = crate::resources::NodeRead<Option<RoleState>>;

/// Reads the role on the access node and each data node of `m`, at once
/// ([`crate::resources::read_nodes`]).
pub(super) async fn read_all(
    ctx: &Ctx,
    m: &Role,
) -> Result<BTreeMap<String, NodeRead>, Diagnostics> {
    crate::resources::read_nodes(ctx, &m.targets(), |node| {
        let (name, valid_until) = (m.name.clone(), m.valid_until.clone());
        async move { node.role_read(&name, valid_until.as_deref()).await }
    })
    .await
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
pub(super) async fn converge(
    ctx: &Ctx,
    m: &Role,
    creating: bool,
    removed: &[String],
) -> Applied<Model> {
    ctx.check_cancelled()?;
    let reads = read_all(ctx, m).await?;
    // The access node first: when it fails nothing else is touched.
    converge_access(ctx, m, creating, reads.get(ACCESS_NODE)).await?;
    let mut outcome = Outcome::default();
    converge_data_nodes(ctx, m, &reads, &mut outcome).await;
    if !removed.is_empty() {
        match drop_everywhere(ctx, m, removed).await {
            Ok(warnings) => outcome.diags.extend(warnings),
            Err(d) => {
                outcome.failed.extend(removed.iter().cloned());
                outcome.diags.extend(d);
            }
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
        fan.report(&mut outcome.diags, &mut outcome.failed);
    }
}

/// The result of an apply from what the nodes hold now.
fn conclude(
    m: &Role,
    creating: bool,
    reads: &BTreeMap<String, NodeRead>,
    outcome: Outcome,
    checker: &Checker,
) -> Applied<Model> {
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
        // With warnings, if any (a fallback to direct connections).
        return Ok(Done {
            state,
            warnings: diags,
        });
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
        return Ok(Done { state, warnings });
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
