//! A Terraform provider that manages TimescaleDB multi-node authentication
//! on live PostgreSQL nodes.
//!
//! The crate is layered from the wire inwards:
//! - [`plugin`]: the go-plugin handshake, AutoMTLS and the gRPC server.
//! - [`server`]: one module per Terraform RPC; converts protocol messages
//!   to [`value::Value`]s and enforces Terraform's planning rules.
//! - [`value`], [`schema`], [`diag`]: Terraform's type system, schemas and
//!   diagnostics as Rust data; [`model`]: typed models declared once, from
//!   which a resource's schema, decoding and encoding come.
//! - [`provider`]: provider configuration and the set of nodes it reaches.
//! - [`node`]: access to one PostgreSQL node: pooled connections, SQL built
//!   by [`sql`], files on the node read and written through SQL.
//! - [`hba`], [`passfile`]: pure parsers and renderers.
//! - [`resources`], [`data_sources`], [`ephemeral`]: one module each.

pub mod data_sources;
pub mod diag;
pub mod docs;
pub mod ephemeral;
pub mod hba;
pub mod ident;
pub mod lines;
pub mod log;
#[macro_use]
pub mod model;
pub mod node;
pub mod passfile;
pub mod password;
pub mod pki;
pub mod plugin;
pub mod provider;
pub mod resources;
pub mod role;
pub mod schema;
pub mod secret;
pub mod server;
pub mod sql;
pub mod value;

/// Generated protocol bindings; only [`server`] and [`plugin`] use them.
pub mod proto {
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
}

/// The provider's own version, as Terraform sees it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
