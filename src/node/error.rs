//! Errors from talking to a node, with the node and what was being done.

use std::fmt;

use crate::diag::{AttrPath, Diagnostics};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The node could not be reached at all.
    Unreachable,
    /// The node refused the provider's credentials.
    Authentication,
    /// The provider's role lacks a privilege (usually superuser).
    Permission,
    /// The server refused a change it validated (pg_hba.conf errors).
    Rejected,
    /// The change would lock the provider out; nothing was left changed.
    Lockout,
    /// Anything else the server reported.
    Sql,
    /// Terraform asked the provider to stop.
    Cancelled,
    /// No node has the name a resource gave.
    UnknownNode,
}

#[derive(Debug)]
pub struct NodeError {
    pub node: String,
    pub address: String,
    pub kind: ErrorKind,
    /// What the provider was doing, e.g. "writing /etc/.../pg_hba.conf".
    pub doing: String,
    pub message: String,
}

impl NodeError {
    pub fn new(
        node: &str,
        address: &str,
        kind: ErrorKind,
        doing: impl Into<String>,
        message: impl Into<String>,
    ) -> NodeError {
        NodeError {
            node: node.to_string(),
            address: address.to_string(),
            kind,
            doing: doing.into(),
            message: message.into(),
        }
    }

    /// Builds the error from a driver error, reading its kind from SQLSTATE.
    /// Only the server's message, detail and hint are kept, never its
    /// context or the statement: statements may carry password verifiers.
    pub fn from_pg(
        node: &str,
        address: &str,
        doing: impl Into<String>,
        e: &tokio_postgres::Error,
    ) -> NodeError {
        use tokio_postgres::error::SqlState;
        let (kind, message) = match e.as_db_error() {
            Some(db) => {
                let code = db.code();
                let kind = if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                    || *code == SqlState::INVALID_PASSWORD
                {
                    ErrorKind::Authentication
                } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                    ErrorKind::Permission
                } else {
                    ErrorKind::Sql
                };
                let mut m = db.message().to_string();
                if let Some(d) = db.detail() {
                    m.push_str(": ");
                    m.push_str(d);
                }
                if let Some(h) = db.hint() {
                    m.push_str(" (hint: ");
                    m.push_str(h);
                    m.push(')');
                }
                (kind, m)
            }
            None if e.is_closed() => (
                ErrorKind::Unreachable,
                "the connection was closed".to_string(),
            ),
            None => {
                let mut m = e.to_string();
                let mut src = std::error::Error::source(e);
                while let Some(s) = src {
                    m.push_str(": ");
                    m.push_str(&s.to_string());
                    src = s.source();
                }
                // The node answered and asked for a password the provider
                // does not have: a matter of credentials, not reachability.
                if m.contains("password missing") {
                    (
                        ErrorKind::Authentication,
                        "the node asks for a password and the provider has none: set `password` in the provider \
                         block (or its `data_nodes` entry), PGPASSWORD, or a password file"
                            .to_string(),
                    )
                } else {
                    (ErrorKind::Unreachable, m)
                }
            }
        };
        NodeError::new(node, address, kind, doing, message)
    }

    /// The error as diagnostics on the attribute `attr` when it is that
    /// attribute's fault (it names a node the provider does not know), on
    /// the resource otherwise.
    pub fn naming(&self, attr: &str) -> Diagnostics {
        let path = (self.kind == ErrorKind::UnknownNode).then(|| AttrPath::attr(attr));
        self.to_diagnostics(path)
    }

    /// The error as a Terraform diagnostic, on `path` when given.
    pub fn to_diagnostics(&self, path: Option<AttrPath>) -> Diagnostics {
        let summary = match self.kind {
            ErrorKind::Unreachable => format!("Cannot reach node {:?}", self.node),
            ErrorKind::Authentication => {
                format!("Node {:?} refused the provider's credentials", self.node)
            }
            ErrorKind::Permission => format!("Missing privilege on node {:?}", self.node),
            ErrorKind::Rejected => format!("Node {:?} rejected the change", self.node),
            ErrorKind::Lockout => format!(
                "Change refused: it would lock the provider out of node {:?}",
                self.node
            ),
            ErrorKind::Sql => format!("Error on node {:?}", self.node),
            ErrorKind::Cancelled => "Operation cancelled".to_string(),
            ErrorKind::UnknownNode => format!("Unknown node {:?}", self.node),
        };
        if self.kind == ErrorKind::UnknownNode {
            let mut d = Diagnostics::new();
            d.push_error(
                path,
                summary,
                format!(
                    "{}. Name `access` or a data node the provider knows (its `data_nodes` setting, or TimescaleDB's catalog on the access node).",
                    self.message
                ),
            );
            return d;
        }
        let mut detail = format!(
            "While {} on node {:?} ({}): {}",
            self.doing, self.node, self.address, self.message
        );
        match self.kind {
            ErrorKind::Permission => detail.push_str("\n\nThe provider's role needs to be a superuser on every node it manages, or to hold the rights the provider documentation lists under \"Running without superuser\"."),
            ErrorKind::Unreachable => detail.push_str("\n\nCheck that the node is running and that the provider's host, port and sslmode settings are right."),
            _ => {}
        }
        let mut d = Diagnostics::new();
        d.push_error(path, summary, detail);
        d
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {:?} ({}): {}: {}",
            self.node, self.address, self.doing, self.message
        )
    }
}

impl std::error::Error for NodeError {}

/// A node error is a diagnostic on the resource; one about an attribute
/// goes through [`NodeError::naming`].
impl From<NodeError> for Diagnostics {
    fn from(e: NodeError) -> Diagnostics {
        e.to_diagnostics(None)
    }
}

impl From<&NodeError> for Diagnostics {
    fn from(e: &NodeError) -> Diagnostics {
        e.to_diagnostics(None)
    }
}
