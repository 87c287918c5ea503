//! One PostgreSQL node: its connection pool, what the provider learns about
//! its own session there, files on the node read and written through SQL,
//! and guarded edits of pg_hba.conf.

mod bastion;
mod batch;
mod cache;
mod certs;
mod conf;
mod conn;
mod error;
mod files;
mod grants;
mod hba;
mod ident;
mod members;
mod passfile;
mod pool;
mod roles;
mod store;
pub mod tls;

use std::net::IpAddr;
use std::sync::Arc;

pub use bastion::{Bastion, BastionSpec, ClientAuth, HostKeys};
pub use certs::{
    user_cert_base, CertFile, CertFileKind, CertPaths, Install, Installed, SSL_SETTINGS,
};
pub use conn::{ChannelBinding, ConnSpec, SslMode, CHANNEL_BINDINGS, SESSION_SETTINGS, SSL_MODES};
pub use error::{ErrorKind, NodeError};
pub use grants::GrantChange;
pub use hba::{server_rule, HbaSnapshot};
pub use ident::IdentSnapshot;
pub use members::{Membership, MembershipTable};
pub use passfile::{PassSnapshot, PASSFILE_MODE};
pub use pool::{Pool, Pooled};

use crate::hba::{ClientInfo, Credentials};
use crate::sql;

/// A node the provider manages: the access node or a data node.
pub struct Node {
    pub name: String,
    pub spec: ConnSpec,
    pool: Arc<Pool>,
    /// Serialises edits of this node's files within the process; edits from
    /// other processes are kept apart by an advisory lock on the node.
    edit_lock: tokio::sync::Mutex<()>,
    /// The files edited as a whole ([`store`]).
    hba: store::Store<hba::Hba>,
    ident: store::Store<ident::Ident>,
    passfile: store::Store<passfile::Passfile>,
    /// Snapshots shared by reads ([`cache`]).
    read: cache::Snapshots,
    /// pg_hba.conf edits that resources planned in this run will make
    /// ([`Node::hba_preview_after_planned`]).
    hba_planned: std::sync::Mutex<Vec<hba::PlannedEdit>>,
    /// Serialises catalog changes (grants) within the process.
    catalog_lock: tokio::sync::Mutex<()>,
    /// Grant changes waiting to be made together ([`grants`]).
    grant_changes: batch::Queue<grants::PendingGrants, Arc<grants::GrantTable>>,
}

/// What the server says about the provider's own session.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub client: ClientInfo,
    pub superuser: bool,
    pub server_version_num: i32,
    pub conf_load_time: f64,
}

impl Node {
    pub fn new(name: &str, spec: ConnSpec) -> Node {
        Node {
            name: name.to_string(),
            pool: Pool::new(name, spec.clone()),
            spec,
            edit_lock: tokio::sync::Mutex::new(()),
            catalog_lock: tokio::sync::Mutex::new(()),
            grant_changes: Default::default(),
            hba: Default::default(),
            ident: Default::default(),
            passfile: Default::default(),
            read: Default::default(),
            hba_planned: Default::default(),
        }
    }

    pub fn address(&self) -> String {
        self.spec.address()
    }

    pub fn err(
        &self,
        kind: ErrorKind,
        doing: impl Into<String>,
        message: impl Into<String>,
    ) -> NodeError {
        NodeError::new(&self.name, &self.address(), kind, doing, message)
    }

    pub fn pg_err(&self, doing: impl Into<String>, e: &tokio_postgres::Error) -> NodeError {
        NodeError::from_pg(&self.name, &self.address(), doing, e)
    }

    pub async fn session(&self) -> Result<Pooled, NodeError> {
        self.pool.get().await
    }

    /// A transaction on `session`.
    pub(crate) async fn begin<'a>(
        &self,
        session: &'a mut Pooled,
    ) -> Result<tokio_postgres::Transaction<'a>, NodeError> {
        session
            .client()
            .transaction()
            .await
            .map_err(|e| self.pg_err("starting a transaction", &e))
    }

    /// What the provider presents when it logs in.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            password: self.spec.password.is_some(),
            client_cert: self.spec.clientcert.is_some(),
        }
    }

    /// Reads the current value of a server setting (None when unset).
    pub async fn setting(&self, name: &str) -> Result<Option<String>, NodeError> {
        let mut s = self.session().await?;
        let row = s
            .client()
            .query_one(sql::SHOW_SETTING, &[&name])
            .await
            .map_err(|e| self.pg_err(format!("reading setting {name}"), &e))?;
        Ok(row.get::<_, Option<String>>(0).filter(|v| !v.is_empty()))
    }

    pub async fn session_info<C: tokio_postgres::GenericClient>(
        &self,
        client: &C,
    ) -> Result<SessionInfo, NodeError> {
        let row = client
            .query_one(sql::SESSION_INFO, &[])
            .await
            .map_err(|e| self.pg_err("reading session information", &e))?;
        let addr: Option<String> = row.get(2);
        Ok(SessionInfo {
            client: ClientInfo {
                user: row.get(0),
                database: row.get(1),
                addr: addr.and_then(|a| a.parse::<IpAddr>().ok()),
                ssl: row.get(3),
                member_of: row.get(4),
            },
            superuser: row.get::<_, Option<bool>>(5).unwrap_or(false),
            server_version_num: row.get(6),
            conf_load_time: row.get(7),
        })
    }

    /// What the provider's session may do with files on the server: run
    /// programs, read the data directory's path (asked once per node).
    pub(crate) async fn file_rights<C: tokio_postgres::GenericClient>(
        &self,
        c: &C,
    ) -> Result<Arc<files::Rights>, NodeError> {
        self.read
            .file_rights
            .get(|| async {
                files::rights(c)
                    .await
                    .map_err(|e| self.pg_err("checking what the provider may do with files", &e))
            })
            .await
    }

    /// A text file on the node, `None` when it does not exist; a file that
    /// is not UTF-8 is refused rather than edited.
    pub(crate) async fn read_text<C: tokio_postgres::GenericClient>(
        &self,
        c: &C,
        path: &str,
    ) -> Result<Option<String>, NodeError> {
        let bytes = files::read(c, path)
            .await
            .map_err(|e| self.pg_err(format!("reading {path}"), &e))?;
        self.text_of(path, bytes)
    }

    /// A file's bytes as text; a file that is not UTF-8 is refused.
    pub(crate) fn text_of(
        &self,
        path: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<String>, NodeError> {
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        String::from_utf8(bytes).map(Some).map_err(|_| {
            self.err(
                ErrorKind::Sql,
                format!("reading {path}"),
                "the file is not valid UTF-8; the provider will not edit it",
            )
        })
    }

    /// Forgets what was read of roles and privileges, after a change made
    /// on this node by other means (`distributed_exec` from the access node).
    pub async fn roles_changed(&self) {
        self.read.roles_changed().await;
    }

    /// Closes pooled sessions.
    pub fn close(&self) {
        self.pool.close();
    }
}
