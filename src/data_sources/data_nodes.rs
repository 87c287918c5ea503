//! `timescaledb_data_nodes`: the data nodes the provider sees.

use crate::diag::Diagnostics;

use super::{Ctx, DataSource};

crate::model! {
    /// The data source's state.
    pub struct Model {
        ID => id: Option<String> = computed("Always `data_nodes`."),
        NODES => nodes: Vec<NodeInfo> = computed("The data nodes in name order, each with `name`, `host`, `port`, `database`, `reachable` (whether the provider \
                     could log in just now) and `source` (`configuration` or `timescaledb`)."),
    }
}

crate::model! {
    /// One data node.
    pub struct NodeInfo {
        NAME => name: String = computed("Data node name."),
        HOST => host: String = computed("Host."),
        PORT => port: i64 = computed("Port."),
        DATABASE => database: String = computed("Database."),
        REACHABLE => reachable: bool = computed("Whether the provider could log in just now."),
        SOURCE => source: String = computed("`configuration` or `timescaledb`."),
    }
}

pub struct DataNodes;

#[tonic::async_trait]
impl DataSource for DataNodes {
    type Model = Model;

    const TYPE_NAME: &'static str = "timescaledb_data_nodes";

    const DESCRIPTION: &'static str = "Lists the data nodes the provider manages: those named in the provider's `data_nodes` setting, or else those in \
             TimescaleDB's `timescaledb_information.data_nodes` on the access node. Each node is probed with a connection.";

    async fn read(&self, ctx: &Ctx, _config: Model) -> Result<Model, Diagnostics> {
        let provider = &ctx.provider;
        let infos = provider.data_node_infos().await?;
        let mut nodes = Vec::with_capacity(infos.len());
        for info in infos {
            let reachable = match provider.node(&info.name).await {
                Ok(n) => n.session().await.is_ok(),
                Err(_) => false,
            };
            nodes.push(NodeInfo {
                name: info.name,
                host: info.host,
                port: i64::from(info.port),
                database: info.database,
                reachable,
                source: info.source.to_string(),
            });
        }
        Ok(Model {
            id: Some("data_nodes".into()),
            nodes,
        })
    }
}
