variable "access_host" {
  type        = string
  description = "Host the provider reaches the access node at."
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
  description = "Data nodes by name (the names TimescaleDB knows them by)."
}

variable "roles" {
  type        = list(string)
  default     = ["testrole", "reporter"]
  description = "Roles that reach the data nodes from the access node with a certificate."
}

variable "step" {
  type        = number
  default     = 0
  description = "The step of the CA rotation: 0 one CA, 1 trust both, 2 sign with the new CA, 3 trust only the new CA."

  validation {
    condition     = contains([0, 1, 2, 3], var.step)
    error_message = "The step is 0, 1, 2 or 3."
  }
}
