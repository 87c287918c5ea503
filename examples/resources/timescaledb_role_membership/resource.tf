# The group `ssl_cert` on every node, with its members: a
# `hostssl all +ssl_cert ... cert` rule then lets exactly them in.
resource "timescaledb_distributed_role" "ssl_cert" {
  name = "ssl_cert"
}

resource "timescaledb_role_membership" "ssl_cert" {
  group   = timescaledb_distributed_role.ssl_cert.name
  members = [timescaledb_distributed_role.app.name, timescaledb_distributed_role.reporter.name]
  exact   = true # members added by hand are drift, and apply revokes them
}
