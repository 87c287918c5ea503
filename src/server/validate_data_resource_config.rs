//! ValidateDataResourceConfig: schema-level checks of a data source block.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::proto::tfplugin6 as pb;

pub(super) fn handle(
    server: &ProviderServer,
    req: pb::validate_data_resource_config::Request,
) -> Result<pb::validate_data_resource_config::Response, Status> {
    let schema = server.data_source(&req.type_name)?.schema();
    let diags = match convert::from_dynamic(req.config.as_ref(), &schema.ty()) {
        Ok(config) => schema.validate(&config),
        Err(d) => d,
    };
    Ok(pb::validate_data_resource_config::Response {
        diagnostics: convert::diagnostics(diags),
    })
}
