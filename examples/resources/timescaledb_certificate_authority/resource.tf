# The root CA every node and user certificate of the cluster chains to. Its
# key is kept on the access node only (timescaledb/ca/), never in state.
# Inside its renewal window it renews through an overlap, one step per
# apply: the server certificates trust every CA of `trusted_cert_pems`.
resource "timescaledb_certificate_authority" "cluster" {
  subject = {
    common_name  = "Cluster CA"
    organization = "Example Corp"
    country      = "US"
  }
  key_algorithm      = "ecdsa_p384"
  validity_days      = 3650
  early_renewal_days = 90
  key_node           = "access"
  renewal            = "overlap"
}

resource "timescaledb_node_certificate" "dn1" {
  kind            = "server"
  node            = "dn1"
  common_name     = "dn1.example.com"
  dns_names       = ["dn1.example.com"]
  ca_cert_pem     = timescaledb_certificate_authority.cluster.cert_pem
  ca_key_node     = timescaledb_certificate_authority.cluster.key_node
  trusted_ca_pems = timescaledb_certificate_authority.cluster.trusted_cert_pems

  lifecycle {
    create_before_destroy = true
  }
}
