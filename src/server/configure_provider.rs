//! ConfigureProvider: decode the provider block and set up the nodes.
//! Connections are opened lazily, on first use, so configuring never fails
//! because a node is down; the operation that needs the node says so.

use std::sync::Arc;

use tonic::Status;

use super::{convert, Configured, ProviderServer};
use crate::log;
use crate::proto::tfplugin6 as pb;
use crate::provider::{Provider, ProviderConfig};

pub(super) fn handle(
    server: &ProviderServer,
    req: pb::configure_provider::Request,
) -> Result<pb::configure_provider::Response, Status> {
    let schema = &server.provider_schema;
    let config = match convert::from_dynamic(req.config.as_ref(), &schema.ty()) {
        Ok(c) => c,
        Err(d) => {
            return Ok(pb::configure_provider::Response {
                diagnostics: convert::diagnostics(d),
            })
        }
    };
    if !config.is_wholly_known() {
        log::info(
            "provider configuration not known until apply; node access deferred",
            &[],
        );
        server.set_configured(Configured::Unknown);
        return Ok(pb::configure_provider::Response {
            diagnostics: Vec::new(),
        });
    }
    match ProviderConfig::from_value(&config) {
        Ok(c) => {
            log::info(
                "provider configured",
                &[
                    ("terraform_version", &req.terraform_version),
                    ("access_node", &c.access.address()),
                    ("user", &c.access.user),
                ],
            );
            server.set_configured(Configured::Yes(Arc::new(Provider::new(c))));
            Ok(pb::configure_provider::Response {
                diagnostics: Vec::new(),
            })
        }
        Err(d) => Ok(pb::configure_provider::Response {
            diagnostics: convert::diagnostics(d),
        }),
    }
}
