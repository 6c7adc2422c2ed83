//! Validation of Istio resources with Istio's webhook rules and wording.
//!
//! Pure functions: a resource in, a [`Report`] of errors and warnings out. An error means the
//! resource must not be used; a warning is shown to the user and the resource is still used.

mod destination_rule;
mod gateway;
mod http_route;
mod names;
mod service_entry;
mod string_match;
mod tls;
mod virtual_service;

use std::fmt;

pub use destination_rule::validate_destination_rule;
pub use gateway::validate_gateway;
pub use names::{
    host_is_subset_of, hosts_overlap, is_dns1123_label, validate_fqdn,
    validate_namespace_slash_host, validate_wildcard_domain,
};
pub use service_entry::validate_service_entry;
pub use tls::{ISTHMUS_CIPHER_SUITES, is_supported_cipher_suite};
pub use virtual_service::validate_virtual_service;

use super::IstioObject;

/// One finding about one field of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `Gateway`, `VirtualService`, ...
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Path of the offending field, e.g. `spec.servers[0].tls.mode`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}: {}: {}",
            self.kind, self.namespace, self.name, self.field, self.message
        )
    }
}

/// Everything validation found about one resource.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Report {
    /// No errors: the resource may be used (warnings do not count).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn extend(&mut self, other: Report) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }
}

/// Collects problems for one resource, filling in kind, namespace and name.
pub(crate) struct Findings {
    kind: &'static str,
    namespace: String,
    name: String,
    report: Report,
}

impl Findings {
    pub(crate) fn new<S>(kind: &'static str, object: &IstioObject<S>) -> Self {
        let mut findings = Self {
            kind,
            namespace: object.namespace().to_string(),
            name: object.name().to_string(),
            report: Report::default(),
        };
        for field in &object.unknown_fields {
            findings.warn(
                field,
                "unknown field, ignored: check its spelling and the Istio API version",
            );
        }
        findings
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    fn problem(&self, field: &str, message: String) -> Problem {
        Problem {
            kind: self.kind.to_string(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            field: field.to_string(),
            message,
        }
    }

    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        let problem = self.problem(field, message.into());
        self.report.errors.push(problem);
    }

    pub(crate) fn warn(&mut self, field: &str, message: impl Into<String>) {
        let problem = self.problem(field, message.into());
        self.report.warnings.push(problem);
    }

    /// Records `Err` results as errors of `field`.
    pub(crate) fn check(&mut self, field: &str, result: Result<impl Sized, String>) {
        if let Err(message) = result {
            self.error(field, message);
        }
    }

    pub(crate) fn errors(&mut self, field: &str, messages: Vec<String>) {
        for message in messages {
            self.error(field, message);
        }
    }

    pub(crate) fn finish(self) -> Report {
        self.report
    }
}

/// Validates any decoded resource; Kubernetes kinds have no Istio rules and pass.
pub fn validate_resource(resource: &crate::resource::Resource) -> Report {
    use crate::resource::Resource;
    match resource {
        Resource::Gateway(gateway) => validate_gateway(gateway),
        Resource::VirtualService(virtual_service) => validate_virtual_service(virtual_service),
        Resource::DestinationRule(rule) => validate_destination_rule(rule),
        Resource::ServiceEntry(entry) => validate_service_entry(entry),
        Resource::Namespace(_)
        | Resource::Service(_)
        | Resource::EndpointSlice(_)
        | Resource::Pod(_)
        | Resource::Secret(_) => Report::default(),
    }
}
