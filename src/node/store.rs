//! One file on a node that the provider edits as a whole (pg_hba.conf, the
//! passfile): reads share one snapshot ([`super::cache`]); edits are queued
//! and written together ([`super::batch`]) under the node's edit lock (in
//! process) and an advisory lock (across processes), in one transaction:
//! load the file, apply the edits in memory, then the file's own commit
//! (its checks, the write, the proof that the node reads what was meant,
//! and putting the previous content back when not). The work runs in a
//! task of its own, so a cancelled request cannot stop it halfway.

use std::sync::Arc;

use tokio_postgres::Transaction;

use super::batch::{self, Edit, Queue, Written};
use super::cache::Cached;
use super::error::NodeError;
use super::files::Rights;
use super::Node;
use crate::{log, sql};

/// What differs between the files a [`Store`] can hold.
#[tonic::async_trait]
pub trait FileKind: Sized + Send + Sync + 'static {
    /// The file's parsed form, which edits change.
    type File: Clone + PartialEq + Send + Sync + 'static;
    /// The file as read from the node, with what the resources look up.
    type Snapshot: Clone + Send + Sync + 'static;
    /// For messages and logs: `pg_hba.conf`, `the passfile`.
    const NAME: &'static str;
    /// The advisory lock that keeps writers in other processes apart.
    const LOCK_KEY: i64;

    fn store(node: &Node) -> &Store<Self>;
    fn file(snap: &Self::Snapshot) -> &Self::File;

    /// Reads the file; `rights` says what the provider may do with files
    /// on the server (run programs, and so, for instance, read file modes).
    async fn load(
        node: &Node,
        tx: &Transaction<'_>,
        rights: &Rights,
    ) -> Result<Self::Snapshot, NodeError>;

    /// Reads the file for a write: as [`FileKind::load`], leaving out what
    /// only [`FileKind::needs_write`] looks at when the content is the same.
    async fn load_for_write(
        node: &Node,
        tx: &Transaction<'_>,
        rights: &Rights,
    ) -> Result<Self::Snapshot, NodeError> {
        Self::load(node, tx, rights).await
    }

    /// Whether the file must be written: its content changes, or (for a
    /// kind that says so) something else about it is wrong.
    async fn needs_write(
        _node: &Node,
        _tx: &Transaction<'_>,
        before: &Self::Snapshot,
        after: &Self::File,
        _rights: &Rights,
    ) -> Result<bool, NodeError> {
        Ok(Self::file(before) != after)
    }

    /// Checks, writes and proves the new file; on failure the previous
    /// content is back in force.
    async fn commit(
        node: &Node,
        tx: &Transaction<'_>,
        before: &Self::Snapshot,
        after: Self::File,
        rights: &Rights,
    ) -> Result<Self::Snapshot, NodeError>;
}

/// A node's queue of edits and shared snapshot for one file.
pub struct Store<K: FileKind> {
    queue: Queue<K::File, K::Snapshot>,
    cache: Cached<K::Snapshot>,
}

impl<K: FileKind> Default for Store<K> {
    fn default() -> Self {
        Store {
            queue: Queue::default(),
            cache: Cached::default(),
        }
    }
}

impl Node {
    /// The file as it is now (shared snapshot).
    pub(super) async fn read_file<K: FileKind>(&self) -> Result<Arc<K::Snapshot>, NodeError> {
        K::store(self)
            .cache
            .get(|| async {
                let mut s = self.session().await?;
                let tx = self.begin(&mut s).await?;
                let rights = self.file_rights(&tx).await?;
                let snap = K::load(self, &tx, &rights).await;
                let _ = tx.rollback().await;
                snap
            })
            .await
    }

    /// Applies `edit` and returns the file now in force. Edits arriving
    /// together are written as one change.
    pub(super) async fn edit_file<K: FileKind, F>(
        self: &Arc<Self>,
        edit: F,
    ) -> Result<K::Snapshot, NodeError>
    where
        F: Fn(&mut K::File) -> Result<(), String> + Send + Sync + 'static,
    {
        self.submit(
            |n| (&K::store(n).queue, &n.edit_lock),
            Arc::new(edit),
            |n, edits| Box::pin(n.write_file::<K>(edits)),
            &format!("editing {}", K::NAME),
        )
        .await
    }

    /// Writes a batch. The file as written becomes the snapshot reads share
    /// (the plan of the next resource needs no read of its own); after
    /// anything else the next read looks at the file again.
    async fn write_file<K: FileKind>(
        &self,
        edits: Vec<Edit<K::File>>,
    ) -> Result<Written<K::Snapshot>, NodeError> {
        // After the write, not before: a read during the write may load
        // what a failed write puts back.
        let cache = &K::store(self).cache;
        let r = self.write_batch::<K>(edits).await;
        match &r {
            Ok((_, now, true)) => cache.put(Arc::new(now.clone())).await,
            _ => cache.invalidate().await,
        }
        r.map(|(results, now, _)| (results, now))
    }

    /// [`Node::write_file`] itself; says whether the file was written.
    async fn write_batch<K: FileKind>(
        &self,
        edits: Vec<Edit<K::File>>,
    ) -> Result<(Vec<Result<(), NodeError>>, K::Snapshot, bool), NodeError> {
        let mut session = self.session().await?;
        let tx = self.begin(&mut session).await?;
        tx.query_one(sql::ADVISORY_LOCK_XACT, &[&K::LOCK_KEY])
            .await
            .map_err(|e| self.pg_err(format!("locking {}", K::NAME), &e))?;
        let rights = self.file_rights(&tx).await?;
        let before = K::load_for_write(self, &tx, &rights).await?;
        let (after, results) = batch::apply(K::file(&before), &edits, |m| {
            self.err(
                super::ErrorKind::Rejected,
                format!("changing {}", K::NAME),
                m,
            )
        });
        if !K::needs_write(self, &tx, &before, &after, &rights).await? {
            return Ok((results, before, false));
        }
        let now = K::commit(self, &tx, &before, after, &rights).await?;
        let _ = tx.rollback().await;
        log::info(
            &format!("{} updated", K::NAME),
            &[("node", &self.name), ("edits", &edits.len().to_string())],
        );
        Ok((results, now, true))
    }
}
