//! Compiles the gateway configuration contract with protox (pure Rust, no protoc binary).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/isthmus/v1/config.proto"];
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
