//! JSON encoding of values, used for raw state in `UpgradeResourceState`
//! and `MoveResourceState`, and accepted in any `DynamicValue`.

use std::collections::BTreeMap;

use serde_json::Value as J;

use super::{DecodeError, Number, Type, Value};

/// Decodes JSON text as a value of type `ty`. Attributes that the type does
/// not know are an error unless `ignore_extra` is set (old state may carry
/// attributes that a newer schema dropped).
pub fn decode(bytes: &[u8], ty: &Type, ignore_extra: bool) -> Result<Value, DecodeError> {
    let j: J =
        serde_json::from_slice(bytes).map_err(|e| DecodeError(format!("invalid JSON: {e}")))?;
    from_json(&j, ty, ignore_extra)
}

pub fn from_json(j: &J, ty: &Type, ignore_extra: bool) -> Result<Value, DecodeError> {
    if j.is_null() {
        return Ok(Value::Null);
    }
    let mismatch = || DecodeError(format!("JSON {j} does not fit type {}", ty.to_json()));
    Ok(match ty {
        Type::Bool => Value::Bool(j.as_bool().ok_or_else(mismatch)?),
        Type::Number => match j {
            J::Number(n) => Value::Number(Number::parse(&n.to_string()).ok_or_else(mismatch)?),
            J::String(s) => Value::Number(Number::parse(s).ok_or_else(mismatch)?),
            _ => return Err(mismatch()),
        },
        Type::String => match j {
            J::String(s) => Value::String(s.clone()),
            J::Bool(b) => Value::String(b.to_string()),
            J::Number(n) => Value::String(n.to_string()),
            _ => return Err(mismatch()),
        },
        Type::List(t) | Type::Set(t) => {
            let items = j.as_array().ok_or_else(mismatch)?;
            let items = items
                .iter()
                .map(|x| from_json(x, t, ignore_extra))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(ty, Type::Set(_)) {
                Value::set(items)
            } else {
                Value::List(items)
            }
        }
        Type::Tuple(ts) => {
            let items = j
                .as_array()
                .filter(|a| a.len() == ts.len())
                .ok_or_else(mismatch)?;
            Value::Tuple(
                items
                    .iter()
                    .zip(ts)
                    .map(|(x, t)| from_json(x, t, ignore_extra))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Map(t) => {
            let m = j.as_object().ok_or_else(mismatch)?;
            Value::Map(
                m.iter()
                    .map(|(k, x)| Ok((k.clone(), from_json(x, t, ignore_extra)?)))
                    .collect::<Result<_, DecodeError>>()?,
            )
        }
        Type::Object(attrs) => {
            let m = j.as_object().ok_or_else(mismatch)?;
            let mut out = BTreeMap::new();
            for (k, x) in m {
                match attrs.get(k) {
                    Some(t) => {
                        out.insert(k.clone(), from_json(x, t, ignore_extra)?);
                    }
                    None if ignore_extra => {}
                    None => return Err(DecodeError(format!("unsupported attribute {k:?}"))),
                }
            }
            for k in attrs.keys() {
                out.entry(k.clone()).or_insert(Value::Null);
            }
            Value::Object(out)
        }
        Type::Dynamic => {
            let m = j.as_object().ok_or_else(mismatch)?;
            let t = Type::from_json(m.get("type").ok_or_else(mismatch)?).map_err(DecodeError)?;
            from_json(m.get("value").unwrap_or(&J::Null), &t, ignore_extra)?
        }
    })
}

/// Encodes a wholly known value as JSON.
pub fn to_json(v: &Value) -> J {
    match v {
        Value::Null | Value::Unknown => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(J::Null),
        Value::String(s) => J::String(s.clone()),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
            J::Array(items.iter().map(to_json).collect())
        }
        Value::Map(m) | Value::Object(m) => {
            J::Object(m.iter().map(|(k, x)| (k.clone(), to_json(x))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_state_and_drops_removed_attributes_when_asked() {
        let ty = Type::Object(BTreeMap::from([
            ("id".to_string(), Type::String),
            ("port".to_string(), Type::Number),
            ("names".to_string(), Type::set(Type::String)),
        ]));
        let json = br#"{"id":"x","port":5432,"names":["b","a"],"old":true}"#;
        assert!(decode(json, &ty, false).is_err());
        let v = decode(json, &ty, true).unwrap();
        assert_eq!(v.attr("port"), &Value::int(5432));
        assert_eq!(
            v.attr("names"),
            &Value::set(vec![Value::string("a"), Value::string("b")])
        );
        assert_eq!(to_json(&v)["port"], serde_json::json!(5432));
    }

    #[test]
    fn strings_take_json_scalars_and_tuples_their_exact_length() {
        for (json, want) in [(&b"\"x\""[..], "x"), (b"true", "true"), (b"5", "5")] {
            assert_eq!(
                decode(json, &Type::String, false).unwrap(),
                Value::string(want)
            );
        }
        assert!(decode(b"[1]", &Type::String, false).is_err());
        // Numbers may come as JSON strings (big ones do).
        assert_eq!(
            decode(b"\"5\"", &Type::Number, false).unwrap(),
            Value::int(5)
        );
        let pair = Type::Tuple(vec![Type::String, Type::Number]);
        assert_eq!(
            decode(br#"["a", 1]"#, &pair, false).unwrap(),
            Value::Tuple(vec![Value::string("a"), Value::int(1)])
        );
        assert!(decode(br#"["a"]"#, &pair, false).is_err());
        assert!(decode(br#"["a", 1, 2]"#, &pair, false).is_err());
    }

    #[test]
    fn keeps_precision_of_big_numbers() {
        let v = decode(b"123456789012345678901234567890.5", &Type::Number, false).unwrap();
        assert_eq!(v.to_string(), "123456789012345678901234567890.5");
    }
}
