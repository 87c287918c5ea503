//! ValidateProviderConfig: allowed values and settings, before any node is contacted.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::proto::tfplugin6 as pb;
use crate::provider::ProviderConfig;

pub(super) fn handle(
    server: &ProviderServer,
    req: pb::validate_provider_config::Request,
) -> Result<pb::validate_provider_config::Response, Status> {
    let schema = &server.provider_schema;
    let diags = match convert::from_dynamic(req.config.as_ref(), &schema.ty()) {
        Ok(config) => {
            let mut d = schema.validate(&config);
            if !d.has_errors() && config.is_wholly_known() {
                if let Err(e) = ProviderConfig::from_value(&config) {
                    d.extend(e);
                }
            }
            d
        }
        Err(d) => d,
    };
    Ok(pb::validate_provider_config::Response {
        diagnostics: convert::diagnostics(diags),
    })
}
