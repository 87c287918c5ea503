# The role (every server it has USAGE on), or the role and a list of servers.
terraform import timescaledb_foreign_server_grant.testrole testrole
terraform import timescaledb_foreign_server_grant.reporting_dn1 'reporting/dn1'
