//! Compiles the gateway configuration contract with protox (pure Rust, no protoc binary).
//!
//! discovery.proto's messages (GatewayMessage, Ack, Nack, ConfigPush) are compiled here too,
//! prost only, so discovery and gateway share one set of message types; each of them generates
//! just its end of the gRPC service, pointing at these types with `extern_path`.

/// Every enum-typed field of the contract and the serializer that writes its name.
const ENUM_FIELDS: [(&str, &str); 8] = [
    (".isthmus.v1.Server.protocol", "protocol"),
    (".isthmus.v1.Cluster.protocol", "protocol"),
    (".isthmus.v1.ServerTls.mode", "tls_mode"),
    (".isthmus.v1.UpstreamTls.mode", "tls_mode"),
    (".isthmus.v1.ServerTls.min_version", "tls_version"),
    (".isthmus.v1.ServerTls.max_version", "tls_version"),
    (".isthmus.v1.Cluster.load_balancer", "load_balancer"),
    (".isthmus.v1.Endpoint.health", "health"),
];

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
    let mut config = prost_build::Config::new();
    config
        .btree_map(["."])
        // Admin endpoints dump the applied config as JSON.
        .type_attribute(".", "#[derive(serde::Serialize)]");
    // prost keeps enum fields as i32; dumps and golden files should say `TLS`, not `7`.
    for (field, serializer) in ENUM_FIELDS {
        config.field_attribute(
            field,
            format!("#[serde(serialize_with = \"crate::proto_serde::{serializer}\")]"),
        );
    }
    config.compile_fds(descriptors)?;
    Ok(())
}
