# The root CA every node and user certificate of the cluster chains to. Its
# key is kept on the access node only (timescaledb/ca/), never in state.
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
}
