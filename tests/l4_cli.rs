//! The real `isthmus` binary: `isthmus discovery` and `isthmus gateway` as separate processes,
//! then `isthmus proxy-config listeners|clusters|endpoints` against the gateway's admin port.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::admin;
use support::mesh::{MeshFiles, workload_yaml};
use support::process::{ChildGuard, free_port};
use support::wait;

const ISTHMUS: &str = env!("CARGO_BIN_EXE_isthmus");
const GATEWAY_IP: &str = "127.0.0.13";

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Runs `isthmus proxy-config <what>` and returns its stdout, or `None` if it failed.
fn proxy_config(what: &str, admin: SocketAddr) -> Option<String> {
    let output = Command::new(ISTHMUS)
        .args(["proxy-config", what, "--admin", &admin.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls `isthmus proxy-config <what>` until its table has every one of `rows` (the gateway
/// may still be applying the first push), and returns that table.
async fn table_with(what: &str, admin: SocketAddr, rows: &[&str]) -> String {
    let what_for = format!("proxy-config {what} to list {rows:?}");
    wait::until(&what_for, || async move {
        let table = tokio::task::spawn_blocking({
            let what = what.to_owned();
            move || proxy_config(&what, admin)
        })
        .await
        .unwrap()?;
        rows.iter().all(|row| table.contains(row)).then_some(table)
    })
    .await
}

/// The columns of the first line of `table`, split where istioctl's tab writer pads.
fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .flat_map(|chunk| chunk.split(' ').filter(|word| !word.is_empty()))
        .collect()
}

fn row_with<'a>(table: &'a str, needle: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle} in\n{table}"))
        .split_whitespace()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_config_prints_istio_like_tables_of_a_running_gateway() {
    support::init();
    let files = MeshFiles::from_scenario("l4/eastwest");
    let endpoints: [(&str, &str, &str, SocketAddr); 3] = [
        (
            "cluster1",
            "reviews-v1-a",
            "v1",
            "127.0.0.21:9080".parse().unwrap(),
        ),
        (
            "cluster2",
            "reviews-v2-a",
            "v2",
            "127.0.0.22:9080".parse().unwrap(),
        ),
        (
            "cluster2",
            "reviews-v1-b",
            "v1",
            "127.0.0.24:9080".parse().unwrap(),
        ),
    ];
    for (cluster, pod, version, address) in endpoints {
        let yaml = workload_yaml(
            "default",
            "reviews",
            pod,
            &[("version", version)],
            "tcp-echo",
            address,
        );
        files.write(&format!("{cluster}/workload-{pod}.yaml"), &yaml);
    }

    let grpc = local(free_port("127.0.0.1"));
    let monitor = local(free_port("127.0.0.1"));
    let mut discovery = ChildGuard::spawn(
        "isthmus discovery",
        Command::new(ISTHMUS)
            .arg("discovery")
            .env("ISTHMUS_LOG", "warn")
            .arg("--mesh")
            .arg(files.mesh_path())
            .args([
                "--grpc",
                &grpc.to_string(),
                "--monitor",
                &monitor.to_string(),
            ])
            .stdin(Stdio::null()),
    );
    wait::until_true("discovery to be ready", || async move {
        admin::http_get(monitor, "/healthz/ready").await.0 == 200
    })
    .await;

    let ready = local(free_port("127.0.0.1"));
    let stats = local(free_port("127.0.0.1"));
    let admin_address = local(free_port("127.0.0.1"));
    let listener_port = free_port(GATEWAY_IP);
    let mut gateway = ChildGuard::spawn(
        "isthmus gateway",
        Command::new(ISTHMUS)
            .args(["gateway", "--discovery", &format!("http://{grpc}")])
            .env("ISTHMUS_LOG", "warn")
            .args([
                "--name",
                "istio-eastwestgateway",
                "--cluster",
                "cluster2",
                "--network",
                "network2",
            ])
            .args(["--label", "istio=eastwestgateway"])
            .args(["--listener-address", GATEWAY_IP])
            .args(["--port-map", &format!("15443={listener_port}")])
            .args(["--ready", &ready.to_string(), "--stats", &stats.to_string()])
            .args(["--admin", &admin_address.to_string()])
            .stdin(Stdio::null()),
    );
    wait::until_true("the gateway to be ready", || async move {
        admin::http_get(ready, "/healthz/ready").await.0 == 200
    })
    .await;
    discovery.assert_running();
    gateway.assert_running();

    let listeners = table_with(
        "listeners",
        admin_address,
        &["SNI: outbound_.9080_.v2_.reviews.default.svc.cluster.local"],
    )
    .await;
    assert_eq!(
        header(&listeners),
        ["ADDRESS", "PORT", "MATCH", "DESTINATION"],
        "{listeners}"
    );
    for subset in ["", "v1", "v2"] {
        let sni = format!("outbound_.9080_.{subset}_.reviews.default.svc.cluster.local");
        let row = row_with(&listeners, &format!("SNI: {sni} "));
        assert_eq!(row[0], "0.0.0.0", "{listeners}");
        assert_eq!(row[1], "15443", "{listeners}");
        assert_eq!(
            row[4..],
            [
                "Cluster:",
                &format!("outbound|9080|{subset}|reviews.default.svc.cluster.local")
            ],
            "{listeners}"
        );
    }

    let clusters = table_with(
        "clusters",
        admin_address,
        &["reviews.default.svc.cluster.local"],
    )
    .await;
    assert_eq!(
        header(&clusters),
        [
            "SERVICE",
            "FQDN",
            "PORT",
            "SUBSET",
            "DIRECTION",
            "TYPE",
            "DESTINATION",
            "RULE"
        ],
        "{clusters}"
    );
    let mut subsets: Vec<&str> = clusters
        .lines()
        .filter(|line| line.starts_with("reviews.default.svc.cluster.local "))
        .map(|line| line.split_whitespace().nth(2).unwrap())
        .collect();
    subsets.sort_unstable();
    assert_eq!(subsets, ["-", "v1", "v2"], "{clusters}");

    let endpoint_table = table_with(
        "endpoints",
        admin_address,
        &["127.0.0.22:9080", "127.0.0.24:9080"],
    )
    .await;
    assert_eq!(
        header(&endpoint_table),
        [
            "ENDPOINT", "STATUS", "OUTLIER", "CHECK", "CLUSTER", "NETWORK"
        ],
        "{endpoint_table}"
    );
    let v2 = row_with(&endpoint_table, "outbound|9080|v2|");
    assert_eq!(v2[0], "127.0.0.22:9080", "{endpoint_table}");
    assert_eq!(v2.last(), Some(&"network2"), "{endpoint_table}");
    assert!(
        !endpoint_table.contains("127.0.0.21:9080"),
        "network1's endpoint is not behind network2's gateway:\n{endpoint_table}"
    );

    // The listener really serves where the flags put it.
    let json = admin::http_get(admin_address, "/listeners").await.1;
    assert!(
        json.contains(&format!("{GATEWAY_IP}:{listener_port}")),
        "{json}"
    );
    gateway.assert_running();
    discovery.assert_running();
}

#[test]
fn proxy_config_without_a_gateway_says_where_it_looked() {
    let admin = local(free_port("127.0.0.1"));
    let output = Command::new(ISTHMUS)
        .args(["proxy-config", "listeners", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&admin.to_string()), "{stderr}");
    assert!(stderr.contains("is the gateway running"), "{stderr}");
}
