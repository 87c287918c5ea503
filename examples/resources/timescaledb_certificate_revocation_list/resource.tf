# Shut out one role's certificate at once, without replacing the CA: the
# data nodes, which check the certificates the access node presents, refuse
# it at its next login; every other certificate of the CA still logs in.
resource "timescaledb_certificate_revocation_list" "cluster" {
  ca_cert_pem = timescaledb_certificate_authority.cluster.cert_pem
  ca_key_node = timescaledb_certificate_authority.cluster.key_node
  nodes       = ["dn1", "dn2"]

  revoked_certificate_pems = [
    timescaledb_node_certificate.user["reporter"].cert_pem,
  ]

  lifecycle {
    create_before_destroy = true
  }
}
