//! `timescaledb_ident_mapping`: one mapping of pg_ident.conf on one node.

use crate::diag::{AttrPath, Diagnostics};
use crate::ident::{Field, IdentFile, Mapping};
use crate::model::PlanModel as _;
use crate::provider::ACCESS_NODE;
use crate::value::Value;

use super::{Applied, Checked, Ctx, Deleted, PlanInput, Read, Resource, State};

crate::model! {
    /// A pg_ident.conf mapping, as configured and as kept.
    pub struct Model plan MappingPlan {
        NODE => node: String = optional("Node whose `pg_ident.conf` holds the mapping: `access` or the name of a data node.").default(Value::string(ACCESS_NODE)).force_new(),
        MAP => map: String = required("Name of the map, as the `map` option of a `pg_hba.conf` rule names it.").force_new(),
        SYSTEM_USERNAME => system_username: String = required("The name the client proves it has (a certificate's common name for `cert`, the operating system user for `peer` and `ident`); a regular expression when it starts with `/`, checked by the node's own engine at plan time.").force_new(),
        DATABASE_USERNAME => database_username: String = required("The role the client may then log in as; with a regular expression `system_username`, `\\1` stands for its first parenthesized group.").force_new(),
        ID => id: Option<String> = computed("The node name and the mapping as written in the file (`dn1 certmap app.example.com app`), which is also the import ID.").stable(),
        LINE => line: Option<String> = computed("The line as it stands in `pg_ident.conf`."),
    }
}

const DESCRIPTION: &str = "Manages one mapping of `pg_ident.conf` on one node: which name a client proves (a certificate's \
     common name, an operating system user) may log in as which role, under a map's name that `pg_hba.conf` rules use \
     (`map = ...` in a `timescaledb_hba_rule`'s options). Certificate authentication needs one wherever a certificate's \
     common name is not the role's name (host names, e-mail style names, a certificate shared by services). The file is \
     read and written through SQL on the node, checked by PostgreSQL (`pg_ident_file_mappings`, PostgreSQL 15 and later) \
     before the configuration is reloaded, and put back as it was if the check or the reload fails or the provider could \
     no longer log in. Lines the provider does not manage are kept byte for byte; managed mappings are kept together in \
     a marked block. A mapping edited or removed by hand is planned again.";

pub struct IdentMapping;

#[tonic::async_trait]
impl Resource for IdentMapping {
    type Model = Model;
    const TYPE_NAME: &'static str = "timescaledb_ident_mapping";
    const DESCRIPTION: &'static str = DESCRIPTION;
    const IMPORT_ID: Option<&'static str> = Some("<node> <map> <system user> <database user>");

    async fn read(&self, ctx: &Ctx, prior: State<Model>) -> Read<Model> {
        let m = prior.value;
        let node = ctx.node(&m.node, NODE).await?;
        let snap = node.ident_read().await?;
        Ok(snap
            .file
            .find(&m.mapping())
            .map(|found| m.located(&found.text).into()))
    }

    async fn create(&self, ctx: &Ctx, planned: Model) -> Applied<Model> {
        ctx.check_cancelled()?;
        let node = ctx.node(&planned.node, NODE).await?;
        let mapping = planned.mapping();
        check_regex(&node, &mapping).await?;
        let added = mapping.clone();
        let snap = node
            .ident_edit(move |f: &mut IdentFile| {
                f.add(&added);
                Ok(())
            })
            .await?;
        let found = snap.file.find(&mapping).ok_or_else(|| {
            Diagnostics::error(
                "Mapping not in place after the write",
                format!(
                    "{} on node {:?} does not hold the mapping after it was written.",
                    snap.path, planned.node
                ),
            )
        })?;
        Ok(planned.located(&found.text).into())
    }

    /// Every attribute replaces the mapping: nothing is changed in place.
    async fn update(&self, _ctx: &Ctx, _prior: State<Model>, planned: Model) -> Applied<Model> {
        Ok(planned.into())
    }

    async fn delete(&self, ctx: &Ctx, prior: Model) -> Deleted {
        ctx.check_cancelled()?;
        let node = ctx.node(&prior.node, NODE).await?;
        let mapping = prior.mapping();
        node.ident_edit(move |f: &mut IdentFile| {
            f.remove(&mapping);
            Ok(())
        })
        .await?;
        Ok(Diagnostics::new())
    }

    fn validate(&self, config: &MappingPlan) -> Diagnostics {
        let (Some(map), Some(system), Some(database)) = (
            config.map.known(),
            config.system_username.known(),
            config.database_username.known(),
        ) else {
            return Diagnostics::new(); // checked once known
        };
        let mapping = Mapping {
            map: map.clone(),
            system_user: system.clone(),
            database_user: database.clone(),
        };
        match mapping.check() {
            Ok(()) => Diagnostics::new(),
            Err((field, why)) => Diagnostics::attr_error(
                AttrPath::attr(attribute(field)),
                "Invalid pg_ident.conf mapping",
                why,
            ),
        }
    }

    /// A regular expression the node's engine refuses is refused here, on
    /// `system_username` (the server would refuse the whole file).
    async fn check_plan(&self, ctx: &Ctx, plan: &mut PlanInput<'_, Model>) -> Checked {
        let Some(m) = plan.planned.known() else {
            return Ok(());
        };
        let node = ctx.node(&m.node, NODE).await?;
        check_regex(&node, &m.mapping()).await
    }

    async fn import(&self, ctx: &Ctx, id: &str) -> Result<Model, Diagnostics> {
        let bad = |why: String| {
            Diagnostics::error(
                "Invalid import ID",
                format!("{why}. The ID is the node name followed by the mapping as written in pg_ident.conf, for example `dn1 certmap app.example.com app`."),
            )
        };
        let (node_name, line) = id
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(format!("{id:?} has no mapping")))?;
        let mapping = Mapping::parse_line(line).map_err(bad)?;
        let node = ctx.provider.node(node_name).await?;
        let snap = node.ident_read().await?;
        let found = snap.file.find(&mapping).ok_or_else(|| {
            Diagnostics::error(
                "Mapping not found",
                format!(
                    "{} on node {node_name:?} has no mapping `{}`.",
                    snap.path,
                    mapping.render()
                ),
            )
        })?;
        let m = Model {
            node: node_name.to_string(),
            map: mapping.map,
            system_username: mapping.system_user,
            database_username: mapping.database_user,
            id: None,
            line: None,
        };
        Ok(m.located(&found.text))
    }
}

impl Model {
    fn mapping(&self) -> Mapping {
        Mapping {
            map: self.map.clone(),
            system_user: self.system_username.clone(),
            database_user: self.database_username.clone(),
        }
    }

    /// The model with the computed attributes of the mapping found as
    /// `line`.
    fn located(mut self, line: &str) -> Model {
        self.id = Some(self.mapping().id(&self.node));
        self.line = Some(line.to_string());
        self
    }
}

fn attribute(field: Field) -> &'static str {
    match field {
        Field::Map => MAP,
        Field::SystemUser => SYSTEM_USERNAME,
        Field::DatabaseUser => DATABASE_USERNAME,
    }
}

async fn check_regex(node: &crate::node::Node, m: &Mapping) -> Checked {
    if !m.is_regex() {
        return Ok(());
    }
    match node.regex_is_valid(&m.system_user[1..]).await? {
        None => Ok(()),
        Some(why) => Err(Diagnostics::attr_error(
            AttrPath::attr(SYSTEM_USERNAME),
            "Invalid regular expression",
            format!(
                "Node {:?} refuses {:?} as a regular expression ({why}); PostgreSQL would refuse the whole pg_ident.conf.",
                node.name, m.system_user
            ),
        )),
    }
}
