variable "auth_method" {
  type        = string
  default     = "trust"
  description = "trust, password or certificate."
}

variable "bastion" {
  type = object({
    host      = string
    port      = optional(number, 22)
    user      = string
    host_keys = list(string)
  })
  description = "The SSH bastion: its address as Terraform sees it, the user to log in as, and its host keys (the lines of its /etc/ssh/ssh_host_*_key.pub)."
}

variable "bastion_private_key" {
  type        = string
  sensitive   = true
  ephemeral   = true
  description = "Private key of the bastion user: the key text, or the path of a file that holds it."
}

variable "access_host" {
  type        = string
  description = "Host of the access node, as the bastion reaches it."
}

variable "access_port" {
  type    = number
  default = 5432
}

variable "access_address" {
  type        = string
  description = "IP address of the access node as the data nodes see it (its connections come from there)."
}

variable "data_nodes" {
  type        = map(object({ host = string, port = number }))
  description = "Data nodes by name, with their hosts as the bastion reaches them."
}

variable "testrole_client_password" {
  type      = string
  sensitive = true
  ephemeral = true
  default   = null
}

variable "testrole_internal_password" {
  type      = string
  sensitive = true
  ephemeral = true
  default   = null
}

variable "testrole_password_version" {
  type    = number
  default = 1
}
