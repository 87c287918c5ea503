# The node name, then the mapping as written in pg_ident.conf.
terraform import 'timescaledb_ident_mapping.access_node_as_app["dn1"]' 'dn1 certmap access.example.com app'
