//! Upstream resolution and pooling: ServiceEntry `resolution: DNS` hosts resolved by the
//! gateway itself against an in-test DNS server on 127.0.0.1 (TTL honoured, last good answer
//! kept when DNS fails, a clear 503 when a host never resolved), DestinationRule
//! `connectionPool.http.maxRequestsPerConnection` and `idleTimeout`, and pooled connections
//! the upstream closed; HTTP/2 upstreams sharing one connection until it is retired.
#![allow(clippy::unwrap_used)]

mod http_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gateway::{GatewayHandle, GatewayOptions};
use http_support::dns::DnsServer;
use http_support::*;
use multicluster::proto::{self, Protocol};

const API: &str = "api.example.com";

fn dns_cluster(host: &str, port: u16, target: &str) -> proto::Cluster {
    let mut cluster = cluster(port, "", host, &[]);
    cluster.dns_targets = vec![proto::DnsTarget {
        hostname: target.into(),
        port: u32::from(port),
        weight: 1,
    }];
    cluster
}

/// A gateway on port 80 routing `host` to `cluster`, resolving through `dns`.
async fn gateway_for(dns: &DnsServer, host: &str, cluster: proto::Cluster) -> GatewayHandle {
    let gateway = start(GatewayOptions {
        dns_servers: vec![dns.address],
        ..test_options()
    })
    .await;
    let routes = vec![route("all", vec![uri_prefix("/")], to(&cluster.name))];
    gateway
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &[host], "http.80")],
            )],
            vec![cluster],
            vec![table("http.80", vec![vhost(host, 80, routes)])],
            vec![],
        ))
        .unwrap();
    gateway
}

async fn get(gateway: &GatewayHandle, host: &str) -> Reply {
    let address = gateway.listener_address(80).unwrap();
    curl(&[
        "-H",
        &format!("Host: {host}"),
        &format!("http://{address}/x"),
    ])
    .await
}

/// Polls `check` for up to 15 s (DNS retries back off to several seconds).
async fn within_15s(mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_upstream_follows_the_answer_after_its_ttl_and_survives_dns_failure() {
    let dns = DnsServer::start().await;
    let a = Counting::start("a", 200).await;
    let b_address = SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), a.address.port());
    let b = Counting::start_on("b", 200, b_address).await;
    dns.set(API, &[Ipv4Addr::LOCALHOST], 1);
    let upstream = format!("upstream.{API}");
    dns.set(&upstream, &[Ipv4Addr::LOCALHOST], 1);
    let gateway = gateway_for(&dns, API, dns_cluster(API, a.address.port(), &upstream)).await;

    // The first request right after the push waits for the first answer instead of failing.
    let reply = get(&gateway, API).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with("a "), "{reply:?}");

    // A new answer is used once the old one's TTL (1 s) has run out.
    dns.set(&upstream, &[Ipv4Addr::new(127, 0, 0, 2)], 1);
    let mut switched = false;
    for _ in 0..60 {
        if get(&gateway, API).await.body.starts_with("b ") {
            switched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(switched, "still not following the new DNS answer");
    assert!(b.count() >= 1);

    // DNS fails: after the gateway has seen a failure (its retry proves it processed one),
    // the last good address keeps serving.
    dns.fail();
    let before = dns.a_queries(&upstream);
    assert!(within_15s(|| dns.a_queries(&upstream) >= before + 2).await);
    let reply = get(&gateway, API).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.starts_with("b "), "{reply:?}");

    // A long TTL is honoured: no new query while it is valid, although requests keep coming.
    dns.set(&upstream, &[Ipv4Addr::new(127, 0, 0, 2)], 60);
    let before = dns.a_queries(&upstream);
    assert!(within_15s(|| dns.a_queries(&upstream) > before).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answered = dns.a_queries(&upstream);
    for _ in 0..5 {
        assert_eq!(get(&gateway, API).await.status, 200);
    }
    // Longer than the refresh floor (1 s): a resolver ignoring the TTL would have asked.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(dns.a_queries(&upstream), answered);
    let listed = curl(&[&format!(
        "http://{}/endpoints",
        gateway.admin_addresses().admin
    )])
    .await;
    assert!(
        listed.body.contains(&b_address.to_string()),
        "{}",
        listed.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_never_resolved_gets_a_clear_503_and_flag() {
    let dns = DnsServer::start().await;
    let missing = "missing.example.com";
    let gateway = gateway_for(&dns, API, dns_cluster(API, 8080, missing)).await;
    let reply = get(&gateway, API).await;
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(
        reply.body.contains("no healthy upstream") && reply.body.contains(missing),
        "{reply:?}"
    );
    let text = stats(&gateway).await;
    assert_eq!(
        metric_sum(
            &text,
            "istio_requests_total",
            &[("response_flags", "DF"), ("response_code", "503")]
        ),
        1.0,
        "{text}"
    );
    // Once the name resolves, the same cluster serves.
    let backend = Counting::start("late", 200).await;
    let gateway = gateway_for(&dns, API, dns_cluster(API, backend.address.port(), missing)).await;
    dns.set(missing, &[Ipv4Addr::LOCALHOST], 1);
    let mut served = false;
    for _ in 0..60 {
        if get(&gateway, API).await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the name resolved but requests still fail");
}

/// Six sequential requests over one client connection: with maxRequestsPerConnection 2 the
/// gateway opens at least three upstream connections; without a limit it reuses one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_per_connection_retires_upstream_connections() {
    for (limit, backend_name) in [(Some(2u32), "limited"), (None, "unlimited")] {
        let backend = Counting::start(backend_name, 200).await;
        let mut cluster = cluster(8000, "", API, &[backend.address]);
        cluster.connection_pool = limit.map(|max| proto::ConnectionPool {
            max_requests_per_connection: max,
            ..Default::default()
        });
        let (reply, gateway) = requests(cluster, 6, &[]).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(backend.count(), 6);
        let connections = backend.connections.load(Ordering::SeqCst);
        match limit {
            Some(_) => assert!(connections >= 3, "{connections} connections for 6 requests"),
            None => assert!(
                connections <= 2,
                "{connections} connections without a limit"
            ),
        }
        gateway.shutdown().await;
    }
}

/// `curl` sends `count` requests to `cluster`'s backend through a new gateway: one after the
/// other on one client connection, unless `options` says otherwise.
async fn requests(
    cluster: proto::Cluster,
    count: usize,
    options: &[&str],
) -> (Reply, GatewayHandle) {
    let dns = DnsServer::start().await;
    let gateway = gateway_for(&dns, API, cluster).await;
    let address = gateway.listener_address(80).unwrap();
    let url = format!("http://{address}/x");
    let mut args = vec!["-sS", "-H", "Host: api.example.com"];
    args.extend_from_slice(options);
    args.extend(std::iter::repeat_n(url.as_str(), count));
    (curl(&args).await, gateway)
}

/// An upstream that closes each connection after one reply, without `connection: close`:
/// every request still gets its answer, none is answered 503 for a connection the pool
/// kept but the upstream had already closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_upstream_closed_are_never_lent() {
    let backend = Counting::start_closing("closing", 200).await;
    let (reply, gateway) = requests(cluster(8000, "", API, &[backend.address]), 40, &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.body.matches("closing GET /x").count(),
        40,
        "{reply:?}"
    );
    assert_eq!(backend.count(), 40);
    assert_eq!(backend.connections.load(Ordering::SeqCst), 40);
    gateway.shutdown().await;
}

/// DestinationRule `connectionPool.http.idleTimeout`: the gateway closes an upstream
/// connection idle that long, and the next request opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_close_after_the_idle_timeout() {
    let backend = Counting::start("idle", 200).await;
    let mut cluster = cluster(8000, "", API, &[backend.address]);
    cluster.connection_pool = Some(proto::ConnectionPool {
        idle_timeout_ms: 400,
        ..Default::default()
    });
    let (reply, gateway) = requests(cluster, 3, &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        backend.connections.load(Ordering::SeqCst),
        1,
        "kept alive between requests"
    );
    assert_eq!(backend.closed.load(Ordering::SeqCst), 0);
    let closed = within_15s(|| backend.closed.load(Ordering::SeqCst) == 1).await;
    assert!(closed, "the idle upstream connection is still open");
    assert_eq!(get(&gateway, API).await.status, 200);
    assert_eq!(backend.connections.load(Ordering::SeqCst), 2);
    gateway.shutdown().await;
}

/// An h2c backend counting the connections it accepted; answers every request 200.
async fn start_h2_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    serve_counting(|stream| async move {
        let service = hyper::service::service_fn(
            |request: http::Request<hyper::body::Incoming>| async move {
                let answer = format!("h2 {:?}\n", request.version());
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from(answer),
                )))
            },
        );
        let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await;
    })
    .await
}

/// Accepts connections on a free loopback port, counting them, and serves each with `serve`.
async fn serve_counting<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (address, connections)
}

/// HTTP/2 upstreams: every request shares one connection, until maxRequestsPerConnection
/// retires it and the next request opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_requests_share_a_connection_until_retired() {
    for (limit, expected) in [(None, 1..=1), (Some(2u32), 3..=3)] {
        let (backend, connections) = start_h2_backend().await;
        let mut cluster = cluster(8000, "", API, &[backend]);
        cluster.protocol = Protocol::Http2 as i32;
        cluster.connection_pool = limit.map(|max| proto::ConnectionPool {
            max_requests_per_connection: max,
            ..Default::default()
        });
        let (reply, gateway) = requests(cluster, 6, &[]).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body.matches("h2 HTTP/2.0").count(), 6, "{reply:?}");
        let opened = connections.load(Ordering::SeqCst);
        assert!(
            expected.contains(&opened),
            "{opened} upstream connections for 6 requests with limit {limit:?}"
        );
        gateway.shutdown().await;
    }
}

/// An HTTP/1.1 backend answering every request with a chunked body and a trailer; counts
/// the connections it accepted.
async fn start_trailers_backend() -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    serve_counting(|mut stream| async move {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&chunk[..n]);
            // Bodiless requests only: each head is one request.
            while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                seen.drain(..end + 4);
                let reply = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\
                            trailer: x-checksum\r\n\r\n6\r\nchunk\n\r\n0\r\nx-checksum: 1\r\n\r\n";
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// A chunked response that ends with trailers gives its connection back like any other:
/// sequential requests reuse one upstream connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_ending_in_trailers_give_their_connection_back() {
    let (backend, connections) = start_trailers_backend().await;
    let (reply, gateway) = requests(cluster(8000, "", API, &[backend]), 4, &[]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body.matches("chunk\n").count(), 4, "{reply:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    gateway.shutdown().await;
}

/// Requests arriving together at an HTTP/2 endpoint with no connection yet wait for one
/// connection attempt and share it, instead of each opening a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_http2_requests_open_one_connection() {
    let (backend, connections) = start_h2_backend().await;
    let mut cluster = cluster(8000, "", API, &[backend]);
    cluster.protocol = Protocol::Http2 as i32;
    // Ten client connections at once, each with one request.
    let parallel = ["-Z", "--parallel-immediate", "--parallel-max", "10"];
    let (reply, gateway) = requests(cluster, 10, &parallel).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body.matches("h2 HTTP/2.0").count(), 10, "{reply:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    gateway.shutdown().await;
}
