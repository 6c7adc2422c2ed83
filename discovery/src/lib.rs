//! discovery

pub mod istio;
pub mod resource;
pub mod validate_cmd;
