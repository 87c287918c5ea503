//! `timescaledb_hba_rules`: the rules a node enforces now, as the server
//! reads its pg_hba.conf.

use crate::diag::Diagnostics;
use crate::provider::ACCESS_NODE;
use crate::value::Value;

use super::{Ctx, DataSource};

crate::model! {
    /// The data source's configuration and state.
    pub struct Model {
        NODE => node: String = optional("Node whose rules are read: `access` or the name of a data node.").default(Value::string(ACCESS_NODE)),
        ID => id: Option<String> = computed("The node's name."),
        RULES => rules: Vec<ServerRule> = computed("Every record of the node's `pg_hba.conf` as the server reads it (`pg_hba_file_rules`), in order, errors included: what a connection is judged by once the configuration is reloaded."),
    }
}

crate::model! {
    /// One record, as the server reads it.
    pub struct ServerRule {
        LINE_NUMBER => line_number: i64 = computed("Line of the file the record starts on."),
        TYPE => conn_type("type"): Option<String> = computed("Connection type."),
        DATABASES => databases: Vec<String> = computed("Databases, as the server keeps them (keywords and names)."),
        USERS => users: Vec<String> = computed("Users, as the server keeps them."),
        ADDRESS => address: Option<String> = computed("Address, or null for `local`."),
        NETMASK => netmask: Option<String> = computed("Netmask the server derived, when the address is an IP range."),
        METHOD => method: Option<String> = computed("Authentication method."),
        OPTIONS => options: Vec<String> = computed("Options as the server shows them (`name=value`)."),
        ERROR => error: Option<String> = computed("Why the server refuses the record, or null."),
    }
}

pub struct HbaRules;

#[tonic::async_trait]
impl DataSource for HbaRules {
    type Model = Model;

    const TYPE_NAME: &'static str = "timescaledb_hba_rules";

    const DESCRIPTION: &'static str = "Lists the rules a node's `pg_hba.conf` holds as the server itself reads them \
         (`pg_hba_file_rules`), whoever wrote them: for audits, and to see what a connection is judged by. Needs the \
         right to read `pg_hba_file_rules` (a superuser, or `GRANT SELECT ON pg_hba_file_rules`).";

    async fn read(&self, ctx: &Ctx, config: Model) -> Result<Model, Diagnostics> {
        let node = ctx.node(&config.node, NODE).await?;
        let rows = node.hba_file_rules().await?;
        Ok(Model {
            id: Some(config.node.clone()),
            rules: rows
                .into_iter()
                .map(|r| ServerRule {
                    line_number: i64::from(r.line_number),
                    conn_type: r.conn_type,
                    databases: r.databases,
                    users: r.users,
                    address: r.address,
                    netmask: r.netmask,
                    method: r.method,
                    options: r.options,
                    error: r.error,
                })
                .collect(),
            node: config.node,
        })
    }
}
