//! ReadDataSource.

use tonic::Status;

use super::{convert, ProviderServer};
use crate::diag::Diagnostics;
use crate::proto::tfplugin6 as pb;

pub(super) async fn handle(
    server: &ProviderServer,
    req: pb::read_data_source::Request,
) -> Result<pb::read_data_source::Response, Status> {
    let ds = server.data_source(&req.type_name)?.clone();
    let ty = ds.schema().ty();
    let result = async {
        let config = convert::from_dynamic(req.config.as_ref(), &ty)?;
        let Some(ctx) = server.ctx()? else {
            return Err(Diagnostics::error(
                "Provider configuration not known yet",
                "This data source reads the cluster, and the provider block depends on values known only after apply.",
            ));
        };
        let state = ProviderServer::cancellable(&ctx, ds.read(&ctx, &config)).await?;
        convert::to_dynamic(&state, &ty)
    }
    .await;
    Ok(match result {
        Ok(dv) => pb::read_data_source::Response {
            state: Some(dv),
            diagnostics: Vec::new(),
            deferred: None,
        },
        Err(d) => pb::read_data_source::Response {
            state: None,
            diagnostics: convert::diagnostics(d),
            deferred: None,
        },
    })
}
