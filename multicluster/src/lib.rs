//! The pure core of Isthmus: the mesh model, Istio's SNI naming, the split-horizon endpoint
//! view, and the configuration contract between discovery and gateways.
//!
//! Nothing here does IO. Both the control plane and the data plane depend on this crate and on
//! nothing of each other, so every rule they must agree on lives here.

pub mod delta;
pub mod model;
pub mod proto;
mod proto_serde;
pub mod refresh;
pub mod sni;
pub mod validate;
pub mod view;

pub use validate::{ConfigProblem, validate};
