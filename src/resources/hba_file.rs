//! `timescaledb_hba_file`: a node's pg_hba.conf holds the rules the
//! configuration declares and nothing else.

use crate::diag::{AttrPath, Diagnostics};
use crate::hba::{HbaFile, Rule, RuleKey};
use crate::model::PlanModel as _;
use crate::node::ErrorKind;
use crate::provider::ACCESS_NODE;
use crate::value::Value;

use super::{Applied, Checked, Completion, Ctx, Deleted, PlanInput, Read, Resource, State};

crate::model! {
    /// A node's pg_hba.conf held to its declared rules.
    pub struct Model plan FilePlan {
        NODE => node: String = optional("Node whose `pg_hba.conf` is held to the declared rules: `access` or the name of a data node.").default(Value::string(ACCESS_NODE)).force_new(),
        KEEP => keep: Vec<String> = optional("Rules outside the provider's managed block that stay: the IDs of `timescaledb_hba_rule`s imported where they stand (`timescaledb_hba_rule.<name>.id`), or of lines an operator must keep, written the same way (`<node> <type> <databases> <users> [<address>]`)."),
        UNDECLARED => undeclared: Vec<String> = computed("The rules of the file that nothing declares: outside the managed block and not in `keep`, as they stand in the file. Empty after every apply; a rule added by hand shows here in the plan, and apply removes it."),
        ID => id: Option<String> = computed("The node's name.").stable(),
    }
}

const DESCRIPTION: &str = "Holds a node's `pg_hba.conf` to the rules the configuration declares: the `timescaledb_hba_rule`s \
     of that node (kept in the provider's managed block) and the lines `keep` names. Every other rule of the file (one \
     added by hand, say `host all all 0.0.0.0/0 trust`, or the ones `initdb` wrote) is drift: `terraform plan` lists it \
     in `undeclared`, and apply removes it. The lockout guard still judges the result: a removal that would leave the \
     provider no way in is refused, at plan time and again at apply, and nothing is changed. When a \
     `timescaledb_hba_rule` of the configuration is the provider's way in, list it in `depends_on`: it is planned and \
     written first, and the plan counts it. Comments and blank lines stay. Destroying the resource changes nothing in the file.";

pub struct HbaFileResource;

#[tonic::async_trait]
impl Resource for HbaFileResource {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_hba_file";
    const DESCRIPTION: &'static str = DESCRIPTION;

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let mut m = prior.value;
        let keep = keys(&m.node, &m.keep).map_err(Diagnostics::from)?;
        let node = ctx.node(&m.node, NODE).await?;
        let snap = node.hba_read().await?;
        m.undeclared = undeclared(&snap.file, &keep);
        Ok(Some(m.into()))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        Ok(enforce(ctx, planned).await?.into())
    }

    async fn update(&self, ctx: &Ctx, _prior: State<Model>, planned: Model) -> Applied<Model> {
        Ok(enforce(ctx, planned).await?.into())
    }

    /// The file stays as it is: the resource only removed what was not
    /// declared.
    async fn delete(&self, _ctx: &Ctx, _prior: Model) -> Deleted {
        Ok(Diagnostics::new())
    }

    fn validate(&self, config: &FilePlan) -> Diagnostics {
        match (config.node.known(), config.keep.known()) {
            (Some(node), Some(keep)) => keys(node, keep)
                .err()
                .map(Diagnostics::from)
                .unwrap_or_default(),
            _ => Diagnostics::new(),
        }
    }

    async fn complete_plan(&self, plan: &mut Completion<'_, Model>) -> Checked {
        let planned = &mut *plan.planned;
        planned.id = planned.node.map(|n| Some(n.clone()));
        // After apply nothing undeclared is left.
        planned.undeclared.set(Vec::new());
        Ok(())
    }

    /// Removing the undeclared rules must leave the provider a way in.
    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        let Some(m) = plan.planned.known() else {
            return Ok(());
        };
        let keep = keys(&m.node, &m.keep).map_err(Diagnostics::from)?;
        let node = ctx.node(&m.node, NODE).await?;
        let preview = node
            .hba_preview_after_planned(move |f| {
                f.retain_unmanaged(|r| keep.contains(&r.rule.key()));
            })
            .await;
        preview.map(|_| ()).map_err(|mut e| {
            if e.kind == ErrorKind::Lockout {
                e.message.push_str(
                    ". Only the rules of the managed block and those `keep` names stay. If a `timescaledb_hba_rule` of \
                     this configuration is the provider's way in, put it in this resource's `depends_on`: it is then \
                     planned and written first, and counted here",
                );
            }
            e.to_diagnostics(Some(AttrPath::attr(KEEP)))
        })
    }
}

/// A problem with `keep`, on the element at fault.
#[derive(Debug)]
struct KeepError(usize, String);

impl From<KeepError> for Diagnostics {
    fn from(KeepError(i, why): KeepError) -> Diagnostics {
        Diagnostics::attr_error(AttrPath::attr(KEEP).index(i), "Invalid rule ID", why)
    }
}

/// The match keys of the rules `keep` names (IDs of this node's rules).
fn keys(node: &str, keep: &[String]) -> Result<Vec<RuleKey>, KeepError> {
    keep.iter()
        .enumerate()
        .map(|(i, id)| {
            let rest = id
                .strip_prefix(node)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or_else(|| KeepError(i, format!("{id:?} is not an ID of a rule of node {node:?} (`{node} <type> <databases> <users> [<address>]`)")))?;
            Rule::parse_key_fields(rest)
                .map(|r| r.key())
                .map_err(|why| KeepError(i, format!("{id:?}: {why}")))
        })
        .collect()
}

/// The rules outside the managed block that `keep` does not name, as they
/// stand in the file.
fn undeclared(file: &HbaFile, keep: &[RuleKey]) -> Vec<String> {
    file.unmanaged()
        .into_iter()
        .filter(|f| !keep.contains(&f.rule.key()))
        .map(|f| f.text)
        .collect()
}

/// Removes every undeclared rule (the lockout guard judging the result);
/// returns the state with what is undeclared now.
async fn enforce(ctx: &Ctx, mut m: Model) -> Result<Model, Diagnostics> {
    ctx.check_cancelled()?;
    let keep = keys(&m.node, &m.keep).map_err(Diagnostics::from)?;
    let node = ctx.node(&m.node, NODE).await?;
    let kept = keep.clone();
    let snap = node
        .hba_edit(move |f| {
            f.retain_unmanaged(|r| kept.contains(&r.rule.key()));
            Ok(())
        })
        .await?;
    m.undeclared = undeclared(&snap.file, &keep);
    m.id = Some(m.node.clone());
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_names_rules_of_this_node_only() {
        let keys = keys(
            "dn1",
            &[
                "dn1 local all postgres".into(),
                "dn1 host all all 10.0.0.0 255.0.0.0".into(),
            ],
        )
        .unwrap();
        let file = HbaFile::parse(
            "local all postgres peer\nhost all all 10.0.0.0/8 md5\nhost all all 0.0.0.0/0 trust\n",
        );
        assert_eq!(
            undeclared(&file, &keys),
            vec!["host all all 0.0.0.0/0 trust".to_string()]
        );

        let KeepError(i, why) =
            keys_err("dn1", &["dn1 local all postgres", "dn2 local all postgres"]);
        assert_eq!(i, 1);
        assert!(why.contains("not an ID of a rule of node \"dn1\""), "{why}");
        let KeepError(i, why) = keys_err("dn1", &["dn1 host all"]);
        assert_eq!(i, 0);
        assert!(why.contains("fields"), "{why}");
        // A node name that is a prefix of another's is not that node.
        assert_eq!(keys_err("dn1", &["dn10 local all all"]).0, 0);
    }

    fn keys_err(node: &str, keep: &[&str]) -> KeepError {
        let keep: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        match keys(node, &keep) {
            Err(e) => e,
            Ok(k) => panic!("accepted: {k:?}"),
        }
    }
}
