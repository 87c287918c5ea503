//! Batching of edits to one file on a node.
//!
//! Terraform applies many resources at once; when several change the same
//! file (pg_hba.conf rules, passfile entries), writing, validating and
//! reloading once per resource would serialise them behind one another.
//! Edits are queued instead; whoever holds the node's edit lock takes every
//! edit queued so far and writes them as one change. If that combined
//! change fails as a whole (a lockout, a file PostgreSQL refuses), each edit
//! is retried on its own so that the error reaches the resource that caused
//! it and the others still land.

use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use super::error::{ErrorKind, NodeError};
use super::Node;

/// An edit of a file's parsed form; it may run more than once (a retry
/// after a failed batch), so it must depend only on what it captured.
pub type Edit<T> = Arc<dyn Fn(&mut T) -> Result<(), String> + Send + Sync>;

type Waiter<S> = oneshot::Sender<Result<S, NodeError>>;

/// Edits waiting for the next write.
pub struct Queue<T, S> {
    items: Mutex<Vec<(Edit<T>, Waiter<S>)>>,
}

impl<T, S> Default for Queue<T, S> {
    fn default() -> Self {
        Queue {
            items: Mutex::new(Vec::new()),
        }
    }
}

/// The outcome of writing a batch: for each edit, whether it applied (an
/// edit that refuses leaves the file as it was), and the file now in force.
pub type Written<S> = (Vec<Result<(), NodeError>>, S);

impl<T, S: Clone> Queue<T, S> {
    pub fn push(&self, edit: Edit<T>) -> oneshot::Receiver<Result<S, NodeError>> {
        let (tx, rx) = oneshot::channel();
        self.lock().push((edit, tx));
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Edit<T>, Waiter<S>)>> {
        // A panic while holding the lock cannot leave the vector invalid.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes every queued edit with `write`. Call with the node's edit lock
    /// held; returns at once when another writer took the edits already.
    pub async fn drain<F, Fut>(&self, write: F)
    where
        F: Fn(Vec<Edit<T>>) -> Fut,
        Fut: Future<Output = Result<Written<S>, NodeError>>,
    {
        let batch = std::mem::take(&mut *self.lock());
        if batch.is_empty() {
            return;
        }
        let edits: Vec<Edit<T>> = batch.iter().map(|(e, _)| e.clone()).collect();
        match write(edits).await {
            Ok((results, snapshot)) => {
                for ((_, waiter), r) in batch.into_iter().zip(results) {
                    let _ = waiter.send(r.map(|()| snapshot.clone()));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some((_, waiter)) = batch.into_iter().next() {
                    let _ = waiter.send(Err(e));
                }
            }
            Err(_) => {
                for (edit, waiter) in batch {
                    let r = match write(vec![edit]).await {
                        Ok((mut results, snapshot)) => {
                            results.pop().unwrap_or(Ok(())).map(|()| snapshot)
                        }
                        Err(e) => Err(e),
                    };
                    let _ = waiter.send(r);
                }
            }
        }
    }
}

/// Applies `edits` in order to a copy of `file`. An edit that refuses
/// leaves the file as the previous edits made it, and its refusal (as made
/// by `refused`) is its result.
pub fn apply<T: Clone>(
    file: &T,
    edits: &[Edit<T>],
    refused: impl Fn(String) -> NodeError,
) -> (T, Vec<Result<(), NodeError>>) {
    let mut after = file.clone();
    let results = edits
        .iter()
        .map(|edit| {
            let mut attempt = after.clone();
            edit(&mut attempt)
                .map(|()| after = attempt)
                .map_err(&refused)
        })
        .collect();
    (after, results)
}

/// Where a node keeps a queue and the lock its writers take.
pub type Parts<T, S> = fn(&Node) -> (&Queue<T, S>, &tokio::sync::Mutex<()>);

/// Writes a batch of edits on a node (see [`Node::submit`]).
pub type Writer<T, S> =
    for<'a> fn(&'a Node, Vec<Edit<T>>) -> BoxFuture<'a, Result<Written<S>, NodeError>>;

impl Node {
    /// Queues `edit` on the node's `queue` and returns its outcome. A task of
    /// its own takes the node's `lock` and writes every edit queued so far
    /// with `write`, so that a cancelled request cannot stop a write
    /// halfway. `doing` names the work in the error of a lost task.
    pub(super) async fn submit<T, S>(
        self: &Arc<Self>,
        parts: Parts<T, S>,
        edit: Edit<T>,
        write: Writer<T, S>,
        doing: &str,
    ) -> Result<S, NodeError>
    where
        T: Send + Sync + 'static,
        S: Clone + Send + Sync + 'static,
    {
        let rx = parts(self).0.push(edit);
        let node = self.clone();
        tokio::spawn(async move {
            let (queue, lock) = parts(&node);
            let _guard = lock.lock().await;
            queue.drain(|edits| write(&node, edits)).await;
        });
        rx.await
            .unwrap_or_else(|_| Err(lost(&self.name, &self.address(), doing)))
    }
}

/// The error a waiter gets when the writing task itself failed.
pub fn lost(node: &str, address: &str, doing: &str) -> NodeError {
    NodeError::new(
        node,
        address,
        ErrorKind::Sql,
        doing,
        "internal error: the write was abandoned",
    )
}
