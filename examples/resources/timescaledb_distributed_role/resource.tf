variable "testrole_client_password" {
  type      = string
  sensitive = true
}

variable "testrole_internal_password" {
  type      = string
  sensitive = true
}

# A user of the cluster: clients log in to the access node with one password,
# the access node logs in to the data nodes with another (from its passfile).
resource "timescaledb_distributed_role" "testrole" {
  name               = "testrole"
  login              = true
  password           = var.testrole_client_password
  data_node_password = var.testrole_internal_password
  connection_limit   = 20
}

# The passfile line the access node uses for it.
resource "timescaledb_passfile_entry" "testrole" {
  username = timescaledb_distributed_role.testrole.name
  password = var.testrole_internal_password
}

# Trust or certificate authentication: no password anywhere.
resource "timescaledb_distributed_role" "reporting" {
  name  = "reporting"
  login = true

  # Destroying the role also drops what it owns and its privileges.
  drop_owned = true
}
