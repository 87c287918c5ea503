//! GetMetadata: capabilities and type names without building schemas.

use tonic::Status;

use super::ProviderServer;
use crate::proto::tfplugin6 as pb;

pub(super) fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: true,
        move_resource_state: true,
    }
}

pub(super) fn handle(
    server: &ProviderServer,
    _: pb::get_metadata::Request,
) -> Result<pb::get_metadata::Response, Status> {
    Ok(pb::get_metadata::Response {
        server_capabilities: Some(capabilities()),
        diagnostics: Vec::new(),
        data_sources: server
            .data_sources
            .keys()
            .map(|n| pb::get_metadata::DataSourceMetadata {
                type_name: n.to_string(),
            })
            .collect(),
        resources: server
            .resources
            .keys()
            .map(|n| pb::get_metadata::ResourceMetadata {
                type_name: n.to_string(),
            })
            .collect(),
        functions: Vec::new(),
        ephemeral_resources: server
            .ephemerals
            .keys()
            .map(|n| pb::get_metadata::EphemeralMetadata {
                type_name: n.to_string(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_type_and_advertises_plan_destroy() {
        let server = ProviderServer::new();
        let r = handle(&server, pb::get_metadata::Request {}).unwrap();
        let caps = r.server_capabilities.unwrap();
        assert!(caps.plan_destroy && caps.get_provider_schema_optional);
        assert!(r
            .resources
            .iter()
            .any(|x| x.type_name == "timescaledb_hba_rule"));
        assert!(r
            .data_sources
            .iter()
            .any(|x| x.type_name == "timescaledb_data_nodes"));
    }
}
