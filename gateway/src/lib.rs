//! gateway
pub mod client_hello;
