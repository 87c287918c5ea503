# The CA keeps its key on the access node; no key enters the state.
resource "timescaledb_certificate_authority" "cluster" {
  subject  = { common_name = "Cluster CA" }
  key_node = "access"
}

# TLS on every node, the access node included: TimescaleDB presents user
# certificates to data nodes only when the access node itself runs TLS.
resource "timescaledb_node_certificate" "server" {
  for_each = toset(["access", "dn1", "dn2"])

  kind        = "server"
  node        = each.key
  common_name = "${each.key}.db.example.com"
  dns_names   = ["${each.key}.db.example.com"]
  ca_cert_pem = timescaledb_certificate_authority.cluster.cert_pem
  ca_key_node = timescaledb_certificate_authority.cluster.key_node
}

# The certificate the access node presents for `testrole` on data nodes.
resource "timescaledb_node_certificate" "testrole" {
  kind        = "user"
  role        = "testrole"
  ca_cert_pem = timescaledb_certificate_authority.cluster.cert_pem
  ca_key_node = timescaledb_certificate_authority.cluster.key_node
}

# Data nodes accept testrole only with a certificate signed by the CA.
resource "timescaledb_hba_rule" "certificates" {
  for_each = toset(["dn1", "dn2"])

  node      = each.key
  type      = "hostssl"
  databases = ["all"]
  users     = ["testrole"]
  address   = "10.0.0.10/32"
  method    = "cert"
  options   = { clientcert = "verify-full" }

  # hostssl rules need TLS on the node first.
  depends_on = [timescaledb_node_certificate.server]
}
