//! Compiles the gateway configuration contract with protox (pure Rust, no protoc binary).
//!
//! discovery.proto's messages (GatewayMessage, Ack, Nack, ConfigPush) are compiled here too,
//! prost only, so discovery and gateway share one set of message types; each of them generates
//! just its end of the gRPC service, pointing at these types with `extern_path`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/isthmus/v1/config.proto",
        "proto/isthmus/v1/discovery.proto",
        "proto/isthmus/v1/ca.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    prost_build::Config::new()
        .btree_map(["."])
        // Admin endpoints dump the applied config as JSON.
        .type_attribute(".", "#[derive(serde::Serialize)]")
        .compile_fds(descriptors)?;
    Ok(())
}
