//! Conformance B1–B7 and C3 at the gateway level: TLS termination with certificates from
//! files and inline PEM, chosen by SNI, client certificate policies, versions and ciphers,
//! ISTIO_MUTUAL, live credential updates, and TLS servers forwarding TCP. Each TLS option
//! has a positive and a negative case; curl and openssl s_client are the clients.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod http_support;

use std::net::SocketAddr;
use std::time::Duration;

use http_support::*;
use multicluster::proto::{self, Protocol, TlsMode};

const HTTPBIN: &str = "httpbin.default.svc.cluster.local";

fn httpbin_routes(host: &str, port: u16) -> Vec<proto::VirtualHost> {
    vec![vhost(
        host,
        port,
        vec![route("all", vec![], to(&cluster_name(8000, "", HTTPBIN)))],
    )]
}

async fn https_get(
    certs: &Certs,
    host: &str,
    address: SocketAddr,
    path: &str,
    extra: &[&str],
) -> Reply {
    let mut args = vec![
        "--cacert".to_owned(),
        certs.root(),
        "--resolve".to_owned(),
        resolve(host, address),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(url("https", host, address, path));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&args).await
}

#[tokio::test]
async fn b1_simple_from_files_with_https_redirect_on_port_80() {
    let httpbin = Httpbin::start().await;
    let certs = Certs::new("cluster.local");
    let server_cert = certs.dns("httpbin", &["httpbin.example.com"]);
    let gateway = start(test_options()).await;
    let credential = file_credential("file:httpbin", &server_cert, "");
    let https_table = "https.443.https.httpbin-gateway.default";
    gateway
        .apply(config(
            "1",
            vec![
                listener(
                    80,
                    vec![redirecting(http_server(
                        "http.80",
                        Protocol::Http,
                        &["httpbin.example.com"],
                        "http.80",
                    ))],
                ),
                listener(
                    443,
                    vec![https_server(
                        https_table,
                        &["httpbin.example.com"],
                        server_tls(TlsMode::Simple, "file:httpbin"),
                        https_table,
                    )],
                ),
            ],
            vec![cluster(8000, "", HTTPBIN, &[httpbin.address])],
            vec![
                table("http.80", httpbin_routes("httpbin.example.com", 80)),
                table(https_table, httpbin_routes("httpbin.example.com", 443)),
            ],
            vec![credential],
        ))
        .unwrap();
    let plain = gateway.listener_address(80).unwrap();
    let secure = gateway.listener_address(443).unwrap();
    let host = "httpbin.example.com";
    let redirect = curl(&[
        "--resolve",
        &resolve(host, plain),
        &url("http", host, plain, "/status/418?x=1"),
    ])
    .await;
    assert_eq!(redirect.status, 301, "{redirect:?}");
    assert_eq!(
        redirect.header("location"),
        Some("https://httpbin.example.com/status/418?x=1")
    );
    let reply = https_get(&certs, host, secure, "/status/418", &[]).await;
    assert_eq!(reply.status, 418, "{reply:?}");
    assert!(reply.body.contains("teapot"));
    // HTTP/2 by ALPN.
    let reply = https_get(&certs, host, secure, "/headers?show_env=1", &["--http2"]).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains("\"X-Forwarded-Proto\": \"https\""),
        "{}",
        reply.body
    );
    // Negative: a client that does not trust the gateway's CA refuses it.
    let untrusted = curl(&[
        "--resolve",
        &resolve(host, secure),
        &url("https", host, secure, "/status/418"),
    ])
    .await;
    assert_ne!(untrusted.exit, 0);
}

/// Bad input: an invalid or missing certificate file rejects that server only, with the
/// file and the problem in the reason; the other server on the port keeps serving.
#[tokio::test]
async fn broken_credentials_reject_only_their_server() {
    let backend = Counting::start("backend", 200).await;
    let certs = Certs::new("cluster.local");
    let good = certs.dns("good", &["good.example.com"]);
    let garbage = certs.path("garbage.crt");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let broken = proto::TlsCredential {
        name: "file:broken".into(),
        source: Some(proto::tls_credential::Source::Files(
            proto::CredentialFiles {
                certificate_chain: garbage.clone(),
                private_key: good.key.clone(),
                ca_certificates: String::new(),
            },
        )),
    };
    let missing = proto::TlsCredential {
        name: "file:missing".into(),
        source: Some(proto::tls_credential::Source::Files(
            proto::CredentialFiles {
                certificate_chain: certs.path("nope.crt"),
                private_key: certs.path("nope.key"),
                ca_certificates: String::new(),
            },
        )),
    };
    let upstream = cluster_name(80, "", "backend.default.svc.cluster.local");
    let all = |host: &str| vec![vhost(host, 443, vec![route("all", vec![], to(&upstream))])];
    let gateway = start(test_options()).await;
    gateway
        .apply(config(
            "1",
            vec![listener(
                443,
                vec![
                    https_server(
                        "good",
                        &["good.example.com"],
                        server_tls(TlsMode::Simple, "file:good"),
                        "good",
                    ),
                    https_server(
                        "broken",
                        &["broken.example.com"],
                        server_tls(TlsMode::Simple, "file:broken"),
                        "broken",
                    ),
                    https_server(
                        "missing",
                        &["missing.example.com"],
                        server_tls(TlsMode::Simple, "file:missing"),
                        "missing",
                    ),
                ],
            )],
            vec![cluster(
                80,
                "",
                "backend.default.svc.cluster.local",
                &[backend.address],
            )],
            vec![
                table("good", all("good.example.com")),
                table("broken", all("broken.example.com")),
                table("missing", all("missing.example.com")),
            ],
            vec![file_credential("file:good", &good, ""), broken, missing],
        ))
        .expect("a broken credential rejects its server, not the push");
    let address = gateway.listener_address(443).unwrap();
    assert_eq!(
        https_get(&certs, "good.example.com", address, "/", &[])
            .await
            .status,
        200
    );
    let refused = https_get(&certs, "broken.example.com", address, "/", &[]).await;
    assert_ne!(refused.exit, 0, "{refused:?}");
    let listing = curl(&[&format!(
        "http://{}/listeners?format=table",
        gateway.admin_addresses().admin
    )])
    .await
    .body;
    assert!(listing.contains("SERVER: broken"), "{listing}");
    assert!(
        listing.contains(&garbage),
        "the reason names the file: {listing}"
    );
    assert!(listing.contains("nope.crt: file not found"), "{listing}");
    let text = stats(&gateway).await;
    assert_eq!(
        metric_sum(&text, "isthmus_rejected_servers", &[("server", "broken")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(
            &text,
            "isthmus_rejected_connections_total",
            &[("reason", "server_rejected")]
        ),
        1.0,
        "{text}"
    );
}

/// B2: several hosts on 443, each with its own certificate and routes.
#[tokio::test]
async fn b2_certificate_and_routes_chosen_by_sni() {
    let a = Counting::start("service-a", 200).await;
    let b = Counting::start("service-b", 200).await;
    let certs = Certs::new("cluster.local");
    let cert_a = certs.dns("a", &["a.example.com"]);
    let cert_b = certs.dns("b", &["b.example.com"]);
    let (ca, cb) = (
        cluster_name(80, "", "a.default.svc.cluster.local"),
        cluster_name(80, "", "b.default.svc.cluster.local"),
    );
    let gateway = start(test_options()).await;
    gateway
        .apply(config(
            "1",
            vec![listener(
                443,
                vec![
                    https_server(
                        "https.443.a",
                        &["a.example.com"],
                        server_tls(TlsMode::Simple, "a"),
                        "https.443.a",
                    ),
                    https_server(
                        "https.443.b",
                        &["b.example.com"],
                        server_tls(TlsMode::Simple, "b"),
                        "https.443.b",
                    ),
                ],
            )],
            vec![
                cluster(80, "", "a.default.svc.cluster.local", &[a.address]),
                cluster(80, "", "b.default.svc.cluster.local", &[b.address]),
            ],
            vec![
                table(
                    "https.443.a",
                    vec![vhost(
                        "a.example.com",
                        443,
                        vec![route("a", vec![], to(&ca))],
                    )],
                ),
                table(
                    "https.443.b",
                    vec![vhost(
                        "b.example.com",
                        443,
                        vec![route("b", vec![], to(&cb))],
                    )],
                ),
            ],
            vec![
                file_credential("a", &cert_a, ""),
                file_credential("b", &cert_b, ""),
            ],
        ))
        .unwrap();
    let address = gateway.listener_address(443).unwrap();
    for (host, other) in [
        ("a.example.com", "b.example.com"),
        ("b.example.com", "a.example.com"),
    ] {
        let out = s_client(
            address,
            host,
            &["-CAfile", &certs.root(), "-verify_hostname", host],
            b"",
        )
        .await;
        assert!(out.contains("Verify return code: 0 (ok)"), "{host}: {out}");
        let out = s_client(
            address,
            host,
            &["-CAfile", &certs.root(), "-verify_hostname", other],
            b"",
        )
        .await;
        assert!(
            !out.contains("Verify return code: 0 (ok)"),
            "{host} must not present {other}'s certificate: {out}"
        );
        let reply = https_get(&certs, host, address, "/x", &[]).await;
        assert!(
            reply.body.starts_with(&format!("service-{}", &host[..1])),
            "{reply:?}"
        );
    }
    // Host a's name with host b's SNI: each host has its own routes (404 from b's table).
    let reply = curl(&[
        "--cacert",
        &certs.root(),
        "--resolve",
        &resolve("b.example.com", address),
        "-H",
        "Host: a.example.com",
        &url("https", "b.example.com", address, "/"),
    ])
    .await;
    assert_eq!(reply.status, 404);
    // No SNI at all: no server covers it (no `*` server on this port).
    let out = s_client(address, "", &["-CAfile", &certs.root()], b"").await;
    assert!(out.contains("no peer certificate available"), "{out}");
    let text = stats(&gateway).await;
    assert_eq!(
        metric_sum(
            &text,
            "isthmus_rejected_connections_total",
            &[("reason", "no_sni")]
        ),
        1.0,
        "{text}"
    );
    let out = s_client(address, "c.example.com", &["-CAfile", &certs.root()], b"").await;
    assert!(out.contains("no peer certificate available"), "{out}");
    let text = stats(&gateway).await;
    assert_eq!(
        metric_sum(
            &text,
            "isthmus_rejected_connections_total",
            &[("reason", "unknown_sni"), ("sni", "c.example.com")]
        ),
        1.0,
        "{text}"
    );
}

fn mutual(credential: &str) -> proto::ServerTls {
    server_tls(TlsMode::Mutual, credential)
}

async fn mutual_gateway(
    tls: proto::ServerTls,
    credentials: Vec<proto::TlsCredential>,
    httpbin: &Httpbin,
) -> (gateway::GatewayHandle, SocketAddr) {
    let gateway = start(test_options()).await;
    gateway
        .apply(config(
            "1",
            vec![listener(
                443,
                vec![https_server(
                    "https.443",
                    &["secure.example.com"],
                    tls,
                    "https.443",
                )],
            )],
            vec![cluster(8000, "", HTTPBIN, &[httpbin.address])],
            vec![table(
                "https.443",
                httpbin_routes("secure.example.com", 443),
            )],
            credentials,
        ))
        .unwrap();
    let address = gateway.listener_address(443).unwrap();
    (gateway, address)
}

/// B3: MUTUAL with caCertificates and subjectAltNames; XFCC reaches the upstream.
#[tokio::test]
async fn b3_mutual_with_subject_alt_names() {
    let httpbin = Httpbin::start().await;
    let certs = Certs::new("cluster.local");
    let server = certs.dns("server", &["secure.example.com"]);
    let allowed = certs.dns("allowed", &["is5.istio.client"]);
    let other = certs.dns("other", &["someone.else"]);
    let mut tls = mutual("mutual");
    tls.subject_alt_names = vec!["is5.istio.client".into()];
    let (_gateway, address) = mutual_gateway(
        tls,
        vec![file_credential("mutual", &server, &certs.root())],
        &httpbin,
    )
    .await;
    let host = "secure.example.com";
    let reply = https_get(
        &certs,
        host,
        address,
        "/headers?show_env=1",
        &["--cert", &allowed.cert, "--key", &allowed.key],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let xfcc = seen["headers"]["X-Forwarded-Client-Cert"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(xfcc.starts_with("Hash="), "{xfcc}");
    assert!(xfcc.contains(";Subject=\""), "{xfcc}");
    assert!(xfcc.contains("DNS=is5.istio.client"), "{xfcc}");
    let hash = &xfcc[5..69];
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    let wrong_san = https_get(
        &certs,
        host,
        address,
        "/status/200",
        &["--cert", &other.cert, "--key", &other.key],
    )
    .await;
    assert_ne!(wrong_san.status, 200, "{wrong_san:?}");
    let no_cert = https_get(&certs, host, address, "/status/200", &[]).await;
    assert_ne!(no_cert.status, 200, "{no_cert:?}");
    // A client certificate from another CA is refused as well.
    let stranger_ca = Certs::new("other.local");
    let stranger = stranger_ca.dns("stranger", &["is5.istio.client"]);
    let foreign = https_get(
        &certs,
        host,
        address,
        "/status/200",
        &["--cert", &stranger.cert, "--key", &stranger.key],
    )
    .await;
    assert_ne!(foreign.status, 200);
}

/// B4: credentialName resolved by discovery into inline PEM; MUTUAL with the CA from the
/// Secret; a new push with new PEM for the same credential changes the certificate for new
/// handshakes while an open connection keeps working.
#[tokio::test]
async fn b4_inline_pem_credentials_update_live() {
    let httpbin = Httpbin::start().await;
    let certs = Certs::new("cluster.local");
    let first = certs.dns("first", &["secure.example.com"]);
    let second = certs.dns("second", &["secure.example.com"]);
    let client = certs.dns("client", &["client.example.com"]);
    let gateway = start(test_options()).await;
    let apply = |version: &str, issued: &Issued| {
        config(
            version,
            vec![listener(
                443,
                vec![https_server(
                    "https.443",
                    &["secure.example.com"],
                    mutual("secret:istio-system/bookinfo-credential"),
                    "https.443",
                )],
            )],
            vec![cluster(8000, "", HTTPBIN, &[httpbin.address])],
            vec![table(
                "https.443",
                httpbin_routes("secure.example.com", 443),
            )],
            vec![pem_credential(
                "secret:istio-system/bookinfo-credential",
                issued,
                &certs.authority.root_pem(),
            )],
        )
    };
    gateway.apply(apply("1", &first)).unwrap();
    let address = gateway.listener_address(443).unwrap();
    let fingerprint = |pem: &str| {
        let der = certs::pem::certificates(pem.as_bytes()).unwrap().remove(0);
        certs::cert_sha256_hex(&der)
    };

    // An open HTTP/1.1 keep-alive connection made before the update.
    let mut open = TlsClient::connect(&certs, &client, address, "secure.example.com").await;
    assert_eq!(open.presented, fingerprint(&first.chain_pem));
    assert_eq!(open.get("/status/200").await, 200);

    gateway.apply(apply("2", &second)).unwrap();
    let fresh = TlsClient::connect(&certs, &client, address, "secure.example.com").await;
    assert_eq!(
        fresh.presented,
        fingerprint(&second.chain_pem),
        "new handshakes see the new certificate"
    );
    assert_eq!(
        open.get("/status/201").await,
        201,
        "the open connection keeps working"
    );
    let no_client_cert = https_get(&certs, "secure.example.com", address, "/status/200", &[]).await;
    assert_ne!(no_client_cert.status, 200);
}

/// A minimal HTTP/1.1-over-TLS client that keeps its connection open between requests.
struct TlsClient {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    presented: String,
}

impl TlsClient {
    async fn connect(certs: &Certs, client: &Issued, address: SocketAddr, name: &str) -> TlsClient {
        let root = certs::pem::certificates(certs.authority.root_pem().as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in root {
            roots.add(cert).unwrap();
        }
        let key = certs::certified_key_from_pem(&client.chain_pem, &client.key_pem).unwrap();
        let chain = key.cert.clone();
        let private = certs::pem::private_key(client.key_pem.as_bytes()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(certs::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, private)
            .unwrap();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let stream = connector
            .connect(
                rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let presented = certs::cert_sha256_hex(&stream.get_ref().1.peer_certificates().unwrap()[0]);
        TlsClient { stream, presented }
    }

    async fn get(&mut self, path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!("GET {path} HTTP/1.1\r\nHost: secure.example.com\r\n\r\n");
        self.stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await.unwrap();
        head.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// B5: protocol versions and cipher suites by OpenSSL name.
#[tokio::test]
async fn b5_versions_and_cipher_suites() {
    let httpbin = Httpbin::start().await;
    let certs = Certs::new("cluster.local");
    let server = certs.dns("server", &["secure.example.com"]);
    let credential = || vec![file_credential("c", &server, "")];
    let host = "secure.example.com";

    let mut only_12 = server_tls(TlsMode::Simple, "c");
    only_12.min_version = proto::TlsVersion::Tlsv12 as i32;
    only_12.max_version = proto::TlsVersion::Tlsv12 as i32;
    let (_g, address) = mutual_gateway(only_12, credential(), &httpbin).await;
    assert_eq!(
        https_get(&certs, host, address, "/status/200", &["--tls-max", "1.2"])
            .await
            .status,
        200
    );
    let refused = https_get(&certs, host, address, "/status/200", &["--tlsv1.3"]).await;
    assert_ne!(
        refused.exit, 0,
        "TLS 1.3 must be refused when max is 1.2: {refused:?}"
    );

    let mut only_13 = server_tls(TlsMode::Simple, "c");
    only_13.min_version = proto::TlsVersion::Tlsv13 as i32;
    let (_g, address) = mutual_gateway(only_13, credential(), &httpbin).await;
    assert_eq!(
        https_get(&certs, host, address, "/status/200", &["--tlsv1.3"])
            .await
            .status,
        200
    );
    assert_ne!(
        https_get(&certs, host, address, "/status/200", &["--tls-max", "1.2"])
            .await
            .exit,
        0
    );

    // A range that allows only TLS 1.0/1.1 cannot be served by rustls: the server is
    // rejected with a reason, never silently widened.
    let mut legacy = server_tls(TlsMode::Simple, "c");
    legacy.min_version = proto::TlsVersion::Tlsv10 as i32;
    legacy.max_version = proto::TlsVersion::Tlsv11 as i32;
    let (gateway, address) = mutual_gateway(legacy, credential(), &httpbin).await;
    assert_ne!(
        https_get(&certs, host, address, "/status/200", &[])
            .await
            .exit,
        0
    );
    let listing = curl(&[&format!(
        "http://{}/listeners?format=table",
        gateway.admin_addresses().admin
    )])
    .await
    .body;
    assert!(
        listing.contains("REJECTED") && listing.contains("1.1"),
        "{listing}"
    );

    // Ciphers (the certificate is ECDSA): a TLS 1.2 client offering only a suite outside
    // the list fails, one offering a listed suite succeeds.
    let mut ciphers = server_tls(TlsMode::Simple, "c");
    ciphers.max_version = proto::TlsVersion::Tlsv12 as i32;
    ciphers.cipher_suites = vec!["ECDHE-ECDSA-AES256-GCM-SHA384".into()];
    let (_g, address) = mutual_gateway(ciphers, credential(), &httpbin).await;
    let ok = https_get(
        &certs,
        host,
        address,
        "/status/200",
        &[
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let other = https_get(
        &certs,
        host,
        address,
        "/status/200",
        &[
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ],
    )
    .await;
    assert_ne!(other.exit, 0, "{other:?}");

    let mut unknown = server_tls(TlsMode::Simple, "c");
    unknown.cipher_suites = vec!["NOT-A-CIPHER".into()];
    let (gateway, _) = mutual_gateway(unknown, credential(), &httpbin).await;
    let listing = curl(&[&format!(
        "http://{}/listeners?format=table",
        gateway.admin_addresses().admin
    )])
    .await
    .body;
    assert!(
        listing.contains("NOT-A-CIPHER"),
        "unknown names are reported: {listing}"
    );
}

/// B6: verifyCertificateSpki and verifyCertificateHash pin client certificates.
#[tokio::test]
async fn b6_client_certificate_pins() {
    let httpbin = Httpbin::start().await;
    let certs = Certs::new("cluster.local");
    let server = certs.dns("server", &["secure.example.com"]);
    let pinned = certs.dns("pinned", &["pinned.client"]);
    let other = certs.dns("other", &["other.client"]);
    let der = certs::pem::certificates(pinned.chain_pem.as_bytes())
        .unwrap()
        .remove(0);
    let host = "secure.example.com";
    let credential = || vec![file_credential("m", &server, &certs.root())];

    let mut spki = mutual("m");
    spki.verify_certificate_spki = vec![certs::spki_sha256_base64(&der).unwrap()];
    let mut hash = mutual("m");
    let hex = certs::cert_sha256_hex(&der);
    // With colons, as openssl prints it.
    hash.verify_certificate_hash = vec![
        hex.as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":"),
    ];
    for tls in [spki, hash] {
        let (_g, address) = mutual_gateway(tls, credential(), &httpbin).await;
        let ok = https_get(
            &certs,
            host,
            address,
            "/status/200",
            &["--cert", &pinned.cert, "--key", &pinned.key],
        )
        .await;
        assert_eq!(ok.status, 200, "{ok:?}");
        let refused = https_get(
            &certs,
            host,
            address,
            "/status/200",
            &["--cert", &other.cert, "--key", &other.key],
        )
        .await;
        assert_ne!(refused.status, 200, "{refused:?}");
    }
}

/// B7: ISTIO_MUTUAL presents the gateway's mesh identity and requires a mesh client
/// certificate; without a mesh identity, or with a credential set alongside, the server is
/// rejected with a reason.
#[tokio::test]
async fn b7_istio_mutual_uses_the_mesh_identity() {
    let httpbin = Httpbin::start().await;
    let certs = Certs::new("cluster.local");
    let own = certs.mesh("gateway", "istio-system", "istio-ingressgateway");
    let client = certs.mesh("client", "default", "sleep");
    let stranger_ca = Certs::new("cluster.local");
    let stranger = stranger_ca.mesh("stranger", "default", "sleep");
    let mut options = test_options();
    options.mesh_identity = Some(gateway::MeshIdentity {
        cert_chain: own.cert.clone().into(),
        private_key: own.key.clone().into(),
        roots: certs.root().into(),
    });
    let gateway = start(options).await;
    let istio_mutual = server_tls(TlsMode::IstioMutual, "");
    let apply = |tls: proto::ServerTls| {
        config(
            "1",
            vec![listener(
                443,
                vec![https_server("https.443", &["*"], tls, "https.443")],
            )],
            vec![cluster(8000, "", HTTPBIN, &[httpbin.address])],
            vec![table("https.443", httpbin_routes("*", 443))],
            vec![],
        )
    };
    gateway.apply(apply(istio_mutual.clone())).unwrap();
    let address = gateway.listener_address(443).unwrap();
    // The mesh certificate has a URI SAN only: curl cannot check a host name, so the
    // handshake is checked with openssl against the mesh root.
    let out = s_client(
        address,
        "mesh.example",
        &[
            "-CAfile",
            &certs.root(),
            "-cert",
            &client.cert,
            "-key",
            &client.key,
        ],
        b"GET /status/418 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("418"), "{out}");
    let out = s_client(
        address,
        "mesh.example",
        &["-CAfile", &certs.root()],
        b"GET /status/418 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        !out.contains("HTTP/1.1 418"),
        "no client certificate must be refused: {out}"
    );
    let out = s_client(
        address,
        "mesh.example",
        &[
            "-CAfile",
            &certs.root(),
            "-cert",
            &stranger.cert,
            "-key",
            &stranger.key,
        ],
        b"GET /status/418 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        !out.contains("HTTP/1.1 418"),
        "a certificate from another mesh must be refused: {out}"
    );

    let mut with_credential = istio_mutual.clone();
    with_credential.credential = "file:x".into();
    gateway.apply(apply(with_credential)).unwrap();
    let listing = curl(&[&format!(
        "http://{}/listeners?format=table",
        gateway.admin_addresses().admin
    )])
    .await
    .body;
    assert!(listing.contains("must not be set alongside"), "{listing}");

    let plain = start(test_options()).await;
    plain.apply(apply(istio_mutual)).unwrap();
    let listing = curl(&[&format!(
        "http://{}/listeners?format=table",
        plain.admin_addresses().admin
    )])
    .await
    .body;
    assert!(
        listing.contains("ISTIO_MUTUAL needs the gateway's mesh identity"),
        "{listing}"
    );
}

/// C3: a TLS server with SIMPLE and a tcp route terminates and forwards bytes.
#[tokio::test]
async fn c3_tls_simple_with_tcp_route_echoes() {
    let echo = echo_backend().await;
    let certs = Certs::new("cluster.local");
    let server = certs.dns("bookinfo", &["bookinfo.com"]);
    let upstream = cluster_name(9000, "", "tcp-echo.default.svc.cluster.local");
    let gateway = start(test_options()).await;
    gateway
        .apply(config(
            "1",
            vec![listener(
                15443,
                vec![tls_tcp_server(
                    "tls.15443",
                    &["bookinfo.com"],
                    server_tls(TlsMode::Simple, "b"),
                    &upstream,
                )],
            )],
            vec![cluster(
                9000,
                "",
                "tcp-echo.default.svc.cluster.local",
                &[echo],
            )],
            vec![],
            vec![file_credential("b", &server, "")],
        ))
        .unwrap();
    let address = gateway.listener_address(15443).unwrap();
    let out = s_client(
        address,
        "bookinfo.com",
        &["-CAfile", &certs.root(), "-quiet", "-no_ign_eof"],
        b"hello through tls\n",
    )
    .await;
    assert!(out.contains("hello through tls"), "{out}");
    let wrong = s_client(
        address,
        "other.com",
        &["-CAfile", &certs.root(), "-quiet", "-no_ign_eof"],
        b"hello\n",
    )
    .await;
    assert!(!wrong.contains("hello\n"), "{wrong}");
    let text = stats(&gateway).await;
    assert!(
        eventually(|| async {
            metric_sum(
                &stats(&gateway).await,
                "istio_tcp_connections_closed_total",
                &[("listener", "0.0.0.0_15443")],
            ) >= 1.0
        })
        .await,
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// OPTIONAL_MUTUAL: clients with or without a certificate are served; a certificate the CA
/// did not issue is still refused. Only the verified one yields XFCC.
#[tokio::test]
async fn optional_mutual_accepts_anonymous_and_verified_clients() {
    let httpbin = Httpbin::start().await;
    let certs = Certs::new("cluster.local");
    let server = certs.dns("server", &["secure.example.com"]);
    let client = certs.dns("client", &["client.example.com"]);
    let stranger_ca = Certs::new("other.local");
    let stranger = stranger_ca.dns("stranger", &["client.example.com"]);
    let (_g, address) = mutual_gateway(
        server_tls(TlsMode::OptionalMutual, "m"),
        vec![file_credential("m", &server, &certs.root())],
        &httpbin,
    )
    .await;
    let host = "secure.example.com";
    let anonymous = https_get(&certs, host, address, "/headers?show_env=1", &[]).await;
    assert_eq!(anonymous.status, 200, "{anonymous:?}");
    assert!(
        !anonymous.body.contains("X-Forwarded-Client-Cert"),
        "{}",
        anonymous.body
    );
    let verified = https_get(
        &certs,
        host,
        address,
        "/headers?show_env=1",
        &["--cert", &client.cert, "--key", &client.key],
    )
    .await;
    assert_eq!(verified.status, 200);
    assert!(
        verified.body.contains("DNS=client.example.com"),
        "{}",
        verified.body
    );
    let foreign = https_get(
        &certs,
        host,
        address,
        "/status/200",
        &["--cert", &stranger.cert, "--key", &stranger.key],
    )
    .await;
    assert_ne!(foreign.status, 200, "{foreign:?}");
}

/// httpsRedirect is per server: on a shared port 80, the host whose server redirects gets
/// 301, the other host is routed.
#[tokio::test]
async fn https_redirect_applies_only_to_its_server_hosts() {
    let backend = Counting::start("backend", 200).await;
    let upstream = cluster_name(80, "", "backend.default.svc.cluster.local");
    let gateway = start(test_options()).await;
    gateway
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![
                    redirecting(http_server(
                        "http-secure",
                        Protocol::Http,
                        &["secure.example.com"],
                        "http.80",
                    )),
                    http_server(
                        "http-plain",
                        Protocol::Http,
                        &["plain.example.com"],
                        "http.80",
                    ),
                ],
            )],
            vec![cluster(
                80,
                "",
                "backend.default.svc.cluster.local",
                &[backend.address],
            )],
            vec![table(
                "http.80",
                vec![
                    vhost(
                        "secure.example.com",
                        80,
                        vec![route("s", vec![], to(&upstream))],
                    ),
                    vhost(
                        "plain.example.com",
                        80,
                        vec![route("p", vec![], to(&upstream))],
                    ),
                ],
            )],
            vec![],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    let secure = curl(&[
        "-H",
        "Host: secure.example.com",
        &format!("http://{address}/a?b=c"),
    ])
    .await;
    assert_eq!(secure.status, 301);
    assert_eq!(
        secure.header("location"),
        Some("https://secure.example.com/a?b=c")
    );
    let plain = curl(&[
        "-H",
        "Host: plain.example.com",
        &format!("http://{address}/a?b=c"),
    ])
    .await;
    assert_eq!(plain.status, 200);
    assert_eq!(backend.count(), 1);
}
