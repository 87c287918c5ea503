//! The plugin binary driven over gRPC the way Terraform drives it: the
//! go-plugin handshake, AutoMTLS with a P-521 client certificate, and the
//! protocol 6.x behaviour newer Terraform versions rely on (GetMetadata,
//! unknown values, deferral, destroy plans) that terraform 1.0 never uses.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tonic::transport::{Channel, Endpoint, Uri};

use tsdb_provider::proto::tfplugin6 as pb;
use tsdb_provider::proto::tfplugin6::provider_client::ProviderClient;
use tsdb_provider::resources::{hba_rule::HbaRule, DynResource};
use tsdb_provider::schema::object;
use tsdb_provider::value::{msgpack, Type, Value};

use crate::harness::Cluster;

const BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-timescaledb");

/// A certificate like the one Terraform makes for each plugin it starts.
pub(crate) struct ClientIdentity {
    pub(crate) pem: String,
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

pub(crate) fn client_identity() -> ClientIdentity {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = params.self_signed(&key).unwrap();
    ClientIdentity {
        pem: cert.pem(),
        der: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

pub(crate) struct Plugin {
    pub(crate) child: Child,
    network: String,
    address: String,
    server_cert: Vec<u8>,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_plugin(client_pem: &str) -> Plugin {
    let mut child = Command::new(BIN)
        .env(
            "TF_PLUGIN_MAGIC_COOKIE",
            tsdb_provider::plugin::MAGIC_COOKIE_VALUE,
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env("PLUGIN_CLIENT_CERT", client_pem)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start plugin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let parts: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(parts.len(), 6, "handshake line {line:?}");
    assert_eq!(
        (parts[0], parts[1], parts[4]),
        ("1", "6", "grpc"),
        "handshake line {line:?}"
    );
    use base64::Engine;
    let server_cert = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(parts[5])
        .expect("unpadded standard base64 DER");
    Plugin {
        child,
        network: parts[2].into(),
        address: parts[3].into(),
        server_cert,
    }
}

/// Trusts exactly the certificate from the handshake line, as go-plugin does.
#[derive(Debug)]
struct PinnedServer(Vec<u8>, Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        ee: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if ee.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "unexpected server certificate".into(),
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) async fn connect(
    p: &Plugin,
    identity: Option<&ClientIdentity>,
) -> Result<ProviderClient<Channel>, Box<dyn std::error::Error>> {
    assert_eq!(p.network, "unix");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(p.server_cert.clone(), provider)));
    let mut cfg = match identity {
        Some(id) => builder.with_client_auth_cert(vec![id.der.clone()], id.key.clone_key())?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let cfg = Arc::new(cfg);
    let path = p.address.clone();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (path, cfg) = (path.clone(), cfg.clone());
            async move {
                let sock = tokio::net::UnixStream::connect(path).await?;
                let tls = tokio_rustls::TlsConnector::from(cfg)
                    .connect(ServerName::try_from("localhost").unwrap(), sock)
                    .await?;
                assert_eq!(
                    tls.get_ref().1.alpn_protocol(),
                    Some(&b"h2"[..]),
                    "server negotiates ALPN h2"
                );
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await?;
    Ok(ProviderClient::new(channel))
}

pub(crate) fn dv(v: &Value, ty: &Type) -> Option<pb::DynamicValue> {
    Some(pb::DynamicValue {
        msgpack: msgpack::encode(v, ty).unwrap(),
        json: vec![],
    })
}

pub(crate) fn provider_config(pairs: &[(&'static str, Value)]) -> Value {
    let schema = tsdb_provider::provider::config::schema();
    let mut v = object(schema.attributes.iter().map(|a| (a.name, Value::Null)));
    v.set_attr("clientcert", Value::Null);
    for (k, x) in pairs {
        v.set_attr(k, x.clone());
    }
    v
}

fn hba_config(pairs: &[(&'static str, Value)]) -> Value {
    let mut v = object(
        HbaRule
            .schema()
            .attributes
            .iter()
            .map(|a| (a.name, Value::Null)),
    );
    for (k, x) in pairs {
        v.set_attr(k, x.clone());
    }
    v
}

#[test]
fn run_by_hand_it_explains_itself_and_exits_1() {
    let out = Command::new(BIN)
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("started by Terraform"));
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout, where the handshake goes"
    );
}

#[tokio::test]
async fn automtls_refuses_clients_without_terraforms_certificate() {
    let terraform = client_identity();
    let p = start_plugin(&terraform.pem);

    let without = async {
        connect(&p, None)
            .await?
            .get_metadata(pb::get_metadata::Request {})
            .await
            .map_err(Into::into)
    };
    let r: Result<_, Box<dyn std::error::Error>> = without.await;
    assert!(r.is_err(), "a client without a certificate must be refused");

    let stranger = client_identity();
    let other = async {
        connect(&p, Some(&stranger))
            .await?
            .get_metadata(pb::get_metadata::Request {})
            .await
            .map_err(Into::into)
    };
    let r: Result<_, Box<dyn std::error::Error>> = other.await;
    assert!(
        r.is_err(),
        "a client with another certificate must be refused"
    );

    let mut client = connect(&p, Some(&terraform))
        .await
        .expect("Terraform's certificate is accepted");
    let meta = client
        .get_metadata(pb::get_metadata::Request {})
        .await
        .unwrap()
        .into_inner();
    let caps = meta.server_capabilities.unwrap();
    assert!(caps.plan_destroy && caps.get_provider_schema_optional);
    assert!(meta
        .resources
        .iter()
        .any(|r| r.type_name == "timescaledb_hba_rule"));
}

#[tokio::test]
async fn newer_terraform_unknowns_deferral_and_destroy_plans() {
    let terraform = client_identity();
    let p = start_plugin(&terraform.pem);
    let mut client = connect(&p, Some(&terraform)).await.unwrap();
    let pty = tsdb_provider::provider::config::schema().ty();
    let rty = HbaRule.schema().ty();
    let caps = Some(pb::ClientCapabilities {
        deferral_allowed: true,
        write_only_attributes_allowed: true,
    });

    // provider block not known yet: configure succeeds, reads are deferred
    let unknown = provider_config(&[("host", Value::Unknown)]);
    let r = client
        .configure_provider(pb::configure_provider::Request {
            terraform_version: "1.9.0".into(),
            config: dv(&unknown, &pty),
            client_capabilities: caps,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let state = hba_config(&[
        ("node", Value::string("access")),
        ("type", Value::string("host")),
        ("databases", Value::list_of_strings(["all"])),
        ("users", Value::list_of_strings(["all"])),
        ("address", Value::string("10.0.0.0/8")),
        ("method", Value::string("trust")),
        ("position", Value::int(100)),
        ("id", Value::string("access host all all 10.0.0.0/8")),
        (
            "line",
            Value::string("host all all 10.0.0.0/8 trust # (100)"),
        ),
    ]);
    let r = client
        .read_resource(pb::read_resource::Request {
            type_name: "timescaledb_hba_rule".into(),
            current_state: dv(&state, &rty),
            client_capabilities: caps,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.deferred.map(|d| d.reason),
        Some(pb::deferred::Reason::ProviderConfigUnknown as i32)
    );
    assert_eq!(
        msgpack::decode(&r.new_state.unwrap().msgpack, &rty).unwrap(),
        state
    );

    // unknown values in config are planned as unknown, with no error
    let mut config = state.clone();
    config.set_attr("address", Value::Unknown);
    config.set_attr("position", Value::Null);
    config.set_attr("node", Value::Null);
    config.set_attr("id", Value::Null);
    config.set_attr("line", Value::Null);
    let v = client
        .validate_resource_config(pb::validate_resource_config::Request {
            type_name: "timescaledb_hba_rule".into(),
            config: dv(&config, &rty),
            client_capabilities: caps,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.diagnostics.is_empty(), "{:?}", v.diagnostics);
    let plan = client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "timescaledb_hba_rule".into(),
            prior_state: dv(&Value::Null, &rty),
            proposed_new_state: dv(&config, &rty),
            config: dv(&config, &rty),
            client_capabilities: caps,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(plan.diagnostics.is_empty(), "{:?}", plan.diagnostics);
    let planned = msgpack::decode(&plan.planned_state.unwrap().msgpack, &rty).unwrap();
    assert_eq!(planned.attr("address"), &Value::Unknown);
    assert_eq!(planned.attr("id"), &Value::Unknown);
    assert_eq!(
        planned.attr("node"),
        &Value::string("access"),
        "default applied"
    );
    assert_eq!(
        planned.attr("position"),
        &Value::int(100),
        "default applied"
    );

    // a real cluster: import initdb's loopback rule, then plan its destroy
    let c = Cluster::start(0);
    let known = provider_config(&[
        ("host", Value::string("127.0.0.1")),
        ("port", Value::int(i64::from(c.port("access")))),
        ("username", Value::string("postgres")),
        ("sslmode", Value::string("disable")),
    ]);
    let r = client
        .configure_provider(pb::configure_provider::Request {
            terraform_version: "1.9.0".into(),
            config: dv(&known, &pty),
            client_capabilities: caps,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    let imported = client
        .import_resource_state(pb::import_resource_state::Request {
            type_name: "timescaledb_hba_rule".into(),
            id: "access host all all 127.0.0.1/32".into(),
            client_capabilities: caps,
            identity: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        imported.diagnostics.is_empty(),
        "{:?}",
        imported.diagnostics
    );
    let loopback = imported.imported_resources[0].state.clone();
    let destroy = client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "timescaledb_hba_rule".into(),
            prior_state: loopback.clone(),
            proposed_new_state: dv(&Value::Null, &rty),
            config: dv(&Value::Null, &rty),
            client_capabilities: caps,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let text = format!("{:?}", destroy.diagnostics);
    assert!(
        text.contains("lock the provider out"),
        "removing the provider's only way in must be refused: {text}"
    );
    assert!(
        c.read_hba("access").contains("127.0.0.1/32"),
        "nothing changed"
    );

    // destroying a harmless rule plans cleanly to null
    let r = client
        .plan_resource_change(pb::plan_resource_change::Request {
            type_name: "timescaledb_hba_rule".into(),
            prior_state: dv(&state, &rty),
            proposed_new_state: dv(&Value::Null, &rty),
            config: dv(&Value::Null, &rty),
            client_capabilities: caps,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
    assert_eq!(
        msgpack::decode(&r.planned_state.unwrap().msgpack, &rty).unwrap(),
        Value::Null
    );
}

#[tokio::test]
async fn debug_mode_prints_a_reattach_line_and_serves_without_tls() {
    let mut child = Command::new(BIN)
        .arg("--debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut reattach = None;
    for _ in 0..10 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(json) = line
            .trim()
            .strip_prefix("TF_REATTACH_PROVIDERS='")
            .and_then(|l| l.strip_suffix('\''))
        {
            reattach = Some(serde_json::from_str::<serde_json::Value>(json).unwrap());
            break;
        }
    }
    let reattach = reattach.expect("a TF_REATTACH_PROVIDERS line");
    let entry = &reattach["registry.terraform.io/local/timescaledb"];
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Test"], true);
    assert_eq!(entry["Addr"]["Network"], "unix");
    let path = entry["Addr"]["String"].as_str().unwrap().to_string();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .unwrap();
    let meta = ProviderClient::new(channel)
        .get_metadata(pb::get_metadata::Request {})
        .await
        .unwrap()
        .into_inner();
    assert!(!meta.resources.is_empty());
    let _ = child.kill();
    let _ = child.wait();
}
