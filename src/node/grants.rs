//! `USAGE` on foreign servers (TimescaleDB's data nodes are foreign servers
//! of the access node), read from and written to `pg_foreign_server.srvacl`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio_postgres::GenericClient;

use super::batch::{self, Edit, Written};
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
                self.load_grants(s.client()).await
            })
            .await
    }

    async fn load_grants<C: GenericClient>(&self, c: &C) -> Result<GrantTable, NodeError> {
        let rows = c
            .query(sql::SERVER_GRANTS_ALL, &[])
            .await
            .map_err(|e| self.pg_err("reading foreign server privileges", &e))?;
        let mut out = GrantTable::new();
        for r in rows {
            add_grant(&mut out, r.get(0), r.get(1), r.get(2));
        }
        Ok(out)
    }

    /// The foreign servers the role has `USAGE` on, each with whether it
    /// may grant it on; `None` when the role does not exist.
    pub async fn server_grants(
        &self,
        role: &str,
    ) -> Result<Option<BTreeMap<String, bool>>, NodeError> {
        if self.role_row(role).await?.is_none() {
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

    /// The named servers that do not exist on this node, in order (the
    /// names are read once: the provider never creates or drops servers).
    pub async fn missing_servers(&self, servers: &[String]) -> Result<Vec<String>, NodeError> {
        let known = self
            .read
            .servers
            .get(|| async {
                let mut s = self.session().await?;
                let rows = s
                    .client()
                    .query(sql::FOREIGN_SERVERS, &[])
                    .await
                    .map_err(|e| self.pg_err("looking up foreign servers", &e))?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
            .await?;
        let mut missing: Vec<String> = servers
            .iter()
            .filter(|s| !known.contains(*s))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        Ok(missing)
    }

    /// Applies the change and returns every role's privileges as they are
    /// afterwards. Changes arriving together (many grants applied at once)
    /// are made in one transaction, serialised with other grant changes on
    /// this node ([`super::batch`]); when that transaction fails, each change
    /// is made on its own so that the error reaches the role that caused it.
    /// The work runs in its own task, so a cancelled request cannot stop it
    /// halfway.
    pub async fn change_server_grants(
        self: &Arc<Self>,
        role: &str,
        c: &GrantChange,
    ) -> Result<Arc<GrantTable>, NodeError> {
        if c.is_empty() {
            return self.grants_all().await;
        }
        let change = (role.to_string(), c.clone());
        self.submit(
            |n| (&n.grant_changes, &n.catalog_lock),
            Arc::new(move |pending: &mut PendingGrants| {
                pending.push(change.clone());
                Ok(())
            }),
            |n, edits| Box::pin(n.write_grants(edits)),
            &format!("changing the foreign server privileges of role {role:?}"),
        )
        .await
    }

    async fn write_grants(
        &self,
        edits: Vec<Edit<PendingGrants>>,
    ) -> Result<Written<Arc<GrantTable>>, NodeError> {
        let (pending, results) = batch::apply(&Vec::new(), &edits, |m| {
            self.err(ErrorKind::Rejected, "changing foreign server privileges", m)
        });
        let doing = match pending.as_slice() {
            [(role, _)] => format!("changing the foreign server privileges of role {role:?}"),
            _ => format!(
                "changing the foreign server privileges of {} roles",
                pending.len()
            ),
        };
        // One query, so one implicit transaction: the lock, the statements
        // and the privileges read back (nothing in them is secret); a
        // failure rolls all of it back and is the failing statement's own.
        let mut batch = format!("SELECT pg_advisory_xact_lock({GRANT_LOCK_KEY})");
        for st in statements(&pending) {
            batch.push_str("; ");
            batch.push_str(&st);
        }
        batch.push_str("; ");
        batch.push_str(sql::SERVER_GRANTS_ALL);
        let mut s = self.session().await?;
        let messages = s.client().simple_query(&batch).await.map_err(|e| {
            let mut err = self.pg_err(&doing, &e);
            if e.code() == Some(&tokio_postgres::error::SqlState::DEPENDENT_OBJECTS_STILL_EXIST) {
                err.kind = ErrorKind::Rejected;
                err.message.push_str(
                    "; the role passed the privilege on to others, who must lose it first",
                );
            }
            err
        })?;
        drop(s);
        let mut table = GrantTable::new();
        for m in &messages {
            // The privileges' rows: the lock's row has one column.
            let tokio_postgres::SimpleQueryMessage::Row(r) = m else {
                continue;
            };
            if r.len() != 3 {
                continue;
            }
            if let (Some(server), Some(role), Some(grantable)) = (r.get(0), r.get(1), r.get(2)) {
                add_grant(&mut table, server, role, grantable == "t");
            }
        }
        let table = Arc::new(table);
        self.read.grants.put(table.clone()).await;
        Ok((results, table))
    }
}

/// Adds a row of [`sql::SERVER_GRANTS_ALL`] to the table.
fn add_grant(table: &mut GrantTable, server: &str, role: &str, grantable: bool) {
    *table
        .entry(role.to_string())
        .or_default()
        .entry(server.to_string())
        .or_insert(false) |= grantable;
}

/// Grant changes waiting for the next write, in the order they came.
pub type PendingGrants = Vec<(String, GrantChange)>;

impl GrantChange {
    fn is_empty(&self) -> bool {
        self.revoke.is_empty() && self.revoke_option.is_empty() && self.grant.is_empty()
    }
}

/// The statements that make `pending`: per role the revokes, then the
/// grant-option revokes, then the grants. Roles asking for the same change
/// share one statement; when a role comes twice, every change keeps its own
/// statements, in order.
fn statements(pending: &PendingGrants) -> Vec<String> {
    let roles: std::collections::BTreeSet<&String> = pending.iter().map(|(r, _)| r).collect();
    let groups: Vec<Vec<&(String, GrantChange)>> = if roles.len() == pending.len() {
        vec![pending.iter().collect()]
    } else {
        pending.iter().map(|p| vec![p]).collect()
    };
    let mut out = Vec::new();
    for group in groups {
        let mut revoke: BTreeMap<&[String], Vec<String>> = BTreeMap::new();
        let mut revoke_option: BTreeMap<&[String], Vec<String>> = BTreeMap::new();
        let mut grant: BTreeMap<(&[String], bool), Vec<String>> = BTreeMap::new();
        for (role, c) in group {
            if !c.revoke.is_empty() {
                revoke.entry(&c.revoke).or_default().push(role.clone());
            }
            if !c.revoke_option.is_empty() {
                revoke_option
                    .entry(&c.revoke_option)
                    .or_default()
                    .push(role.clone());
            }
            if !c.grant.is_empty() {
                grant
                    .entry((&c.grant, c.with_grant_option))
                    .or_default()
                    .push(role.clone());
            }
        }
        out.extend(revoke.iter().map(|(s, r)| sql::revoke_server_usage(s, r)));
        out.extend(
            revoke_option
                .iter()
                .map(|(s, r)| sql::revoke_server_grant_option(s, r)),
        );
        out.extend(
            grant
                .iter()
                .map(|((s, w), r)| sql::grant_server_usage(s, r, *w)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(revoke: &[&str], grant: &[&str], with_grant_option: bool) -> GrantChange {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        GrantChange {
            revoke: v(revoke),
            grant: v(grant),
            with_grant_option,
            revoke_option: Vec::new(),
        }
    }

    #[test]
    fn roles_asking_the_same_share_a_statement() {
        let pending = vec![
            ("a".to_string(), change(&[], &["dn1", "dn2"], false)),
            ("b".to_string(), change(&["dn3"], &["dn1", "dn2"], false)),
            ("c".to_string(), change(&[], &["dn1", "dn2"], true)),
            ("d".to_string(), change(&["dn3"], &[], false)),
        ];
        assert_eq!(
            statements(&pending),
            [
                "REVOKE USAGE ON FOREIGN SERVER \"dn3\" FROM \"b\", \"d\"",
                "GRANT USAGE ON FOREIGN SERVER \"dn1\", \"dn2\" TO \"a\", \"b\"",
                "GRANT USAGE ON FOREIGN SERVER \"dn1\", \"dn2\" TO \"c\" WITH GRANT OPTION",
            ]
        );
    }

    #[test]
    fn a_role_that_comes_twice_keeps_the_order_of_its_changes() {
        let pending = vec![
            ("a".to_string(), change(&[], &["dn1"], false)),
            ("b".to_string(), change(&[], &["dn1"], false)),
            ("a".to_string(), change(&["dn1"], &[], false)),
        ];
        assert_eq!(
            statements(&pending),
            [
                "GRANT USAGE ON FOREIGN SERVER \"dn1\" TO \"a\"",
                "GRANT USAGE ON FOREIGN SERVER \"dn1\" TO \"b\"",
                "REVOKE USAGE ON FOREIGN SERVER \"dn1\" FROM \"a\"",
            ]
        );
    }
}
