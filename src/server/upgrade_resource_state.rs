//! UpgradeResourceState: state as stored (JSON) into the current schema.
//! Every schema is at version 0, so upgrading means decoding the JSON with
//! the current type, dropping attributes a newer provider no longer has.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::Diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::value::json;

pub(super) fn handle(
    server: &ProviderServer,
    req: pb::upgrade_resource_state::Request,
) -> Result<pb::upgrade_resource_state::Response, Status> {
    let shape = server.shape(&req.type_name)?;
    let (schema, ty) = (&shape.schema, &shape.ty);
    let result = (|| {
        if req.version > schema.version {
            return Err(Diagnostics::error(
                "State from a newer provider",
                format!("The state of this {} was written by a provider with schema version {}; this provider knows version {}. Upgrade the provider.", req.type_name, req.version, schema.version),
            ));
        }
        let raw = req.raw_state.unwrap_or_default();
        if raw.json.is_empty() && !raw.flatmap.is_empty() {
            return Err(Diagnostics::error("Unsupported state format", "Flatmap state comes from Terraform 0.11 providers and cannot be upgraded by this provider."));
        }
        let v = json::decode(&raw.json, ty, true).map_err(|e| {
            Diagnostics::error(
                "Invalid stored state",
                format!("The stored state could not be read: {e}."),
            )
        })?;
        convert::to_dynamic(&v, ty)
    })();
    Ok(match result {
        Ok(dv) => pb::upgrade_resource_state::Response {
            upgraded_state: Some(dv),
            diagnostics: Vec::new(),
        },
        Err(d) => pb::upgrade_resource_state::Response {
            upgraded_state: None,
            diagnostics: convert::diagnostics(d),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{msgpack, Value};

    #[test]
    fn upgrades_json_state_and_drops_unknown_attributes() {
        let server = ProviderServer::new();
        let json = br#"{"id":"access host all all 10.0.0.1/32","node":"access","type":"host","databases":["all"],"users":["all"],"address":"10.0.0.1/32","method":"trust","position":100,"removed_later":1}"#;
        let r = handle(
            &server,
            pb::upgrade_resource_state::Request {
                type_name: "timescaledb_hba_rule".into(),
                version: 0,
                raw_state: Some(pb::RawState {
                    json: json.to_vec(),
                    flatmap: Default::default(),
                }),
            },
        )
        .unwrap();
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        let ty = server
            .resource("timescaledb_hba_rule")
            .unwrap()
            .schema()
            .ty();
        let v = msgpack::decode(&r.upgraded_state.unwrap().msgpack, &ty).unwrap();
        assert_eq!(v.attr("method"), &Value::string("trust"));
        assert_eq!(v.attr("comment"), &Value::Null);
    }
}
