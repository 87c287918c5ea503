//! StopProvider: cancel work in flight, keep serving.
//!
//! The current cancellation token is cancelled and replaced, so requests
//! already running stop (at a point where nothing is half applied) and the
//! ones Terraform sends afterwards run normally.

use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::ProviderServer;
use crate::log;
use crate::proto::tfplugin6 as pb;

pub(super) fn handle(
    server: &ProviderServer,
    _: pb::stop_provider::Request,
) -> Result<pb::stop_provider::Response, Status> {
    let old = std::mem::replace(
        &mut *server.stop.lock().unwrap_or_else(|e| e.into_inner()),
        CancellationToken::new(),
    );
    old.cancel();
    log::info("stop requested: in-flight operations cancelled", &[]);
    Ok(pb::stop_provider::Response {
        error: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancels_the_current_token_only() {
        let server = ProviderServer::new();
        let before = server.stop.lock().unwrap().clone();
        handle(&server, pb::stop_provider::Request {}).unwrap();
        assert!(before.is_cancelled());
        assert!(!server.stop.lock().unwrap().is_cancelled());
    }
}
