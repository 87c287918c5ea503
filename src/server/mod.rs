//! The `tfplugin6.Provider` gRPC service: one module per RPC, each turning
//! protocol messages into crate values at the edge and enforcing
//! Terraform's rules before and after resource code runs.
//!
//! User mistakes and node failures come back as diagnostics in the
//! response; `tonic::Status` is kept for protocol failures.

mod apply_resource_change;
mod configure_provider;
mod convert;
mod ephemeral_resource;
mod get_metadata;
mod get_provider_schema;
mod import_resource_state;
mod move_resource_state;
mod plan_resource_change;
mod read_data_source;
mod read_resource;
mod stop_provider;
mod upgrade_resource_state;
mod validate_data_resource_config;
mod validate_provider_config;
mod validate_resource_config;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub use plan_resource_change::plan_by_schema;

use crate::data_sources::{self, DynDataSource};
use crate::diag::Diagnostics;
use crate::proto::tfplugin6 as pb;
use crate::provider::Provider;
use crate::resources::{self, Ctx, DynResource};
use crate::schema::Schema;

/// Whether `ConfigureProvider` has run, and with what.
enum Configured {
    No,
    /// The configuration held values not known until apply; reads and
    /// plans that need a node are deferred.
    Unknown,
    Yes(Arc<Provider>),
}

/// A resource's schema and the object type of its values, built once.
pub(crate) struct Shape {
    pub schema: Schema,
    pub ty: crate::value::Type,
}

pub struct ProviderServer {
    resources: BTreeMap<&'static str, Arc<dyn DynResource>>,
    shapes: BTreeMap<&'static str, Arc<Shape>>,
    data_sources: BTreeMap<&'static str, Arc<dyn DynDataSource>>,
    ephemerals: BTreeMap<&'static str, Arc<dyn crate::ephemeral::DynEphemeral>>,
    provider_schema: Schema,
    configured: RwLock<Configured>,
    stop: Mutex<CancellationToken>,
}

impl Default for ProviderServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderServer {
    pub fn new() -> ProviderServer {
        let all = resources::all();
        ProviderServer {
            shapes: all
                .iter()
                .map(|r| {
                    let schema = r.schema();
                    let ty = schema.ty();
                    (r.type_name(), Arc::new(Shape { schema, ty }))
                })
                .collect(),
            resources: all.into_iter().map(|r| (r.type_name(), r)).collect(),
            data_sources: data_sources::all()
                .into_iter()
                .map(|d| (d.type_name(), d))
                .collect(),
            ephemerals: crate::ephemeral::all()
                .into_iter()
                .map(|e| (e.type_name(), e))
                .collect(),
            provider_schema: crate::provider::config::schema(),
            configured: RwLock::new(Configured::No),
            stop: Mutex::new(CancellationToken::new()),
        }
    }

    pub fn provider_schema(&self) -> &Schema {
        &self.provider_schema
    }
    pub fn resources(&self) -> impl Iterator<Item = &Arc<dyn DynResource>> {
        self.resources.values()
    }
    pub fn data_sources(&self) -> impl Iterator<Item = &Arc<dyn DynDataSource>> {
        self.data_sources.values()
    }
    pub fn ephemerals(&self) -> impl Iterator<Item = &Arc<dyn crate::ephemeral::DynEphemeral>> {
        self.ephemerals.values()
    }

    fn resource(&self, name: &str) -> Result<&Arc<dyn DynResource>, Status> {
        self.resources
            .get(name)
            .ok_or_else(|| Status::not_found(format!("unknown resource type {name:?}")))
    }

    /// The schema and value type of a resource type (built once, not per
    /// request).
    fn shape(&self, name: &str) -> Result<Arc<Shape>, Status> {
        self.shapes
            .get(name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("unknown resource type {name:?}")))
    }

    fn data_source(&self, name: &str) -> Result<&Arc<dyn DynDataSource>, Status> {
        self.data_sources
            .get(name)
            .ok_or_else(|| Status::not_found(format!("unknown data source type {name:?}")))
    }

    fn set_configured(&self, c: Configured) {
        let old = std::mem::replace(
            &mut *self.configured.write().unwrap_or_else(|e| e.into_inner()),
            c,
        );
        if let Configured::Yes(p) = old {
            tokio::spawn(async move { p.close().await });
        }
    }

    /// `Ok(None)` when the provider configuration is not known yet.
    fn ctx(&self) -> Result<Option<Ctx>, Diagnostics> {
        let cancel = self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match &*self.configured.read().unwrap_or_else(|e| e.into_inner()) {
            Configured::Yes(p) => Ok(Some(Ctx { provider: p.clone(), cancel })),
            Configured::Unknown => Ok(None),
            Configured::No => Err(Diagnostics::error(
                "Provider not configured",
                "Terraform called the provider before configuring it. This is a bug in Terraform or the provider.",
            )),
        }
    }

    /// Runs resource work until it finishes or Terraform sends StopProvider.
    async fn cancellable<T>(
        ctx: &Ctx,
        fut: impl Future<Output = Result<T, Diagnostics>>,
    ) -> Result<T, Diagnostics> {
        tokio::select! {
            r = fut => r,
            _ = ctx.cancel.cancelled() => Err(Diagnostics::error(
                "Operation cancelled",
                "Terraform asked the provider to stop. Changes to pg_hba.conf are never left half done; run the command again to finish.",
            )),
        }
    }

    /// Closes node connections (plugin shutdown).
    pub async fn shutdown(&self) {
        self.set_configured(Configured::No);
    }
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderServer {
    async fn get_metadata(
        &self,
        r: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        get_metadata::handle(self, r.into_inner()).map(Response::new)
    }
    async fn get_provider_schema(
        &self,
        r: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        get_provider_schema::handle(self, r.into_inner()).map(Response::new)
    }
    async fn validate_provider_config(
        &self,
        r: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        validate_provider_config::handle(self, r.into_inner()).map(Response::new)
    }
    async fn validate_resource_config(
        &self,
        r: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        validate_resource_config::handle(self, r.into_inner()).map(Response::new)
    }
    async fn validate_data_resource_config(
        &self,
        r: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        validate_data_resource_config::handle(self, r.into_inner()).map(Response::new)
    }
    async fn upgrade_resource_state(
        &self,
        r: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        upgrade_resource_state::handle(self, r.into_inner()).map(Response::new)
    }
    async fn get_resource_identity_schemas(
        &self,
        _: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Result<Response<pb::get_resource_identity_schemas::Response>, Status> {
        // No resource declares an identity; an empty answer tells Terraform so.
        Ok(Response::new(
            pb::get_resource_identity_schemas::Response::default(),
        ))
    }
    async fn upgrade_resource_identity(
        &self,
        _: Request<pb::upgrade_resource_identity::Request>,
    ) -> Result<Response<pb::upgrade_resource_identity::Response>, Status> {
        Err(Status::unimplemented(
            "no resource of this provider has an identity",
        ))
    }
    async fn configure_provider(
        &self,
        r: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        configure_provider::handle(self, r.into_inner()).map(Response::new)
    }
    async fn read_resource(
        &self,
        r: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        read_resource::handle(self, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn plan_resource_change(
        &self,
        r: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        plan_resource_change::handle(self, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn apply_resource_change(
        &self,
        r: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        apply_resource_change::handle(self, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn import_resource_state(
        &self,
        r: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        import_resource_state::handle(self, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn move_resource_state(
        &self,
        r: Request<pb::move_resource_state::Request>,
    ) -> Result<Response<pb::move_resource_state::Response>, Status> {
        move_resource_state::handle(self, r.into_inner()).map(Response::new)
    }
    async fn read_data_source(
        &self,
        r: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        read_data_source::handle(self, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn validate_ephemeral_resource_config(
        &self,
        r: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
        ephemeral_resource::validate(self, r.into_inner()).map(Response::new)
    }
    async fn open_ephemeral_resource(
        &self,
        r: Request<pb::open_ephemeral_resource::Request>,
    ) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
        ephemeral_resource::open(self, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn renew_ephemeral_resource(
        &self,
        r: Request<pb::renew_ephemeral_resource::Request>,
    ) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
        ephemeral_resource::renew(self, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn close_ephemeral_resource(
        &self,
        r: Request<pb::close_ephemeral_resource::Request>,
    ) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
        ephemeral_resource::close(self, r.into_inner())
            .await
            .map(Response::new)
    }
    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Result<Response<pb::get_functions::Response>, Status> {
        Ok(Response::new(pb::get_functions::Response::default()))
    }
    async fn call_function(
        &self,
        _: Request<pb::call_function::Request>,
    ) -> Result<Response<pb::call_function::Response>, Status> {
        Err(Status::unimplemented("this provider has no functions"))
    }
    async fn stop_provider(
        &self,
        r: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        stop_provider::handle(self, r.into_inner()).map(Response::new)
    }
}
