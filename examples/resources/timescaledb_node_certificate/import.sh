# A node's server certificate, or a user certificate on a node, as installed.
terraform import 'timescaledb_node_certificate.server["dn1"]' 'dn1 server'
terraform import timescaledb_node_certificate.testrole 'access user testrole'
