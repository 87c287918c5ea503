//! MessagePack encoding of values, as Terraform sends them in `DynamicValue`.
//!
//! The encoding is guided by the schema's type: lists, sets and tuples are
//! arrays, maps and objects are maps, unknown values are extension type 0
//! (refined unknowns, extension 12, are accepted and treated as unknown),
//! numbers are integers or float64 when exact and decimal strings otherwise,
//! and a `dynamic` value is a two-element array of its JSON type and value.

use std::collections::BTreeMap;

use super::{DecodeError, Number, Type, Value};

/// Decodes `bytes` as a value of type `ty`.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let mut d = Decoder { buf: bytes, pos: 0 };
    let v = d.value(ty)?;
    if d.pos != bytes.len() {
        return Err(DecodeError(format!(
            "{} trailing bytes after value",
            bytes.len() - d.pos
        )));
    }
    Ok(v)
}

/// Encodes `v` as type `ty`.
pub fn encode(v: &Value, ty: &Type) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(256);
    encode_into(&mut out, v, ty)?;
    Ok(out)
}

enum Head {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(usize),
    Bin(usize),
    Array(usize),
    Map(usize),
    Ext(i8, usize),
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| DecodeError("unexpected end of MessagePack data".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn head(&mut self) -> Result<Head, DecodeError> {
        let m = self.take(1)?[0];
        Ok(match m {
            0x00..=0x7f => Head::Int(i64::from(m)),
            0x80..=0x8f => Head::Map(usize::from(m & 0x0f)),
            0x90..=0x9f => Head::Array(usize::from(m & 0x0f)),
            0xa0..=0xbf => Head::Str(usize::from(m & 0x1f)),
            0xc0 => Head::Nil,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => Head::Bin(self.be(1)? as usize),
            0xc5 => Head::Bin(self.be(2)? as usize),
            0xc6 => Head::Bin(self.be(4)? as usize),
            0xc7..=0xc9 => {
                let len = self.be(1 << (m - 0xc7))? as usize;
                let t = self.take(1)?[0] as i8;
                Head::Ext(t, len)
            }
            0xca => Head::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Head::Float(f64::from_bits(self.be(8)?)),
            0xcc..=0xcf => Head::Uint(self.be(1 << (m - 0xcc))?),
            0xd0 => Head::Int(i64::from(self.take(1)?[0] as i8)),
            0xd1 => Head::Int(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => Head::Int(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => Head::Int(self.be(8)? as i64),
            0xd4..=0xd8 => {
                let t = self.take(1)?[0] as i8;
                Head::Ext(t, 1 << (m - 0xd4))
            }
            0xd9 => Head::Str(self.be(1)? as usize),
            0xda => Head::Str(self.be(2)? as usize),
            0xdb => Head::Str(self.be(4)? as usize),
            0xdc => Head::Array(self.be(2)? as usize),
            0xdd => Head::Array(self.be(4)? as usize),
            0xde => Head::Map(self.be(2)? as usize),
            0xdf => Head::Map(self.be(4)? as usize),
            0xe0..=0xff => Head::Int(i64::from(m as i8)),
            0xc1 => return Err(DecodeError("invalid MessagePack marker 0xc1".into())),
        })
    }

    fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("string is not valid UTF-8".into()))
    }

    fn key(&mut self) -> Result<String, DecodeError> {
        match self.head()? {
            Head::Str(n) => self.string(n),
            _ => Err(DecodeError("map key is not a string".into())),
        }
    }

    fn value(&mut self, ty: &Type) -> Result<Value, DecodeError> {
        let head = self.head()?;
        match head {
            Head::Nil => return Ok(Value::Null),
            Head::Ext(t, len) => {
                self.take(len)?;
                return match t {
                    0 | 12 => Ok(Value::Unknown),
                    other => Err(DecodeError(format!(
                        "unexpected MessagePack extension type {other}"
                    ))),
                };
            }
            _ => {}
        }
        let mismatch =
            |what: &str| DecodeError(format!("expected {what} for type {}", ty.to_json()));
        match ty {
            Type::Bool => match head {
                Head::Bool(b) => Ok(Value::Bool(b)),
                _ => Err(mismatch("a bool")),
            },
            Type::Number => self.number(head).ok_or_else(|| mismatch("a number"))?,
            Type::String => match head {
                Head::Str(n) => Ok(Value::String(self.string(n)?)),
                _ => Err(mismatch("a string")),
            },
            Type::List(t) | Type::Set(t) => {
                let Head::Array(n) = head else {
                    return Err(mismatch("an array"));
                };
                let mut items = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    items.push(self.value(t)?);
                }
                Ok(if matches!(ty, Type::Set(_)) {
                    Value::set(items)
                } else {
                    Value::List(items)
                })
            }
            Type::Tuple(ts) => {
                let Head::Array(n) = head else {
                    return Err(mismatch("an array"));
                };
                if n != ts.len() {
                    return Err(DecodeError(format!(
                        "tuple has {n} elements, expected {}",
                        ts.len()
                    )));
                }
                Ok(Value::Tuple(
                    ts.iter().map(|t| self.value(t)).collect::<Result<_, _>>()?,
                ))
            }
            Type::Map(t) => {
                let Head::Map(n) = head else {
                    return Err(mismatch("a map"));
                };
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let k = self.key()?;
                    m.insert(k, self.value(t)?);
                }
                Ok(Value::Map(m))
            }
            Type::Object(attrs) => {
                let Head::Map(n) = head else {
                    return Err(mismatch("a map"));
                };
                self.object(n, attrs)
            }
            Type::Dynamic => {
                let Head::Array(2) = head else {
                    return Err(mismatch("a [type, value] pair"));
                };
                self.dynamic()
            }
        }
    }

    /// A number from a head that holds one (or a string that spells one);
    /// `None` for any other head.
    fn number(&mut self, head: Head) -> Option<Result<Value, DecodeError>> {
        Some(Ok(Value::Number(match head {
            Head::Int(i) => Number::Int(i),
            Head::Uint(u) => match i64::try_from(u) {
                Ok(i) => Number::Int(i),
                Err(_) => Number::Big(u.to_string()),
            },
            Head::Float(f) => Number::from_f64(f),
            Head::Str(n) => {
                let s = match self.string(n) {
                    Ok(s) => s,
                    Err(e) => return Some(Err(e)),
                };
                return Some(
                    Number::parse(&s)
                        .map(Value::Number)
                        .ok_or_else(|| DecodeError(format!("{s:?} is not a number"))),
                );
            }
            _ => return None,
        })))
    }

    /// An object of `n` attributes; those left out are null.
    fn object(&mut self, n: usize, attrs: &BTreeMap<String, Type>) -> Result<Value, DecodeError> {
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = self.key()?;
            let t = attrs
                .get(&k)
                .ok_or_else(|| DecodeError(format!("unsupported attribute {k:?}")))?;
            m.insert(k, self.value(t)?);
        }
        for k in attrs.keys() {
            m.entry(k.clone()).or_insert(Value::Null);
        }
        Ok(Value::Object(m))
    }

    /// A dynamic value: its type as JSON, then the value of that type.
    fn dynamic(&mut self) -> Result<Value, DecodeError> {
        let type_json = match self.head()? {
            Head::Str(n) | Head::Bin(n) => self.take(n)?,
            _ => return Err(DecodeError("dynamic value type is not a string".into())),
        };
        let j: serde_json::Value = serde_json::from_slice(type_json)
            .map_err(|e| DecodeError(format!("dynamic value type: {e}")))?;
        let t = Type::from_json(&j).map_err(DecodeError)?;
        self.value(&t)
    }
}

fn put_len(
    out: &mut Vec<u8>,
    len: usize,
    fix: Option<(u8, usize)>,
    m8: Option<u8>,
    m16: u8,
    m32: u8,
) {
    match (fix, m8) {
        (Some((base, max)), _) if len <= max => out.push(base | len as u8),
        (_, Some(m)) if len <= 0xff => out.extend([m, len as u8]),
        _ if len <= 0xffff => {
            out.push(m16);
            out.extend((len as u16).to_be_bytes());
        }
        _ => {
            out.push(m32);
            out.extend((len as u32).to_be_bytes());
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len(), Some((0xa0, 31)), Some(0xd9), 0xda, 0xdb);
    out.extend_from_slice(s.as_bytes());
}

fn put_int(out: &mut Vec<u8>, i: i64) {
    if (0..=0x7f).contains(&i) || (-32..0).contains(&i) {
        out.push(i as u8);
    } else {
        out.push(0xd3);
        out.extend(i.to_be_bytes());
    }
}

fn encode_into(out: &mut Vec<u8>, v: &Value, ty: &Type) -> Result<(), DecodeError> {
    let mismatch = || DecodeError(format!("value {v} does not fit type {}", ty.to_json()));
    match (v, ty) {
        (Value::Null, _) => out.push(0xc0),
        (Value::Unknown, _) => out.extend([0xd4, 0, 0]),
        (Value::Bool(b), Type::Bool) => out.push(if *b { 0xc3 } else { 0xc2 }),
        (Value::Number(n), Type::Number) => match n {
            Number::Int(i) => put_int(out, *i),
            Number::Float(f) => {
                out.push(0xcb);
                out.extend(f.to_bits().to_be_bytes());
            }
            Number::Big(s) => put_str(out, s),
        },
        (Value::String(s), Type::String) => put_str(out, s),
        (Value::List(items) | Value::Set(items), Type::List(t) | Type::Set(t)) => {
            put_len(out, items.len(), Some((0x90, 15)), None, 0xdc, 0xdd);
            for x in items {
                encode_into(out, x, t)?;
            }
        }
        (Value::Tuple(items), Type::Tuple(ts)) if items.len() == ts.len() => {
            put_len(out, items.len(), Some((0x90, 15)), None, 0xdc, 0xdd);
            for (x, t) in items.iter().zip(ts) {
                encode_into(out, x, t)?;
            }
        }
        (Value::Map(m), Type::Map(t)) => {
            put_len(out, m.len(), Some((0x80, 15)), None, 0xde, 0xdf);
            for (k, x) in m {
                put_str(out, k);
                encode_into(out, x, t)?;
            }
        }
        (Value::Object(m), Type::Object(attrs)) => {
            put_len(out, attrs.len(), Some((0x80, 15)), None, 0xde, 0xdf);
            for (k, t) in attrs {
                put_str(out, k);
                encode_into(out, m.get(k).unwrap_or(&Value::Null), t)?;
            }
        }
        (_, Type::Dynamic) => {
            let t = infer_type(v);
            out.push(0x92);
            put_str(out, &t.to_json().to_string());
            encode_into(out, v, &t)?;
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// The type a value would have as a literal, for encoding `dynamic` values.
fn infer_type(v: &Value) -> Type {
    match v {
        Value::Bool(_) => Type::Bool,
        Value::Number(_) => Type::Number,
        Value::String(_) | Value::Null | Value::Unknown => Type::String,
        Value::List(items) => Type::list(items.first().map(infer_type).unwrap_or(Type::String)),
        Value::Set(items) => Type::set(items.first().map(infer_type).unwrap_or(Type::String)),
        Value::Tuple(items) => Type::Tuple(items.iter().map(infer_type).collect()),
        Value::Map(m) => Type::map(m.values().next().map(infer_type).unwrap_or(Type::String)),
        Value::Object(m) => {
            Type::Object(m.iter().map(|(k, x)| (k.clone(), infer_type(x))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj_type() -> Type {
        Type::Object(BTreeMap::from([
            ("name".to_string(), Type::String),
            ("port".to_string(), Type::Number),
            ("tags".to_string(), Type::set(Type::String)),
            ("opts".to_string(), Type::map(Type::String)),
            ("list".to_string(), Type::list(Type::Bool)),
        ]))
    }

    #[test]
    fn every_messagepack_form_decodes() {
        let n = |x: i64| Value::int(x);
        let numbers: &[(&[u8], Value)] = &[
            (&[0x05], n(5)),
            (&[0xe0], n(-32)),
            (&[0xcc, 0xff], n(255)),
            (&[0xcd, 0x01, 0x00], n(256)),
            (&[0xce, 0x00, 0x01, 0x00, 0x00], n(65536)),
            (&[0xcf, 0, 0, 0, 1, 0, 0, 0, 0], n(4_294_967_296)),
            (&[0xd0, 0xff], n(-1)),
            (&[0xd1, 0xff, 0x00], n(-256)),
            (&[0xd2, 0xff, 0xff, 0xff, 0x00], n(-256)),
            (
                &[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00],
                n(-256),
            ),
            (
                &[0xca, 0x3f, 0xc0, 0x00, 0x00],
                Value::Number(Number::Float(1.5)),
            ),
            (
                &[0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0],
                Value::Number(Number::Float(2.5)),
            ),
            // Unknown values, in every extension form Terraform may use.
            (&[0xd4, 0x00, 0x00], Value::Unknown),
            (&[0xd5, 0x00, 0x00, 0x00], Value::Unknown),
            (&[0xd6, 0x00, 0, 0, 0, 0], Value::Unknown),
            (&[0xc7, 0x01, 0x00, 0x00], Value::Unknown),
            (&[0xc8, 0x00, 0x02, 0x00, 0x00, 0x00], Value::Unknown),
            (&[0xc9, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00], Value::Unknown),
            (&[0xc0], Value::Null),
        ];
        for (bytes, want) in numbers {
            assert_eq!(&decode(bytes, &Type::Number).unwrap(), want, "{bytes:02x?}");
        }
        let abc = Value::string("abc");
        for bytes in [
            &[0xa3, b'a', b'b', b'c'][..],
            &[0xd9, 3, b'a', b'b', b'c'],
            &[0xda, 0, 3, b'a', b'b', b'c'],
            &[0xdb, 0, 0, 0, 3, b'a', b'b', b'c'],
        ] {
            assert_eq!(decode(bytes, &Type::String).unwrap(), abc, "{bytes:02x?}");
        }
        let list = Value::List(vec![n(1), n(2)]);
        for bytes in [
            &[0x92, 1, 2][..],
            &[0xdc, 0, 2, 1, 2],
            &[0xdd, 0, 0, 0, 2, 1, 2],
        ] {
            assert_eq!(decode(bytes, &Type::list(Type::Number)).unwrap(), list);
        }
        let map = Value::Map(BTreeMap::from([("k".to_string(), Value::string("v"))]));
        for bytes in [
            &[0x81, 0xa1, b'k', 0xa1, b'v'][..],
            &[0xde, 0, 1, 0xa1, b'k', 0xa1, b'v'],
            &[0xdf, 0, 0, 0, 1, 0xa1, b'k', 0xa1, b'v'],
        ] {
            assert_eq!(decode(bytes, &Type::map(Type::String)).unwrap(), map);
        }
        let pair = Type::Tuple(vec![Type::String, Type::Number]);
        assert_eq!(
            decode(&[0x92, 0xa1, b'a', 1], &pair).unwrap(),
            Value::Tuple(vec![Value::string("a"), n(1)])
        );
        assert!(
            decode(&[0x91, 0xa1, b'a'], &pair).is_err(),
            "a tuple too short"
        );
        assert!(decode(&[0xc1], &Type::Number).is_err());
        assert!(
            decode(&[0xd4, 0x05, 0x00], &Type::Number).is_err(),
            "another extension"
        );
    }

    #[test]
    fn encodes_each_length_and_integer_in_its_form() {
        let head = |v: &Value, ty: &Type, n: usize| encode(v, ty).unwrap()[..n].to_vec();
        let s = |len: usize| Value::string("s".repeat(len));
        for (len, want) in [
            (31, vec![0xbf]),
            (32, vec![0xd9, 32]),
            (255, vec![0xd9, 0xff]),
            (256, vec![0xda, 0x01, 0x00]),
            (65535, vec![0xda, 0xff, 0xff]),
            (65536, vec![0xdb, 0x00, 0x01, 0x00, 0x00]),
        ] {
            assert_eq!(
                head(&s(len), &Type::String, want.len()),
                want,
                "string of {len}"
            );
            assert_eq!(
                decode(&encode(&s(len), &Type::String).unwrap(), &Type::String).unwrap(),
                s(len)
            );
        }
        let list = |len: usize| Value::List(vec![Value::Bool(true); len]);
        let bools = Type::list(Type::Bool);
        for (len, want) in [
            (15, vec![0x9f]),
            (16, vec![0xdc, 0x00, 0x10]),
            (65536, vec![0xdd, 0x00, 0x01, 0x00, 0x00]),
        ] {
            assert_eq!(head(&list(len), &bools, want.len()), want, "list of {len}");
        }
        assert_eq!(encode(&list(1), &bools).unwrap(), [0x91, 0xc3]);
        assert_eq!(encode(&Value::Bool(false), &Type::Bool).unwrap(), [0xc2]);
        let map = Value::Map(
            (0..16)
                .map(|i| (format!("k{i:02}"), Value::Bool(true)))
                .collect(),
        );
        assert_eq!(head(&map, &Type::map(Type::Bool), 3), [0xde, 0x00, 0x10]);
        assert_eq!(
            decode(
                &encode(&map, &Type::map(Type::Bool)).unwrap(),
                &Type::map(Type::Bool)
            )
            .unwrap(),
            map
        );
        for (i, want) in [
            (127, vec![0x7f]),
            (-1, vec![0xff]),
            (-32, vec![0xe0]),
            (128, [vec![0xd3], 128i64.to_be_bytes().to_vec()].concat()),
            (-33, [vec![0xd3], (-33i64).to_be_bytes().to_vec()].concat()),
        ] {
            let v = Value::int(i);
            assert_eq!(encode(&v, &Type::Number).unwrap(), want, "{i}");
            assert_eq!(decode(&want, &Type::Number).unwrap(), v);
        }
        let pair = Type::Tuple(vec![Type::String, Type::Number]);
        let t = Value::Tuple(vec![Value::string("a"), Value::int(1)]);
        assert_eq!(decode(&encode(&t, &pair).unwrap(), &pair).unwrap(), t);
        assert!(encode(&Value::Tuple(vec![Value::string("a")]), &pair).is_err());
        assert_eq!(
            decode(
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                &Type::Number
            )
            .unwrap(),
            Value::Number(Number::Big("18446744073709551615".into()))
        );
    }

    #[test]
    fn round_trips_objects_with_nulls_and_unknowns() {
        let v = Value::Object(BTreeMap::from([
            ("name".to_string(), Value::string("a".repeat(40))),
            ("port".to_string(), Value::int(5432)),
            (
                "tags".to_string(),
                Value::set(vec![Value::string("b"), Value::string("a")]),
            ),
            ("opts".to_string(), Value::Unknown),
            ("list".to_string(), Value::Null),
        ]));
        let bytes = encode(&v, &obj_type()).unwrap();
        assert_eq!(decode(&bytes, &obj_type()).unwrap(), v);
    }

    #[test]
    fn accepts_refined_unknowns_and_string_numbers() {
        // ext 12 with a one-byte payload (a refinement map would be larger)
        assert_eq!(
            decode(&[0xd4, 12, 0x80], &Type::String).unwrap(),
            Value::Unknown
        );
        let big = "123456789012345678901234567890";
        let mut bytes = vec![0xd9, big.len() as u8];
        bytes.extend(big.as_bytes());
        assert_eq!(
            decode(&bytes, &Type::Number).unwrap(),
            Value::Number(Number::Big(big.into()))
        );
        // float64 5.0 is the same number as integer 5
        let mut f = vec![0xcb];
        f.extend(5.0f64.to_bits().to_be_bytes());
        assert_eq!(decode(&f, &Type::Number).unwrap(), Value::int(5));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        for bytes in [
            &[0xc1][..],
            &[0xdb, 0xff, 0xff, 0xff, 0xff],
            &[0x92, 0xa1],
            &[],
        ] {
            assert!(decode(bytes, &obj_type()).is_err());
        }
        assert!(
            decode(&[0x81, 0xa1, b'x', 0xc0], &obj_type()).is_err(),
            "unknown attribute"
        );
    }

    #[test]
    fn dynamic_values_carry_their_type() {
        let v = Value::list_of_strings(["x", "y"]);
        let bytes = encode(&v, &Type::Dynamic).unwrap();
        assert_eq!(decode(&bytes, &Type::Dynamic).unwrap(), v);
    }

    #[test]
    fn long_strings_and_collections_use_wide_lengths() {
        let items: Vec<Value> = (0..300)
            .map(|i| Value::string(format!("{i:0>300}")))
            .collect();
        let v = Value::List(items);
        let t = Type::list(Type::String);
        assert_eq!(decode(&encode(&v, &t).unwrap(), &t).unwrap(), v);
    }
}
