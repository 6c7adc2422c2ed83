//! Conformance A1–A5, B1, B2, B3, B5, B6, C3 and C5's CORS preflight end to end: discovery
//! reads the Istio YAML, pushes the ingress gateway its configuration, and curl / openssl
//! s_client reach httpbin (PyPI) or a TCP echo through it. B4, B7, C5's gRPC-web requests and
//! F1 are covered at the gateway level only (gateway/tests/http_*.rs).

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

/// `--resolve` for `host` at the gateway's real listener address.
fn resolve(host: &str, address: std::net::SocketAddr) -> String {
    format!("{host}:{}:{}", address.port(), address.ip())
}

async fn get(host: &str, address: std::net::SocketAddr, path: &str, extra: &[&str]) -> u16 {
    let mut args = vec!["--resolve".to_owned(), resolve(host, address)];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.push(format!("http://{host}:{}{path}", address.port()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&args).await.0
}

const HOSTS_AND_ROUTES: &str = "apiVersion: v1
kind: Namespace
metadata: {name: istio}
---
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: istio}
spec:
  selector: {app: productpage}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
---
# A2: two servers on one port, each with its own host and routes.
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: two-hosts, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8081, name: http-a, protocol: HTTP}
    hosts: [a.example.com]
  - port: {number: 8081, name: http-b, protocol: HTTP}
    hosts: [b.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: host-a, namespace: default}
spec:
  hosts: [a.example.com]
  gateways: [two-hosts]
  http:
  - match: [{uri: {prefix: /status}}]
    route: [{destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: host-b, namespace: default}
spec:
  hosts: [b.example.com]
  gateways: [two-hosts]
  http:
  - match: [{uri: {prefix: /headers}}]
    route: [{destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}}}]
---
# A3: Gateway bookinfo.com with VirtualService *.com (routed) and bookinfo.demo (not).
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: exact-host, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8082, name: http, protocol: HTTP}
    hosts: [bookinfo.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wildcard-vs, namespace: default}
spec:
  hosts: ['*.com']
  gateways: [exact-host]
  http:
  - route: [{destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wildcard-host, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8083, name: http, protocol: HTTP}
    hosts: ['*.com']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: exact-vs, namespace: default}
spec:
  hosts: [bookinfo.com]
  gateways: [wildcard-host]
  http:
  - route: [{destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other-host, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8084, name: http, protocol: HTTP}
    hosts: [bookinfo.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: demo-vs, namespace: default}
spec:
  hosts: [bookinfo.demo]
  gateways: [other-host]
  http:
  - route: [{destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}}}]
---
# A4: a Gateway in istio-system bound from namespace istio; short hosts resolve in the
# VirtualService's own namespace.
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8085, name: http, protocol: HTTP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: istio}
spec:
  hosts: [bookinfo.example.com]
  gateways: [istio-system/bookinfo-gateway]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo-from-system, namespace: istio-system}
spec:
  hosts: [system.example.com]
  gateways: [bookinfo-gateway]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
---
# A5: HTTP/2 cleartext with prior knowledge on an HTTP2 server, same rules.
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: h2c, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8086, name: http2, protocol: HTTP2}
    hosts: [h2.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: h2c, namespace: default}
spec:
  hosts: [h2.example.com]
  gateways: [h2c]
  http:
  - match: [{uri: {prefix: /status}}]
    route: [{destination: {host: httpbin.default.svc.cluster.local, port: {number: 8000}}}]
";

/// A2–A5 from YAML through discovery, checked with curl against httpbin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2_to_a5_hosts_and_routes_through_discovery() {
    support::init();
    let httpbin = start_httpbin().await;
    let files = MeshFiles::from_scenario("http/ingress");
    for (namespace, service, pod) in [
        ("default", "httpbin", "httpbin-1"),
        ("istio", "productpage", "productpage-1"),
    ] {
        files.write(
            &format!("cluster1/workload-{service}.yaml"),
            &workload_yaml(namespace, service, pod, &[], "http", httpbin.address),
        );
    }
    files.write("cluster1/hosts.yaml", HOSTS_AND_ROUTES);
    let discovery = files.start_discovery().await;
    let gateway = TestGateway::start(
        &GatewaySpec::ingress("cluster1", "network1", "127.0.0.17"),
        &discovery.grpc_uri(),
    )
    .await;
    gateway
        .wait_for_admin("/endpoints", &[&httpbin.address.to_string()])
        .await;
    gateway
        .wait_for_admin(
            "/listeners",
            &["8081", "8082", "8083", "8084", "8085", "8086"],
        )
        .await;

    // A2: each host has its own routes; the wrong pairing has none.
    let two = gateway.listener(8081);
    assert_eq!(get("a.example.com", two, "/status/418", &[]).await, 418);
    assert_eq!(get("b.example.com", two, "/headers", &[]).await, 200);
    assert_eq!(get("a.example.com", two, "/headers", &[]).await, 404);
    assert_eq!(get("b.example.com", two, "/status/418", &[]).await, 404);

    // A3: host intersection.
    let exact = gateway.listener(8082);
    assert_eq!(get("bookinfo.com", exact, "/status/418", &[]).await, 418);
    let wildcard = gateway.listener(8083);
    assert_eq!(get("bookinfo.com", wildcard, "/status/418", &[]).await, 418);
    assert_eq!(get("mypage.com", wildcard, "/status/418", &[]).await, 404);
    let other = gateway.listener(8084);
    assert_eq!(get("bookinfo.com", other, "/status/418", &[]).await, 404);

    // A4: bound across namespaces; the short host means istio's productpage, and from
    // istio-system it means nothing (503).
    let system = gateway.listener(8085);
    assert_eq!(
        get("bookinfo.example.com", system, "/status/418", &[]).await,
        418
    );
    assert_eq!(
        get("system.example.com", system, "/status/418", &[]).await,
        503
    );

    // A5: h2c with prior knowledge.
    let h2 = gateway.listener(8086);
    assert_eq!(
        get(
            "h2.example.com",
            h2,
            "/status/418",
            &["--http2-prior-knowledge"]
        )
        .await,
        418
    );

    gateway.shutdown().await;
    discovery.shutdown().await;
}

/// `openssl s_client` to `address` with `servername`; its stdout (the served chain is in it).
async fn s_client(address: std::net::SocketAddr, servername: &str) -> String {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &address.to_string(),
            "-servername",
            servername,
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn first_pem(chain: &str) -> &str {
    let end = "-----END CERTIFICATE-----";
    &chain[..chain.find(end).unwrap() + end.len()]
}

/// B2, B3, B5 and C3 from YAML through discovery: certificate by SNI, MUTUAL with
/// subjectAltNames, minimum TLS version, and a TLS server with a tcp route, checked with
/// curl and openssl s_client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_b3_b5_c3_tls_servers_through_discovery() {
    support::init();
    let httpbin = start_httpbin().await;
    let echo = support::backend::Backend::start(
        "echo",
        "127.0.0.1",
        None,
        support::backend::Reply::EchoLines,
    )
    .await;
    let files = MeshFiles::from_scenario("http/ingress");
    let validity = || certs::Validity::starting_now(Duration::from_secs(3600));
    let authority = certs::Authority::generate_root("cluster.local", validity()).unwrap();
    let root = files.path("root.pem");
    std::fs::write(&root, authority.root_pem()).unwrap();
    let mut pems = std::collections::BTreeMap::new();
    for name in ["a", "b", "m", "t", "bookinfo", "client", "stranger"] {
        let dns = match name {
            "client" => "is5.istio.client".to_owned(),
            "stranger" => "other.istio.client".to_owned(),
            "bookinfo" => "bookinfo.com".to_owned(),
            _ => format!("{name}.example.com"),
        };
        let leaf = authority
            .issue(&certs::LeafSpec::for_dns_names(&[&dns], validity()))
            .unwrap();
        std::fs::write(files.path(&format!("{name}.crt")), &leaf.chain_pem).unwrap();
        std::fs::write(files.path(&format!("{name}.key")), &leaf.key_pem).unwrap();
        pems.insert(name, leaf.chain_pem.clone());
    }
    let file = |name: &str| files.path(name).display().to_string();
    files.write(
        "cluster1/workload-httpbin.yaml",
        &workload_yaml(
            "default",
            "httpbin",
            "httpbin-1",
            &[],
            "http",
            httpbin.address,
        ),
    );
    files.write(
        "cluster1/workload-echo.yaml",
        &workload_yaml(
            "default",
            "tcp-echo",
            "tcp-echo-1",
            &[],
            "tcp",
            echo.address(),
        ),
    );
    let simple = |name: &str| {
        format!(
            "{{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}",
            file(&format!("{name}.crt")),
            file(&format!("{name}.key"))
        )
    };
    files.write(
        "cluster1/tls.yaml",
        &format!(
            "apiVersion: v1
kind: Service
metadata: {{name: tcp-echo, namespace: default}}
spec:
  selector: {{app: tcp-echo}}
  ports:
  - {{name: tcp, port: 9000, targetPort: 9000}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tls-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 9443, name: https-a, protocol: HTTPS}}
    hosts: [a.example.com]
    tls: {a}
  - port: {{number: 9443, name: https-b, protocol: HTTPS}}
    hosts: [b.example.com]
    tls: {b}
  - port: {{number: 9444, name: https-mutual, protocol: HTTPS}}
    hosts: [m.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: {m_crt}
      privateKey: {m_key}
      caCertificates: {root}
      subjectAltNames: [is5.istio.client]
  - port: {{number: 9445, name: https-13, protocol: HTTPS}}
    hosts: [t.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {t_crt}, privateKey: {t_key}, minProtocolVersion: TLSV1_3}}
  - port: {{number: 9446, name: tls-echo, protocol: TLS}}
    hosts: [bookinfo.com]
    tls: {bookinfo}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tls-routes, namespace: default}}
spec:
  hosts: [a.example.com, b.example.com, m.example.com, t.example.com]
  gateways: [tls-gateway]
  http:
  - match: [{{uri: {{prefix: /status}}}}]
    route: [{{destination: {{host: httpbin.default.svc.cluster.local, port: {{number: 8000}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp-echo, namespace: default}}
spec:
  hosts: [bookinfo.com]
  gateways: [tls-gateway]
  tcp:
  - match: [{{port: 9446}}]
    route: [{{destination: {{host: tcp-echo, port: {{number: 9000}}}}}}]
",
            a = simple("a"),
            b = simple("b"),
            bookinfo = simple("bookinfo"),
            m_crt = file("m.crt"),
            m_key = file("m.key"),
            t_crt = file("t.crt"),
            t_key = file("t.key"),
            root = root.display(),
        ),
    );
    let discovery = files.start_discovery().await;
    let gateway = TestGateway::start(
        &GatewaySpec::ingress("cluster1", "network1", "127.0.0.18"),
        &discovery.grpc_uri(),
    )
    .await;
    gateway
        .wait_for_admin(
            "/endpoints",
            &[&httpbin.address.to_string(), &echo.address().to_string()],
        )
        .await;
    gateway
        .wait_for_admin("/listeners", &["9443", "9444", "9445", "9446"])
        .await;
    let root_path = root.display().to_string();
    let https = |host: &str, address: std::net::SocketAddr, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--cacert".into(),
            root_path.clone(),
            "--resolve".into(),
            resolve(host, address),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.push(format!("https://{host}:{}/status/418", address.port()));
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&args).await.0
        }
    };

    // B2: the certificate is the one whose server lists the SNI host; each routes.
    let shared = gateway.listener(9443);
    for host in ["a", "b"] {
        let shown = s_client(shared, &format!("{host}.example.com")).await;
        assert!(shown.contains(first_pem(&pems[host])), "{host}: {shown}");
        let other = if host == "a" { "b" } else { "a" };
        assert!(!shown.contains(first_pem(&pems[other])));
        assert_eq!(
            https(&format!("{host}.example.com"), shared, &[]).await,
            418
        );
    }

    // B3: MUTUAL with subjectAltNames: the listed SAN is served, another SAN from the same
    // CA and no certificate are refused in the handshake.
    let mutual = gateway.listener(9444);
    let (client_crt, client_key) = (file("client.crt"), file("client.key"));
    let (stranger_crt, stranger_key) = (file("stranger.crt"), file("stranger.key"));
    assert_eq!(
        https(
            "m.example.com",
            mutual,
            &["--cert", &client_crt, "--key", &client_key]
        )
        .await,
        418
    );
    assert_eq!(
        https(
            "m.example.com",
            mutual,
            &["--cert", &stranger_crt, "--key", &stranger_key]
        )
        .await,
        0
    );
    assert_eq!(https("m.example.com", mutual, &[]).await, 0);

    // B5: minProtocolVersion TLSV1_3 is honoured exactly.
    let modern = gateway.listener(9445);
    assert_eq!(https("t.example.com", modern, &["--tlsv1.3"]).await, 418);
    assert_eq!(
        https("t.example.com", modern, &["--tlsv1.2", "--tls-max", "1.2"]).await,
        0
    );

    // C3: TLS terminated by the gateway, bytes forwarded to tcp-echo by the tcp route.
    let terminated = gateway.listener(9446);
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &terminated.to_string(),
            "-servername",
            "bookinfo.com",
            "-CAfile",
            &root_path,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n").await.unwrap();
    stdin.flush().await.unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("an echo within 10 s")
        .unwrap();
    assert_eq!(line.as_deref(), Some("echo hello"));
    drop(stdin);
    let _ = child.kill().await;

    gateway.shutdown().await;
    discovery.shutdown().await;
}

/// The response head curl saw (status line and headers, lowercase names).
async fn curl_head(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-s", "--max-time", "10", "-o", "/dev/null", "-D", "-"])
        .args(args)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&output.stdout).to_ascii_lowercase()
}

/// B6 (verifyCertificateHash) and C5's CORS preflight on a GRPC-WEB server, from YAML
/// through discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b6_and_c5_preflight_through_discovery() {
    support::init();
    let httpbin = start_httpbin().await;
    let files = MeshFiles::from_scenario("http/ingress");
    let validity = || certs::Validity::starting_now(Duration::from_secs(3600));
    let authority = certs::Authority::generate_root("cluster.local", validity()).unwrap();
    let root = files.path("root.pem");
    std::fs::write(&root, authority.root_pem()).unwrap();
    for (name, dns) in [
        ("server", "pinned.example.com"),
        ("listed", "listed.client"),
        ("unlisted", "unlisted.client"),
    ] {
        let leaf = authority
            .issue(&certs::LeafSpec::for_dns_names(&[dns], validity()))
            .unwrap();
        std::fs::write(files.path(&format!("{name}.crt")), &leaf.chain_pem).unwrap();
        std::fs::write(files.path(&format!("{name}.key")), &leaf.key_pem).unwrap();
    }
    let file = |name: &str| files.path(name).display().to_string();
    // The listed client's certificate SHA-256, as `openssl x509 -fingerprint` prints it
    // (hex with colons, one of the two forms Istio accepts).
    let fingerprint = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            &file("listed.crt"),
        ])
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout);
    let hash = fingerprint.trim().rsplit('=').next().unwrap().to_owned();
    files.write(
        "cluster1/workload-httpbin.yaml",
        &workload_yaml(
            "default",
            "httpbin",
            "httpbin-1",
            &[],
            "http",
            httpbin.address,
        ),
    );
    files.write(
        "cluster1/b6-c5.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: pinned, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 9447, name: https-pinned, protocol: HTTPS}}
    hosts: [pinned.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: {server_crt}
      privateKey: {server_key}
      caCertificates: {root}
      verifyCertificateHash: ['{hash}']
  - port: {{number: 8087, name: grpc-web, protocol: GRPC-WEB}}
    hosts: [web.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: pinned, namespace: default}}
spec:
  hosts: [pinned.example.com, web.example.com]
  gateways: [pinned]
  http:
  - corsPolicy:
      allowOrigins: [{{exact: 'https://exact.example.com'}}, {{regex: 'https://.*[.]example[.]com'}}]
      allowMethods: [POST, GET]
      allowHeaders: [content-type, x-grpc-web]
      exposeHeaders: [grpc-status]
      maxAge: 24h
    route: [{{destination: {{host: httpbin.default.svc.cluster.local, port: {{number: 8000}}}}}}]
",
            server_crt = file("server.crt"),
            server_key = file("server.key"),
            root = root.display(),
        ),
    );
    let discovery = files.start_discovery().await;
    let gateway = TestGateway::start(
        &GatewaySpec::ingress("cluster1", "network1", "127.0.0.19"),
        &discovery.grpc_uri(),
    )
    .await;
    gateway
        .wait_for_admin("/endpoints", &[&httpbin.address.to_string()])
        .await;
    gateway
        .wait_for_admin("/listeners", &["9447", "8087"])
        .await;

    // B6: only the client certificate whose hash is listed gets through.
    let pinned = gateway.listener(9447);
    let root_path = root.display().to_string();
    let url = format!("https://pinned.example.com:{}/status/418", pinned.port());
    let with = |name: &str| {
        let (crt, key) = (file(&format!("{name}.crt")), file(&format!("{name}.key")));
        let args = vec![
            "--cacert".to_owned(),
            root_path.clone(),
            "--resolve".to_owned(),
            resolve("pinned.example.com", pinned),
            "--cert".to_owned(),
            crt,
            "--key".to_owned(),
            key,
            url.clone(),
        ];
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(&args).await.0
        }
    };
    assert_eq!(with("listed").await, 418);
    assert_eq!(with("unlisted").await, 0);

    // C5: the preflight from an allowed origin (exact or regex) is answered by the gateway
    // per the policy.
    let web = gateway.listener(8087);
    let preflight = |origin: &str| {
        let args = vec![
            "-X".to_owned(),
            "OPTIONS".to_owned(),
            "-H".to_owned(),
            format!("Origin: {origin}"),
            "-H".to_owned(),
            "Access-Control-Request-Method: POST".to_owned(),
            "--resolve".to_owned(),
            resolve("web.example.com", web),
            format!("http://web.example.com:{}/grpc.Service/Call", web.port()),
        ];
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl_head(&args).await
        }
    };
    let exact = preflight("https://exact.example.com").await;
    assert!(
        exact.contains("access-control-allow-origin: https://exact.example.com"),
        "exact origin: {exact}"
    );
    let allowed = preflight("https://app.example.com").await;
    assert!(
        allowed.contains("access-control-allow-origin: https://app.example.com"),
        "{allowed}"
    );
    assert!(
        allowed.contains("access-control-max-age: 86400"),
        "{allowed}"
    );
    assert!(
        allowed.contains("access-control-allow-methods: post,get"),
        "{allowed}"
    );
    // Another origin's preflight is not answered by the gateway: as in Envoy it goes on to
    // httpbin (which answers CORS its own way), without the policy's max-age.
    let refused = preflight("https://evil.test").await;
    assert!(
        refused.contains("x-envoy-upstream-service-time")
            && !refused.contains("access-control-max-age: 86400"),
        "{refused}"
    );

    gateway.shutdown().await;
    discovery.shutdown().await;
}
