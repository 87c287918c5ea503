# Trust authentication between the access node and the data nodes, step by
# step: the user exists everywhere (with LOGIN on the data nodes), may use
# the data nodes' foreign servers, and the data nodes trust the access node
# for that user.

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

# CREATE ROLE testrole on the access node, and with LOGIN on every data node.
resource "timescaledb_distributed_role" "testrole" {
  name = "testrole"
}

# GRANT USAGE ON FOREIGN SERVER <every data node> TO testrole
resource "timescaledb_foreign_server_grant" "testrole" {
  role = timescaledb_distributed_role.testrole.name
}

# On each data node: host all testrole <access node> trust
resource "timescaledb_hba_rule" "trust_access_node" {
  for_each = var.data_nodes

  node      = each.key
  type      = "host"
  databases = ["all"]
  users     = [timescaledb_distributed_role.testrole.name]
  address   = var.access_address
  method    = "trust"
  comment   = "access node"
}

output "testrole_nodes" {
  value = timescaledb_distributed_role.testrole.nodes
}
