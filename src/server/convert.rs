//! The edge between protocol messages and the crate's own types.

use crate::diag::{AttrPath, Diagnostics, Severity, Step};
use crate::proto::tfplugin6 as pb;
use crate::schema::{Attribute, Schema};
use crate::value::{json, msgpack, Type, Value};

/// Decodes a `DynamicValue` (MessagePack, or JSON when that is what was
/// sent). A missing value is null.
pub fn from_dynamic(dv: Option<&pb::DynamicValue>, ty: &Type) -> Result<Value, Diagnostics> {
    let Some(dv) = dv else { return Ok(Value::Null) };
    let r = if !dv.msgpack.is_empty() {
        msgpack::decode(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        json::decode(&dv.json, ty, false)
    } else {
        Ok(Value::Null)
    };
    r.map_err(|e| Diagnostics::error("Invalid value from Terraform", format!("The provider could not decode a value Terraform sent: {e}. This is a bug in the provider or in Terraform.")))
}

pub fn to_dynamic(v: &Value, ty: &Type) -> Result<pb::DynamicValue, Diagnostics> {
    let bytes = msgpack::encode(v, ty).map_err(|e| {
        Diagnostics::error(
            "Provider produced an invalid value",
            format!("{e}. This is a bug in the provider."),
        )
    })?;
    Ok(pb::DynamicValue {
        msgpack: bytes,
        json: Vec::new(),
    })
}

pub fn path_to_proto(p: &AttrPath) -> pb::AttributePath {
    use pb::attribute_path::step::Selector;
    pb::AttributePath {
        steps: p
            .0
            .iter()
            .map(|s| pb::attribute_path::Step {
                selector: Some(match s {
                    Step::Attr(a) => Selector::AttributeName(a.clone()),
                    Step::Key(k) => Selector::ElementKeyString(k.clone()),
                    Step::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

pub fn diagnostics(d: Diagnostics) -> Vec<pb::Diagnostic> {
    d.0.into_iter()
        .map(|x| pb::Diagnostic {
            severity: match x.severity {
                Severity::Error => pb::diagnostic::Severity::Error as i32,
                Severity::Warning => pb::diagnostic::Severity::Warning as i32,
            },
            summary: x.summary,
            detail: x.detail,
            attribute: x.path.as_ref().map(path_to_proto),
        })
        .collect()
}

fn attribute(a: &Attribute) -> pb::schema::Attribute {
    pb::schema::Attribute {
        name: a.name.to_string(),
        r#type: a.ty.to_json().to_string().into_bytes(),
        nested_type: None,
        description: a.description.clone(),
        required: a.required(),
        optional: a.optional(),
        computed: a.computed(),
        sensitive: a.sensitive,
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: false,
        write_only: a.write_only,
    }
}

pub fn schema(s: &Schema) -> pb::Schema {
    pb::Schema {
        version: s.version,
        block: Some(pb::schema::Block {
            version: s.version,
            attributes: s.attributes.iter().map(attribute).collect(),
            block_types: s
                .blocks
                .iter()
                .map(|b| pb::schema::NestedBlock {
                    type_name: b.name.to_string(),
                    block: Some(pb::schema::Block {
                        version: 0,
                        attributes: b.attributes.iter().map(attribute).collect(),
                        block_types: Vec::new(),
                        description: b.description.clone(),
                        description_kind: pb::StringKind::Markdown as i32,
                        deprecated: false,
                    }),
                    nesting: pb::schema::nested_block::NestingMode::Single as i32,
                    min_items: 0,
                    max_items: 1,
                })
                .collect(),
            description: s.description.clone(),
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Mode;

    #[test]
    fn schema_types_are_json_and_descriptions_markdown() {
        let s = Schema::new(
            "d",
            vec![Attribute::new(
                "a",
                Type::list(Type::String),
                Mode::Required,
                "An `a`.",
            )],
        );
        let p = schema(&s);
        let a = &p.block.unwrap().attributes[0];
        assert_eq!(a.r#type, br#"["list","string"]"#);
        assert!(a.required && !a.optional && !a.computed);
        assert_eq!(a.description_kind, pb::StringKind::Markdown as i32);
    }

    #[test]
    fn dynamic_values_accept_json_too() {
        let ty = Type::Object([("a".to_string(), Type::String)].into());
        let dv = pb::DynamicValue {
            msgpack: vec![],
            json: br#"{"a":"x"}"#.to_vec(),
        };
        assert_eq!(
            from_dynamic(Some(&dv), &ty).unwrap().attr("a"),
            &Value::string("x")
        );
        assert_eq!(from_dynamic(None, &ty).unwrap(), Value::Null);
        let bad = pb::DynamicValue {
            msgpack: vec![0xc1],
            json: vec![],
        };
        assert!(from_dynamic(Some(&bad), &ty).is_err());
    }
}
