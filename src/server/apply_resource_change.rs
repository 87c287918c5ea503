//! ApplyResourceChange: create, update or delete, then hold the result to
//! the plan (wholly known, equal wherever the plan was known).

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::{AttrPath, Diagnostics};
use crate::proto::tfplugin6 as pb;
use crate::resources::{ApplyError, DynResource, State};
use crate::schema::Schema;
use crate::value::Value;

/// Differences between a new state and the plan it must honour.
pub(super) fn check_against_plan(planned: &Value, new: &Value) -> Diagnostics {
    let mut d = Diagnostics::new();
    if let (Value::Object(p), Value::Object(n)) = (planned, new) {
        for (k, pv) in p {
            let nv = n.get(k).unwrap_or(&Value::Null);
            if !nv.is_wholly_known() {
                d.push_error(
                    Some(AttrPath::attr(k)),
                    "Provider returned an unknown value",
                    format!("`{k}` is still unknown after apply. This is a bug in the provider."),
                );
            } else if pv.is_wholly_known() && pv != nv {
                d.push_error(
                    Some(AttrPath::attr(k)),
                    "Provider produced an inconsistent result",
                    format!("`{k}` was planned as {pv} but is {nv} after apply. This is a bug in the provider."),
                );
            }
        }
    }
    d
}

pub(super) async fn handle(
    server: &ProviderServer,
    req: pb::apply_resource_change::Request,
) -> Result<pb::apply_resource_change::Response, Status> {
    let res = server.resource(&req.type_name)?.clone();
    let shape = server.shape(&req.type_name)?;
    let ty = &shape.ty;
    let schema = &shape.schema;
    let decoded = (|| {
        Ok::<_, Diagnostics>((
            convert::from_dynamic(req.prior_state.as_ref(), ty)?,
            convert::from_dynamic(req.planned_state.as_ref(), ty)?,
            convert::from_dynamic(req.config.as_ref(), ty)?,
        ))
    })();
    let (prior, planned, config) = match decoded {
        Ok(x) => x,
        Err(d) => {
            return Ok(pb::apply_resource_change::Response {
                new_state: req.prior_state,
                diagnostics: convert::diagnostics(d),
                ..Default::default()
            })
        }
    };
    let result = apply(
        server,
        &*res,
        schema,
        &prior,
        &req.planned_private,
        &planned,
        &config,
    )
    .await
    .map_err(|mut e| {
        e.partial = e.partial.map(|s| State {
            value: schema.without_write_only(&s.value),
            private: s.private,
        });
        e
    });
    let result = result.and_then(|(v, private)| Ok((convert::to_dynamic(&v, ty)?, private)));
    Ok(respond(result, ty, req.prior_state, req.planned_private))
}

/// Deletes, creates or updates; the new state (without write-only values)
/// and its private data.
async fn apply(
    server: &ProviderServer,
    res: &dyn DynResource,
    schema: &Schema,
    prior: &Value,
    prior_private: &[u8],
    planned: &Value,
    config: &Value,
) -> Result<(Value, Option<Vec<u8>>), ApplyError> {
    let ctx = server.ctx()?.ok_or_else(|| {
        Diagnostics::error("Provider configuration not known", "The provider block still holds unknown values at apply time. This is a bug in Terraform.")
    })?;
    if planned.is_null() {
        return match ProviderServer::cancellable(&ctx, res.delete(&ctx, prior)).await {
            Ok(()) => Ok((Value::Null, None)),
            // Gone, with warnings to show.
            Err(d) if !d.has_errors() => Err(ApplyError::unfinished(Value::Null.into(), d)),
            Err(d) => Err(d.into()),
        };
    }
    // The resource acts on the plan with the write-only values of the
    // configuration; what it returns is kept without them.
    let acting = schema.with_write_only(planned, config);
    // Cancellation stops waiting, never a change halfway: resources run
    // their writes in tasks of their own.
    let new = if prior.is_null() {
        ProviderServer::cancellable(&ctx, async { Ok(res.create(&ctx, &acting).await) }).await??
    } else {
        let prior = State {
            value: prior.clone(),
            private: prior_private.to_vec(),
        };
        ProviderServer::cancellable(&ctx, async { Ok(res.update(&ctx, &prior, &acting).await) })
            .await??
    };
    let value = schema.without_write_only(&new.value);
    check_against_plan(planned, &value).into_result()?;
    Ok((value, Some(new.private)))
}

/// The response for an apply's outcome: the new state, or what exists after
/// a change that failed part way (the prior state when it failed as a
/// whole), with the diagnostics.
fn respond(
    result: Result<(pb::DynamicValue, Option<Vec<u8>>), ApplyError>,
    ty: &crate::value::Type,
    prior_state: Option<pb::DynamicValue>,
    planned_private: Vec<u8>,
) -> pb::apply_resource_change::Response {
    match result {
        Ok((dv, private)) => pb::apply_resource_change::Response {
            new_state: Some(dv),
            private: private.unwrap_or(planned_private),
            ..Default::default()
        },
        Err(e) if e.is_unfinished() => {
            let state = e
                .partial
                .as_ref()
                .map(|s| convert::to_dynamic(&s.value, ty));
            match state {
                Some(Ok(dv)) => pb::apply_resource_change::Response {
                    new_state: Some(dv),
                    private: e.partial.map(|s| s.private).unwrap_or_default(),
                    diagnostics: convert::diagnostics(e.diags),
                    ..Default::default()
                },
                _ => pb::apply_resource_change::Response {
                    new_state: prior_state,
                    diagnostics: convert::diagnostics(Diagnostics::error(
                        "Internal error",
                        "The state of a partly made object could not be encoded.",
                    )),
                    ..Default::default()
                },
            }
        }
        Err(e) => {
            let partial = e
                .partial
                .as_ref()
                .and_then(|s| convert::to_dynamic(&s.value, ty).ok());
            pb::apply_resource_change::Response {
                new_state: partial.or(prior_state),
                private: planned_private,
                diagnostics: convert::diagnostics(e.diags),
                ..Default::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::object;

    #[test]
    fn results_must_honour_the_plan() {
        let planned = object([("a", Value::string("x")), ("b", Value::Unknown)]);
        assert!(check_against_plan(
            &planned,
            &object([("a", Value::string("x")), ("b", Value::string("y"))])
        )
        .is_empty());
        let d = check_against_plan(
            &planned,
            &object([("a", Value::string("z")), ("b", Value::string("y"))]),
        );
        assert_eq!(d.0[0].path, Some(AttrPath::attr("a")));
        let d = check_against_plan(
            &planned,
            &object([("a", Value::string("x")), ("b", Value::Unknown)]),
        );
        assert_eq!(d.0[0].path, Some(AttrPath::attr("b")));
    }
}
