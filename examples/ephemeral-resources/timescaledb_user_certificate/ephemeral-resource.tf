# A certificate for `app`, valid for 15 minutes, made for this run only: in
# no plan and no state. The CA keeps its key on the access node.
ephemeral "timescaledb_user_certificate" "app" {
  role             = "app"
  validity_minutes = 15
  ca_cert_pem      = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node      = timescaledb_certificate_authority.ca.key_node
}

# The provider acting as `app`, logging in with that certificate (the node's
# pg_hba.conf asks `app` for `cert`).
provider "timescaledb" {
  alias    = "app"
  host     = var.access_host
  username = "app"
  sslmode  = "verify-full"

  sslrootcert = timescaledb_certificate_authority.ca.cert_pem
  clientcert {
    cert = ephemeral.timescaledb_user_certificate.app.cert_pem
    key  = ephemeral.timescaledb_user_certificate.app.private_key_pem
  }
}
