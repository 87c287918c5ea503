//! `timescaledb_node_certificate`: a certificate signed by the cluster's CA
//! and installed on a node, either as the node's server certificate or as
//! the client certificate TimescaleDB's access node presents for a role.

use crate::diag::{AttrPath, Diagnostics};
use crate::model::{At, Field, Model as _};
use crate::node::{CertPaths, Install, Installed, Node};
use crate::pki::{self, Ca, CaField, Usage};
use crate::provider::ACCESS_NODE;
use crate::secret::Secret;
use crate::value::{Type, Value};

use super::certificate_authority::{
    check_days, early_renewal_attr, key_algorithm_attr, key_home, plan_renewal, ready_for_renewal,
    renewal_due, DEFAULT_EARLY_RENEWAL_DAYS,
};
use super::{Applied, Ctx, Import, ModifyPlan, PlanInput, Read, Resource, State, ValidateConfig};

crate::model! {
    /// A node certificate, as configured and as kept.
    pub struct Model {
        KIND => kind: Kind = required("What the certificate is for.").one_of(Kind::NAMES).force_new(),
        NODE => node: String = optional("Node the certificate is installed on: `access` or a data node name.").default(Value::string(ACCESS_NODE)).force_new(),
        ROLE => role: Option<String> = optional("For `user` certificates: the role, exactly as named; it is the certificate's common name, which PostgreSQL's `cert` method matches against the user name.").force_new(),
        COMMON_NAME => common_name: Option<String> = optional_computed("For `server` certificates: the subject's common name, usually the node's host name (required). For `user` certificates it is the role.").force_new(),
        DNS_NAMES => dns_names: Vec<String> = optional_computed("For `server` certificates: DNS names clients may use for the node (checked by `sslmode=verify-full`).").force_new(),
        IP_ADDRESSES => ip_addresses: Vec<String> = optional_computed("For `server` certificates: IP addresses clients may use for the node.").force_new(),
        CA_CERT_PEM => ca_cert_pem: String = required("The CA certificate (PEM) that signs this certificate, e.g. `timescaledb_certificate_authority.ca.cert_pem` or the hashicorp/tls provider's. It is installed as the node's `root.crt` (server) or appended to the certificate file (user). Another CA replaces the certificate.").force_new(),
        CA_KEY_NODE => ca_key_node: Option<String> = optional("Node that keeps the CA's private key (`timescaledb_certificate_authority.<name>.key_node`): the key is read there, through SQL, whenever a certificate is signed, and is never in the plan or the state. One of `ca_key_node`, `ca_private_key_pem_wo` and `ca_private_key_pem` is required."),
        CA_PRIVATE_KEY_PEM_WO => ca_private_key_pem_wo: Option<Secret> = optional("The CA's private key (PEM, PKCS#8; PKCS#1 and SEC1 are read too), for a CA kept elsewhere.").write_only(),
        CA_PRIVATE_KEY_PEM => ca_private_key_pem: Option<Secret> = optional("The CA's private key (PEM, PKCS#8; PKCS#1 and SEC1 are read too), kept in state (marked sensitive); prefer `ca_key_node` or `ca_private_key_pem_wo`.").sensitive(),
        KEY_ALGORITHM => key_algorithm: String = key_algorithm_attr(),
        VALIDITY_DAYS => validity_days: i64 = optional("Days the certificate is valid.").default(Value::int(DEFAULT_VALIDITY)).force_new(),
        EARLY_RENEWAL_DAYS => early_renewal_days: i64 = early_renewal_attr(),
        CONFIGURE_SSL => configure_ssl: bool = optional("For `server` certificates: point the node's `ssl*` settings at the installed files and turn `ssl` on. Destroy then resets those settings (TLS off) before removing the files. When false, the files are only installed, and destroy leaves them in place while a setting still refers to them.").default(Value::Bool(DEFAULT_CONFIGURE_SSL)),
        CERT_PEM => cert_pem: Option<String> = computed("The certificate, PEM.").stable(),
        PUBLIC_KEY_FINGERPRINT => public_key_fingerprint("public_key_fingerprint_sha256"): Option<String> = computed("SHA-256 of the certificate's public key (the raw subject public key), lower-case hex. The private key itself is made by the provider, written to the node (mode 0600) and kept nowhere else: a key file missing or not matching the certificate plans a new key and certificate.").stable(),
        FINGERPRINT => fingerprint("fingerprint_sha256"): Option<String> = computed("SHA-256 fingerprint of the certificate (DER), lower-case hex.").stable(),
        NOT_AFTER => not_after: Option<String> = computed("Expiry of the certificate, RFC 3339.").stable(),
        CERT_PATH => cert_path: Option<String> = computed("Path of the certificate file on the node.").stable(),
        KEY_PATH => key_path: Option<String> = computed("Path of the key file on the node.").stable(),
        CA_PATH => ca_path: Option<String> = computed("Path of the CA file on the node (`server` certificates).").stable(),
        ID => id: Option<String> = computed("`<node> server` or `<node> user <role>`, which is also the import ID.").stable(),
        READY_FOR_RENEWAL => ready_for_renewal: Option<bool> = computed("Whether the certificate is inside its renewal window; when it is, the next plan replaces it."),
        INSTALLED => installed: Option<String> = computed("How the node compares with the state: `in sync`, or what differs (`key file missing`, `certificate file replaced`, `ssl settings changed`, `not served by the node`, ...). Apply puts it right."),
    }
}

const DESCRIPTION: &str = "Issues a certificate with the cluster's CA and installs it on a node, through SQL on the node (keys with mode 0600, \
         files replaced in one step). `kind = \"server\"`: the node's TLS certificate, as `server.crt`, `server.key` and the CA \
         as `root.crt` in its data directory; with `configure_ssl` the provider sets `ssl`, `ssl_cert_file`, `ssl_key_file` and \
         `ssl_ca_file` (ALTER SYSTEM), reloads, and checks with a TLS handshake that the node now serves this certificate \
         (putting the settings back if not). `kind = \"user\"`: the client certificate TimescaleDB's access node presents for \
         `role` when it connects to data nodes, installed where TimescaleDB 2.13 looks for it: \
         `<data_directory>/timescaledb/certs/<md5 of the role name>.crt` and `.key`, or directly in `timescaledb.ssl_dir` when \
         that is set; the file carries the CA certificate after the role's. TimescaleDB presents it only when the access node \
         itself runs TLS (a `server` certificate on the access node). `terraform plan` shows a file deleted or replaced by \
         hand, settings changed, or a certificate the node no longer serves in `installed`, and apply puts the same \
         certificate back; inside the renewal window it proposes a new certificate. The private key never enters the plan \
         or the state: it is made in the provider's memory and written to the node only.";

/// What a certificate is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    /// The node's own TLS certificate.
    Server,
    /// The certificate the access node presents for a role.
    User,
}

impl Kind {
    const NAMES: &'static [&'static str] = &["server", "user"];

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "server" => Some(Kind::Server),
            "user" => Some(Kind::User),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::User => "user",
        }
    }
}

/// `kind` is parsed once, where the value is decoded.
impl Field for Kind {
    fn ty() -> Type {
        Type::String
    }
    fn decode(v: &Value, at: &mut At) -> Self {
        let s = v.as_str().unwrap_or_default();
        Kind::parse(s).unwrap_or_else(|| {
            at.diags.push_error(
                Some(at.path.clone()),
                "Invalid value for kind",
                format!(
                    "{s:?} is not a certificate kind; use one of {}.",
                    Kind::NAMES.join(", ")
                ),
            );
            Kind::Server
        })
    }
    fn encode(&self) -> Value {
        Value::string(self.name())
    }
}
const IN_SYNC: &str = "in sync";
/// The state records other paths than where the node keeps the files (a
/// `timescaledb.ssl_dir` changed, or a state edited): apply installs the
/// certificate where the node looks and records that.
const PATHS_MOVED: &str = "recorded paths are not where the node keeps the files";
/// What `installed` says when the key on the node is not the
/// certificate's: only a new key and certificate can repair that.
const KEY_PROBLEMS: [&str; 2] = ["key file missing", "key file replaced"];
const ONE_CA_KEY_SOURCE: &str = "Set exactly one of `ca_key_node` (the CA keeps its key on that node: \
     `timescaledb_certificate_authority.<name>.key_node`), `ca_private_key_pem_wo` (Terraform 1.11 or later; kept out of \
     the plan and the state) or `ca_private_key_pem` (kept in state).";
/// Where the CA's key comes from, one of them.
const CA_KEY_SOURCES: [&str; 3] = [CA_KEY_NODE, CA_PRIVATE_KEY_PEM_WO, CA_PRIVATE_KEY_PEM];
const DEFAULT_VALIDITY: i64 = 365;
const DEFAULT_CONFIGURE_SSL: bool = true;

pub struct NodeCertificate;

impl ValidateConfig for NodeCertificate {
    fn validate(&self, config: &Value) -> Diagnostics {
        let mut d = Diagnostics::new();
        check_days(config, &mut d);
        match config.attr(KIND).as_str().and_then(Kind::parse) {
            Some(Kind::Server) => {
                if config.attr(COMMON_NAME).is_null() {
                    d.push_error(Some(AttrPath::attr(COMMON_NAME)), "Missing common name", "A server certificate needs a `common_name` (usually the node's host name).");
                }
                if !config.attr(ROLE).is_null() {
                    d.push_error(
                        Some(AttrPath::attr(ROLE)),
                        "Not for server certificates",
                        "`role` names the user of a `kind = \"user\"` certificate.",
                    );
                }
            }
            Some(Kind::User) => {
                if config.attr(ROLE).is_null() {
                    d.push_error(
                        Some(AttrPath::attr(ROLE)),
                        "Missing role",
                        "A user certificate needs the `role` it authenticates (its common name).",
                    );
                }
                for a in [COMMON_NAME, DNS_NAMES, IP_ADDRESSES] {
                    let v = config.attr(a);
                    let empty_list = matches!(v, Value::List(items) if items.is_empty());
                    if !v.is_null() && !empty_list {
                        d.push_error(Some(AttrPath::attr(a)), "Not for user certificates", format!("A user certificate's common name is the role; `{a}` is for server certificates."));
                    }
                }
                if config.attr(CONFIGURE_SSL) == &Value::Bool(true) {
                    d.push_error(Some(AttrPath::attr(CONFIGURE_SSL)), "Not for user certificates", "`configure_ssl` sets up the node's server certificate; TLS on the access node comes from its own `kind = \"server\"` certificate.");
                }
            }
            _ => {}
        }
        if let Value::List(items) = config.attr(IP_ADDRESSES) {
            for (i, item) in items.iter().enumerate() {
                if let Some(s) = item.as_str() {
                    if s.parse::<std::net::IpAddr>().is_err() {
                        d.push_error(
                            Some(AttrPath::attr(IP_ADDRESSES).index(i)),
                            "Invalid IP address",
                            format!("{s:?} is not an IP address."),
                        );
                    }
                }
            }
        }
        let sources: Vec<&str> = CA_KEY_SOURCES
            .into_iter()
            .filter(|a| !config.attr(a).is_null())
            .collect();
        if let [_, second, ..] = sources.as_slice() {
            d.push_error(
                Some(AttrPath::attr(second)),
                "One CA key source",
                ONE_CA_KEY_SOURCE,
            );
        }
        for key_attr in [CA_PRIVATE_KEY_PEM, CA_PRIVATE_KEY_PEM_WO] {
            if let (Value::String(cert), Value::String(key)) =
                (config.attr(CA_CERT_PEM), config.attr(key_attr))
            {
                if let Err((field, m)) = Ca::load(cert, &Secret::new(key.clone())) {
                    let path = match field {
                        CaField::Cert => CA_CERT_PEM,
                        CaField::Key => key_attr,
                    };
                    d.push_error(Some(AttrPath::attr(path)), "Invalid CA", m);
                }
            }
        }
        d
    }
}

#[tonic::async_trait]
impl Resource for NodeCertificate {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_node_certificate";

    const DESCRIPTION: &'static str = DESCRIPTION;

    crate::offers!(ValidateConfig, ModifyPlan, Import);

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let mut now = prior.value;
        let node = ctx.node(&now.node, NODE).await?;
        // Where the node keeps the files, never where the state says.
        let paths = now.paths_on(&node).await?;
        let installed = node.read_installed(&paths).await?;
        let fingerprint = now.fingerprint.clone().unwrap_or_default();
        let mut status = check_installed(&node, &now, &fingerprint, &paths, &installed).await?;
        if !now.records(&paths) {
            status = if status == IN_SYNC {
                PATHS_MOVED.to_string()
            } else {
                format!("{status}, {PATHS_MOVED}")
            };
        }
        now.installed = Some(status);
        now.ready_for_renewal = Some(
            ready_for_renewal(now.not_after.as_deref(), now.early_renewal_days).unwrap_or(true),
        );
        Ok(Some(now.into()))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        ctx.check_cancelled()?;
        let (cert_pem, key_pem) = issue(ctx, &planned).await?;
        let mut state = planned;
        state.cert_pem = Some(cert_pem);
        Ok(install(ctx, state, key_pem).await?.into())
    }

    /// Puts the same certificate back (files, mode, settings) with the key
    /// the node still holds; when that key is gone (the plan then left the
    /// certificate unknown), a new key and certificate.
    async fn update(&self, ctx: &Ctx, prior: State<Model>, planned: Model) -> Applied<Model> {
        let prior = prior.value;
        ctx.check_cancelled()?;
        let node = ctx.node(&planned.node, NODE).await?;
        let installed = node.read_installed(&prior.paths_on(&node).await?).await?;
        let cert = pki::inspect(prior.cert_pem.as_deref().unwrap_or_default())
            .map_err(|msg| Diagnostics::error("Unreadable certificate", msg))?;
        let mut state = planned;
        // The plan leaves the certificate unknown when a new key is needed.
        let renew = state.cert_pem.is_none();
        let key = match installed.key.filter(|k| pki::key_matches(&cert, k)) {
            Some(key) if !renew => key,
            _ if renew => {
                let (cert_pem, key_pem) = issue(ctx, &state).await?;
                state.cert_pem = Some(cert_pem);
                key_pem
            }
            _ => {
                return Err(Diagnostics::attr_error(
                    AttrPath::attr(INSTALLED),
                    "The certificate's key is gone from the node",
                    format!(
                        "Node {:?} no longer holds the private key of this certificate, and the key is kept nowhere \
                         else. Run plan again: it proposes a new key and certificate.",
                        state.node
                    ),
                )
                .into())
            }
        };
        Ok(install(ctx, state, key).await?.into())
    }

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Result<(), Diagnostics> {
        ctx.check_cancelled()?;
        let node = ctx.node(&prior.node, NODE).await?;
        // The files of this certificate where the node keeps them, removed
        // only while they hold the certificate the state records: a state
        // can name no other path, and an empty or changed one removes
        // nothing. A file that holds another certificate (the one replacing
        // this) keeps the node's TLS as it is.
        let paths = prior.paths_on(&node).await?;
        let fingerprint = prior.fingerprint.as_deref().unwrap_or_default();
        if prior.configures_ssl()
            && prior.node != ACCESS_NODE
            && node.holds_cert(&paths, fingerprint).await?
        {
            tls_coupling::before_data_node_tls_goes(ctx, &prior.node).await?;
        }
        node.uninstall_cert(&paths, fingerprint, prior.configures_ssl())
            .await
            .map_err(Diagnostics::from)
    }
}

#[tonic::async_trait]
impl ModifyPlan for NodeCertificate {
    fn refine_replace(&self, prior: &Value, planned: &Value, replace: &mut Vec<AttrPath>) {
        // Another spelling of the same CA (or the CA read back on import)
        // does not call for a new certificate.
        if let (Some(cert), Some(ca)) = (
            prior.attr(CERT_PEM).as_str(),
            planned.attr(CA_CERT_PEM).as_str(),
        ) {
            if pki::issued_by(cert, ca) {
                replace.retain(|p| *p != AttrPath::attr(CA_CERT_PEM));
            }
        }
    }

    fn must_replace(&self, prior: &Value, planned: &Value) -> Option<AttrPath> {
        renewal_due(prior, planned)
    }

    async fn complete_plan(
        &self,
        _ctx: Option<&Ctx>,
        config: &Value,
        planned: &mut Value,
    ) -> Result<(), Diagnostics> {
        for a in [DNS_NAMES, IP_ADDRESSES] {
            if config.attr(a).is_null() && planned.attr(a).is_unknown() {
                planned.set_attr(a, Value::List(Vec::new()));
            }
        }
        if config.attr(COMMON_NAME).is_null() && planned.attr(COMMON_NAME).is_unknown() {
            if let Value::String(r) = planned.attr(ROLE) {
                let r = r.clone();
                planned.set_attr(COMMON_NAME, Value::string(r));
            }
        }
        if let (Some(node), Some(kind)) = (
            planned.attr(NODE).as_str(),
            planned.attr(KIND).as_str().and_then(Kind::parse),
        ) {
            let id = make_id(node, kind, planned.attr(ROLE).as_str());
            planned.set_attr(ID, Value::string(id));
        }
        // The node's key gone or not the certificate's: it is kept nowhere
        // else, so apply makes a new key and certificate, in place (a
        // replacement would take the node's TLS away in between).
        let installed = planned
            .attr(INSTALLED)
            .as_str()
            .unwrap_or_default()
            .to_string();
        if KEY_PROBLEMS.iter().any(|p| installed.contains(p)) {
            for a in [CERT_PEM, FINGERPRINT, PUBLIC_KEY_FINGERPRINT, NOT_AFTER] {
                planned.set_attr(a, Value::Unknown);
            }
        }
        if installed.contains(PATHS_MOVED) {
            for a in [CERT_PATH, KEY_PATH, CA_PATH] {
                planned.set_attr(a, Value::Unknown);
            }
        }
        plan_renewal(planned);
        planned.set_attr(INSTALLED, Value::string(IN_SYNC));
        Ok(())
    }

    /// A new certificate where one from another CA is installed already (by
    /// hand or by another resource) is refused at plan time, with the
    /// import command: the new one would silently take its place. One from
    /// the configured CA is the certificate being renewed or replaced
    /// (Terraform plans the new half of a replacement as a create), or one
    /// an interrupted apply installed, and is replaced.
    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_>) -> Result<(), Diagnostics> {
        // Only a new certificate is signed: an imported one needs its CA's
        // key only once it is renewed or replaced.
        if plan.prior.is_none() && CA_KEY_SOURCES.iter().all(|a| plan.config.attr(a).is_null()) {
            return Err(Diagnostics::attr_error(
                AttrPath::attr(CA_KEY_NODE),
                "No CA key to sign with",
                ONE_CA_KEY_SOURCE,
            ));
        }
        if plan.prior.is_some() || plan.replacing {
            return Ok(());
        }
        let Ok(m) = Model::from_value(plan.planned) else {
            return Ok(()); // parts still unknown: nothing to look up yet
        };
        let node = ctx.node(&m.node, NODE).await?;
        let paths = m.paths_on(&node).await?;
        let installed = node.read_installed(&paths).await?;
        let Some(cert) = installed.cert else {
            return Ok(());
        };
        if pki::issued_by(&cert, &m.ca_cert_pem) {
            return Ok(());
        }
        let who = pki::inspect(&cert)
            .ok()
            .and_then(|i| i.common_name)
            .map(|cn| format!(" (issued to {cn:?})"))
            .unwrap_or_default();
        Err(Diagnostics::attr_error(
            AttrPath::attr(if m.kind == Kind::Server { NODE } else { ROLE }),
            "Certificate already installed",
            format!(
                "Node {:?} already has a certificate at {}{who}, not issued by the configured CA. Another resource manages it \
                 or it was installed by hand; a new one would silently take its place. Manage it with \
                 `terraform import <address> '{}'` (or, for a resource that moved to a new address, `terraform state mv`), or \
                 remove the files first.",
                m.node,
                paths.cert,
                make_id(&m.node, m.kind, m.role.as_deref())
            ),
        ))
    }
}

#[tonic::async_trait]
impl Import for NodeCertificate {
    type Model = Model;

    fn id_format(&self) -> &'static str {
        "<node> server, or <node> user <role>"
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        let (node_name, kind, role) = parse_import_id(id)?;
        let node = ctx.provider.node(node_name).await?;
        let probe = Model {
            kind,
            role: role.clone(),
            ..Model::default()
        };
        let paths = probe.paths_on(&node).await?;
        let installed = node.read_installed(&paths).await?;
        let (Some(cert_file), Some(key)) = (&installed.cert, &installed.key) else {
            return Err(Diagnostics::error(
                "Certificate not found",
                format!(
                    "Node {node_name:?} has no certificate and key at {} and {}.",
                    paths.cert, paths.key
                ),
            ));
        };
        let info = pki::inspect(cert_file).map_err(|m| {
            Diagnostics::error("Unreadable certificate", format!("{}: {m}", paths.cert))
        })?;
        let leaf = first_pem_block(cert_file);
        let ca_pem = match kind {
            Kind::Server => installed.ca.clone(),
            _ => cert_file
                .strip_prefix(&leaf)
                .map(|rest| rest.trim_start().to_string())
                .filter(|s| !s.is_empty()),
        }
        .unwrap_or_default();
        let ssl = node.ssl_settings().await?;
        let configure_ssl = kind == Kind::Server && ssl[1] == paths.cert;
        let days = (info.not_after - info.not_before).whole_days();
        let mut state = Model {
            kind,
            node: node_name.to_string(),
            id: Some(make_id(node_name, kind, role.as_deref())),
            role,
            common_name: info.common_name.clone(),
            dns_names: info.dns_names.clone(),
            ip_addresses: info.ip_addresses.clone(),
            ca_cert_pem: ca_pem,
            ca_key_node: None,
            ca_private_key_pem_wo: None,
            ca_private_key_pem: None,
            key_algorithm: pki::key_algorithm(key).unwrap_or_default().to_string(),
            validity_days: days,
            early_renewal_days: DEFAULT_EARLY_RENEWAL_DAYS,
            configure_ssl,
            cert_pem: Some(leaf),
            public_key_fingerprint: Some(info.public_key_fingerprint()),
            fingerprint: Some(info.fingerprint_sha256.clone()),
            not_after: Some(pki::rfc3339(info.not_after)),
            cert_path: Some(paths.cert.clone()),
            key_path: Some(paths.key.clone()),
            ca_path: paths.ca.clone(),
            ready_for_renewal: None,
            installed: None,
        };
        let status =
            check_installed(&node, &state, &info.fingerprint_sha256, &paths, &installed).await?;
        state.installed = Some(status);
        state.ready_for_renewal =
            ready_for_renewal(state.not_after.as_deref(), state.early_renewal_days);
        Ok(state)
    }
}

/// `<node> server` or `<node> user <role>`.
fn parse_import_id(id: &str) -> Result<(&str, Kind, Option<String>), Diagnostics> {
    let bad = || {
        Diagnostics::error(
            "Invalid import ID",
            format!("{id:?} is not `<node> server` or `<node> user <role>`, e.g. `dn1 server` or `access user testrole`."),
        )
    };
    let (node_name, rest) = id.split_once(' ').ok_or_else(bad)?;
    match rest.split_once(' ') {
        Some(("user", r)) if !r.is_empty() => Ok((node_name, Kind::User, Some(r.to_string()))),
        None if rest == "server" => Ok((node_name, Kind::Server, None)),
        _ => Err(bad()),
    }
}

fn make_id(node: &str, kind: Kind, role: Option<&str>) -> String {
    match (kind, role) {
        (Kind::User, Some(r)) => format!("{node} user {r}"),
        _ => format!("{node} {}", kind.name()),
    }
}

/// The first PEM block of a text, with its trailing newline.
fn first_pem_block(text: &str) -> String {
    const END: &str = "-----END CERTIFICATE-----";
    match text.find(END) {
        Some(i) => format!("{}\n", &text[..i + END.len()]),
        None => text.to_string(),
    }
}

/// Compares what is installed (and, for a server certificate, what the
/// node serves) with the state: `in sync`, or what differs.
async fn check_installed(
    node: &Node,
    m: &Model,
    fingerprint: &str,
    paths: &CertPaths,
    installed: &Installed,
) -> Result<String, Diagnostics> {
    let mut problems: Vec<String> = Vec::new();
    let cert_info = match &installed.cert {
        None => {
            problems.push("certificate file missing".into());
            None
        }
        Some(text) => match pki::inspect(text) {
            Ok(info) if info.fingerprint_sha256 == fingerprint => Some(info),
            _ => {
                problems.push("certificate file replaced".into());
                None
            }
        },
    };
    match (&installed.key, &cert_info) {
        (None, _) => problems.push("key file missing".into()),
        (Some(k), Some(info)) if !pki::key_matches(info, k) => {
            problems.push("key file replaced".into())
        }
        _ => {}
    }
    if let Some(mode) = installed.key_mode.filter(|m| *m != 0o600) {
        problems.push(format!("key file mode {mode:04o}"));
    }
    if m.kind == Kind::User {
        if let Some(text) = &installed.cert {
            if cert_info.is_some() && !text.contains(m.ca_cert_pem.trim()) {
                problems.push("CA chain missing from the certificate file".into());
            }
        }
    }
    if m.kind == Kind::Server {
        match &installed.ca {
            None => problems.push("CA file missing".into()),
            Some(ca) if ca.trim() != m.ca_cert_pem.trim() => {
                problems.push("CA file replaced".into())
            }
            _ => {}
        }
        if m.configure_ssl {
            let settings = node.ssl_settings().await?;
            let want = [
                "on",
                &paths.cert,
                &paths.key,
                paths.ca.as_deref().unwrap_or_default(),
            ];
            if settings.iter().zip(want).any(|(have, want)| have != want) {
                problems.push("ssl settings changed".into());
            }
            // What the server serves, unless it cannot be probed.
            if let Ok(served) = node.served_fingerprint().await {
                if served.as_deref() != Some(fingerprint) {
                    problems.push("not served by the node".into());
                }
            }
        }
    }
    Ok(if problems.is_empty() {
        IN_SYNC.to_string()
    } else {
        problems.join(", ")
    })
}

/// A new key and a certificate for it, signed by the CA. The key never
/// leaves the provider's memory but to the node.
async fn issue(ctx: &Ctx, m: &Model) -> Result<(String, Secret), Diagnostics> {
    let ca = load_ca(ctx, m).await?;
    let usage = match m.kind {
        Kind::Server => Usage::Server {
            dns_names: m.dns_names.clone(),
            ip_addresses: m
                .ip_addresses
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
        },
        _ => Usage::Client,
    };
    let issued = ca
        .issue(m.subject_name(), &usage, &m.key_algorithm, m.validity_days)
        .map_err(|msg| Diagnostics::error("Could not issue the certificate", msg))?;
    Ok((issued.cert_pem, issued.key_pem))
}

/// The CA that signs: its certificate, and its key from the node that
/// keeps it or from the configuration.
async fn load_ca(ctx: &Ctx, m: &Model) -> Result<Ca, Diagnostics> {
    let (key, key_attr) = match (&m.ca_key_node, m.ca_key()) {
        (Some(name), _) => {
            let fingerprint = pki::inspect(&m.ca_cert_pem)
                .map_err(|msg| {
                    Diagnostics::attr_error(AttrPath::attr(CA_CERT_PEM), "Invalid CA", msg)
                })?
                .fingerprint_sha256;
            let (node, paths) = key_home(ctx, name, &fingerprint, CA_KEY_NODE).await?;
            let installed = node.read_installed(&paths).await?;
            let key = installed.key.ok_or_else(|| {
                Diagnostics::attr_error(
                    AttrPath::attr(CA_KEY_NODE),
                    "CA key not found",
                    format!("Node {name:?} has no key for this CA at {}.", paths.key),
                )
            })?;
            (key, CA_KEY_NODE)
        }
        (None, Some(key)) => (key.clone(), CA_PRIVATE_KEY_PEM),
        (None, None) => {
            return Err(Diagnostics::attr_error(
                AttrPath::attr(CA_KEY_NODE),
                "No CA key",
                "Set `ca_key_node`, `ca_private_key_pem_wo` or `ca_private_key_pem`.",
            ))
        }
    };
    Ca::load(&m.ca_cert_pem, &key).map_err(|(f, msg)| {
        let attr = if f == CaField::Cert {
            CA_CERT_PEM
        } else {
            key_attr
        };
        Diagnostics::attr_error(AttrPath::attr(attr), "Invalid CA", msg)
    })
}

/// Installs the certificate in `state` with its key and fills in the
/// computed values. The key goes to the node only.
async fn install(ctx: &Ctx, mut state: Model, key_pem: Secret) -> Result<Model, Diagnostics> {
    let cert_pem = state.cert_pem.clone().unwrap_or_default();
    let info =
        pki::inspect(&cert_pem).map_err(|msg| Diagnostics::error("Unreadable certificate", msg))?;
    let node = ctx.node(&state.node, NODE).await?;
    if state.configures_ssl() && state.node == ACCESS_NODE {
        tls_coupling::before_access_node_tls_comes(ctx).await?;
    }
    let paths = state.paths_on(&node).await?;
    node.install_cert(
        paths.clone(),
        Install {
            cert_pem: cert_pem.clone(),
            key_pem,
            ca_pem: Some(state.ca_cert_pem.clone()),
            configure_ssl: state.configures_ssl(),
            fingerprint: info.fingerprint_sha256.clone(),
        },
    )
    .await?;
    state.fingerprint = Some(info.fingerprint_sha256.clone());
    state.public_key_fingerprint = Some(info.public_key_fingerprint());
    state.not_after = Some(pki::rfc3339(info.not_after));
    state.cert_path = Some(paths.cert.clone());
    state.key_path = Some(paths.key.clone());
    state.ca_path = paths.ca.clone();
    state.id = Some(make_id(&state.node, state.kind, state.role.as_deref()));
    state.ready_for_renewal =
        ready_for_renewal(state.not_after.as_deref(), state.early_renewal_days);
    let installed = node.read_installed(&paths).await?;
    let status =
        check_installed(&node, &state, &info.fingerprint_sha256, &paths, &installed).await?;
    if status != IN_SYNC {
        return Err(Diagnostics::error(
            "Certificate not in place after install",
            format!("On node {:?}: {status}.", state.node),
        ));
    }
    state.installed = Some(status);
    Ok(state)
}

impl Model {
    /// The subject's common name: a user certificate's is its role.
    fn subject_name(&self) -> &str {
        (self.common_name.as_deref())
            .or(self.role.as_deref())
            .unwrap_or_default()
    }

    /// The CA key the configuration gives, in either form.
    fn ca_key(&self) -> Option<&Secret> {
        (self.ca_private_key_pem.as_ref()).or(self.ca_private_key_pem_wo.as_ref())
    }

    /// Whether the node's ssl settings follow this certificate.
    fn configures_ssl(&self) -> bool {
        self.kind == Kind::Server && self.configure_ssl
    }

    /// Where the node keeps the files of a certificate of this kind.
    async fn paths_on(&self, node: &Node) -> Result<CertPaths, crate::node::NodeError> {
        match self.kind {
            Kind::Server => node.server_cert_paths().await,
            Kind::User => node.user_cert_paths(self.subject_name()).await,
        }
    }

    /// Whether the state records the files where `paths` (the node's) are.
    fn records(&self, paths: &CertPaths) -> bool {
        self.cert_path.as_deref() == Some(paths.cert.as_str())
            && self.key_path.as_deref() == Some(paths.key.as_str())
            && self.ca_path == paths.ca
    }
}

/// TimescaleDB multi-node couples the access node's TLS with its data
/// nodes': while the access node's `ssl` is on, it opens every data-node
/// connection with `sslmode=require`, so a data node that serves no TLS can
/// no longer be reached (every distributed query and `distributed_exec`
/// fails). Turning the access node's ssl on must therefore come after every
/// data node serves TLS, and a data node's TLS may only go once the access
/// node's is off. Plain PostgreSQL fleets (no `distributed_exec`) have no
/// such coupling.
mod tls_coupling {
    use super::*;
    use crate::provider::Route;

    const ORDER_HINT: &str = "In the configuration, make the access node's server certificate depend on the data nodes' \
         (`depends_on = [timescaledb_node_certificate.<data nodes>]`): Terraform then creates it after them and destroys it \
         before them. The certificate guide explains the order.";

    async fn coupled(ctx: &Ctx) -> Result<bool, Diagnostics> {
        Ok(matches!(
            ctx.provider.route().await?,
            Route::DistributedExec { .. }
        ))
    }

    /// Whether `node` serves TLS now: seen in a handshake, or where none
    /// can be tried (a Unix socket, a probe that fails) from its `ssl`
    /// setting. `None` when neither tells.
    async fn serves_tls(node: &Node) -> Option<bool> {
        match node.served_fingerprint().await {
            Ok(served) => Some(served.is_some()),
            Err(_) => match node.setting("ssl").await {
                Ok(Some(v)) => Some(v == "on"),
                _ => None,
            },
        }
    }

    /// Refuses to turn the access node's TLS on while a data node serves
    /// none, or while it cannot be told whether one does; nothing is
    /// installed then.
    pub async fn before_access_node_tls_comes(ctx: &Ctx) -> Result<(), Diagnostics> {
        if !coupled(ctx).await? {
            return Ok(());
        }
        let nodes = ctx.provider.data_nodes().await?;
        let (mut plain, mut unknown) = (Vec::new(), Vec::new());
        for (name, node) in nodes.iter() {
            match serves_tls(node).await {
                Some(true) => {}
                Some(false) => plain.push(format!("{name:?}")),
                None => unknown.push(format!("{name:?}")),
            }
        }
        if plain.is_empty() && unknown.is_empty() {
            return Ok(());
        }
        let mut why = Vec::new();
        if !plain.is_empty() {
            why.push(format!("data node(s) {} serve no TLS", plain.join(", ")));
        }
        if !unknown.is_empty() {
            why.push(format!(
                "whether data node(s) {} serve TLS cannot be told (no TLS handshake and no `ssl` setting could be read)",
                unknown.join(", ")
            ));
        }
        Err(Diagnostics::attr_error(
            AttrPath::attr(NODE),
            "Data nodes serve no TLS yet",
            format!(
                "Turning ssl on at the access node now could cut it off from its data nodes: {}, and while its ssl is on, \
                 TimescaleDB reaches data nodes over TLS only. Nothing was installed. {ORDER_HINT}",
                why.join("; ")
            ),
        ))
    }

    /// Refuses to take a data node's TLS away while the access node serves
    /// TLS, or while it cannot be told whether it does; nothing is removed
    /// then.
    pub async fn before_data_node_tls_goes(ctx: &Ctx, data_node: &str) -> Result<(), Diagnostics> {
        if !coupled(ctx).await? {
            return Ok(());
        }
        let why = match serves_tls(&ctx.provider.access()).await {
            Some(false) => return Ok(()),
            Some(true) => "The access node has ssl on",
            None => "Whether the access node has ssl on cannot be told (no TLS handshake and no `ssl` setting could be read)",
        };
        Err(Diagnostics::attr_error(
            AttrPath::attr(NODE),
            "The access node still requires TLS to its data nodes",
            format!(
                "{why}, and while it has, TimescaleDB reaches data node {data_node:?} over TLS only; removing its server \
                 certificate now would cut the access node off from it. Nothing was removed. Destroy the access node's server \
                 certificate first. {ORDER_HINT}"
            ),
        ))
    }
}
