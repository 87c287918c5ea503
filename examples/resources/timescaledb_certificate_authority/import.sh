# A CA whose key the access node keeps, by the node and the CA certificate's
# SHA-256 fingerprint (as `openssl x509 -noout -fingerprint -sha256` prints
# it, or lower-case hex). A CA whose key is kept in state cannot be imported.
terraform import timescaledb_certificate_authority.ca 'access 3F:1A:...:9C'
