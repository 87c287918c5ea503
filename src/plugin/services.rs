//! The go-plugin side services: controller (shutdown), stdio, broker and
//! health.

use std::pin::Pin;

use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::health::{self, health_check_response::ServingStatus};
use crate::proto::plugin as pb;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A stream that stays open without sending anything until shutdown.
fn idle_stream<T: Send + 'static>(shutdown: CancellationToken) -> BoxStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<T, Status>>(1);
    tokio::spawn(async move {
        shutdown.cancelled().await;
        drop(tx);
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

pub struct Controller {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl pb::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        crate::log::debug("shutdown requested by Terraform", &[]);
        self.shutdown.cancel();
        Ok(Response::new(pb::Empty {}))
    }
}

pub struct Stdio {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl pb::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<pb::StdioData>;
    // The provider writes nothing to stdout after the handshake and logs
    // to stderr directly, so the stream carries nothing.
    async fn stream_stdio(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(idle_stream(self.shutdown.clone())))
    }
}

pub struct Broker {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl pb::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<pb::ConnInfo>;
    // Terraform opens the broker stream but never brokers connections to
    // a provider; accept it and drain what comes.
    async fn start_stream(
        &self,
        req: Request<Streaming<pb::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = req.into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = incoming.message().await {} });
        Ok(Response::new(idle_stream(self.shutdown.clone())))
    }
}

pub struct Health;

#[tonic::async_trait]
impl health::health_server::Health for Health {
    type WatchStream = BoxStream<health::HealthCheckResponse>;

    async fn check(
        &self,
        req: Request<health::HealthCheckRequest>,
    ) -> Result<Response<health::HealthCheckResponse>, Status> {
        let service = req.into_inner().service;
        if service.is_empty() || service == "plugin" {
            Ok(Response::new(health::HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            }))
        } else {
            Err(Status::not_found(format!("unknown service {service:?}")))
        }
    }

    async fn watch(
        &self,
        req: Request<health::HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let status = self.check(req).await?.into_inner();
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(status)))))
    }
}
