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
use crate::schema::{Mode, Schema};
use crate::value::Value;

/// Applies the schema's planning rules. Returns the planned state and the
/// paths whose change forces replacement.
pub fn plan_by_schema(
    schema: &Schema,
    prior: &Value,
    proposed: &Value,
    config: &Value,
) -> (Value, Vec<AttrPath>) {
    let mut planned = proposed.clone();
    for a in &schema.attributes {
        if let Some(d) = &a.default {
            if config.attr(a.name).is_null() {
                planned.set_attr(a.name, d.clone());
            }
        }
    }
    let mut replace = Vec::new();
    if prior.is_null() {
        for a in &schema.attributes {
            if a.computed() && a.default.is_none() && config.attr(a.name).is_null() {
                planned.set_attr(a.name, Value::Unknown);
            }
        }
        return (planned, replace);
    }
    let mut changed = false;
    for a in schema
        .attributes
        .iter()
        .filter(|a| a.mode != Mode::Computed)
    {
        if planned.attr(a.name) != prior.attr(a.name) {
            changed = true;
            if a.force_new {
                replace.push(AttrPath::attr(a.name));
            }
        }
    }
    if changed {
        for a in schema
            .attributes
            .iter()
            .filter(|a| a.mode == Mode::Computed)
        {
            if !(a.stable && replace.is_empty()) {
                planned.set_attr(a.name, Value::Unknown);
            }
        }
    }
    (planned, replace)
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
        match &ctx {
            Some(c) => {
                ProviderServer::cancellable(
                    c,
                    modifier.complete_plan(Some(c), &config, &mut planned),
                )
                .await?
            }
            None => modifier.complete_plan(None, &config, &mut planned).await?,
        }
        must_replace(modifier, schema, &prior, &mut planned, &mut replace);
        let warnings = match &ctx {
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

    #[test]
    fn unknown_config_values_stay_unknown() {
        let config = v("a", "trust", Value::Null, Value::Null, Value::Null);
        let mut proposed = config.clone();
        proposed.set_attr("method", Value::Unknown);
        let (planned, _) = plan_by_schema(&schema(), &Value::Null, &proposed, &config);
        assert_eq!(planned.attr("method"), &Value::Unknown);
    }
}
