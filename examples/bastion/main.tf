# Data nodes in a private network, Terraform outside it: every connection
# the provider makes (to the access node and to each data node) goes through
# one SSH bastion, with the bastion's host key pinned. TLS to the nodes runs
# inside the tunnel, so sslmode and verify-full check the nodes themselves.
# Node addresses are as the bastion sees them.
#
# The module is the same one the environments use: switch auth_method
# between trust, password and certificate in one run.

terraform {
  required_providers {
    timescaledb = { source = "local/timescaledb" }
  }
}

provider "timescaledb" {
  host       = var.access_host
  port       = var.access_port
  username   = "postgres"
  data_nodes = { for name, n in var.data_nodes : name => { host = n.host, port = tostring(n.port) } }

  bastion {
    host        = var.bastion.host
    port        = var.bastion.port
    user        = var.bastion.user
    private_key = var.bastion_private_key
    host_key    = var.bastion.host_keys
  }
}

module "auth" {
  source = "../modules/multinode-auth"

  auth_method    = var.auth_method
  access_address = var.access_address
  nodes          = merge({ access = var.access_host }, { for name, n in var.data_nodes : name => n.host })
  roles = {
    testrole = { password_version = var.auth_method == "password" ? var.testrole_password_version : null }
  }
  # Passwords only where the method uses them.
  passwords = {
    for role, p in {
      testrole = {
        client   = var.testrole_client_password
        internal = var.testrole_internal_password
      }
    } : role => p if var.auth_method == "password"
  }
}

output "auth" {
  value     = module.auth
  sensitive = true
}
