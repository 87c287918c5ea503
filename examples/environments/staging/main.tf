# Staging: SCRAM passwords, the access node's internal ones in its passfile.

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

variable "auth_method" {
  type        = string
  default     = "password"
  description = "Staging moves to certificate authentication by setting this."
}

variable "testrole_client_password" {
  type      = string
  sensitive = true
}

variable "testrole_internal_password" {
  type      = string
  sensitive = true
}

module "auth" {
  source = "../../modules/multinode-auth"

  auth_method    = var.auth_method
  access_address = var.access_address
  nodes          = merge({ access = var.access_host }, { for name, n in var.data_nodes : name => n.host })
  roles = {
    testrole = {
      client_password   = var.testrole_client_password
      internal_password = var.testrole_internal_password
    }
  }
}

output "auth" {
  value     = module.auth
  sensitive = true
}
