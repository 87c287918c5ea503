variable "internal_passwords" {
  type      = map(string)
  sensitive = true
}

# The access node logs in to every data node with the internal password of
# the connecting user, which it finds in its passfile.
resource "timescaledb_passfile_entry" "internal" {
  for_each = nonsensitive(toset(keys(var.internal_passwords)))

  username = each.key
  password = var.internal_passwords[each.key]
}

# An entry for one data node only, ahead of the catch-all entries.
resource "timescaledb_passfile_entry" "dn1_postgres" {
  hostname = "10.0.0.21"
  port     = "5432"
  username = "postgres"
  password = var.internal_passwords["postgres"]
  position = 10
}
