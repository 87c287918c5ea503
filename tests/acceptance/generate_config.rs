//! Terraform 1.5 and later: `import` blocks with `terraform plan
//! -generate-config-out` write configuration for existing objects. For every
//! resource type that can be imported, that configuration must import and
//! then plan with no changes.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{terraform_bins, Cluster, Terraform};

/// The newest terraform on the machine when it has import blocks (1.5+).
fn newest_with_import_blocks() -> Option<PathBuf> {
    terraform_bins().into_iter().rev().find(|b| {
        let out = Command::new(b).args(["version", "-json"]).output();
        let v: serde_json::Value = out
            .ok()
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or_default();
        let version = v["terraform_version"]
            .as_str()
            .unwrap_or("0.0.0")
            .to_string();
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (1, 5)
    })
}

#[test]
fn generated_configuration_imports_and_plans_clean_for_every_importable_type() {
    let Some(bin) = newest_with_import_blocks() else {
        println!("no terraform 1.5 or later on this machine: import blocks not tested");
        return;
    };
    let c = Cluster::start(1);
    c.psql(
        "access",
        "CREATE EXTENSION postgres_fdw; CREATE SERVER dn1 FOREIGN DATA WRAPPER postgres_fdw",
    );
    let dn1 = c.port("dn1");
    let objects = format!(
        r#"
resource "timescaledb_hba_rule" "r" {{
  node      = "dn1"
  type      = "host"
  databases = ["all", "my db"]
  users     = ["app"]
  address   = "10.0.0.0/8"
  method    = "scram-sha-256"
  comment   = "generated"
}}

resource "timescaledb_distributed_role" "app" {{
  name  = "app"
  login = true
}}

resource "timescaledb_foreign_server_grant" "app" {{
  role    = timescaledb_distributed_role.app.name
  servers = ["dn1"]
}}

resource "timescaledb_passfile_entry" "app" {{
  hostname = "127.0.0.1"
  port     = "{dn1}"
  database = "*"
  username = "app"
  password = "app internal"
}}

resource "timescaledb_certificate_authority" "ca" {{
  subject = {{ common_name = "generated test CA" }}
}}

resource "timescaledb_node_certificate" "dn1" {{
  node               = "dn1"
  kind               = "server"
  ca_cert_pem        = timescaledb_certificate_authority.ca.cert_pem
  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem
  common_name        = "localhost"
  dns_names          = ["localhost"]
  ip_addresses       = ["127.0.0.1"]
}}

resource "timescaledb_certificate_authority" "kept" {{
  subject  = {{ common_name = "generated test CA kept on a node", organizational_unit = "ops" }}
  key_node = "access"
}}

output "ca_key" {{
  value     = timescaledb_certificate_authority.ca.private_key_pem
  sensitive = true
}}
"#
    );
    let made = Terraform::with_binary(bin.clone());
    made.config(&format!("{}{objects}", c.provider_block()));
    made.init();
    made.apply();
    let ids = made.state_ids();
    let ca_key = made.must(&["output", "-raw", "ca_key"]).stdout;

    // A new configuration holding only import blocks.
    let tf = Terraform::with_binary(bin);
    let mut imports = String::new();
    for (address, id) in &ids {
        let id = match address.as_str() {
            // Its private key exists nowhere but in the state.
            "timescaledb_certificate_authority.ca" => continue,
            // Its key is on the access node: by the node and fingerprint.
            "timescaledb_certificate_authority.kept" => format!("access {id}"),
            _ => id.clone(),
        };
        imports.push_str(&format!(
            "import {{\n  to = {address}\n  id = {}\n}}\n",
            serde_json::to_string(&id).unwrap()
        ));
    }
    tf.config(&format!("{}{imports}", c.provider_block()));
    tf.init();
    let r = tf.run(&[
        "plan",
        "-input=false",
        "-no-color",
        "-generate-config-out=generated.tf",
    ]);
    let generated = std::fs::read_to_string(tf.work().join("generated.tf")).unwrap_or_default();
    assert!(r.ok, "{}\n--- generated.tf ---\n{generated}", r.all());
    // Terraform never writes a sensitive value into generated configuration:
    // it writes `null # sensitive`, for the user to supply the secret. The
    // required ones are the passfile entry's password and the CA key a node
    // certificate is signed with; the roles here have no password.
    let mut supplied = 0;
    let mut block = String::new();
    let filled: String = generated
        .lines()
        .map(|l| {
            if l.starts_with("resource ") {
                block = l.to_string();
            }
            let value = match l.split('=').next().map(str::trim) {
                _ if !l.ends_with("= null # sensitive") => None,
                Some("password") if block.contains("timescaledb_passfile_entry") => {
                    Some("\"app internal\"".to_string())
                }
                Some("ca_private_key_pem") => Some(format!("<<-EOT\n{ca_key}\nEOT")),
                _ => None,
            };
            match value {
                Some(v) => {
                    supplied += 1;
                    format!(
                        "{} = {v}\n",
                        l.split('=').next().unwrap_or_default().trim_end()
                    )
                }
                None => format!("{l}\n"),
            }
        })
        .collect();
    assert_eq!(supplied, 2, "secrets to supply in:\n{generated}");
    std::fs::write(tf.work().join("generated.tf"), &filled).unwrap();
    let generated = filled;
    let r = tf.run(&["apply", "-input=false", "-auto-approve", "-no-color"]);
    assert!(r.ok, "{}\n--- generated.tf ---\n{generated}", r.all());
    let (changes, plan) = tf.plan();
    assert!(
        !changes,
        "{}\n--- generated.tf ---\n{generated}",
        plan.stdout
    );
}
