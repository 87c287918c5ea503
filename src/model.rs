//! Typed models: one declaration per resource gives its attribute names,
//! its schema attributes, decoding from a Terraform value (with a diagnostic
//! on the attribute's path for anything missing, unknown or null where it
//! cannot be) and encoding back.
//!
//! ```ignore
//! model! {
//!     /// A grant, as configured and as kept in state.
//!     pub struct Grant {
//!         ROLE => role: String = required("Role that receives the privilege.").force_new(),
//!         SERVERS => servers: BTreeSet<String> = optional_computed("Foreign servers."),
//!         ID => id: Option<String> = computed("The role name.").stable(),
//!     }
//! }
//! ```
//!
//! Each line declares a constant holding the attribute's name (the field's
//! name, or the one given in parentheses after it, as in
//! `TYPE => conn_type("type"): String = ...`, or a constant defined
//! elsewhere), the field, and the schema
//! attribute (mode, description and flags; the Terraform type comes from
//! the field's Rust type through [`Field`]).
//!
//! `struct Grant plan GrantPlan { ... }` also declares the model as a plan
//! or a configuration holds it ([`PlanModel`]): every field a [`Planned`]
//! value, known, unknown or null, as Terraform's values are while a plan is
//! made. Plan hooks read and set those fields; only the fields they change
//! are written back to the plan.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{AttrPath, Diagnostics};
use crate::schema::{Attribute, Block, Mode, Schema};
use crate::secret::Secret;
use crate::value::{Number, Type, Value};

/// A struct declared with [`model!`](crate::model!).
pub trait Model: Sized + Default {
    /// The schema attributes, in declaration order (nested blocks
    /// included, marked by [`Attribute::block`]).
    fn attributes() -> &'static [Attribute];

    /// Decodes an object value whose attributes sit under `base`.
    fn decode_at(v: &Value, base: &AttrPath) -> Result<Self, Diagnostics>;

    fn to_value(&self) -> Value;

    /// Decodes a whole resource (or provider) object.
    fn from_value(v: &Value) -> Result<Self, Diagnostics> {
        Self::decode_at(v, &AttrPath::default())
    }

    /// A schema of these attributes: blocks apart, as Terraform wants them.
    fn schema(description: impl Into<String>) -> Schema {
        let mut schema = Schema::new(description, Vec::new());
        for a in Self::attributes() {
            match &a.nested {
                Some(inner) => {
                    schema = schema.with_block(Block {
                        name: a.name,
                        description: a.description.clone(),
                        attributes: inner.to_vec(),
                    })
                }
                None => schema.attributes.push(a.clone()),
            }
        }
        schema
    }
}

/// A value as a plan or a configuration holds it: null, not known until
/// apply (wholly or in part), or known.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Planned<T> {
    #[default]
    Null,
    Unknown,
    Known(T),
}

impl<T> Planned<T> {
    /// The value, when it is known.
    pub fn known(&self) -> Option<&T> {
        match self {
            Planned::Known(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Planned::Unknown)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Planned::Null)
    }

    /// Known, with this value.
    pub fn set(&mut self, v: T) {
        *self = Planned::Known(v);
    }

    /// A known value mapped; null and unknown stay as they are.
    pub fn map<U>(&self, f: impl FnOnce(&T) -> U) -> Planned<U> {
        match self {
            Planned::Null => Planned::Null,
            Planned::Unknown => Planned::Unknown,
            Planned::Known(v) => Planned::Known(f(v)),
        }
    }
}

impl<T> Planned<Option<T>> {
    /// The value of an optional attribute, when it is known and set.
    pub fn get(&self) -> Option<&T> {
        self.known().and_then(Option::as_ref)
    }
}

impl Planned<String> {
    pub fn as_str(&self) -> Option<&str> {
        self.known().map(String::as_str)
    }
}

impl Planned<Option<String>> {
    pub fn as_str(&self) -> Option<&str> {
        self.get().map(String::as_str)
    }
}

impl<T: Field> Planned<T> {
    /// As Terraform's value.
    pub fn encode(&self) -> Value {
        match self {
            Planned::Null => Value::Null,
            Planned::Unknown => Value::Unknown,
            Planned::Known(v) => v.encode(),
        }
    }
}

/// A model as a plan or a configuration holds it, declared with
/// [`model!`](crate::model!) beside the model itself.
pub trait PlanModel: Sized + Clone + Default + PartialEq + Send + Sync {
    /// The model the plan becomes once everything is known.
    type Model: Model;

    /// Decodes an object that may hold unknown values: an attribute not
    /// wholly known is [`Planned::Unknown`]; a known one is decoded as the
    /// model decodes it (with its diagnostics).
    fn decode_plan(v: &Value) -> Result<Self, Diagnostics>;

    /// Writes into `v` the attributes that differ from `before` (the plan
    /// as decoded): what a hook did not touch stays exactly as it was.
    fn write_changes(&self, before: &Self, v: &mut Value);

    /// The model, when every attribute is known; a null attribute takes its
    /// default, or is `None`, as in [`Model::from_value`].
    fn known(&self) -> Option<Self::Model>;
}

/// A model declared with a plan form.
pub trait HasPlan: Model {
    type Plan: PlanModel<Model = Self>;
}

/// Decodes attribute `a` of a plan or configuration object.
pub fn plan_field<T: Field>(
    obj: &Value,
    a: &Attribute,
    base: &AttrPath,
    diags: &mut Diagnostics,
) -> Planned<T> {
    let v = obj.attr(a.name);
    if !v.is_wholly_known() {
        return Planned::Unknown;
    }
    if v.is_null() {
        return Planned::Null;
    }
    let mut at = At {
        name: a.name,
        path: base.clone().then_attr(a.name),
        diags,
    };
    Planned::Known(T::decode(v, &mut at))
}

/// The model's value of a planned field, when it is known: null takes the
/// declared default, else `None` for an `Option`, else the empty value. A
/// computed attribute may be unknown (the provider is about to set it) and
/// is then taken as null, as [`Model::from_value`] takes it.
pub fn known_field<T: Field + Clone>(p: &Planned<T>, a: &Attribute) -> Option<T> {
    match p {
        Planned::Unknown if a.mode != Mode::Computed => None,
        Planned::Unknown => Some(T::null().unwrap_or_default()),
        Planned::Known(v) => Some(v.clone()),
        Planned::Null => {
            let mut diags = Diagnostics::new();
            let mut at = At {
                name: a.name,
                path: AttrPath::attr(a.name),
                diags: &mut diags,
            };
            Some(match (&a.default, T::null()) {
                (Some(d), _) => T::decode(d, &mut at),
                (None, Some(none)) => none,
                (None, None) => T::default(),
            })
        }
    }
}

/// Where a field is being decoded, and where its problems go.
pub struct At<'a> {
    /// The top-level attribute, for messages.
    pub name: &'a str,
    pub path: AttrPath,
    pub diags: &'a mut Diagnostics,
}

impl At<'_> {
    fn error(&mut self, path: AttrPath, summary: &str, detail: String) {
        self.diags.push_error(Some(path), summary, detail);
    }
}

/// A Rust type that stands for a Terraform type.
pub trait Field: Sized + Default {
    fn ty() -> Type;

    /// Decodes a known, non-null value of [`Field::ty`]; problems go to
    /// `at`, and the returned value is then only a placeholder.
    fn decode(v: &Value, at: &mut At) -> Self;

    /// The value for null, when null is allowed (an `Option`).
    fn null() -> Option<Self> {
        None
    }

    fn encode(&self) -> Value;

    /// The attributes of a nested object (a block), if this is one.
    fn nested() -> Option<&'static [Attribute]> {
        None
    }
}

impl Field for String {
    fn ty() -> Type {
        Type::String
    }
    fn decode(v: &Value, _: &mut At) -> Self {
        v.as_str().unwrap_or_default().to_string()
    }
    fn encode(&self) -> Value {
        Value::string(self)
    }
}

/// A secret string (a password, a private key): its `Debug` hides it.
impl Field for Secret {
    fn ty() -> Type {
        Type::String
    }
    fn decode(v: &Value, _: &mut At) -> Self {
        Secret::new(v.as_str().unwrap_or_default())
    }
    fn encode(&self) -> Value {
        Value::string(self.expose())
    }
}

impl Field for bool {
    fn ty() -> Type {
        Type::Bool
    }
    fn decode(v: &Value, _: &mut At) -> Self {
        matches!(v, Value::Bool(true))
    }
    fn encode(&self) -> Value {
        Value::Bool(*self)
    }
}

impl Field for i64 {
    fn ty() -> Type {
        Type::Number
    }
    fn decode(v: &Value, at: &mut At) -> Self {
        match v {
            Value::Number(n) => n.as_i64().unwrap_or_else(|| {
                let detail = format!("`{}` must be a whole number, not {n}.", at.name);
                at.error(at.path.clone(), "Invalid number", detail);
                0
            }),
            _ => 0,
        }
    }
    fn encode(&self) -> Value {
        Value::Number(Number::Int(*self))
    }
}

impl<T: Field> Field for Option<T> {
    fn ty() -> Type {
        T::ty()
    }
    fn decode(v: &Value, at: &mut At) -> Self {
        Some(T::decode(v, at))
    }
    fn null() -> Option<Self> {
        Some(None)
    }
    fn encode(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::encode)
    }
    fn nested() -> Option<&'static [Attribute]> {
        T::nested()
    }
}

/// Elements of a list or set; a null one is an error on its index
/// (Terraform allows one, but it stands for nothing a node could hold),
/// unless the element type is an `Option`.
fn elements<T: Field>(items: &[Value], at: &mut At) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = at.path.clone().index(i);
        if let (true, Some(none)) = (item.is_null(), T::null()) {
            out.push(none);
            continue;
        }
        if item.is_null() {
            let detail = format!(
                "`{}` cannot hold null: remove the element or give it a value.",
                at.name
            );
            at.error(path, "Null element", detail);
            continue;
        }
        let mut inner = At {
            name: at.name,
            path,
            diags: at.diags,
        };
        out.push(T::decode(item, &mut inner));
    }
    out
}

/// A list.
impl<T: Field> Field for Vec<T> {
    fn ty() -> Type {
        Type::list(T::ty())
    }
    fn decode(v: &Value, at: &mut At) -> Self {
        match v {
            Value::List(items) | Value::Set(items) => elements(items, at),
            _ => Vec::new(),
        }
    }
    fn encode(&self) -> Value {
        Value::List(self.iter().map(T::encode).collect())
    }
}

/// A set.
impl<T: Field + Ord> Field for BTreeSet<T> {
    fn ty() -> Type {
        Type::set(T::ty())
    }
    fn decode(v: &Value, at: &mut At) -> Self {
        match v {
            Value::List(items) | Value::Set(items) => elements(items, at).into_iter().collect(),
            _ => BTreeSet::new(),
        }
    }
    fn encode(&self) -> Value {
        Value::set(self.iter().map(T::encode).collect())
    }
}

/// A map; a null value is an error on its key unless the value type is an
/// `Option`.
impl<T: Field> Field for BTreeMap<String, T> {
    fn ty() -> Type {
        Type::map(T::ty())
    }
    fn decode(v: &Value, at: &mut At) -> Self {
        let Value::Map(m) = v else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        for (k, x) in m {
            let path = at.path.clone().key(k);
            if let (true, Some(none)) = (x.is_null(), T::null()) {
                out.insert(k.clone(), none);
                continue;
            }
            if x.is_null() {
                let detail = format!(
                    "`{}` cannot hold null: remove the key or give it a value.",
                    at.name
                );
                at.error(path, "Null value", detail);
                continue;
            }
            let mut inner = At {
                name: at.name,
                path,
                diags: at.diags,
            };
            out.insert(k.clone(), T::decode(x, &mut inner));
        }
        out
    }
    fn encode(&self) -> Value {
        Value::Map(self.iter().map(|(k, x)| (k.clone(), x.encode())).collect())
    }
}

/// A nested object of another model (an element of a list of objects, or
/// a block).
impl<M: Model> Field for M {
    fn ty() -> Type {
        let attrs = M::attributes()
            .iter()
            .map(|a| (a.name.to_string(), a.ty.clone()))
            .collect();
        Type::Object(attrs)
    }
    fn decode(v: &Value, at: &mut At) -> Self {
        match M::decode_at(v, &at.path) {
            Ok(m) => m,
            Err(d) => {
                at.diags.extend(d);
                M::default()
            }
        }
    }
    fn encode(&self) -> Value {
        self.to_value()
    }
    fn nested() -> Option<&'static [Attribute]> {
        Some(M::attributes())
    }
}

/// The schema attribute of a field: the declared one, named, with the
/// field's type (and nested attributes for a block).
pub fn declare<T: Field>(name: &'static str, spec: Attribute) -> Attribute {
    let nested = if spec.is_block { T::nested() } else { None };
    Attribute {
        name,
        ty: T::ty(),
        nested,
        ..spec
    }
}

/// Decodes attribute `a` of object `obj` as a `T`. A value not yet known is
/// an error except on a computed attribute (which the provider is about to
/// set). Null takes the declared default, else `None` for an `Option`, else
/// is an error on a required attribute and the empty value on others.
pub fn field<T: Field>(obj: &Value, a: &Attribute, base: &AttrPath, diags: &mut Diagnostics) -> T {
    let v = obj.attr(a.name);
    let path = base.clone().then_attr(a.name);
    let computed_only = a.mode == Mode::Computed;
    if !v.is_wholly_known() {
        if !computed_only {
            diags.push_error(
                Some(path),
                "Value not yet known",
                format!("`{}` must be known before this step; it depends on something that is only known after apply.", a.name),
            );
        }
        return T::default();
    }
    let mut at = At {
        name: a.name,
        path,
        diags,
    };
    if !v.is_null() {
        return T::decode(v, &mut at);
    }
    if let Some(d) = &a.default {
        return T::decode(d, &mut at);
    }
    if let Some(none) = T::null() {
        return none;
    }
    if a.mode == Mode::Required {
        let detail = format!("`{}` must be set.", a.name);
        at.error(at.path.clone(), "Missing value", detail);
    }
    T::default()
}

/// Declares a typed model; see the [module documentation](self).
#[macro_export]
macro_rules! model {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident plan $plan:ident {
            $( $konst:ident => $field:ident $(($attr_name:expr))? : $ty:ty = $spec:expr ),* $(,)?
        }
    ) => {
        $crate::model! {
            $(#[$meta])*
            $vis struct $name {
                $( $konst => $field $(($attr_name))? : $ty = $spec ),*
            }
        }

        #[doc = concat!("[`", stringify!($name), "`] as a plan or a configuration holds it.")]
        #[derive(Clone, Debug, Default, PartialEq)]
        $vis struct $plan {
            $( pub $field: $crate::model::Planned<$ty>, )*
        }

        impl $crate::model::HasPlan for $name {
            type Plan = $plan;
        }

        impl $crate::model::PlanModel for $plan {
            type Model = $name;

            fn decode_plan(v: &$crate::value::Value) -> Result<Self, $crate::diag::Diagnostics> {
                let mut d = $crate::diag::Diagnostics::new();
                let base = $crate::diag::AttrPath::default();
                let mut attrs = <$name as $crate::model::Model>::attributes().iter();
                let p = $plan {
                    $( $field: {
                        let a = attrs.next().expect("one attribute per field");
                        $crate::model::plan_field::<$ty>(v, a, &base, &mut d)
                    }, )*
                };
                d.into_result().map(|()| p)
            }

            fn write_changes(&self, before: &Self, v: &mut $crate::value::Value) {
                $( if self.$field != before.$field {
                    v.set_attr($konst, self.$field.encode());
                } )*
            }

            fn known(&self) -> Option<$name> {
                let mut attrs = <$name as $crate::model::Model>::attributes().iter();
                Some($name {
                    $( $field: {
                        let a = attrs.next().expect("one attribute per field");
                        $crate::model::known_field::<$ty>(&self.$field, a)?
                    }, )*
                })
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $konst:ident => $field:ident $(($attr_name:expr))? : $ty:ty = $spec:expr ),* $(,)?
        }
    ) => {
        $( pub const $konst: &str = $crate::model!(@name $field $($attr_name)?); )*

        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        $vis struct $name {
            $( pub $field: $ty, )*
        }

        impl $crate::model::Model for $name {
            fn attributes() -> &'static [$crate::schema::Attribute] {
                static ATTRS: std::sync::OnceLock<Vec<$crate::schema::Attribute>> =
                    std::sync::OnceLock::new();
                ATTRS.get_or_init(|| {
                    #[allow(unused_imports)]
                    use $crate::schema::{computed, optional, optional_computed, required, block};
                    vec![ $( $crate::model::declare::<$ty>($konst, $spec) ),* ]
                })
            }

            fn decode_at(
                v: &$crate::value::Value,
                base: &$crate::diag::AttrPath,
            ) -> Result<Self, $crate::diag::Diagnostics> {
                let mut d = $crate::diag::Diagnostics::new();
                let mut attrs = <Self as $crate::model::Model>::attributes().iter();
                let m = $name {
                    $( $field: {
                        let a = attrs.next().expect("one attribute per field");
                        $crate::model::field::<$ty>(v, a, base, &mut d)
                    }, )*
                };
                d.into_result().map(|()| m)
            }

            fn to_value(&self) -> $crate::value::Value {
                $crate::value::Value::Object(
                    [ $( ($konst.to_string(), $crate::model::Field::encode(&self.$field)) ),* ]
                        .into_iter()
                        .collect(),
                )
            }
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $n:expr) => { $n };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{object, Mode};

    crate::model! {
        /// Inner block.
        struct Inner {
            CERT => cert: String = required("Certificate."),
        }
    }

    crate::model! {
        /// A model of every kind of field.
        struct Sample {
            NAME => name: String = required("Name.").force_new(),
            KIND => kind("type"): Option<String> = optional("Kind.").one_of(&["a", "b"]),
            COUNT => count: i64 = optional("Count.").default(Value::int(7)),
            FLAG => flag: bool = optional("Flag.").default(Value::Bool(false)),
            LIST => list: Vec<String> = optional("List."),
            SET => set: BTreeSet<String> = optional("Set."),
            MAP => map: Option<BTreeMap<String, String>> = optional("Map."),
            SECRET => secret: Option<Secret> = optional("Secret.").write_only(),
            ID => id: Option<String> = computed("Id.").stable(),
            INNER => inner: Option<Inner> = block("Inner."),
        }
    }

    #[test]
    fn one_declaration_gives_names_schema_decoding_and_encoding() {
        assert_eq!((NAME, KIND, SECRET), ("name", "type", "secret"));
        let schema = Sample::schema("S.");
        let names: Vec<&str> = schema.attributes.iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            ["name", "type", "count", "flag", "list", "set", "map", "secret", "id"]
        );
        assert_eq!(schema.blocks.len(), 1);
        assert_eq!(schema.blocks[0].attributes[0].name, "cert");
        let a = |n: &str| schema.attribute(n).unwrap().clone();
        assert_eq!(a("name").mode, Mode::Required);
        assert!(a("name").force_new);
        assert_eq!(a("count").mode, Mode::OptionalComputed);
        assert_eq!(a("count").ty, Type::Number);
        assert_eq!(a("set").ty, Type::set(Type::String));
        assert_eq!(a("map").ty, Type::map(Type::String));
        assert!(a("secret").write_only && !a("secret").sensitive);
        assert!(a("id").stable);
        assert_eq!(a("type").one_of, Some(&["a", "b"][..]));

        let v = object([
            (NAME, Value::string("n")),
            (KIND, Value::Null),
            (COUNT, Value::Null),
            (FLAG, Value::Bool(true)),
            (LIST, Value::list_of_strings(["x", "y"])),
            (
                SET,
                Value::set(vec![Value::string("b"), Value::string("a")]),
            ),
            (MAP, Value::Null),
            (SECRET, Value::string("s")),
            (ID, Value::Unknown),
            (INNER, object([(CERT, Value::string("c"))])),
        ]);
        let m = Sample::from_value(&v).unwrap();
        assert_eq!(m.name, "n");
        assert_eq!(m.kind, None);
        assert_eq!(m.count, 7, "null takes the default");
        assert!(m.flag);
        assert_eq!(m.list, ["x", "y"]);
        assert_eq!(m.set.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.map, None);
        assert_eq!(m.id, None, "an unknown computed value is not an error");
        assert_eq!(m.inner.as_ref().unwrap().cert, "c");
        let back = m.to_value();
        assert_eq!(back.attr(COUNT), &Value::int(7));
        assert_eq!(back.attr(ID), &Value::Null);
        assert_eq!(back.attr(SECRET), &Value::string("s"));
        assert!(
            !format!("{m:?}").contains("\"s\""),
            "a secret field prints redacted"
        );
        assert_eq!(back.attr(LIST), v.attr(LIST));
        assert_eq!(back.attr(SET), v.attr(SET));
        assert_eq!(back.attr(INNER), v.attr(INNER));
        assert_eq!(Sample::from_value(&back).unwrap(), m);
        let with_map = Sample {
            map: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
            ..m
        };
        assert_eq!(
            with_map.to_value().attr(MAP),
            &Value::map_of_strings([("k", "v")])
        );
    }

    #[test]
    fn problems_are_reported_on_their_attribute() {
        let v = object([
            (NAME, Value::Null),
            (COUNT, Value::Unknown),
            (LIST, Value::List(vec![Value::string("x"), Value::Null])),
            (
                MAP,
                Value::Map(BTreeMap::from([("k".to_string(), Value::Null)])),
            ),
            (INNER, object([(CERT, Value::Null)])),
        ]);
        let d = Sample::from_value(&v).unwrap_err();
        let mut got: Vec<String> =
            d.0.iter()
                .map(|x| format!("{} {}", x.path.clone().unwrap_or_default(), x.summary))
                .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "count Value not yet known",
                "inner.cert Missing value",
                "list[1] Null element",
                "map[\"k\"] Null value",
                "name Missing value",
            ]
        );
        // Null elements are kept where the element type allows them.
        let mut diags = Diagnostics::new();
        let mut at = At {
            name: "m",
            path: AttrPath::attr("m"),
            diags: &mut diags,
        };
        let maybe: BTreeMap<String, Option<String>> = Field::decode(
            &Value::Map(BTreeMap::from([("k".to_string(), Value::Null)])),
            &mut at,
        );
        assert_eq!(maybe, BTreeMap::from([("k".to_string(), None)]));
        assert!(diags.is_empty());
        let whole = object([(COUNT, Value::Number(Number::Float(1.5)))]);
        let d = Sample::from_value(&whole).unwrap_err();
        assert!(d.0.iter().any(|x| x.summary == "Invalid number"));
    }
}
