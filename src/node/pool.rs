//! A small connection pool per node: sessions are opened lazily, reused,
//! and closed when the provider is dropped.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;

use super::conn::ConnSpec;
use super::error::NodeError;

/// At most this many sessions per node at once.
pub const MAX_SESSIONS: usize = 4;

pub struct Pool {
    node: String,
    spec: ConnSpec,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    pub fn new(node: &str, spec: ConnSpec) -> Arc<Pool> {
        Arc::new(Pool {
            node: node.to_string(),
            spec,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_SESSIONS)),
        })
    }

    /// A session, reused when one is idle.
    pub async fn get(self: &Arc<Self>) -> Result<Pooled, NodeError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| {
            NodeError::new(
                &self.node,
                &self.spec.address(),
                super::ErrorKind::Cancelled,
                "waiting for a session",
                "the provider is shutting down",
            )
        })?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let mut found = None;
            while let Some(c) = idle.pop() {
                if !c.is_closed() {
                    found = Some(c);
                    break;
                }
            }
            found
        };
        let client = match reused {
            Some(c) => c,
            None => self.spec.connect(&self.node).await?,
        };
        Ok(Pooled {
            client: Some(client),
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// Drops every idle session.
    pub fn close(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A session borrowed from the pool; returned to it on drop.
pub struct Pooled {
    client: Option<Client>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pooled {
    pub fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }

    /// Closes the session instead of returning it, for sessions left in an
    /// unknown state.
    pub fn discard(mut self) {
        self.client = None;
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(c);
            }
        }
    }
}
