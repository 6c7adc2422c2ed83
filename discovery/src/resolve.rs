//! Keeping network gateway hostnames resolved.
//!
//! Cloud load balancers often publish a DNS name instead of an IP (AWS NLB/ELB). Gateways are
//! dialled by address, so discovery resolves each name and re-resolves it when the answer's
//! TTL runs out, republishing the mesh when the addresses change. A failed lookup keeps the
//! last addresses: a DNS hiccup must not cut a network off.

use multicluster::refresh::RefreshBounds;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use hickory_resolver::TokioResolver;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Re-resolving more often than this gains nothing and loads the DNS server.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Re-resolve at least this often even when the TTL is longer, so moves are noticed.
pub const MAX_REFRESH: Duration = Duration::from_secs(300);
/// Re-resolution delays: the answer's TTL or a doubling backoff, within these bounds.
pub const REFRESH: RefreshBounds = RefreshBounds {
    min: MIN_REFRESH,
    max: MAX_REFRESH,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "cannot use the system DNS configuration: {0}: check /etc/resolv.conf, or give gateway Services IP addresses"
    )]
    SystemConfig(String),
    #[error("DNS lookup of {hostname} failed: {message}")]
    Lookup { hostname: String, message: String },
}

/// One answer: the addresses and how long they may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addresses: Vec<IpAddr>,
    pub ttl: Duration,
}

/// A DNS lookup. A trait so tests can answer with chosen addresses and TTLs, without network.
pub trait HostResolver: Send + Sync {
    fn resolve<'a>(&'a self, hostname: &'a str) -> BoxFuture<'a, Result<Answer, ResolveError>>;
}

/// The system's resolver (`/etc/resolv.conf`) through hickory.
pub struct SystemResolver {
    resolver: TokioResolver,
}

impl SystemResolver {
    pub fn from_system_config() -> Result<Self, ResolveError> {
        let resolver = TokioResolver::builder_tokio()
            .and_then(|builder| builder.build())
            .map_err(|error| ResolveError::SystemConfig(error.to_string()))?;
        Ok(Self { resolver })
    }
}

impl HostResolver for SystemResolver {
    fn resolve<'a>(&'a self, hostname: &'a str) -> BoxFuture<'a, Result<Answer, ResolveError>> {
        Box::pin(async move {
            // A trailing dot makes the name absolute: no search-domain queries first.
            let absolute = if hostname.ends_with('.') {
                hostname.to_string()
            } else {
                format!("{hostname}.")
            };
            let lookup = self
                .resolver
                .lookup_ip(absolute.as_str())
                .await
                .map_err(|error| ResolveError::Lookup {
                    hostname: hostname.to_string(),
                    message: error.to_string(),
                })?;
            let ttl = lookup
                .valid_until()
                .saturating_duration_since(std::time::Instant::now());
            Ok(Answer {
                addresses: lookup.iter().collect(),
                ttl,
            })
        })
    }
}

/// Answers every lookup with the same error; used when the system resolver cannot be built,
/// so that gateways with IP addresses keep working and hostnames are reported.
pub struct UnavailableResolver {
    reason: ResolveError,
}

impl UnavailableResolver {
    pub fn new(reason: ResolveError) -> Self {
        Self { reason }
    }
}

impl HostResolver for UnavailableResolver {
    fn resolve<'a>(&'a self, _hostname: &'a str) -> BoxFuture<'a, Result<Answer, ResolveError>> {
        let reason = self.reason.clone();
        Box::pin(async move { Err(reason) })
    }
}

/// The system resolver, or one that reports why it is unavailable.
pub fn system_resolver() -> Arc<dyn HostResolver> {
    match SystemResolver::from_system_config() {
        Ok(resolver) => Arc::new(resolver),
        Err(error) => {
            tracing::warn!(%error, "gateway hostnames will not resolve");
            Arc::new(UnavailableResolver::new(error))
        }
    }
}

/// What a hostname last resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvedHost {
    /// Sorted; the last good answer, kept across failed lookups.
    pub addresses: Vec<IpAddr>,
    /// Why the latest lookup failed, if it did.
    pub error: Option<String>,
}

pub type ResolvedHosts = BTreeMap<String, ResolvedHost>;

/// A background task that keeps a changing set of hostnames resolved.
pub struct GatewayResolver {
    wanted: watch::Sender<BTreeSet<String>>,
    resolved: watch::Receiver<Arc<ResolvedHosts>>,
    task: JoinHandle<()>,
}

impl GatewayResolver {
    pub fn spawn(resolver: Arc<dyn HostResolver>) -> Self {
        let (wanted, wanted_rx) = watch::channel(BTreeSet::new());
        let (resolved_tx, resolved) = watch::channel(Arc::new(ResolvedHosts::new()));
        let task = tokio::spawn(resolve_loop(resolver, wanted_rx, resolved_tx));
        Self {
            wanted,
            resolved,
            task,
        }
    }

    /// Replaces the set of hostnames to keep resolved; unchanged sets cost nothing.
    pub fn set_hostnames(&self, hostnames: BTreeSet<String>) {
        self.wanted.send_if_modified(|current| {
            if *current == hostnames {
                false
            } else {
                *current = hostnames;
                true
            }
        });
    }

    /// Every answer so far; changes whenever some hostname's addresses or error change.
    pub fn resolved(&self) -> watch::Receiver<Arc<ResolvedHosts>> {
        self.resolved.clone()
    }
}

impl Drop for GatewayResolver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Schedule {
    next: Instant,
    failures: u32,
}

async fn resolve_loop(
    resolver: Arc<dyn HostResolver>,
    mut wanted: watch::Receiver<BTreeSet<String>>,
    published: watch::Sender<Arc<ResolvedHosts>>,
) {
    let mut schedule: BTreeMap<String, Schedule> = BTreeMap::new();
    let mut results = ResolvedHosts::new();
    loop {
        let next_due = schedule.values().map(|entry| entry.next).min();
        tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                let hostnames = wanted.borrow_and_update().clone();
                schedule.retain(|hostname, _| hostnames.contains(hostname));
                results.retain(|hostname, _| hostnames.contains(hostname));
                let now = Instant::now();
                for hostname in hostnames {
                    schedule.entry(hostname).or_insert(Schedule { next: now, failures: 0 });
                }
            }
            () = sleep_until(next_due) => {}
        }
        let now = Instant::now();
        let due: Vec<String> = schedule
            .iter()
            .filter(|(_, entry)| entry.next <= now)
            .map(|(hostname, _)| hostname.clone())
            .collect();
        let answers = join_all(due.iter().map(|hostname| resolver.resolve(hostname))).await;
        let answered = Instant::now();
        for (hostname, answer) in due.into_iter().zip(answers) {
            let Some(entry) = schedule.get_mut(&hostname) else {
                continue;
            };
            let result = results.entry(hostname.clone()).or_default();
            match answer {
                Ok(answer) if !answer.addresses.is_empty() => {
                    let mut addresses = answer.addresses;
                    addresses.sort();
                    addresses.dedup();
                    tracing::debug!(%hostname, ?addresses, ttl = ?answer.ttl, "gateway hostname resolved");
                    *result = ResolvedHost {
                        addresses,
                        error: None,
                    };
                    entry.failures = 0;
                    entry.next = answered + REFRESH.after_answer(answer.ttl);
                }
                failed => {
                    let message = match failed {
                        Err(error) => error.to_string(),
                        Ok(_) => format!("DNS lookup of {hostname} returned no addresses"),
                    };
                    tracing::warn!(%hostname, error = %message, "gateway hostname did not resolve");
                    result.error = Some(message);
                    entry.failures = entry.failures.saturating_add(1);
                    entry.next = answered + REFRESH.after_failures(entry.failures);
                }
            }
        }
        published.send_if_modified(|current| {
            if **current == results {
                false
            } else {
                *current = Arc::new(results.clone());
                true
            }
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_clamped_to_the_bounds() {
        assert_eq!(REFRESH.after_answer(Duration::ZERO), MIN_REFRESH);
        assert_eq!(
            REFRESH.after_answer(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert_eq!(
            REFRESH.after_answer(Duration::from_secs(86_400)),
            MAX_REFRESH
        );
    }

    #[test]
    fn retries_back_off_up_to_the_maximum() {
        assert_eq!(REFRESH.after_failures(1), MIN_REFRESH);
        assert_eq!(REFRESH.after_failures(2), MIN_REFRESH * 2);
        assert_eq!(REFRESH.after_failures(3), MIN_REFRESH * 4);
        assert_eq!(REFRESH.after_failures(40), MAX_REFRESH);
    }

    #[tokio::test]
    async fn unavailable_resolver_reports_its_reason() {
        let resolver = UnavailableResolver::new(ResolveError::SystemConfig("no file".into()));
        let error = resolver.resolve("gw.example.com").await.unwrap_err();
        assert!(error.to_string().contains("no file"), "{error}");
    }
}
