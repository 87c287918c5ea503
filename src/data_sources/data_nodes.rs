//! `timescaledb_data_nodes`: the data nodes the provider sees.

use std::collections::BTreeMap;

use crate::diag::Diagnostics;
use crate::schema::{object, Attribute, Mode, Schema};
use crate::value::{Type, Value};

use super::{Ctx, DataSource};

pub const ID: &str = "id";
pub const NODES: &str = "nodes";
pub const NAME: &str = "name";
pub const HOST: &str = "host";
pub const PORT: &str = "port";
pub const DATABASE: &str = "database";
pub const REACHABLE: &str = "reachable";
pub const SOURCE: &str = "source";

pub struct DataNodes;

fn node_type() -> Type {
    Type::Object(BTreeMap::from([
        (NAME.to_string(), Type::String),
        (HOST.to_string(), Type::String),
        (PORT.to_string(), Type::Number),
        (DATABASE.to_string(), Type::String),
        (REACHABLE.to_string(), Type::Bool),
        (SOURCE.to_string(), Type::String),
    ]))
}

#[tonic::async_trait]
impl DataSource for DataNodes {
    fn type_name(&self) -> &'static str {
        "timescaledb_data_nodes"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            "Lists the data nodes the provider manages: those named in the provider's `data_nodes` setting, or else those in \
             TimescaleDB's `timescaledb_information.data_nodes` on the access node. Each node is probed with a connection.",
            vec![
                Attribute::new(ID, Type::String, Mode::Computed, "Always `data_nodes`."),
                Attribute::new(
                    NODES,
                    Type::list(node_type()),
                    Mode::Computed,
                    "The data nodes in name order, each with `name`, `host`, `port`, `database`, `reachable` (whether the provider \
                     could log in just now) and `source` (`configuration` or `timescaledb`).",
                ),
            ],
        )
    }

    async fn read(&self, ctx: &Ctx, _config: &Value) -> Result<Value, Diagnostics> {
        let provider = &ctx.provider;
        let infos = provider.data_node_infos().await?;
        let mut nodes = Vec::with_capacity(infos.len());
        for info in infos {
            let reachable = match provider.node(&info.name).await {
                Ok(n) => n.session().await.is_ok(),
                Err(_) => false,
            };
            nodes.push(object([
                (NAME, Value::string(info.name)),
                (HOST, Value::string(info.host)),
                (PORT, Value::int(i64::from(info.port))),
                (DATABASE, Value::string(info.database)),
                (REACHABLE, Value::Bool(reachable)),
                (SOURCE, Value::string(info.source)),
            ]));
        }
        Ok(object([
            (ID, Value::string("data_nodes")),
            (NODES, Value::List(nodes)),
        ]))
    }
}
