# Let the access node (10.0.0.10) reach every data node with SCRAM passwords.
resource "timescaledb_hba_rule" "from_access_node" {
  for_each = toset(["dn1", "dn2"])

  node      = each.key
  type      = "host"
  databases = ["all"]
  users     = ["all"]
  address   = "10.0.0.10/32"
  method    = "scram-sha-256"
  comment   = "access node"
}

# Certificate authentication over TLS, first among the managed rules.
resource "timescaledb_hba_rule" "certificates" {
  node      = "dn1"
  type      = "hostssl"
  databases = ["all"]
  users     = ["all"]
  address   = "all"
  method    = "cert"
  options   = { clientcert = "verify-full" }
  position  = 10
}
