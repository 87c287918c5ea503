# Production: certificates everywhere, no passwords between the nodes.

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
}

module "auth" {
  source = "../../modules/multinode-auth"

  auth_method               = "certificate"
  access_address            = var.access_address
  nodes                     = merge({ access = var.access_host }, { for name, n in var.data_nodes : name => n.host })
  certificate_validity_days = 90
  ca_generations            = var.ca_generations
  roles = {
    testrole = {}
    reporter = {}
  }
}

output "auth" {
  value = module.auth
}
