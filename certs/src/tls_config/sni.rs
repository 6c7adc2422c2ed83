//! Picking the server certificate by SNI among several Gateway servers on one port:
//! exact host first, then the longest `*.suffix`, then the default.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsConfigError;

#[derive(Debug, Default)]
pub struct SniCertResolver {
    exact: HashMap<String, Arc<dyn ResolvesServerCert>>,
    /// Keyed by the suffix including its leading dot (".example.com").
    wildcard: HashMap<String, Arc<dyn ResolvesServerCert>>,
    default: Option<Arc<dyn ResolvesServerCert>>,
}

impl SniCertResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `certs` for `host`: an exact name, `*.suffix`, or `*` (the default).
    pub fn add(
        &mut self,
        host: &str,
        certs: Arc<dyn ResolvesServerCert>,
    ) -> Result<(), TlsConfigError> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let duplicate = || TlsConfigError::DuplicateHost { host: host.clone() };
        if host == "*" {
            if self.default.is_some() {
                return Err(duplicate());
            }
            self.default = Some(certs);
            return Ok(());
        }
        let (table, key) = match host.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') => (&mut self.wildcard, suffix.to_owned()),
            _ => (&mut self.exact, host.clone()),
        };
        if table.contains_key(&key) {
            return Err(duplicate());
        }
        table.insert(key, certs);
        Ok(())
    }

    /// Serves `certs` when no host matches (or the client sent no SNI).
    pub fn set_default(&mut self, certs: Arc<dyn ResolvesServerCert>) {
        self.default = Some(certs);
    }

    /// The resolver that would answer for `server_name`.
    pub fn lookup(&self, server_name: Option<&str>) -> Option<&Arc<dyn ResolvesServerCert>> {
        let Some(name) = server_name else {
            return self.default.as_ref();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(found) = self.exact.get(&name) {
            return Some(found);
        }
        // Longest suffix first: walk the dots from the left, so "a.b.example.com" tries
        // ".b.example.com" before ".example.com".
        name.match_indices('.')
            .find_map(|(at, _)| self.wildcard.get(&name[at..]))
            .or(self.default.as_ref())
    }
}

impl ResolvesServerCert for SniCertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let server_name = client_hello.server_name().map(str::to_owned);
        let found = self.lookup(server_name.as_deref());
        if found.is_none() {
            tracing::debug!(sni = ?server_name, "no certificate for this SNI and no default");
        }
        found?.resolve(client_hello)
    }
}
