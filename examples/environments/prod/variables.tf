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

variable "ca_generations" {
  type        = list(string)
  default     = ["1"]
  description = "The cluster's CAs by generation, the signing one first (see the module's `ca_generations`): `[\"1\", \"2\"]`, then `[\"2\", \"1\"]`, then `[\"2\"]` replaces the CA with no connection refused."
}
