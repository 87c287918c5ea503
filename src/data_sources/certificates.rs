//! `timescaledb_certificates`: every certificate the nodes serve, trust,
//! present for roles or keep as CAs, with its expiry and the CA behind it.

use time::OffsetDateTime;

use crate::diag::{AttrPath, Diagnostics};
use crate::node::{CertFileKind, ErrorKind};
use crate::pki;

use super::{Ctx, DataSource};

crate::model! {
    /// The data source's configuration and state.
    pub struct Model {
        NODES => nodes: Option<Vec<String>> = optional("Nodes to look at: `access` and data node names. Left out, the access node and every data node."),
        ID => id: Option<String> = computed("Always `certificates`."),
        CERTIFICATES => certificates: Vec<CertificateInfo> = computed("Every certificate found, by node and then path (a CA file holding several CAs gives one entry each)."),
    }
}

crate::model! {
    /// One certificate on one node.
    pub struct CertificateInfo {
        NODE => node: String = computed("The node that holds it."),
        KIND => kind: String = computed("`server` (the certificate the node serves, its `ssl_cert_file`), `trusted_ca` (a CA in its `ssl_ca_file`), `user` (a role's certificate TimescaleDB presents from this node) or `ca` (a CA whose key the node keeps)."),
        PATH => path: String = computed("The file."),
        SUBJECT => subject: Option<String> = computed("The subject's common name (a user certificate's is its role)."),
        ISSUER => issuer: Option<String> = computed("The issuer's common name."),
        FINGERPRINT => fingerprint("fingerprint_sha256"): String = computed("SHA-256 fingerprint of the certificate (DER), lower-case hex."),
        NOT_AFTER => not_after: String = computed("Expiry, RFC 3339."),
        DAYS_LEFT => days_left: i64 = computed("Whole days until it expires (negative once it has)."),
        SIGNED_BY => signed_by: Option<String> = computed("SHA-256 fingerprint of the CA that signed it, among the CAs the listed nodes trust or keep (a root signs itself); null when none of them did."),
        TRUSTED_BY => trusted_by: Vec<String> = computed("The listed nodes whose `ssl_ca_file` holds the CA that signed it: for a server certificate, who accepts it (TimescaleDB's access node checks its data nodes with its own); for a user certificate, the data nodes that accept the role's login."),
    }
}

pub struct Certificates;

#[tonic::async_trait]
impl DataSource for Certificates {
    type Model = Model;

    const TYPE_NAME: &'static str = "timescaledb_certificates";

    const DESCRIPTION: &'static str = "Lists every certificate the nodes hold for the cluster, whoever installed it: the one each node \
         serves and the CAs it trusts (as its `ssl` settings in force name them), the role certificates TimescaleDB presents \
         from the access node, and the CAs whose keys a node keeps; each with its subject, issuer, fingerprint, expiry and \
         days left, the CA that signed it and the nodes that trust that CA. For alerts on expiry and for checking a CA \
         rotation. Needs the right to read files and list directories on the nodes (a superuser, or `pg_read_server_files` \
         and a grant on `pg_ls_dir`).";

    async fn read(&self, ctx: &Ctx, config: Model) -> Result<Model, Diagnostics> {
        let names = match &config.nodes {
            Some(n) => n.clone(),
            None => crate::resources::certs::cluster_nodes(ctx).await?,
        };
        // Every certificate of every node, then what it says.
        let mut found = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let node = ctx.provider.node(name).await.map_err(|e| {
                let on_it =
                    (e.kind == ErrorKind::UnknownNode).then(|| AttrPath::attr(NODES).index(i));
                e.to_diagnostics(on_it)
            })?;
            for file in node.certificate_files().await? {
                // A certificate file may carry its chain after it: only the
                // first is the node's or the role's; a CA file is all CAs.
                let mut pems = pki::pem_certificates(&file.text);
                if matches!(file.kind, CertFileKind::Server | CertFileKind::User) {
                    pems.truncate(1);
                }
                for pem in pems {
                    if let Ok(info) = pki::inspect(&pem) {
                        found.push((name.clone(), file.kind, file.path.clone(), pem, info));
                    }
                }
            }
        }
        let cas: Vec<(&String, &str)> = found
            .iter()
            .filter(|f| matches!(f.1, CertFileKind::TrustedCa | CertFileKind::KeptCa))
            .map(|f| (&f.4.fingerprint_sha256, f.3.as_str()))
            .collect();
        let trusted: Vec<(&String, &String)> = found
            .iter()
            .filter(|f| f.1 == CertFileKind::TrustedCa)
            .map(|f| (&f.0, &f.4.fingerprint_sha256))
            .collect();
        let now = OffsetDateTime::now_utc();
        let certificates = found
            .iter()
            .map(|(node, kind, path, pem, info)| {
                let signed_by = cas
                    .iter()
                    .find(|(_, ca)| pki::issued_by(pem, ca))
                    .map(|(fp, _)| (*fp).clone());
                let mut trusted_by: Vec<String> = trusted
                    .iter()
                    .filter(|(_, fp)| Some(*fp) == signed_by.as_ref())
                    .map(|(n, _)| (*n).clone())
                    .collect();
                trusted_by.dedup();
                CertificateInfo {
                    node: node.clone(),
                    kind: kind.name().to_string(),
                    path: path.clone(),
                    subject: info.common_name.clone(),
                    issuer: pki::issuer_name(pem),
                    fingerprint: info.fingerprint_sha256.clone(),
                    not_after: pki::rfc3339(info.not_after),
                    days_left: (info.not_after - now).whole_days(),
                    signed_by,
                    trusted_by,
                }
            })
            .collect();
        Ok(Model {
            nodes: config.nodes,
            id: Some("certificates".into()),
            certificates,
        })
    }
}
