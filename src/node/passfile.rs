//! The password file the server's libpq (TimescaleDB's connections to data
//! nodes) reads: found, read and changed through SQL on the node.
//!
//! TimescaleDB reads `timescaledb.passfile` when it is set and
//! `<data_directory>/passfile` otherwise. libpq ignores a password file that
//! group or others can read, so the file is always written with mode 0600
//! and its mode is read back.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tokio_postgres::{GenericClient, Transaction};

use super::error::{ErrorKind, NodeError};
use super::store::{FileKind, Store};
use super::{files, Node};
use crate::lines::index_preferring_managed;
use crate::passfile::{Found, Key, PassFile};
use crate::sql;

/// Advisory lock key for passfile edits ("tfpass" in ASCII).
const PASSFILE_LOCK_KEY: i64 = 0x7466_7061_7373;

/// The backup copy earlier releases kept beside the file.
const OLD_BACKUP_SUFFIX: &str = ".terraform-backup";

/// Why a passfile read back after a write is not what was written, if it
/// is not: other bytes, or an entry libpq would read differently.
fn read_back_problem(back: Option<&[u8]>, written: &str, file: &PassFile) -> Option<String> {
    if back != Some(written.as_bytes()) {
        return Some("the file read back is not what was written".into());
    }
    let reparsed = PassFile::parse(written).entries();
    if reparsed != file.entries() {
        return Some("the file does not parse back into the entries written".into());
    }
    reparsed
        .iter()
        .find(|f| f.position.is_some() && !f.entry.reads_back())
        .map(|f| {
            format!(
                "libpq would not read the entry for `{}` back as written",
                f.entry.key()
            )
        })
}

/// The only mode libpq accepts without complaint.
pub const PASSFILE_MODE: u32 = 0o600;

/// The password file as read from the node.
#[derive(Clone, Debug)]
pub struct PassSnapshot {
    pub path: String,
    pub file: PassFile,
    pub exists: bool,
    /// Permission bits; `None` when the file does not exist or the provider
    /// may not run programs on the server to look.
    pub mode: Option<u32>,
    /// Entries by key, built on first use.
    index: OnceLock<HashMap<Key, Found>>,
}

impl PassSnapshot {
    fn new(path: String, file: PassFile, exists: bool, mode: Option<u32>) -> PassSnapshot {
        PassSnapshot {
            path,
            file,
            exists,
            mode,
            index: OnceLock::new(),
        }
    }

    /// As [`PassFile::find`], from the index.
    pub fn find(&self, key: &Key) -> Option<&Found> {
        self.index
            .get_or_init(|| {
                index_preferring_managed(
                    self.file.entries(),
                    |f| f.entry.key(),
                    |f| f.position.is_some(),
                )
            })
            .get(key)
    }
}

impl Node {
    /// Where the file is (`timescaledb.passfile`, else `passfile` in the
    /// data directory) and its bytes, in one statement.
    async fn passfile_bytes<C: GenericClient>(
        &self,
        c: &C,
    ) -> Result<(String, Option<Vec<u8>>), NodeError> {
        let row = c
            .query_one(sql::PASSFILE_READ, &[])
            .await
            .map_err(|e| self.pg_err("reading the passfile", &e))?;
        Ok((row.get(0), row.get(1)))
    }

    /// Reads the file; `with_mode` says whether to read its mode too
    /// (which needs the right to run programs and a transaction).
    async fn passfile_load<C: GenericClient>(
        &self,
        c: &C,
        with_mode: bool,
    ) -> Result<PassSnapshot, NodeError> {
        let (path, bytes) = self.passfile_bytes(c).await?;
        let text = self.text_of(&path, bytes)?;
        let exists = text.is_some();
        let text = text.unwrap_or_default();
        let mode = if with_mode && exists {
            self.passfile_mode(c, &path).await?
        } else {
            None
        };
        Ok(PassSnapshot::new(
            path,
            PassFile::parse(&text),
            exists,
            mode,
        ))
    }

    async fn passfile_mode<C: GenericClient>(
        &self,
        c: &C,
        path: &str,
    ) -> Result<Option<u32>, NodeError> {
        files::mode(c, path)
            .await
            .map_err(|e| self.pg_err(format!("reading the mode of {path}"), &e))
    }

    /// The password file as it is now (shared snapshot, see
    /// [`super::cache`]).
    pub async fn passfile_read(&self) -> Result<Arc<PassSnapshot>, NodeError> {
        self.read_file::<Passfile>().await
    }

    /// Applies `edit` to the password file and writes it back (mode 0600,
    /// replaced in one step where the server allows it), keeping the
    /// previous content in `<path>.terraform-backup`. Returns the file now
    /// in force. Edits arriving together are written as one change; the work
    /// runs in its own task so that a cancelled request cannot stop it
    /// halfway.
    pub async fn passfile_edit<F>(self: &Arc<Self>, edit: F) -> Result<PassSnapshot, NodeError>
    where
        F: Fn(&mut PassFile) -> Result<(), String> + Send + Sync + 'static,
    {
        self.edit_file::<Passfile, F>(edit).await
    }

    /// The passfile part of a write: mode 0600 (a new file needs the right
    /// to run programs), no backup copy, and a read-back that must be the
    /// bytes written and parse into exactly the entries meant; otherwise the
    /// previous content is put back.
    async fn passfile_commit(
        &self,
        tx: &Transaction<'_>,
        before: &PassSnapshot,
        after: PassFile,
        rights: &files::Rights,
    ) -> Result<PassSnapshot, NodeError> {
        let path = before.path.clone();
        let doing = format!("writing {path}");
        if !rights.programs && !before.exists {
            // lo_export makes new files 0644, which libpq would ignore.
            return Err(self.err(
                ErrorKind::Permission,
                &doing,
                "the file does not exist yet, and creating it with mode 0600 needs the right to run programs on the \
                 server (superuser or pg_execute_server_program); create it empty with mode 0600 as the server's OS \
                 user, or grant that right",
            ));
        }
        // No backup copy is kept: it would be one more file holding
        // passwords, outliving the entries it holds. One left by earlier
        // releases goes with this write.
        let new_text = after.render();
        files::Replace::new(&path, new_text.as_bytes(), Some(PASSFILE_MODE))
            .removing(format!("{path}{OLD_BACKUP_SUFFIX}"))
            .run(tx, rights)
            .await
            .map_err(|e| self.pg_err(&doing, &e))?;
        // The file must read back as exactly the entries meant: the bytes
        // the server wrote, and each entry as libpq's reader takes it.
        let back = files::read(tx, &path)
            .await
            .map_err(|e| self.pg_err(format!("reading back {path}"), &e))?;
        if let Some(why) = read_back_problem(back.as_deref(), &new_text, &after) {
            if before.exists {
                files::replace(
                    tx,
                    &path,
                    before.file.render().as_bytes(),
                    Some(PASSFILE_MODE),
                    rights,
                )
                .await
                .map_err(|e| self.pg_err(format!("restoring {path}"), &e))?;
            }
            return Err(self.err(
                ErrorKind::Rejected,
                doing,
                format!("{why}; the previous content was put back"),
            ));
        }
        // With programs the file was given its mode before it was renamed
        // into place (a failed chmod fails the write); without, the mode is
        // not known.
        let mode = rights.programs.then_some(PASSFILE_MODE);
        Ok(PassSnapshot::new(path, after, true, mode))
    }
}

/// The passfile as a [`Store`] holds it.
pub struct Passfile;

#[tonic::async_trait]
impl FileKind for Passfile {
    type File = PassFile;
    type Snapshot = PassSnapshot;
    const NAME: &'static str = "the passfile";
    const LOCK_KEY: i64 = PASSFILE_LOCK_KEY;

    fn store(node: &Node) -> &Store<Self> {
        &node.passfile
    }

    fn file(snap: &PassSnapshot) -> &PassFile {
        &snap.file
    }

    async fn load(
        node: &Node,
        tx: &Transaction<'_>,
        rights: &files::Rights,
    ) -> Result<PassSnapshot, NodeError> {
        node.passfile_load(tx, rights.programs).await
    }

    /// Without the mode: a write sets it anyway, and
    /// [`FileKind::needs_write`] looks at it only when nothing else changes.
    async fn load_for_write(
        node: &Node,
        tx: &Transaction<'_>,
        _rights: &files::Rights,
    ) -> Result<PassSnapshot, NodeError> {
        node.passfile_load(tx, false).await
    }

    /// A file whose mode went wrong is written again even when no entry
    /// changed.
    async fn needs_write(
        node: &Node,
        tx: &Transaction<'_>,
        before: &PassSnapshot,
        after: &PassFile,
        rights: &files::Rights,
    ) -> Result<bool, NodeError> {
        if before.file != *after {
            return Ok(true);
        }
        if !rights.programs || !before.exists {
            return Ok(false);
        }
        Ok(node.passfile_mode(tx, &before.path).await? != Some(PASSFILE_MODE))
    }

    async fn commit(
        node: &Node,
        tx: &Transaction<'_>,
        before: &PassSnapshot,
        after: PassFile,
        rights: &files::Rights,
    ) -> Result<PassSnapshot, NodeError> {
        node.passfile_commit(tx, before, after, rights).await
    }
}
