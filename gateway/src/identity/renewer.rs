//! The renewal task: before the current certificate runs out, a new key and CSR go to
//! discovery, and the signed chain replaces the certificate for every later handshake.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certs::{CsrError, Identity, LoadError, RotatingCert, RotationError};
use tokio::sync::watch;
use tracing::{info, warn};

use super::client::{CaClient, CaClientOptions, SignError};

/// Renew after this share of the time left when a certificate was installed (Istio's 0.5).
const RENEW_FRACTION: f64 = 0.5;
/// Never spin: even a certificate about to expire waits this long between attempts.
const MIN_WAIT: Duration = Duration::from_millis(50);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("cannot make a CSR for {identity}: {source}")]
    Csr {
        identity: String,
        #[source]
        source: CsrError,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error("discovery's chain for {identity} does not fit the new key: {source}")]
    BadChain {
        identity: String,
        #[source]
        source: LoadError,
    },
    #[error(
        "discovery signed a certificate for {got}, but this workload is {expected}: refusing to install it"
    )]
    WrongIdentity { expected: String, got: String },
    #[error("the renewed certificate for {identity} cannot be installed: {source}")]
    Install {
        identity: String,
        #[source]
        source: RotationError,
    },
}

/// What the renewal task has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewalStatus {
    pub renewals: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    /// Expiry of the certificate handshakes currently get.
    pub not_after: Option<SystemTime>,
}

/// Keeps one identity's certificate fresh through discovery.
#[derive(Debug)]
pub struct CertificateRenewer {
    identity: Identity,
    cert: Arc<RotatingCert>,
    client: CaClient,
    status: watch::Sender<RenewalStatus>,
}

impl CertificateRenewer {
    /// `cert` holds the bootstrap certificate (from `isthmus certs`); share it with every TLS
    /// configuration that should present this identity.
    pub fn new(
        identity: Identity,
        cert: Arc<RotatingCert>,
        options: CaClientOptions,
    ) -> Result<Self, SignError> {
        let client = CaClient::new(options, Arc::clone(&cert))?;
        let status = watch::Sender::new(RenewalStatus {
            not_after: Some(cert.not_after()),
            ..RenewalStatus::default()
        });
        Ok(CertificateRenewer {
            identity,
            cert,
            client,
            status,
        })
    }

    /// The certificate the renewer replaces; hand it to server and client TLS configs.
    pub fn cert(&self) -> Arc<RotatingCert> {
        Arc::clone(&self.cert)
    }

    pub fn status(&self) -> watch::Receiver<RenewalStatus> {
        self.status.subscribe()
    }

    /// One renewal now: new key, CSR, `Sign` over mTLS with the current certificate, install.
    /// Returns the new certificate's expiry.
    pub async fn renew(&self) -> Result<SystemTime, RenewError> {
        let identity = self.identity.uri();
        let request = certs::new_csr(&self.identity).map_err(|source| RenewError::Csr {
            identity: identity.clone(),
            source,
        })?;
        let chain = self.client.sign(&request.csr_pem).await?;
        let key =
            certs::certified_key_from_pem(&chain.concat(), &request.key_pem).map_err(|source| {
                RenewError::BadChain {
                    identity: identity.clone(),
                    source,
                }
            })?;
        // Discovery decides the name; a different one would silently change who we are.
        if let Some(leaf) = key.cert.first() {
            match certs::inspect::spiffe_identity(leaf) {
                Ok(got) if got == self.identity => {}
                Ok(got) => {
                    return Err(RenewError::WrongIdentity {
                        expected: identity,
                        got: got.uri(),
                    });
                }
                Err(error) => {
                    return Err(RenewError::WrongIdentity {
                        expected: identity,
                        got: error.to_string(),
                    });
                }
            }
        }
        self.cert
            .replace(key)
            .map_err(|source| RenewError::Install {
                identity: identity.clone(),
                source,
            })?;
        let not_after = self.cert.not_after();
        info!(identity = %identity, ?not_after, "renewed certificate through discovery");
        Ok(not_after)
    }

    /// Renews whenever the current certificate is halfway from installation to expiry, and
    /// retries failures with doubling waits, until `shutdown` completes. A failure never
    /// removes the current certificate: it keeps serving until it expires.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut installed_at = SystemTime::now();
        let mut retry_wait = MIN_WAIT;
        let mut failing = false;
        loop {
            let wait = if failing {
                retry_wait
            } else {
                renewal_wait(installed_at, self.cert.not_after(), SystemTime::now())
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
            match self.renew().await {
                Ok(not_after) => {
                    installed_at = SystemTime::now();
                    failing = false;
                    retry_wait = MIN_WAIT;
                    self.status.send_modify(|status| {
                        status.renewals += 1;
                        status.last_error = None;
                        status.not_after = Some(not_after);
                    });
                }
                Err(error) => {
                    let left = self
                        .cert
                        .not_after()
                        .duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO);
                    warn!(
                        identity = %self.identity,
                        %error,
                        expires_in = ?left,
                        retry_in = ?retry_wait,
                        "certificate renewal failed; the current certificate keeps serving"
                    );
                    self.status.send_modify(|status| {
                        status.failures += 1;
                        status.last_error = Some(error.to_string());
                    });
                    if failing {
                        retry_wait = (retry_wait * 2).min(MAX_RETRY_WAIT);
                    }
                    failing = true;
                }
            }
        }
    }
}

/// How long to wait before renewing. Measured from when the certificate was installed rather
/// than from its notBefore: issuers backdate notBefore for clock skew (a minute here), which for
/// a short-lived certificate would put the midpoint of its validity in the past and renew in a
/// tight loop.
fn renewal_wait(installed_at: SystemTime, not_after: SystemTime, now: SystemTime) -> Duration {
    let span = not_after
        .duration_since(installed_at)
        .unwrap_or(Duration::ZERO);
    let due = installed_at + span.mul_f64(RENEW_FRACTION);
    due.duration_since(now)
        .unwrap_or(Duration::ZERO)
        .max(MIN_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_halfway_through_the_time_left_at_installation() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let wait = renewal_wait(start, start + Duration::from_secs(4), start);
        assert_eq!(wait, Duration::from_secs(2));
        let later = renewal_wait(
            start,
            start + Duration::from_secs(4),
            start + Duration::from_secs(1),
        );
        assert_eq!(later, Duration::from_secs(1));
    }

    #[test]
    fn overdue_or_expired_certificates_wait_the_minimum() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            renewal_wait(
                start,
                start + Duration::from_secs(4),
                start + Duration::from_secs(9)
            ),
            MIN_WAIT
        );
        assert_eq!(
            renewal_wait(start, start - Duration::from_secs(1), start),
            MIN_WAIT
        );
    }
}
