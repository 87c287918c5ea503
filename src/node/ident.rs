//! Reading and changing pg_ident.conf on a node, as pg_hba.conf is changed:
//! under the node's edit lock and an advisory lock, checked by the server
//! (`pg_ident_file_mappings`, PostgreSQL 15 and later) before the reload,
//! proven by a fresh login after it, and put back on any failure.

use std::sync::Arc;

use tokio_postgres::{GenericClient, Transaction};

use super::conf::{ConfWrite, ServerChecked};
use super::error::{ErrorKind, NodeError};
use super::store::{FileKind, Store};
use super::{files, Node};
use crate::ident::IdentFile;
use crate::sql;

/// Advisory lock key for pg_ident.conf edits ("tfidt" in ASCII).
const IDENT_LOCK_KEY: i64 = 0x0074_6669_6474;

/// The file as read from the node.
#[derive(Clone, Debug)]
pub struct IdentSnapshot {
    pub path: String,
    pub file: IdentFile,
}

impl Node {
    async fn ident_load<C: GenericClient>(&self, c: &C) -> Result<IdentSnapshot, NodeError> {
        let row = c
            .query_one(sql::SHOW_SETTING, &[&"ident_file"])
            .await
            .map_err(|e| self.pg_err("locating pg_ident.conf", &e))?;
        let path: String = row.get::<_, Option<String>>(0).ok_or_else(|| {
            self.err(
                ErrorKind::Sql,
                "locating pg_ident.conf",
                "ident_file is not set",
            )
        })?;
        // A missing file holds no mappings; the first write makes it.
        let text = self.read_text(c, &path).await?.unwrap_or_default();
        Ok(IdentSnapshot {
            path,
            file: IdentFile::parse(&text),
        })
    }

    /// The pg_ident.conf the server uses now (shared snapshot).
    pub async fn ident_read(&self) -> Result<Arc<IdentSnapshot>, NodeError> {
        self.read_file::<Ident>().await
    }

    /// Applies `edit` to pg_ident.conf and returns the file now in force.
    pub async fn ident_edit<F>(self: &Arc<Self>, edit: F) -> Result<IdentSnapshot, NodeError>
    where
        F: Fn(&mut IdentFile) -> Result<(), String> + Send + Sync + 'static,
    {
        self.edit_file::<Ident, F>(edit).await
    }

    /// Whether the server's regular-expression engine takes `re` (the part
    /// after the `/` of a system user name): the server compiles it when
    /// it loads the file and refuses the file when it cannot.
    pub async fn regex_is_valid(&self, re: &str) -> Result<Option<String>, NodeError> {
        let mut s = self.session().await?;
        Ok(match s.client().query_one(sql::CHECK_REGEX, &[&re]).await {
            Ok(_) => None,
            Err(e) if e.as_db_error().is_some() => Some(self.pg_err("checking", &e).message),
            Err(e) => return Err(self.pg_err("checking a regular expression", &e)),
        })
    }
}

/// pg_ident.conf as a [`Store`] holds it.
pub struct Ident;

#[tonic::async_trait]
impl FileKind for Ident {
    type File = IdentFile;
    type Snapshot = IdentSnapshot;
    const NAME: &'static str = "pg_ident.conf";
    const LOCK_KEY: i64 = IDENT_LOCK_KEY;

    fn store(node: &Node) -> &Store<Self> {
        &node.ident
    }

    fn file(snap: &IdentSnapshot) -> &IdentFile {
        &snap.file
    }

    async fn load(
        node: &Node,
        tx: &Transaction<'_>,
        _rights: &files::Rights,
    ) -> Result<IdentSnapshot, NodeError> {
        node.ident_load(tx).await
    }

    async fn needs_write(
        node: &Node,
        tx: &Transaction<'_>,
        before: &IdentSnapshot,
        after: &IdentFile,
        _rights: &files::Rights,
    ) -> Result<bool, NodeError> {
        Ok(&before.file != after || node.written_since_reload(tx, &before.path).await?)
    }

    async fn commit(
        node: &Node,
        tx: &Transaction<'_>,
        before: &IdentSnapshot,
        after: IdentFile,
        rights: &files::Rights,
    ) -> Result<IdentSnapshot, NodeError> {
        let info = node.session_info(tx).await?;
        let write = ConfWrite {
            path: &before.path,
            old_text: &before.file.render(),
            new_text: &after.render(),
            rights,
            loaded_before: info.conf_load_time,
        };
        node.reload_checked::<Ident>(tx, write).await?;
        Ok(IdentSnapshot {
            path: before.path.clone(),
            file: after,
        })
    }
}

#[tonic::async_trait]
impl ServerChecked for Ident {
    /// The errors `pg_ident_file_mappings` reports, or else every mapping
    /// it reads otherwise than the provider does.
    async fn problems(node: &Node, tx: &Transaction<'_>, new_text: &str) -> Vec<String> {
        let rows = match tx.query(sql::IDENT_FILE_MAPPINGS, &[]).await {
            Ok(rows) => rows,
            Err(e) => {
                return vec![format!(
                    "could not validate the file: {}",
                    node.pg_err("validating", &e).message
                )]
            }
        };
        let mine = IdentFile::parse(new_text).mappings();
        let mut out = Vec::new();
        for r in &rows {
            let line: i32 = r.get(0);
            if let Some(e) = r.get::<_, Option<String>>(4) {
                out.push(format!("line {line}: {e}"));
                continue;
            }
            let server: (Option<String>, Option<String>, Option<String>) =
                (r.get(1), r.get(2), r.get(3));
            let ours = mine
                .iter()
                .find(|f| f.line_index as i32 + 1 == line)
                .map(|f| {
                    let m = &f.mapping;
                    (
                        Some(m.map.clone()),
                        Some(m.system_user.clone()),
                        Some(m.database_user.clone()),
                    )
                });
            if ours.as_ref() != Some(&server) {
                out.push(format!(
                    "line {line}: PostgreSQL and the provider read the mapping differently"
                ));
            }
        }
        if out.is_empty() && rows.len() != mine.len() {
            out.push(format!(
                "PostgreSQL reads {} mappings where the provider reads {}",
                rows.len(),
                mine.len()
            ));
        }
        out
    }
}
