# The provider's own way in, written first.
resource "timescaledb_hba_rule" "provider" {
  for_each  = toset(["dn1", "dn2"])
  node      = each.key
  type      = "hostssl"
  databases = ["all"]
  users     = ["postgres"]
  address   = "10.0.0.10/32"
  method    = "cert"
  position  = 1
}

# On each data node, nothing but the declared rules and the local socket line
# the operators rely on: a line added by hand is drift, and apply removes it.
resource "timescaledb_hba_file" "data_node" {
  for_each   = toset(["dn1", "dn2"])
  node       = each.key
  keep       = ["${each.key} local all postgres"]
  depends_on = [timescaledb_hba_rule.provider]
}

output "undeclared_rules" {
  value = { for k, f in timescaledb_hba_file.data_node : k => f.undeclared }
}
