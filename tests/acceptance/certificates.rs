//! The certificate part of multi-node authentication against live nodes: a
//! CA, server certificates on every node, user certificates on the access
//! node, and data nodes that accept testrole only with its certificate.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::harness::{Cluster, Terraform};

fn certificate_third(c: &Cluster, early_renewal_days: u32) -> String {
    format!(
        r#"{provider}
resource "timescaledb_certificate_authority" "ca" {{
  subject = {{ common_name = "Test Cluster CA", organization = "Acceptance" }}
}}

resource "timescaledb_node_certificate" "server" {{
  for_each           = toset(["access", "dn1", "dn2"])
  kind               = "server"
  node               = each.key
  common_name        = "localhost"
  dns_names          = ["localhost"]
  ip_addresses       = ["127.0.0.1"]
  ca_cert_pem        = timescaledb_certificate_authority.ca.cert_pem
  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem
}}

resource "timescaledb_distributed_role" "testrole" {{
  name  = "testrole"
  login = true
}}

resource "timescaledb_node_certificate" "user" {{
  for_each           = toset(["postgres", timescaledb_distributed_role.testrole.name])
  kind               = "user"
  role               = each.key
  ca_cert_pem        = timescaledb_certificate_authority.ca.cert_pem
  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem
  early_renewal_days = {early_renewal_days}
}}

resource "timescaledb_hba_rule" "cert" {{
  for_each   = toset(["dn1", "dn2"])
  node       = each.key
  type       = "hostssl"
  databases  = ["all"]
  users      = ["testrole"]
  address    = "127.0.0.1/32"
  method     = "cert"
  options    = {{ clientcert = "verify-full" }}
  position   = 10
  depends_on = [timescaledb_node_certificate.server]
}}
"#,
        provider = c.provider_block()
    )
}

/// The md5 file name TimescaleDB uses for a role's certificate.
pub(crate) fn user_cert(c: &Cluster, role: &str) -> (PathBuf, PathBuf) {
    let out = c.psql("access", &format!("SELECT md5('{role}')"));
    let dir = c.data_dir("access").join("timescaledb/certs");
    (
        dir.join(format!("{out}.crt")),
        dir.join(format!("{out}.key")),
    )
}

/// Connects to `node` as `user` with `sslmode=verify-full`, presenting the
/// given certificate (if any).
pub(crate) fn cert_login(
    c: &Cluster,
    node: &str,
    user: &str,
    cert: Option<&(PathBuf, PathBuf)>,
) -> Output {
    let root = c.data_dir("dn1").join("root.crt");
    let mut conninfo = format!(
        "host=127.0.0.1 port={} dbname=postgres user={user} sslmode=verify-full sslrootcert={}",
        c.port(node),
        root.display()
    );
    match cert {
        Some((crt, key)) => conninfo.push_str(&format!(
            " sslcert={} sslkey={}",
            crt.display(),
            key.display()
        )),
        None => conninfo.push_str(" sslcert=/nonexistent sslkey=/nonexistent"),
    }
    c.psql_conn(&conninfo, "SELECT current_user", &[])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fingerprint_in_state(tf: &Terraform, addr: &str) -> String {
    let show = tf.must(&["state", "show", "-no-color", addr]);
    show.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("fingerprint_sha256"))
        .map(|l| {
            l.trim_start_matches([' ', '='])
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_default()
}

fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn certificate_third_end_to_end() {
    let c = Cluster::start(2);
    let tf = Terraform::new();
    tf.config(&certificate_third(&c, 30));
    tf.init();
    tf.apply();

    for node in ["access", "dn1", "dn2"] {
        assert_eq!(c.psql(node, "SHOW ssl"), "on", "{node}");
    }
    let testrole = user_cert(&c, "testrole");
    let postgres = user_cert(&c, "postgres");
    assert!(exists(&testrole.0) && exists(&testrole.1) && exists(&postgres.0));
    let key_mode = std::fs::metadata(&testrole.1).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );
    // The certificate file carries the chain: the role's certificate, then the CA.
    let chain = std::fs::read_to_string(&testrole.0).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);

    // testrole logs in to each data node with its certificate and no password,
    // the server certificate checked against the CA (verify-full).
    for node in ["dn1", "dn2"] {
        let out = cert_login(&c, node, "testrole", Some(&testrole));
        assert!(out.status.success(), "{node}: {}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "testrole");
        let out = cert_login(&c, node, "testrole", None);
        assert!(
            !out.status.success(),
            "{node} let testrole in without a certificate"
        );
        // postgres's certificate does not make anyone testrole.
        let out = cert_login(&c, node, "testrole", Some(&postgres));
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("certificate authentication failed"),
            "{}",
            stderr(&out)
        );
    }
    tf.assert_no_changes();

    // Drift: a deleted key file, and a server certificate replaced by hand.
    std::fs::remove_file(&testrole.1).unwrap();
    std::fs::set_permissions(
        &postgres.1,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let dn1_crt = c.data_dir("dn1").join("server.crt");
    let original_dn1 = std::fs::read(&dn1_crt).unwrap();
    std::fs::copy(c.data_dir("dn2").join("server.crt"), &dn1_crt).unwrap();
    let (changes, plan) = tf.plan();
    assert!(changes);
    for expected in [
        "\"key file missing\" -> \"in sync\"",
        "\"certificate file replaced",
        "\"key file mode 0644\" -> \"in sync\"",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "{expected} not in:\n{}",
            plan.stdout
        );
    }
    tf.apply();
    tf.assert_no_changes();
    assert_eq!(std::fs::read(&dn1_crt).unwrap(), original_dn1);
    let mode = std::fs::metadata(&postgres.1).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    assert!(cert_login(&c, "dn1", "testrole", Some(&testrole))
        .status
        .success());

    // Inside the renewal window a new certificate is planned and installed.
    let user_addr = "timescaledb_node_certificate.user[\"testrole\"]";
    let before = fingerprint_in_state(&tf, user_addr);
    tf.config(&certificate_third(&c, 400));
    let (changes, plan) = tf.plan();
    assert!(
        changes && plan.stdout.contains("must be replaced"),
        "{}",
        plan.stdout
    );
    tf.apply();
    let after = fingerprint_in_state(&tf, user_addr);
    assert!(!before.is_empty() && before != after);
    assert!(cert_login(&c, "dn2", "testrole", Some(&testrole))
        .status
        .success());
    tf.config(&certificate_third(&c, 30));
    tf.apply();
    tf.assert_no_changes();

    // Import adopts installed certificates.
    let server_addr = "timescaledb_node_certificate.server[\"dn1\"]";
    let server_fp = fingerprint_in_state(&tf, server_addr);
    tf.must(&["state", "rm", server_addr, user_addr]);
    tf.must(&["import", "-no-color", server_addr, "dn1 server"]);
    tf.must(&["import", "-no-color", user_addr, "access user testrole"]);
    // The CA key is not on the node: the first apply records it.
    tf.apply();
    tf.assert_no_changes();
    assert_eq!(fingerprint_in_state(&tf, server_addr), server_fp);
    assert_eq!(fingerprint_in_state(&tf, user_addr), after);

    // The provider itself verifies nodes when asked to.
    let ca_file = c.data_dir("dn1").join("root.crt");
    let verify = Terraform::new();
    let provider = c.provider_block().replace(
        "sslmode = \"disable\"",
        &format!(
            "sslmode = \"verify-full\"\n  sslrootcert = \"{}\"",
            ca_file.display()
        ),
    );
    verify.config(&format!(
        "{provider}\ndata \"timescaledb_data_nodes\" \"all\" {{}}\noutput \"reachable\" {{\n  value = [for n in data.timescaledb_data_nodes.all.nodes : n.reachable]\n}}\n"
    ));
    verify.init();
    verify.apply();
    assert_eq!(
        verify.must(&["output", "-json", "reachable"]).stdout.trim(),
        "[true,true]"
    );
    // ... and refuses a node whose certificate does not chain to
    // `sslrootcert` (the nodes accept plain connections too, so a provider
    // ignoring it would get in).
    let other_ca = tsdb_provider::pki::new_ca(
        tsdb_provider::pki::distinguished_name([("common_name", "Other CA")]).unwrap(),
        "ecdsa_p256",
        30,
    )
    .unwrap()
    .cert_pem;
    let other_ca_file = c.data_dir("access").join("other-ca.crt");
    std::fs::write(&other_ca_file, other_ca).unwrap();
    let foreign = provider.replace(
        &ca_file.display().to_string(),
        &other_ca_file.display().to_string(),
    );
    verify.config(&format!(
        "{foreign}\nresource \"timescaledb_hba_rule\" \"r\" {{\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"nobody\"]\n  address = \"192.0.2.1\"\n  method = \"reject\"\n}}\n"
    ));
    let r = verify.run(&["plan", "-no-color"]);
    let out = r.flat();
    assert!(!r.ok, "a foreign CA: the provider got in:\n{out}");
    assert!(
        out.contains("Cannot reach node") && out.contains("certificate"),
        "a foreign CA: refused for another reason:\n{out}"
    );

    tf.destroy();
    for node in ["access", "dn1", "dn2"] {
        assert_eq!(c.psql(node, "SHOW ssl"), "off", "{node}");
        assert!(!exists(&c.data_dir(node).join("server.key")), "{node}");
        assert!(!exists(&c.data_dir(node).join("server.crt")), "{node}");
        let auto = std::fs::read_to_string(c.data_dir(node).join("postgresql.auto.conf")).unwrap();
        assert!(!auto.contains("ssl"), "{node}: {auto}");
    }
    assert!(!exists(&testrole.0) && !exists(&testrole.1) && !exists(&postgres.1));
}

#[test]
fn bad_certificate_inputs_are_refused_before_anything_changes() {
    use tsdb_provider::pki;
    let c = Cluster::start(1);
    let ca = |cn: &str| {
        pki::new_ca(
            pki::distinguished_name([("common_name", cn)]).unwrap(),
            "ecdsa_p256",
            10,
        )
        .unwrap()
    };
    let (a, b) = (ca("A"), ca("B"));
    let tf = Terraform::new();
    let config = |cert: &str, key: &str, extra: &str| {
        format!(
            "{}\nresource \"timescaledb_node_certificate\" \"s\" {{\n  kind = \"server\"\n  node = \"dn1\"\n  common_name = \"localhost\"\n  ca_cert_pem = <<EOT\n{cert}EOT\n  ca_private_key_pem = <<EOT\n{key}EOT\n{extra}}}\n",
            c.provider_block()
        )
    };
    tf.config(&config(&a.cert_pem, b.key_pem.expose(), ""));
    tf.init();
    let run = tf.try_apply();
    assert!(!run.ok);
    assert!(
        run.all()
            .contains("the private key does not belong to the CA certificate"),
        "{}",
        run.all()
    );
    assert!(run.all().contains("ca_private_key_pem"), "{}", run.all());
    tf.config(&config(
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        a.key_pem.expose(),
        "  ip_addresses = [\"300.1.1.1\"]\n",
    ));
    let run = tf.try_apply();
    assert!(!run.ok);
    assert!(
        run.all().contains("ca_cert_pem") && run.all().contains("is not an IP address"),
        "{}",
        run.all()
    );
    assert!(
        !run.all()
            .contains(a.key_pem.expose().lines().nth(1).unwrap()),
        "a key in the output"
    );
    assert!(!exists(&c.data_dir("dn1").join("server.crt")));
    assert_eq!(c.psql("dn1", "SHOW ssl"), "off");
}

#[test]
fn a_ca_inside_its_renewal_window_is_replaced_with_what_it_signed() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    let config = |early: u32| {
        format!(
            r#"{}
resource "timescaledb_certificate_authority" "ca" {{
  subject            = {{ common_name = "Renewing CA" }}
  validity_days      = 30
  early_renewal_days = {early}
}}
resource "timescaledb_node_certificate" "dn1" {{
  kind               = "server"
  node               = "dn1"
  common_name        = "localhost"
  ip_addresses       = ["127.0.0.1"]
  ca_cert_pem        = timescaledb_certificate_authority.ca.cert_pem
  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem
}}
"#,
            c.provider_block()
        )
    };
    tf.config(&config(5));
    tf.init();
    tf.apply();
    tf.assert_no_changes();
    let ca_before = fingerprint_in_state(&tf, "timescaledb_certificate_authority.ca");
    let cert_before = fingerprint_in_state(&tf, "timescaledb_node_certificate.dn1");
    // Widen the window past the validity: the CA is due, and so is what it signed.
    tf.config(&config(40));
    let (changes, plan) = tf.plan();
    assert!(changes);
    for expected in [
        "timescaledb_certificate_authority.ca must be replaced",
        "timescaledb_node_certificate.dn1 must be replaced",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "{expected} not in:\n{}",
            plan.stdout
        );
    }
    tf.apply();
    assert_ne!(
        fingerprint_in_state(&tf, "timescaledb_certificate_authority.ca"),
        ca_before
    );
    assert_ne!(
        fingerprint_in_state(&tf, "timescaledb_node_certificate.dn1"),
        cert_before
    );
    // The node serves the new certificate, which chains to the new CA.
    let root = c.data_dir("dn1").join("root.crt");
    let out = c.psql_conn(
        &format!("host=127.0.0.1 port={} dbname=postgres user=postgres sslmode=verify-full sslrootcert={}", c.port("dn1"), root.display()),
        "SELECT 1",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    tf.config(&config(5));
    tf.apply();
    tf.assert_no_changes();
    tf.destroy();
}

/// A CA whose key the access node keeps is adopted by `terraform import`
/// with the node and its fingerprint (as openssl prints it, too): the plan
/// after it has no changes, and the certificates it signed keep working
/// with it; an ID naming another fingerprint, or a node without the CA, is
/// refused with what was found.
#[test]
fn a_ca_kept_on_a_node_is_imported_by_node_and_fingerprint() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    tf.config(&format!(
        r#"{}
resource "timescaledb_certificate_authority" "ca" {{
  subject  = {{ common_name = "Imported CA", organization = "Example Org", country = "NL" }}
  key_node = "access"
}}
resource "timescaledb_node_certificate" "dn1" {{
  kind         = "server"
  node         = "dn1"
  common_name  = "localhost"
  ip_addresses = ["127.0.0.1"]
  ca_cert_pem  = timescaledb_certificate_authority.ca.cert_pem
  ca_key_node  = timescaledb_certificate_authority.ca.key_node
}}
"#,
        c.provider_block()
    ));
    tf.init();
    tf.apply();
    let fp = fingerprint_in_state(&tf, "timescaledb_certificate_authority.ca");
    tf.must(&["state", "rm", "timescaledb_certificate_authority.ca"]);

    let other = format!("access {}", "0".repeat(64));
    let r = tf.run(&[
        "import",
        "-input=false",
        "-no-color",
        "timescaledb_certificate_authority.ca",
        &other,
    ]);
    assert!(
        !r.ok && r.flat().contains("keeps no CA certificate and key"),
        "{}",
        r.all()
    );
    let r = tf.run(&[
        "import",
        "-input=false",
        "-no-color",
        "timescaledb_certificate_authority.ca",
        &format!("dn1 {fp}"),
    ]);
    assert!(
        !r.ok && r.flat().contains("keeps no CA certificate and key"),
        "{}",
        r.all()
    );

    // As `openssl x509 -noout -fingerprint -sha256` writes it.
    let openssl: Vec<String> = fp
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    tf.must(&[
        "import",
        "-input=false",
        "-no-color",
        "timescaledb_certificate_authority.ca",
        &format!("access {}", openssl.join(":")),
    ]);
    assert_eq!(
        fingerprint_in_state(&tf, "timescaledb_certificate_authority.ca"),
        fp
    );
    tf.assert_no_changes();
    tf.destroy();
    assert!(
        !exists(
            &c.data_dir("access")
                .join("timescaledb/ca")
                .join(format!("{}.key", &fp[..16]))
        ),
        "the imported CA's key stayed after destroy"
    );
}

/// A certificate installed already is found at plan time, before the CA or
/// anything else of the apply is made, with the import command.
#[test]
fn a_certificate_installed_already_is_refused_at_plan_time() {
    let c = Cluster::start(1);
    let by_hand = tsdb_provider::pki::new_ca(
        tsdb_provider::pki::distinguished_name([("common_name", "installed by hand")]).unwrap(),
        "ecdsa_p256",
        30,
    )
    .unwrap();
    std::fs::write(c.data_dir("dn1").join("server.crt"), &by_hand.cert_pem).unwrap();
    let tf = Terraform::new();
    tf.config(&format!(
        "{}resource \"timescaledb_certificate_authority\" \"ca\" {{\n  subject = {{ common_name = \"conflict\" }}\n}}\nresource \"timescaledb_node_certificate\" \"s\" {{\n  kind = \"server\"\n  node = \"dn1\"\n  common_name = \"localhost\"\n  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem\n  ca_private_key_pem = timescaledb_certificate_authority.ca.private_key_pem\n}}\n",
        c.provider_block()
    ));
    tf.init();
    // The CA does not exist yet, so the plan cannot know the certificate's
    // inputs: the check runs on the apply's own plan, before anything is
    // made on a node, and again when the CA is known.
    let r = tf.try_apply();
    let out = r.flat();
    assert!(!r.ok, "{out}");
    assert!(
        out.contains("Certificate already installed")
            && out.contains("installed by hand")
            && out.contains("terraform import <address> 'dn1 server'")
            && out.contains("node = \"dn1\""),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(c.data_dir("dn1").join("server.crt")).unwrap(),
        by_hand.cert_pem
    );
    assert_eq!(c.psql("dn1", "SHOW ssl"), "off");
}

/// `sslmode = "verify-full"` checks the node's name as well as its chain:
/// a node serving a certificate from the right CA but for another name is
/// refused (a provider checking only the chain, as `verify-ca` does, would
/// get in), and the same node with a certificate for its address is
/// reached. The access node serves a certificate for its address all
/// along.
#[test]
fn verify_full_refuses_a_certificate_for_another_name() {
    let c = Cluster::start(1);
    let tf = Terraform::new();
    let serve = |names: &str| {
        format!(
            "{}resource \"timescaledb_certificate_authority\" \"ca\" {{\n  subject = {{ common_name = \"name check CA\" }}\n  key_node = \"access\"\n}}\nresource \"timescaledb_node_certificate\" \"s\" {{\n  kind = \"server\"\n  node = \"dn1\"\n  {names}\n  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem\n  ca_key_node = timescaledb_certificate_authority.ca.key_node\n}}\nresource \"timescaledb_node_certificate\" \"access\" {{\n  kind = \"server\"\n  common_name = \"127.0.0.1\"\n  ip_addresses = [\"127.0.0.1\"]\n  ca_cert_pem = timescaledb_certificate_authority.ca.cert_pem\n  ca_key_node = timescaledb_certificate_authority.ca.key_node\n}}\n",
            c.provider_block()
        )
    };
    tf.config(&serve(
        "common_name = \"db.invalid\"\n  dns_names = [\"db.invalid\"]",
    ));
    tf.init();
    tf.apply();
    let ca_file = c.data_dir("dn1").join("root.crt");
    let verify = Terraform::new();
    verify.config(&format!(
        "{}resource \"timescaledb_hba_rule\" \"r\" {{\n  node = \"dn1\"\n  type = \"host\"\n  databases = [\"all\"]\n  users = [\"nobody\"]\n  address = \"192.0.2.1\"\n  method = \"reject\"\n}}\n",
        c.provider_block().replace(
            "sslmode = \"disable\"",
            &format!(
                "sslmode = \"verify-full\"\n  sslrootcert = \"{}\"",
                ca_file.display()
            ),
        )
    ));
    verify.init();
    let r = verify.run(&["plan", "-no-color"]);
    let out = r.flat();
    assert!(
        !r.ok,
        "a certificate for db.invalid accepted for 127.0.0.1:\n{out}"
    );
    assert!(
        out.contains("Cannot reach node") && out.contains("not valid for name"),
        "refused for another reason:\n{out}"
    );
    // The same CA, a certificate for the address the provider uses.
    tf.config(&serve(
        "common_name = \"127.0.0.1\"\n  ip_addresses = [\"127.0.0.1\"]",
    ));
    tf.apply();
    let r = verify.run(&["plan", "-no-color"]);
    assert!(r.ok, "{}", r.all());
    tf.destroy();
}
