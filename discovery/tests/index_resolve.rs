//! Gateway hostnames: resolved through a fake resolver, re-resolved when the TTL runs out.
//! Time is paused, so TTLs of minutes pass instantly and exactly.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use discovery::mesh::MeshSnapshot;
use discovery::mesh_config::MeshConfig;
use discovery::resolve::{Answer, GatewayResolver, HostResolver, MIN_REFRESH, ResolveError};
use discovery::source::FileMesh;
use futures::future::BoxFuture;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Answers from a script, one per lookup (the last one repeats), and records when it was asked.
struct ScriptedResolver {
    script: Mutex<VecDeque<Result<Answer, ResolveError>>>,
    calls: Mutex<Vec<(String, Instant)>>,
}

impl ScriptedResolver {
    fn new(script: Vec<Result<Answer, ResolveError>>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into()),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn call_times(&self, since: Instant) -> Vec<Duration> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, at)| at.duration_since(since))
            .collect()
    }
}

impl HostResolver for ScriptedResolver {
    fn resolve<'a>(&'a self, hostname: &'a str) -> BoxFuture<'a, Result<Answer, ResolveError>> {
        self.calls
            .lock()
            .unwrap()
            .push((hostname.to_string(), Instant::now()));
        let mut script = self.script.lock().unwrap();
        let answer = if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().unwrap()
        };
        Box::pin(async move { answer })
    }
}

fn answer(addresses: &[&str], ttl_secs: u64) -> Result<Answer, ResolveError> {
    Ok(Answer {
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        ttl: Duration::from_secs(ttl_secs),
    })
}

fn failure() -> Result<Answer, ResolveError> {
    Err(ResolveError::Lookup {
        hostname: "gw.example.com".to_string(),
        message: "SERVFAIL".to_string(),
    })
}

fn ips(addresses: &[&str]) -> Vec<IpAddr> {
    addresses.iter().map(|a| a.parse().unwrap()).collect()
}

async fn next_answer(
    resolved: &mut watch::Receiver<Arc<discovery::resolve::ResolvedHosts>>,
) -> discovery::resolve::ResolvedHost {
    tokio::time::timeout(Duration::from_secs(3600), resolved.changed())
        .await
        .expect("an answer within the hour")
        .expect("resolver alive");
    resolved.borrow_and_update()["gw.example.com"].clone()
}

#[tokio::test(start_paused = true)]
async fn index_resolver_re_resolves_when_the_ttl_expires() {
    let start = Instant::now();
    let fake = ScriptedResolver::new(vec![
        answer(&["198.51.100.2", "198.51.100.1"], 30),
        answer(&["198.51.100.3"], 30),
    ]);
    let resolver = GatewayResolver::spawn(fake.clone());
    let mut resolved = resolver.resolved();
    resolver.set_hostnames(BTreeSet::from(["gw.example.com".to_string()]));

    let first = next_answer(&mut resolved).await;
    assert_eq!(
        first.addresses,
        ips(&["198.51.100.1", "198.51.100.2"]),
        "sorted"
    );
    assert_eq!(first.error, None);

    let second = next_answer(&mut resolved).await;
    assert_eq!(second.addresses, ips(&["198.51.100.3"]));
    assert_eq!(
        fake.call_times(start),
        [Duration::ZERO, Duration::from_secs(30)],
        "asked again exactly when the TTL ran out"
    );
}

#[tokio::test(start_paused = true)]
async fn index_resolver_clamps_short_ttls_and_keeps_addresses_on_failure() {
    let start = Instant::now();
    let fake = ScriptedResolver::new(vec![answer(&["198.51.100.1"], 0), failure()]);
    let resolver = GatewayResolver::spawn(fake.clone());
    let mut resolved = resolver.resolved();
    resolver.set_hostnames(BTreeSet::from(["gw.example.com".to_string()]));

    assert_eq!(
        next_answer(&mut resolved).await.addresses,
        ips(&["198.51.100.1"])
    );
    let failed = next_answer(&mut resolved).await;
    assert_eq!(
        failed.addresses,
        ips(&["198.51.100.1"]),
        "last good addresses kept"
    );
    assert!(failed.error.as_deref().unwrap().contains("SERVFAIL"));
    assert_eq!(
        fake.call_times(start),
        [Duration::ZERO, MIN_REFRESH],
        "TTL 0 waits the minimum"
    );

    // Failures back off: 5 s, then 10 s, then 20 s ...
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(
        fake.call_times(start),
        [
            Duration::ZERO,
            MIN_REFRESH,
            MIN_REFRESH * 2,
            MIN_REFRESH * 4
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn index_resolver_forgets_hostnames_no_longer_wanted() {
    let fake = ScriptedResolver::new(vec![answer(&["198.51.100.1"], 30)]);
    let resolver = GatewayResolver::spawn(fake.clone());
    let mut resolved = resolver.resolved();
    resolver.set_hostnames(BTreeSet::from(["gw.example.com".to_string()]));
    next_answer(&mut resolved).await;
    resolver.set_hostnames(BTreeSet::new());
    tokio::time::timeout(Duration::from_secs(1), resolved.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(resolved.borrow().is_empty());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        fake.calls.lock().unwrap().len(),
        1,
        "no lookups for a forgotten name"
    );
}

fn gateway_addresses(snapshot: &MeshSnapshot) -> Vec<String> {
    snapshot
        .network_gateways
        .iter()
        .filter(|g| g.network.as_str() == "network2")
        .map(|g| format!("{}:{}", g.address, g.port))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn index_snapshot_follows_the_gateway_hostname() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/mesh/mesh.yaml");
    let config = MeshConfig::load(&path).unwrap();
    let fake = ScriptedResolver::new(vec![
        answer(&["198.51.100.20"], 60),
        answer(&["198.51.100.21"], 60),
    ]);
    let (out, mut snapshots) = watch::channel(Arc::new(MeshSnapshot::default()));
    let (stop, stopped) = oneshot::channel::<()>();
    let source = tokio::spawn(
        FileMesh::new(config)
            .with_resolver(fake.clone())
            .run(out, async {
                let _ = stopped.await;
            }),
    );

    let resolved = tokio::time::timeout(
        Duration::from_secs(30),
        snapshots.wait_for(|s| !gateway_addresses(s).is_empty()),
    )
    .await
    .expect("the gateway hostname resolves")
    .unwrap()
    .clone();
    assert_eq!(gateway_addresses(&resolved), ["198.51.100.20:16443"]);
    assert_eq!(
        resolved.gateway_hostnames[0].addresses,
        ips(&["198.51.100.20"])
    );

    let moved = tokio::time::timeout(
        Duration::from_secs(120),
        snapshots.wait_for(|s| gateway_addresses(s) == ["198.51.100.21:16443"]),
    )
    .await
    .expect("re-resolved after the TTL")
    .unwrap()
    .clone();
    assert!(moved.generation > resolved.generation);
    assert_eq!(fake.calls.lock().unwrap().len(), 2);

    stop.send(()).unwrap();
    source.await.unwrap().unwrap();
}
