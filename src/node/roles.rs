//! Roles on one node: read, change, and what still depends on them.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::error::SqlState;

use super::error::NodeError;
use super::Node;
use crate::role::{RoleState, StoredPassword};
use crate::secret::Secret;
use crate::sql;

/// Every role of a node, by name, as one snapshot.
pub type RoleTable = HashMap<String, RoleRow>;

/// A role as read in bulk; `valid_until_epoch` is `None` when unset.
#[derive(Clone, Debug)]
pub struct RoleRow {
    state: RoleState,
    valid_until_epoch: Option<f64>,
}

impl Node {
    /// Every role on the node (shared snapshot, see [`super::cache`]).
    pub(super) async fn roles_all(&self) -> Result<Arc<RoleTable>, NodeError> {
        self.read
            .roles
            .get(|| async {
                let mut s = self.session().await?;
                let rows = self
                    .query_roles(s.client(), sql::ROLES_ALL_AUTHID, sql::ROLES_ALL_ROLES, &[])
                    .await?;
                Ok(rows.iter().map(role_row).collect())
            })
            .await
    }

    /// Whether the provider's role may read stored passwords (`pg_authid`:
    /// a superuser, or a role granted SELECT on it). Asked once per node.
    pub async fn reads_passwords(&self) -> Result<bool, NodeError> {
        let r = self
            .read
            .reads_passwords
            .get(|| async {
                let mut s = self.session().await?;
                let row = s
                    .client()
                    .query_one(sql::READS_PASSWORDS, &[])
                    .await
                    .map_err(|e| self.pg_err("checking the right to read passwords", &e))?;
                Ok(row.get::<_, bool>(0))
            })
            .await?;
        Ok(*r)
    }

    /// Runs the roles query, or its form for a session that may not read
    /// passwords when the first is refused.
    async fn query_roles(
        &self,
        c: &tokio_postgres::Client,
        authid: &str,
        roles: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, NodeError> {
        let doing = "reading roles";
        match c.query(authid, params).await {
            Ok(rows) => Ok(rows),
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => c
                .query(roles, params)
                .await
                .map_err(|e| self.pg_err(doing, &e)),
            Err(e) => Err(self.pg_err(doing, &e)),
        }
    }

    /// The role as last read: after a change the provider made, that role
    /// read again; otherwise from the snapshot of every role.
    pub(super) async fn role_row(&self, name: &str) -> Result<Option<RoleRow>, NodeError> {
        if let Some(row) = self.read.role_updates.lock().await.get(name) {
            return Ok(row.clone());
        }
        Ok(self.roles_all().await?.get(name).cloned())
    }

    /// The role as this node has it, or `None` when it does not exist.
    /// `valid_until` is what the spec asks for; the server reads it as a
    /// time, so that any spelling of the stored instant matches.
    pub async fn role_read(
        &self,
        name: &str,
        valid_until: Option<&str>,
    ) -> Result<Option<RoleState>, NodeError> {
        let Some(row) = self.role_row(name).await? else {
            return Ok(None);
        };
        let mut state = row.state.clone();
        state.valid_until_matches = match valid_until {
            None => row.valid_until_epoch.is_none_or(f64::is_infinite),
            Some(v) => {
                let want = self.epoch_of(v).await?;
                want == row.valid_until_epoch
                    || (want.is_some_and(f64::is_infinite) && row.valid_until_epoch.is_none())
            }
        };
        Ok(Some(state))
    }

    /// Epoch seconds of a time as the user wrote it, read by the server
    /// once per distinct spelling (many roles usually share one).
    async fn epoch_of(&self, v: &str) -> Result<Option<f64>, NodeError> {
        if let Some(e) = self.read.epochs.lock().await.get(v) {
            return Ok(*e);
        }
        let mut s = self.session().await?;
        let e: Option<f64> = s
            .client()
            .query_one(sql::TIMESTAMP_EPOCH, &[&v])
            .await
            .map_err(|e| self.pg_err(format!("reading valid_until {v:?}"), &e))?
            .get(0);
        self.read.epochs.lock().await.insert(v.to_string(), e);
        Ok(e)
    }

    /// Runs one statement about role `name` (it may carry a password
    /// verifier, so it is never logged), then reads that role again in the
    /// same session: later reads see it without reading every role of the
    /// node again. When either fails, everything is read afresh next time.
    pub async fn role_exec(
        &self,
        doing: &str,
        name: &str,
        statement: &Secret,
    ) -> Result<(), NodeError> {
        let mut s = self.session().await?;
        let r = s
            .client()
            .batch_execute(statement.expose())
            .await
            .map_err(|e| self.pg_err(doing, &e));
        let now = match &r {
            Ok(()) => self
                .query_roles(
                    s.client(),
                    sql::ROLE_ONE_AUTHID,
                    sql::ROLE_ONE_ROLES,
                    &[&name],
                )
                .await
                .ok()
                .map(|rows| rows.first().map(|r| role_row(r).1)),
            Err(_) => None,
        };
        drop(s);
        match now {
            Some(row) => {
                // A dropped role takes its privileges with it.
                if row.is_none() {
                    self.read.grants.invalidate().await;
                }
                self.read
                    .role_updates
                    .lock()
                    .await
                    .insert(name.to_string(), row);
            }
            None => self.roles_changed().await,
        }
        r
    }

    /// What keeps the role from being dropped: one line per database and
    /// kind ("owns 3 objects in database \"app\""). Empty when nothing does.
    pub async fn role_dependents(&self, name: &str) -> Result<Vec<String>, NodeError> {
        let mut s = self.session().await?;
        let rows = s
            .client()
            .query(sql::ROLE_DEPENDENTS, &[&name])
            .await
            .map_err(|e| self.pg_err(format!("checking what depends on role {name:?}"), &e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let db: Option<String> = r.get(0);
                let kind: String = r.get(1);
                let n: i64 = r.get(2);
                let what = match kind.as_str() {
                    "o" => "owns",
                    "a" => "has privileges on",
                    "r" => "is named in policies on",
                    "i" => "has initial privileges on",
                    _ => "is needed by",
                };
                let place = match db {
                    Some(d) => format!("in database {d:?}"),
                    None => "shared by all databases".into(),
                };
                format!("{what} {n} object{} {place}", if n == 1 { "" } else { "s" })
            })
            .collect())
    }

    /// `REASSIGN OWNED BY` (when `to` is set) and `DROP OWNED BY` in the
    /// database the provider is connected to.
    pub async fn role_drop_owned(&self, name: &str, to: Option<&str>) -> Result<(), NodeError> {
        let stmt = sql::drop_owned(name, to);
        let mut s = self.session().await?;
        let tx = self.begin(&mut s).await?;
        tx.batch_execute(&stmt)
            .await
            .map_err(|e| self.pg_err(format!("dropping what role {name:?} owns"), &e))?;
        let r = tx
            .commit()
            .await
            .map_err(|e| self.pg_err(format!("dropping what role {name:?} owns"), &e));
        drop(s);
        self.roles_changed().await;
        r
    }
}

/// A row of the roles queries, by name.
fn role_row(r: &tokio_postgres::Row) -> (String, RoleRow) {
    let readable: bool = r.get(12);
    let stored: Option<String> = r.get(11);
    let row = RoleRow {
        state: RoleState {
            superuser: r.get(1),
            inherit: r.get(2),
            createrole: r.get(3),
            createdb: r.get(4),
            login: r.get(5),
            replication: r.get(6),
            bypassrls: r.get(7),
            connection_limit: i64::from(r.get::<_, i32>(8)),
            valid_until: r.get(9),
            valid_until_matches: true,
            password: match (readable, stored) {
                (false, _) => StoredPassword::Unreadable,
                (true, None) => StoredPassword::None,
                (true, Some(p)) => StoredPassword::Some(p),
            },
        },
        valid_until_epoch: r.get(10),
    };
    (r.get::<_, String>(0), row)
}
