//! Managed resources. Each resource is one module implementing
//! [`Resource`] over a typed model and its plan form ([`PlanModel`]): the
//! core operations, and the optional capabilities (configuration checks,
//! plan hooks, import) as methods with defaults, so that a capability a
//! resource implements is the one the server calls; nothing else lists it.

mod ca_overlap;
pub mod certificate_authority;
pub mod certs;
pub mod distributed_role;
pub mod foreign_server_grant;
pub mod hba_file;
pub mod hba_rule;
pub mod ident_mapping;
pub mod node_certificate;
pub mod passfile_entry;
pub mod revocation_list;
pub mod role_membership;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::diag::{AttrPath, Diagnostics};
use crate::model::{HasPlan, Model, PlanModel};
use crate::provider::Provider;
use crate::schema::Schema;
use crate::value::Value;

/// What a resource operation gets to work with.
#[derive(Clone)]
pub struct Ctx {
    pub provider: Arc<Provider>,
    /// Cancelled when Terraform sends StopProvider.
    pub cancel: CancellationToken,
}

impl Ctx {
    /// The node the configuration names in attribute `attr`; an unknown
    /// name is reported on that attribute.
    pub async fn node(
        &self,
        name: &str,
        attr: &str,
    ) -> Result<Arc<crate::node::Node>, Diagnostics> {
        self.provider.node(name).await.map_err(|e| e.naming(attr))
    }

    /// Fails when Terraform asked the provider to stop; called before
    /// starting a change so that no new change begins after a stop.
    pub fn check_cancelled(&self) -> Result<(), Diagnostics> {
        if self.cancel.is_cancelled() {
            Err(Diagnostics::error("Operation cancelled", "Terraform asked the provider to stop before this change started; nothing was changed."))
        } else {
            Ok(())
        }
    }
}

/// The plan form of a resource's model.
pub type Plan<R> = <<R as Resource>::Model as HasPlan>::Plan;

/// What a plan hook comes to: nothing, or the diagnostics that refuse the
/// plan.
pub type Checked = Result<(), Diagnostics>;

/// Every plan, for the resource to complete with what it can tell of the
/// computed values.
pub struct Completion<'a, M: HasPlan> {
    /// `None` while the provider configuration is unknown.
    pub ctx: Option<&'a Ctx>,
    pub config: &'a M::Plan,
    /// The planned state; the resource sets computed attributes.
    pub planned: &'a mut M::Plan,
    /// Warnings to show with the plan, whether or not it changes anything.
    pub warnings: Diagnostics,
}

/// A create or update plan, for the resource to check against live nodes
/// and adjust.
pub struct PlanInput<'a, M: HasPlan> {
    /// The state, when the object is updated in place; `None` when it is
    /// created (or replaced).
    pub prior: Option<&'a M>,
    /// The object exists and is being replaced: what it installed is still
    /// there when the plan is made.
    pub replacing: bool,
    /// The state of the object being replaced, when `replacing`.
    pub replaced: Option<&'a M>,
    pub config: &'a M::Plan,
    /// The planned state; the resource may set computed attributes.
    pub planned: &'a mut M::Plan,
    /// Warnings to show with the plan.
    pub warnings: Diagnostics,
}

/// A resource type. The core is read, create, update and delete; the
/// other methods are capabilities with defaults that do nothing, which a
/// resource overrides where it has something to say. The server calls
/// them, in order, for a plan: [`Resource::validate`] (at validation),
/// [`Resource::refine_replace`] and [`Resource::must_replace`] (pure),
/// [`Resource::complete_plan`] on every plan, then
/// [`Resource::check_plan`] for a create or update (or
/// [`Resource::check_destroy`] for a destroy) against the live nodes.
///
/// States are [`Model`]s; plans and configurations are the model's plan
/// form, whose every attribute may be null, unknown or known: a hook never
/// fails because a value is not known yet, it plans "known after apply" and
/// the apply, where everything is known, checks again.
#[tonic::async_trait]
pub trait Resource: Send + Sync + 'static {
    type Model: Model + HasPlan + Send + Sync;

    /// The resource type name, e.g. `timescaledb_hba_rule`.
    const TYPE_NAME: &'static str;

    /// The Markdown description of the resource type, for its schema.
    const DESCRIPTION: &'static str;

    /// The import ID's form, for the docs and for error messages; `None`
    /// for a resource that cannot be imported.
    const IMPORT_ID: Option<&'static str> = None;

    /// The resource as it is on the nodes now, from the state Terraform
    /// holds (with its private data); `None` when it is gone.
    async fn read(&self, ctx: &Ctx, prior: State<Self::Model>) -> Read<Self::Model>;

    /// Makes the object the plan describes.
    async fn create(&self, ctx: &Ctx, planned: Self::Model) -> Applied<Self::Model>;

    /// Changes the object in place to what the plan describes.
    async fn update(
        &self,
        ctx: &Ctx,
        prior: State<Self::Model>,
        planned: Self::Model,
    ) -> Applied<Self::Model>;

    /// Removes the object; `Ok` holds warnings to show with the success.
    async fn delete(&self, ctx: &Ctx, prior: Self::Model) -> Deleted;

    /// Checks a configuration beyond its schema's. No I/O.
    fn validate(&self, _config: &Plan<Self>) -> Diagnostics {
        Diagnostics::new()
    }

    /// Narrows the attributes whose change forces replacement, for changes
    /// that look different but mean the same (no I/O).
    fn refine_replace(
        &self,
        _prior: &Self::Model,
        _planned: &Plan<Self>,
        _replace: &mut Vec<AttrPath>,
    ) {
    }

    /// Whether the object must be replaced although nothing configurable
    /// changed (a certificate inside its renewal window); the path names
    /// the attribute that says so. No I/O.
    fn must_replace(&self, _prior: &Self::Model, _planned: &Plan<Self>) -> Option<AttrPath> {
        None
    }

    /// Completes the planned state, every time a plan is made (also when
    /// nothing configurable changed): sets computed attributes to what they
    /// will be after apply, so that drift the read found shows as a change.
    async fn complete_plan(&self, _plan: &mut Completion<'_, Self::Model>) -> Checked {
        Ok(())
    }

    /// Checks a create or update plan against the live nodes, when the
    /// provider is configured.
    async fn check_plan(&self, _ctx: &Ctx, _plan: &mut PlanInput<'_, Self::Model>) -> Checked {
        Ok(())
    }

    /// Checks a destroy plan (Terraform 1.3 and later send these).
    async fn check_destroy(&self, _ctx: &Ctx, _prior: &Self::Model) -> Result<(), Diagnostics> {
        Ok(())
    }

    /// The object named by `id` ([`Resource::IMPORT_ID`]).
    async fn import(&self, _ctx: &Ctx, _id: &str) -> Result<Self::Model, Diagnostics> {
        Err(Diagnostics::error(
            "Import not supported",
            format!("{} cannot be imported.", Self::TYPE_NAME),
        ))
    }
}

/// What a read finds: the object's state, or `None` when it is gone.
pub type Read<M> = Result<Option<State<M>>, Diagnostics>;

/// What a create or update comes to: the state made, with warnings to
/// show; or an [`ApplyError`].
pub type Applied<M> = Result<Done<M>, ApplyError<M>>;

/// What a delete comes to: warnings to show with the success, or errors.
pub type Deleted = Result<Diagnostics, Diagnostics>;

/// A create or update that was made: its state, and warnings to show with
/// it (a change made another way than usual, or one that could not finish
/// everywhere and is recorded as made, for the next apply to finish in
/// place).
#[derive(Debug)]
pub struct Done<M = Value> {
    pub state: State<M>,
    pub warnings: Diagnostics,
}

impl<M> From<State<M>> for Done<M> {
    fn from(state: State<M>) -> Done<M> {
        Done {
            state,
            warnings: Diagnostics::new(),
        }
    }
}

impl<M> From<M> for Done<M> {
    fn from(value: M) -> Done<M> {
        State::from(value).into()
    }
}

/// A resource's state as Terraform keeps it: the value (a model, or a
/// [`Value`] at the server's side), and private data Terraform stores
/// beside it and never shows (empty for most resources).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State<M = Value> {
    pub value: M,
    pub private: Vec<u8>,
}

impl<M> From<M> for State<M> {
    fn from(value: M) -> State<M> {
        State {
            value,
            private: Vec::new(),
        }
    }
}

impl<M: Model> State<M> {
    fn encode(self) -> State {
        State {
            value: self.value.to_value(),
            private: self.private,
        }
    }
}

/// A create or update that failed. When part of the change was made (a
/// role created on some nodes but not all), `partial` is the state that
/// now exists, so Terraform records it and the next apply finishes the job.
#[derive(Debug)]
pub struct ApplyError<M = Value> {
    pub diags: Diagnostics,
    pub partial: Option<State<M>>,
}

impl<M> From<crate::node::NodeError> for ApplyError<M> {
    fn from(e: crate::node::NodeError) -> ApplyError<M> {
        Diagnostics::from(e).into()
    }
}

impl<M> From<Diagnostics> for ApplyError<M> {
    fn from(diags: Diagnostics) -> ApplyError<M> {
        ApplyError {
            diags,
            partial: None,
        }
    }
}

/// What the server makes of any apply (create, update or delete): the state
/// now (`None`: gone, or unchanged after a failure as a whole) and every
/// diagnostic. It failed when the diagnostics hold an error.
#[derive(Debug, Default)]
pub struct Outcome {
    pub state: Option<State>,
    pub diags: Diagnostics,
}

impl<M: Model> From<Applied<M>> for Outcome {
    fn from(a: Applied<M>) -> Outcome {
        match a {
            Ok(done) => Outcome {
                state: Some(done.state.encode()),
                diags: done.warnings,
            },
            Err(e) => Outcome {
                state: e.partial.map(State::encode),
                diags: e.diags,
            },
        }
    }
}

impl From<Diagnostics> for Outcome {
    fn from(diags: Diagnostics) -> Outcome {
        Outcome { state: None, diags }
    }
}

/// The plan of a resource as the server hands it over: values in, values
/// out.
pub struct PlanRequest<'a> {
    pub prior: &'a Value,
    pub replacing: bool,
    pub config: &'a Value,
    pub planned: &'a mut Value,
}

/// A resource as the server sees it: values in, values out. Every
/// [`Resource`] is one, decoding and encoding its model and plan at this
/// edge.
#[tonic::async_trait]
pub trait DynResource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, config: &Value) -> Diagnostics;
    /// The import ID's form, when the resource can be imported.
    fn import_id_format(&self) -> Option<&'static str>;
    fn refine_replace(&self, prior: &Value, planned: &Value, replace: &mut Vec<AttrPath>);
    fn must_replace(&self, prior: &Value, planned: &Value) -> Option<AttrPath>;
    async fn complete_plan(
        &self,
        ctx: Option<&Ctx>,
        config: &Value,
        planned: &mut Value,
    ) -> Result<Diagnostics, Diagnostics>;
    /// The checks of a create or update plan; `Ok` holds warnings.
    async fn check_plan(&self, ctx: &Ctx, req: PlanRequest<'_>)
        -> Result<Diagnostics, Diagnostics>;
    async fn check_destroy(&self, ctx: &Ctx, prior: &Value) -> Result<(), Diagnostics>;
    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Value, Diagnostics>;
    async fn read(&self, ctx: &Ctx, prior: &State) -> Result<Option<State>, Diagnostics>;
    async fn create(&self, ctx: &Ctx, planned: &Value) -> Outcome;
    async fn update(&self, ctx: &Ctx, prior: &State, planned: &Value) -> Outcome;
    async fn delete(&self, ctx: &Ctx, prior: &Value) -> Outcome;
}

fn decode_state<M: Model>(s: &State) -> Result<State<M>, Diagnostics> {
    Ok(State {
        value: M::from_value(&s.value)?,
        private: s.private.clone(),
    })
}

#[tonic::async_trait]
impl<R: Resource> DynResource for R {
    fn type_name(&self) -> &'static str {
        R::TYPE_NAME
    }
    fn schema(&self) -> Schema {
        R::Model::schema(R::DESCRIPTION)
    }
    fn validate(&self, config: &Value) -> Diagnostics {
        match Plan::<R>::decode_plan(config) {
            Ok(c) => Resource::validate(self, &c),
            Err(d) => d,
        }
    }
    fn import_id_format(&self) -> Option<&'static str> {
        R::IMPORT_ID
    }
    fn refine_replace(&self, prior: &Value, planned: &Value, replace: &mut Vec<AttrPath>) {
        if let (Ok(prior), Ok(planned)) =
            (R::Model::from_value(prior), Plan::<R>::decode_plan(planned))
        {
            Resource::refine_replace(self, &prior, &planned, replace);
        }
    }
    fn must_replace(&self, prior: &Value, planned: &Value) -> Option<AttrPath> {
        let prior = R::Model::from_value(prior).ok()?;
        let planned = Plan::<R>::decode_plan(planned).ok()?;
        Resource::must_replace(self, &prior, &planned)
    }
    async fn complete_plan(
        &self,
        ctx: Option<&Ctx>,
        config: &Value,
        planned: &mut Value,
    ) -> Result<Diagnostics, Diagnostics> {
        let config = Plan::<R>::decode_plan(config)?;
        let before = Plan::<R>::decode_plan(planned)?;
        let mut after = before.clone();
        let mut input = Completion {
            ctx,
            config: &config,
            planned: &mut after,
            warnings: Diagnostics::new(),
        };
        Resource::complete_plan(self, &mut input).await?;
        let warnings = input.warnings;
        after.write_changes(&before, planned);
        Ok(warnings)
    }
    async fn check_plan(
        &self,
        ctx: &Ctx,
        req: PlanRequest<'_>,
    ) -> Result<Diagnostics, Diagnostics> {
        let state = if req.prior.is_null() {
            None
        } else {
            Some(R::Model::from_value(req.prior)?)
        };
        let (prior, replaced) = if req.replacing {
            (None, state)
        } else {
            (state, None)
        };
        let config = Plan::<R>::decode_plan(req.config)?;
        let before = Plan::<R>::decode_plan(req.planned)?;
        let mut after = before.clone();
        let mut input = PlanInput {
            prior: prior.as_ref(),
            replacing: req.replacing,
            replaced: replaced.as_ref(),
            config: &config,
            planned: &mut after,
            warnings: Diagnostics::new(),
        };
        Resource::check_plan(self, ctx, &mut input).await?;
        let warnings = input.warnings;
        after.write_changes(&before, req.planned);
        Ok(warnings)
    }
    async fn check_destroy(&self, ctx: &Ctx, prior: &Value) -> Result<(), Diagnostics> {
        Resource::check_destroy(self, ctx, &R::Model::from_value(prior)?).await
    }
    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Value, Diagnostics> {
        Ok(Resource::import(self, ctx, id).await?.to_value())
    }
    async fn read(&self, ctx: &Ctx, prior: &State) -> Result<Option<State>, Diagnostics> {
        let prior = decode_state(prior)?;
        Ok(Resource::read(self, ctx, prior).await?.map(State::encode))
    }
    async fn create(&self, ctx: &Ctx, planned: &Value) -> Outcome {
        match R::Model::from_value(planned) {
            Ok(planned) => Resource::create(self, ctx, planned).await.into(),
            Err(d) => d.into(),
        }
    }
    async fn update(&self, ctx: &Ctx, prior: &State, planned: &Value) -> Outcome {
        let decoded = decode_state(prior).and_then(|p| Ok((p, R::Model::from_value(planned)?)));
        match decoded {
            Ok((prior, planned)) => Resource::update(self, ctx, prior, planned).await.into(),
            Err(d) => d.into(),
        }
    }
    async fn delete(&self, ctx: &Ctx, prior: &Value) -> Outcome {
        let diags = match R::Model::from_value(prior) {
            Ok(prior) => match Resource::delete(self, ctx, prior).await {
                Ok(warnings) => warnings,
                Err(errors) => errors,
            },
            Err(d) => d,
        };
        Outcome { state: None, diags }
    }
}

/// Every data node the provider knows, by name, for an attribute the
/// configuration leaves out; `None` while the provider configuration is
/// not known (the attribute is then planned as unknown).
pub async fn default_data_nodes(ctx: Option<&Ctx>) -> Result<Option<Vec<String>>, Diagnostics> {
    match ctx {
        Some(ctx) => {
            let all = ctx.provider.data_nodes().await?;
            Ok(Some(all.keys().cloned().collect()))
        }
        None => Ok(None),
    }
}

/// What one node gave a read that spans the access node and data nodes.
pub type NodeRead<T> = Result<T, crate::node::NodeError>;

/// Reads `targets` (the access node and data nodes) at once with `read`. A
/// data node that cannot be reached is an outcome, recorded for its status;
/// the access node unreachable, or any other failure, is an error.
pub async fn read_nodes<T, F, Fut>(
    ctx: &Ctx,
    targets: &[String],
    read: F,
) -> Result<std::collections::BTreeMap<String, NodeRead<T>>, Diagnostics>
where
    F: Fn(Arc<crate::node::Node>) -> Fut,
    Fut: std::future::Future<Output = NodeRead<T>>,
{
    let mut nodes = Vec::new();
    for n in targets {
        nodes.push((n.clone(), ctx.provider.node(n).await));
    }
    let reads = crate::provider::fan_out(nodes.into_iter().map(|(n, node)| {
        let r = node.map(&read);
        async move {
            let r = match r {
                Ok(fut) => fut.await,
                Err(e) => Err(e),
            };
            (n, r)
        }
    }))
    .await;
    let reads: std::collections::BTreeMap<String, NodeRead<T>> = reads.into_iter().collect();
    if let Some(Err(e)) = reads.get(crate::provider::ACCESS_NODE) {
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

/// A node that cannot be reached, rather than one that answered with an
/// error.
pub fn is_unreachable(e: &crate::node::NodeError) -> bool {
    use crate::node::ErrorKind;
    matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Authentication)
}

/// Every resource the provider offers.
pub fn all() -> Vec<Arc<dyn DynResource>> {
    vec![
        Arc::new(hba_rule::HbaRule),
        Arc::new(passfile_entry::PassfileEntry),
        Arc::new(distributed_role::DistributedRole),
        Arc::new(foreign_server_grant::ForeignServerGrant),
        Arc::new(certificate_authority::CertificateAuthority),
        Arc::new(node_certificate::NodeCertificate),
        Arc::new(role_membership::RoleMembership),
        Arc::new(ident_mapping::IdentMapping),
        Arc::new(hba_file::HbaFileResource),
        Arc::new(revocation_list::RevocationList),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an attribute name says it holds a secret.
    fn names_a_secret(name: &str) -> bool {
        let about_a_secret = ["_encryption", "_version", "_status"]
            .iter()
            .any(|s| name.ends_with(s));
        (name.contains("password") && !about_a_secret) || name.contains("private_key")
    }

    /// Every schema the provider serves, by owner: the resources, the data
    /// sources and the provider block.
    fn all_schemas() -> Vec<(String, Schema)> {
        let mut schemas: Vec<(String, Schema)> = all()
            .iter()
            .map(|r| (r.type_name().to_string(), r.schema()))
            .collect();
        schemas.extend(
            crate::data_sources::all()
                .iter()
                .map(|d| (d.type_name().to_string(), d.schema())),
        );
        schemas.extend(
            crate::ephemeral::all()
                .iter()
                .map(|e| (e.type_name().to_string(), e.schema())),
        );
        schemas.push(("provider".into(), crate::provider::config::schema()));
        schemas
    }

    #[test]
    fn every_secret_attribute_is_sensitive_or_write_only() {
        let mut checked = 0;
        for (owner, schema) in &all_schemas() {
            for a in &schema.attributes {
                let secret =
                    names_a_secret(a.name) || (owner == "provider" && a.name == "data_nodes");
                if secret {
                    checked += 1;
                    // A write-only value never reaches a plan or the state
                    // and Terraform never shows it: that is stronger than
                    // sensitive.
                    assert!(
                        a.sensitive || a.write_only,
                        "{owner}.{} holds a secret but is neither sensitive nor write-only",
                        a.name
                    );
                }
            }
        }
        assert!(checked >= 8, "only {checked} secret attributes found");
    }

    /// A default is a value of its attribute's type (a string default on a
    /// bool attribute would compile and fail at run time) and one of its
    /// allowed values, in blocks as at the top level.
    #[test]
    fn every_default_is_of_its_attribute_s_type_and_allowed() {
        let mut checked = 0;
        for (owner, schema) in &all_schemas() {
            let nested = schema.blocks.iter().flat_map(|b| &b.attributes);
            for a in schema.attributes.iter().chain(nested) {
                let Some(d) = &a.default else { continue };
                checked += 1;
                assert!(
                    d.conforms(&a.ty),
                    "{owner}.{}: default {d} is not a {:?}",
                    a.name,
                    a.ty
                );
                if let (Some(allowed), Some(s)) = (a.one_of, d.as_str()) {
                    assert!(
                        allowed.contains(&s),
                        "{owner}.{}: default {s:?} is not allowed",
                        a.name
                    );
                }
            }
        }
        assert!(checked >= 20, "only {checked} defaults found");
        assert!(!Value::string("x").conforms(&crate::value::Type::Bool));
        assert!(Value::Bool(true).conforms(&crate::value::Type::Bool));
    }

    /// Every resource but the whole-file one and the revocation list can
    /// be imported, and says how.
    #[test]
    fn import_ids_are_declared() {
        let importable: Vec<&str> = all()
            .iter()
            .filter(|r| r.import_id_format().is_some())
            .map(|r| r.type_name())
            .collect();
        assert_eq!(importable.len(), all().len() - 2, "{importable:?}");
        // A list is signed, not found: there is nothing on a node to adopt
        // that the configuration would not sign again.
        assert!(!importable.contains(&"timescaledb_certificate_revocation_list"));
        assert!(importable.contains(&"timescaledb_certificate_authority"));
        // Nothing of a whole file to adopt: it is the node's file.
        assert!(!importable.contains(&"timescaledb_hba_file"));
    }

    /// The default and the allowed values are written into a description by
    /// the schema builder; a description that states them as well says them
    /// twice in the docs and in `terraform providers schema`.
    #[test]
    fn no_description_states_its_default_or_choices_twice() {
        let mut checked = 0;
        for (owner, schema) in &all_schemas() {
            let nested = schema.blocks.iter().flat_map(|b| &b.attributes);
            for a in schema.attributes.iter().chain(nested) {
                checked += 1;
                for phrase in ["Defaults to ", "One of "] {
                    assert!(
                        a.description.matches(phrase).count() <= 1,
                        "{owner}.{} says {phrase:?} more than once: {}",
                        a.name,
                        a.description
                    );
                }
            }
        }
        assert!(checked >= 60, "only {checked} attributes found");
    }
}
