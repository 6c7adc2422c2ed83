//! Rotation on the real data path: two workload proxies whose certificates live 4 s renew them
//! through discovery (CSR over mTLS) while an application keeps calling through them. No request
//! may fail, and calls keep succeeding after both bootstrap certificates have expired.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is how they report a failure

mod ca_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use ca_support::{SigningMesh, identity};
use certs::{Identity, RotatingCert};
use gateway::identity::{CaClientOptions, CertificateRenewer, RenewalStatus};
use gateway::sidecar::{AppProtocol, InboundSpec, MeshTls, Sidecar, SidecarOptions};
use gateway::xds::{self, ClientOptions};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use multicluster::proto::{GatewayIdentity, Role};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::transport::{Certificate, ClientTlsConfig};

const LIFETIME: Duration = Duration::from_secs(4);
const TRAFFIC_FOR: Duration = Duration::from_secs(9);
/// The server workload's advertised endpoint (a loopback address no other test uses).
const ENDPOINT: &str = "127.0.3.2:19080";
const URL: &str = "http://echo.default.svc.cluster.local:19080/";

const CLUSTER_YAML: &str = "apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 19080, targetPort: 19080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: echo-1
  namespace: default
  labels: {app: echo, security.istio.io/tlsMode: istio}
spec:
  serviceAccountName: echo
  containers: [{name: app, image: example}]
status: {podIP: 127.0.3.2}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-1
  namespace: default
  labels: {kubernetes.io/service-name: echo}
addressType: IPv4
ports: [{name: http, port: 19080, protocol: TCP}]
endpoints:
- addresses: [\"127.0.3.2\"]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: echo-1, namespace: default}
";

/// Answers with the caller the inbound proxy vouched for.
async fn app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: hyper::Request<_>| {
                    let caller = request
                        .headers()
                        .get("x-forwarded-client-cert")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(caller))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

async fn call(proxy: SocketAddr) -> Result<String, String> {
    let attempt = async {
        let stream = TcpStream::connect(proxy).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::get(URL)
            .header("host", "echo.default.svc.cluster.local:19080")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            Err(format!("{status}: {text}"))
        }
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}

struct Workload {
    cert: Arc<RotatingCert>,
    bootstrap_expiry: SystemTime,
    status: watch::Receiver<RenewalStatus>,
}

/// A 4 s bootstrap certificate, a renewer running against discovery, and the mTLS settings
/// for following discovery with that same (bootstrap) certificate.
fn workload(
    mesh: &SigningMesh,
    id: &Identity,
    stopped: &watch::Receiver<bool>,
) -> (Workload, ClientTlsConfig) {
    let issued = mesh.cluster_ca.issue_workload(id, LIFETIME).unwrap();
    let cert = Arc::new(RotatingCert::new(issued.certified_key().unwrap()).unwrap());
    let mut options: CaClientOptions = mesh.client_options();
    options.lifetime = LIFETIME;
    let renewer = CertificateRenewer::new(id.clone(), Arc::clone(&cert), options).unwrap();
    let status = renewer.status();
    let mut stopped = stopped.clone();
    tokio::spawn(renewer.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    let tls = mesh.discovery.tls().unwrap();
    let xds_tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.roots_pem))
        .domain_name(discovery::ca::discovery_dns_name("istio-system"))
        .identity(tonic::transport::Identity::from_pem(
            &issued.chain_pem,
            &issued.key_pem,
        ));
    (
        Workload {
            bootstrap_expiry: cert.not_after(),
            cert,
            status,
        },
        xds_tls,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_proxies_rotate_under_traffic_without_failures() {
    let mesh = SigningMesh::start().await;
    // Discovery watches the cluster directory, so the service appears with the next snapshot.
    mesh.write_cluster_file("echo.yaml", CLUSTER_YAML);
    let (stop, stopped) = watch::channel(false);
    let roots = mesh.cluster_ca.roots().to_vec();
    let uri = format!("https://{}", mesh.discovery.grpc_address());

    let app = app().await;
    let (server, server_xds) = workload(&mesh, &identity("default", "echo"), &stopped);
    let (client, client_xds) = workload(&mesh, &identity("default", "client"), &stopped);
    let mut handles = Vec::new();
    let mut proxies = Vec::new();
    for (name, workload, xds_tls, inbound) in [
        (
            "echo-1",
            &server,
            server_xds,
            vec![InboundSpec {
                listen: ENDPOINT.parse().unwrap(),
                app,
                protocol: AppProtocol::Http,
            }],
        ),
        ("client", &client, client_xds, Vec::new()),
    ] {
        let tls = Arc::new(MeshTls::new(Arc::clone(&workload.cert), roots.clone()).unwrap());
        let options = SidecarOptions {
            inbound,
            ..SidecarOptions::ephemeral()
        };
        let handle = Sidecar::start(options, tls).await.unwrap();
        let mut hello = GatewayIdentity {
            name: name.into(),
            namespace: "default".into(),
            cluster: "cluster1".into(),
            network: "network1".into(),
            ..Default::default()
        };
        hello.role = Role::Sidecar as i32;
        let mut options = ClientOptions::new(uri.clone(), hello);
        options.tls = Some(xds_tls);
        let mut stopped = stopped.clone();
        tokio::spawn(xds::run(options, handle.gateway(), async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        proxies.push(handle.outbound_address());
        handles.push(handle);
    }
    let client_proxy = proxies[1];

    let ready = Instant::now();
    while let Err(error) = call(client_proxy).await {
        assert!(
            ready.elapsed() < Duration::from_secs(10),
            "never ready: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let started = Instant::now();
    let mut requests = 0u64;
    let mut failures = Vec::new();
    while started.elapsed() < TRAFFIC_FOR {
        requests += 1;
        match call(client_proxy).await {
            Ok(caller) if caller.contains("spiffe://cluster.local/ns/default/sa/client") => {}
            Ok(caller) => failures.push(format!("request {requests}: unexpected caller {caller}")),
            Err(error) => failures.push(format!(
                "request {requests} at {:?}: {error}",
                started.elapsed()
            )),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = SystemTime::now();
    let _ = stop.send(true);

    assert!(
        failures.is_empty(),
        "{} of {requests} failed: {failures:#?}",
        failures.len()
    );
    assert!(requests > 50, "steady traffic, got {requests} requests");
    for (name, workload) in [("server", &server), ("client", &client)] {
        let status = workload.status.borrow().clone();
        assert!(status.renewals >= 3, "{name}: {status:?}");
        assert_eq!(status.failures, 0, "{name}: {status:?}");
        assert!(
            now > workload.bootstrap_expiry,
            "{name}: bootstrap certificate still valid"
        );
    }
    for handle in handles {
        handle.shutdown().await;
    }
}
