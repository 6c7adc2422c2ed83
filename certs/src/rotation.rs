//! A certificate that can be swapped while serving. rustls asks the resolver once per
//! handshake, so connections made before a swap keep the certificate they were made with and
//! every later full handshake sees the new one. A client resuming an earlier TLS session
//! exchanges no certificates, so it keeps the identity of that session until the session
//! expires from the server's cache. No timers: the owner asks [`RotatingCert::renew_at`] and
//! decides when to renew.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::inspect::{self, InspectError};

/// Istio renews when half of the lifetime is left (`SECRET_GRACE_PERIOD_RATIO` 0.5).
pub const DEFAULT_RENEWAL_FRACTION: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RotationError {
    #[error("rotating certificate has an empty chain: give at least the leaf")]
    EmptyChain,
    #[error("rotating certificate's leaf cannot be read: {0}")]
    BadLeaf(#[from] InspectError),
    #[error(
        "renewal fraction {0} is out of range: renew between 50% and 80% of the lifetime (0.5..=0.8)"
    )]
    BadFraction(f64),
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    not_before: SystemTime,
    not_after: SystemTime,
}

#[derive(Debug)]
pub struct RotatingCert {
    current: RwLock<Current>,
    renewal_fraction: f64,
}

impl RotatingCert {
    pub fn new(key: CertifiedKey) -> Result<Self, RotationError> {
        Ok(Self {
            current: RwLock::new(describe(key)?),
            renewal_fraction: DEFAULT_RENEWAL_FRACTION,
        })
    }

    /// Renew after `fraction` of the lifetime has passed; pick a value per instance in
    /// 0.5..=0.8 to spread renewals of many workloads.
    pub fn with_renewal_fraction(mut self, fraction: f64) -> Result<Self, RotationError> {
        if !(0.5..=0.8).contains(&fraction) {
            return Err(RotationError::BadFraction(fraction));
        }
        self.renewal_fraction = fraction;
        Ok(self)
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.read().key)
    }

    pub fn not_after(&self) -> SystemTime {
        self.read().not_after
    }

    /// Installs `key` for every handshake from now on.
    pub fn replace(&self, key: CertifiedKey) -> Result<(), RotationError> {
        let next = describe(key)?;
        tracing::info!(
            not_before = ?next.not_before,
            not_after = ?next.not_after,
            "rotated certificate"
        );
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// When the current certificate should be renewed.
    pub fn renew_at(&self) -> SystemTime {
        let current = self.read();
        let lifetime = current
            .not_after
            .duration_since(current.not_before)
            .unwrap_or(Duration::ZERO);
        current.not_before + lifetime.mul_f64(self.renewal_fraction)
    }

    pub fn needs_renewal(&self, now: SystemTime) -> bool {
        now >= self.renew_at()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // A poisoned lock only means a writer panicked around a plain assignment; the value
        // is still a whole certificate.
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn describe(key: CertifiedKey) -> Result<Current, RotationError> {
    let leaf = key.cert.first().ok_or(RotationError::EmptyChain)?;
    let info = inspect::inspect(leaf)?;
    Ok(Current {
        not_before: info.not_before,
        not_after: info.not_after,
        key: Arc::new(key),
    })
}

impl ResolvesServerCert for RotatingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for RotatingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::Authority;
    use crate::identity::Identity;
    use crate::issue::LeafSpec;
    use crate::validity::Validity;

    fn cert_valid(from: SystemTime, hours: u64) -> CertifiedKey {
        let ca_validity = Validity::starting_now(Duration::from_secs(30 * 86_400));
        let ca = Authority::generate_root(
            "td",
            Validity::new(from - Duration::from_secs(60), ca_validity.not_after).unwrap(),
        )
        .unwrap();
        let spec = LeafSpec::for_identity(
            Identity::new("td", "ns", "sa").unwrap(),
            Validity::new(from, from + Duration::from_secs(hours * 3600)).unwrap(),
        );
        ca.issue(&spec).unwrap().certified_key().unwrap()
    }

    fn whole_seconds(t: SystemTime) -> SystemTime {
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn renews_halfway_by_default() {
        let start = whole_seconds(SystemTime::now());
        let rotating = RotatingCert::new(cert_valid(start, 10)).unwrap();
        assert_eq!(rotating.renew_at(), start + Duration::from_secs(5 * 3600));
        assert!(!rotating.needs_renewal(start + Duration::from_secs(5 * 3600 - 1)));
        assert!(rotating.needs_renewal(start + Duration::from_secs(5 * 3600)));
    }

    #[test]
    fn fraction_is_configurable_within_istios_range() {
        let start = whole_seconds(SystemTime::now());
        let rotating = RotatingCert::new(cert_valid(start, 10))
            .unwrap()
            .with_renewal_fraction(0.8)
            .unwrap();
        assert_eq!(rotating.renew_at(), start + Duration::from_secs(8 * 3600));
        let again = RotatingCert::new(cert_valid(start, 10)).unwrap();
        assert_eq!(
            again.with_renewal_fraction(0.9).unwrap_err(),
            RotationError::BadFraction(0.9)
        );
    }

    #[test]
    fn replace_moves_the_renewal_time() {
        let start = whole_seconds(SystemTime::now());
        let rotating = RotatingCert::new(cert_valid(start, 2)).unwrap();
        let first = rotating.current();
        rotating
            .replace(cert_valid(start + Duration::from_secs(3600), 2))
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &rotating.current()));
        assert_eq!(rotating.renew_at(), start + Duration::from_secs(2 * 3600));
    }

    #[test]
    fn empty_chain_is_refused() {
        let key = cert_valid(SystemTime::now(), 1);
        let empty = CertifiedKey::new(Vec::new(), key.key);
        assert_eq!(
            RotatingCert::new(empty).unwrap_err(),
            RotationError::EmptyChain
        );
    }
}
