# TimescaleDB multi-node authentication as one module: the same roles,
# grants and rules for trust, password or certificate authentication
# between the access node and the data nodes. No password and no private
# key enters the plan or the state: passwords are write-only and come in
# through an ephemeral variable, the CA's key stays on the access node and
# each node's key on its node. Terraform 1.11 or later; the module
# `multinode-auth-plain` is the same for older releases, with the passwords
# kept in state.

terraform {
  required_version = ">= 1.11"
  required_providers {
    timescaledb = { source = "local/timescaledb" }
  }
}

locals {
  data_nodes    = { for name, host in var.nodes : name => host if name != "access" }
  role_names    = toset(keys(var.roles))
  with_passfile = toset([for name, r in var.roles : name if r.password_version != null])
  certificates  = var.auth_method == "certificate"

  # The pg_hba.conf rule each data node gets for the access node.
  rule = {
    trust       = { type = "host", method = "trust", options = null }
    password    = { type = "host", method = "scram-sha-256", options = null }
    certificate = { type = "hostssl", method = "cert", options = { clientcert = "verify-full" } }
  }[var.auth_method]
}

# Each role on the access node and, with LOGIN, on every data node.
resource "timescaledb_distributed_role" "this" {
  for_each = local.role_names

  name                  = each.key
  login                 = true
  password_wo           = try(var.passwords[each.key].client, null)
  data_node_password_wo = try(var.passwords[each.key].internal, null)
  password_wo_version   = var.roles[each.key].password_version
  data_nodes            = keys(local.data_nodes)
}

# USAGE on every data node's foreign server.
resource "timescaledb_foreign_server_grant" "this" {
  for_each = local.role_names

  role    = timescaledb_distributed_role.this[each.key].name
  servers = keys(local.data_nodes)
}

# The access node's passfile lines for roles with passwords.
resource "timescaledb_passfile_entry" "this" {
  for_each = local.with_passfile

  username            = timescaledb_distributed_role.this[each.key].name
  password_wo         = var.passwords[each.key].internal
  password_wo_version = var.roles[each.key].password_version
}

# The cluster's CAs by generation, each keeping its key on the access node
# as the runbook does. The first generation listed signs every certificate;
# every one listed is trusted by every node (see `ca_generations`).
resource "timescaledb_certificate_authority" "ca" {
  for_each = local.certificates ? toset(var.ca_generations) : toset([])

  # Generation "1" keeps the name the cluster CA always had.
  subject  = { common_name = each.key == "1" ? "TimescaleDB cluster CA" : "TimescaleDB cluster CA ${each.key}" }
  key_node = "access"
}

locals {
  signing_ca  = local.certificates ? timescaledb_certificate_authority.ca[var.ca_generations[0]] : null
  trusted_cas = local.certificates ? [for g in slice(var.ca_generations, 1, length(var.ca_generations)) : timescaledb_certificate_authority.ca[g].cert_pem] : []
}

moved {
  from = timescaledb_certificate_authority.ca[0]
  to   = timescaledb_certificate_authority.ca["1"]
}

# TLS on every data node.
resource "timescaledb_node_certificate" "server" {
  for_each = local.certificates ? local.data_nodes : {}

  kind            = "server"
  node            = each.key
  common_name     = each.value
  ip_addresses    = can(cidrhost("${each.value}/32", 0)) ? [each.value] : []
  dns_names       = can(cidrhost("${each.value}/32", 0)) ? [] : [each.value]
  validity_days   = var.certificate_validity_days
  ca_cert_pem     = local.signing_ca.cert_pem
  ca_key_node     = local.signing_ca.key_node
  trusted_ca_pems = local.trusted_cas

  lifecycle {
    create_before_destroy = true
  }
}

# TLS on the access node. While the access node's ssl is on, TimescaleDB
# reaches every data node over TLS only, so this certificate comes after the
# data nodes' and goes before them (depends_on orders both).
resource "timescaledb_node_certificate" "access_server" {
  count = local.certificates ? 1 : 0

  kind            = "server"
  node            = "access"
  common_name     = var.nodes["access"]
  ip_addresses    = can(cidrhost("${var.nodes["access"]}/32", 0)) ? [var.nodes["access"]] : []
  dns_names       = can(cidrhost("${var.nodes["access"]}/32", 0)) ? [] : [var.nodes["access"]]
  validity_days   = var.certificate_validity_days
  ca_cert_pem     = local.signing_ca.cert_pem
  ca_key_node     = local.signing_ca.key_node
  trusted_ca_pems = local.trusted_cas

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [timescaledb_node_certificate.server]
}

# The certificates the access node presents for each role.
resource "timescaledb_node_certificate" "user" {
  for_each = local.certificates ? local.role_names : toset([])

  kind          = "user"
  role          = timescaledb_distributed_role.this[each.key].name
  validity_days = var.certificate_validity_days
  ca_cert_pem   = local.signing_ca.cert_pem
  ca_key_node   = local.signing_ca.key_node

  lifecycle {
    create_before_destroy = true
  }
}

# Each data node lets the access node in for the roles. A change of method
# creates the new rule before the old one goes, so there is always a way in.
resource "timescaledb_hba_rule" "access_node" {
  for_each = local.data_nodes

  node      = each.key
  type      = local.rule.type
  databases = ["all"]
  users     = sort(tolist(local.role_names))
  address   = var.access_address
  method    = local.rule.method
  options   = local.rule.options
  position  = 10
  comment   = "access node (${var.auth_method})"

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [timescaledb_node_certificate.server, timescaledb_node_certificate.access_server]
}
