//! ApplyResourceChange: create, update or delete, then hold the result to
//! the plan (wholly known, equal wherever the plan was known).

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::{AttrPath, Diagnostics};
use crate::proto::tfplugin6 as pb;
use crate::resources::{DynResource, Outcome, State};
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
    let outcome = apply(
        server,
        &*res,
        schema,
        &prior,
        &req.planned_private,
        &planned,
        &config,
    )
    .await;
    Ok(respond(outcome, ty, req.prior_state, req.planned_private))
}

/// Deletes, creates or updates. A new state (without write-only values)
/// is held to the plan; a failure names what exists now, if it differs
/// from the prior state.
async fn apply(
    server: &ProviderServer,
    res: &dyn DynResource,
    schema: &Schema,
    prior: &Value,
    prior_private: &[u8],
    planned: &Value,
    config: &Value,
) -> Outcome {
    let ctx = match server.ctx() {
        Ok(Some(ctx)) => ctx,
        Ok(None) => {
            return Diagnostics::error("Provider configuration not known", "The provider block still holds unknown values at apply time. This is a bug in Terraform.").into()
        }
        Err(d) => return d.into(),
    };
    // Cancellation stops waiting, never a change halfway: resources run
    // their writes in tasks of their own.
    let mut outcome = if planned.is_null() {
        match ProviderServer::cancellable(&ctx, async { Ok(res.delete(&ctx, prior).await) }).await {
            Ok(o) => o,
            Err(d) => d.into(),
        }
    } else {
        // The resource acts on the plan with the write-only values of the
        // configuration; what it returns is kept without them.
        let acting = schema.with_write_only(planned, config);
        let prior = State {
            value: prior.clone(),
            private: prior_private.to_vec(),
        };
        let run = async {
            Ok(if prior.value.is_null() {
                res.create(&ctx, &acting).await
            } else {
                res.update(&ctx, &prior, &acting).await
            })
        };
        match ProviderServer::cancellable(&ctx, run).await {
            Ok(o) => o,
            Err(d) => d.into(),
        }
    };
    if let Some(state) = outcome.state.as_mut() {
        state.value = schema.without_write_only(&state.value);
        if !outcome.diags.has_errors() {
            // A state made without errors must be the plan's.
            outcome
                .diags
                .extend(check_against_plan(planned, &state.value));
        }
    }
    if planned.is_null() && !outcome.diags.has_errors() {
        outcome.state = Some(Value::Null.into());
    }
    outcome
}

/// The response for an outcome, whatever it is (success, success with
/// warnings, a failure that left part of the change made, a failure as a
/// whole): its state (the prior state when there is none), with the
/// diagnostics.
fn respond(
    outcome: Outcome,
    ty: &crate::value::Type,
    prior_state: Option<pb::DynamicValue>,
    planned_private: Vec<u8>,
) -> pb::apply_resource_change::Response {
    let Outcome { state, mut diags } = outcome;
    // A failure keeps the private data Terraform holds: what a change that
    // did not finish would have recorded is not to be trusted.
    let failed = diags.has_errors();
    let encoded = state.map(|s| convert::to_dynamic(&s.value, ty).map(|dv| (dv, s.private)));
    let (new_state, private) = match encoded {
        Some(Ok((dv, _))) if failed => (Some(dv), planned_private),
        Some(Ok((dv, private))) => (Some(dv), private),
        Some(Err(d)) => {
            diags.extend(d);
            (prior_state, planned_private)
        }
        None => (prior_state, planned_private),
    };
    pb::apply_resource_change::Response {
        new_state,
        private,
        diagnostics: convert::diagnostics(diags),
        ..Default::default()
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
