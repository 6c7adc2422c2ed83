//! Starts the demo mesh in this process: discovery (with both clusters' CAs, so its port is
//! mesh mTLS and signs CSRs), one east-west gateway per network, sample backends, and a
//! workload proxy per workload, each following discovery over mTLS.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use certs::{Identity, RotatingCert};
use discovery::app::{Discovery, DiscoveryOptions};
use discovery::mesh_config::MeshConfig;
use gateway::identity::{CaClientOptions, CertificateRenewer};
use gateway::sidecar::{AppProtocol, InboundSpec, MeshTls, Sidecar, SidecarHandle, SidecarOptions};
use gateway::xds::{self, ClientOptions};
use gateway::{Gateway, GatewayHandle, GatewayOptions};
use multicluster::proto::{GatewayIdentity, Role};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig};

use super::backend;
use super::files::{TRUST_DOMAIN, Workdir};

/// Where the demo's application in network1 sends its calls (an HTTP proxy).
pub const CLIENT_PROXY: SocketAddr = addr(1, 1, 15001);
pub const CLIENT_ADMIN: SocketAddr = addr(1, 1, 15000);
/// The east-west gateways: `127.0.<network>.250`, TLS passthrough on 15443, admin on 15000.
pub const GATEWAY_HOST: u8 = 250;

const fn addr(network: u8, host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, network, host)), port)
}

struct Workload {
    name: &'static str,
    cluster: &'static str,
    network: u8,
    host: u8,
    service_account: &'static str,
    /// (advertised host on this network, backend name) per inbound endpoint.
    endpoints: &'static [(u8, &'static str)],
}

/// Matches examples/demo/cluster*.yaml: pod IPs there are these inbound addresses.
const WORKLOADS: &[Workload] = &[
    Workload {
        name: "productpage",
        cluster: "cluster1",
        network: 1,
        host: 1,
        service_account: "productpage",
        endpoints: &[],
    },
    Workload {
        name: "ratings-c1",
        cluster: "cluster1",
        network: 1,
        host: 3,
        service_account: "ratings",
        endpoints: &[(3, "ratings-c1 (network1)")],
    },
    Workload {
        name: "reviews",
        cluster: "cluster2",
        network: 2,
        host: 2,
        service_account: "reviews",
        endpoints: &[(2, "reviews-v1 (network2)"), (3, "reviews-v2 (network2)")],
    },
    Workload {
        name: "ratings-c2",
        cluster: "cluster2",
        network: 2,
        host: 4,
        service_account: "ratings",
        endpoints: &[(4, "ratings-c2 (network2)")],
    },
];

/// Everything the demo started.
pub struct Running {
    pub discovery: Discovery,
    pub client_identity: Identity,
    /// The client's certificate expiry before and after its CSR renewal through discovery.
    pub renewal: Result<(SystemTime, SystemTime), String>,
    gateways: Vec<GatewayHandle>,
    sidecars: Vec<SidecarHandle>,
    stop_clients: watch::Sender<bool>,
    clients: Vec<JoinHandle<()>>,
    stop_backends: CancellationToken,
}

impl Running {
    pub async fn shutdown(self) {
        let _ = self.stop_clients.send(true);
        for client in self.clients {
            let _ = client.await;
        }
        for sidecar in self.sidecars {
            sidecar.shutdown().await;
        }
        for gateway in self.gateways {
            gateway.shutdown().await;
        }
        self.stop_backends.cancel();
        self.discovery.shutdown().await;
    }
}

/// A workload's bootstrap files, read back.
struct Material {
    chain_pem: String,
    key_pem: String,
    roots_pem: String,
}

fn read_material(dir: &Path) -> anyhow::Result<Material> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    Ok(Material {
        chain_pem: read("cert-chain.pem")?,
        key_pem: read("key.pem")?,
        roots_pem: read("root-cert.pem")?,
    })
}

pub async fn start(workdir: &Workdir) -> anyhow::Result<Running> {
    let mesh = MeshConfig::load(&workdir.mesh_file())?;
    let discovery = Discovery::start(DiscoveryOptions::ephemeral(mesh)).await?;
    let discovery_uri = format!("https://{}", discovery.grpc_address());
    let (stop_clients, stopped) = watch::channel(false);
    let mut clients = Vec::new();
    let follow = |client: ClientOptions, sink: Gateway, clients: &mut Vec<JoinHandle<()>>| {
        let mut stopped = stopped.clone();
        clients.push(tokio::spawn(xds::run(client, sink, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    };

    let mut gateways = Vec::new();
    for (network, cluster) in [(1u8, "cluster1"), (2u8, "cluster2")] {
        let identity = Identity::new(TRUST_DOMAIN, "istio-system", "istio-eastwestgateway")?;
        let dir = workdir.bootstrap_workload(cluster, &format!("eastwest-{cluster}"), &identity)?;
        let material = read_material(&dir)?;
        let options = GatewayOptions {
            ready_address: addr(network, GATEWAY_HOST, 15021),
            stats_address: addr(network, GATEWAY_HOST, 15090),
            admin_address: addr(network, GATEWAY_HOST, 15000),
            listener_address: Some(addr(network, GATEWAY_HOST, 0).ip()),
            network: Some(format!("network{network}")),
            cluster: Some(cluster.into()),
            data_plane_threads: 1,
            ..GatewayOptions::default()
        };
        let handle = Gateway::start(options)
            .await
            .with_context(|| format!("starting network{network}'s east-west gateway"))?;
        let hello = GatewayIdentity {
            name: "istio-eastwestgateway".into(),
            namespace: "istio-system".into(),
            labels: BTreeMap::from([("istio".to_owned(), "eastwestgateway".to_owned())]),
            cluster: cluster.into(),
            network: format!("network{network}"),
            ..Default::default()
        };
        follow(
            discovery_client(&discovery_uri, hello, &material),
            handle.gateway(),
            &mut clients,
        );
        gateways.push(handle);
    }

    let stop_backends = CancellationToken::new();
    let mut sidecars = Vec::new();
    let mut client_cert = None;
    for workload in WORKLOADS {
        let identity = Identity::new(TRUST_DOMAIN, "default", workload.service_account)?;
        let dir = workdir.bootstrap_workload(workload.cluster, workload.name, &identity)?;
        let material = read_material(&dir)?;
        let mut inbound = Vec::new();
        for (host, backend_name) in workload.endpoints {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
            let app = listener.local_addr()?;
            tokio::spawn(backend::serve(
                listener,
                (*backend_name).to_owned(),
                stop_backends.clone(),
            ));
            inbound.push(InboundSpec {
                listen: addr(workload.network, *host, 9080),
                app,
                protocol: AppProtocol::Http,
            });
        }
        let key = certs::certified_key_from_pem(&material.chain_pem, &material.key_pem)?;
        let cert = Arc::new(RotatingCert::new(key)?);
        let roots = certs::pem::certificates(material.roots_pem.as_bytes())?;
        let tls = Arc::new(MeshTls::new(Arc::clone(&cert), roots)?);
        let is_client = workload.endpoints.is_empty();
        let mut gateway_options = GatewayOptions::ephemeral();
        gateway_options.network = Some(format!("network{}", workload.network));
        gateway_options.cluster = Some(workload.cluster.into());
        gateway_options.data_plane_threads = 1;
        if is_client {
            gateway_options.admin_address = CLIENT_ADMIN;
        }
        let options = SidecarOptions {
            outbound: addr(workload.network, workload.host, 15001),
            inbound,
            gateway: gateway_options,
            ..SidecarOptions::default()
        };
        let handle = Sidecar::start(options, tls)
            .await
            .with_context(|| format!("starting {}'s workload proxy", workload.name))?;
        let hello = GatewayIdentity {
            name: workload.name.into(),
            namespace: "default".into(),
            cluster: workload.cluster.into(),
            network: format!("network{}", workload.network),
            role: Role::Sidecar as i32,
            ..Default::default()
        };
        follow(
            discovery_client(&discovery_uri, hello, &material),
            handle.gateway(),
            &mut clients,
        );
        if is_client {
            client_cert = Some((identity, cert, material));
        }
        sidecars.push(handle);
    }

    let (client_identity, cert, material) =
        client_cert.context("the demo defines a client workload")?;
    let renewal = renew_through_discovery(
        &discovery,
        &client_identity,
        cert,
        &material,
        &mut clients,
        stopped.clone(),
    )
    .await;
    Ok(Running {
        discovery,
        client_identity,
        renewal,
        gateways,
        sidecars,
        stop_clients,
        clients,
        stop_backends,
    })
}

fn discovery_client(uri: &str, hello: GatewayIdentity, material: &Material) -> ClientOptions {
    let mut options = ClientOptions::new(uri, hello);
    options.tls = Some(
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&material.roots_pem))
            .domain_name(discovery::ca::discovery_dns_name("istio-system"))
            .identity(tonic::transport::Identity::from_pem(
                &material.chain_pem,
                &material.key_pem,
            )),
    );
    options
}

/// Shows the CSR path once at start (new key, CSR, signed by cluster1's intermediate over
/// mTLS), then keeps renewing in the background as a long-running proxy would.
async fn renew_through_discovery(
    discovery: &Discovery,
    identity: &Identity,
    cert: Arc<RotatingCert>,
    material: &Material,
    tasks: &mut Vec<JoinHandle<()>>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(SystemTime, SystemTime), String> {
    let before = cert.not_after();
    let roots =
        certs::pem::certificates(material.roots_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut options = CaClientOptions::new(discovery.grpc_uri(), roots);
    options.discovery_identity = Some(
        Identity::new(
            TRUST_DOMAIN,
            "istio-system",
            discovery::ca::DISCOVERY_SERVICE_ACCOUNT,
        )
        .map_err(|e| e.to_string())?,
    );
    options.cluster = "cluster1".into();
    options.lifetime = Duration::from_secs(3600);
    let renewer =
        CertificateRenewer::new(identity.clone(), cert, options).map_err(|e| e.to_string())?;
    let after = renewer.renew().await.map_err(|e| e.to_string())?;
    tasks.push(tokio::spawn(renewer.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    })));
    Ok((before, after))
}
