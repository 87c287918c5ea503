//! Registry documentation generated from the schemas and the example files
//! under `examples/`, so the docs cannot drift from the code. `make docs`
//! writes them; a test fails when the committed files are stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::schema::{Attribute, Mode, Schema};
use crate::server::ProviderServer;
use crate::value::Type;

struct Examples {
    usage: &'static str,
    import: Option<&'static str>,
}

fn examples(kind: &str, name: &str) -> Examples {
    match (kind, name) {
        ("provider", _) => Examples {
            usage: include_str!("../examples/provider/provider.tf"),
            import: None,
        },
        ("resource", "timescaledb_hba_rule") => Examples {
            usage: include_str!("../examples/resources/timescaledb_hba_rule/resource.tf"),
            import: Some(include_str!(
                "../examples/resources/timescaledb_hba_rule/import.sh"
            )),
        },
        ("resource", "timescaledb_passfile_entry") => Examples {
            usage: include_str!("../examples/resources/timescaledb_passfile_entry/resource.tf"),
            import: Some(include_str!(
                "../examples/resources/timescaledb_passfile_entry/import.sh"
            )),
        },
        ("resource", "timescaledb_distributed_role") => Examples {
            usage: include_str!("../examples/resources/timescaledb_distributed_role/resource.tf"),
            import: Some(include_str!(
                "../examples/resources/timescaledb_distributed_role/import.sh"
            )),
        },
        ("resource", "timescaledb_foreign_server_grant") => Examples {
            usage: include_str!(
                "../examples/resources/timescaledb_foreign_server_grant/resource.tf"
            ),
            import: Some(include_str!(
                "../examples/resources/timescaledb_foreign_server_grant/import.sh"
            )),
        },
        ("resource", "timescaledb_certificate_authority") => Examples {
            usage: include_str!(
                "../examples/resources/timescaledb_certificate_authority/resource.tf"
            ),
            import: None,
        },
        ("resource", "timescaledb_node_certificate") => Examples {
            usage: include_str!("../examples/resources/timescaledb_node_certificate/resource.tf"),
            import: Some(include_str!(
                "../examples/resources/timescaledb_node_certificate/import.sh"
            )),
        },
        ("data-source", "timescaledb_data_nodes") => Examples {
            usage: include_str!("../examples/data-sources/timescaledb_data_nodes/data-source.tf"),
            import: None,
        },
        _ => Examples {
            usage: "",
            import: None,
        },
    }
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
    if !ex.usage.is_empty() {
        out.push_str(&format!(
            "\n## Example Usage\n\n```terraform\n{}```\n",
            ex.usage
        ));
    }
    out.push('\n');
    out.push_str(&schema_section(s));
    if let Some(import) = ex.import {
        out.push_str("\n## Import\n\n");
        if let Some(n) = import_note {
            out.push_str(&format!("Import ID format: `{n}`.\n\n"));
        }
        out.push_str(&format!("```shell\n{import}```\n"));
    }
    out
}

/// Every documentation file, keyed by its path under `docs/`.
pub fn render_all() -> BTreeMap<PathBuf, String> {
    let server = ProviderServer::new();
    let mut files = BTreeMap::new();
    let mut index = page(
        "Provider: timescaledb",
        "",
        "timescaledb Provider",
        server.provider_schema(),
        &examples("provider", ""),
        None,
    );
    index.push_str(include_str!("docs/index_notes.md"));
    files.insert(PathBuf::from("index.md"), index);
    for r in server.resources() {
        let name = r.type_name();
        let short = name.trim_start_matches("timescaledb_");
        let note = r.importer().map(|i| i.id_format());
        files.insert(
            PathBuf::from(format!("resources/{short}.md")),
            page(
                &format!("{name} Resource - terraform-provider-timescaledb"),
                "",
                &format!("{name} (Resource)"),
                &r.schema(),
                &examples("resource", name),
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
                &examples("data-source", name),
                None,
            ),
        );
    }
    files
}

/// Writes the generated files under `dir`.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    for (rel, text) in render_all() {
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
        for (rel, text) in super::render_all() {
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
