//! Generates the gRPC bindings for the Terraform plugin protocol and the
//! go-plugin side services from the project's own `.proto` files.
//!
//! The `.proto` files are parsed in Rust (protox), not by the `protoc`
//! program: building the provider needs the Rust toolchain and nothing else.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/tfplugin6.proto",
        "proto/plugin.proto",
        "proto/health.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    // The attribute tonic adds itself when it runs `protoc`, so that the
    // generated code is the same, byte for byte.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .type_attribute(".", "#[allow(clippy::all)]")
        .compile_fds(descriptors)?;
    Ok(())
}
