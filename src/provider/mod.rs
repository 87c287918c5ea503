//! The configured provider: the access node, the data nodes, and their
//! connection pools. It lives from `ConfigureProvider` until the plugin
//! shuts down; dropping it closes every pooled session.

pub mod config;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;

pub use config::ProviderConfig;

use crate::node::{ConnSpec, ErrorKind, Node, NodeError};
use crate::sql;

/// The name resources use for the access node.
pub const ACCESS_NODE: &str = "access";

/// A data node as the provider sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataNodeInfo {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// Where the data node list came from: `configuration` or `timescaledb`.
    pub source: &'static str,
}

pub struct Provider {
    pub config: ProviderConfig,
    access: Arc<Node>,
    data_nodes: Mutex<Option<BTreeMap<String, Arc<Node>>>>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Provider {
        let access = Arc::new(Node::new(ACCESS_NODE, config.access.clone()));
        Provider {
            config,
            access,
            data_nodes: Mutex::new(None),
        }
    }

    pub fn access(&self) -> Arc<Node> {
        self.access.clone()
    }

    /// The data nodes, from the configuration or else from TimescaleDB's
    /// catalog on the access node (looked up once).
    pub async fn data_nodes(&self) -> Result<BTreeMap<String, Arc<Node>>, NodeError> {
        let mut guard = self.data_nodes.lock().await;
        if let Some(nodes) = guard.as_ref() {
            return Ok(nodes.clone());
        }
        let specs = if self.config.data_nodes.is_empty() {
            self.discover().await?
        } else {
            self.config.data_nodes.clone()
        };
        let nodes: BTreeMap<String, Arc<Node>> = specs
            .into_iter()
            .map(|(name, spec)| (name.clone(), Arc::new(Node::new(&name, spec))))
            .collect();
        *guard = Some(nodes.clone());
        Ok(nodes)
    }

    pub async fn data_node_infos(&self) -> Result<Vec<DataNodeInfo>, NodeError> {
        let source = if self.config.data_nodes.is_empty() {
            "timescaledb"
        } else {
            "configuration"
        };
        Ok(self
            .data_nodes()
            .await?
            .values()
            .map(|n| DataNodeInfo {
                name: n.name.clone(),
                host: n.spec.host.clone(),
                port: n.spec.port,
                database: n.spec.database.clone(),
                source,
            })
            .collect())
    }

    /// A node by name: `access` or a data node.
    pub async fn node(&self, name: &str) -> Result<Arc<Node>, NodeError> {
        if name == ACCESS_NODE {
            return Ok(self.access());
        }
        let nodes = self.data_nodes().await?;
        nodes.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = std::iter::once(ACCESS_NODE)
                .chain(nodes.keys().map(String::as_str))
                .collect();
            NodeError::new(
                name,
                "unknown",
                ErrorKind::Sql,
                "looking up the node",
                format!(
                    "no node is named {name:?}; known nodes: {}",
                    known.join(", ")
                ),
            )
        })
    }

    async fn discover(&self) -> Result<BTreeMap<String, ConnSpec>, NodeError> {
        let access = self.access();
        let mut s = access.session().await?;
        let has_tsdb = s
            .client()
            .query_opt(sql::TIMESCALEDB_VERSION, &[])
            .await
            .map_err(|e| access.pg_err("checking for TimescaleDB", &e))?;
        if has_tsdb.is_none() {
            return Ok(BTreeMap::new());
        }
        let rows = match s.client().query(sql::DATA_NODES, &[]).await {
            Ok(rows) => rows,
            // TimescaleDB 2.14 and later have no multi-node catalog.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                return Ok(BTreeMap::new())
            }
            Err(e) => return Err(access.pg_err("listing TimescaleDB data nodes", &e)),
        };
        let mut out = BTreeMap::new();
        for row in rows {
            let name: String = row.get(0);
            let options: Vec<String> = row.get(1);
            let mut spec = self.config.access.clone();
            for opt in options {
                match opt.split_once('=') {
                    Some(("host", h)) => spec.host = h.to_string(),
                    Some(("port", p)) => spec.port = p.parse().unwrap_or(spec.port),
                    Some(("dbname", d)) => spec.database = d.to_string(),
                    _ => {}
                }
            }
            out.insert(name, spec);
        }
        Ok(out)
    }

    /// Closes every pooled session.
    pub async fn close(&self) {
        self.access.close();
        if let Some(nodes) = self.data_nodes.lock().await.as_ref() {
            for n in nodes.values() {
                n.close();
            }
        }
    }
}
