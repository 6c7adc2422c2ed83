//! Collecting [`Rejection`]s while the index is built.

use multicluster::model::ClusterId;

use crate::istio::{IstioObject, Problem};
use crate::mesh::{Rejection, Severity, Sourced};
use crate::resource::Decoded;

#[derive(Debug, Default)]
pub(crate) struct Problems {
    found: Vec<Rejection>,
}

impl Problems {
    pub(crate) fn push(&mut self, rejection: Rejection) {
        self.found.push(rejection);
    }

    /// A problem with `decoded` as a whole or with one of its fields (`field` may be empty).
    pub(crate) fn about(
        &mut self,
        cluster: &ClusterId,
        decoded: &Decoded,
        severity: Severity,
        field: &str,
        message: impl Into<String>,
    ) {
        self.found.push(Rejection {
            cluster: cluster.clone(),
            origin: decoded.origin.to_string(),
            kind: decoded.kind().to_string(),
            namespace: decoded.namespace().to_string(),
            name: decoded.name().to_string(),
            field: field.to_string(),
            message: message.into(),
            severity,
        });
    }

    pub(crate) fn error(
        &mut self,
        cluster: &ClusterId,
        decoded: &Decoded,
        field: &str,
        message: impl Into<String>,
    ) {
        self.about(cluster, decoded, Severity::Error, field, message);
    }

    pub(crate) fn warn(
        &mut self,
        cluster: &ClusterId,
        decoded: &Decoded,
        field: &str,
        message: impl Into<String>,
    ) {
        self.about(cluster, decoded, Severity::Warning, field, message);
    }

    /// A problem with an Istio object after it left its [`Decoded`] wrapper.
    pub(crate) fn about_istio<S>(
        &mut self,
        sourced: &Sourced<IstioObject<S>>,
        kind: &str,
        severity: Severity,
        field: &str,
        message: impl Into<String>,
    ) {
        self.found.push(Rejection {
            cluster: sourced.cluster.clone(),
            origin: sourced.origin.to_string(),
            kind: kind.to_string(),
            namespace: sourced.object.namespace().to_string(),
            name: sourced.object.name().to_string(),
            field: field.to_string(),
            message: message.into(),
            severity,
        });
    }

    /// A finding of Istio validation, which already names kind, namespace, name and field.
    pub(crate) fn validation(
        &mut self,
        cluster: &ClusterId,
        decoded: &Decoded,
        problem: Problem,
        severity: Severity,
    ) {
        self.found.push(Rejection {
            cluster: cluster.clone(),
            origin: decoded.origin.to_string(),
            kind: problem.kind,
            namespace: problem.namespace,
            name: problem.name,
            field: problem.field,
            message: problem.message,
            severity,
        });
    }

    pub(crate) fn into_vec(self) -> Vec<Rejection> {
        self.found
    }
}
