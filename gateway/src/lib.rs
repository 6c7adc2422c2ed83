//! The Isthmus gateway data plane: listeners, SNI passthrough, TCP forwarding, upstream
//! load balancing and passive health, metrics and admin endpoints.
//!
//! Start one in-process with [`Gateway::start`] and feed it configurations with
//! [`Gateway::apply`]; the discovery client does the same with every push.

pub mod admin;
pub mod client_hello;
pub mod config;
pub mod h3;
pub mod http;
pub mod identity;
pub mod listener;
pub mod metrics;
pub mod proxy;
pub mod runtime;
pub mod sidecar;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod xds;

pub use runtime::{Gateway, GatewayHandle, GatewayOptions, MeshIdentity, StartError};
