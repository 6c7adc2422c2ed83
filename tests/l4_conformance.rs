//! Conformance C1 (TCP routing, subset switch) and C4 (TLS PASSTHROUGH) with real clients
//! (a Python socket client, `openssl s_client`, `curl`) through a gateway configured by
//! discovery from YAML files.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::process::Stdio;
use std::time::Duration;

use discovery::app::Discovery;
use support::backend::{Backend, Reply};
use support::gateways::{GatewaySpec, TestGateway};
use support::mesh::{MeshFiles, workload_yaml};
use support::pki::Pki;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Sends each stdin line over one TCP connection and prints each answer line: a client that
/// keeps its connection open while the test changes the configuration.
const LINE_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
f = s.makefile("rw", newline="\n")
for line in sys.stdin:
    f.write(line); f.flush()
    print(f.readline().rstrip("\n"), flush=True)
"#;

struct LineClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl LineClient {
    fn connect(address: std::net::SocketAddr) -> LineClient {
        let mut child = Command::new("python3")
            .args([
                "-c",
                LINE_CLIENT,
                &address.ip().to_string(),
                &address.port().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the C1 client");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        LineClient {
            child,
            stdin,
            stdout,
        }
    }

    async fn ask(&mut self, line: &str) -> String {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.stdout.read_line(&mut answer))
            .await
            .expect("the C1 client got no answer within 10 s")
            .unwrap();
        answer.trim_end().to_owned()
    }

    async fn close(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// The north-south scenario with its backends listening and its ingress gateway applied.
struct NorthSouth {
    pki: Pki,
    v1: Backend,
    v2: Backend,
    nginx: Backend,
    files: MeshFiles,
    gateway: TestGateway,
    discovery: Option<Discovery>,
}

impl NorthSouth {
    async fn start() -> NorthSouth {
        support::init();
        let pki = Pki::new("l4-conformance-ca");
        let v1 = Backend::start("v1", "127.0.0.31", None, Reply::EchoLines).await;
        let v2 = Backend::start("v2", "127.0.0.32", None, Reply::EchoLines).await;
        let nginx_leaf = pki.leaf("nginx.example.com");
        let nginx = Backend::start("my-nginx", "127.0.0.41", Some(&nginx_leaf), Reply::Http).await;

        let files = MeshFiles::from_scenario("l4/northsouth");
        for (service, pod, version, port_name, backend) in [
            ("tcp-echo", "tcp-echo-v1", "v1", "tcp", &v1),
            ("tcp-echo", "tcp-echo-v2", "v2", "tcp", &v2),
            ("my-nginx", "my-nginx-1", "v1", "https", &nginx),
        ] {
            let yaml = workload_yaml(
                "default",
                service,
                pod,
                &[("version", version)],
                port_name,
                backend.address(),
            );
            files.write(&format!("cluster1/workload-{pod}.yaml"), &yaml);
        }
        let discovery = files.start_discovery().await;
        let gateway = TestGateway::start(
            &GatewaySpec::ingress("cluster1", "network1", "127.0.0.15"),
            &discovery.grpc_uri(),
        )
        .await;
        gateway
            .wait_for_admin(
                "/endpoints",
                &[&v1.address().to_string(), &nginx.address().to_string()],
            )
            .await;
        NorthSouth {
            pki,
            v1,
            v2,
            nginx,
            files,
            gateway,
            discovery: Some(discovery),
        }
    }

    async fn shutdown(mut self) {
        self.gateway.shutdown().await;
        if let Some(discovery) = self.discovery.take() {
            discovery.shutdown().await;
        }
    }
}

const ROUTE_TO_V2: &str = r#"# C1, switched: all TCP on 31400 to subset v2.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}, subset: v2}}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_tcp_subset_switch_moves_new_connections_and_keeps_open_ones() {
    let mesh = NorthSouth::start().await;
    let address = mesh.gateway.listener(31400);

    let mut old = LineClient::connect(address);
    assert_eq!(old.ask("hello").await, "v1 hello");
    assert_eq!(mesh.v1.served(), 1);

    mesh.files
        .write("cluster1/tcp-echo-route.yaml", ROUTE_TO_V2);
    mesh.gateway
        .wait_for_admin(
            "/listeners",
            &["outbound|9000|v2|tcp-echo.default.svc.cluster.local"],
        )
        .await;
    let status = mesh.gateway.client_status();
    assert!(
        status.last_nack.is_none(),
        "the switched route was refused: {status:?}"
    );

    let mut new = LineClient::connect(address);
    assert_eq!(new.ask("hello").await, "v2 hello");
    assert_eq!(
        old.ask("still there").await,
        "v1 still there",
        "the open connection stays on v1"
    );
    assert_eq!((mesh.v1.served(), mesh.v2.served()), (1, 1));
    new.close().await;
    old.close().await;
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_openssl_s_client_sees_the_backend_certificate() {
    let mesh = NorthSouth::start().await;
    let address = mesh.gateway.listener(443);
    let ca = mesh.files.path("backend-ca.pem");
    std::fs::write(&ca, mesh.pki.ca_pem()).unwrap();

    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &address.to_string(),
            "-servername",
            "nginx.example.com",
        ])
        .arg("-CAfile")
        .arg(&ca)
        .args([
            "-verify_return_error",
            "-verify_hostname",
            "nginx.example.com",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("subject=CN = nginx.example.com")
            || stdout.contains("subject=CN=nginx.example.com"),
        "s_client must be shown the backend's own certificate:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("Verify return code: 0 (ok)"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(mesh.nginx.served(), 1, "the handshake was with the backend");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_curl_gets_the_backend_answer_over_passthrough() {
    let mesh = NorthSouth::start().await;
    let address = mesh.gateway.listener(443);
    let ca = mesh.files.path("backend-ca.pem");
    std::fs::write(&ca, mesh.pki.ca_pem()).unwrap();

    let port = address.port();
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--resolve"])
        .arg(format!("nginx.example.com:{port}:{}", address.ip()))
        .arg("--cacert")
        .arg(&ca)
        .arg(format!("https://nginx.example.com:{port}/"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), output)
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "my-nginx\n");
    assert_eq!(mesh.nginx.served(), 1);
    assert_eq!(mesh.v1.served() + mesh.v2.served(), 0);
    mesh.shutdown().await;
}
