//! Discovery at mesh scale: how long a file change takes to reach every subscribed gateway, and
//! how much memory discovery needs for it. A harness that prints figures, not a test.
//!
//! ```text
//! cargo build --release --bin isthmus --example discovery_bench
//! target/release/examples/discovery_bench            # 3 clusters, 1,000 services, 100,000 endpoints
//! ```
//!
//! Discovery runs as the release `isthmus discovery` binary, so its memory is read from its own
//! `/proc/<pid>/status` without the gateways' share. The ten gateways are the real discovery
//! client (`gateway::xds::Client`) with a sink that records when each config was applied; they
//! run in this process and on the same two cores, so every figure includes decoding and
//! validating the configs on the gateway side too.
//!
//! The mesh: every cluster has its own network and one east-west gateway (`*.local`,
//! AUTO_PASSTHROUGH), run as several replicas that all subscribe (4 + 3 + 3 for ten gateways).
//! So each gateway holds the SNI names of every service in the mesh and the endpoints of its own
//! network: the largest configuration an east-west gateway gets, and the common deployment
//! (replicas of one gateway per cluster). Services live in one cluster, every fourth also in the
//! next (namespace sameness); every third has a second port, every tenth a DestinationRule with
//! two subsets. Each (service, cluster) is one file with the Service, its Pods and
//! EndpointSlices of at most 100 endpoints, as `kubectl get -o yaml` would write them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use gateway::xds::{Client, ClientOptions, ConfigSink};
use multicluster::proto::{GatewayConfig, GatewayIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// The gateways in this process allocate as the `isthmus` binary does: with glibc's malloc their
// config copies and drops cost several times more, and that would be counted as push latency.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The issue's targets.
const TARGET_FULL_PUSH: Duration = Duration::from_secs(1);
const TARGET_ENDPOINT_CHANGE: Duration = Duration::from_millis(100);
const TARGET_RSS_MIB: f64 = 300.0;
/// Kubernetes' EndpointSlice controller puts at most 100 endpoints in a slice.
const SLICE_SIZE: usize = 100;
const NAMESPACES: usize = 20;
/// Longest any phase may take before the bench gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(about = "Time file changes through discovery to subscribed gateways")]
struct Args {
    #[arg(long, default_value_t = 3)]
    clusters: usize,
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 100_000)]
    endpoints: usize,
    #[arg(long, default_value_t = 10)]
    gateways: usize,
    /// How many times each small change is measured.
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// The `isthmus` binary to run discovery with; by default the one next to this example's
    /// directory (target/release/isthmus).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Write the mesh here (kept afterwards) instead of a temporary directory.
    #[arg(long)]
    mesh_dir: Option<PathBuf>,
}

// === the generated mesh ===

#[derive(Debug, Clone)]
struct Service {
    name: String,
    namespace: String,
    /// (name, port, targetPort)
    ports: Vec<(&'static str, u16, u16)>,
    subsets: bool,
}

impl Service {
    fn hostname(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }

    fn cluster_name(&self) -> String {
        format!("outbound|{}||{}", self.ports[0].1, self.hostname())
    }
}

/// One service's workloads in one cluster: one file.
#[derive(Debug, Clone)]
struct Deployment {
    service: usize,
    cluster: usize,
    /// Pod IPs; the pod name is derived from the index.
    pods: Vec<Ipv4Addr>,
    /// The file declares the service's DestinationRule (its home cluster only).
    destination_rule: bool,
}

struct Mesh {
    root: PathBuf,
    clusters: usize,
    services: Vec<Service>,
    deployments: Vec<Deployment>,
    _temp: Option<tempfile::TempDir>,
}

impl Mesh {
    fn generate(args: &Args) -> anyhow::Result<Mesh> {
        ensure!(
            args.clusters > 0 && args.services > 0,
            "need clusters and services"
        );
        let (root, temp) = match &args.mesh_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let services: Vec<Service> = (0..args.services)
            .map(|index| Service {
                name: format!("svc-{index:04}"),
                namespace: format!("ns-{:02}", index % NAMESPACES),
                ports: if index % 3 == 0 {
                    vec![("http", 8080, 8080), ("grpc", 9090, 9090)]
                } else {
                    vec![("http", 8080, 8080)]
                },
                subsets: index % 10 == 0,
            })
            .collect();
        let mut placements = Vec::new();
        for index in 0..args.services {
            let home = index % args.clusters;
            placements.push((index, home, true));
            if index % 4 == 0 && args.clusters > 1 {
                placements.push((index, (home + 1) % args.clusters, false));
            }
        }
        let mut next_ip = vec![0u32; args.clusters];
        let deployments = placements
            .iter()
            .enumerate()
            .map(|(position, &(service, cluster, home))| {
                let count = args.endpoints / placements.len()
                    + usize::from(position < args.endpoints % placements.len());
                let pods = (0..count)
                    .map(|_| {
                        next_ip[cluster] += 1;
                        pod_ip(cluster, next_ip[cluster])
                    })
                    .collect();
                Deployment {
                    service,
                    cluster,
                    pods,
                    destination_rule: home && services[service].subsets,
                }
            })
            .collect();
        let mesh = Mesh {
            root,
            clusters: args.clusters,
            services,
            deployments,
            _temp: temp,
        };
        mesh.write_all("zone-a")?;
        Ok(mesh)
    }

    fn mesh_file(&self) -> PathBuf {
        self.root.join("mesh.yaml")
    }

    fn cluster_dir(&self, cluster: usize) -> PathBuf {
        self.root.join(format!("cluster{}", cluster + 1))
    }

    fn write_all(&self, zone: &str) -> anyhow::Result<()> {
        let mut mesh = String::from("clusters:\n");
        for cluster in 0..self.clusters {
            let _ = writeln!(
                mesh,
                "- {{id: cluster{n}, network: network{n}, files: ./cluster{n}}}",
                n = cluster + 1
            );
            std::fs::create_dir_all(self.cluster_dir(cluster))?;
            std::fs::write(
                self.cluster_dir(cluster).join("istio-system.yaml"),
                eastwest(cluster),
            )?;
        }
        std::fs::write(self.mesh_file(), mesh)?;
        self.rewrite_deployments(zone)
    }

    /// Rewrites every workload file, as a relabelling of every pod would.
    fn rewrite_deployments(&self, zone: &str) -> anyhow::Result<()> {
        for deployment in &self.deployments {
            self.write_deployment(deployment, zone)?;
        }
        Ok(())
    }

    fn deployment_path(&self, deployment: &Deployment) -> PathBuf {
        let service = &self.services[deployment.service];
        self.cluster_dir(deployment.cluster)
            .join(&service.namespace)
            .join(format!("{}.yaml", service.name))
    }

    /// Written aside and renamed into place: one watch event, never a half-written file.
    fn write_deployment(&self, deployment: &Deployment, zone: &str) -> anyhow::Result<()> {
        let service = &self.services[deployment.service];
        let path = self.deployment_path(deployment);
        let directory = path.parent().context("a deployment file has a directory")?;
        std::fs::create_dir_all(directory)?;
        let aside = directory.join(format!(".{}.tmp", service.name));
        std::fs::write(&aside, render(service, deployment, zone))?;
        std::fs::rename(&aside, &path)?;
        Ok(())
    }

    fn yaml_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.root)
    }

    /// The non-subset endpoints a gateway of `cluster` dials on the first port of each service.
    fn own_network_endpoints(&self, cluster: usize) -> usize {
        self.deployments
            .iter()
            .filter(|deployment| deployment.cluster == cluster)
            .map(|deployment| deployment.pods.len())
            .sum()
    }
}

fn pod_ip(cluster: usize, serial: u32) -> Ipv4Addr {
    let cluster = u32::try_from(cluster).unwrap_or(0);
    Ipv4Addr::from((10 << 24) | ((cluster * 16) << 16) | serial)
}

fn pod_name(service: &Service, cluster: usize, index: usize) -> String {
    format!("{}-7d9f8c{cluster}b5-{index:05x}", service.name)
}

/// The system namespace, the east-west gateway Service and the cross-network Gateway.
fn eastwest(cluster: usize) -> String {
    let n = cluster + 1;
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
  labels:
    topology.istio.io/network: network{n}
---
apiVersion: v1
kind: Service
metadata:
  name: istio-eastwestgateway
  namespace: istio-system
  labels:
    istio: eastwestgateway
    topology.istio.io/network: network{n}
spec:
  type: LoadBalancer
  selector:
    istio: eastwestgateway
  ports:
  - name: status-port
    port: 15021
    targetPort: 15021
  - name: tls
    port: 15443
    targetPort: 15443
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.{n}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: cross-network-gateway
  namespace: istio-system
spec:
  selector:
    istio: eastwestgateway
  servers:
  - port:
      number: 15443
      name: tls
      protocol: TLS
    tls:
      mode: AUTO_PASSTHROUGH
    hosts:
    - "*.local"
"#
    )
}

/// A Service, its Pods and its EndpointSlices, as `kubectl get -o yaml` writes them (trimmed of
/// fields discovery never reads, such as managedFields).
fn render(service: &Service, deployment: &Deployment, zone: &str) -> String {
    let cluster = deployment.cluster;
    let name = &service.name;
    let namespace = &service.namespace;
    let mut yaml = String::with_capacity(900 * deployment.pods.len() + 2048);
    let _ = write!(
        yaml,
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    app: {name}
spec:
  type: ClusterIP
  selector:
    app: {name}
  ports:
"#
    );
    for (port_name, port, target) in &service.ports {
        let _ = write!(
            yaml,
            "  - name: {port_name}\n    port: {port}\n    targetPort: {target}\n    protocol: TCP\n"
        );
    }
    if deployment.destination_rule {
        let _ = write!(
            yaml,
            r#"---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
  namespace: {namespace}
spec:
  host: {name}
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
"#
        );
    }
    for (index, ip) in deployment.pods.iter().enumerate() {
        let pod = pod_name(service, cluster, index);
        let version = if index % 2 == 0 { "v1" } else { "v2" };
        let node = index % 50;
        let _ = write!(
            yaml,
            r#"---
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
  namespace: {namespace}
  labels:
    app: {name}
    version: {version}
    pod-template-hash: 7d9f8c{cluster}b5
    security.istio.io/tlsMode: istio
    service.istio.io/canonical-name: {name}
    service.istio.io/canonical-revision: {version}
    topology.kubernetes.io/region: region-{cluster}
    topology.kubernetes.io/zone: {zone}
  annotations:
    sidecar.istio.io/status: '{{"containers":["istio-proxy"],"volumes":["istio-envoy"]}}'
spec:
  serviceAccountName: {name}
  nodeName: node-{cluster}-{node:02}
  containers:
  - name: app
    image: registry.example/{name}:1.4.2
    ports:
"#
        );
        for (port_name, _, target) in &service.ports {
            let _ = write!(
                yaml,
                "    - name: {port_name}\n      containerPort: {target}\n      protocol: TCP\n"
            );
        }
        let _ = write!(
            yaml,
            r#"  - name: istio-proxy
    image: registry.example/isthmus-proxy:0.1.0
status:
  phase: Running
  hostIP: 172.16.{cluster}.{node}
  podIP: {ip}
  podIPs:
  - ip: {ip}
"#
        );
    }
    for (slice, chunk) in deployment.pods.chunks(SLICE_SIZE).enumerate() {
        let _ = write!(
            yaml,
            r#"---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-{slice:05x}
  namespace: {namespace}
  labels:
    kubernetes.io/service-name: {name}
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
addressType: IPv4
ports:
"#
        );
        for (port_name, _, target) in &service.ports {
            let _ = write!(
                yaml,
                "- name: {port_name}\n  port: {target}\n  protocol: TCP\n"
            );
        }
        yaml.push_str("endpoints:\n");
        for (offset, ip) in chunk.iter().enumerate() {
            let index = slice * SLICE_SIZE + offset;
            let pod = pod_name(service, cluster, index);
            let _ = write!(
                yaml,
                r#"- addresses:
  - {ip}
  conditions:
    ready: true
    serving: true
    terminating: false
  nodeName: node-{cluster}-{node:02}
  zone: {zone}
  targetRef:
    kind: Pod
    name: {pod}
    namespace: {namespace}
"#,
                node = index % 50
            );
        }
    }
    yaml
}

// === discovery, as a process ===

struct DiscoveryProcess {
    child: Child,
    grpc: SocketAddr,
    monitor: SocketAddr,
    log: PathBuf,
}

impl DiscoveryProcess {
    fn spawn(binary: &Path, mesh: &Mesh) -> anyhow::Result<DiscoveryProcess> {
        let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let monitor = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = mesh.root.join("discovery.log");
        let child = Command::new(binary)
            .arg("discovery")
            .arg("--mesh")
            .arg(mesh.mesh_file())
            .arg("--grpc")
            .arg(grpc.to_string())
            .arg("--monitor")
            .arg(monitor.to_string())
            // As deploy/base/discovery sets it: freed memory goes back to the kernel at once.
            .env("MIMALLOC_PURGE_DELAY", "0")
            // BENCH_LOG (e.g. `discovery=debug,gateway=info`) shows where the time goes.
            .env(
                "ISTHMUS_LOG",
                std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(DiscoveryProcess {
            child,
            grpc,
            monitor,
            log,
        })
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> anyhow::Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<f64> {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .with_context(|| format!("no {name} in /proc/<pid>/status"))?;
            let kib: f64 = line
                .split_whitespace()
                .nth(1)
                .context("a number of kB")?
                .parse()?;
            Ok(kib / 1024.0)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(exit) = self.child.try_wait()? {
            bail!(
                "discovery exited ({exit}); its log is {}",
                self.log.display()
            );
        }
        Ok(())
    }
}

impl Drop for DiscoveryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn http_get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("an HTTP response")?;
    let status = head.split(' ').nth(1).context("a status line")?.parse()?;
    Ok((status, body.to_owned()))
}

async fn discovery_metrics(address: SocketAddr) -> anyhow::Result<BTreeMap<String, f64>> {
    let (_, body) = http_get(address, "/stats/prometheus").await?;
    Ok(body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_owned(), value.parse().ok()?)))
        .collect())
}

// === the gateways ===

#[derive(Default)]
struct TimedSink {
    latest: Mutex<Option<Applied>>,
}

#[derive(Clone)]
struct Applied {
    at: Instant,
    applied: u64,
    config: Arc<GatewayConfig>,
}

impl TimedSink {
    fn latest(&self) -> Option<Applied> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ConfigSink for TimedSink {
    fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        let at = Instant::now();
        let mut latest = self
            .latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let applied = latest.as_ref().map_or(1, |previous| previous.applied + 1);
        *latest = Some(Applied {
            at,
            applied,
            config: Arc::new(config),
        });
        Ok(())
    }
}

struct Gateway {
    cluster: usize,
    sink: Arc<TimedSink>,
    status: tokio::sync::watch::Receiver<gateway::xds::ClientStatus>,
}

fn start_gateways(count: usize, clusters: usize, discovery: SocketAddr) -> Vec<Gateway> {
    (0..count)
        .map(|index| {
            let cluster = index % clusters;
            let identity = GatewayIdentity {
                name: format!("istio-eastwestgateway-5c8d4b-{index:02}"),
                namespace: "istio-system".to_owned(),
                cluster: format!("cluster{}", cluster + 1),
                network: format!("network{}", cluster + 1),
                labels: [("istio".to_owned(), "eastwestgateway".to_owned())].into(),
                ..Default::default()
            };
            let mut options = ClientOptions::new(format!("http://{discovery}"), identity);
            // Discovery is starting; retry often so the start-up figure is not backoff.
            options.backoff_min = Duration::from_millis(20);
            options.backoff_max = Duration::from_millis(100);
            let sink = Arc::new(TimedSink::default());
            let client = Client::new(options);
            let status = client.status();
            tokio::spawn(client.run(Arc::clone(&sink), std::future::pending::<()>()));
            Gateway {
                cluster,
                sink,
                status,
            }
        })
        .collect()
}

/// Waits until every gateway in `gateways` serves a config satisfying `done`; returns when
/// each applied it. A config is checked once, however long `done` takes.
async fn wait_all(
    gateways: &[&Gateway],
    what: &str,
    done: impl Fn(&GatewayConfig) -> bool,
) -> anyhow::Result<Vec<Instant>> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut checked = vec![0u64; gateways.len()];
    let mut reached: Vec<Option<Instant>> = vec![None; gateways.len()];
    loop {
        for (index, gateway) in gateways.iter().enumerate() {
            if reached[index].is_some() {
                continue;
            }
            let Some(latest) = gateway.sink.latest() else {
                continue;
            };
            if latest.applied != checked[index] {
                checked[index] = latest.applied;
                if done(&latest.config) {
                    reached[index] = Some(latest.at);
                }
            }
        }
        if reached.iter().all(Option::is_some) {
            return Ok(reached.into_iter().flatten().collect());
        }
        if Instant::now() >= deadline {
            let statuses: Vec<String> = gateways
                .iter()
                .map(|gateway| format!("{:?}", *gateway.status.borrow()))
                .collect();
            bail!(
                "timed out waiting for {what}; gateway clients:\n{}",
                statuses.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn endpoints_of<'c>(
    config: &'c GatewayConfig,
    cluster: &str,
) -> Option<&'c [multicluster::proto::Endpoint]> {
    config
        .clusters
        .iter()
        .find(|candidate| candidate.name == cluster)
        .map(|found| found.endpoints.as_slice())
}

/// The endpoints behind the first port of every service, without subsets.
fn first_port_endpoints(config: &GatewayConfig, services: &[Service]) -> usize {
    services
        .iter()
        .filter_map(|service| endpoints_of(config, &service.cluster_name()))
        .map(<[_]>::len)
        .sum()
}

fn latency(since: Instant, reached: &[Instant]) -> Duration {
    reached
        .iter()
        .map(|at| at.saturating_duration_since(since))
        .max()
        .unwrap_or_default()
}

// === reporting ===

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn summary(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let p50 = samples.get(samples.len() / 2).copied().unwrap_or_default();
    let max = samples.last().copied().unwrap_or_default();
    (p50, max)
}

fn versus(value: f64, target: f64) -> String {
    let ratio = value / target;
    let verdict = if ratio <= 1.0 { "meets" } else { "MISSES" };
    format!("{ratio:.2}x target ({verdict})")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        // The gateways' side of the split: validation and apply times.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("this example lives in target/<profile>/examples")?
            .join("isthmus"),
    };
    ensure!(
        binary.exists(),
        "{} not found: build it with `cargo build --release --bin isthmus`",
        binary.display()
    );

    let generating = Instant::now();
    let mesh = Mesh::generate(&args)?;
    println!(
        "mesh: {} clusters, {} services, {} endpoints in {} files, {:.1} MiB of YAML (generated in {:.1} s)",
        args.clusters,
        args.services,
        mesh.deployments.iter().map(|d| d.pods.len()).sum::<usize>(),
        mesh.deployments.len() + args.clusters,
        mesh.yaml_bytes() as f64 / (1024.0 * 1024.0),
        generating.elapsed().as_secs_f64()
    );

    // --- start-up: the first full configuration everywhere ---
    let started = Instant::now();
    let mut discovery = DiscoveryProcess::spawn(&binary, &mesh)?;
    let gateways = start_gateways(args.gateways, args.clusters, discovery.grpc);
    let everyone: Vec<&Gateway> = gateways.iter().collect();
    let ready_deadline = Instant::now() + PHASE_TIMEOUT;
    let ready = loop {
        discovery.ensure_running()?;
        if matches!(
            http_get(discovery.monitor, "/healthz/ready").await,
            Ok((200, _))
        ) {
            break started.elapsed();
        }
        ensure!(
            Instant::now() < ready_deadline,
            "discovery never became ready"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let reached = wait_all(&everyone, "the first full configuration", |config| {
        !config.clusters.is_empty()
    })
    .await?;
    let initial = latency(started, &reached);
    discovery.ensure_running()?;
    let (rss_initial, _) = discovery.memory()?;
    for gateway in &gateways {
        let config = gateway.sink.latest().context("a config")?.config;
        let expected = mesh.own_network_endpoints(gateway.cluster);
        let held = first_port_endpoints(&config, &mesh.services);
        ensure!(
            held == expected,
            "a gateway of cluster{} holds {held} endpoints, expected {expected}",
            gateway.cluster + 1
        );
    }
    let sample = gateways[0].sink.latest().context("a config")?.config;
    let sni_names: usize = sample
        .listeners
        .iter()
        .flat_map(|listener| &listener.servers)
        .filter_map(|server| match &server.routing {
            Some(multicluster::proto::server::Routing::AutoPassthrough(table)) => {
                Some(table.routes.len())
            }
            _ => None,
        })
        .sum();
    println!(
        "each gateway: {} upstream clusters, {} SNI names, {} own-network endpoints (gateway 0: {:.1} MiB encoded)",
        sample.clusters.len(),
        sni_names,
        mesh.own_network_endpoints(0),
        prost::Message::encoded_len(sample.as_ref()) as f64 / (1024.0 * 1024.0)
    );
    println!(
        "start-up: ready after {:.0} ms, all {} gateways hold the full config after {:.0} ms ({})",
        ms(ready),
        args.gateways,
        ms(initial),
        versus(initial.as_secs_f64(), TARGET_FULL_PUSH.as_secs_f64())
    );

    // --- one endpoint moves (a pod restarted with a new IP) ---
    let mut moved = Vec::new();
    let mut untouched_pushes = 0u64;
    for repeat in 0..args.repeats {
        let cluster = repeat % args.clusters;
        let mut deployment = mesh
            .deployments
            .iter()
            .filter(|deployment| deployment.cluster == cluster)
            .nth(repeat)
            .context("enough deployments")?
            .clone();
        let new_ip = Ipv4Addr::new(10, 250, u8::try_from(repeat % 256)?, 1);
        deployment.pods[0] = new_ip;
        let service_cluster = mesh.services[deployment.service].cluster_name();
        let affected: Vec<&Gateway> = gateways.iter().filter(|g| g.cluster == cluster).collect();
        let others: Vec<(usize, u64)> = gateways
            .iter()
            .enumerate()
            .filter(|(_, g)| g.cluster != cluster)
            .map(|(index, g)| (index, g.sink.latest().map_or(0, |latest| latest.applied)))
            .collect();
        let changed = Instant::now();
        mesh.write_deployment(&deployment, "zone-a")?;
        let new_address = new_ip.to_string();
        let reached = wait_all(&affected, "the moved endpoint", |config| {
            endpoints_of(config, &service_cluster)
                .is_some_and(|endpoints| endpoints.iter().any(|e| e.address == new_address))
        })
        .await?;
        moved.push(latency(changed, &reached));
        // Let any stray push land before the next change.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (index, before) in others {
            let now = gateways[index]
                .sink
                .latest()
                .map_or(0, |latest| latest.applied);
            untouched_pushes += now - before;
        }
    }
    let (moved_p50, moved_max) = summary(&mut moved);
    println!(
        "one endpoint moved: p50 {:.0} ms, max {:.0} ms to the {}-{} gateways of its network ({}; max {}); {} pushes to the others (their configs did not change)",
        ms(moved_p50),
        ms(moved_max),
        args.gateways / args.clusters,
        args.gateways.div_ceil(args.clusters),
        versus(
            moved_p50.as_secs_f64(),
            TARGET_ENDPOINT_CHANGE.as_secs_f64()
        ),
        versus(
            moved_max.as_secs_f64(),
            TARGET_ENDPOINT_CHANGE.as_secs_f64()
        ),
        untouched_pushes
    );

    // --- a new one-endpoint service: every gateway learns its SNI name ---
    let mut added = Vec::new();
    for repeat in 0..args.repeats {
        let cluster = repeat % args.clusters;
        let service = Service {
            name: format!("new-{repeat:02}"),
            namespace: "ns-00".to_owned(),
            ports: vec![("http", 8080, 8080)],
            subsets: false,
        };
        let hostname = service.hostname();
        let sni = format!("outbound_.8080_._.{hostname}");
        let deployment = Deployment {
            service: 0,
            cluster,
            pods: vec![Ipv4Addr::new(10, 251, u8::try_from(repeat % 256)?, 1)],
            destination_rule: false,
        };
        let path = mesh
            .cluster_dir(cluster)
            .join("ns-00")
            .join(format!("{}.yaml", service.name));
        let aside = path.with_file_name(format!(".{}.tmp", service.name));
        let yaml = render(&service, &deployment, "zone-a");
        let changed = Instant::now();
        std::fs::write(&aside, yaml)?;
        std::fs::rename(&aside, &path)?;
        let reached = wait_all(&everyone, "the new service", |config| {
            config
                .listeners
                .iter()
                .flat_map(|l| &l.servers)
                .any(|server| {
                    matches!(
                        &server.routing,
                        Some(multicluster::proto::server::Routing::AutoPassthrough(table))
                            if table.routes.iter().any(|route| route.sni == sni)
                    )
                })
        })
        .await?;
        added.push(latency(changed, &reached));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (added_p50, added_max) = summary(&mut added);
    // A new service is a new SNI name in every east-west gateway's table, so every gateway
    // gets its whole configuration again: the issue's full-push target, not the endpoint one.
    println!(
        "one service added (a full push to every gateway): p50 {:.0} ms, max {:.0} ms to all {} gateways ({}; max {})",
        ms(added_p50),
        ms(added_max),
        args.gateways,
        versus(added_p50.as_secs_f64(), TARGET_FULL_PUSH.as_secs_f64()),
        versus(added_max.as_secs_f64(), TARGET_FULL_PUSH.as_secs_f64())
    );
    let (rss_small, _) = discovery.memory()?;

    // --- every file changes: every pod moves zone ---
    let writing = Instant::now();
    mesh.rewrite_deployments("zone-b")?;
    let written = Instant::now();
    let reached = wait_all(&everyone, "every endpoint in zone-b", |config| {
        // The services added above keep their zone: only the generated ones are rewritten.
        mesh.services
            .iter()
            .filter_map(|service| endpoints_of(config, &service.cluster_name()))
            .flatten()
            .all(|endpoint| endpoint.locality.contains("zone-b"))
            && first_port_endpoints(config, &mesh.services) > 0
    })
    .await?;
    let full_from_first = latency(writing, &reached);
    let full_from_last = latency(written, &reached);
    discovery.ensure_running()?;
    let (rss_full, hwm) = discovery.memory()?;
    println!(
        "every file rewritten ({:.0} ms to write): all {} gateways hold it {:.0} ms after the last write, {:.0} ms after the first ({})",
        ms(written - writing),
        args.gateways,
        ms(full_from_last),
        ms(full_from_first),
        versus(full_from_last.as_secs_f64(), TARGET_FULL_PUSH.as_secs_f64())
    );

    let metrics = discovery_metrics(discovery.monitor).await?;
    let count = metrics
        .get("isthmus_discovery_push_duration_seconds_count")
        .copied()
        .unwrap_or_default();
    let sum = metrics
        .get("isthmus_discovery_push_duration_seconds_sum")
        .copied()
        .unwrap_or_default();
    println!(
        "discovery: {} initial and {} update pushes, mean {:.0} ms from snapshot to stream, {} NACKs",
        metrics
            .get("isthmus_discovery_pushes_total{type=\"initial\"}")
            .copied()
            .unwrap_or_default(),
        metrics
            .get("isthmus_discovery_pushes_total{type=\"update\"}")
            .copied()
            .unwrap_or_default(),
        if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        },
        metrics
            .get("isthmus_discovery_nacks_total")
            .copied()
            .unwrap_or_default(),
    );
    println!(
        "discovery RSS: {rss_initial:.0} MiB after start-up, {rss_small:.0} MiB after the small changes, {rss_full:.0} MiB after the full change, peak {hwm:.0} MiB ({})",
        versus(hwm, TARGET_RSS_MIB)
    );
    Ok(())
}
