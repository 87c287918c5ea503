//! ReadResource: refresh state from the nodes; drift shows up here.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::proto::tfplugin6 as pb;
use crate::resources::State;
use crate::value::Value;

pub(super) async fn handle(
    server: &ProviderServer,
    req: pb::read_resource::Request,
) -> Result<pb::read_resource::Response, Status> {
    let res = server.resource(&req.type_name)?.clone();
    let shape = server.shape(&req.type_name)?;
    let ty = &shape.ty;
    let deferral_allowed = req
        .client_capabilities
        .as_ref()
        .is_some_and(|c| c.deferral_allowed);
    let result = async {
        let state = convert::from_dynamic(req.current_state.as_ref(), ty)?;
        if state.is_null() {
            return Ok((Value::Null, None, None));
        }
        let Some(ctx) = server.ctx()? else {
            // The provider block is not known yet: keep the state as it is
            // (or let a newer Terraform defer the resource).
            let deferred = deferral_allowed.then_some(pb::Deferred {
                reason: pb::deferred::Reason::ProviderConfigUnknown as i32,
            });
            return Ok((state, deferred, None));
        };
        let prior = State {
            value: state,
            private: req.private.clone(),
        };
        let now = ProviderServer::cancellable(&ctx, res.read(&ctx, &prior)).await?;
        Ok(match now {
            Some(s) => (s.value, None, Some(s.private)),
            None => (Value::Null, None, None),
        })
    }
    .await;
    Ok(
        match result.and_then(|(v, deferred, private)| {
            Ok((
                convert::to_dynamic(&shape.schema.without_write_only(&v), ty)?,
                deferred,
                private,
            ))
        }) {
            Ok((dv, deferred, private)) => pb::read_resource::Response {
                new_state: Some(dv),
                diagnostics: Vec::new(),
                private: private.unwrap_or(req.private),
                deferred,
                new_identity: None,
            },
            Err(d) => pb::read_resource::Response {
                // Keep the state Terraform has: a failed read is not a deletion.
                new_state: req.current_state,
                diagnostics: convert::diagnostics(d),
                private: req.private,
                deferred: None,
                new_identity: None,
            },
        },
    )
}
