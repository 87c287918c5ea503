//! `timescaledb_certificate_revocation_list`: a CA's list of revoked
//! certificates, signed where the CA's key is, installed as the
//! `ssl_crl_file` of the nodes that check that CA's certificates.

use crate::diag::{AttrPath, Diagnostics};
use crate::model::Planned;
use crate::pki;
use crate::secret::Secret;
use crate::value::Value;

use super::certs::{ca_from_node, check_days, load_ca, ready_for_renewal};
use super::{Applied, Checked, Completion, Ctx, Deleted, PlanInput, Read, Resource, State};

crate::model! {
    /// A revocation list, as configured and as kept.
    pub struct Model plan CrlPlan {
        CA_CERT_PEM => ca_cert_pem: String = required("The CA certificate (PEM) whose certificates the list revokes, e.g. `timescaledb_certificate_authority.ca.cert_pem`. Another CA replaces the list.").force_new(),
        CA_KEY_NODE => ca_key_node: Option<String> = optional("Node that keeps the CA's key (`timescaledb_certificate_authority.<name>.key_node`): the list is signed with it there, and the key is never in the plan or the state. Exactly one of `ca_key_node` and `ca_private_key_pem_wo` is required."),
        CA_PRIVATE_KEY_PEM_WO => ca_private_key_pem_wo: Option<Secret> = optional("The CA's private key (PEM), for a CA kept elsewhere.").write_only(),
        REVOKED_CERTIFICATE_PEMS => revoked_certificate_pems: Option<Vec<String>> = optional("The certificates (PEM) revoked: each must be issued by the CA. A change signs a new list and installs it in place; a revoked certificate is refused at its next login. A server certificate listed here is refused only by clients that check `crl_pem` themselves (`sslcrl`), not by a TimescaleDB access node: the plan warns."),
        NODES => nodes: Vec<String> = required("Nodes that check this CA's certificates and so install the list as their `ssl_crl_file`: the data nodes for the role certificates the access node presents, every node whose clients present certificates."),
        VALIDITY_DAYS => validity_days: i64 = optional("Days the list is valid (its next update). OpenSSL refuses every certificate of the CA once the list has expired, so the plan signs a new one inside `early_renewal_days`.").default(Value::int(30)),
        EARLY_RENEWAL_DAYS => early_renewal_days: i64 = optional("Days before the list's next update from which `terraform plan` signs a new one.").default(Value::int(7)),
        CRL_PEM => crl_pem: Option<String> = computed("The signed list, PEM.").stable(),
        REVOKED_SERIALS => revoked_serials: Option<Vec<String>> = computed("Serial numbers of the revoked certificates, lower-case hex.").stable(),
        NEXT_UPDATE => next_update: Option<String> = computed("When the list expires, RFC 3339.").stable(),
        READY_FOR_RENEWAL => ready_for_renewal: Option<bool> = computed("Whether the list is inside its renewal window; when it is, the next plan signs a new one."),
        INSTALLED => installed: Option<String> = computed("How the nodes compare with the state: `in sync`, or per node what differs (`dn1: revocation list missing`, `ssl_crl_file not set to it`, ...). Apply puts it right."),
        ID => id: Option<String> = computed("The CA certificate's SHA-256 fingerprint.").stable(),
    }
}

const DESCRIPTION: &str = "Revokes certificates of one CA without replacing it: a certificate revocation list, signed with \
     the CA's key where it is kept (`ca_key_node`), written through SQL to each of `nodes` as `root.crl` in the data \
     directory and set as its `ssl_crl_file`, then reloaded; the setting is checked in force before the apply is \
     reported done. A revoked certificate is refused at its next login; every other certificate of the CA still logs \
     in. A node whose `ssl_crl_file` or list changed by hand shows in `installed`, and apply puts the list back. Once a \
     list is set, PostgreSQL refuses every client certificate whose CA has no list in the file, so a node that trusts \
     another CA as well (in the middle of a CA rotation) is refused at apply with why. Destroy takes the list out of force \
     and removes it. Use `create_before_destroy` so that a list replaced (another CA) is never out of force.";

const IN_SYNC: &str = "in sync";

/// Why revoking a certificate a node serves does not shut it out of the
/// cluster.
const SERVER_CERTIFICATE: &str = "A node's `ssl_crl_file` checks only the certificates clients present to it. A \
     server certificate is refused by the clients that check this list themselves (libpq's `sslcrl`, given \
     `crl_pem`), but not by a TimescaleDB access node: its connections to data nodes give libpq a root \
     certificate and no `sslcrl`, so it keeps reaching a data node that serves this certificate. To shut a \
     server certificate out of the cluster, replace it: `terraform apply -replace` on its \
     `timescaledb_node_certificate`.";

pub struct RevocationList;

#[tonic::async_trait]
impl Resource for RevocationList {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_certificate_revocation_list";
    const DESCRIPTION: &'static str = DESCRIPTION;

    fn validate(&self, config: &CrlPlan) -> Diagnostics {
        let mut d = Diagnostics::new();
        check_days(&config.validity_days, &config.early_renewal_days, &mut d);
        if config.ca_key_node.is_null() == config.ca_private_key_pem_wo.is_null()
            && !config.ca_key_node.is_unknown()
        {
            d.push_error(
                Some(AttrPath::attr(CA_KEY_NODE)),
                "One CA key source",
                "Set exactly one of `ca_key_node` and `ca_private_key_pem_wo`.",
            );
        }
        if let Some(nodes) = config.nodes.known() {
            if nodes.is_empty() {
                d.push_error(
                    Some(AttrPath::attr(NODES)),
                    "No node",
                    "Name the nodes that check this CA's certificates.",
                );
            }
        }
        let ca = config.ca_cert_pem.known();
        if let Some(pems) = config
            .revoked_certificate_pems
            .known()
            .and_then(Option::as_ref)
        {
            for (i, pem) in pems.iter().enumerate() {
                let at = Some(AttrPath::attr(REVOKED_CERTIFICATE_PEMS).index(i));
                if let Err(m) = pki::serial(pem) {
                    d.push_error(at, "Invalid certificate", m);
                    continue;
                }
                if pki::serves_tls(pem) {
                    d.push_warning(
                        at.clone(),
                        "A server certificate: only clients that check the list refuse it",
                        SERVER_CERTIFICATE,
                    );
                }
                if let Some(ca) = ca {
                    if !pki::issued_by(pem, ca) {
                        d.push_error(
                            at,
                            "Not this CA's certificate",
                            "The certificate was not issued by `ca_cert_pem`; only the CA that issued a certificate can revoke it.",
                        );
                    }
                }
            }
        }
        d
    }

    fn must_replace(&self, prior: &Model, planned: &CrlPlan) -> Option<AttrPath> {
        super::certs::renewal_due(
            &prior.next_update,
            prior.early_renewal_days,
            &planned.early_renewal_days,
        )
    }

    /// Apply leaves every node in sync: a node that differs plans an update.
    async fn complete_plan(&self, plan: &mut Completion<'_, Model>) -> Checked {
        plan.planned.installed.set(Some(IN_SYNC.to_string()));
        Ok(())
    }

    /// An update signs a new list: what it holds is known after apply.
    async fn check_plan(&self, _ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        if plan.prior.is_some() {
            let p = &mut *plan.planned;
            p.crl_pem = Planned::Unknown;
            p.revoked_serials = Planned::Unknown;
            p.next_update = Planned::Unknown;
            p.ready_for_renewal = Planned::Unknown;
        }
        Ok(())
    }

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let mut m = prior.value;
        let crl = m.crl_pem.clone().unwrap_or_default();
        let mut problems = Vec::new();
        for name in &m.nodes {
            let node = ctx.node(name, NODES).await?;
            for p in node.crl_problems(&crl).await? {
                problems.push(format!("{name}: {p}"));
            }
        }
        m.installed = Some(if problems.is_empty() {
            IN_SYNC.to_string()
        } else {
            problems.join(", ")
        });
        m.ready_for_renewal =
            Some(ready_for_renewal(m.next_update.as_deref(), m.early_renewal_days).unwrap_or(true));
        Ok(Some(m.into()))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        Ok(sign_and_install(ctx, planned).await?.into())
    }

    async fn update(&self, ctx: &Ctx, prior: State<Model>, planned: Model) -> Applied<Model> {
        let gone: Vec<String> = (prior.value.nodes.iter())
            .filter(|n| !planned.nodes.contains(n))
            .cloned()
            .collect();
        let old = prior.value.crl_pem.clone().unwrap_or_default();
        let mut m = sign_and_install(ctx, planned).await?;
        for name in &gone {
            ctx.node(name, NODES).await?.uninstall_crl(&old).await?;
        }
        m.installed = Some(IN_SYNC.to_string());
        Ok(m.into())
    }

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Deleted {
        ctx.check_cancelled()?;
        let crl = prior.crl_pem.clone().unwrap_or_default();
        for name in &prior.nodes {
            ctx.node(name, NODES).await?.uninstall_crl(&crl).await?;
        }
        Ok(Diagnostics::new())
    }
}

/// Signs the list with the CA's key and installs it on every node.
async fn sign_and_install(ctx: &Ctx, mut m: Model) -> Result<Model, Diagnostics> {
    ctx.check_cancelled()?;
    let ca = match (&m.ca_key_node, &m.ca_private_key_pem_wo) {
        (Some(node), _) => {
            ca_from_node(ctx, &m.ca_cert_pem, node, CA_CERT_PEM, CA_KEY_NODE).await?
        }
        (None, Some(key)) => load_ca(&m.ca_cert_pem, key, CA_CERT_PEM, CA_PRIVATE_KEY_PEM_WO)?,
        (None, None) => {
            return Err(Diagnostics::attr_error(
                AttrPath::attr(CA_KEY_NODE),
                "No CA key",
                "Set `ca_key_node` or `ca_private_key_pem_wo`.",
            ))
        }
    };
    let pems = m.revoked_certificate_pems.clone().unwrap_or_default();
    let mut serials = Vec::with_capacity(pems.len());
    for (i, pem) in pems.iter().enumerate() {
        if !pki::issued_by(pem, &m.ca_cert_pem) {
            return Err(Diagnostics::attr_error(
                AttrPath::attr(REVOKED_CERTIFICATE_PEMS).index(i),
                "Not this CA's certificate",
                "The certificate was not issued by `ca_cert_pem`; nothing was changed.",
            ));
        }
        serials.push(pki::serial(pem).map_err(|e| {
            Diagnostics::attr_error(
                AttrPath::attr(REVOKED_CERTIFICATE_PEMS).index(i),
                "Invalid certificate",
                e,
            )
        })?);
    }
    let list = ca
        .revocation_list(&serials, m.validity_days)
        .map_err(|e| Diagnostics::error("Could not sign the revocation list", e))?;
    for name in &m.nodes {
        ctx.node(name, NODES)
            .await?
            .install_crl(&list.pem, &m.ca_cert_pem)
            .await?;
    }
    let fingerprint = pki::inspect(&m.ca_cert_pem)
        .map(|i| i.fingerprint_sha256)
        .unwrap_or_default();
    m.next_update = Some(pki::rfc3339(list.next_update));
    m.crl_pem = Some(list.pem);
    m.revoked_serials = Some(serials.iter().map(hex::encode).collect());
    m.ready_for_renewal = ready_for_renewal(m.next_update.as_deref(), m.early_renewal_days);
    m.installed = Some(IN_SYNC.to_string());
    m.id = Some(fingerprint);
    Ok(m)
}
