//! Reading and changing pg_hba.conf on a node without ever locking the
//! provider out.
//!
//! An edit runs as one unit that Terraform cannot interrupt halfway: take
//! the node's edit lock (in process) and an advisory lock (across
//! processes), read the file the server uses (`hba_file`), apply the change
//! in memory, refuse it if the provider's own session would no longer get
//! in, keep a backup, write, let the server validate the file on disk
//! (`pg_hba_file_rules`), reload, and prove with a fresh session that the
//! provider still gets in. Any failure after the write puts the previous
//! content back and reloads again.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tokio_postgres::{GenericClient, Transaction};

use super::conf::{ConfWrite, ServerChecked};
use super::error::{ErrorKind, NodeError};
use super::store::{FileKind, Store};
use super::{files, Node};
use crate::hba::verify::{self, ServerRule};
use crate::hba::{Found, HbaFile, LockoutCheck, Rule, RuleKey};
use crate::lines::index_preferring_managed;
use crate::sql;

/// Advisory lock key for pg_hba.conf edits ("tfhba" in ASCII).
const HBA_LOCK_KEY: i64 = 0x0074_6668_6261;

/// The file as read from the node.
#[derive(Clone, Debug)]
pub struct HbaSnapshot {
    pub path: String,
    pub file: HbaFile,
    /// Rules by match key, built on first use: a refresh of many rules
    /// looks each up without parsing the file again.
    index: OnceLock<HashMap<RuleKey, Found>>,
}

impl HbaSnapshot {
    pub fn new(path: String, file: HbaFile) -> HbaSnapshot {
        HbaSnapshot {
            path,
            file,
            index: OnceLock::new(),
        }
    }

    /// As [`HbaFile::find`], from the index.
    pub fn find(&self, key: &RuleKey) -> Option<&Found> {
        self.index
            .get_or_init(|| {
                index_preferring_managed(
                    self.file.rules(),
                    |f| f.rule.key(),
                    |f| f.position.is_some(),
                )
            })
            .get(key)
    }
}

impl Node {
    async fn hba_path<C: GenericClient>(&self, c: &C) -> Result<String, NodeError> {
        let row = c
            .query_one(sql::SHOW_SETTING, &[&"hba_file"])
            .await
            .map_err(|e| self.pg_err("locating pg_hba.conf", &e))?;
        row.get::<_, Option<String>>(0).ok_or_else(|| {
            self.err(
                ErrorKind::Sql,
                "locating pg_hba.conf",
                "hba_file is not set",
            )
        })
    }

    async fn hba_load<C: GenericClient>(&self, c: &C) -> Result<HbaSnapshot, NodeError> {
        let path = self.hba_path(c).await?;
        let text = self.read_text(c, &path).await?.ok_or_else(|| {
            self.err(
                ErrorKind::Sql,
                format!("reading {path}"),
                "the file does not exist",
            )
        })?;
        Ok(HbaSnapshot::new(path, HbaFile::parse(&text)))
    }

    /// Every record of the pg_hba.conf on disk as the server reads it.
    pub async fn hba_file_rules(&self) -> Result<Vec<ServerRule>, NodeError> {
        let mut s = self.session().await?;
        let rows = s
            .client()
            .query(sql::HBA_FILE_RULES, &[])
            .await
            .map_err(|e| self.pg_err("reading pg_hba_file_rules", &e))?;
        Ok(rows.iter().map(server_rule).collect())
    }

    /// The pg_hba.conf the server uses now (shared snapshot, see
    /// [`super::cache`]).
    pub async fn hba_read(&self) -> Result<Arc<HbaSnapshot>, NodeError> {
        self.read_file::<Hba>().await
    }

    /// What the server says about the provider's own session (read once;
    /// only the parts that do not change are used from it).
    pub(super) async fn own_session(&self) -> Result<Arc<super::SessionInfo>, NodeError> {
        self.read
            .session
            .get(|| async {
                let mut s = self.session().await?;
                self.session_info(s.client()).await
            })
            .await
    }

    /// Plans an edit without making it: fails when the edit would lock out
    /// the provider's own session. Returns the file as it is now, so callers
    /// need no second read.
    pub async fn hba_preview(
        &self,
        edit: impl FnOnce(&mut HbaFile),
    ) -> Result<Arc<HbaSnapshot>, NodeError> {
        let snap = self.hba_read().await?;
        let info = self.own_session().await?;
        let mut after = snap.file.clone();
        edit(&mut after);
        match LockoutCheck::evaluate(&snap.file, &after, &info.client, self.credentials()) {
            LockoutCheck::Safe => Ok(snap),
            LockoutCheck::LockedOut(why) => Err(self.err(
                ErrorKind::Lockout,
                format!("planning a change to {}", snap.path),
                why,
            )),
        }
    }

    /// Notes a rule a resource planned to write in this run, so that a plan
    /// of the whole file, or of a removal, planned after it counts it as
    /// written: apply writes it first and checks again before removing
    /// anything.
    pub fn hba_plan_note(&self, rule: &Rule, position: i64) {
        self.note_planned(PlannedEdit::Write(rule.clone(), position));
    }

    /// Notes a rule a resource planned to remove in this run (a destroy
    /// plans the dependents of a rule before the rule itself), so that the
    /// removal of the rule they depend on is judged without them: apply
    /// removes them first and checks again before removing it.
    pub fn hba_plan_removal(&self, key: &RuleKey) {
        self.note_planned(PlannedEdit::Remove(key.clone()));
    }

    fn note_planned(&self, edit: PlannedEdit) {
        let mut planned = self.hba_planned.lock().unwrap_or_else(|p| p.into_inner());
        planned.retain(|e| e.key() != edit.key());
        planned.push(edit);
    }

    /// [`Node::hba_preview`] of a change made after the edits planned in
    /// this run ([`Node::hba_plan_note`], [`Node::hba_plan_removal`]).
    pub async fn hba_preview_after_planned(
        &self,
        edit: impl FnOnce(&mut HbaFile),
    ) -> Result<Arc<HbaSnapshot>, NodeError> {
        let planned = self
            .hba_planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.hba_preview(move |f| {
            for e in &planned {
                match e {
                    PlannedEdit::Write(rule, position) => f.upsert(rule, *position),
                    PlannedEdit::Remove(key) => {
                        f.remove(key);
                    }
                }
            }
            edit(f);
        })
        .await
    }

    /// Applies `edit` to pg_hba.conf as described in the module docs and
    /// returns the file now in force. Edits arriving together are written
    /// as one change ([`super::batch`]). The work runs in its own task, so a
    /// cancelled request cannot stop it between the write and the check.
    pub async fn hba_edit<F>(self: &Arc<Self>, edit: F) -> Result<HbaSnapshot, NodeError>
    where
        F: Fn(&mut HbaFile) -> Result<(), String> + Send + Sync + 'static,
    {
        self.edit_file::<Hba, F>(edit).await
    }

    /// The pg_hba.conf part of a write: refuse a lockout, keep a backup,
    /// write, have the server validate the file on disk, reload, and prove
    /// with a fresh session that the provider still gets in; any failure
    /// after the write puts the previous content back.
    async fn hba_commit(
        &self,
        tx: &Transaction<'_>,
        before: &HbaSnapshot,
        after: HbaFile,
        rights: &files::Rights,
    ) -> Result<HbaSnapshot, NodeError> {
        let path = before.path.clone();
        let info = self.session_info(tx).await?;
        if let LockoutCheck::LockedOut(why) =
            LockoutCheck::evaluate(&before.file, &after, &info.client, self.credentials())
        {
            return Err(self.err(
                ErrorKind::Lockout,
                format!("changing {path}"),
                format!("{why}; nothing was changed"),
            ));
        }
        let write = ConfWrite {
            path: &path,
            old_text: &before.file.render(),
            new_text: &after.render(),
            rights,
            loaded_before: info.conf_load_time,
        };
        self.reload_checked::<Hba>(tx, write).await?;
        Ok(HbaSnapshot::new(path, after))
    }
}

#[tonic::async_trait]
impl ServerChecked for Hba {
    /// The errors `pg_hba_file_rules` reports, or else every way its
    /// reading differs from the provider's.
    async fn problems(node: &Node, tx: &Transaction<'_>, new_text: &str) -> Vec<String> {
        let rows = match tx.query(sql::HBA_FILE_RULES, &[]).await {
            Ok(rows) => rows,
            Err(e) => {
                return vec![format!(
                    "could not validate the file: {}",
                    node.pg_err("validating", &e).message
                )]
            }
        };
        let server = rows.iter().map(server_rule).collect::<Vec<_>>();
        let errors: Vec<String> = server
            .iter()
            .filter(|r| verify::is_fatal(r))
            .filter_map(|r| {
                let text = new_text
                    .lines()
                    .nth((r.line_number - 1).max(0) as usize)
                    .unwrap_or("");
                r.error
                    .as_ref()
                    .map(|e| format!("line {}: {e} (`{}`)", r.line_number, text.trim()))
            })
            .collect();
        if !errors.is_empty() {
            return errors;
        }
        verify::differences(new_text.as_bytes(), &server)
            .into_iter()
            .map(|d| format!("{d} (PostgreSQL and the provider read the file differently)"))
            .collect()
    }
}

/// pg_hba.conf as a [`Store`] holds it.
pub struct Hba;

#[tonic::async_trait]
impl FileKind for Hba {
    type File = HbaFile;
    type Snapshot = HbaSnapshot;
    const NAME: &'static str = "pg_hba.conf";
    const LOCK_KEY: i64 = HBA_LOCK_KEY;

    fn store(node: &Node) -> &Store<Self> {
        &node.hba
    }

    fn file(snap: &HbaSnapshot) -> &HbaFile {
        &snap.file
    }

    async fn load(
        node: &Node,
        tx: &Transaction<'_>,
        _rights: &files::Rights,
    ) -> Result<HbaSnapshot, NodeError> {
        node.hba_load(tx).await
    }

    async fn needs_write(
        node: &Node,
        tx: &Transaction<'_>,
        before: &HbaSnapshot,
        after: &HbaFile,
        _rights: &files::Rights,
    ) -> Result<bool, NodeError> {
        Ok(&before.file != after || node.written_since_reload(tx, &before.path).await?)
    }

    async fn commit(
        node: &Node,
        tx: &Transaction<'_>,
        before: &HbaSnapshot,
        after: HbaFile,
        rights: &files::Rights,
    ) -> Result<HbaSnapshot, NodeError> {
        node.hba_commit(tx, before, after, rights).await
    }
}

pub fn server_rule(r: &tokio_postgres::Row) -> ServerRule {
    ServerRule {
        line_number: r.get::<_, Option<i32>>(0).unwrap_or(0),
        conn_type: r.get(1),
        databases: r.get::<_, Option<Vec<String>>>(2).unwrap_or_default(),
        users: r.get::<_, Option<Vec<String>>>(3).unwrap_or_default(),
        address: r.get(4),
        netmask: r.get(5),
        method: r.get(6),
        options: r.get::<_, Option<Vec<String>>>(7).unwrap_or_default(),
        error: r.get(8),
    }
}

/// An edit of pg_hba.conf a resource planned in this run.
#[derive(Clone, Debug)]
pub(super) enum PlannedEdit {
    Write(Rule, i64),
    Remove(RuleKey),
}

impl PlannedEdit {
    fn key(&self) -> RuleKey {
        match self {
            PlannedEdit::Write(rule, _) => rule.key(),
            PlannedEdit::Remove(key) => key.clone(),
        }
    }
}
