# The entry's first four fields as written in the file, optionally after the node name.
terraform import 'timescaledb_passfile_entry.internal["testrole"]' '*:*:*:testrole'
terraform import timescaledb_passfile_entry.dn1_postgres 'access 10.0.0.21:5432:*:postgres'
