//! `timescaledb_node_certificate`: a certificate signed by the cluster's CA
//! and installed on a node, either as the node's server certificate or as
//! the client certificate TimescaleDB's access node presents for a role.

//!
//! The module is split by concern: the model and the resource's contract
//! here; the plan (`plan`), issuing and installing (`install`), import IDs
//! (`import`), and the TLS coupling of a TimescaleDB access node with its
//! data nodes (`tls_coupling`).

mod import;
mod install;
mod plan;
mod tls_coupling;

use crate::diag::{AttrPath, Diagnostics};
use crate::model::{At, Field};
use crate::node::{CertPaths, Node};
use crate::pki;
use crate::provider::ACCESS_NODE;
use crate::secret::Secret;
use crate::value::{Type, Value};

use super::certs::{
    early_renewal_attr, key_algorithm_attr, ready_for_renewal, ready_for_renewal_attr,
};
use super::{Applied, Checked, Completion, Ctx, Deleted, PlanInput, Read, Resource, State};
use install::{check_installed, install, issue, key_to_keep};

crate::model! {
    /// A node certificate, as configured and as kept.
    pub struct Model plan CertPlan {
        KIND => kind: Kind = required("What the certificate is for.").one_of(Kind::NAMES).force_new(),
        NODE => node: String = optional("Node the certificate is installed on: `access` or a data node name.").default(Value::string(ACCESS_NODE)).force_new(),
        ROLE => role: Option<String> = optional("For `user` certificates: the role, exactly as named; it is the certificate's common name, which PostgreSQL's `cert` method matches against the user name.").force_new(),
        COMMON_NAME => common_name: Option<String> = optional_computed("For `server` certificates: the subject's common name, usually the node's host name (required). For `user` certificates it is the role.").force_new(),
        DNS_NAMES => dns_names: Vec<String> = optional_computed("For `server` certificates: DNS names clients may use for the node (checked by `sslmode=verify-full`).").force_new(),
        IP_ADDRESSES => ip_addresses: Vec<String> = optional_computed("For `server` certificates: IP addresses clients may use for the node.").force_new(),
        CA_CERT_PEM => ca_cert_pem: String = required("The CA certificate (PEM) that signs this certificate, e.g. `timescaledb_certificate_authority.ca.cert_pem` or the hashicorp/tls provider's. It is installed as the node's `root.crt` (server) or appended to the certificate file (user). Another CA replaces the certificate.").force_new(),
        TRUSTED_CA_PEMS => trusted_ca_pems: Option<Vec<String>> = optional("For `server` certificates: more CA certificates (PEM) the node trusts besides `ca_cert_pem`, installed with it in `root.crt` (its `ssl_ca_file`): the overlap of a CA rotation, when every node must trust the old CA and the new one while certificates are reissued. A change rewrites `root.crt` in place and reloads the node; the certificate stays."),
        CA_KEY_NODE => ca_key_node: Option<String> = optional("Node that keeps the CA's private key (`timescaledb_certificate_authority.<name>.key_node`): the key is read there, through SQL, whenever a certificate is signed, and is never in the plan or the state. One of `ca_key_node`, `ca_private_key_pem_wo` and `ca_private_key_pem` is required."),
        CA_PRIVATE_KEY_PEM_WO => ca_private_key_pem_wo: Option<Secret> = optional("The CA's private key (PEM, PKCS#8; PKCS#1 and SEC1 are read too), for a CA kept elsewhere.").write_only(),
        CA_PRIVATE_KEY_PEM => ca_private_key_pem: Option<Secret> = optional("The CA's private key (PEM, PKCS#8; PKCS#1 and SEC1 are read too), kept in state (marked sensitive); prefer `ca_key_node` or `ca_private_key_pem_wo`.").sensitive(),
        KEY_ALGORITHM => key_algorithm: String = key_algorithm_attr(),
        VALIDITY_DAYS => validity_days(super::certs::VALIDITY_DAYS): i64 = optional("Days the certificate is valid.").default(Value::int(DEFAULT_VALIDITY)).force_new(),
        EARLY_RENEWAL_DAYS => early_renewal_days(super::certs::EARLY_RENEWAL_DAYS): i64 = early_renewal_attr(),
        CONFIGURE_SSL => configure_ssl: bool = optional("For `server` certificates: point the node's `ssl*` settings at the installed files and turn `ssl` on. Destroy then resets those settings (TLS off) before removing the files. When false, the files are only installed, and destroy leaves them in place while a setting still refers to them.").default(Value::Bool(DEFAULT_CONFIGURE_SSL)),
        CERT_PEM => cert_pem: Option<String> = computed("The certificate, PEM.").stable(),
        PUBLIC_KEY_FINGERPRINT => public_key_fingerprint("public_key_fingerprint_sha256"): Option<String> = computed("SHA-256 of the certificate's public key (the raw subject public key), lower-case hex. The private key itself is made by the provider, written to the node (mode 0600) and kept nowhere else: a key file missing or not matching the certificate plans a new key and certificate.").stable(),
        FINGERPRINT => fingerprint("fingerprint_sha256"): Option<String> = computed("SHA-256 fingerprint of the certificate (DER), lower-case hex.").stable(),
        NOT_AFTER => not_after: Option<String> = computed("Expiry of the certificate, RFC 3339.").stable(),
        CERT_PATH => cert_path: Option<String> = computed("Path of the certificate file on the node.").stable(),
        KEY_PATH => key_path: Option<String> = computed("Path of the key file on the node.").stable(),
        CA_PATH => ca_path: Option<String> = computed("Path of the CA file on the node (`server` certificates).").stable(),
        ID => id: Option<String> = computed("`<node> server` or `<node> user <role>`, which is also the import ID.").stable(),
        READY_FOR_RENEWAL => ready_for_renewal(super::certs::READY_FOR_RENEWAL): Option<bool> = ready_for_renewal_attr(),
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
         or the state: it is made in the provider's memory and written to the node only. A user certificate reissued by \
         another CA (a CA rotation, see `trusted_ca_pems`) keeps the node's key, so only the certificate file changes.";

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
const DEFAULT_VALIDITY: i64 = 365;
const DEFAULT_CONFIGURE_SSL: bool = true;

pub struct NodeCertificate;

#[tonic::async_trait]
impl Resource for NodeCertificate {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_node_certificate";

    const DESCRIPTION: &'static str = DESCRIPTION;

    const IMPORT_ID: Option<&'static str> = Some("<node> server, or <node> user <role>");

    fn validate(&self, config: &CertPlan) -> Diagnostics {
        plan::validate(config)
    }

    fn refine_replace(&self, prior: &Model, planned: &CertPlan, replace: &mut Vec<AttrPath>) {
        plan::refine_replace(prior, planned, replace)
    }

    fn must_replace(&self, prior: &Model, planned: &CertPlan) -> Option<AttrPath> {
        super::certs::renewal_due(
            &prior.not_after,
            prior.early_renewal_days,
            &planned.early_renewal_days,
        )
    }

    async fn complete_plan(&self, plan: &mut Completion<'_, Model>) -> Checked {
        plan::complete(plan.config, plan.planned);
        Ok(())
    }

    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        plan::check(ctx, plan).await
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        import::import(ctx, id).await
    }

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
        let keep = key_to_keep(ctx, &planned).await?;
        let (cert_pem, key_pem) = issue(ctx, &planned, keep.as_ref()).await?;
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
                let (cert_pem, key_pem) = issue(ctx, &state, None).await?;
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

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Deleted {
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
            .await?;
        Ok(Diagnostics::new())
    }
}

impl Model {
    /// What a server certificate's `root.crt` holds: `ca_cert_pem`, then
    /// each CA of `trusted_ca_pems` that is not the same certificate, one
    /// after the other, each ending in a newline.
    fn ca_bundle(&self) -> String {
        let mut seen = Vec::new();
        let mut out = String::new();
        for pem in std::iter::once(&self.ca_cert_pem).chain(self.trusted_ca_pems.iter().flatten()) {
            let pem = pem.trim();
            let id = pki::inspect(pem)
                .map(|i| i.fingerprint_sha256)
                .unwrap_or_else(|_| pem.to_string());
            if !seen.contains(&id) {
                seen.push(id);
                out.push_str(pem);
                out.push('\n');
            }
        }
        out
    }

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
