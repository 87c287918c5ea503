# The group's name: its members on the access node are adopted.
terraform import timescaledb_role_membership.ssl_cert ssl_cert
