//! Discovery: reads every cluster's Kubernetes and Istio resources, builds one mesh snapshot,
//! translates it per gateway, and pushes each gateway its configuration (see ARCHITECTURE.md).

pub mod app;
pub mod ca;
pub mod index;
pub mod istio;
pub mod mesh;
pub mod mesh_config;
pub mod monitor;
pub mod push;
pub mod resolve;
pub mod resource;
pub mod source;
pub mod translate;
mod translations;
pub mod validate_cmd;
