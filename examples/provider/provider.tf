terraform {
  required_providers {
    timescaledb = {
      source = "local/timescaledb"
    }
  }
}

# The access node. Data nodes are discovered from TimescaleDB's catalog,
# or listed explicitly as here (unset keys take the access node's values).
provider "timescaledb" {
  host     = "10.0.0.10"
  port     = 5432
  username = "postgres"
  sslmode  = "require"

  data_nodes = {
    dn1 = { host = "10.0.0.11" }
    dn2 = { host = "10.0.0.12" }
  }
}
