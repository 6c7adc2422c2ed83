//! discovery

pub mod istio;
pub mod resource;
pub mod validate_cmd;
pub mod monitor;
pub mod push;
