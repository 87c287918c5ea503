variable "testrole_client_password" {
  type      = string
  sensitive = true
  ephemeral = true
}

variable "testrole_internal_password" {
  type      = string
  sensitive = true
  ephemeral = true
}

# A user of the cluster: clients log in to the access node with one password,
# the access node logs in to the data nodes with another (from its passfile).
# Both are write-only: in no plan and no state. Raise password_wo_version
# to set new ones.
resource "timescaledb_distributed_role" "testrole" {
  name                  = "testrole"
  login                 = true
  password_wo           = var.testrole_client_password
  data_node_password_wo = var.testrole_internal_password
  password_wo_version   = 1
  connection_limit      = 20
}

# The passfile line the access node uses for it.
resource "timescaledb_passfile_entry" "testrole" {
  username            = timescaledb_distributed_role.testrole.name
  password_wo         = var.testrole_internal_password
  password_wo_version = 1
}

# Trust or certificate authentication: no password anywhere.
resource "timescaledb_distributed_role" "reporting" {
  name  = "reporting"
  login = true

  # Destroying the role also drops what it owns and its privileges.
  drop_owned = true
}
