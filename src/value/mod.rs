//! Terraform's type system as Rust values.
//!
//! [`Type`] mirrors the JSON type constraints used in schemas and
//! [`Value`] holds a value of such a type, including the two states that only
//! exist during planning: null and unknown. The wire encodings live in
//! [`msgpack`] and [`json`]; resource code works on these values (through
//! the typed accessors in [`crate::schema`]) and never on bytes.

pub mod json;
pub mod msgpack;

use std::collections::BTreeMap;
use std::fmt;

/// A Terraform type constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Bool,
    Number,
    String,
    /// `dynamic`: the value carries its own type on the wire.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

impl Type {
    pub fn list(t: Type) -> Type {
        Type::List(Box::new(t))
    }
    pub fn set(t: Type) -> Type {
        Type::Set(Box::new(t))
    }
    pub fn map(t: Type) -> Type {
        Type::Map(Box::new(t))
    }

    /// The JSON form used in `Schema.Attribute.type`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Type::Bool => json!("bool"),
            Type::Number => json!("number"),
            Type::String => json!("string"),
            Type::Dynamic => json!("dynamic"),
            Type::List(t) => json!(["list", t.to_json()]),
            Type::Set(t) => json!(["set", t.to_json()]),
            Type::Map(t) => json!(["map", t.to_json()]),
            Type::Object(attrs) => {
                let m: serde_json::Map<String, serde_json::Value> = attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect();
                json!(["object", m])
            }
            Type::Tuple(ts) => json!(["tuple", ts.iter().map(Type::to_json).collect::<Vec<_>>()]),
        }
    }

    /// Parses the JSON form of a type, as found in a dynamic value.
    pub fn from_json(v: &serde_json::Value) -> Result<Type, String> {
        use serde_json::Value as J;
        match v {
            J::String(s) => match s.as_str() {
                "bool" => Ok(Type::Bool),
                "number" => Ok(Type::Number),
                "string" => Ok(Type::String),
                "dynamic" => Ok(Type::Dynamic),
                other => Err(format!("unknown primitive type {other:?}")),
            },
            J::Array(parts) if parts.len() == 2 => {
                let kind = parts[0].as_str().ok_or("type kind is not a string")?;
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let m = parts[1]
                            .as_object()
                            .ok_or("object type needs a map of attributes")?;
                        let mut attrs = BTreeMap::new();
                        for (k, t) in m {
                            attrs.insert(k.clone(), Type::from_json(t)?);
                        }
                        Ok(Type::Object(attrs))
                    }
                    "tuple" => {
                        let ts = parts[1]
                            .as_array()
                            .ok_or("tuple type needs a list of types")?;
                        Ok(Type::Tuple(
                            ts.iter().map(Type::from_json).collect::<Result<_, _>>()?,
                        ))
                    }
                    other => Err(format!("unknown type kind {other:?}")),
                }
            }
            other => Err(format!("malformed type {other}")),
        }
    }
}

/// A number of arbitrary precision, kept as its shortest exact form.
#[derive(Clone, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
    /// A number that fits neither an `i64` nor an `f64` exactly, as decimal text.
    Big(String),
}

impl Number {
    /// Builds the canonical form: integral floats become integers so that
    /// `5` and `5.0` compare equal, as they do in Terraform.
    pub fn from_f64(f: f64) -> Number {
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            Number::Int(f as i64)
        } else {
            Number::Float(f)
        }
    }

    pub fn parse(s: &str) -> Option<Number> {
        if let Ok(i) = s.parse::<i64>() {
            return Some(Number::Int(i));
        }
        let f: f64 = s.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        // Keep the text when the float would lose digits.
        if format!("{f}") == s.trim_start_matches('+') || f.fract() != 0.0 && s.len() <= 17 {
            Some(Number::from_f64(f))
        } else {
            Some(Number::Big(s.to_string()))
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::Float(_) => None,
            Number::Big(s) => s.parse().ok(),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Big(s) => f.write_str(s),
        }
    }
}

/// A value of Terraform's type system.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// Not known until apply.
    Unknown,
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    /// Elements in a canonical order (see [`Value::set`]).
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }
    pub fn opt_string(s: Option<impl Into<String>>) -> Value {
        s.map(|s| Value::String(s.into())).unwrap_or(Value::Null)
    }
    pub fn list_of_strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
        Value::List(items.into_iter().map(|s| Value::String(s.into())).collect())
    }
    pub fn map_of_strings<I: IntoIterator<Item = (K, S)>, K: Into<String>, S: Into<String>>(
        items: I,
    ) -> Value {
        Value::Map(
            items
                .into_iter()
                .map(|(k, v)| (k.into(), Value::String(v.into())))
                .collect(),
        )
    }

    /// A set with duplicates removed and elements in a stable order, so that
    /// two equal sets compare equal.
    pub fn set(mut items: Vec<Value>) -> Value {
        items.sort_by_key(|a| format!("{a:?}"));
        items.dedup();
        Value::Set(items)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                v.iter().all(Value::is_wholly_known)
            }
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            _ => true,
        }
    }

    /// An attribute of an object value; null for anything else.
    pub fn attr(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Object(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// Whether the value is of type `ty`; null and unknown are of every
    /// type.
    pub fn conforms(&self, ty: &Type) -> bool {
        match (self, ty) {
            (Value::Null | Value::Unknown, _) | (_, Type::Dynamic) => true,
            (Value::Bool(_), Type::Bool)
            | (Value::Number(_), Type::Number)
            | (Value::String(_), Type::String) => true,
            (Value::List(items), Type::List(t)) | (Value::Set(items), Type::Set(t)) => {
                items.iter().all(|v| v.conforms(t))
            }
            (Value::Map(m), Type::Map(t)) => m.values().all(|v| v.conforms(t)),
            (Value::Object(m), Type::Object(attrs)) => {
                m.len() == attrs.len()
                    && attrs
                        .iter()
                        .all(|(k, t)| m.get(k).is_some_and(|v| v.conforms(t)))
            }
            (Value::Tuple(items), Type::Tuple(types)) => {
                items.len() == types.len() && items.iter().zip(types).all(|(v, t)| v.conforms(t))
            }
            _ => false,
        }
    }

    /// Attribute `name` of an object, to change in place.
    pub fn attr_mut(&mut self, name: &str) -> Option<&mut Value> {
        match self {
            Value::Object(m) => m.get_mut(name),
            _ => None,
        }
    }

    pub fn set_attr(&mut self, name: &str, v: Value) {
        if let Value::Object(m) = self {
            m.insert(name.to_string(), v);
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unknown => f.write_str("(known after apply)"),
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) | Value::Object(m) => {
                f.write_str("{")?;
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} = {x}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Why bytes from Terraform could not be turned into a value.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn malformed_type_descriptions_are_errors_not_panics() {
        assert_eq!(
            Type::from_json(&json!(["list", "string"])),
            Ok(Type::list(Type::String))
        );
        for bad in [json!(["list"]), json!(["list", "string", "x"]), json!([])] {
            assert!(Type::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn constructors_make_what_they_say() {
        assert_eq!(Value::opt_string(Some("x")), Value::string("x"));
        assert_eq!(Value::opt_string(None::<String>), Value::Null);
        assert_eq!(
            Value::map_of_strings([("k", "v")]).attr("k"),
            &Value::Null,
            "a map is not an object"
        );
    }

    #[test]
    fn unknowns_are_found_at_any_depth() {
        assert!(Value::Unknown.is_unknown() && !Value::Null.is_unknown());
        assert!(!Value::Unknown.is_wholly_known());
        let deep = |v: Value| {
            [
                Value::List(vec![Value::Null, v.clone()]),
                Value::set(vec![v.clone()]),
                Value::Tuple(vec![v.clone()]),
                Value::Map(BTreeMap::from([("k".to_string(), v.clone())])),
                Value::Object(BTreeMap::from([("a".to_string(), v)])),
            ]
        };
        for v in deep(Value::Unknown) {
            assert!(!v.is_wholly_known() && !v.is_unknown(), "{v:?}");
        }
        for v in deep(Value::string("x")) {
            assert!(v.is_wholly_known(), "{v:?}");
        }
    }

    #[test]
    fn values_display_as_terraform_writes_them() {
        let v = Value::Object(BTreeMap::from([
            ("a".to_string(), Value::list_of_strings(["x", "y", "z"])),
            ("b".to_string(), Value::Unknown),
            ("c".to_string(), Value::Null),
        ]));
        assert_eq!(
            v.to_string(),
            "{a = [\"x\", \"y\", \"z\"], b = (known after apply), c = null}"
        );
        assert_eq!(DecodeError("bad".into()).to_string(), "bad");
    }

    #[test]
    fn integral_floats_become_integers_only_while_exact() {
        assert_eq!(Number::from_f64(5.0), Number::Int(5));
        assert_eq!(Number::from_f64(1.5), Number::Float(1.5));
        assert_eq!(Number::from_f64(-1.5), Number::Float(-1.5));
        assert_eq!(Number::from_f64(8.0e15), Number::Int(8_000_000_000_000_000));
        assert_eq!(Number::from_f64(9.0e15), Number::Float(9.0e15));
        assert_eq!(Number::from_f64(1.0e19), Number::Float(1.0e19));
    }

    #[test]
    fn number_text_keeps_every_digit_a_float_would_lose() {
        assert_eq!(Number::parse("42"), Some(Number::Int(42)));
        assert_eq!(Number::parse("0.1"), Some(Number::Float(0.1)));
        assert_eq!(Number::parse("1.10"), Some(Number::Float(1.1)));
        assert_eq!(
            Number::parse("10000000000000000000"),
            Some(Number::Float(1.0e19))
        );
        let long = "0.12345678901234567890";
        assert_eq!(Number::parse(long), Some(Number::Big(long.into())));
        let huge = "123456789012345678901";
        assert_eq!(Number::parse(huge), Some(Number::Big(huge.into())));
        assert_eq!(Number::parse("inf"), None);
        assert_eq!(Number::parse("x"), None);
    }
}
