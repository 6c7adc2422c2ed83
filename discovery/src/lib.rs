//! discovery

pub mod app;
pub mod ca;
pub mod istio;
pub mod resource;
pub mod translate;
pub mod validate_cmd;
pub mod monitor;
pub mod push;
pub mod index;
pub mod mesh;
pub mod mesh_config;
pub mod resolve;
pub mod source;
