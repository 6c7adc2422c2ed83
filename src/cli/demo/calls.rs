//! The demo's calls through the network1 client's proxy, the checks on what came back, and
//! the printed report.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::backend::Answer;
use super::files::Workdir;
use super::topology::{CLIENT_ADMIN, CLIENT_PROXY, GATEWAY_HOST, Running};

const REVIEWS: &str = "http://reviews.default.svc.cluster.local:9080/";
const RATINGS: &str = "http://ratings.default.svc.cluster.local:9080/";
/// How long the mesh may take to converge (first pushes) before the checks start.
const READY_WITHIN: Duration = Duration::from_secs(20);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Check {
    pub title: String,
    pub passed: bool,
    pub detail: Vec<String>,
}

pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn all_passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }
}

/// One GET through the HTTP proxy at `proxy`, optionally asking for a subset.
pub async fn call(proxy: SocketAddr, url: &str, subset: Option<&str>) -> Result<Answer, String> {
    let attempt = async {
        let stream = TcpStream::connect(proxy)
            .await
            .map_err(|error| format!("cannot reach the proxy at {proxy}: {error}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("proxy handshake: {error}"))?;
        tokio::spawn(connection);
        let uri: hyper::Uri = url.parse().map_err(|error| format!("{url}: {error}"))?;
        let mut request = hyper::Request::get(uri.clone()).header(
            hyper::header::HOST,
            uri.authority().map_or("", |a| a.as_str()),
        );
        if let Some(subset) = subset {
            request = request.header("isthmus-subset", subset);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("reading the answer: {error}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            return Err(format!("{status}: {}", text.trim()));
        }
        Answer::parse(&text).ok_or_else(|| format!("not a sample backend's answer: {text:?}"))
    };
    tokio::time::timeout(CALL_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CALL_TIMEOUT:?}")))
}

/// Calls until one succeeds: discovery's first pushes take a moment to reach every proxy.
async fn wait_until_ready() -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < READY_WITHIN {
        let reviews = call(CLIENT_PROXY, REVIEWS, None).await;
        let ratings = call(CLIENT_PROXY, RATINGS, None).await;
        match (reviews, ratings) {
            (Ok(_), Ok(_)) => return Ok(()),
            (Err(error), _) | (_, Err(error)) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the mesh did not answer within {READY_WITHIN:?}: {last}"
    ))
}

struct Tally {
    backends: BTreeMap<String, usize>,
    callers: BTreeMap<String, usize>,
    failures: Vec<String>,
}

async fn tally(url: &str, subset: Option<&str>, calls: usize) -> Tally {
    let mut tally = Tally {
        backends: BTreeMap::new(),
        callers: BTreeMap::new(),
        failures: Vec::new(),
    };
    for _ in 0..calls {
        match call(CLIENT_PROXY, url, subset).await {
            Ok(answer) => {
                *tally.backends.entry(answer.backend).or_default() += 1;
                *tally.callers.entry(answer.caller).or_default() += 1;
            }
            Err(error) => tally.failures.push(error),
        }
    }
    tally
}

fn describe(tally: &Tally) -> Vec<String> {
    let counts = |map: &BTreeMap<String, usize>| {
        map.iter()
            .map(|(name, count)| format!("{name} ×{count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = vec![
        format!("answered by: {}", counts(&tally.backends)),
        format!("caller seen by the backend: {}", counts(&tally.callers)),
    ];
    let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
    for failure in &tally.failures {
        *failures.entry(failure.as_str()).or_default() += 1;
    }
    for (failure, count) in failures {
        lines.push(format!("FAILED ×{count}: {failure}"));
    }
    lines
}

pub async fn run_checks(running: &Running, calls: usize) -> Report {
    let mut checks = Vec::new();
    let client = running.client_identity.uri();
    checks.push(match &running.renewal {
        Ok((before, after)) => Check {
            title: "productpage renewed its certificate with a CSR to discovery (mTLS, cluster1's intermediate)".into(),
            passed: after != before,
            detail: vec![format!(
                "the bootstrap certificate expires at {}; the renewed one at {}",
                humanize(*before),
                humanize(*after)
            )],
        },
        Err(error) => Check {
            title: "productpage renewed its certificate with a CSR to discovery".into(),
            passed: false,
            detail: vec![error.clone()],
        },
    });
    if let Err(error) = wait_until_ready().await {
        checks.push(Check {
            title: "the mesh converged".into(),
            passed: false,
            detail: vec![error],
        });
        return Report { checks };
    }

    let gateway2_before = gateway_connections(2).await;
    let reviews = tally(REVIEWS, None, calls).await;
    let gateway2_after = gateway_connections(2).await;
    let only_network2 = reviews.backends.keys().all(|b| b.starts_with("reviews-v"));
    checks.push(Check {
        title: format!(
            "network1 → reviews (endpoints only in network2, via network2's gateway 127.0.2.{GATEWAY_HOST}:15443)"
        ),
        passed: reviews.failures.is_empty()
            && only_network2
            && reviews.backends.len() == 2
            && reviews.callers.keys().all(|caller| caller == &client)
            && gateway2_after.saturating_sub(gateway2_before) >= calls as u64,
        detail: {
            let mut lines = describe(&reviews);
            lines.push(format!(
                "network2's gateway counted {} new passthrough connections (istio_tcp_connections_opened_total)",
                gateway2_after.saturating_sub(gateway2_before)
            ));
            lines
        },
    });

    let subset = tally(REVIEWS, Some("v2"), calls).await;
    checks.push(Check {
        title: "network1 → reviews subset v2 (isthmus-subset: v2) lands only on v2".into(),
        passed: subset.failures.is_empty()
            && subset.backends.len() == 1
            && subset.backends.keys().all(|b| b.starts_with("reviews-v2")),
        detail: describe(&subset),
    });

    let ratings = tally(RATINGS, None, calls).await;
    checks.push(Check {
        title: "network1 → ratings (endpoints in both networks) lands in both".into(),
        passed: ratings.failures.is_empty()
            && ratings.backends.keys().any(|b| b.contains("network1"))
            && ratings.backends.keys().any(|b| b.contains("network2"))
            && ratings.callers.keys().all(|caller| caller == &client),
        detail: describe(&ratings),
    });
    Report { checks }
}

/// Connections network`n`'s east-west gateway has opened so far, from its Prometheus endpoint.
async fn gateway_connections(network: u8) -> u64 {
    let address = SocketAddr::from(([127, 0, network, GATEWAY_HOST], 15090));
    let fetch = async {
        let stream = TcpStream::connect(address).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let request = hyper::Request::get("/stats/prometheus")
            .header(hyper::header::HOST, address.to_string())
            .body(Empty::<Bytes>::new())
            .ok()?;
        let body = sender
            .send_request(request)
            .await
            .ok()?
            .into_body()
            .collect()
            .await
            .ok()?;
        Some(String::from_utf8_lossy(&body.to_bytes()).into_owned())
    };
    let text = tokio::time::timeout(CALL_TIMEOUT, fetch)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("istio_tcp_connections_opened_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        // Counters are whole numbers written in Prometheus' float format.
        .map(|value| value as u64)
        .sum()
}

fn humanize(time: std::time::SystemTime) -> String {
    match time.duration_since(std::time::SystemTime::now()) {
        Ok(left) => format!("now + {}s", left.as_secs()),
        Err(past) => format!("now - {}s", past.duration().as_secs()),
    }
}

pub fn print_report(running: &Running, workdir: &Workdir, report: &Report) {
    println!("Isthmus demo: two clusters on two networks, on this machine, without Kubernetes\n");
    println!(
        "  discovery        {} (mesh mTLS; also signs CSRs)",
        running.discovery.grpc_address()
    );
    println!(
        "  network1         client productpage (proxy {CLIENT_PROXY}), ratings-c1 at 127.0.1.3:9080, east-west gateway 127.0.1.{GATEWAY_HOST}:15443"
    );
    println!(
        "  network2         reviews-v1 at 127.0.2.2:9080, reviews-v2 at 127.0.2.3:9080, ratings-c2 at 127.0.2.4:9080, east-west gateway 127.0.2.{GATEWAY_HOST}:15443"
    );
    println!("  mesh files       {}", workdir.path().display());
    println!(
        "  bootstrap        each workload's first certificate was written out of band (certs::write_workload_files, as `isthmus certs` does for CAs);"
    );
    println!("                   renewals are CSRs over mTLS to discovery\n");
    for check in &report.checks {
        let mark = if check.passed { "PASS" } else { "FAIL" };
        println!("[{mark}] {}", check.title);
        for line in &check.detail {
            println!("       {line}");
        }
    }
    println!(
        "\nNote: 127.0.1.x and 127.0.2.x are both loopback, so nothing here stops a direct call from\n\
         network1 to network2. The proof that calls cross only through the east-west gateways is the\n\
         network-namespace test: `sudo cargo test --test netns_eastwest`."
    );
    println!("\nTry this (with `isthmus demo --keep-running` in another terminal):");
    println!("  curl -x http://{CLIENT_PROXY} http://reviews.default.svc.cluster.local:9080/");
    println!(
        "  curl -x http://{CLIENT_PROXY} --proxy-header 'isthmus-subset: v1' http://reviews.default.svc.cluster.local:9080/"
    );
    println!("  curl -x http://{CLIENT_PROXY} http://ratings.default.svc.cluster.local:9080/");
    println!(
        "  isthmus proxy-config listeners --admin 127.0.2.{GATEWAY_HOST}:15000   # network2's east-west gateway"
    );
    println!(
        "  isthmus proxy-config endpoints --admin {CLIENT_ADMIN}   # what the client sees per network"
    );
    println!("  curl -s http://127.0.2.{GATEWAY_HOST}:15090/stats/prometheus | grep istio_tcp");
    println!(
        "  isthmus validate {}/cluster2/istio.yaml",
        workdir.path().display()
    );
}
