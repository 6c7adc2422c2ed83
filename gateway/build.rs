//! Generates the gateway's end of the `MeshDiscovery` gRPC service (client only).
//!
//! The messages live in `multicluster::proto` (compiled there, so discovery and gateway share one
//! set of types); `extern_path` points the generated client at them.

const PROTO_ROOT: &str = "../multicluster/proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}/isthmus/v1");
    // ca.proto: the identity module renews its certificate through discovery's signing service.
    let descriptors = protox::compile(
        ["isthmus/v1/discovery.proto", "isthmus/v1/ca.proto"],
        [PROTO_ROOT],
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .extern_path(".isthmus.v1", "::multicluster::proto")
        .compile_fds(descriptors)?;
    Ok(())
}
