variable "roles" {
  type        = set(string)
  description = "Roles the access node logs in to the data nodes as."
}

variable "internal_passwords" {
  type      = map(string)
  sensitive = true
  ephemeral = true
}

# The access node logs in to every data node with the internal password of
# the connecting user, which it finds in its passfile.
# The passwords are write-only: kept in no plan and no state.
resource "timescaledb_passfile_entry" "internal" {
  for_each = var.roles

  username            = each.key
  password_wo         = var.internal_passwords[each.key]
  password_wo_version = 1
}

# An entry for one data node only, ahead of the catch-all entries.
resource "timescaledb_passfile_entry" "dn1_postgres" {
  hostname            = "10.0.0.21"
  port                = "5432"
  username            = "postgres"
  password_wo         = var.internal_passwords["postgres"]
  password_wo_version = 1
  position            = 10
}
