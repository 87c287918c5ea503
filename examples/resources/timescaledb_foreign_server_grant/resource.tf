resource "timescaledb_distributed_role" "testrole" {
  name  = "testrole"
  login = true
}

# USAGE on every data node's foreign server.
resource "timescaledb_foreign_server_grant" "testrole" {
  role = timescaledb_distributed_role.testrole.name
}

# Or on some of them only.
resource "timescaledb_foreign_server_grant" "reporting_dn1" {
  role    = "reporting"
  servers = ["dn1"]
}
