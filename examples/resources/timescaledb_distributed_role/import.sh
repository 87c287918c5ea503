# The role name, exactly as written.
terraform import timescaledb_distributed_role.testrole testrole
