//! Gateways started in-process and subscribed to a discovery, as `isthmus gateway` runs them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use gateway::xds::{Client, ClientOptions, ClientStatus};
use gateway::{Gateway, GatewayHandle, GatewayOptions};
use multicluster::proto::GatewayIdentity;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::admin;
use super::wait;

/// Who a gateway says it is, and where it listens on loopback.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    pub name: String,
    pub cluster: String,
    pub network: String,
    pub labels: Vec<(String, String)>,
    /// Every listener binds this address (e.g. 127.0.0.11), on a free port.
    pub listener_ip: IpAddr,
    /// The gateway's own mesh certificate, for ISTIO_MUTUAL servers and origination.
    pub mesh_identity: Option<gateway::MeshIdentity>,
    /// DNS servers for ServiceEntry `resolution: DNS` hosts (empty: /etc/resolv.conf).
    pub dns_servers: Vec<std::net::SocketAddr>,
}

impl GatewaySpec {
    /// An `istio: eastwestgateway` workload in istio-system.
    pub fn east_west(cluster: &str, network: &str, listener_ip: &str) -> GatewaySpec {
        GatewaySpec {
            name: "istio-eastwestgateway".into(),
            cluster: cluster.into(),
            network: network.into(),
            labels: vec![("istio".into(), "eastwestgateway".into())],
            listener_ip: listener_ip.parse().unwrap(),
            mesh_identity: None,
            dns_servers: Vec::new(),
        }
    }

    /// An `istio: ingressgateway` workload in istio-system.
    pub fn ingress(cluster: &str, network: &str, listener_ip: &str) -> GatewaySpec {
        GatewaySpec {
            name: "istio-ingressgateway".into(),
            labels: vec![("istio".into(), "ingressgateway".into())],
            ..GatewaySpec::east_west(cluster, network, listener_ip)
        }
    }

    /// An `istio: egressgateway` workload in istio-system.
    pub fn egress(cluster: &str, network: &str, listener_ip: &str) -> GatewaySpec {
        GatewaySpec {
            name: "istio-egressgateway".into(),
            labels: vec![("istio".into(), "egressgateway".into())],
            ..GatewaySpec::east_west(cluster, network, listener_ip)
        }
    }

    pub fn identity(&self) -> GatewayIdentity {
        GatewayIdentity {
            name: self.name.clone(),
            namespace: "istio-system".into(),
            labels: self.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            cluster: self.cluster.clone(),
            network: self.network.clone(),
            // Role and any later fields keep their defaults: a plain gateway.
            ..GatewayIdentity::default()
        }
    }
}

pub struct TestGateway {
    handle: Option<GatewayHandle>,
    status: watch::Receiver<ClientStatus>,
    stop: watch::Sender<bool>,
    client: Option<JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway and its discovery client; returns once a configuration is applied.
    pub async fn start(spec: &GatewaySpec, discovery_uri: &str) -> TestGateway {
        super::init();
        let options = GatewayOptions {
            listener_address: Some(spec.listener_ip),
            network: Some(spec.network.clone()),
            mesh_identity: spec.mesh_identity.clone(),
            cluster: Some(spec.cluster.clone()),
            dns_servers: spec.dns_servers.clone(),
            ..GatewayOptions::ephemeral()
        };
        let handle = Gateway::start(options).await.unwrap();
        let client = Client::new(ClientOptions::new(discovery_uri, spec.identity()));
        let status = client.status();
        let (stop, stopped) = watch::channel(false);
        let sink = handle.gateway();
        let client = tokio::spawn(async move {
            let mut stopped = stopped;
            client
                .run(sink, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
        });
        let gateway = TestGateway {
            handle: Some(handle),
            status,
            stop,
            client: Some(client),
        };
        wait::until_true("the first configuration to be applied", || {
            let ready = gateway.handle().ready();
            async move { ready }
        })
        .await;
        gateway
    }

    pub fn handle(&self) -> &GatewayHandle {
        self.handle.as_ref().unwrap()
    }

    /// Where the listener configured on `port` really listens.
    pub fn listener(&self, port: u16) -> SocketAddr {
        self.handle()
            .listener_address(port)
            .unwrap_or_else(|| panic!("no listener for port {port} is running"))
    }

    pub fn admin_address(&self) -> SocketAddr {
        self.handle().admin_addresses().admin
    }

    pub fn client_status(&self) -> ClientStatus {
        self.status.borrow().clone()
    }

    /// Waits until the admin listing at `path` (e.g. `/endpoints`) mentions every one of
    /// `needles`: the configuration the test needs has been applied.
    pub async fn wait_for_admin(&self, path: &str, needles: &[&str]) {
        let address = self.admin_address();
        let what = format!("{path} of {address} to list {needles:?}");
        wait::until_true(&what, || async move {
            let (_, body) = admin::http_get(address, path).await;
            needles.iter().all(|needle| body.contains(needle))
        })
        .await;
    }

    /// `isthmus_rejected_connections_total` for `reason`, summed over listeners and SNIs.
    pub async fn rejected(&self, reason: &str) -> f64 {
        let (_, text) =
            admin::http_get(self.handle().admin_addresses().stats, "/stats/prometheus").await;
        admin::metric_sum(
            &text,
            "isthmus_rejected_connections_total",
            &[("reason", reason)],
        )
    }

    /// Waits until the rejection counter for `reason` reaches `count`.
    pub async fn wait_rejected(&self, reason: &str, count: f64) {
        let what =
            format!("isthmus_rejected_connections_total{{reason=\"{reason}\"}} to reach {count}");
        wait::until_true(
            &what,
            || async move { self.rejected(reason).await >= count },
        )
        .await;
        assert_eq!(
            self.rejected(reason).await,
            count,
            "{reason}: counted too often"
        );
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(client) = self.client.take() {
            let _ = client.await;
        }
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        // A failed test skips shutdown; the handle's own drop stops the data plane.
        let _ = self.stop.send(true);
        if let Some(client) = self.client.take() {
            client.abort();
        }
    }
}
