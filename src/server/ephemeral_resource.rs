//! ValidateEphemeralResourceConfig, OpenEphemeralResource,
//! RenewEphemeralResource and CloseEphemeralResource: the life of an
//! ephemeral value within one Terraform run.

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::Diagnostics;
use crate::ephemeral::DynEphemeral;
use crate::proto::tfplugin6 as pb;
use crate::resources::Ctx;

impl ProviderServer {
    fn ephemeral(&self, name: &str) -> Result<&std::sync::Arc<dyn DynEphemeral>, Status> {
        self.ephemerals
            .get(name)
            .ok_or_else(|| Status::not_found(format!("unknown ephemeral resource type {name:?}")))
    }

    /// The configured provider: an ephemeral value is made from the nodes,
    /// so the provider block must be known.
    fn known_ctx(&self) -> Result<Ctx, Diagnostics> {
        self.ctx()?.ok_or_else(|| {
            Diagnostics::error(
                "Provider configuration not known yet",
                "This ephemeral resource is made from the cluster, and the provider block depends on values known only after apply.",
            )
        })
    }
}

fn timestamp(t: SystemTime) -> pb::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    pb::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub(super) fn validate(
    server: &ProviderServer,
    req: pb::validate_ephemeral_resource_config::Request,
) -> Result<pb::validate_ephemeral_resource_config::Response, Status> {
    let e = server.ephemeral(&req.type_name)?;
    let ty = e.schema().ty();
    let diags = match convert::from_dynamic(req.config.as_ref(), &ty) {
        Ok(config) => e.validate(&config),
        Err(d) => d,
    };
    Ok(pb::validate_ephemeral_resource_config::Response {
        diagnostics: convert::diagnostics(diags),
    })
}

pub(super) async fn open(
    server: &ProviderServer,
    req: pb::open_ephemeral_resource::Request,
) -> Result<pb::open_ephemeral_resource::Response, Status> {
    let e = server.ephemeral(&req.type_name)?.clone();
    let ty = e.schema().ty();
    let opened = async {
        let config = convert::from_dynamic(req.config.as_ref(), &ty)?;
        let ctx = server.known_ctx()?;
        let o = ProviderServer::cancellable(&ctx, e.open(&ctx, &config)).await?;
        Ok::<_, Diagnostics>((convert::to_dynamic(&o.result, &ty)?, o.renew_at, o.private))
    }
    .await;
    Ok(match opened {
        Ok((result, renew_at, private)) => pb::open_ephemeral_resource::Response {
            result: Some(result),
            renew_at: renew_at.map(timestamp),
            private: Some(private),
            ..Default::default()
        },
        Err(d) => pb::open_ephemeral_resource::Response {
            diagnostics: convert::diagnostics(d),
            ..Default::default()
        },
    })
}

pub(super) async fn renew(
    server: &ProviderServer,
    req: pb::renew_ephemeral_resource::Request,
) -> Result<pb::renew_ephemeral_resource::Response, Status> {
    let e = server.ephemeral(&req.type_name)?.clone();
    let private = req.private.unwrap_or_default();
    let renewed = async {
        let ctx = server.known_ctx()?;
        ProviderServer::cancellable(&ctx, e.renew(&ctx, &private)).await
    }
    .await;
    Ok(match renewed {
        Ok(r) => pb::renew_ephemeral_resource::Response {
            diagnostics: Vec::new(),
            renew_at: r.renew_at.map(timestamp),
            private: Some(r.private),
        },
        Err(d) => pb::renew_ephemeral_resource::Response {
            diagnostics: convert::diagnostics(d),
            ..Default::default()
        },
    })
}

pub(super) async fn close(
    server: &ProviderServer,
    req: pb::close_ephemeral_resource::Request,
) -> Result<pb::close_ephemeral_resource::Response, Status> {
    let e = server.ephemeral(&req.type_name)?.clone();
    let private = req.private.unwrap_or_default();
    let closed = async {
        let ctx = server.known_ctx()?;
        e.close(&ctx, &private).await
    }
    .await;
    Ok(pb::close_ephemeral_resource::Response {
        diagnostics: convert::diagnostics(closed.err().unwrap_or_default()),
    })
}
