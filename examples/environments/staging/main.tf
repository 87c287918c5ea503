# Staging: SCRAM passwords, the access node's internal ones in its passfile.
# The passwords are ephemeral variables and write-only attributes: they are
# needed at plan and apply and stored nowhere (Terraform 1.11 or later).

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
  description = "Raise it to have apply set testrole's passwords again (after changing them)."
}

module "auth" {
  source = "../../modules/multinode-auth"

  auth_method    = var.auth_method
  access_address = var.access_address
  nodes          = merge({ access = var.access_host }, { for name, n in var.data_nodes : name => n.host })
  roles = {
    testrole = { password_version = var.testrole_password_version }
  }
  passwords = {
    testrole = {
      client   = var.testrole_client_password
      internal = var.testrole_internal_password
    }
  }
}

output "auth" {
  value     = module.auth
  sensitive = true
}
