//! ImportResourceState: adopt an existing object by its ID.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::Diagnostics;
use crate::proto::tfplugin6 as pb;

pub(super) async fn handle(
    server: &ProviderServer,
    req: pb::import_resource_state::Request,
) -> Result<pb::import_resource_state::Response, Status> {
    let res = server.resource(&req.type_name)?.clone();
    let shape = server.shape(&req.type_name)?;
    let ty = &shape.ty;
    let result = async {
        let ctx = server.ctx()?.ok_or_else(|| {
            Diagnostics::error(
                "Provider configuration not known",
                "Import needs a provider block whose values are known.",
            )
        })?;
        let state = ProviderServer::cancellable(&ctx, res.import(&ctx, &req.id)).await?;
        convert::to_dynamic(&shape.schema.without_write_only(&state), ty)
    }
    .await;
    Ok(match result {
        Ok(dv) => pb::import_resource_state::Response {
            imported_resources: vec![pb::import_resource_state::ImportedResource {
                type_name: req.type_name.clone(),
                state: Some(dv),
                private: Vec::new(),
                identity: None,
            }],
            diagnostics: Vec::new(),
            deferred: None,
        },
        Err(d) => pb::import_resource_state::Response {
            imported_resources: Vec::new(),
            diagnostics: convert::diagnostics(d),
            deferred: None,
        },
    })
}
