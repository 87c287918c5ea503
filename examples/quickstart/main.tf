# What `make demo` applies: an access node and two data nodes on loopback,
# with the access node trusted by both data nodes for the role `testrole`,
# as in the trust set-up of TimescaleDB's multi-node authentication.

terraform {
  required_providers {
    timescaledb = {
      source = "local/timescaledb"
    }
  }
}

variable "access_port" {
  type        = number
  description = "Port of the access node."
}

variable "dn1_port" {
  type        = number
  description = "Port of data node dn1."
}

variable "dn2_port" {
  type        = number
  description = "Port of data node dn2."
}

provider "timescaledb" {
  host     = "127.0.0.1"
  port     = var.access_port
  username = "postgres"
  sslmode  = "disable"

  data_nodes = {
    dn1 = { port = var.dn1_port }
    dn2 = { port = var.dn2_port }
  }
}

data "timescaledb_data_nodes" "all" {}

# The user, on the access node and (with LOGIN) on every data node.
resource "timescaledb_distributed_role" "testrole" {
  name  = "testrole"
  login = true
}

# Each data node trusts connections for `testrole` from the access node.
resource "timescaledb_hba_rule" "trust_access_node" {
  for_each = toset([for n in data.timescaledb_data_nodes.all.nodes : n.name])

  node      = each.key
  type      = "host"
  databases = ["all"]
  users     = [timescaledb_distributed_role.testrole.name]
  address   = "127.0.0.1/32"
  method    = "trust"
  comment   = "access node"
}

# Clients of the access node log in with SCRAM passwords.
resource "timescaledb_hba_rule" "clients" {
  node      = "access"
  type      = "host"
  databases = ["all"]
  users     = ["all"]
  address   = "192.0.2.0/24"
  method    = "scram-sha-256"
  comment   = "application servers"
}

output "data_nodes" {
  value = { for n in data.timescaledb_data_nodes.all.nodes : n.name => "${n.host}:${n.port}" }
}

output "testrole_nodes" {
  value = timescaledb_distributed_role.testrole.nodes
}

output "rules" {
  value = merge(
    { for k, r in timescaledb_hba_rule.trust_access_node : k => r.line },
    { access = timescaledb_hba_rule.clients.line },
  )
}
