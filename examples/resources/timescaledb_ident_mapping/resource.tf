# The access node's certificate is issued to its host name; on each data node
# the name may log in as `app`, through the `cert` rule that names the map.
resource "timescaledb_ident_mapping" "access_node_as_app" {
  for_each          = toset(["dn1", "dn2"])
  node              = each.key
  map               = "certmap"
  system_username   = "access.example.com"
  database_username = "app"
}

resource "timescaledb_hba_rule" "cert" {
  for_each  = toset(["dn1", "dn2"])
  node      = each.key
  type      = "hostssl"
  databases = ["all"]
  users     = ["app"]
  address   = "10.0.0.10/32"
  method    = "cert"
  options   = { clientcert = "verify-full", map = timescaledb_ident_mapping.access_node_as_app[each.key].map }
}

# A regular expression: every `<name>@example.com` logs in as `<name>`.
resource "timescaledb_ident_mapping" "email" {
  node              = "dn1"
  map               = "email"
  system_username   = "/^(.*)@example\\.com$"
  database_username = "\\1"
}
