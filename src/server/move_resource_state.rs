//! MoveResourceState: `moved` blocks between resource types of this provider.
//! Only a move to the same type is meaningful today (for example from an
//! older provider address); other moves are refused with a reason.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::Diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::value::json;

pub(super) fn handle(
    server: &ProviderServer,
    req: pb::move_resource_state::Request,
) -> Result<pb::move_resource_state::Response, Status> {
    let result = (|| {
        if req.source_type_name != req.target_type_name {
            return Err(Diagnostics::error(
                "Unsupported move",
                format!(
                    "A {} cannot become a {}: the two resource types manage different things.",
                    req.source_type_name, req.target_type_name
                ),
            ));
        }
        let schema = server
            .resource(&req.target_type_name)
            .map_err(|s| Diagnostics::error("Unknown resource type", s.message().to_string()))?
            .schema();
        let ty = schema.ty();
        let raw = req.source_state.unwrap_or_default();
        let v = json::decode(&raw.json, &ty, true)
            .map_err(|e| Diagnostics::error("Invalid source state", e.to_string()))?;
        convert::to_dynamic(&v, &ty)
    })();
    Ok(match result {
        Ok(dv) => pb::move_resource_state::Response {
            target_state: Some(dv),
            diagnostics: Vec::new(),
            target_private: req.source_private,
            target_identity: None,
        },
        Err(d) => pb::move_resource_state::Response {
            diagnostics: convert::diagnostics(d),
            ..Default::default()
        },
    })
}
