# Replacing the cluster CA with the resources themselves, without refusing a
# connection: the three steps of docs/guides/ca-rotation.md, one value of
# `step` each. Step 0 is the cluster as it runs today, with one CA ("old");
# step 1 adds the next CA ("new") and every node trusts both; step 2 signs
# every certificate with the new CA, both still trusted; step 3 leaves the
# old CA out. Apply each step before the next.

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

resource "timescaledb_certificate_authority" "old" {
  count = var.step <= 2 ? 1 : 0

  subject  = { common_name = "TimescaleDB cluster CA" }
  key_node = "access"
}

resource "timescaledb_certificate_authority" "new" {
  count = var.step >= 1 ? 1 : 0

  subject  = { common_name = "TimescaleDB cluster CA (next)" }
  key_node = "access"
}

locals {
  # The CA that signs, and the ones every node trusts besides it.
  signing = var.step >= 2 ? timescaledb_certificate_authority.new[0] : timescaledb_certificate_authority.old[0]
  also_trusted = (
    var.step == 1 ? [for ca in timescaledb_certificate_authority.new : ca.cert_pem] :
    var.step == 2 ? [for ca in timescaledb_certificate_authority.old : ca.cert_pem] : []
  )
  hosts = merge({ access = var.access_host }, { for name, n in var.data_nodes : name => n.host })
}

# Every data node's certificate, and root.crt with every CA it trusts. A new
# certificate is in place before the old one goes.
resource "timescaledb_node_certificate" "server" {
  for_each = { for name, n in var.data_nodes : name => n.host }

  kind            = "server"
  node            = each.key
  common_name     = each.value
  ip_addresses    = can(regex("^[0-9.]+$", each.value)) ? [each.value] : []
  dns_names       = can(regex("^[0-9.]+$", each.value)) ? [] : [each.value]
  ca_cert_pem     = local.signing.cert_pem
  ca_key_node     = local.signing.key_node
  trusted_ca_pems = local.also_trusted

  lifecycle {
    create_before_destroy = true
  }
}

# The access node's, after the data nodes' (its ssl on, TimescaleDB reaches
# the data nodes over TLS only).
resource "timescaledb_node_certificate" "access_server" {
  kind            = "server"
  node            = "access"
  common_name     = var.access_host
  ip_addresses    = can(regex("^[0-9.]+$", var.access_host)) ? [var.access_host] : []
  dns_names       = can(regex("^[0-9.]+$", var.access_host)) ? [] : [var.access_host]
  ca_cert_pem     = local.signing.cert_pem
  ca_key_node     = local.signing.key_node
  trusted_ca_pems = local.also_trusted

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [timescaledb_node_certificate.server]
}

resource "timescaledb_distributed_role" "this" {
  for_each = toset(var.roles)

  name  = each.key
  login = true
}

resource "timescaledb_foreign_server_grant" "this" {
  for_each = toset(var.roles)

  role = timescaledb_distributed_role.this[each.key].name
}

# The certificate the access node presents for each role. Reissued by the new
# CA, it keeps its key.
resource "timescaledb_node_certificate" "user" {
  for_each = toset(var.roles)

  kind        = "user"
  role        = timescaledb_distributed_role.this[each.key].name
  ca_cert_pem = local.signing.cert_pem
  ca_key_node = local.signing.key_node

  lifecycle {
    create_before_destroy = true
  }
}

# Each data node accepts the roles from the access node with a certificate.
resource "timescaledb_hba_rule" "cert_from_access_node" {
  for_each = var.data_nodes

  node      = each.key
  type      = "hostssl"
  databases = ["all"]
  users     = [for r in timescaledb_distributed_role.this : r.name]
  address   = var.access_address
  method    = "cert"
  options   = { clientcert = "verify-full" }
  comment   = "access node"

  depends_on = [timescaledb_node_certificate.server, timescaledb_node_certificate.access_server]
}

# Every CA the nodes trust, for clients' sslrootcert: give it to them after
# each step (before step 2, they need the new CA).
output "ca_bundle_pem" {
  value = join("", concat([local.signing.cert_pem], local.also_trusted))
}
