# The node name, then the rule's first fields as written in pg_hba.conf.
terraform import 'timescaledb_hba_rule.from_access_node["dn1"]' 'dn1 host all all 10.0.0.10/32'
terraform import timescaledb_hba_rule.local_postgres 'access local all postgres'
