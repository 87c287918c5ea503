# Certificate authentication between the access node and the data nodes,
# step by step: a root CA; a server certificate on every node (the access
# node too: TimescaleDB presents user certificates only over TLS); a user
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

locals {
  nodes = merge({ access = var.access_host }, { for name, n in var.data_nodes : name => n.host })
}

# The root CA (openssl req -new -x509 ... in the manual set-up).
resource "timescaledb_certificate_authority" "ca" {
  subject = { common_name = "TimescaleDB cluster CA" }
}

# server.crt / server.key / root.crt on every node, ssl = on.
resource "timescaledb_node_certificate" "server" {
  for_each = local.nodes

  kind               = "server"
  node               = each.key
  common_name        = each.value
  ip_addresses       = can(regex("^[0-9.]+$", each.value)) ? [each.value] : []
  dns_names          = can(regex("^[0-9.]+$", each.value)) ? [] : [each.value]
  ca_cert_pem        = timescaledb_certificate_authority.ca.cert_pem
  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem
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

  kind               = "user"
  role               = each.key
  ca_cert_pem        = timescaledb_certificate_authority.ca.cert_pem
  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem
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

  depends_on = [timescaledb_node_certificate.server]
}

output "ca_cert_pem" {
  value = timescaledb_certificate_authority.ca.cert_pem
}
