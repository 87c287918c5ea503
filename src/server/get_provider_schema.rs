//! GetProviderSchema: every schema, with Markdown descriptions.

use tonic::Status;

use super::{convert, get_metadata, ProviderServer};
use crate::proto::tfplugin6 as pb;

pub(super) fn handle(
    server: &ProviderServer,
    _: pb::get_provider_schema::Request,
) -> Result<pb::get_provider_schema::Response, Status> {
    Ok(pb::get_provider_schema::Response {
        provider: Some(convert::schema(&server.provider_schema)),
        resource_schemas: server
            .resources
            .iter()
            .map(|(n, r)| (n.to_string(), convert::schema(&r.schema())))
            .collect(),
        data_source_schemas: server
            .data_sources
            .iter()
            .map(|(n, d)| (n.to_string(), convert::schema(&d.schema())))
            .collect(),
        diagnostics: Vec::new(),
        provider_meta: None,
        server_capabilities: Some(get_metadata::capabilities()),
        functions: Default::default(),
        ephemeral_resource_schemas: server
            .ephemerals
            .iter()
            .map(|(n, e)| (n.to_string(), convert::schema(&e.schema())))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_is_described() {
        let server = ProviderServer::new();
        let r = handle(&server, pb::get_provider_schema::Request {}).unwrap();
        let mut schemas = vec![r.provider.unwrap()];
        schemas.extend(r.resource_schemas.into_values());
        schemas.extend(r.data_source_schemas.into_values());
        schemas.extend(r.ephemeral_resource_schemas.into_values());
        for s in schemas {
            let block = s.block.unwrap();
            assert!(!block.description.is_empty());
            for a in block.attributes.iter().chain(
                block
                    .block_types
                    .iter()
                    .flat_map(|b| b.block.as_ref().unwrap().attributes.iter()),
            ) {
                assert!(
                    a.description.ends_with('.'),
                    "{} needs a full-sentence description",
                    a.name
                );
                assert!(
                    a.required || a.optional || a.computed,
                    "{} has no mode",
                    a.name
                );
            }
        }
    }
}
