# Certificate authentication between the access node and the data nodes,
# step by step: a root CA; a server certificate on every node (the access
# node too, after the data nodes: TimescaleDB presents user certificates only
# over TLS, and reaches data nodes only over TLS once its own ssl is on); a user
# certificate for each role on the access node, where TimescaleDB looks for
# it; and data nodes that accept the role only with its certificate.

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

# The root CA (openssl req -new -x509 ... in the manual set-up). Its key is
# written to the access node (mode 0600, in timescaledb/ca/ of its data
# directory) and kept nowhere else; each node's key is made for that node
# and kept on it only.
resource "timescaledb_certificate_authority" "ca" {
  subject  = { common_name = "TimescaleDB cluster CA" }
  key_node = "access"
}

# server.crt / server.key / root.crt on every data node, ssl = on.
resource "timescaledb_node_certificate" "server" {
  for_each = { for name, n in var.data_nodes : name => n.host }

  kind         = "server"
  node         = each.key
  common_name  = each.value
  ip_addresses = can(regex("^[0-9.]+$", each.value)) ? [each.value] : []
  dns_names    = can(regex("^[0-9.]+$", each.value)) ? [] : [each.value]
  ca_cert_pem  = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node  = timescaledb_certificate_authority.ca.key_node
}

# The same on the access node. While its ssl is on, TimescaleDB reaches the
# data nodes over TLS only: so it comes after their certificates and goes
# before them.
resource "timescaledb_node_certificate" "access_server" {
  kind         = "server"
  node         = "access"
  common_name  = var.access_host
  ip_addresses = can(regex("^[0-9.]+$", var.access_host)) ? [var.access_host] : []
  dns_names    = can(regex("^[0-9.]+$", var.access_host)) ? [] : [var.access_host]
  ca_cert_pem  = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node  = timescaledb_certificate_authority.ca.key_node

  depends_on = [timescaledb_node_certificate.server]
}

resource "timescaledb_distributed_role" "testrole" {
  name  = "testrole"
  login = true
}

resource "timescaledb_foreign_server_grant" "testrole" {
  role = timescaledb_distributed_role.testrole.name
}

# User certificates on the access node, for postgres and for testrole.
resource "timescaledb_node_certificate" "user" {
  for_each = toset(["postgres", timescaledb_distributed_role.testrole.name])

  kind        = "user"
  role        = each.key
  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node = timescaledb_certificate_authority.ca.key_node
}

# On each data node: hostssl all testrole <access node> cert clientcert=verify-full
resource "timescaledb_hba_rule" "cert_from_access_node" {
  for_each = var.data_nodes

  node      = each.key
  type      = "hostssl"
  databases = ["all"]
  users     = [timescaledb_distributed_role.testrole.name]
  address   = var.access_address
  method    = "cert"
  options   = { clientcert = "verify-full" }
  comment   = "access node"

  depends_on = [timescaledb_node_certificate.server, timescaledb_node_certificate.access_server]
}

output "ca_cert_pem" {
  value = timescaledb_certificate_authority.ca.cert_pem
}
