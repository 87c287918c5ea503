# Password (SCRAM-SHA-256) authentication between the access node and the
# data nodes, step by step: clients log in to the access node with one
# password; the access node logs in to the data nodes with an internal
# password that it reads from its passfile. The passwords are ephemeral
# variables and write-only attributes: stored in no plan and no state
# (Terraform 1.11 or later).

terraform {
  required_providers {
    timescaledb = { source = "local/timescaledb" }
  }
}

provider "timescaledb" {
  host       = var.access_host
  port       = var.access_port
  username   = "postgres"
  sslmode    = "prefer"
  data_nodes = { for name, n in var.data_nodes : name => { host = n.host, port = tostring(n.port) } }
}

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

variable "testrole_password_version" {
  type        = number
  default     = 1
  description = "Raise it to have apply set the passwords again (after changing them)."
}

# CREATE ROLE testrole PASSWORD '<client>' LOGIN on the access node, and
# CREATE ROLE testrole PASSWORD '<internal>' LOGIN on every data node.
resource "timescaledb_distributed_role" "testrole" {
  name                  = "testrole"
  login                 = true
  password_wo           = var.testrole_client_password
  data_node_password_wo = var.testrole_internal_password
  password_wo_version   = var.testrole_password_version
}

# GRANT USAGE ON FOREIGN SERVER <every data node> TO testrole
resource "timescaledb_foreign_server_grant" "testrole" {
  role = timescaledb_distributed_role.testrole.name
}

# The access node's passfile line for testrole: *:*:*:testrole:<internal>
resource "timescaledb_passfile_entry" "testrole" {
  username            = timescaledb_distributed_role.testrole.name
  password_wo         = var.testrole_internal_password
  password_wo_version = var.testrole_password_version
}

# On each data node: host all testrole <access node> scram-sha-256
resource "timescaledb_hba_rule" "scram_from_access_node" {
  for_each = var.data_nodes

  node      = each.key
  type      = "host"
  databases = ["all"]
  users     = [timescaledb_distributed_role.testrole.name]
  address   = var.access_address
  method    = "scram-sha-256"
  comment   = "access node"
}

output "passfile" {
  value = timescaledb_passfile_entry.testrole.path
}
