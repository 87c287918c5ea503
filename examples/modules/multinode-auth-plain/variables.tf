variable "auth_method" {
  type        = string
  description = "How the access node authenticates to the data nodes: trust, password or certificate."

  validation {
    condition     = contains(["trust", "password", "certificate"], var.auth_method)
    error_message = "The auth_method must be one of trust, password or certificate."
  }
}

variable "access_address" {
  type        = string
  description = "IP address (or CIDR range) of the access node as the data nodes see it."

  validation {
    condition     = can(cidrhost(var.access_address, 0)) || can(cidrhost("${var.access_address}/32", 0))
    error_message = "The access_address must be an IP address or a CIDR range."
  }
}

variable "nodes" {
  type        = map(string)
  description = "Every node by name (`access` and the data nodes) to the host name or IP address clients use for it; server certificates are issued for these."

  validation {
    condition     = contains(keys(var.nodes), "access") && length(var.nodes) >= 2
    error_message = "The nodes map needs the access node (key \"access\") and at least one data node."
  }
}

variable "roles" {
  type = map(object({
    client_password   = string
    internal_password = string
  }))
  description = "Roles to set up on every node. Passwords may be null: with trust or certificate authentication they are not needed; with password authentication internal_password is what the access node logs in to data nodes with."
  sensitive   = true

  validation {
    condition     = alltrue([for name, r in var.roles : length(name) > 0 && length(name) <= 63])
    error_message = "Role names must be 1 to 63 bytes long."
  }
}

variable "certificate_validity_days" {
  type        = number
  default     = 365
  description = "Validity of node and user certificates (certificate authentication)."

  validation {
    condition     = var.certificate_validity_days >= 1 && var.certificate_validity_days <= 3650
    error_message = "The certificate_validity_days must be between 1 and 3650."
  }
}

variable "ca_generations" {
  type        = list(string)
  default     = ["1"]
  description = "The cluster's CAs by generation name (certificate authentication). The first one listed signs every server and user certificate; every one listed is trusted by every node. To replace the CA without refusing a single connection, apply three changes, each safe to stop and run again: add the new generation after the old (`[\"1\", \"2\"]`: every node trusts both, nothing is reissued), move it first (`[\"2\", \"1\"]`: every certificate is reissued by the new CA, each new one in place before the old goes, while both are trusted), then drop the old one (`[\"2\"]`: only the new CA is trusted, and the old CA's key is removed)."

  validation {
    condition     = length(var.ca_generations) >= 1 && length(distinct(var.ca_generations)) == length(var.ca_generations) && alltrue([for g in var.ca_generations : length(g) > 0])
    error_message = "The ca_generations must list at least one generation, each named once and none empty."
  }
}
