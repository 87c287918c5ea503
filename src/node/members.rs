//! Role membership on one node (`pg_auth_members`): read for every group
//! at once and shared, changed by statements that say which.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::error::NodeError;
use super::Node;
use crate::sql;

/// How one role is a member of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    pub admin: bool,
    /// PostgreSQL 16 and later; `None` on earlier servers.
    pub inherit: Option<bool>,
    /// PostgreSQL 16 and later; `None` on earlier servers.
    pub set: Option<bool>,
}

/// Every membership of a node: group -> member -> how.
pub type MembershipTable = HashMap<String, BTreeMap<String, Membership>>;

impl Node {
    async fn memberships_all(&self) -> Result<Arc<MembershipTable>, NodeError> {
        self.read
            .memberships
            .get(|| async {
                let mut s = self.session().await?;
                let rows = s
                    .client()
                    .query(sql::MEMBERSHIPS_ALL, &[])
                    .await
                    .map_err(|e| self.pg_err("reading role memberships", &e))?;
                let mut out = MembershipTable::new();
                for r in rows {
                    let how = Membership {
                        admin: r.get(2),
                        inherit: r.get(3),
                        set: r.get(4),
                    };
                    let entry = out.entry(r.get(0)).or_default();
                    // PostgreSQL 16 keeps one row per grantor: a member is
                    // as much a member as its strongest grant.
                    let m: &mut Membership = entry.entry(r.get(1)).or_default();
                    m.admin |= how.admin;
                    m.inherit = merge(m.inherit, how.inherit);
                    m.set = merge(m.set, how.set);
                }
                Ok(out)
            })
            .await
    }

    /// The members of `group`, each with how it is one; `None` when the
    /// group does not exist on this node.
    pub async fn members_of(
        &self,
        group: &str,
    ) -> Result<Option<BTreeMap<String, Membership>>, NodeError> {
        if self.role_row(group).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.memberships_all()
                .await?
                .get(group)
                .cloned()
                .unwrap_or_default(),
        ))
    }

    /// Which roles of `names` do not exist on this node.
    pub async fn missing_roles(&self, names: &[String]) -> Result<Vec<String>, NodeError> {
        let mut missing = Vec::new();
        for n in names {
            if self.role_row(n).await?.is_none() {
                missing.push(n.clone());
            }
        }
        Ok(missing)
    }

    /// The server's version, as `server_version_num` (`150004`).
    pub async fn server_version_num(&self) -> Result<i32, NodeError> {
        Ok(self.own_session().await?.server_version_num)
    }

    /// Runs membership statements (one query, so one transaction) and
    /// forgets what was read of memberships.
    pub async fn membership_exec(&self, doing: &str, statements: &str) -> Result<(), NodeError> {
        let mut s = self.session().await?;
        let r = s
            .client()
            .batch_execute(statements)
            .await
            .map_err(|e| self.pg_err(doing, &e));
        drop(s);
        self.memberships_changed().await;
        r
    }

    /// Forgets what was read of memberships, after a change made on this
    /// node by other means (`distributed_exec` from the access node).
    pub async fn memberships_changed(&self) {
        self.read.memberships.invalidate().await;
    }
}

fn merge(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x || y),
        (x, y) => x.or(y),
    }
}
