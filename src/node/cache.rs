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

    /// Forgets the snapshot after a change; a load in flight finishes
    /// first, so it cannot put stale data back.
    pub async fn invalidate(&self) {
        *self.cell.lock().await = None;
    }
}
