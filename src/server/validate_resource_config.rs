//! ValidateResourceConfig: schema-level checks plus the resource's own,
//! on a configuration that may hold unknown values.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::proto::tfplugin6 as pb;

pub(super) fn handle(
    server: &ProviderServer,
    req: pb::validate_resource_config::Request,
) -> Result<pb::validate_resource_config::Response, Status> {
    let res = server.resource(&req.type_name)?;
    let shape = server.shape(&req.type_name)?;
    let schema = &shape.schema;
    let diags = match convert::from_dynamic(req.config.as_ref(), &schema.ty()) {
        Ok(config) => {
            let mut d = schema.validate(&config);
            if !d.has_errors() {
                d.extend(res.validate(&config));
            }
            d
        }
        Err(d) => d,
    };
    Ok(pb::validate_resource_config::Response {
        diagnostics: convert::diagnostics(diags),
    })
}
