//! ValidateResourceConfig: schema-level checks plus the resource's own,
//! on a configuration that may hold unknown values.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::{AttrPath, Diagnostics};
use crate::proto::tfplugin6 as pb;
use crate::schema::Schema;
use crate::value::Value;

pub(super) fn handle(
    server: &ProviderServer,
    req: pb::validate_resource_config::Request,
) -> Result<pb::validate_resource_config::Response, Status> {
    let res = server.resource(&req.type_name)?;
    let shape = server.shape(&req.type_name)?;
    let schema = &shape.schema;
    let write_only_allowed = req
        .client_capabilities
        .as_ref()
        .is_some_and(|c| c.write_only_attributes_allowed);
    let diags = match convert::from_dynamic(req.config.as_ref(), &schema.ty()) {
        Ok(config) => {
            let mut d = schema.validate(&config);
            if !write_only_allowed {
                d.extend(write_only_refused(schema, &config));
            }
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

/// A Terraform that does not say it supports write-only attributes (before
/// 1.11) would treat one as an ordinary attribute and keep its value in the
/// plan and the state: every write-only attribute set is refused on it.
fn write_only_refused(schema: &Schema, config: &Value) -> Diagnostics {
    let mut d = Diagnostics::new();
    for a in schema.write_only() {
        if !config.attr(a.name).is_null() {
            let plain = a.name.strip_suffix("_wo").unwrap_or(a.name);
            d.push_error(
                Some(AttrPath::attr(a.name)),
                "Write-only attributes need Terraform 1.11 or later",
                format!(
                    "`{}` is write-only, but this Terraform does not support write-only attributes and would store the value \
                     in the plan and the state. Use Terraform 1.11 or later, or set `{plain}` instead (kept in state, marked \
                     sensitive).",
                    a.name
                ),
            );
        }
    }
    d
}
