//! Ephemeral resources (Terraform 1.10 and later): values made for one
//! Terraform run, usable in provider blocks, write-only attributes and
//! provisioners, and never kept in a plan or the state.

pub mod user_certificate;

use std::sync::Arc;
use std::time::SystemTime;

use crate::diag::Diagnostics;
use crate::model::{HasPlan, Model, PlanModel};
use crate::resources::Ctx;
use crate::schema::Schema;
use crate::value::Value;

/// What opening an ephemeral resource gives: its result, when Terraform
/// must renew it (`None`: never), and private data Terraform hands back to
/// renew and close it.
pub struct Opened<M> {
    pub result: M,
    pub renew_at: Option<SystemTime>,
    pub private: Vec<u8>,
}

/// What a renewal gives: when to renew next, and the private data then.
#[derive(Debug, Default)]
pub struct Renewed {
    pub renew_at: Option<SystemTime>,
    pub private: Vec<u8>,
}

/// An ephemeral resource type, over its typed model.
#[tonic::async_trait]
pub trait EphemeralResource: Send + Sync + 'static {
    type Model: Model + HasPlan + Send + Sync;

    const TYPE_NAME: &'static str;

    /// The Markdown description, for its schema.
    const DESCRIPTION: &'static str;

    /// Checks a configuration beyond its schema's. No I/O.
    fn validate(&self, config: &<Self::Model as HasPlan>::Plan) -> Diagnostics;

    /// Makes the value for this run.
    async fn open(
        &self,
        ctx: &Ctx,
        config: Self::Model,
    ) -> Result<Opened<Self::Model>, Diagnostics>;

    /// Keeps the value valid past `renew_at`.
    async fn renew(&self, ctx: &Ctx, private: &[u8]) -> Result<Renewed, Diagnostics>;

    /// Ends the value's use: Terraform is done with it.
    async fn close(&self, ctx: &Ctx, private: &[u8]) -> Result<(), Diagnostics>;
}

/// An ephemeral resource as the server sees it: values in, values out.
#[tonic::async_trait]
pub trait DynEphemeral: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn validate(&self, config: &Value) -> Diagnostics;
    async fn open(&self, ctx: &Ctx, config: &Value) -> Result<Opened<Value>, Diagnostics>;
    async fn renew(&self, ctx: &Ctx, private: &[u8]) -> Result<Renewed, Diagnostics>;
    async fn close(&self, ctx: &Ctx, private: &[u8]) -> Result<(), Diagnostics>;
}

#[tonic::async_trait]
impl<E: EphemeralResource> DynEphemeral for E {
    fn type_name(&self) -> &'static str {
        E::TYPE_NAME
    }
    fn schema(&self) -> Schema {
        E::Model::schema(E::DESCRIPTION)
    }
    fn validate(&self, config: &Value) -> Diagnostics {
        match <E::Model as HasPlan>::Plan::decode_plan(config) {
            Ok(c) => EphemeralResource::validate(self, &c),
            Err(d) => d,
        }
    }
    async fn open(&self, ctx: &Ctx, config: &Value) -> Result<Opened<Value>, Diagnostics> {
        let opened = EphemeralResource::open(self, ctx, E::Model::from_value(config)?).await?;
        Ok(Opened {
            result: opened.result.to_value(),
            renew_at: opened.renew_at,
            private: opened.private,
        })
    }
    async fn renew(&self, ctx: &Ctx, private: &[u8]) -> Result<Renewed, Diagnostics> {
        EphemeralResource::renew(self, ctx, private).await
    }
    async fn close(&self, ctx: &Ctx, private: &[u8]) -> Result<(), Diagnostics> {
        EphemeralResource::close(self, ctx, private).await
    }
}

/// Every ephemeral resource the provider offers.
pub fn all() -> Vec<Arc<dyn DynEphemeral>> {
    vec![Arc::new(user_certificate::UserCertificate)]
}
