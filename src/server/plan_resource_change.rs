//! PlanResourceChange: Terraform's planning rules, then the resource's
//! checks against the live node.
//!
//! The rules, applied from the schema for every resource:
//! - planned values of configurable attributes are the configuration's,
//!   except that defaults fill optional attributes left out;
//! - computed attributes are unknown on create, and on update only when
//!   something configurable changes (attributes marked stable keep their
//!   value through an in-place update);
//! - a change to a `force_new` attribute is reported in `requires_replace`.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::{AttrPath, Diagnostics};
use crate::proto::tfplugin6 as pb;
use crate::resources::{Ctx, DynResource, PlanRequest};
use crate::schema::{Attribute, Mode, Schema};
use crate::value::Value;

/// Applies the schema's planning rules, to the top-level attributes and
/// to those of every block alike. Returns the planned state and the paths
/// whose change forces replacement.
pub fn plan_by_schema(
    schema: &Schema,
    prior: &Value,
    proposed: &Value,
    config: &Value,
) -> (Value, Vec<AttrPath>) {
    let mut planned = proposed.clone();
    let mut replace = Vec::new();
    let mut levels: Vec<(&[Attribute], Option<&str>)> = vec![(&schema.attributes, None)];
    levels.extend(
        schema
            .blocks
            .iter()
            .map(|b| (b.attributes.as_slice(), Some(b.name))),
    );
    // Defaults and replacements first, everywhere: whether anything
    // changed decides what becomes unknown.
    let mut changed = false;
    for (attrs, block) in &levels {
        let Some(mut level) = Level::of(*block, prior, &mut planned, config) else {
            continue;
        };
        changed |= level.defaults_and_changes(attrs, &mut replace);
    }
    for (attrs, block) in &levels {
        if let Some(level) = Level::of(*block, prior, &mut planned, config) {
            level.unknown_computed(attrs, changed, replace.is_empty());
        }
    }
    (planned, replace)
}

/// One object the rules apply to: the resource itself or one of its blocks
/// (when the configuration has it).
struct Level<'a> {
    path: AttrPath,
    prior: &'a Value,
    planned: &'a mut Value,
    config: &'a Value,
}

impl<'a> Level<'a> {
    fn of(
        block: Option<&str>,
        prior: &'a Value,
        planned: &'a mut Value,
        config: &'a Value,
    ) -> Option<Level<'a>> {
        let Some(name) = block else {
            return Some(Level {
                path: AttrPath::default(),
                prior,
                planned,
                config,
            });
        };
        let inner = planned.attr_mut(name)?;
        inner.is_wholly_known().then_some(())?;
        Some(Level {
            path: AttrPath::attr(name),
            prior: prior.attr(name),
            planned: inner,
            config: config.attr(name),
        })
    }

    fn at(&self, name: &str) -> AttrPath {
        self.path.clone().then_attr(name)
    }

    /// Fills defaults the configuration leaves out; says whether anything
    /// configurable changed from the prior state, adding the paths whose
    /// change forces replacement.
    fn defaults_and_changes(&mut self, attrs: &[Attribute], replace: &mut Vec<AttrPath>) -> bool {
        for a in attrs {
            if let Some(d) = &a.default {
                if self.config.attr(a.name).is_null() {
                    self.planned.set_attr(a.name, d.clone());
                }
            }
        }
        if self.prior.is_null() {
            return false;
        }
        let mut changed = false;
        for a in attrs.iter().filter(|a| a.mode != Mode::Computed) {
            if self.planned.attr(a.name) != self.prior.attr(a.name) {
                changed = true;
                if a.force_new {
                    replace.push(self.at(a.name));
                }
            }
        }
        changed
    }

    /// Computed attributes are unknown on create, and on update when
    /// something configurable changed (attributes marked stable keep their
    /// value through an in-place update).
    fn unknown_computed(self, attrs: &[Attribute], changed: bool, in_place: bool) {
        for a in attrs {
            let creating = self.prior.is_null() && a.computed() && a.default.is_none();
            let updating = !self.prior.is_null()
                && changed
                && a.mode == Mode::Computed
                && !(a.stable && in_place);
            if creating && self.config.attr(a.name).is_null() || updating {
                self.planned.set_attr(a.name, Value::Unknown);
            }
        }
    }
}

pub(super) async fn handle(
    server: &ProviderServer,
    req: pb::plan_resource_change::Request,
) -> Result<pb::plan_resource_change::Response, Status> {
    let res = server.resource(&req.type_name)?.clone();
    let shape = server.shape(&req.type_name)?;
    let (schema, ty) = (&shape.schema, &shape.ty);
    let result = async {
        let prior = convert::from_dynamic(req.prior_state.as_ref(), ty)?;
        let proposed = convert::from_dynamic(req.proposed_new_state.as_ref(), ty)?;
        let config = convert::from_dynamic(req.config.as_ref(), ty)?;
        let ctx = server.ctx()?;
        let modifier: &dyn DynResource = &*res;
        if proposed.is_null() {
            if let (Some(ctx), false) = (&ctx, prior.is_null()) {
                ProviderServer::cancellable(ctx, modifier.check_destroy(ctx, &prior)).await?;
            }
            return Ok((Value::Null, Vec::new(), Diagnostics::new()));
        }
        // Write-only values take no part in Terraform's rules (they are in
        // no plan or state); the resource's checks see them.
        let proposed = schema.without_write_only(&proposed);
        let (planned, mut replace) = plan_by_schema(
            schema,
            &prior,
            &proposed,
            &schema.without_write_only(&config),
        );
        let mut planned = schema.with_write_only(&planned, &config);
        refine_replace(modifier, schema, &prior, &mut planned, &mut replace);
        let mut warnings = match &ctx {
            Some(c) => {
                ProviderServer::cancellable(
                    c,
                    modifier.complete_plan(Some(c), &config, &mut planned),
                )
                .await?
            }
            None => modifier.complete_plan(None, &config, &mut planned).await?,
        };
        must_replace(modifier, schema, &prior, &mut planned, &mut replace);
        let checked = match &ctx {
            Some(ctx) => {
                check_against_nodes(
                    ctx,
                    modifier,
                    schema,
                    &prior,
                    &config,
                    &mut planned,
                    &replace,
                )
                .await?
            }
            None => Diagnostics::new(),
        };
        warnings.extend(checked);
        Ok((schema.without_write_only(&planned), replace, warnings))
    }
    .await;
    Ok(
        match result.and_then(|(v, r, w)| Ok((convert::to_dynamic(&v, ty)?, r, w))) {
            Ok((dv, replace, warnings)) => pb::plan_resource_change::Response {
                planned_state: Some(dv),
                requires_replace: replace.iter().map(convert::path_to_proto).collect(),
                planned_private: req.prior_private,
                diagnostics: convert::diagnostics(warnings),
                ..Default::default()
            },
            Err(d) => pb::plan_resource_change::Response {
                diagnostics: convert::diagnostics(d),
                ..Default::default()
            },
        },
    )
}

/// Lets the resource ask for a replacement although nothing configurable
/// changed; everything computed is then new.
fn must_replace(
    res: &dyn DynResource,
    schema: &Schema,
    prior: &Value,
    planned: &mut Value,
    replace: &mut Vec<AttrPath>,
) {
    if prior.is_null() {
        return;
    }
    if let Some(path) = res.must_replace(prior, planned) {
        replace.push(path);
        for a in schema
            .attributes
            .iter()
            .filter(|a| a.mode == Mode::Computed)
        {
            planned.set_attr(a.name, Value::Unknown);
        }
    }
}

/// Lets the resource narrow a replacement to an in-place update; computed
/// values that survive one are then known again.
fn refine_replace(
    res: &dyn DynResource,
    schema: &Schema,
    prior: &Value,
    planned: &mut Value,
    replace: &mut Vec<AttrPath>,
) {
    if replace.is_empty() {
        return;
    }
    res.refine_replace(prior, planned, replace);
    if replace.is_empty() {
        for a in schema.attributes.iter().filter(|a| a.stable) {
            planned.set_attr(a.name, prior.attr(a.name).clone());
        }
    }
}

/// The resource's checks of a create or update against the live nodes
/// (not run when nothing changes); returns the warnings to show.
async fn check_against_nodes(
    ctx: &Ctx,
    res: &dyn DynResource,
    schema: &Schema,
    prior: &Value,
    config: &Value,
    planned: &mut Value,
    replace: &[AttrPath],
) -> Result<Diagnostics, Diagnostics> {
    if !prior.is_null() && schema.without_write_only(planned) == *prior {
        return Ok(Diagnostics::new());
    }
    let req = PlanRequest {
        prior,
        replacing: !prior.is_null() && !replace.is_empty(),
        config,
        planned,
    };
    ProviderServer::cancellable(ctx, res.check_plan(ctx, req)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{object, Attribute};
    use crate::value::Type;

    fn schema() -> Schema {
        Schema::new(
            "test",
            vec![
                Attribute::new("name", Type::String, Mode::Required, "Name.").force_new(),
                Attribute::new("method", Type::String, Mode::Required, "Method."),
                Attribute::new("position", Type::Number, Mode::Optional, "Position.")
                    .default(Value::int(100)),
                Attribute::new("id", Type::String, Mode::Computed, "Id.").stable(),
                Attribute::new("line", Type::String, Mode::Computed, "Line."),
            ],
        )
    }

    fn v(name: &str, method: &str, position: Value, id: Value, line: Value) -> Value {
        object([
            ("name", Value::string(name)),
            ("method", Value::string(method)),
            ("position", position),
            ("id", id),
            ("line", line),
        ])
    }

    /// A state as stored after apply: position 100, id and line known.
    fn stored(name: &str, method: &str) -> Value {
        v(
            name,
            method,
            Value::int(100),
            Value::string("id"),
            Value::string("line"),
        )
    }

    #[test]
    fn create_fills_defaults_and_leaves_computed_unknown() {
        let config = v("a", "trust", Value::Null, Value::Null, Value::Null);
        let (planned, replace) = plan_by_schema(&schema(), &Value::Null, &config, &config);
        assert_eq!(
            planned,
            v(
                "a",
                "trust",
                Value::int(100),
                Value::Unknown,
                Value::Unknown
            )
        );
        assert!(replace.is_empty());
    }

    #[test]
    fn no_change_keeps_every_computed_value() {
        let prior = stored("a", "trust");
        let config = v("a", "trust", Value::Null, Value::Null, Value::Null);
        let (planned, replace) = plan_by_schema(&schema(), &prior, &prior, &config);
        assert_eq!(planned, prior);
        assert!(replace.is_empty());
    }

    #[test]
    fn update_in_place_keeps_stable_values() {
        let prior = stored("a", "trust");
        let proposed = stored("a", "md5");
        let config = v("a", "md5", Value::Null, Value::Null, Value::Null);
        let (planned, replace) = plan_by_schema(&schema(), &prior, &proposed, &config);
        assert_eq!(
            planned,
            v(
                "a",
                "md5",
                Value::int(100),
                Value::string("id"),
                Value::Unknown
            )
        );
        assert!(replace.is_empty());
    }

    #[test]
    fn force_new_change_requires_replace() {
        let prior = stored("a", "trust");
        let proposed = stored("b", "trust");
        let config = v("b", "trust", Value::Null, Value::Null, Value::Null);
        let (planned, replace) = plan_by_schema(&schema(), &prior, &proposed, &config);
        assert_eq!(replace, vec![AttrPath::attr("name")]);
        assert_eq!(planned.attr("id"), &Value::Unknown);
    }

    /// A block is planned like the resource's own attributes: its defaults
    /// are filled, a change of its `force_new` attribute replaces, and its
    /// computed values follow the same rules.
    #[test]
    fn blocks_are_planned_like_top_level_attributes() {
        let schema = Schema::new(
            "test",
            vec![Attribute::new(
                "name",
                Type::String,
                Mode::Required,
                "Name.",
            )],
        )
        .with_block(crate::schema::Block {
            name: "blk",
            description: "Block.".into(),
            attributes: vec![
                Attribute::new("cert", Type::String, Mode::Required, "Cert.").force_new(),
                Attribute::new("mode", Type::String, Mode::Optional, "Mode.")
                    .default(Value::string("fast")),
                Attribute::new("seen", Type::String, Mode::Computed, "Seen."),
            ],
        });
        let blk = |cert: &str, mode: Value, seen: Value| {
            object([
                ("cert", Value::string(cert)),
                ("mode", mode),
                ("seen", seen),
            ])
        };
        let config = object([
            ("name", Value::string("a")),
            ("blk", blk("c1", Value::Null, Value::Null)),
        ]);
        let (planned, replace) = plan_by_schema(&schema, &Value::Null, &config, &config);
        assert_eq!(
            planned.attr("blk"),
            &blk("c1", Value::string("fast"), Value::Unknown)
        );
        assert!(replace.is_empty());
        let prior = object([
            ("name", Value::string("a")),
            ("blk", blk("c1", Value::string("fast"), Value::string("s"))),
        ]);
        let (planned, replace) = plan_by_schema(&schema, &prior, &prior, &config);
        assert_eq!(planned, prior, "nothing changed");
        assert!(replace.is_empty());
        let config = object([
            ("name", Value::string("a")),
            ("blk", blk("c2", Value::Null, Value::Null)),
        ]);
        let (planned, replace) = plan_by_schema(&schema, &prior, &config, &config);
        assert_eq!(replace, vec![AttrPath::attr("blk").then_attr("cert")]);
        assert_eq!(planned.attr("blk").attr("seen"), &Value::Unknown);
        assert_eq!(planned.attr("blk").attr("mode"), &Value::string("fast"));
    }

    #[test]
    fn unknown_config_values_stay_unknown() {
        let config = v("a", "trust", Value::Null, Value::Null, Value::Null);
        let mut proposed = config.clone();
        proposed.set_attr("method", Value::Unknown);
        let (planned, _) = plan_by_schema(&schema(), &Value::Null, &proposed, &config);
        assert_eq!(planned.attr("method"), &Value::Unknown);
    }
}
