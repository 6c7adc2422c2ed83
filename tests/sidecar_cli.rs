//! The real `isthmus sidecar` binary, driven by curl the way an application would use it:
//! `curl -x` (absolute-form), `curl -p -x` (CONNECT) and `--proxy-header 'isthmus-subset: v1'`,
//! with workload certificate files as `certs::write_workload_files` lays them out and an
//! in-process discovery serving the mesh.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

#[path = "../gateway/tests/sidecar_support/mod.rs"]
mod sidecar_support;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use certs::Identity;
use sidecar_support::*;
use support::mesh::{MeshFiles, workload_yaml};
use support::process::{ChildGuard, available, free_port};
use support::wait;

const ISTHMUS: &str = env!("CARGO_BIN_EXE_isthmus");
const INBOUND_IP: &str = "127.0.0.45";

fn write_workload(pki: &MeshPki, service_account: &str, dir: &Path) {
    let identity = Identity::new(TRUST_DOMAIN, "default", service_account).unwrap();
    let issued = pki
        .cluster1
        .issue_workload(&identity, Duration::from_secs(3600))
        .unwrap();
    certs::write_workload_files(dir, &issued, &pki.root, false).unwrap();
}

fn sidecar_command(certs: &Path, service_account: &str) -> Command {
    let mut command = Command::new(ISTHMUS);
    command
        .args([
            "sidecar",
            "--name",
            "productpage-v1-a",
            "--namespace",
            "default",
        ])
        .args(["--cluster", "cluster1", "--network", "network1"])
        .args(["--service-account", service_account])
        .arg("--cert-chain")
        .arg(certs.join("cert-chain.pem"))
        .arg("--key")
        .arg(certs.join("key.pem"))
        .arg("--root-cert")
        .arg(certs.join("root-cert.pem"))
        .stdin(Stdio::null());
    command
}

/// curl through the sidecar's proxy port; returns (HTTP status, body).
fn curl(proxy: SocketAddr, args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
            "-x",
            &format!("http://{proxy}"),
        ])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn a_certificate_for_another_workload_is_refused_at_startup() {
    let pki = MeshPki::new();
    let dir = tempfile::tempdir().unwrap();
    write_workload(&pki, "ratings", dir.path());
    let output = sidecar_command(dir.path(), "productpage")
        .args([
            "--outbound",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--ready",
            "127.0.0.1:0",
            "--stats",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is for spiffe://cluster.local/ns/default/sa/ratings, but this workload is spiffe://cluster.local/ns/default/sa/productpage"),
        "{stderr}"
    );

    let output = Command::new(ISTHMUS)
        .args(["sidecar", "--inbound", "10.0.0.1:9080"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("<listen addr:port>=<app addr:port>"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_the_mesh_through_the_sidecar_binary() {
    assert!(available("curl"), "curl is needed (apt-get install curl)");
    support::init();
    let pki = MeshPki::new();
    let dir = tempfile::tempdir().unwrap();
    write_workload(&pki, "productpage", dir.path());
    let app = App::http_echo("productpage-v1").await;

    // The binary's own inbound is the only endpoint of the service, so a call through its
    // outbound port comes back to it over mesh mTLS and reaches the app.
    let inbound: SocketAddr = format!("{INBOUND_IP}:{}", free_port(INBOUND_IP))
        .parse()
        .unwrap();
    let files = MeshFiles::from_scenario("sidecar/eastwest");
    let yaml = workload_yaml(
        "default",
        "reviews",
        "reviews-v1-a",
        &[("version", "v1")],
        "http",
        inbound,
    )
    .replace(
        "serviceAccountName: reviews",
        "serviceAccountName: productpage",
    );
    files.write("cluster1/workload-reviews-v1-a.yaml", &yaml);
    let discovery = files.start_discovery().await;

    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let outbound = local(free_port("127.0.0.1"));
    let admin = local(free_port("127.0.0.1"));
    let mut child = ChildGuard::spawn(
        "isthmus sidecar",
        sidecar_command(dir.path(), "productpage")
            .args(["--discovery", &discovery.grpc_uri()])
            .args(["--outbound", &outbound.to_string()])
            .args(["--inbound", &format!("{inbound}={},http", app.address)])
            .args(["--admin", &admin.to_string()])
            .args(["--ready", &local(free_port("127.0.0.1")).to_string()])
            .args(["--stats", &local(free_port("127.0.0.1")).to_string()])
            // Requests are logged at info; warnings are what a failing run needs.
            .env("ISTHMUS_LOG", "warn")
            .stdout(Stdio::null()),
    );

    let url = format!("http://{REVIEWS}:9080/details");
    let body = wait::until("the sidecar to serve reviews", || {
        let url = url.clone();
        async move {
            let (code, body) = tokio::task::spawn_blocking(move || curl(outbound, &[&url]))
                .await
                .unwrap();
            (code == 200).then_some(body)
        }
    })
    .await;
    child.assert_running();
    assert!(
        body.starts_with("app=productpage-v1\nGET /details\n"),
        "{body}"
    );
    let xfcc = echoed(&body, "x-forwarded-client-cert");
    assert!(
        xfcc.len() == 1
            && xfcc[0].ends_with(";URI=spiffe://cluster.local/ns/default/sa/productpage"),
        "{body}"
    );

    let blocking = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl(outbound, &args)
        })
    };
    // CONNECT tunnel (curl -p), the short name, and the subset header.
    let (code, body) = blocking(vec![
        "-p".into(),
        "--proxy-header".into(),
        "isthmus-subset: v1".into(),
        "http://reviews.default:9080/tunnelled".into(),
    ])
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("GET /tunnelled\n"), "{body}");

    // A subset nobody defined, and a target outside the mesh: clear 404s.
    let (code, body) = blocking(vec![
        "--proxy-header".into(),
        "isthmus-subset: v7".into(),
        url.clone(),
    ])
    .await
    .unwrap();
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("subset v7"), "{body}");
    let (code, body) = blocking(vec![format!("http://{}/", app.address)])
        .await
        .unwrap();
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("is an IP address"), "{body}");
    assert_eq!(app.accepted(), 2, "only the two mesh calls reached the app");

    // The gateway's admin tooling reads a sidecar's clusters the same way.
    let output = Command::new(ISTHMUS)
        .args(["proxy-config", "endpoints", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    let row = table
        .lines()
        .find(|line| line.contains(&inbound.to_string()) && line.contains("outbound|9080|v1|"))
        .unwrap_or_else(|| panic!("no v1 row for {inbound}:\n{table}"));
    assert!(row.contains("HEALTHY"), "{row}");
}
