//! What the role should be on each node, the stamps of the verifiers set
//! last (the private state), and how each node's copy compares.

use std::collections::{BTreeMap, BTreeSet};

use super::converge::NodeRead;
use super::*;
use crate::password::{self, Checker, Encryption};
use crate::role::{RoleSpec, RoleState, StoredPassword, MISSING, UNREACHABLE};

/// The role as the resource's operations work on it: the model, and for
/// write-only passwords the private state's stamps of the verifiers set by
/// the last apply.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Role {
    pub(super) model: Model,
    pub(super) stamps: Stamps,
    pub(super) rotate: Rotate,
}

impl From<Model> for Role {
    fn from(model: Model) -> Role {
        Role {
            model,
            stamps: Stamps::default(),
            rotate: Rotate::default(),
        }
    }
}

/// Which passwords the configuration changed since the last apply (see
/// [`RoleSpec::rotate`]): a node whose stored password the provider may
/// not read gets those set again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Rotate {
    access: bool,
    data: bool,
}

impl Rotate {
    pub(super) fn between(before: &Model, after: &Model) -> Rotate {
        let data = |m: &Model| m.data_node_password.clone().or(m.password.clone());
        let both = before.password_wo_version != after.password_wo_version
            || before.password_encryption != after.password_encryption;
        Rotate {
            access: both || before.password != after.password,
            data: both || data(before) != data(after),
        }
    }
}

/// The private state: [`password::stamp`]s of the stored verifiers found
/// to match the configured passwords, by the password they match (the
/// access node's, the data nodes'). The data nodes normally store one and
/// the same verifier, so the state holds one digest for all of them, not
/// one per node: Terraform writes every resource's private state out again
/// with each resource it applies.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Stamps {
    #[serde(rename = "a", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(super) access: BTreeSet<String>,
    #[serde(rename = "d", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(super) data: BTreeSet<String>,
}

impl Stamps {
    /// Reads the private state: this form, or the one earlier releases
    /// wrote (a stamp by node name). Anything else holds no stamps.
    pub(super) fn parse(private: &[u8]) -> Stamps {
        if let Ok(by_node) = serde_json::from_slice::<BTreeMap<String, String>>(private) {
            let mut s = Stamps::default();
            for (node, stamp) in by_node {
                s.insert(&node, stamp);
            }
            return s;
        }
        serde_json::from_slice(private).unwrap_or_default()
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn insert(&mut self, node: &str, stamp: String) {
        if node == ACCESS_NODE {
            self.access.insert(stamp);
        } else {
            self.data.insert(stamp);
        }
    }

    /// The stamps a verifier on `node` may match.
    fn of(&self, node: &str) -> &BTreeSet<String> {
        if node == ACCESS_NODE {
            &self.access
        } else {
            &self.data
        }
    }
}

impl std::ops::Deref for Role {
    type Target = Model;
    fn deref(&self) -> &Model {
        &self.model
    }
}

impl std::ops::DerefMut for Role {
    fn deref_mut(&mut self) -> &mut Model {
        &mut self.model
    }
}

impl Role {
    /// The passwords come from the write-only attributes: known during an
    /// apply only, never written to the state.
    pub(super) fn write_only(&self) -> bool {
        self.password_wo.is_some()
            || self.data_node_password_wo.is_some()
            || self.password_wo_version.is_some()
    }

    fn encryption(&self) -> Encryption {
        match self.password_encryption.as_str() {
            "md5" => Encryption::Md5,
            _ => Encryption::ScramSha256,
        }
    }

    /// The access node and the data nodes, in that order.
    pub(super) fn targets(&self) -> Vec<String> {
        std::iter::once(ACCESS_NODE.to_string())
            .chain(self.data_nodes.iter().cloned())
            .collect()
    }

    /// What the role should be on `node`: data nodes always get LOGIN and
    /// the internal password.
    pub(super) fn spec_for(&self, node: &str) -> RoleSpec {
        let access = node == ACCESS_NODE;
        let client = self.password.as_ref().or(self.password_wo.as_ref());
        RoleSpec {
            name: self.name.clone(),
            login: self.login || !access,
            superuser: self.superuser,
            createdb: self.createdb,
            createrole: self.createrole,
            inherit: self.inherit,
            replication: self.replication,
            bypassrls: self.bypassrls,
            connection_limit: self.connection_limit,
            valid_until: self.valid_until.clone(),
            password: if access {
                client.cloned()
            } else {
                (self.data_node_password.as_ref())
                    .or(self.data_node_password_wo.as_ref())
                    .or(client)
                    .cloned()
            },
            password_stamps: if self.write_only() {
                self.stamps.of(node).iter().cloned().collect()
            } else {
                Vec::new()
            },
            encryption: self.encryption(),
            rotate: if access {
                self.rotate.access
            } else {
                self.rotate.data
            },
        }
    }

    /// Takes the attributes the access node shows (passwords excepted: only
    /// their agreement can be read).
    pub(super) fn adopt_access(&mut self, a: &RoleState) {
        self.login = a.login;
        self.superuser = a.superuser;
        self.createdb = a.createdb;
        self.createrole = a.createrole;
        self.inherit = a.inherit;
        self.replication = a.replication;
        self.bypassrls = a.bypassrls;
        self.connection_limit = a.connection_limit;
        if !a.valid_until_matches {
            self.valid_until = a.valid_until.clone().filter(|v| v != "infinity");
        }
    }

    /// Stored verifiers the private data says were found to match: they
    /// are trusted without recomputing the key derivation.
    pub(super) fn trust_stamps(
        &self,
        reads: &BTreeMap<String, NodeRead>,
        private: &[u8],
        checker: &Checker,
    ) {
        let stamps = Stamps::parse(private);
        for (node, read) in reads {
            let Ok(Some(state)) = read else { continue };
            if let (StoredPassword::Some(stored), Some(p)) =
                (&state.password, self.spec_for(node).password)
            {
                if stamps.of(node).contains(&password::stamp(stored)) {
                    checker.trust(stored, p.expose(), &self.name);
                }
            }
        }
    }

    /// Private data for the state: for each node whose stored verifier
    /// matches the configured password, a digest of that verifier.
    pub(super) fn stamps(&self, reads: &BTreeMap<String, NodeRead>, checker: &Checker) -> Vec<u8> {
        let mut out = Stamps::default();
        for (node, read) in reads {
            let Ok(Some(state)) = read else { continue };
            if let (StoredPassword::Some(stored), Some(p)) =
                (&state.password, self.spec_for(node).password)
            {
                if checker.check(stored, p.expose(), &self.name) == password::Check::Matches {
                    out.insert(node, password::stamp(stored));
                }
            }
        }
        out.to_bytes()
    }

    pub(super) fn statuses(
        &self,
        reads: &BTreeMap<String, NodeRead>,
        checker: &Checker,
    ) -> BTreeMap<String, String> {
        self.targets()
            .into_iter()
            .map(|n| {
                let status = match reads.get(&n) {
                    Some(Ok(state)) => role::status(&self.spec_for(&n), state.as_ref(), checker),
                    Some(Err(_)) => UNREACHABLE.to_string(),
                    None => MISSING.to_string(),
                };
                (n, status)
            })
            .collect()
    }

    /// The model to keep in state, with each node's status: write-only
    /// values are in neither form.
    pub(super) fn to_model(&self, nodes: BTreeMap<String, String>) -> Model {
        let mut m = self.model.clone();
        if self.write_only() {
            m.password = None;
            m.data_node_password = None;
        }
        m.password_wo = None;
        m.data_node_password_wo = None;
        m.id = Some(m.name.clone());
        m.nodes = nodes;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::config;
    use super::*;
    use crate::model::Model as _;
    use crate::role::IN_SYNC;
    use crate::value::Value;

    #[test]
    fn data_nodes_get_login_and_the_internal_password() {
        let m = Role::from(
            Model::from_value(&config(&[
                (NAME, Value::string("testrole")),
                (PASSWORD, Value::string("clientpass")),
                (DATA_NODE_PASSWORD, Value::string("internalpass")),
                (DATA_NODES, Value::list_of_strings(["dn1"])),
            ]))
            .unwrap(),
        );
        let a = m.spec_for(ACCESS_NODE);
        let d = m.spec_for("dn1");
        assert!(!a.login && d.login);
        assert_eq!(a.password.unwrap().expose(), "clientpass");
        assert_eq!(d.password.unwrap().expose(), "internalpass");
        assert_eq!(m.targets(), ["access", "dn1"]);
    }

    /// Sixteen data nodes storing the same verifier, as the provider sets
    /// them, and the access node its own.
    fn wide_role() -> (Role, BTreeMap<String, NodeRead>) {
        let nodes: Vec<String> = (1..=16).map(|i| format!("dn{i}")).collect();
        let m = Role::from(
            Model::from_value(&config(&[
                (NAME, Value::string("wide")),
                (PASSWORD, Value::string("clientpass")),
                (DATA_NODE_PASSWORD, Value::string("internalpass")),
                (DATA_NODES, Value::list_of_strings(nodes.iter().cloned())),
            ]))
            .unwrap(),
        );
        let stored = |node: &str| {
            let p = m.spec_for(node).password.unwrap();
            password::encrypt(&p, "wide", Encryption::ScramSha256)
                .expose()
                .to_string()
        };
        let (client, internal) = (stored(ACCESS_NODE), stored("dn1"));
        let reads = m
            .targets()
            .into_iter()
            .map(|n| {
                let password = if n == ACCESS_NODE { &client } else { &internal };
                let state = RoleState::in_line_with(&m.spec_for(&n), password.clone());
                (n, Ok(Some(state)))
            })
            .collect();
        (m, reads)
    }

    #[test]
    fn the_private_state_holds_a_stamp_per_verifier_not_per_node() {
        let (m, reads) = wide_role();
        let private = m.stamps(&reads, &Checker::default());
        let stamps = Stamps::parse(&private);
        assert_eq!((stamps.access.len(), stamps.data.len()), (1, 1));
        assert!(private.len() < 160, "{}", String::from_utf8_lossy(&private));
        // A later refresh trusts every node's verifier from those two
        // stamps: no key derivation at all.
        let checker = Checker::default();
        m.trust_stamps(&reads, &private, &checker);
        assert_eq!(m.stamps(&reads, &checker), private);
        assert_eq!(checker.computed(), 0);
    }

    #[test]
    fn stamps_written_by_node_by_earlier_releases_are_still_read() {
        let (m, reads) = wide_role();
        let by_node: BTreeMap<String, String> = reads
            .iter()
            .map(|(n, r)| match r {
                Ok(Some(RoleState {
                    password: StoredPassword::Some(p),
                    ..
                })) => (n.clone(), password::stamp(p)),
                _ => unreachable!(),
            })
            .collect();
        let old = serde_json::to_vec(&by_node).unwrap();
        let checker = Checker::default();
        m.trust_stamps(&reads, &old, &checker);
        assert_eq!(
            Stamps::parse(&m.stamps(&reads, &checker)),
            Stamps::parse(&old)
        );
        assert_eq!(checker.computed(), 0);
        // Write-only: a data node's verifier is judged against the data
        // nodes' stamps, the access node's against its own.
        let mut wo = m.clone();
        (wo.password, wo.data_node_password) = (None, None);
        wo.password_wo_version = Some(1);
        wo.stamps = Stamps::parse(&old);
        let statuses = wo.statuses(&reads, &Checker::default());
        assert!(statuses.values().all(|s| s == IN_SYNC), "{statuses:?}");
        let client = match &reads[ACCESS_NODE] {
            Ok(state) => state.clone(),
            Err(_) => unreachable!(),
        };
        let mut swapped = reads;
        swapped.insert("dn3".into(), Ok(client));
        let statuses = wo.statuses(&swapped, &Checker::default());
        assert_ne!(
            statuses["dn3"], IN_SYNC,
            "the client password's verifier on a data node"
        );
        assert_eq!(statuses["dn2"], IN_SYNC);
    }
}
