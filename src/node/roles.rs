//! Roles on one node: read, change, and what still depends on them.

use tokio_postgres::error::SqlState;

use super::error::NodeError;
use super::Node;
use crate::password::Encryption;
use crate::role::{RoleState, StoredPassword};
use crate::secret::Secret;
use crate::sql;

impl Node {
    /// The role as this node has it, or `None` when it does not exist.
    /// `valid_until` is what the spec asks for; the server says whether the
    /// stored instant is the same.
    pub async fn role_read(
        &self,
        name: &str,
        valid_until: Option<&str>,
    ) -> Result<Option<RoleState>, NodeError> {
        let mut s = self.session().await?;
        let doing = format!("reading role {name:?}");
        let row = match s
            .client()
            .query_opt(sql::ROLE_READ_AUTHID, &[&name, &valid_until])
            .await
        {
            Ok(row) => row,
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => s
                .client()
                .query_opt(sql::ROLE_READ_ROLES, &[&name, &valid_until])
                .await
                .map_err(|e| self.pg_err(&doing, &e))?,
            Err(e) => return Err(self.pg_err(&doing, &e)),
        };
        Ok(row.map(|r| {
            let readable: bool = r.get(11);
            let stored: Option<String> = r.get(10);
            RoleState {
                superuser: r.get(0),
                inherit: r.get(1),
                createrole: r.get(2),
                createdb: r.get(3),
                login: r.get(4),
                replication: r.get(5),
                bypassrls: r.get(6),
                connection_limit: i64::from(r.get::<_, i32>(7)),
                valid_until: r.get(8),
                valid_until_matches: r.get(9),
                password: match (readable, stored) {
                    (false, _) => StoredPassword::Unreadable,
                    (true, None) => StoredPassword::None,
                    (true, Some(p)) => StoredPassword::Some(p),
                },
            }
        }))
    }

    /// How this node stores new passwords.
    pub async fn password_encryption(&self) -> Result<Encryption, NodeError> {
        Ok(self
            .setting("password_encryption")
            .await?
            .map(|s| Encryption::from_setting(&s))
            .unwrap_or(Encryption::ScramSha256))
    }

    /// Runs one role statement (it may carry a password verifier, so it is
    /// never logged).
    pub async fn role_exec(&self, doing: &str, statement: &Secret) -> Result<(), NodeError> {
        let mut s = self.session().await?;
        s.client()
            .batch_execute(statement.expose())
            .await
            .map_err(|e| self.pg_err(doing, &e))
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
        let mut stmt = String::new();
        if let Some(t) = to {
            stmt.push_str(&format!(
                "REASSIGN OWNED BY {} TO {}; ",
                sql::ident(name),
                sql::ident(t)
            ));
        }
        stmt.push_str(&format!("DROP OWNED BY {}", sql::ident(name)));
        let mut s = self.session().await?;
        let tx = s
            .client()
            .transaction()
            .await
            .map_err(|e| self.pg_err("starting a transaction", &e))?;
        tx.batch_execute(&stmt)
            .await
            .map_err(|e| self.pg_err(format!("dropping what role {name:?} owns"), &e))?;
        tx.commit()
            .await
            .map_err(|e| self.pg_err(format!("dropping what role {name:?} owns"), &e))
    }
}
