//! The server's configuration files read on reload (pg_hba.conf,
//! pg_ident.conf): a new content is written (with a backup copy where the
//! provider may run programs), checked by the server, reloaded and proven
//! by a fresh login; whatever fails after the write puts the previous
//! content back, even when the check itself or the reload fails.

use std::time::Duration;

use tokio_postgres::{GenericClient, Transaction};

use super::error::{ErrorKind, NodeError};
use super::{files, Node};
use crate::sql;

/// Taken after a write, before the server checks the file.
const SAVEPOINT: &str = "SAVEPOINT terraform_conf_check";
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT terraform_conf_check";

/// A configuration file the server checks: what it finds wrong with the
/// file now on disk.
#[tonic::async_trait]
pub(super) trait ServerChecked {
    /// The server's errors in the file on disk, or else every way its
    /// reading of `new_text` differs from the provider's; empty when none.
    async fn problems(node: &Node, tx: &Transaction<'_>, new_text: &str) -> Vec<String>;
}

/// Where a write of a configuration file goes, what it replaces and when
/// the configuration in force was loaded.
pub(super) struct ConfWrite<'a> {
    pub path: &'a str,
    pub old_text: &'a str,
    pub new_text: &'a str,
    pub rights: &'a files::Rights,
    pub loaded_before: f64,
}

impl Node {
    /// Whether the file on disk was written after the configuration in
    /// force was loaded: a write whose check or reload never ran (the
    /// connection dropped right after it) is not in force even though the
    /// content is what was meant, so the next edit writes it again and
    /// this time checks and reloads it.
    pub(super) async fn written_since_reload(
        &self,
        tx: &Transaction<'_>,
        path: &str,
    ) -> Result<bool, NodeError> {
        tx.query_one(sql::WRITTEN_SINCE_RELOAD, &[&path])
            .await
            .map(|r| r.get(0))
            .map_err(|e| self.pg_err(format!("reading the modification time of {path}"), &e))
    }

    /// Writes the new text in place of the old, has the server check it
    /// ([`ServerChecked::problems`]), reloads, and proves with a fresh
    /// session (one that started after the configuration in force was
    /// loaded) that the provider still gets in; any failure after the
    /// write puts the old text back.
    pub(super) async fn reload_checked<K: ServerChecked>(
        &self,
        tx: &Transaction<'_>,
        w: ConfWrite<'_>,
    ) -> Result<(), NodeError> {
        let ConfWrite {
            path,
            old_text,
            new_text,
            rights,
            loaded_before,
        } = w;
        let doing = format!("writing {path}");
        files::Replace::new(path, new_text.as_bytes(), None)
            .keeping_backup_in(format!("{path}.terraform-backup"))
            .run(tx, rights)
            .await
            .map_err(|e| self.pg_err(&doing, &e))?;
        // Whatever fails from here on, the previous content goes back: a
        // failed statement aborts the transaction, so the checks run after
        // a savepoint the restore rolls back to ([`Node::put_back`]).
        let problems = match tx.batch_execute(SAVEPOINT).await {
            Ok(()) => K::problems(self, tx, new_text).await,
            Err(e) => vec![format!(
                "could not validate the file: {}",
                self.pg_err("validating", &e).message
            )],
        };
        if !problems.is_empty() {
            self.put_back(tx, path, old_text, rights, false, &problems.join("; "))
                .await?;
            return Err(self.err(
                ErrorKind::Rejected,
                format!("validating the new {path}"),
                format!("PostgreSQL refused the new file, or could not check it, and it was not put in force (the previous content is back): {}", problems.join("; ")),
            ));
        }
        if let Err(e) = tx.query_one(sql::RELOAD, &[]).await {
            let mut err = self.pg_err("reloading the configuration", &e);
            self.put_back(tx, path, old_text, rights, false, &err.message)
                .await?;
            err.message
                .push_str("; the new file was not put in force (the previous content is back)");
            return Err(err);
        }
        if let Err(why) = self.prove_login(loaded_before).await {
            self.put_back(tx, path, old_text, rights, true, &why)
                .await?;
            return Err(self.err(
                ErrorKind::Lockout,
                doing,
                format!("after the reload the provider could not log in again ({why}); the previous file was restored and reloaded"),
            ));
        }
        Ok(())
    }

    /// Puts the previous content back after a failed check or reload: in
    /// the edit's own transaction, rolled back to the savepoint taken before
    /// the checks; when that session cannot (it died, or the savepoint was
    /// never taken), in a fresh session of its own. Only when neither can is
    /// the failure returned: what went wrong first (`cause`), why the old
    /// content could not go back, whether the new file is in force, and the
    /// backup.
    async fn put_back(
        &self,
        tx: &Transaction<'_>,
        path: &str,
        old: &str,
        rights: &files::Rights,
        reload: bool,
        cause: &str,
    ) -> Result<(), NodeError> {
        let in_edit = match tx.batch_execute(ROLLBACK_TO_SAVEPOINT).await {
            Ok(()) => self.restore(tx, path, old, rights, reload).await,
            Err(e) => Err(self.pg_err(format!("restoring {path}"), &e)),
        };
        if in_edit.is_ok() {
            return in_edit;
        }
        let fresh = async {
            let mut client = self.spec.connect(&self.name).await?;
            let tx = client
                .transaction()
                .await
                .map_err(|e| self.pg_err("starting a transaction", &e))?;
            self.restore(&tx, path, old, rights, reload).await?;
            let _ = tx.rollback().await;
            Ok::<(), NodeError>(())
        };
        fresh.await.map_err(|e| {
            let mut message = format!(
                "{cause}; then the previous content could not be put back ({}: {}), so the new file is on disk {}",
                e.doing,
                e.message,
                if reload {
                    "and in force"
                } else {
                    "but not in force (the next apply that edits the file checks and reloads it)"
                }
            );
            if rights.programs {
                message.push_str(&format!(
                    "; a copy of the previous content is in {path}.terraform-backup"
                ));
            }
            NodeError {
                message,
                doing: format!("writing {path}"),
                ..e
            }
        })
    }

    async fn restore<C: GenericClient>(
        &self,
        c: &C,
        path: &str,
        old: &str,
        rights: &files::Rights,
        reload: bool,
    ) -> Result<(), NodeError> {
        files::replace(c, path, old.as_bytes(), None, rights)
            .await
            .map_err(|e| self.pg_err(format!("restoring {path}"), &e))?;
        if reload {
            c.query_one(sql::RELOAD, &[])
                .await
                .map_err(|e| self.pg_err("reloading the restored configuration", &e))?;
        }
        Ok(())
    }

    /// Opens fresh sessions until one started after the reload, which
    /// proves the new rules let the provider in.
    async fn prove_login(&self, loaded_before: f64) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let client = self.spec.connect(&self.name).await.map_err(|e| e.message)?;
            let row = client
                .query_one(sql::CONF_LOAD_TIME, &[])
                .await
                .map_err(|e| e.to_string())?;
            let loaded: f64 = row.get(0);
            if loaded > loaded_before {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(
                    "the server did not pick up the new configuration within 10 seconds".into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
