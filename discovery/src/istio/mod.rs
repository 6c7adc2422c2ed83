//! Istio's `networking.istio.io` API (v1alpha3, v1beta1 and v1 share one schema) as Isthmus
//! reads it, and validation with Istio's rules and wording.
//!
//! Field names follow Istio's camelCase YAML; absent fields take Istio's defaults.

pub mod common;
pub mod destination_rule;
pub mod duration;
pub mod gateway;
mod object;
pub mod protocol;
pub mod service_entry;
pub mod validate;
pub mod virtual_service;

pub use common::{Destination, PortSelector, StringMatch, StringMatchKind};
pub use destination_rule::DestinationRuleSpec;
pub use duration::{DurationError, IstioDuration, parse_duration};
pub use gateway::GatewaySpec;
pub use object::{DEFAULT_NAMESPACE, IstioObject};
pub use protocol::Protocol;
pub use service_entry::ServiceEntrySpec;
pub use validate::{
    Problem, Report, validate_destination_rule, validate_gateway, validate_resource,
    validate_service_entry, validate_virtual_service,
};
pub use virtual_service::VirtualServiceSpec;

/// The API group of every Istio kind Isthmus reads.
pub const API_GROUP: &str = "networking.istio.io";

/// The group versions accepted, oldest first.
pub const API_VERSIONS: [&str; 3] = [
    "networking.istio.io/v1alpha3",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1",
];
