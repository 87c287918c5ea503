//! `timescaledb_user_certificate`: a short-lived certificate for a role,
//! opened for one run, used to log in where the role must present a
//! certificate, kept in no plan and no state, and refused once expired.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{newest_terraform, terraform_bins, terraform_version, Cluster, Terraform};

/// The CA (key on the access node), TLS on dn1, the role `app`, and a rule
/// on dn1 that lets `app` in over TLS with a certificate only.
fn base(c: &Cluster) -> String {
    format!(
        r#"{provider}
{tls}
resource "timescaledb_distributed_role" "app" {{
  name  = "app"
  login = true
}}

resource "timescaledb_hba_rule" "cert" {{
  node       = "dn1"
  type       = "hostssl"
  databases  = ["all"]
  users      = ["app"]
  address    = "127.0.0.1/32"
  method     = "cert"
  position   = 1
  depends_on = [timescaledb_node_certificate.server]
}}
"#,
        provider = c.provider_block(),
        tls = crate::harness::tls_on_dn1("Ephemeral test CA")
    )
}

/// The certificate opened for this run: the provider acting as `app` with
/// it (reading the cluster through it), and a provisioner that keeps a copy
/// for the test to try again once it expired.
fn with_certificate(c: &Cluster, keep: &Path) -> String {
    format!(
        r#"{base}
ephemeral "timescaledb_user_certificate" "app" {{
  role             = timescaledb_distributed_role.app.name
  validity_minutes = 1
  ca_cert_pem      = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node      = timescaledb_certificate_authority.ca.key_node
}}

provider "timescaledb" {{
  alias      = "app"
  host       = "127.0.0.1"
  port       = {dn1}
  username   = "app"
  sslmode    = "require"
  fanout     = "direct"
  data_nodes = {{}}
  clientcert {{
    cert = ephemeral.timescaledb_user_certificate.app.cert_pem
    key  = ephemeral.timescaledb_user_certificate.app.private_key_pem
  }}
}}

data "timescaledb_data_nodes" "as_app" {{
  provider = timescaledb.app
}}

resource "terraform_data" "keep" {{
  provisioner "local-exec" {{
    command = "umask 077 && printf '%s' \"$CERT\" > {keep}/app.crt && printf '%s' \"$KEY\" > {keep}/app.key"
    environment = {{
      CERT = ephemeral.timescaledb_user_certificate.app.cert_pem
      KEY  = ephemeral.timescaledb_user_certificate.app.private_key_pem
    }}
  }}
}}
"#,
        base = base(c),
        dn1 = c.port("dn1"),
        keep = keep.display()
    )
}

/// Logs in to dn1 as `app` over TLS with the certificate kept in `dir`.
fn login(c: &Cluster, dir: &Path) -> std::process::Output {
    c.psql_conn(
        &format!(
            "host=127.0.0.1 port={} dbname=postgres user=app sslmode=require sslcert={} sslkey={}",
            c.port("dn1"),
            dir.join("app.crt").display(),
            dir.join("app.key").display()
        ),
        "SELECT current_user",
        &[],
    )
}

fn holds_a_key(text: &str) -> bool {
    text.contains("PRIVATE KEY")
}

#[test]
fn a_short_lived_certificate_logs_in_is_kept_nowhere_and_expires() {
    let newest = newest_terraform();
    assert!(
        terraform_version(&newest) >= vec![1, 10],
        "ephemeral resources need Terraform 1.10 or later; `make test` runs with one"
    );
    let c = Cluster::start(1);
    let keep = tempfile::tempdir().unwrap();
    let tf = Terraform::with_binary(newest);
    tf.config(&base(&c));
    tf.init();
    tf.apply();

    tf.config(&with_certificate(&c, keep.path()));
    tf.init();
    tf.must(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    let plan_file = std::fs::read(tf.work().join("tfplan")).unwrap();
    let unzip = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); sys.stdout.write(''.join(z.read(n).decode('latin-1') for n in z.namelist()))",
        ])
        .arg(tf.work().join("tfplan"))
        .output()
        .unwrap();
    assert!(unzip.status.success() && !plan_file.is_empty());
    assert!(
        !holds_a_key(&String::from_utf8_lossy(&unzip.stdout)),
        "a key in the saved plan"
    );
    let shown = tf.must(&["show", "-json", "tfplan"]).stdout;
    assert!(!holds_a_key(&shown), "a key in the shown plan");

    let applied = Instant::now();
    let run = tf.must(&["apply", "-input=false", "-no-color", "tfplan"]);
    assert!(!holds_a_key(&run.all()), "a key in apply's output");
    let state = std::fs::read_to_string(tf.work().join("terraform.tfstate")).unwrap();
    assert!(!holds_a_key(&state), "a key in the state");
    assert!(
        state.contains("as_app"),
        "the provider acting as app read the cluster"
    );

    // The certificate kept by the provisioner is the role's, and dn1 lets
    // `app` in with it only: over TLS, by `cert`.
    let out = login(&c, keep.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app");
    let without = c.psql_conn(
        &format!(
            "host=127.0.0.1 port={} dbname=postgres user=app sslmode=require",
            c.port("dn1")
        ),
        "SELECT 1",
        &[],
    );
    assert!(
        !without.status.success(),
        "dn1 let app in without a certificate"
    );

    // Once its minute has passed, the same certificate is refused.
    let expiry = Duration::from_secs(65);
    if let Some(rest) = expiry.checked_sub(applied.elapsed()) {
        std::thread::sleep(rest);
    }
    let out = login(&c, keep.path());
    assert!(
        !out.status.success(),
        "an expired certificate still logs in"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expired"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tf.config(&base(&c));
    tf.destroy();
}

/// A Terraform without ephemeral resources says so, on the block.
#[test]
fn an_older_terraform_refuses_the_ephemeral_block() {
    let Some(old) = terraform_bins()
        .into_iter()
        .find(|b| terraform_version(b) < vec![1, 10])
    else {
        panic!("`make deps` installs terraform 1.0.3, which has no ephemeral resources");
    };
    let c = Cluster::start(1);
    let keep = tempfile::tempdir().unwrap();
    let tf = Terraform::with_binary(old);
    tf.config(&with_certificate(&c, keep.path()));
    let run = tf.run(&["init", "-input=false", "-no-color"]);
    let run = if run.ok {
        tf.run(&["validate", "-no-color"])
    } else {
        run
    };
    assert!(!run.ok, "{}", run.all());
    assert!(run.flat().contains("ephemeral"), "{}", run.all());
}
