//! The workload side of certificate signing: keeps this proxy's or gateway's mesh certificate
//! fresh by sending CSRs to discovery (`isthmus.v1.Certificates/Sign`).
//!
//! The first certificate is bootstrapped out of band (`isthmus certs` /
//! `certs::write_workload_files`): without Kubernetes there is no service-account token, so the
//! only proof of identity discovery accepts is a still-valid mesh certificate presented over
//! mTLS. [`CertificateRenewer`] holds that certificate in a [`certs::RotatingCert`], which every
//! TLS configuration of the process shares: after a renewal, new handshakes present the new
//! certificate and connections already open keep going untouched.

mod client;
mod connector;
mod generated;
mod renewer;

pub use client::{CaClient, CaClientOptions, SignError};
pub use connector::MeshTlsConnector;
pub use renewer::{CertificateRenewer, RenewError, RenewalStatus};
