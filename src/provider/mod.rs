//! The configured provider: the access node, the data nodes, and their
//! connection pools. It lives from `ConfigureProvider` until the plugin
//! shuts down; dropping it closes every pooled session.

pub mod config;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Mutex;

pub use config::{Fanout, ProviderConfig};

use crate::node::{ConnSpec, ErrorKind, Node, NodeError};
use crate::secret::Secret;
use crate::sql;

/// How statements reach data nodes, once decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// TimescaleDB's `distributed_exec`, in this schema.
    DistributedExec {
        schema: String,
    },
    Direct,
}

/// What running a statement on data nodes came to.
#[derive(Debug, Default)]
pub struct FanOut {
    /// Each node's outcome.
    pub outcomes: Vec<(String, Result<(), NodeError>)>,
    /// Why the statement went over the provider's own connections although
    /// `distributed_exec` was the route, when it did.
    pub fell_back: Option<String>,
}

impl FanOut {
    /// Adds each failed node's diagnostic to `diags` (once per distinct
    /// message: a failed `distributed_exec` fails every node of the call
    /// with one message) and its name to `failed`; a fallback from
    /// `distributed_exec` to direct connections is a warning.
    pub fn report(
        self,
        diags: &mut crate::diag::Diagnostics,
        failed: &mut std::collections::BTreeSet<String>,
    ) {
        if let Some(why) = self.fell_back {
            diags.push_warning(None, "distributed_exec could not reach the data nodes", why);
        }
        let mut seen = Vec::new();
        for (n, r) in self.outcomes {
            if let Err(e) = r {
                failed.insert(n);
                if !seen.contains(&e.message) {
                    seen.push(e.message.clone());
                    diags.extend(crate::diag::Diagnostics::from(&e));
                }
            }
        }
    }

    fn all_failed(nodes: &[String], e: &NodeError) -> FanOut {
        FanOut {
            outcomes: nodes
                .iter()
                .map(|n| {
                    (
                        n.clone(),
                        Err(NodeError {
                            node: n.clone(),
                            ..clone_err(e)
                        }),
                    )
                })
                .collect(),
            fell_back: None,
        }
    }
}

/// Whether a failed `distributed_exec` failed because the access node could
/// not open a connection to a data node (TimescaleDB: `could not connect
/// to "dn2"`; the stand-in's dblink: `could not establish connection`).
fn access_cannot_connect(e: &NodeError) -> bool {
    e.kind == ErrorKind::Sql
        && (e.message.contains("could not connect")
            || e.message.contains("could not establish connection"))
}

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
    /// Remembers password checks for the life of this configuration.
    pub passwords: crate::password::Checker,
    access: Arc<Node>,
    data_nodes: Mutex<Option<BTreeMap<String, Arc<Node>>>>,
    route: Mutex<Option<Route>>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Provider {
        let access = Arc::new(Node::new(ACCESS_NODE, config.access.clone()));
        Provider {
            config,
            passwords: Default::default(),
            access,
            data_nodes: Mutex::new(None),
            route: Mutex::new(None),
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
                ErrorKind::UnknownNode,
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
        let catalog = s
            .client()
            .query_one(sql::DATA_NODE_CATALOG, &[])
            .await
            .map_err(|e| access.pg_err("checking for TimescaleDB multi-node", &e))?;
        let (has_catalog, trusted): (bool, bool) = (catalog.get(0), catalog.get(1));
        if !has_catalog {
            return Ok(BTreeMap::new());
        }
        if !trusted {
            let owner: Option<String> = catalog.get(2);
            return Err(access.err(
                ErrorKind::Rejected,
                "listing TimescaleDB data nodes",
                format!(
                    "timescaledb_information.data_nodes is owned by role {:?}, which is neither a superuser nor TimescaleDB: \
                     the provider will not send its credentials to the addresses it lists. List the data nodes in the \
                     provider's `data_nodes` instead",
                    owner.unwrap_or_default()
                ),
            ));
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

    /// How statements reach the data nodes: the configured `fanout`, with
    /// `auto` settled by looking for `distributed_exec` on the access node
    /// (once).
    pub async fn route(&self) -> Result<Route, NodeError> {
        let mut guard = self.route.lock().await;
        if let Some(r) = guard.as_ref() {
            return Ok(r.clone());
        }
        let r = match self.config.fanout {
            Fanout::Direct => Route::Direct,
            fanout => match self.distributed_exec_schema().await? {
                Some(schema) => Route::DistributedExec { schema },
                None if fanout == Fanout::Auto => Route::Direct,
                None => {
                    return Err(self.access.err(
                        ErrorKind::Rejected,
                        "looking for distributed_exec",
                        "`fanout` is `distributed_exec`, but the access node has no TimescaleDB `distributed_exec(text, name[], boolean)` \
                         procedure (one of the extension's, or owned by a superuser) to call",
                    ))
                }
            },
        };
        *guard = Some(r.clone());
        Ok(r)
    }

    /// The schema of the `distributed_exec` the provider may call
    /// ([`sql::DISTRIBUTED_EXEC_SCHEMAS`]): TimescaleDB's own when the
    /// extension has one; another is taken only when it is the one there is.
    async fn distributed_exec_schema(&self) -> Result<Option<String>, NodeError> {
        let access = self.access();
        let mut s = access.session().await?;
        let rows = s
            .client()
            .query(sql::DISTRIBUTED_EXEC_SCHEMAS, &[])
            .await
            .map_err(|e| access.pg_err("looking for distributed_exec", &e))?;
        let found: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        match found.as_slice() {
            [] => Ok(None),
            [(schema, true), ..] | [(schema, false)] => Ok(Some(schema.clone())),
            _ => Err(access.err(
                ErrorKind::Rejected,
                "looking for distributed_exec",
                format!(
                    "superusers made a `distributed_exec(text, name[], boolean)` procedure in more than one schema ({}) and none \
                     belongs to the TimescaleDB extension; the provider will not guess which to call: set `fanout = \"direct\"` \
                     or drop the extra ones",
                    found.iter().map(|(s, _)| format!("{s:?}")).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Runs `statement` on each of `nodes` (data node names) the way
    /// [`Provider::route`] says; `direct` builds the statement per node (it
    /// may depend on the node's settings), `shared` is the one statement
    /// `distributed_exec` sends everywhere. Returns each node's outcome.
    ///
    /// When `distributed_exec` fails because the access node cannot connect
    /// to a data node (TLS, its passfile, a data node's rules), the call
    /// changed no data node (it is one distributed transaction), so the
    /// provider runs the statement over its own connections instead and
    /// says so in [`FanOut::fell_back`].
    pub async fn exec_on_data_nodes<F, Fut>(
        &self,
        nodes: &[String],
        doing: &str,
        shared: &Secret,
        direct: F,
    ) -> FanOut
    where
        F: Fn(Arc<Node>) -> Fut,
        Fut: std::future::Future<Output = Result<(), NodeError>>,
    {
        if nodes.is_empty() {
            return FanOut::default();
        }
        let route = match self.route().await {
            Ok(r) => r,
            Err(e) => {
                return FanOut::all_failed(nodes, &e);
            }
        };
        let Route::DistributedExec { schema } = route else {
            return FanOut {
                outcomes: self.exec_direct(nodes, doing, &direct).await,
                fell_back: None,
            };
        };
        let access = self.access();
        let call = sql::distributed_exec(&schema);
        let outcome = async {
            let mut s = access.session().await?;
            s.client()
                .execute(&call, &[&shared.expose(), &nodes])
                .await
                .map(|_| ())
                // The error is made of the server's message, detail and
                // hint, never of its context or statement, so the
                // statement (a `Secret`: it may carry a password verifier)
                // cannot reach it.
                .map_err(|e| {
                    access.pg_err(
                        format!("{doing} on {} through distributed_exec", nodes.join(", ")),
                        &e,
                    )
                })
        }
        .await;
        // The data nodes changed behind their own sessions' backs.
        if let Ok(all) = self.data_nodes().await {
            for n in nodes {
                if let Some(node) = all.get(n) {
                    node.roles_changed().await;
                }
            }
        }
        match outcome {
            Ok(()) => FanOut {
                outcomes: nodes.iter().map(|n| (n.clone(), Ok(()))).collect(),
                fell_back: None,
            },
            Err(e) if access_cannot_connect(&e) => FanOut {
                outcomes: self.exec_direct(nodes, doing, &direct).await,
                fell_back: Some(format!(
                    "While {doing}, distributed_exec on the access node could not reach {} ({}). The provider reached them \
                     over its own connections instead. TimescaleDB's distributed queries fail the same way until the access \
                     node can connect to its data nodes again: check their TLS (while the access node's ssl is on it \
                     connects over TLS only), the access node's passfile and the data nodes' pg_hba.conf.",
                    nodes.join(", "),
                    e.message
                )),
            },
            Err(e) => FanOut::all_failed(nodes, &e),
        }
    }

    async fn exec_direct<F, Fut>(
        &self,
        nodes: &[String],
        doing: &str,
        direct: &F,
    ) -> Vec<(String, Result<(), NodeError>)>
    where
        F: Fn(Arc<Node>) -> Fut,
        Fut: std::future::Future<Output = Result<(), NodeError>>,
    {
        let all = match self.data_nodes().await {
            Ok(all) => all,
            Err(e) => {
                return nodes
                    .iter()
                    .map(|n| (n.clone(), Err(clone_err(&e))))
                    .collect()
            }
        };
        let work = nodes.iter().map(|n| {
            let node = all.get(n).cloned();
            let fut = node.clone().map(direct);
            async move {
                let r = match fut {
                    Some(f) => f.await,
                    None => Err(NodeError::new(
                        n,
                        "unknown",
                        ErrorKind::Sql,
                        doing,
                        format!("no data node is named {n:?}"),
                    )),
                };
                (n.clone(), r)
            }
        });
        fan_out(work).await
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

fn clone_err(e: &NodeError) -> NodeError {
    NodeError::new(
        &e.node,
        &e.address,
        e.kind,
        e.doing.clone(),
        e.message.clone(),
    )
}

/// At most this many nodes are worked on at once by one operation.
pub const FAN_OUT: usize = 16;

/// Runs `work` (one future per node) concurrently, at most [`FAN_OUT`] at a
/// time, and returns the outcomes in order: a slow node holds up only its
/// own slot.
pub async fn fan_out<I, F, T>(work: I) -> Vec<T>
where
    I: IntoIterator<Item = F>,
    F: std::future::Future<Output = T>,
{
    use futures_util::StreamExt;
    // Collected first: a stream over a borrowing iterator would not be Send.
    let futures: Vec<F> = work.into_iter().collect();
    futures_util::stream::iter(futures)
        .buffered(FAN_OUT)
        .collect()
        .await
}
