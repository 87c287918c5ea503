# Every rule a data node enforces, as the server reads its pg_hba.conf.
data "timescaledb_hba_rules" "dn1" {
  node = "dn1"
}

# Rules that let anyone in without a password, for an audit.
output "trust_rules" {
  value = [
    for r in data.timescaledb_hba_rules.dn1.rules :
    "line ${r.line_number}: ${r.type} ${join(",", r.databases)} ${join(",", r.users)} ${coalesce(r.address, "")}"
    if r.method == "trust"
  ]
}
