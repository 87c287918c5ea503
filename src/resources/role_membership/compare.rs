//! What a node's membership of a group should be, how it is, and the
//! statements that bring it in line. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::node::Membership;
use crate::sql::{self, MemberOptions};

/// The membership a node should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub group: String,
    pub members: BTreeSet<String>,
    pub options: MemberOptions,
    /// The group has these members and no others.
    pub exact: bool,
}

/// How a node's membership differs from [`Want`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Differences {
    /// Not members at all.
    pub missing: Vec<String>,
    /// Members whose options differ.
    pub options: Vec<String>,
    /// Members the configuration does not name (counted in exact mode).
    pub extra: Vec<String>,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.options.is_empty() && self.extra.is_empty()
    }
}

pub const IN_SYNC: &str = "in sync";
pub const GROUP_MISSING: &str = "group missing";
pub const UNREACHABLE: &str = "unreachable";

impl Want {
    /// How `have` (the group's members on a node) differs.
    pub fn differences(&self, have: &BTreeMap<String, Membership>) -> Differences {
        let mut d = Differences::default();
        for m in &self.members {
            match have.get(m) {
                None => d.missing.push(m.clone()),
                Some(how) if !self.options_match(how) => d.options.push(m.clone()),
                Some(_) => {}
            }
        }
        if self.exact {
            d.extra = have
                .keys()
                .filter(|m| !self.members.contains(*m))
                .cloned()
                .collect();
        }
        d
    }

    fn options_match(&self, how: &Membership) -> bool {
        let o = &self.options;
        how.admin == o.admin
            && o.inherit.is_none_or(|i| how.inherit == Some(i))
            && o.set.is_none_or(|s| how.set == Some(s))
    }

    /// A node's status, as `nodes` shows it.
    pub fn status(&self, have: Option<&BTreeMap<String, Membership>>) -> String {
        let Some(have) = have else {
            return GROUP_MISSING.into();
        };
        let d = self.differences(have);
        if d.is_empty() {
            return IN_SYNC.into();
        }
        let mut parts = Vec::new();
        for (what, names) in [
            ("not members", &d.missing),
            ("other options", &d.options),
            ("members not configured", &d.extra),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        }
        format!("differs: {}", parts.join("; "))
    }

    /// The statements (one batch) that bring a node with these
    /// differences in line; grants and revokes that change nothing on a
    /// node (a member granted again, a revoke of what is not there) are
    /// harmless, so one batch made for several nodes serves each.
    pub fn statements(&self, d: &Differences) -> Option<String> {
        let mut out = Vec::new();
        let grant: Vec<String> = d.missing.iter().chain(&d.options).cloned().collect();
        if !grant.is_empty() {
            out.push(sql::grant_membership(&self.group, &grant, self.options));
        }
        if !self.options.admin && !d.options.is_empty() {
            out.push(sql::revoke_membership_admin(&self.group, &d.options));
        }
        if !d.extra.is_empty() {
            out.push(sql::revoke_membership(&self.group, &d.extra));
        }
        (!out.is_empty()).then(|| out.join("; "))
    }
}

/// The differences of several nodes together, for one statement sent to
/// them all (`distributed_exec`).
pub fn union(all: &[Differences]) -> Differences {
    let mut u = Differences::default();
    for d in all {
        for (to, from) in [
            (&mut u.missing, &d.missing),
            (&mut u.options, &d.options),
            (&mut u.extra, &d.extra),
        ] {
            for n in from {
                if !to.contains(n) {
                    to.push(n.clone());
                }
            }
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(exact: bool) -> Want {
        Want {
            group: "grp".into(),
            members: ["alice", "bob"].iter().map(|s| s.to_string()).collect(),
            options: MemberOptions::default(),
            exact,
        }
    }

    fn have(entries: &[(&str, bool)]) -> BTreeMap<String, Membership> {
        entries
            .iter()
            .map(|(n, admin)| {
                (
                    n.to_string(),
                    Membership {
                        admin: *admin,
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn every_difference_is_named_and_made_good() {
        let w = want(false);
        assert_eq!(
            w.status(Some(&have(&[("alice", false), ("bob", false)]))),
            IN_SYNC
        );
        assert_eq!(
            w.status(Some(&have(&[
                ("alice", false),
                ("bob", false),
                ("carol", false)
            ]))),
            IN_SYNC,
            "others are left alone unless exact"
        );
        assert_eq!(w.status(None), GROUP_MISSING);
        let h = have(&[("alice", true), ("carol", false)]);
        assert_eq!(
            w.status(Some(&h)),
            "differs: not members: bob; other options: alice"
        );
        assert_eq!(
            w.statements(&w.differences(&h)).unwrap(),
            "GRANT \"grp\" TO \"bob\", \"alice\"; REVOKE ADMIN OPTION FOR \"grp\" FROM \"alice\""
        );
        let exact = want(true);
        assert_eq!(
            exact.status(Some(&h)),
            "differs: not members: bob; other options: alice; members not configured: carol"
        );
        assert!(exact
            .statements(&exact.differences(&h))
            .unwrap()
            .ends_with("REVOKE \"grp\" FROM \"carol\""));
        assert_eq!(w.statements(&Differences::default()), None);
    }

    #[test]
    fn options_of_postgresql_16_count_only_where_asked() {
        let mut w = want(false);
        let mut h = have(&[("alice", false), ("bob", false)]);
        for m in h.values_mut() {
            m.inherit = Some(true);
            m.set = Some(true);
        }
        assert!(w.differences(&h).is_empty());
        w.options.inherit = Some(false);
        assert_eq!(w.differences(&h).options, ["alice", "bob"]);
        assert!(w
            .statements(&w.differences(&h))
            .unwrap()
            .starts_with("GRANT \"grp\" TO \"alice\", \"bob\" WITH ADMIN FALSE, INHERIT FALSE"));
    }

    #[test]
    fn one_statement_serves_several_nodes() {
        let a = Differences {
            missing: vec!["x".into()],
            ..Default::default()
        };
        let b = Differences {
            missing: vec!["x".into(), "y".into()],
            extra: vec!["z".into()],
            ..Default::default()
        };
        let u = union(&[a, b]);
        assert_eq!((u.missing.len(), u.extra.len()), (2, 1));
    }
}
