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
  description = "The cluster CA certificate (certificate authentication), for clients' sslrootcert."
  value       = local.certificates ? timescaledb_certificate_authority.ca[0].cert_pem : null
}

output "user_certificates" {
  description = "Where each role's certificate is installed on the access node (certificate authentication)."
  value       = { for name, c in timescaledb_node_certificate.user : name => c.cert_path }
}
