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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Type;

    fn request(config: Value, write_only_allowed: Option<bool>) -> Vec<String> {
        let server = ProviderServer::new();
        let ty = server
            .resource("timescaledb_distributed_role")
            .unwrap()
            .schema()
            .ty();
        let mut full = crate::schema::object(std::iter::empty());
        if let (Value::Object(m), Type::Object(attrs)) = (&mut full, &ty) {
            for k in attrs.keys() {
                m.insert(k.clone(), config.attr(k).clone());
            }
        }
        let r = handle(
            &server,
            pb::validate_resource_config::Request {
                type_name: "timescaledb_distributed_role".into(),
                config: Some(convert::to_dynamic(&full, &ty).unwrap()),
                client_capabilities: write_only_allowed.map(|w| pb::ClientCapabilities {
                    deferral_allowed: false,
                    write_only_attributes_allowed: w,
                }),
            },
        )
        .unwrap();
        r.diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.summary, d.detail))
            .collect()
    }

    #[test]
    fn write_only_values_are_refused_unless_terraform_supports_them() {
        let config = crate::schema::object([
            ("name", Value::string("r")),
            ("password_wo", Value::string("secret")),
            ("password_wo_version", Value::int(1)),
        ]);
        for caps in [None, Some(false)] {
            let d = request(config.clone(), caps);
            assert_eq!(d.len(), 1, "{d:?}");
            assert!(d[0].contains("need Terraform 1.11") && d[0].contains("`password`"));
            assert!(!d[0].contains("secret"), "the value is never repeated");
        }
        assert!(request(config, Some(true)).is_empty());
        let plain = crate::schema::object([
            ("name", Value::string("r")),
            ("password", Value::string("secret")),
        ]);
        assert!(
            request(plain, None).is_empty(),
            "plain attributes work anywhere"
        );
    }
}
