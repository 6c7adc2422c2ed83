//! Shared helpers of the root end-to-end tests: a mesh described in YAML files and served by
//! an in-process discovery, gateways subscribed to it, TLS and TCP backends, clients, admin
//! readers and child-process guards. Everything runs on loopback.
//!
//! Each test binary uses a different subset, hence the dead-code allowance.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a panic is how they report a failure

pub mod admin;
pub mod backend;
pub mod client;
pub mod fixture;
pub mod gateways;
pub mod grpc_echo;
pub mod httpbin;
pub mod mesh;
pub mod pki;
pub mod process;
pub mod tls_recorder;
pub mod wait;

/// Installs the process-wide rustls crypto provider once (tests share one process).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("ISTHMUS_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}
