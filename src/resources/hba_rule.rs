//! `timescaledb_hba_rule`: one pg_hba.conf record on one node.

use std::collections::BTreeMap;

use crate::diag::{AttrPath, Diagnostics};
use crate::hba::{check_address, AddressFault, Field, HbaFile, Rule, CONNECTION_TYPES, METHODS};
use crate::model::{PlanModel as _, Planned};
use crate::provider::ACCESS_NODE;
use crate::value::Value;

use super::{Applied, Checked, Ctx, Deleted, PlanInput, Read, Resource, State};

const DEFAULT_POSITION: i64 = 100;

crate::model! {
    /// A pg_hba.conf rule, as configured and as kept.
    pub struct Model plan HbaPlan {
        NODE => node: String = optional("Node whose `pg_hba.conf` holds the rule: `access` or the name of a data node.").default(Value::string(ACCESS_NODE)).force_new(),
        TYPE => conn_type("type"): String = required("Connection type the rule matches.").one_of(CONNECTION_TYPES).force_new(),
        DATABASES => databases: Vec<String> = required("Databases the rule matches: names, or keywords such as `all`, `sameuser` and `replication`. A keyword in double quotes (`\"\\\"all\\\"\"`) is a literal name.").force_new(),
        USERS => users: Vec<String> = required("Roles the rule matches: names, `all`, or `+role` for members of a role.").force_new(),
        ADDRESS => address: Option<String> = optional("Client address for every type but `local`: a CIDR range (`192.0.2.0/24`, `2001:db8::/32`), a single IP address (taken as `/32` or `/128`), a host name, or `all`, `samehost`, `samenet`. An address with bits set outside its mask is refused.").force_new(),
        NETMASK => netmask: Option<String> = optional("Netmask for an IP `address` written without a prefix (`255.255.255.0`); it is turned into the CIDR form.").force_new(),
        METHOD => method: String = required("Authentication method.").one_of(METHODS),
        OPTIONS => options: Option<BTreeMap<String, String>> = optional("Authentication options, e.g. `{ clientcert = \"verify-full\" }`. Options are checked against the method; `clientcert=1`, which PostgreSQL 14 and later refuse, is rejected at plan time. Sensitive, since `ldapbindpasswd` and `radiussecrets` are secrets.").sensitive(),
        POSITION => position: i64 = optional("Order among the managed rules of the node; lower comes first, and the first matching rule wins.").default(Value::int(DEFAULT_POSITION)),
        COMMENT => comment: Option<String> = optional("Comment written at the end of the line."),
        ID => id: Option<String> = computed("The node name followed by the rule's match fields (type, databases, users, address), which is also the import ID.").stable(),
        LINE => line: Option<String> = computed("The line as it stands in `pg_hba.conf`, with the values of `ldapbindpasswd` and `radiussecrets` shown as `(sensitive)`."),
    }
}

const DESCRIPTION: &str = "Manages one record of `pg_hba.conf` on one node. The file is read and written through SQL on the node, checked by \
         PostgreSQL (`pg_hba_file_rules`) before the configuration is reloaded, and put back as it was if the check fails or \
         the provider could no longer log in. Lines the provider does not manage are kept byte for byte; managed rules are kept \
         together, ordered by `position`, in a marked block before the file's first rule.";

pub struct HbaRule;

#[tonic::async_trait]
impl Resource for HbaRule {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_hba_rule";

    const DESCRIPTION: &'static str = DESCRIPTION;

    const IMPORT_ID: Option<&'static str> = Some("<node> <type> <databases> <users> [<address>]");

    fn validate(&self, config: &HbaPlan) -> Diagnostics {
        // Attributes that do not shape the rule may still be unknown here
        // (`node = each.key` during validation); the others are checked
        // once they are known.
        let mut shape = config.clone();
        if shape.node.is_unknown() {
            shape.node = Planned::Null;
        }
        if shape.position.is_unknown() {
            shape.position = Planned::Null;
        }
        match shape.known() {
            Some(m) => m.rule().err().unwrap_or_default(),
            None => Diagnostics::new(),
        }
    }

    fn refine_replace(&self, prior: &Model, planned: &HbaPlan, replace: &mut Vec<AttrPath>) {
        // `10.0.0.1`, `10.0.0.1/32` and `10.0.0.1` + `255.255.255.255` are
        // one rule: changing the spelling rewrites nothing on the node.
        let prior = prior.rule().ok().map(|r| r.key());
        let planned = planned.known().and_then(|m| m.rule().ok()).map(|r| r.key());
        if prior.is_some() && prior == planned {
            replace.retain(|p| *p != AttrPath::attr(ADDRESS) && *p != AttrPath::attr(NETMASK));
        }
    }

    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        // The rule must be known to check anything against the node (else
        // apply checks again).
        let Some(m) = plan.planned.known() else {
            return Ok(());
        };
        let rule = m.rule()?;
        let node = ctx.node(&m.node, NODE).await?;
        // One read of the file serves the lockout check and the duplicate check.
        let position = m.position;
        let to_check = rule.clone();
        let creating = plan.prior.is_none();
        let snap = node
            .hba_preview(move |f| {
                if creating {
                    f.add(&to_check, position)
                } else {
                    f.upsert(&to_check, position)
                }
            })
            .await?;
        node.hba_plan_note(&rule, position);
        if let Some(map) = missing_map(&node, &rule).await? {
            plan.warnings.push_warning(
                Some(AttrPath::attr(OPTIONS).key("map")),
                "No such map in pg_ident.conf yet",
                format!(
                    "Node {:?} has no mapping of map {map:?} in pg_ident.conf now. Apply refuses the rule unless the map \
                     exists by then: refer to the `timescaledb_ident_mapping` that makes it (`map = \
                     timescaledb_ident_mapping.<name>.map`), so that it is made first.",
                    m.node
                ),
            );
        }
        if rule.conn_type == "hostssl" && node.setting("ssl").await?.as_deref() != Some("on") {
            plan.warnings.push_warning(
                Some(AttrPath::attr(TYPE)),
                "hostssl rule on a node without TLS",
                format!(
                    "Node {:?} has `ssl` off, so this rule matches no connection yet. It is written all the same and is in \
                     force as soon as the node serves TLS (for example once a `timescaledb_node_certificate` of kind `server` \
                     with `configure_ssl` is applied).",
                    m.node
                ),
            );
        }
        if plan.prior.is_none() {
            if let Some(found) = snap.find(&rule.key()) {
                match found.position {
                    // Exactly this rule, made by an apply that was cut off
                    // before Terraform could record it: adopted.
                    Some(p) if p == m.position && found.rule == rule => plan.warnings.push_warning(
                        None,
                        "Identical managed rule will be adopted",
                        format!(
                            "{} on node {:?} already has this exact rule in its managed block (line {}), most likely from an apply that was interrupted; applying records it in the state.",
                            snap.path, m.node, found.line_index + 1
                        ),
                    ),
                    Some(_) => {
                        return Err(Diagnostics::attr_error(
                            AttrPath::attr(ADDRESS),
                            "Rule already managed",
                            format!(
                                "{} on node {:?} already has a managed rule for `{}` (line {}). Another resource manages it, or it was left by an earlier apply: import it with `terraform import <address> '{}'`.",
                                snap.path, m.node, rule.key(), found.line_index + 1, m.id(&rule)
                            ),
                        ))
                    }
                    None => plan.warnings.push_warning(
                        None,
                        "An unmanaged line has the same match fields",
                        format!(
                            "{} on node {:?} already has `{}` at line {}, outside the managed block. The new rule goes into the managed block, \
                             which comes first, so the new rule is the one in force; that line is left exactly as it is and is in force again \
                             if this resource is destroyed. To manage that line itself instead, import it with ID '{}'.",
                            snap.path, m.node, found.text.trim(), found.line_index + 1, m.id(&rule)
                        ),
                    ),
                }
            }
        }
        Ok(())
    }

    async fn check_destroy(&self, ctx: &Ctx, m: &Model) -> Result<(), Diagnostics> {
        let key = m.rule()?.key();
        let node = ctx.node(&m.node, NODE).await?;
        let removing = key.clone();
        node.hba_preview_after_planned(move |f| {
            f.remove(&removing);
        })
        .await?;
        node.hba_plan_removal(&key);
        Ok(())
    }

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let prior = prior.value;
        let rule = prior.rule()?;
        let node = ctx.node(&prior.node, NODE).await?;
        let snap = node.hba_read().await?;
        let Some(found) = snap.find(&rule.key()) else {
            return Ok(None);
        };
        let mut now = prior.clone();
        now.method = found.rule.method.clone();
        // Kept null when the state has it null and the node has none.
        now.options = match (&prior.options, &found.rule.options) {
            (None, o) if o.is_empty() => None,
            (_, o) => Some(o.clone()),
        };
        now.comment = match (&prior.comment, &found.rule.comment) {
            (Some(s), None) if s.is_empty() => Some(String::new()),
            (_, c) => c.clone(),
        };
        now.position = found.position.unwrap_or(prior.position);
        if sorted(&found.rule.databases) != sorted(&prior.databases) {
            now.databases = found.rule.databases.clone();
        }
        if sorted(&found.rule.users) != sorted(&prior.users) {
            now.users = found.rule.users.clone();
        }
        Ok(Some(now.located(&found.rule, &found.text).into()))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        Ok(write(ctx, planned, true).await?.into())
    }

    async fn update(&self, ctx: &Ctx, _prior: State<Model>, planned: Model) -> Applied<Model> {
        Ok(write(ctx, planned, false).await?.into())
    }

    async fn delete(&self, ctx: &Ctx, m: Model) -> Deleted {
        ctx.check_cancelled()?;
        let key = m.rule()?.key();
        let node = ctx.node(&m.node, NODE).await?;
        node.hba_edit(move |f| {
            f.remove(&key);
            Ok(())
        })
        .await?;
        Ok(Diagnostics::new())
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        let bad = |why: String| {
            Diagnostics::error(
                "Invalid import ID",
                format!(
                    "{why}. The ID is the node name followed by the rule's first fields as written in pg_hba.conf, \
                     for example `dn1 host all all 192.0.2.20/32` or `access local all postgres`."
                ),
            )
        };
        let id = id.trim();
        let (node_name, rest) = id
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(format!("{id:?} has no rule fields")))?;
        let key_rule = Rule::parse_key_fields(rest).map_err(bad)?;
        let node = ctx.provider.node(node_name).await?;
        let snap = node.hba_read().await?;
        let found = snap.find(&key_rule.key()).ok_or_else(|| {
            Diagnostics::error(
                "Rule not found",
                format!(
                    "{} on node {node_name:?} has no rule for `{}`.",
                    snap.path,
                    key_rule.key()
                ),
            )
        })?;
        let r = &found.rule;
        // Keep the address as the ID spells it, so that an ID written like
        // the configuration (`10.0.0.1` or `10.0.0.0 255.0.0.0`) plans clean.
        let (address, netmask) = id_address(rest, r);
        let m = Model {
            node: node_name.to_string(),
            conn_type: r.conn_type.clone(),
            databases: r.databases.clone(),
            users: r.users.clone(),
            address,
            netmask,
            method: r.method.clone(),
            options: (!r.options.is_empty()).then(|| r.options.clone()),
            position: found.position.unwrap_or(DEFAULT_POSITION),
            comment: r.comment.clone(),
            id: None,
            line: None,
        };
        Ok(m.located(r, &found.text))
    }
}

/// Writes the rule (refusing, on create, a managed rule of the same match
/// fields that is not this one); returns the state with the line written.
async fn write(ctx: &Ctx, m: Model, creating: bool) -> Result<Model, Diagnostics> {
    ctx.check_cancelled()?;
    let rule = m.rule()?;
    let node = ctx.node(&m.node, NODE).await?;
    if let Some(map) = missing_map(&node, &rule).await? {
        return Err(Diagnostics::attr_error(
            AttrPath::attr(OPTIONS).key("map"),
            "No such map in pg_ident.conf",
            format!(
                "Node {:?} has no mapping of map {map:?} in pg_ident.conf, so the rule would let no one in. Nothing was \
                 written. Make the map first (`timescaledb_ident_mapping`, referred to from the rule's `map`).",
                m.node
            ),
        ));
    }
    let (to_write, position, id) = (rule.clone(), m.position, m.id(&rule));
    let snap = node
            .hba_edit(move |f: &mut HbaFile| {
                if creating {
                    let identical = |x: &crate::hba::Found| x.position == Some(position) && x.rule == to_write;
                    if let Some(found) = f
                        .find(&to_write.key())
                        .filter(|x| x.position.is_some() && !identical(x))
                    {
                        return Err(format!(
                            "a managed rule for `{}` already exists (line {}); import it with ID '{id}' instead of creating it again",
                            to_write.key(),
                            found.line_index + 1
                        ));
                    }
                }
                if creating {
                    f.add(&to_write, position);
                } else {
                    f.upsert(&to_write, position);
                }
                Ok(())
            })
            .await?;
    let found = snap.find(&rule.key()).ok_or_else(|| {
        Diagnostics::error(
            "Rule missing after write",
            format!(
                "The rule for `{}` was written to {} but is not there when read back.",
                rule.key(),
                snap.path
            ),
        )
    })?;
    Ok(m.located(&rule, &found.text))
}

/// The address (and netmask) as written at the end of an import ID.
fn id_address(fields: &str, rule: &Rule) -> (Option<String>, Option<String>) {
    if rule.address.is_none() {
        return (None, None);
    }
    let records = crate::hba::reader::records(fields.as_bytes());
    let tokens: Vec<&str> = records
        .first()
        .map(|r| {
            r.fields
                .iter()
                .filter_map(|f| f.first())
                .map(|t| t.text.as_str())
                .collect()
        })
        .unwrap_or_default();
    let is_ip = |t: &str| t.parse::<std::net::IpAddr>().is_ok();
    match tokens.as_slice() {
        [.., addr, mask] if tokens.len() >= 5 && is_ip(addr) && is_ip(mask) => {
            (Some(addr.to_string()), Some(mask.to_string()))
        }
        [.., addr] if tokens.len() >= 4 => (Some(addr.to_string()), None),
        _ => (rule.address.clone(), None),
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

impl Model {
    /// The record this model stands for, checked, with diagnostics on the
    /// attribute at fault.
    fn rule(&self) -> Result<Rule, Diagnostics> {
        let address = match &self.address {
            Some(a) => Some(
                check_address(a, self.netmask.as_deref()).map_err(|(fault, m)| {
                    let path = match fault {
                        AddressFault::Netmask => NETMASK,
                        AddressFault::Address => ADDRESS,
                    };
                    Diagnostics::attr_error(AttrPath::attr(path), "Invalid address", m)
                })?,
            ),
            None if self.netmask.is_some() => {
                return Err(Diagnostics::attr_error(
                    AttrPath::attr(NETMASK),
                    "Netmask without address",
                    "`netmask` needs an IP `address`.",
                ))
            }
            None => None,
        };
        if let Some(c) = &self.comment {
            if c.starts_with('(') {
                return Err(Diagnostics::attr_error(AttrPath::attr(COMMENT), "Invalid comment", "A comment cannot start with `(`: the provider keeps the rule's position there."));
            }
        }
        let rule = Rule {
            conn_type: self.conn_type.clone(),
            databases: self.databases.clone(),
            users: self.users.clone(),
            address,
            method: self.method.clone(),
            options: self.options.clone().unwrap_or_default(),
            comment: self.comment.clone().filter(|c| !c.is_empty()),
        };
        rule.check_field().map_err(|(field, m)| {
            let path = match field {
                Field::Type => AttrPath::attr(TYPE),
                Field::Databases => AttrPath::attr(DATABASES),
                Field::Users => AttrPath::attr(USERS),
                Field::Address => AttrPath::attr(ADDRESS),
                Field::Method => AttrPath::attr(METHOD),
                Field::Option(k) => AttrPath::attr(OPTIONS).key(&k),
                Field::Comment => AttrPath::attr(COMMENT),
            };
            Diagnostics::attr_error(path, "Invalid pg_hba.conf rule", m)
        })?;
        Ok(rule)
    }

    fn id(&self, rule: &Rule) -> String {
        format!("{} {}", self.node, rule.render_key_fields())
    }

    /// The model with the computed attributes of `rule`, found as `line`.
    fn located(mut self, rule: &Rule, line: &str) -> Model {
        self.id = Some(self.id(rule));
        self.line = Some(shown_line(rule, line));
        self
    }
}

/// The `map` a rule names, when the node's pg_ident.conf has no mapping of
/// that map.
async fn missing_map(node: &crate::node::Node, rule: &Rule) -> Result<Option<String>, Diagnostics> {
    let Some(map) = rule.options.get("map") else {
        return Ok(None);
    };
    let snap = node.ident_read().await?;
    Ok((!snap.file.has_map(map)).then(|| map.clone()))
}

/// Options whose values are secrets (a bind password, RADIUS shared
/// secrets): never shown in `line`.
const SECRET_OPTIONS: &[&str] = &["ldapbindpasswd", "radiussecrets"];

/// `line` as the state shows it: as in the file, or, when the rule holds a
/// secret option, rendered with that option's value hidden.
fn shown_line(rule: &Rule, line: &str) -> String {
    if !SECRET_OPTIONS.iter().any(|k| rule.options.contains_key(*k)) {
        return line.to_string();
    }
    let mut shown = rule.clone();
    for k in SECRET_OPTIONS {
        if let Some(v) = shown.options.get_mut(*k) {
            *v = "(sensitive)".into();
        }
    }
    shown.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model as _;

    use crate::schema::object;

    #[test]
    fn secret_options_are_never_shown_in_the_line() {
        let line = "host all all 10.0.0.0/8 ldap ldapserver=ldap.example ldapbinddn=cn=x ldapbindpasswd=\"hunter 2\"";
        let rule = crate::hba::HbaFile::parse(line).rules()[0].rule.clone();
        let shown = shown_line(&rule, line);
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(
            shown.contains("ldapbindpasswd") && shown.contains("ldapserver=ldap.example"),
            "{shown}"
        );
        let plain = "host all all 10.0.0.0/8 scram-sha-256";
        assert_eq!(
            shown_line(&crate::hba::HbaFile::parse(plain).rules()[0].rule, plain),
            plain
        );
    }

    fn config(pairs: &[(&'static str, Value)]) -> Value {
        let mut v = object(Model::attributes().iter().map(|a| (a.name, Value::Null)));
        for (k, x) in pairs {
            v.set_attr(k, x.clone());
        }
        v
    }

    fn base() -> Vec<(&'static str, Value)> {
        vec![
            (TYPE, Value::string("host")),
            (DATABASES, Value::list_of_strings(["all"])),
            (USERS, Value::list_of_strings(["all"])),
            (ADDRESS, Value::string("192.0.2.20")),
            (METHOD, Value::string("scram-sha-256")),
        ]
    }

    fn error_paths(d: &Diagnostics) -> Vec<String> {
        d.0.iter()
            .map(|x| x.path.clone().map(|p| p.to_string()).unwrap_or_default())
            .collect()
    }

    #[test]
    fn valid_config_passes_and_ids_are_the_match_fields() {
        let v = config(&base());
        assert!(crate::resources::DynResource::validate(&HbaRule, &v).is_empty());
        let m = Model::from_value(&v).unwrap();
        assert_eq!(
            m.id(&m.rule().unwrap()),
            "access host all all 192.0.2.20/32"
        );
    }

    /// The paths of the errors validation finds in a configuration.
    fn validate_paths(c: &[(&'static str, Value)]) -> Vec<String> {
        error_paths(&crate::resources::DynResource::validate(
            &HbaRule,
            &config(c),
        ))
    }

    #[test]
    fn errors_point_at_the_attribute() {
        let mut c = base();
        c.push((OPTIONS, Value::map_of_strings([("clientcert", "1")])));
        c[0] = (TYPE, Value::string("hostssl"));
        assert_eq!(validate_paths(&c), ["options[\"clientcert\"]"]);

        let mut c = base();
        c[3] = (ADDRESS, Value::string("192.0.2.20/24"));
        assert_eq!(validate_paths(&c), ["address"]);

        let mut c = base();
        c[0] = (TYPE, Value::string("local"));
        assert_eq!(validate_paths(&c), ["address"]);

        let mut c = base();
        c[4] = (METHOD, Value::string("cert"));
        assert_eq!(validate_paths(&c), ["method"]);

        let mut c = base();
        c.push((COMMENT, Value::string("(oops")));
        assert_eq!(validate_paths(&c), ["comment"]);
    }

    #[test]
    fn unknown_values_defer_validation() {
        let mut c = base();
        c[3] = (ADDRESS, Value::Unknown);
        assert!(crate::resources::DynResource::validate(&HbaRule, &config(&c)).is_empty());
        let mut c = base();
        c.push((NODE, Value::Unknown));
        c.push((POSITION, Value::Unknown));
        assert!(crate::resources::DynResource::validate(&HbaRule, &config(&c)).is_empty());
        c[4] = (METHOD, Value::string("cert"));
        assert!(
            !crate::resources::DynResource::validate(&HbaRule, &config(&c)).is_empty(),
            "known fields are still checked"
        );
    }
}
