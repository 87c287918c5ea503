//! `timescaledb_ident_mapping`: a certificate whose common name is not the
//! role's logs in through a map the provider writes; the map edited by hand
//! is drift; a rule naming a map nobody made is refused; a regular
//! expression the server refuses is refused at plan time.

use std::path::PathBuf;

use crate::harness::{Cluster, Terraform};

fn config(c: &Cluster, rule_map: &str, extra: &str) -> String {
    format!(
        r#"{provider}
{tls}
# A certificate issued to a host name, not to the role.
resource "timescaledb_node_certificate" "client" {{
  kind        = "user"
  role        = "app.example.com"
  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node = timescaledb_certificate_authority.ca.key_node
}}

resource "timescaledb_distributed_role" "app" {{
  name  = "app"
  login = true
}}

resource "timescaledb_ident_mapping" "certmap" {{
  node              = "dn1"
  map               = "certmap"
  system_username   = "app.example.com"
  database_username = timescaledb_distributed_role.app.name
}}

resource "timescaledb_hba_rule" "cert" {{
  node       = "dn1"
  type       = "hostssl"
  databases  = ["all"]
  users      = ["app"]
  address    = "127.0.0.1/32"
  method     = "cert"
  options    = {{ map = {rule_map} }}
  position   = 1
  depends_on = [timescaledb_node_certificate.server]
}}
{extra}"#,
        provider = c.provider_block(),
        tls = crate::harness::tls_on_dn1("Ident test CA")
    )
}

/// The client certificate's files, where the access node keeps them.
fn client_files(c: &Cluster) -> (PathBuf, PathBuf) {
    crate::certificates::user_cert(c, "app.example.com")
}

/// Logs in to dn1 as `app` with the certificate issued to
/// `app.example.com`.
fn logs_in_with_the_certificate(c: &Cluster) -> bool {
    let (cert, key) = client_files(c);
    let copy = tempfile::tempdir().unwrap();
    let key_copy = copy.path().join("client.key");
    std::fs::copy(&key, &key_copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    c.psql_conn(
        &format!(
            "host=127.0.0.1 port={} dbname=postgres user=app sslmode=require sslcert={} sslkey={}",
            c.port("dn1"),
            cert.display(),
            key_copy.display()
        ),
        "SELECT current_user",
        &[],
    )
    .status
    .success()
}

#[test]
fn a_certificate_for_another_name_logs_in_through_a_map() {
    let c = Cluster::start(1);
    c.install_distributed_exec_standin();
    let tf = Terraform::new();
    let by_reference = "timescaledb_ident_mapping.certmap.map";
    tf.config(&config(&c, by_reference, ""));
    tf.init();
    tf.apply();
    assert!(
        logs_in_with_the_certificate(&c),
        "the map does not let the certificate in"
    );
    tf.assert_no_changes();

    // Edited by hand: the mapping is gone, the plan makes it again.
    let ident = c.data_dir("dn1").join("pg_ident.conf");
    let text = std::fs::read_to_string(&ident).unwrap();
    std::fs::write(
        &ident,
        text.replace(
            "certmap app.example.com app",
            "certmap app.example.com other",
        ),
    )
    .unwrap();
    c.psql("dn1", "SELECT pg_reload_conf()");
    assert!(!logs_in_with_the_certificate(&c));
    let (changes, plan) = tf.plan();
    assert!(
        changes
            && plan
                .stdout
                .contains("timescaledb_ident_mapping.certmap will be created"),
        "{}",
        plan.stdout
    );
    tf.apply();
    assert!(logs_in_with_the_certificate(&c));
    tf.assert_no_changes();

    // Import adopts the mapping.
    tf.must(&["state", "rm", "timescaledb_ident_mapping.certmap"]);
    tf.must(&[
        "import",
        "-input=false",
        "-no-color",
        "timescaledb_ident_mapping.certmap",
        "dn1 certmap app.example.com app",
    ]);
    tf.assert_no_changes();

    // A rule naming a map nobody made: warned at plan time, refused at
    // apply, and nothing is written.
    let other = r#"
resource "timescaledb_hba_rule" "nomap" {
  node      = "dn1"
  type      = "hostssl"
  databases = ["all"]
  users     = ["nobody"]
  address   = "127.0.0.1/32"
  method    = "cert"
  options   = { map = "nomap" }
}
"#;
    tf.config(&config(&c, by_reference, other));
    let before = c.read_hba("dn1");
    let run = tf.try_apply();
    assert!(!run.ok, "{}", run.all());
    assert!(
        run.flat().contains("No such map in pg_ident.conf yet"),
        "{}",
        run.all()
    );
    assert!(
        run.flat().contains("No such map in pg_ident.conf"),
        "{}",
        run.all()
    );
    assert_eq!(c.read_hba("dn1"), before);

    // A regular expression the server's engine refuses, at plan time.
    let bad_regex = r#"
resource "timescaledb_ident_mapping" "bad" {
  node              = "dn1"
  map               = "email"
  system_username   = "/^(unclosed$"
  database_username = "\\1"
}
"#;
    tf.config(&config(&c, by_reference, bad_regex));
    let run = tf.run(&["plan", "-input=false", "-no-color"]);
    assert!(
        !run.ok && run.flat().contains("Invalid regular expression"),
        "{}",
        run.all()
    );

    tf.config(&config(&c, by_reference, ""));
    tf.destroy();
    // The mapping is gone; the line edited by hand is not the provider's and
    // stays.
    let after = std::fs::read_to_string(&ident).unwrap();
    assert!(!after.contains("certmap app.example.com app\n"), "{after}");
    assert!(after.contains("certmap app.example.com other"), "{after}");
}
