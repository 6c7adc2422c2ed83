//! The `Sign` RPC: the caller's verified peer certificate decides the name it gets.

use std::time::Duration;

use certs::CsrError;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::authorities::CertificateAuthorities;
use super::generated::certificates_server::{Certificates, CertificatesServer};
use multicluster::proto::{SignRequest, SignResponse};

/// Istio's default workload certificate lifetime (`DEFAULT_WORKLOAD_CERT_TTL`).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Signs CSRs with the cluster CAs discovery holds.
#[derive(Debug, Clone)]
pub struct CertificateService {
    authorities: CertificateAuthorities,
}

impl CertificateService {
    pub fn new(authorities: CertificateAuthorities) -> Self {
        CertificateService { authorities }
    }

    /// The tonic service to add to discovery's gRPC server.
    pub fn into_server(self) -> CertificatesServer<CertificateService> {
        CertificatesServer::new(self)
    }
}

#[tonic::async_trait]
impl Certificates for CertificateService {
    async fn sign(&self, request: Request<SignRequest>) -> Result<Response<SignResponse>, Status> {
        // Only tonic's TLS transport fills this in, after verifying the chain to the mesh root;
        // a plaintext port has no peer certificate and so can never get a name.
        let peer_chain = request.peer_certs();
        let remote = request.remote_addr();
        let message = request.into_inner();
        let Some(peer_chain) = peer_chain else {
            warn!(
                ?remote,
                "refused CSR from a caller without a client certificate"
            );
            return Err(Status::unauthenticated(
                "certificate signing needs mesh mTLS: connect with the workload's current certificate (the first one comes from `isthmus certs`)",
            ));
        };
        let Some((cluster, authority)) = self.authorities.for_cluster(&message.cluster) else {
            let known: Vec<&str> = self.authorities.clusters().map(|id| id.as_str()).collect();
            return Err(Status::not_found(format!(
                "discovery holds no CA for cluster {:?}: known clusters are {known:?}; add `ca: <dir>` to that cluster in the mesh description",
                message.cluster
            )));
        };
        let lifetime = match message.lifetime_seconds {
            0 => DEFAULT_LIFETIME,
            seconds => Duration::from_secs(seconds),
        };
        let authority = std::sync::Arc::clone(authority);
        let cluster = cluster.clone();
        let csr = message.csr_pem;
        let chain_for_signing = peer_chain.as_ref().clone();
        // Key checks and signing are CPU work; keep them off the async workers.
        let signed = tokio::task::spawn_blocking(move || {
            authority.sign_csr_for_peer(&csr, &chain_for_signing, lifetime)
        })
        .await
        .map_err(|error| Status::internal(format!("signing task failed: {error}")))?;
        match signed {
            Ok(chain) => {
                info!(%cluster, ?remote, not_after = ?chain.not_after, "signed CSR");
                Ok(Response::new(SignResponse {
                    cert_chain: chain.certs_pem,
                }))
            }
            Err(error) => {
                warn!(%cluster, ?remote, %error, "refused CSR");
                Err(status_for(&error))
            }
        }
    }
}

/// gRPC codes the way a caller can act on them: a bad request is the caller's to fix, a name it
/// does not hold is a permission problem, a missing identity is an authentication problem.
fn status_for(error: &CsrError) -> Status {
    let message = error.to_string();
    match error {
        CsrError::Malformed { .. } | CsrError::AsksForCa => Status::invalid_argument(message),
        CsrError::IdentityMismatch { .. } => Status::permission_denied(message),
        CsrError::NoCallerIdentity(_) | CsrError::NoCallerCertificate => {
            Status::unauthenticated(message)
        }
        CsrError::Create(_) | CsrError::Issue(_) => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use certs::{Authority, Identity, Validity};
    use multicluster::model::ClusterId;

    fn authorities() -> CertificateAuthorities {
        let day = Validity::starting_now(Duration::from_secs(86_400));
        let root = Authority::generate_root("cluster.local", day).unwrap();
        let ca = root.generate_intermediate("cluster1", None, day).unwrap();
        CertificateAuthorities::from_authorities(vec![(ClusterId::new("cluster1").unwrap(), ca)])
            .unwrap()
    }

    #[tokio::test]
    async fn plaintext_callers_are_unauthenticated() {
        let service = CertificateService::new(authorities());
        let csr = certs::new_csr(&Identity::new("cluster.local", "default", "a").unwrap()).unwrap();
        let status = service
            .sign(Request::new(SignRequest {
                csr_pem: csr.csr_pem,
                lifetime_seconds: 60,
                cluster: String::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("mesh mTLS"), "{status:?}");
    }

    #[test]
    fn errors_map_to_codes_callers_can_act_on() {
        let mismatch = CsrError::IdentityMismatch {
            requested: "spiffe://td/ns/a/sa/b".into(),
            caller: "spiffe://td/ns/a/sa/c".into(),
        };
        let status = status_for(&mismatch);
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(status.message().contains("spiffe://td/ns/a/sa/b"));
        assert!(status.message().contains("spiffe://td/ns/a/sa/c"));
        let malformed = CsrError::Malformed {
            reason: "not a PKCS#10 request".into(),
        };
        assert_eq!(status_for(&malformed).code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status_for(&CsrError::AsksForCa).code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            status_for(&CsrError::NoCallerCertificate).code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn first_ca_is_the_default_and_unknown_clusters_are_absent() {
        let set = authorities();
        assert_eq!(set.for_cluster("").unwrap().0.as_str(), "cluster1");
        assert_eq!(set.for_cluster("cluster1").unwrap().0.as_str(), "cluster1");
        assert!(set.for_cluster("cluster9").is_none());
    }

    #[test]
    fn discovery_certificate_names_its_spiffe_id_and_dns_name() {
        let tls = authorities()
            .discovery_tls("cluster.local", "istio-system")
            .unwrap();
        let leaf = &certs::pem::certificates(tls.serving.chain_pem.as_bytes()).unwrap()[0];
        let info = certs::inspect::inspect(leaf).unwrap();
        assert!(
            info.uri_sans()
                .any(|uri| uri == "spiffe://cluster.local/ns/istio-system/sa/isthmus-discovery"),
            "{info:?}"
        );
        assert!(
            info.subject_alt_names
                .iter()
                .any(|san| san.matches("isthmus-discovery.istio-system.svc")),
            "{info:?}"
        );
        assert!(tls.roots_pem.contains("BEGIN CERTIFICATE"));
    }
}
