//! TLS origination per cluster (DestinationRule `tls`): built at apply time into rustls
//! client configurations the upstream connector uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::RuntimeConfig;
use crate::http::OriginationTls;

use super::credentials::CredentialCache;
use super::termination::{MeshMaterial, ServerRejection};

/// Placeholder until origination is built: no cluster originates TLS.
pub fn build(
    _config: &RuntimeConfig,
    _credentials: &CredentialCache,
    _mesh: Option<&MeshMaterial>,
    _cache: &Mutex<HashMap<String, (String, OriginationTls)>>,
) -> (HashMap<String, OriginationTls>, Vec<ServerRejection>) {
    let _ = Arc::new(());
    (HashMap::new(), Vec::new())
}
