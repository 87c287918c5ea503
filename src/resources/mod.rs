//! Managed resources. Each resource is one module implementing
//! [`Resource`] over a typed model; optional capabilities are separate
//! traits the server detects ([`ValidateConfig`], [`ModifyPlan`],
//! [`Import`]).

pub mod certificate_authority;
pub mod distributed_role;
pub mod foreign_server_grant;
pub mod hba_rule;
pub mod node_certificate;
pub mod passfile_entry;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::diag::{AttrPath, Diagnostics};
use crate::model::Model;
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

/// The plan the server computed from Terraform's rules, for the resource to
/// check against live nodes and adjust.
pub struct PlanInput<'a> {
    /// None when the resource is being created (or replaced).
    pub prior: Option<&'a Value>,
    /// The object exists and is being replaced: what it installed is still
    /// there when the plan is made.
    pub replacing: bool,
    pub config: &'a Value,
    /// The planned state; the resource may set computed attributes.
    pub planned: &'a mut Value,
    /// Warnings to show with the plan.
    pub warnings: Diagnostics,
}

/// A resource type: the core every resource implements. Optional
/// capabilities are the separate traits [`ValidateConfig`], [`ModifyPlan`]
/// and [`Import`], which a resource offers through the methods at the end.
///
/// Operations receive and return the resource's [`Model`], decoded from
/// and encoded to Terraform's values by the server ([`DynResource`]).
#[tonic::async_trait]
pub trait Resource: Send + Sync + 'static {
    type Model: Model + Send + Sync;

    /// The resource type name, e.g. `timescaledb_hba_rule`.
    const TYPE_NAME: &'static str;

    /// The Markdown description of the resource type, for its schema.
    const DESCRIPTION: &'static str;

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

    async fn delete(&self, ctx: &Ctx, prior: Self::Model) -> Result<(), Diagnostics>;

    /// The configuration check, when the resource has one.
    fn config_validator(&self) -> Option<&dyn ValidateConfig> {
        None
    }

    /// The plan modification, when the resource has one.
    fn plan_modifier(&self) -> Option<&dyn ModifyPlan> {
        None
    }

    /// The import capability, when the resource has one.
    fn importer(&self) -> Option<&dyn Import<Model = Self::Model>> {
        None
    }
}

/// What a read finds: the object's state, or `None` when it is gone.
pub type Read<M> = Result<Option<State<M>>, Diagnostics>;

/// What a create or update leaves.
pub type Applied<M> = Result<State<M>, ApplyError<M>>;

/// The optional capabilities a resource offers, inside its `impl Resource`:
/// `crate::offers!(ValidateConfig, ModifyPlan, Import);`
#[macro_export]
macro_rules! offers {
    ($($capability:ident),* $(,)?) => { $( $crate::offers!(@ $capability); )* };
    (@ ValidateConfig) => {
        fn config_validator(&self) -> Option<&dyn $crate::resources::ValidateConfig> {
            Some(self)
        }
    };
    (@ ModifyPlan) => {
        fn plan_modifier(&self) -> Option<&dyn $crate::resources::ModifyPlan> {
            Some(self)
        }
    };
    (@ Import) => {
        fn importer(&self) -> Option<&dyn $crate::resources::Import<Model = Self::Model>> {
            Some(self)
        }
    };
}

/// Checks of a configuration beyond its schema's.
pub trait ValidateConfig: Send + Sync {
    /// Checks a configuration that may hold unknown values. No I/O.
    fn validate(&self, config: &Value) -> Diagnostics;
}

/// Planning beyond Terraform's own rules. The server calls, in order:
/// [`ModifyPlan::refine_replace`] and [`ModifyPlan::must_replace`] (pure),
/// then [`ModifyPlan::complete_plan`] on every plan, then
/// [`ModifyPlan::check_plan`] for a create or update (or
/// [`ModifyPlan::check_destroy`] for a destroy) against the live nodes.
/// Plans may hold unknown values, so they are [`Value`]s here.
#[tonic::async_trait]
pub trait ModifyPlan: Send + Sync {
    /// Narrows the attributes whose change forces replacement, for changes
    /// that look different but mean the same (no I/O).
    fn refine_replace(&self, _prior: &Value, _planned: &Value, _replace: &mut Vec<AttrPath>) {}

    /// Whether the object must be replaced although nothing configurable
    /// changed (a certificate inside its renewal window); the path names
    /// the attribute that says so. No I/O.
    fn must_replace(&self, _prior: &Value, _planned: &Value) -> Option<AttrPath> {
        None
    }

    /// Completes the planned state, every time a plan is made (also when
    /// nothing configurable changed): sets computed attributes to what they
    /// will be after apply, so that drift the read found shows as a change.
    /// `ctx` is `None` while the provider configuration is unknown.
    async fn complete_plan(
        &self,
        _ctx: Option<&Ctx>,
        _config: &Value,
        _planned: &mut Value,
    ) -> Result<(), Diagnostics> {
        Ok(())
    }

    /// Checks a create or update plan against the live node, when the
    /// provider is configured. The default accepts every plan.
    async fn check_plan(&self, _ctx: &Ctx, _plan: &mut PlanInput<'_>) -> Result<(), Diagnostics> {
        Ok(())
    }

    /// Checks a destroy plan (Terraform 1.3 and later send these).
    async fn check_destroy(&self, _ctx: &Ctx, _prior: &Value) -> Result<(), Diagnostics> {
        Ok(())
    }
}

/// Adopting an existing object by an ID a user can write.
#[tonic::async_trait]
pub trait Import: Send + Sync {
    type Model;

    /// The ID's form, for the docs and for error messages.
    fn id_format(&self) -> &'static str;

    /// The object named by `id`.
    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Self::Model, Diagnostics>;
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

impl<M> ApplyError<M> {
    /// A change recorded as made, with `diags` (warnings only) to show: a
    /// create that could not finish everywhere (Terraform would taint an
    /// object created with errors and replace it at the next apply,
    /// dropping what was made; recorded this way, the next apply finishes
    /// it in place), or one that succeeded by another way than usual.
    pub fn unfinished(state: State<M>, diags: Diagnostics) -> ApplyError<M> {
        ApplyError {
            diags,
            partial: Some(state),
        }
    }

    /// Whether this is an [`ApplyError::unfinished`] create rather than a
    /// failure.
    pub fn is_unfinished(&self) -> bool {
        self.partial.is_some() && !self.diags.has_errors()
    }
}

impl<M: Model> ApplyError<M> {
    fn encode(self) -> ApplyError {
        ApplyError {
            diags: self.diags,
            partial: self.partial.map(State::encode),
        }
    }
}

/// A resource as the server sees it: values in, values out. Every
/// [`Resource`] is one, decoding and encoding its model at this edge.
#[tonic::async_trait]
pub trait DynResource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, config: &Value) -> Diagnostics;
    fn plan_modifier(&self) -> Option<&dyn ModifyPlan>;
    /// The import ID's form, when the resource can be imported.
    fn import_id_format(&self) -> Option<&'static str>;
    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Value, Diagnostics>;
    async fn read(&self, ctx: &Ctx, prior: &State) -> Result<Option<State>, Diagnostics>;
    async fn create(&self, ctx: &Ctx, planned: &Value) -> Result<State, ApplyError>;
    async fn update(&self, ctx: &Ctx, prior: &State, planned: &Value) -> Result<State, ApplyError>;
    async fn delete(&self, ctx: &Ctx, prior: &Value) -> Result<(), Diagnostics>;
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
        self.config_validator()
            .map(|v| v.validate(config))
            .unwrap_or_default()
    }
    fn plan_modifier(&self) -> Option<&dyn ModifyPlan> {
        Resource::plan_modifier(self)
    }
    fn import_id_format(&self) -> Option<&'static str> {
        self.importer().map(|i| i.id_format())
    }
    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Value, Diagnostics> {
        let importer = self.importer().ok_or_else(|| {
            Diagnostics::error(
                "Import not supported",
                format!("{} cannot be imported.", R::TYPE_NAME),
            )
        })?;
        Ok(importer.import(ctx, id).await?.to_value())
    }
    async fn read(&self, ctx: &Ctx, prior: &State) -> Result<Option<State>, Diagnostics> {
        let prior = decode_state(prior)?;
        Ok(Resource::read(self, ctx, prior).await?.map(State::encode))
    }
    async fn create(&self, ctx: &Ctx, planned: &Value) -> Result<State, ApplyError> {
        let planned = R::Model::from_value(planned)?;
        match Resource::create(self, ctx, planned).await {
            Ok(s) => Ok(s.encode()),
            Err(e) => Err(e.encode()),
        }
    }
    async fn update(&self, ctx: &Ctx, prior: &State, planned: &Value) -> Result<State, ApplyError> {
        let prior = decode_state(prior)?;
        let planned = R::Model::from_value(planned)?;
        match Resource::update(self, ctx, prior, planned).await {
            Ok(s) => Ok(s.encode()),
            Err(e) => Err(e.encode()),
        }
    }
    async fn delete(&self, ctx: &Ctx, prior: &Value) -> Result<(), Diagnostics> {
        Resource::delete(self, ctx, R::Model::from_value(prior)?).await
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

/// Plans computed `id` as the value of the attribute it is made from, once
/// that is known.
pub fn plan_id_from(planned: &mut Value, from: &str, id: &str) {
    if let Value::String(v) = planned.attr(from) {
        let v = v.clone();
        planned.set_attr(id, Value::string(v));
    }
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
