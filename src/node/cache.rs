//! Per-node snapshots shared by concurrent reads.
//!
//! A refresh of many resources reads the same things from a node again and
//! again: its pg_hba.conf, its passfile, its roles, its foreign server
//! privileges. Each is loaded once (the first caller loads, the others wait
//! for that load: single flight) and kept until the provider changes it on
//! that node, so a plan costs a few statements per node and kind whatever
//! the number of resources. Writes read afresh under their locks and never
//! use a snapshot.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::error::NodeError;

pub struct Cached<T> {
    cell: Mutex<Option<Arc<T>>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached {
            cell: Mutex::new(None),
        }
    }
}

impl<T> Cached<T> {
    /// The snapshot, loaded by `load` when there is none.
    pub async fn get<F, Fut>(&self, load: F) -> Result<Arc<T>, NodeError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, NodeError>>,
    {
        let mut cell = self.cell.lock().await;
        if let Some(v) = cell.as_ref() {
            return Ok(v.clone());
        }
        let v = Arc::new(load().await?);
        *cell = Some(v.clone());
        Ok(v)
    }

    /// Keeps `v`, read in the transaction that made a change, as the
    /// snapshot; a load in flight finishes first.
    pub async fn put(&self, v: Arc<T>) {
        *self.cell.lock().await = Some(v);
    }

    /// Forgets the snapshot after a change; a load in flight finishes
    /// first, so it cannot put stale data back.
    pub async fn invalidate(&self) {
        *self.cell.lock().await = None;
    }
}

/// Everything a node keeps of what it read, in one place: add a field here
/// (with its loader where it is read) and nothing else changes. The files
/// edited as a whole keep their snapshots in their stores ([`super::store`]).
#[derive(Default)]
pub struct Snapshots {
    pub roles: Cached<super::roles::RoleTable>,
    /// Roles read again after the provider changed them (`None`: dropped);
    /// they take precedence over `roles`.
    pub role_updates: Mutex<std::collections::HashMap<String, Option<super::roles::RoleRow>>>,
    pub grants: Cached<super::grants::GrantTable>,
    pub memberships: Cached<super::members::MembershipTable>,
    /// The names of the foreign servers (the provider never changes them).
    pub servers: Cached<std::collections::BTreeSet<String>>,
    pub session: Cached<super::SessionInfo>,
    /// Whether the provider may read stored passwords (`pg_authid`).
    pub reads_passwords: Cached<bool>,
    /// Whether the provider may run programs on the server, and where the
    /// data directory is.
    pub file_rights: Cached<super::files::Rights>,
    /// Times as users wrote them (`valid_until`), as epoch seconds.
    pub epochs: Mutex<std::collections::HashMap<String, Option<f64>>>,
}

impl Snapshots {
    /// Forgets what was read of roles and privileges.
    pub async fn roles_changed(&self) {
        self.roles.invalidate().await;
        self.role_updates.lock().await.clear();
        self.grants.invalidate().await;
        self.memberships.invalidate().await;
    }
}
