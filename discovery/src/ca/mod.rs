//! Certificate signing on discovery's gRPC port (`isthmus.v1.Certificates/Sign`).
//!
//! Each cluster's intermediate CA comes from the mesh description (`ca: <dir>`). A workload
//! proxy or gateway renews its certificate by sending a CSR over mesh mTLS: the transport has
//! already verified its current certificate against the mesh root, and the SPIFFE id in that
//! certificate is the only name it can get back.
//!
//! Bootstrap is out of band: without Kubernetes there is no service-account token to prove an
//! identity with, so a workload's *first* certificate is written by `isthmus certs` (or
//! [`certs::write_workload_files`]) and every later one is a renewal through this service.
//!
//! When discovery holds at least one CA it also serves the port over mTLS with its own
//! certificate (`spiffe://<td>/ns/<system namespace>/sa/isthmus-discovery`, DNS SAN
//! [`discovery_dns_name`]), issued from the first listed cluster's intermediate at start.

mod authorities;
mod generated;
mod service;

pub use authorities::{
    CaError, CertificateAuthorities, DISCOVERY_SERVICE_ACCOUNT, DiscoveryTls, discovery_dns_name,
};
pub use service::{CertificateService, DEFAULT_LIFETIME};
