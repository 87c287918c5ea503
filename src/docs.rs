//! Registry documentation generated from the schemas and the example files
//! under `examples/`, so the docs cannot drift from the code. `make docs`
//! writes them; a test fails when the committed files are stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::schema::{Attribute, Mode, Schema};
use crate::server::ProviderServer;
use crate::value::Type;

struct Examples {
    usage: String,
    import: Option<String>,
}

/// The examples of one page, found by convention under `examples/`:
/// `provider/provider.tf`, `resources/<name>/resource.tf` (with
/// `import.sh` exactly when the resource can be imported) and
/// `data-sources/<name>/data-source.tf`,
/// `ephemeral-resources/<name>/ephemeral-resource.tf`. A missing or unexpected file is
/// an error, so a new resource cannot be documented without its example.
fn examples(kind: &str, name: &str, importable: bool) -> Result<Examples, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (dir, file) = match kind {
        "provider" => (root.join("provider"), "provider.tf"),
        "resource" => (root.join("resources").join(name), "resource.tf"),
        "ephemeral-resource" => (
            root.join("ephemeral-resources").join(name),
            "ephemeral-resource.tf",
        ),
        _ => (root.join("data-sources").join(name), "data-source.tf"),
    };
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
    let usage = read(dir.join(file))?;
    let import_path = dir.join("import.sh");
    let import = match (importable, import_path.exists()) {
        (true, _) => Some(read(import_path)?),
        (false, false) => None,
        (false, true) => {
            return Err(format!(
                "{}: {name} cannot be imported, so it has no import example",
                import_path.display()
            ))
        }
    };
    Ok(Examples { usage, import })
}

fn type_name(t: &Type) -> String {
    match t {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_name(e)),
        Type::Set(e) => format!("Set of {}", type_name(e)),
        Type::Map(e) => format!("Map of {}", type_name(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

fn attr_line(a: &Attribute) -> String {
    let mut flags = type_name(&a.ty);
    if a.sensitive {
        flags.push_str(", Sensitive");
    }
    if a.write_only {
        flags.push_str(", Write-only");
    }
    if a.force_new {
        flags.push_str(", changing it replaces the resource");
    }
    format!("- `{}` ({flags}) {}\n", a.name, a.description)
}

fn schema_section(s: &Schema) -> String {
    let mut out = String::from("## Schema\n");
    type Pick = fn(&Attribute) -> bool;
    let groups: [(&str, Pick); 3] = [
        ("Required", |a| a.mode == Mode::Required),
        ("Optional", |a| a.optional()),
        ("Read-Only", |a| a.mode == Mode::Computed),
    ];
    for (title, pick) in groups {
        let attrs: Vec<&Attribute> = s.attributes.iter().filter(|a| pick(a)).collect();
        let blocks: Vec<_> = if title == "Optional" {
            s.blocks.iter().collect()
        } else {
            Vec::new()
        };
        if attrs.is_empty() && blocks.is_empty() {
            continue;
        }
        out.push_str(&format!("\n### {title}\n\n"));
        for a in attrs {
            out.push_str(&attr_line(a));
        }
        for b in &blocks {
            out.push_str(&format!(
                "- `{}` (Block, at most one) {} See [below for nested schema](#nestedblock--{}).\n",
                b.name, b.description, b.name
            ));
        }
    }
    for b in &s.blocks {
        out.push_str(&format!(
            "\n<a id=\"nestedblock--{}\"></a>\n### Nested Schema for `{}`\n\n",
            b.name, b.name
        ));
        for a in &b.attributes {
            out.push_str(&attr_line(a));
        }
    }
    out
}

fn first_sentence(s: &str) -> &str {
    s.find(". ").map(|i| &s[..=i]).unwrap_or(s)
}

fn page(
    title: &str,
    subcategory: &str,
    heading: &str,
    s: &Schema,
    ex: &Examples,
    import_note: Option<&str>,
) -> String {
    let mut out = format!(
        "---\npage_title: \"{title}\"\nsubcategory: \"{subcategory}\"\ndescription: |-\n  {}\n---\n\n# {heading}\n\n{}\n",
        first_sentence(&s.description),
        s.description
    );
    out.push_str(&format!(
        "\n## Example Usage\n\n```terraform\n{}```\n",
        ex.usage
    ));
    out.push('\n');
    out.push_str(&schema_section(s));
    if let Some(import) = &ex.import {
        out.push_str("\n## Import\n\n");
        if let Some(n) = import_note {
            out.push_str(&format!("Import ID format: `{n}`.\n\n"));
        }
        out.push_str(&format!("```shell\n{import}```\n"));
    }
    out
}

/// Every documentation file, keyed by its path under `docs/`; an error
/// names an example file that is missing or should not be there.
pub fn render_all() -> Result<BTreeMap<PathBuf, String>, String> {
    let server = ProviderServer::new();
    let mut files = BTreeMap::new();
    let mut index = page(
        "Provider: timescaledb",
        "",
        "timescaledb Provider",
        server.provider_schema(),
        &examples("provider", "", false)?,
        None,
    );
    index.push_str(include_str!("docs/index_notes.md"));
    files.insert(PathBuf::from("index.md"), index);
    for r in server.resources() {
        let name = r.type_name();
        let short = name.trim_start_matches("timescaledb_");
        let note = r.import_id_format();
        files.insert(
            PathBuf::from(format!("resources/{short}.md")),
            page(
                &format!("{name} Resource - terraform-provider-timescaledb"),
                "",
                &format!("{name} (Resource)"),
                &r.schema(),
                &examples("resource", name, note.is_some())?,
                note,
            ),
        );
    }
    for d in server.data_sources() {
        let name = d.type_name();
        let short = name.trim_start_matches("timescaledb_");
        files.insert(
            PathBuf::from(format!("data-sources/{short}.md")),
            page(
                &format!("{name} Data Source - terraform-provider-timescaledb"),
                "",
                &format!("{name} (Data Source)"),
                &d.schema(),
                &examples("data-source", name, false)?,
                None,
            ),
        );
    }
    for e in server.ephemerals() {
        let name = e.type_name();
        let short = name.trim_start_matches("timescaledb_");
        files.insert(
            PathBuf::from(format!("ephemeral-resources/{short}.md")),
            page(
                &format!("{name} Ephemeral Resource - terraform-provider-timescaledb"),
                "",
                &format!("{name} (Ephemeral Resource)"),
                &e.schema(),
                &examples("ephemeral-resource", name, false)?,
                None,
            ),
        );
    }
    Ok(files)
}

/// Writes the generated files under `dir`.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    for (rel, text) in render_all().map_err(std::io::Error::other)? {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_docs_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        let mut stale = Vec::new();
        for (rel, text) in super::render_all().unwrap() {
            let on_disk = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
            if on_disk != text {
                stale.push(rel.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "docs are stale, run `make docs`: {stale:?}"
        );
    }
}
