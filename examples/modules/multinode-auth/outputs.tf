output "role_nodes" {
  description = "For each role, how each node's copy compares with the configuration."
  value       = { for name, r in timescaledb_distributed_role.this : name => r.nodes }
}

output "hba_lines" {
  description = "The pg_hba.conf line on each data node."
  value       = { for node, r in timescaledb_hba_rule.access_node : node => r.line }
}

output "passfile" {
  description = "The access node's passfile, when any role has an internal password."
  value       = length(timescaledb_passfile_entry.this) > 0 ? values(timescaledb_passfile_entry.this)[0].path : null
}

output "ca_cert_pem" {
  description = "The CA certificate that signs the nodes' certificates now (certificate authentication)."
  value       = local.certificates ? local.signing_ca.cert_pem : null
}

output "ca_bundle_pem" {
  description = "Every CA certificate the nodes trust, one after the other (certificate authentication): clients' sslrootcert, which keeps verify-full working through a CA rotation."
  value       = local.certificates ? join("", [for g in var.ca_generations : "${trimspace(timescaledb_certificate_authority.ca[g].cert_pem)}\n"]) : null
}

output "user_certificates" {
  description = "Where each role's certificate is installed on the access node (certificate authentication)."
  value       = { for name, c in timescaledb_node_certificate.user : name => c.cert_path }
}
