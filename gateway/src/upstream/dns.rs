//! ServiceEntry `resolution: DNS` upstreams: the gateway resolves their hostnames itself.
//!
//! Discovery sends the hostnames, not addresses (as Istio sends Envoy a STRICT_DNS cluster),
//! because the answer depends on where the gateway stands: split-horizon DNS, a resolver
//! inside the gateway's network. One background task per hostname keeps it resolved and
//! asks again when the answer's TTL runs out. A failed lookup keeps the last good
//! addresses, so a DNS outage does not take down an upstream that is still there; a hostname
//! that never resolved has no endpoints, and requests to it are answered 503 with the
//! reason.

use multicluster::refresh::RefreshBounds;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Re-resolving more often than this loads the DNS server for nothing (TTL 0 answers).
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// Re-resolve at least this often even under a longer TTL, so a moved host is noticed.
pub const MAX_REFRESH: Duration = Duration::from_secs(300);
/// Re-resolution delays: the answer's TTL or a doubling backoff, within these bounds.
pub const REFRESH: RefreshBounds = RefreshBounds {
    min: MIN_REFRESH,
    max: MAX_REFRESH,
};
/// One lookup's limit; the resolver tries twice.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error(
        "cannot use the system DNS configuration: {0}: fix /etc/resolv.conf or pass --dns-server"
    )]
    SystemConfig(String),
    #[error("DNS lookup of {hostname} failed: {message}")]
    Lookup { hostname: String, message: String },
    #[error("DNS lookup of {hostname} returned no addresses")]
    NoAddresses { hostname: String },
    #[error("DNS lookup of {hostname} gave no answer within {} ms", .waited.as_millis())]
    NoAnswerYet { hostname: String, waited: Duration },
}

/// Where to send DNS queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// Name servers (UDP, then TCP on truncation); empty: the system's `/etc/resolv.conf`.
    pub servers: Vec<SocketAddr>,
}

/// What a hostname last resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The last good answer, sorted; kept across failed lookups.
    pub addresses: Arc<[IpAddr]>,
    /// Why the latest lookup failed, if it did.
    pub error: Option<DnsError>,
    /// A lookup has finished (answered or failed) at least once.
    pub attempted: bool,
}

struct Host {
    state: watch::Receiver<Resolution>,
    task: AbortHandle,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The hostnames the current configuration needs, each kept resolved by its own task.
pub struct Dns {
    settings: DnsSettings,
    /// Built on first use, inside a runtime; an error is kept and reported per hostname.
    resolver: OnceLock<Result<Arc<TokioResolver>, DnsError>>,
    hosts: Mutex<HashMap<String, Host>>,
    /// Where the refresh tasks run; captured at construction (the gateway starts inside a
    /// runtime, its configuration applies may come from threads outside one).
    runtime: Option<Handle>,
}

impl Dns {
    pub fn new(settings: DnsSettings) -> Self {
        Dns {
            settings,
            resolver: OnceLock::new(),
            hosts: Mutex::new(HashMap::new()),
            runtime: Handle::try_current().ok(),
        }
    }

    fn resolver(&self) -> Result<Arc<TokioResolver>, DnsError> {
        self.resolver
            .get_or_init(|| build_resolver(&self.settings).map(Arc::new))
            .clone()
    }

    /// Keeps exactly `hostnames` resolved: starts tasks for new ones, stops the others.
    pub fn retain<'a>(&self, hostnames: impl IntoIterator<Item = &'a str>) {
        let wanted: std::collections::HashSet<&str> = hostnames.into_iter().collect();
        let mut hosts = super::lock(&self.hosts);
        hosts.retain(|hostname, _| wanted.contains(hostname.as_str()));
        for hostname in wanted {
            if hosts.contains_key(hostname) {
                continue;
            }
            let (tx, rx) = watch::channel(Resolution::default());
            let resolver = self.resolver();
            let Some(runtime) = &self.runtime else {
                tracing::warn!(%hostname, "no runtime to resolve DNS upstreams on");
                continue;
            };
            let task = runtime
                .spawn(keep_resolved(resolver, hostname.to_owned(), tx))
                .abort_handle();
            hosts.insert(hostname.to_owned(), Host { state: rx, task });
        }
    }

    /// The latest resolution of `hostname`, if the configuration asks for it.
    pub fn resolution(&self, hostname: &str) -> Option<Resolution> {
        super::lock(&self.hosts)
            .get(hostname)
            .map(|host| host.state.borrow().clone())
    }

    /// Waits (at most `limit`) until `hostname` has been looked up once; the lookup started
    /// when the configuration naming it was applied.
    pub async fn first_answer(&self, hostname: &str, limit: Duration) -> Resolution {
        let state = super::lock(&self.hosts)
            .get(hostname)
            .map(|host| host.state.clone());
        let Some(mut state) = state else {
            return Resolution::default();
        };
        // The sender lives as long as the task; a stopped task leaves what it last said.
        let _ = tokio::time::timeout(limit, state.wait_for(|r| r.attempted)).await;
        state.borrow().clone()
    }
}

fn build_resolver(settings: &DnsSettings) -> Result<TokioResolver, DnsError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if settings.servers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| DnsError::SystemConfig(e.to_string()))?
    } else {
        let servers = settings
            .servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let options = builder.options_mut();
    options.timeout = LOOKUP_TIMEOUT;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder
        .build()
        .map_err(|e| DnsError::SystemConfig(e.to_string()))
}

async fn lookup(
    resolver: &TokioResolver,
    hostname: &str,
) -> Result<(Vec<IpAddr>, Duration), DnsError> {
    // A trailing dot makes the name absolute: no search-domain queries first.
    let absolute = if hostname.ends_with('.') {
        hostname.to_owned()
    } else {
        format!("{hostname}.")
    };
    let answer = resolver
        .lookup_ip(absolute.as_str())
        .await
        .map_err(|error| DnsError::Lookup {
            hostname: hostname.to_owned(),
            message: error.to_string(),
        })?;
    let ttl = answer
        .valid_until()
        .saturating_duration_since(std::time::Instant::now());
    let mut addresses: Vec<IpAddr> = answer.iter().collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(DnsError::NoAddresses {
            hostname: hostname.to_owned(),
        });
    }
    Ok((addresses, ttl))
}

async fn keep_resolved(
    resolver: Result<Arc<TokioResolver>, DnsError>,
    hostname: String,
    state: watch::Sender<Resolution>,
) {
    let mut failures = 0u32;
    loop {
        let result = match &resolver {
            Ok(resolver) => lookup(resolver, &hostname).await,
            Err(error) => Err(error.clone()),
        };
        let wait = match result {
            Ok((addresses, ttl)) => {
                failures = 0;
                let changed = *state.borrow().addresses != *addresses;
                if changed {
                    tracing::info!(%hostname, ?addresses, ttl_s = ttl.as_secs(), "DNS upstream resolved");
                }
                state.send_replace(Resolution {
                    addresses: addresses.into(),
                    error: None,
                    attempted: true,
                });
                REFRESH.after_answer(ttl)
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let kept = state.borrow().addresses.len();
                tracing::warn!(%hostname, %error, kept_addresses = kept, "DNS upstream lookup failed; keeping the last good addresses");
                state.send_modify(|resolution| {
                    resolution.error = Some(error);
                    resolution.attempted = true;
                });
                REFRESH.after_failures(failures)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_and_retry_stay_within_bounds() {
        assert_eq!(REFRESH.after_answer(Duration::ZERO), MIN_REFRESH);
        assert_eq!(
            REFRESH.after_answer(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert_eq!(
            REFRESH.after_answer(Duration::from_secs(86_400)),
            MAX_REFRESH
        );
        assert_eq!(REFRESH.after_failures(1), MIN_REFRESH);
        assert_eq!(REFRESH.after_failures(3), MIN_REFRESH * 4);
        assert_eq!(REFRESH.after_failures(40), REFRESH.after_failures(9));
        assert!(REFRESH.after_failures(40) <= MAX_REFRESH);
    }

    #[tokio::test]
    async fn a_dead_name_server_is_reported_and_nothing_resolves() {
        // A UDP port nobody answers on: the lookup fails with the resolver's reason.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dns = Dns::new(DnsSettings {
            servers: vec![silent.local_addr().unwrap()],
        });
        dns.retain(["api.example.com"]);
        let resolution = dns
            .first_answer("api.example.com", Duration::from_secs(10))
            .await;
        assert!(resolution.attempted);
        assert!(resolution.addresses.is_empty());
        let error = resolution.error.unwrap().to_string();
        assert!(error.contains("api.example.com"), "{error}");
        dns.retain([]);
        assert!(dns.resolution("api.example.com").is_none());
    }
}
