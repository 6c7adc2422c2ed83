//! Conformance A1 and B1 end to end: discovery reads the Istio YAML, pushes the ingress
//! gateway its configuration, and curl reaches httpbin (PyPI) through it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::gateways::{GatewaySpec, TestGateway};
use support::mesh::{MeshFiles, workload_yaml};
use tokio::process::Command;

const HOST: &str = "httpbin.example.com";

struct Httpbin {
    address: std::net::SocketAddr,
    _child: tokio::process::Child,
}

async fn start_httpbin() -> Httpbin {
    let check = std::process::Command::new("python3")
        .args(["-c", "import httpbin, gunicorn"])
        .stderr(Stdio::null())
        .status()
        .expect("python3 must be installed");
    assert!(
        check.success(),
        "httpbin and gunicorn are missing: python3 -m pip install httpbin gunicorn"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new("python3")
        .args([
            "-m",
            "gunicorn",
            "-b",
            &address.to_string(),
            "-w",
            "1",
            "httpbin:app",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..300 {
        if curl(&[&format!("http://{address}/status/200")]).await.0 == 200 {
            return Httpbin {
                address,
                _child: child,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("httpbin did not start on {address}");
}

/// (status, location header, body)
async fn curl(args: &[&str]) -> (u16, String, String) {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "10", "-D", "-"])
        .args(args)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, location, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_and_b1_through_discovery_from_yaml() {
    support::init();
    let httpbin = start_httpbin().await;
    let files = MeshFiles::from_scenario("http/ingress");
    let authority = certs::Authority::generate_root(
        "cluster.local",
        certs::Validity::starting_now(Duration::from_secs(3600)),
    )
    .unwrap();
    let leaf = authority
        .issue(&certs::LeafSpec::for_dns_names(
            &[HOST],
            certs::Validity::starting_now(Duration::from_secs(3600)),
        ))
        .unwrap();
    let (cert, key, root) = (
        files.path("tls.crt"),
        files.path("tls.key"),
        files.path("root.pem"),
    );
    std::fs::write(&cert, &leaf.chain_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    std::fs::write(&root, authority.root_pem()).unwrap();
    files.write(
        "cluster1/workload-httpbin.yaml",
        &workload_yaml(
            "default",
            "httpbin",
            "httpbin-1",
            &[("version", "v1")],
            "http",
            httpbin.address,
        ),
    );
    files.write(
        "cluster1/gateway.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: httpbin-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: [{HOST}]
    tls: {{httpsRedirect: true}}
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [{HOST}]
    tls: {{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}
",
            cert.display(),
            key.display()
        ),
    );
    let discovery = files.start_discovery().await;
    let gateway = TestGateway::start(
        &GatewaySpec::ingress("cluster1", "network1", "127.0.0.16"),
        &discovery.grpc_uri(),
    )
    .await;
    gateway
        .wait_for_admin("/endpoints", &[&httpbin.address.to_string()])
        .await;
    gateway.wait_for_admin("/listeners", &["https.443"]).await;
    let plain = gateway.listener(80);
    let secure = gateway.listener(443);
    let resolve =
        |address: std::net::SocketAddr| format!("{HOST}:{}:{}", address.port(), address.ip());

    // B1: port 80 redirects to https with the same path and query.
    let (status, location, _) = curl(&[
        "--resolve",
        &resolve(plain),
        &format!("http://{HOST}:{}/status/418?a=1", plain.port()),
    ])
    .await;
    assert_eq!(status, 301);
    assert_eq!(location.trim(), format!("https://{HOST}/status/418?a=1"));

    // A1 over the HTTPS server: 418 and the teapot; /ip has no route.
    let https = |path: &str| format!("https://{HOST}:{}{path}", secure.port());
    let root_path = root.display().to_string();
    let (status, _, body) = curl(&[
        "--cacert",
        &root_path,
        "--resolve",
        &resolve(secure),
        &https("/status/418"),
    ])
    .await;
    assert_eq!(status, 418, "{body}");
    assert!(body.contains("teapot"), "{body}");
    let (status, _, body) = curl(&[
        "--cacert",
        &root_path,
        "--resolve",
        &resolve(secure),
        &https("/ip"),
    ])
    .await;
    assert_eq!((status, body.as_str()), (404, ""));
    // A wrong Host gets no route either.
    let (status, _, _) = curl(&[
        "--cacert",
        &root_path,
        "--resolve",
        &resolve(secure),
        "-H",
        "Host: other.example.com",
        &https("/status/418"),
    ])
    .await;
    assert_eq!(status, 404);

    gateway.shutdown().await;
    discovery.shutdown().await;
}
