# Every certificate on every node: what each serves and trusts, the role
# certificates of the access node and the CAs kept there.
data "timescaledb_certificates" "all" {}

# Certificates that expire within 30 days, for an alert.
output "expiring" {
  value = [
    for c in data.timescaledb_certificates.all.certificates :
    "${c.node} ${c.kind} ${coalesce(c.subject, "?")}: ${c.days_left} days left (${c.not_after})"
    if c.days_left < 30
  ]
}

# Certificates no node trusts the CA of (for instance after a CA rotation
# that dropped a CA too early).
output "untrusted" {
  value = [
    for c in data.timescaledb_certificates.all.certificates :
    "${c.node} ${c.kind} ${c.path}"
    if contains(["server", "user"], c.kind) && length(c.trusted_by) == 0
  ]
}
