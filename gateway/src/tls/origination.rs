//! TLS origination per cluster (DestinationRule `tls`), built at apply time into the rustls
//! client configuration the upstream connector uses:
//!
//! - SIMPLE / MUTUAL: the credential's CA (required: no system roots), its certificate for
//!   MUTUAL, SNI = `sni` or the destination host, optional `subjectAltNames`.
//! - ISTIO_MUTUAL: the gateway's mesh certificate, SNI = Istio's cluster SNI
//!   `outbound_.<port>_.<subset>_.<host>`, ALPN `istio`: how an ingress reaches services on
//!   other networks through their east-west gateway.
//!
//! A cluster whose TLS cannot be built is recorded as rejected and its requests answer 503:
//! a request meant to be encrypted is never sent in the clear.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use multicluster::proto::{self, TlsMode};
use rustls::sign::CertifiedKey;

use super::credentials::{CredentialCache, CredentialError};
use super::termination::{MeshMaterial, ServerRejection};
use crate::config::{ClusterConfig, RuntimeConfig};
use crate::http::OriginationTls;

/// What an origination was built from: equal recipes reuse the built config (and so the
/// cluster's connection pool).
type Recipe = String;

pub fn build(
    config: &RuntimeConfig,
    credentials: &CredentialCache,
    mesh: Option<&MeshMaterial>,
    cache: &Mutex<HashMap<String, (Recipe, OriginationTls)>>,
) -> (HashMap<String, OriginationTls>, Vec<ServerRejection>) {
    let by_name: HashMap<&str, &proto::TlsCredential> = config
        .source
        .credentials
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    // Whole entries are inserted and removed; a panic elsewhere cannot corrupt the map.
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    let mut built = HashMap::new();
    let mut rejected = Vec::new();
    for cluster in config.clusters.values() {
        let Some(tls) = &cluster.tls else {
            continue;
        };
        match origination(cluster, tls, &by_name, credentials, mesh, &cache) {
            Ok((recipe, origination)) => {
                cache.insert(cluster.name.clone(), (recipe, Arc::clone(&origination)));
                built.insert(cluster.name.clone(), origination);
            }
            Err(reason) => {
                tracing::warn!(cluster = %cluster.name, %reason, "TLS origination cannot be built; requests to this cluster answer 503");
                rejected.push(ServerRejection {
                    listener: "cluster".to_owned(),
                    server: cluster.name.clone(),
                    reason,
                });
            }
        }
    }
    cache.retain(|name, _| built.contains_key(name));
    (built, rejected)
}

fn fingerprint(key: &CertifiedKey) -> u64 {
    let mut hasher = DefaultHasher::new();
    for cert in &key.cert {
        cert.as_ref().hash(&mut hasher);
    }
    hasher.finish()
}

/// Istio's SNI for a cluster, as its clients send it to an east-west gateway.
pub fn istio_sni(cluster: &ClusterConfig) -> String {
    format!(
        "outbound_.{}_.{}_.{}",
        cluster.port, cluster.subset, cluster.service
    )
}

fn origination(
    cluster: &ClusterConfig,
    tls: &proto::UpstreamTls,
    by_name: &HashMap<&str, &proto::TlsCredential>,
    credentials: &CredentialCache,
    mesh: Option<&MeshMaterial>,
    cache: &HashMap<String, (Recipe, OriginationTls)>,
) -> Result<(Recipe, OriginationTls), String> {
    let mode = TlsMode::try_from(tls.mode).unwrap_or(TlsMode::Unspecified);
    let alpn_http = if cluster.http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    let cached = |recipe: &str| {
        cache
            .get(&cluster.name)
            .filter(|(seen, _)| seen == recipe)
            .map(|(_, built)| Arc::clone(built))
    };
    if mode == TlsMode::IstioMutual {
        let mesh = mesh.ok_or_else(|| {
            "ISTIO_MUTUAL origination needs the gateway's mesh identity (GatewayOptions.mesh_identity); none is configured".to_owned()
        })?;
        let sni = if tls.sni.is_empty() {
            istio_sni(cluster)
        } else {
            tls.sni.clone()
        };
        let recipe = format!("{tls:?}|{sni}|{}|{}", fingerprint(&mesh.key), cluster.http2);
        if let Some(built) = cached(&recipe) {
            return Ok((recipe, built));
        }
        let resolver = certs::RotatingCert::new((*mesh.key).clone())
            .map_err(|e| format!("mesh identity: {e}"))?;
        let config = certs::mesh_client_config(
            Arc::new(resolver),
            &mesh.roots,
            &[],
            vec![b"istio".to_vec()],
        )
        .map_err(|e| e.to_string())?;
        let server_name = rustls_pki_types::ServerName::try_from(sni.clone())
            .map_err(|e| format!("SNI {sni:?} is not a valid server name: {e}"))?;
        return Ok((
            recipe,
            Arc::new(certs::UpstreamTls {
                config: Arc::new(config),
                server_name,
            }),
        ));
    }
    let (policy_mode, mode_name) = match mode {
        TlsMode::Mutual => (certs::UpstreamTlsMode::Mutual, "MUTUAL"),
        TlsMode::Simple => (certs::UpstreamTlsMode::Simple, "SIMPLE"),
        other => {
            return Err(format!(
                "DestinationRule tls mode {other:?} cannot originate TLS; use SIMPLE, MUTUAL or ISTIO_MUTUAL"
            ));
        }
    };
    if tls.insecure_skip_verify {
        return Err(
            "insecureSkipVerify is not supported: give caCertificates so the upstream can be verified"
                .to_owned(),
        );
    }
    if tls.credential.is_empty() {
        return Err(format!(
            "{mode_name} origination needs caCertificates (or a credentialName with ca.crt): the gateway uses no system roots"
        ));
    }
    let credential = credentials
        .load(by_name, &tls.credential)
        .map_err(|e| e.to_string())?;
    if credential.ca.is_empty() {
        return Err(CredentialError::NoCa {
            name: tls.credential.clone(),
            mode: mode_name,
        }
        .to_string());
    }
    let recipe = format!(
        "{tls:?}|{:p}|{}|{}",
        Arc::as_ptr(&credential),
        cluster.http2,
        cluster.service
    );
    if let Some(built) = cached(&recipe) {
        return Ok((recipe, built));
    }
    let client_cert: Option<Arc<dyn rustls::client::ResolvesClientCert>> = match &credential.key {
        Some(key) => Some(Arc::new(
            certs::RotatingCert::new((**key).clone()).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let policy = certs::UpstreamTlsPolicy {
        mode: policy_mode,
        sni: (!tls.sni.is_empty()).then(|| tls.sni.clone()),
        subject_alt_names: tls.subject_alt_names.clone(),
    };
    let built = certs::upstream_client_config(
        &policy,
        &cluster.service,
        &credential.ca,
        client_cert,
        alpn_http,
    )
    .map_err(|e| format!("{mode_name} origination: {e}"))?;
    Ok((recipe, Arc::new(built)))
}
