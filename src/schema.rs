//! Schemas of the provider, its resources and data sources (typed access
//! to values shaped by them is in [`crate::model`]).
//!
//! A schema is data: attributes with their type, flags, Markdown
//! description, default and allowed values. The server layer uses it to
//! decode values, to apply defaults and replacement rules while planning, to
//! validate allowed values, and the docs generator renders it.

use std::collections::BTreeMap;

use crate::diag::{AttrPath, Diagnostics};
use crate::value::{Type, Value};

/// How an attribute's value comes about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Required,
    Optional,
    /// Optional, and the provider fills it in (from a default or the node)
    /// when the configuration leaves it out.
    OptionalComputed,
    /// Set by the provider only.
    Computed,
}

#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: Type,
    pub mode: Mode,
    pub description: String,
    pub sensitive: bool,
    /// A change to this attribute replaces the resource.
    pub force_new: bool,
    /// Value planned when the configuration leaves the attribute out.
    pub default: Option<Value>,
    /// The only values a string attribute (or each element of a list or
    /// set of strings, or each value of a map) may take.
    pub one_of: Option<&'static [&'static str]>,
    /// For computed attributes: the value does not change when the resource
    /// is updated in place, so it is not shown as "known after apply".
    pub stable: bool,
    /// Write-only (plugin protocol 6.8, Terraform 1.11): the value is in
    /// the configuration during validate, plan and apply, and never in a
    /// plan or in state.
    pub write_only: bool,
    /// Declared as a nested block (at most one instance) rather than an
    /// attribute; see [`block`].
    pub is_block: bool,
    /// The block's attributes, for a block.
    pub nested: Option<&'static [Attribute]>,
}

/// An attribute the configuration must set (named and typed by
/// [`model!`](crate::model!)).
pub fn required(description: impl Into<String>) -> Attribute {
    Attribute::new("", Type::Dynamic, Mode::Required, description)
}

/// An attribute the configuration may set.
pub fn optional(description: impl Into<String>) -> Attribute {
    Attribute::new("", Type::Dynamic, Mode::Optional, description)
}

/// An attribute the configuration may set and the provider fills in when
/// it does not.
pub fn optional_computed(description: impl Into<String>) -> Attribute {
    Attribute::new("", Type::Dynamic, Mode::OptionalComputed, description)
}

/// An attribute only the provider sets.
pub fn computed(description: impl Into<String>) -> Attribute {
    Attribute::new("", Type::Dynamic, Mode::Computed, description)
}

/// A nested block of at most one instance (`clientcert { ... }`), whose
/// attributes are those of the field's model.
pub fn block(description: impl Into<String>) -> Attribute {
    Attribute {
        is_block: true,
        ..optional(description)
    }
}

impl Attribute {
    pub fn new(
        name: &'static str,
        ty: Type,
        mode: Mode,
        description: impl Into<String>,
    ) -> Attribute {
        Attribute {
            name,
            ty,
            mode,
            description: description.into(),
            sensitive: false,
            force_new: false,
            default: None,
            one_of: None,
            stable: false,
            write_only: false,
            is_block: false,
            nested: None,
        }
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }
    /// Makes the attribute write-only; see [`Attribute::write_only`].
    /// Not also sensitive: Terraform never shows a write-only value (the
    /// plan renders it as `(write-only attribute)`) nor keeps one, so the
    /// mark would only add a path to every state write of every instance.
    pub fn write_only(mut self) -> Self {
        self.write_only = true;
        self.description = format!(
            "{} Write-only: Terraform passes it to the provider and keeps it in neither the plan nor the state (Terraform 1.11 or later).",
            self.description
        );
        self
    }
    pub fn stable(mut self) -> Self {
        self.stable = true;
        self
    }
    /// Sets the default; the attribute becomes optional and computed, and
    /// the description states the default.
    pub fn default(mut self, v: Value) -> Self {
        self.mode = Mode::OptionalComputed;
        self.description = format!("{} Defaults to `{}`.", self.description, display_plain(&v));
        self.default = Some(v);
        self
    }
    /// Restricts the values; the description lists them from the same
    /// constant the validator uses.
    pub fn one_of(mut self, allowed: &'static [&'static str]) -> Self {
        let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
        self.description = format!("{} One of {}.", self.description, list.join(", "));
        self.one_of = Some(allowed);
        self
    }

    pub fn required(&self) -> bool {
        self.mode == Mode::Required
    }
    pub fn optional(&self) -> bool {
        matches!(self.mode, Mode::Optional | Mode::OptionalComputed)
    }
    pub fn computed(&self) -> bool {
        matches!(self.mode, Mode::Computed | Mode::OptionalComputed)
    }
}

fn display_plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A nested block with at most one instance (`clientcert { ... }`).
#[derive(Clone, Debug)]
pub struct Block {
    pub name: &'static str,
    pub description: String,
    pub attributes: Vec<Attribute>,
}

#[derive(Clone, Debug)]
pub struct Schema {
    pub version: i64,
    pub description: String,
    pub attributes: Vec<Attribute>,
    pub blocks: Vec<Block>,
}

impl Schema {
    pub fn new(description: impl Into<String>, attributes: Vec<Attribute>) -> Schema {
        Schema {
            version: 0,
            description: description.into(),
            attributes,
            blocks: Vec::new(),
        }
    }

    pub fn with_block(mut self, b: Block) -> Schema {
        self.blocks.push(b);
        self
    }

    /// The object type of a value of this schema.
    pub fn ty(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.to_string(), a.ty.clone()))
            .collect();
        for b in &self.blocks {
            let inner = b
                .attributes
                .iter()
                .map(|a| (a.name.to_string(), a.ty.clone()))
                .collect();
            attrs.insert(b.name.to_string(), Type::Object(inner));
        }
        Type::Object(attrs)
    }

    /// The write-only attributes.
    pub fn write_only(&self) -> impl Iterator<Item = &Attribute> {
        self.attributes.iter().filter(|a| a.write_only)
    }

    /// `v` with every write-only attribute null, as a plan or a state must
    /// hold it.
    pub fn without_write_only(&self, v: &Value) -> Value {
        let mut out = v.clone();
        if matches!(out, Value::Object(_)) {
            for a in self.write_only() {
                out.set_attr(a.name, Value::Null);
            }
        }
        out
    }

    /// `v` (a plan) with the write-only values of `config` filled in, for
    /// the resource to act on.
    pub fn with_write_only(&self, v: &Value, config: &Value) -> Value {
        let mut out = v.clone();
        if matches!(out, Value::Object(_)) {
            for a in self.write_only() {
                out.set_attr(a.name, config.attr(a.name).clone());
            }
        }
        out
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Checks allowed values of every known attribute in `config`.
    pub fn validate(&self, config: &Value) -> Diagnostics {
        let mut d = Diagnostics::new();
        check_attrs(&self.attributes, config, &AttrPath::default(), &mut d);
        for b in &self.blocks {
            let inner = config.attr(b.name);
            if !inner.is_null() {
                check_attrs(&b.attributes, inner, &AttrPath::attr(b.name), &mut d);
            }
        }
        d
    }
}

fn check_attrs(attrs: &[Attribute], config: &Value, base: &AttrPath, d: &mut Diagnostics) {
    for a in attrs {
        let Some(allowed) = a.one_of else { continue };
        let v = config.attr(a.name);
        let path = AttrPath(base.0.clone()).then_attr(a.name);
        let mut check = |s: &str, p: AttrPath| {
            if !allowed.contains(&s) {
                let list: Vec<String> = allowed.iter().map(|x| format!("\"{x}\"")).collect();
                d.push_error(
                    Some(p),
                    format!("Invalid value for {}", a.name),
                    format!("{s:?} is not allowed here; use one of {}.", list.join(", ")),
                );
            }
        };
        match v {
            Value::String(s) => check(s, path),
            Value::List(items) | Value::Set(items) => {
                for (i, x) in items.iter().enumerate() {
                    if let Value::String(s) = x {
                        check(s, path.clone().index(i));
                    }
                }
            }
            Value::Map(m) => {
                for (k, x) in m {
                    if let Value::String(s) = x {
                        check(s, path.clone().key(k));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Builds an object value from attribute/value pairs.
pub fn object<I: IntoIterator<Item = (&'static str, Value)>>(pairs: I) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_say_what_terraform_may_and_must_set() {
        let flags = |a: Attribute| (a.required(), a.optional(), a.computed());
        assert_eq!(flags(required("r")), (true, false, false));
        assert_eq!(flags(optional("o")), (false, true, false));
        assert_eq!(flags(optional_computed("oc")), (false, true, true));
        assert_eq!(flags(computed("c")), (false, false, true));
        let d = optional("Port.").default(Value::int(5432));
        assert_eq!(flags(d.clone()), (false, true, true));
        assert_eq!(d.description, "Port. Defaults to `5432`.");
        let s = optional("Mode.")
            .default(Value::string("prefer"))
            .one_of(&["prefer", "require"]);
        assert_eq!(
            s.description,
            "Mode. Defaults to `prefer`. One of `prefer`, `require`."
        );
        assert!(block("B.").is_block && !optional("O.").is_block);
        let a = optional("A.").sensitive().force_new().stable();
        assert!(a.sensitive && a.force_new && a.stable && !a.write_only);
    }

    #[test]
    fn allowed_values_are_checked_wherever_they_sit() {
        const AB: &[&str] = &["a", "b"];
        let named = |name: &'static str, ty: Type| Attribute {
            name,
            ty,
            ..optional("x").one_of(AB)
        };
        let schema = Schema::new(
            "s",
            vec![
                named("one", Type::String),
                named("many", Type::list(Type::String)),
                named("each", Type::map(Type::String)),
                Attribute::new("free", Type::String, Mode::Optional, "free"),
            ],
        )
        .with_block(Block {
            name: "blk",
            description: "b".into(),
            attributes: vec![named("inner", Type::String)],
        });
        let paths = |v: &Value| -> Vec<String> {
            schema
                .validate(v)
                .0
                .iter()
                .map(|d| d.path.clone().unwrap_or_default().to_string())
                .collect()
        };
        let good = object([
            ("one", Value::string("a")),
            ("many", Value::list_of_strings(["a", "b"])),
            ("each", Value::map_of_strings([("k", "b")])),
            ("free", Value::string("z")),
            ("blk", object([("inner", Value::string("b"))])),
        ]);
        assert!(paths(&good).is_empty());
        assert!(paths(&object([("blk", Value::Null)])).is_empty());
        let bad = object([
            ("one", Value::string("z")),
            ("many", Value::list_of_strings(["a", "z"])),
            ("each", Value::map_of_strings([("k", "z")])),
            ("free", Value::string("z")),
            ("blk", object([("inner", Value::string("z"))])),
        ]);
        assert_eq!(paths(&bad), ["one", "many[1]", "each[\"k\"]", "blk.inner"]);
    }

    #[test]
    fn write_only_values_are_taken_from_the_configuration_and_never_kept() {
        let schema = Schema::new(
            "t",
            vec![
                Attribute::new("name", Type::String, Mode::Required, "Name."),
                Attribute::new("secret_wo", Type::String, Mode::Optional, "Secret.").write_only(),
            ],
        );
        let wo = schema.attribute("secret_wo").unwrap();
        assert!(wo.write_only && !wo.sensitive && wo.description.contains("Write-only"));
        let config = object([
            ("name", Value::string("n")),
            ("secret_wo", Value::string("s")),
        ]);
        let plan = object([("name", Value::string("n")), ("secret_wo", Value::Null)]);
        let acting = schema.with_write_only(&plan, &config);
        assert_eq!(acting.attr("secret_wo"), &Value::string("s"));
        assert_eq!(schema.without_write_only(&acting), plan);
        assert_eq!(schema.without_write_only(&Value::Null), Value::Null);
    }
}
