//! Data sources: read-only views of the cluster.

pub mod data_nodes;

use std::sync::Arc;

use crate::diag::Diagnostics;
use crate::resources::Ctx;
use crate::schema::Schema;
use crate::value::Value;

#[tonic::async_trait]
pub trait DataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// The data source's state for a wholly known configuration.
    async fn read(&self, ctx: &Ctx, config: &Value) -> Result<Value, Diagnostics>;
}

pub fn all() -> Vec<Arc<dyn DataSource>> {
    vec![Arc::new(data_nodes::DataNodes)]
}
