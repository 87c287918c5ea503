//! Data sources: read-only views of the cluster.

pub mod certificates;
pub mod data_nodes;
pub mod hba_rules;

use std::sync::Arc;

use crate::diag::Diagnostics;
use crate::model::Model;
use crate::resources::Ctx;
use crate::schema::Schema;
use crate::value::Value;

/// A data source type, over its typed model.
#[tonic::async_trait]
pub trait DataSource: Send + Sync + 'static {
    type Model: Model + Send + Sync;

    const TYPE_NAME: &'static str;

    /// The Markdown description of the data source, for its schema.
    const DESCRIPTION: &'static str;

    /// The data source's state for a wholly known configuration.
    async fn read(&self, ctx: &Ctx, config: Self::Model) -> Result<Self::Model, Diagnostics>;
}

/// A data source as the server sees it: values in, values out.
#[tonic::async_trait]
pub trait DynDataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn read(&self, ctx: &Ctx, config: &Value) -> Result<Value, Diagnostics>;
}

#[tonic::async_trait]
impl<D: DataSource> DynDataSource for D {
    fn type_name(&self) -> &'static str {
        D::TYPE_NAME
    }
    fn schema(&self) -> Schema {
        D::Model::schema(D::DESCRIPTION)
    }
    async fn read(&self, ctx: &Ctx, config: &Value) -> Result<Value, Diagnostics> {
        let config = D::Model::from_value(config)?;
        Ok(DataSource::read(self, ctx, config).await?.to_value())
    }
}

pub fn all() -> Vec<Arc<dyn DynDataSource>> {
    vec![
        Arc::new(certificates::Certificates),
        Arc::new(data_nodes::DataNodes),
        Arc::new(hba_rules::HbaRules),
    ]
}
