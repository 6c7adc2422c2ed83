//! Generates discovery's end of the `MeshDiscovery` gRPC service (server only).
//!
//! The messages live in `multicluster::proto` (compiled there, so discovery and gateway share one
//! set of types); `extern_path` points the generated service at them. A client is generated into
//! its own directory for this crate's integration tests, which must drive the server without
//! depending on the gateway crate.

use std::path::PathBuf;

const PROTO_ROOT: &str = "../multicluster/proto";
const SERVICE_PROTO: &str = "isthmus/v1/discovery.proto";
/// Certificate signing shares the gRPC port (and the generated module) with the push service.
const CA_PROTO: &str = "isthmus/v1/ca.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}/isthmus/v1");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let server = protox::compile([SERVICE_PROTO, CA_PROTO], [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".isthmus.v1", "::multicluster::proto")
        // The server sends pushes whose config bytes are shared between streams (push/wire.rs);
        // on the wire they are `ConfigPush`.
        .extern_path(".isthmus.v1.ConfigPush", "crate::push::wire::SharedPush")
        .compile_fds(server)?;

    let test_client_dir = out_dir.join("test_client");
    std::fs::create_dir_all(&test_client_dir)?;
    let client = protox::compile([SERVICE_PROTO], [PROTO_ROOT])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .extern_path(".isthmus.v1", "::multicluster::proto")
        .out_dir(test_client_dir)
        .compile_fds(client)?;
    Ok(())
}
