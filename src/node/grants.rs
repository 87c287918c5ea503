//! `USAGE` on foreign servers (TimescaleDB's data nodes are foreign servers
//! of the access node), read from and written to `pg_foreign_server.srvacl`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::error::{ErrorKind, NodeError};
use super::Node;
use crate::sql;

/// Advisory lock key for grant changes ("tfacl" in ASCII): concurrent
/// GRANTs on one server row would otherwise fail with "tuple concurrently
/// updated".
const GRANT_LOCK_KEY: i64 = 0x0074_6661_636c;

/// A change to one role's `USAGE` on foreign servers.
#[derive(Clone, Debug, Default)]
pub struct GrantChange {
    pub revoke: Vec<String>,
    pub grant: Vec<String>,
    pub with_grant_option: bool,
    /// Servers on which only the grant option is taken away.
    pub revoke_option: Vec<String>,
}

/// `USAGE` on foreign servers for every role: grantee -> server -> whether
/// with the grant option.
pub type GrantTable = HashMap<String, BTreeMap<String, bool>>;

impl Node {
    async fn grants_all(&self) -> Result<Arc<GrantTable>, NodeError> {
        self.read
            .grants
            .get(|| async {
                let mut s = self.session().await?;
                let rows = s
                    .client()
                    .query(sql::SERVER_GRANTS_ALL, &[])
                    .await
                    .map_err(|e| self.pg_err("reading foreign server privileges", &e))?;
                let mut out = GrantTable::new();
                for r in rows {
                    let grantable: bool = r.get(2);
                    *out.entry(r.get::<_, String>(1))
                        .or_default()
                        .entry(r.get::<_, String>(0))
                        .or_insert(false) |= grantable;
                }
                Ok(out)
            })
            .await
    }

    /// The foreign servers the role has `USAGE` on, each with whether it
    /// may grant it on; `None` when the role does not exist.
    pub async fn server_grants(
        &self,
        role: &str,
    ) -> Result<Option<BTreeMap<String, bool>>, NodeError> {
        if !self.roles_all().await?.contains_key(role) {
            return Ok(None);
        }
        Ok(Some(
            self.grants_all()
                .await?
                .get(role)
                .cloned()
                .unwrap_or_default(),
        ))
    }

    /// The named servers that do not exist on this node.
    pub async fn missing_servers(&self, servers: &[String]) -> Result<Vec<String>, NodeError> {
        let mut s = self.session().await?;
        let rows = s
            .client()
            .query(sql::MISSING_SERVERS, &[&servers])
            .await
            .map_err(|e| self.pg_err("looking up foreign servers", &e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Applies the change in one transaction, serialised with other grant
    /// changes on this node.
    pub async fn change_server_grants(&self, role: &str, c: &GrantChange) -> Result<(), NodeError> {
        let mut stmts = Vec::new();
        if !c.revoke.is_empty() {
            stmts.push(sql::revoke_server_usage(&c.revoke, role));
        }
        if !c.revoke_option.is_empty() {
            stmts.push(sql::revoke_server_grant_option(&c.revoke_option, role));
        }
        if !c.grant.is_empty() {
            stmts.push(sql::grant_server_usage(&c.grant, role, c.with_grant_option));
        }
        if stmts.is_empty() {
            return Ok(());
        }
        let doing = format!("changing the foreign server privileges of role {role:?}");
        let _guard = self.catalog_lock.lock().await;
        let mut s = self.session().await?;
        let tx = self.begin(&mut s).await?;
        tx.query_one(sql::ADVISORY_LOCK_XACT, &[&GRANT_LOCK_KEY])
            .await
            .map_err(|e| self.pg_err("locking foreign server privileges", &e))?;
        for st in &stmts {
            tx.batch_execute(st).await.map_err(|e| {
                let mut err = self.pg_err(&doing, &e);
                if e.code() == Some(&tokio_postgres::error::SqlState::DEPENDENT_OBJECTS_STILL_EXIST)
                {
                    err.kind = ErrorKind::Rejected;
                    err.message.push_str(
                        "; the role passed the privilege on to others, who must lose it first",
                    );
                }
                err
            })?;
        }
        let r = tx.commit().await.map_err(|e| self.pg_err(&doing, &e));
        drop(s);
        self.read.grants.invalidate().await;
        r
    }
}
