//! Table tests of the split-horizon endpoint view.

#![allow(clippy::unwrap_used)] // test helpers panic on bad fixtures by design

use std::collections::BTreeMap;
use std::net::IpAddr;

use multicluster::model::{ClusterId, Endpoint, Health, Locality, NetworkGateway, NetworkId};
use multicluster::view::{Exclusion, ViewKind, view_from_network};

const PORT: u16 = 9080;

fn net(id: &str) -> NetworkId {
    NetworkId::new(id).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn endpoint(address: &str, cluster: &str, network: &str) -> Endpoint {
    Endpoint {
        address: ip(address),
        ports: BTreeMap::from([(PORT, 9080)]),
        labels: Default::default(),
        cluster: ClusterId::new(cluster).unwrap(),
        network: net(network),
        locality: Locality::parse("region1/zone1"),
        service_account: "bookinfo-reviews".into(),
        mtls_capable: true,
        health: Health::Healthy,
        weight: 0,
    }
}

fn gateway(address: &str, cluster: &str, network: &str) -> NetworkGateway {
    NetworkGateway {
        network: net(network),
        cluster: ClusterId::new(cluster).unwrap(),
        address: ip(address),
        port: 15443,
    }
}

/// (address, port, weight) rows, the shape a reader checks by eye.
fn rows(view: &multicluster::view::EndpointView) -> Vec<(String, u16, u32)> {
    view.endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.port, e.weight))
        .collect()
}

#[test]
fn local_endpoints_are_dialled_directly() {
    let endpoints = [
        endpoint("10.1.0.1", "c1", "n1"),
        endpoint("10.1.0.2", "c1", "n1"),
    ];
    let view = view_from_network(
        &net("n1"),
        PORT,
        &endpoints,
        &[gateway("192.0.2.2", "c2", "n2")],
    );
    assert_eq!(
        rows(&view),
        [("10.1.0.1".into(), 9080, 1), ("10.1.0.2".into(), 9080, 1)]
    );
    assert!(view.excluded.is_empty());
    assert!(
        matches!(&view.endpoints[0].kind, ViewKind::Direct { cluster } if cluster.as_str() == "c1")
    );
}

#[test]
fn remote_endpoints_collapse_into_their_gateway() {
    let endpoints = [
        endpoint("10.2.0.1", "c2", "n2"),
        endpoint("10.2.0.2", "c2", "n2"),
        endpoint("10.2.0.3", "c2", "n2"),
    ];
    let view = view_from_network(
        &net("n1"),
        PORT,
        &endpoints,
        &[gateway("192.0.2.2", "c2", "n2")],
    );
    assert_eq!(rows(&view), [("192.0.2.2".into(), 15443, 3)]);
    let only = &view.endpoints[0];
    assert_eq!(only.network, net("n2"));
    assert_eq!(
        only.locality,
        Locality::parse("region1/zone1"),
        "locality is kept"
    );
    assert!(matches!(only.kind, ViewKind::Gateway { endpoints: 3, .. }));
}

#[test]
fn mixed_networks_keep_the_endpoint_ratio() {
    let endpoints = [
        endpoint("10.1.0.1", "c1", "n1"),
        endpoint("10.2.0.1", "c2", "n2"),
        endpoint("10.2.0.2", "c2", "n2"),
    ];
    let view = view_from_network(
        &net("n1"),
        PORT,
        &endpoints,
        &[gateway("192.0.2.2", "c2", "n2")],
    );
    assert_eq!(
        rows(&view),
        [("10.1.0.1".into(), 9080, 1), ("192.0.2.2".into(), 15443, 2)]
    );
    // Seen from the other side, the roles swap.
    let view = view_from_network(
        &net("n2"),
        PORT,
        &endpoints,
        &[gateway("192.0.2.1", "c1", "n1")],
    );
    assert_eq!(
        rows(&view),
        [
            ("10.2.0.1".into(), 9080, 1),
            ("10.2.0.2".into(), 9080, 1),
            ("192.0.2.1".into(), 15443, 1)
        ]
    );
}

#[test]
fn two_gateways_split_evenly_in_integers_without_loss() {
    // One local endpoint, three remote behind two gateways: 1 : 3 must survive the split.
    let endpoints = [
        endpoint("10.1.0.1", "c1", "n1"),
        endpoint("10.2.0.1", "c2", "n2"),
        endpoint("10.2.0.2", "c2", "n2"),
        endpoint("10.2.0.3", "c2", "n2"),
    ];
    let gateways = [
        gateway("192.0.2.3", "c2", "n2"),
        gateway("192.0.2.2", "c2", "n2"),
    ];
    let view = view_from_network(&net("n1"), PORT, &endpoints, &gateways);
    assert_eq!(
        rows(&view),
        [
            ("10.1.0.1".into(), 9080, 2),
            ("192.0.2.2".into(), 15443, 3),
            ("192.0.2.3".into(), 15443, 3)
        ]
    );
    let local: u64 = view.endpoints[..1]
        .iter()
        .map(|e| u64::from(e.weight))
        .sum();
    assert_eq!(
        view.total_weight(),
        local * 4,
        "remote share stays exactly 3/4"
    );
}

#[test]
fn gateways_of_different_sizes_scale_by_common_multiple() {
    let endpoints = [
        endpoint("10.1.0.1", "c1", "n1"),
        endpoint("10.2.0.1", "c2", "n2"),
        endpoint("10.3.0.1", "c3", "n3"),
    ];
    let gateways = [
        gateway("192.0.2.2", "c2", "n2"),
        gateway("192.0.2.3", "c2", "n2"),
        gateway("192.0.3.1", "c3", "n3"),
        gateway("192.0.3.2", "c3", "n3"),
        gateway("192.0.3.3", "c3", "n3"),
    ];
    let view = view_from_network(&net("n1"), PORT, &endpoints, &gateways);
    // lcm(2, 3) = 6: each network's single endpoint is worth 6, split 3+3 and 2+2+2.
    assert_eq!(
        rows(&view),
        [
            ("10.1.0.1".into(), 9080, 6),
            ("192.0.2.2".into(), 15443, 3),
            ("192.0.2.3".into(), 15443, 3),
            ("192.0.3.1".into(), 15443, 2),
            ("192.0.3.2".into(), 15443, 2),
            ("192.0.3.3".into(), 15443, 2)
        ]
    );
}

#[test]
fn network_without_gateway_is_left_out_and_reported() {
    let endpoints = [
        endpoint("10.1.0.1", "c1", "n1"),
        endpoint("10.3.0.1", "c3", "n3"),
    ];
    let view = view_from_network(
        &net("n1"),
        PORT,
        &endpoints,
        &[gateway("192.0.2.2", "c2", "n2")],
    );
    assert_eq!(rows(&view), [("10.1.0.1".into(), 9080, 1)]);
    assert_eq!(view.excluded.len(), 1);
    assert_eq!(view.excluded[0].address, ip("10.3.0.1"));
    assert_eq!(view.excluded[0].network, net("n3"));
    assert_eq!(view.excluded[0].reason, Exclusion::NoGateway);
}

#[test]
fn non_mtls_endpoints_are_never_reached_across_networks() {
    let mut plain_remote = endpoint("10.2.0.9", "c2", "n2");
    plain_remote.mtls_capable = false;
    let mut plain_local = endpoint("10.1.0.9", "c1", "n1");
    plain_local.mtls_capable = false;
    let endpoints = [plain_local, plain_remote, endpoint("10.2.0.1", "c2", "n2")];
    let view = view_from_network(
        &net("n1"),
        PORT,
        &endpoints,
        &[gateway("192.0.2.2", "c2", "n2")],
    );
    assert_eq!(
        rows(&view),
        [("10.1.0.9".into(), 9080, 1), ("192.0.2.2".into(), 15443, 1)],
        "the local plain endpoint stays reachable; the remote one adds no weight"
    );
    assert_eq!(view.excluded.len(), 1);
    assert_eq!(view.excluded[0].reason, Exclusion::NotMtlsCapable);
}

#[test]
fn localities_get_their_own_gateway_entries() {
    let mut far = endpoint("10.2.0.2", "c2", "n2");
    far.locality = Locality::parse("region2/zone9");
    let endpoints = [endpoint("10.2.0.1", "c2", "n2"), far];
    let view = view_from_network(
        &net("n1"),
        PORT,
        &endpoints,
        &[gateway("192.0.2.2", "c2", "n2")],
    );
    let localities: Vec<String> = view
        .endpoints
        .iter()
        .map(|e| e.locality.to_string())
        .collect();
    assert_eq!(localities, ["region1/zone1", "region2/zone9"]);
    assert_eq!(view.total_weight(), 2);
}

#[test]
fn unhealthy_and_portless_endpoints_are_reported() {
    let mut sick = endpoint("10.2.0.2", "c2", "n2");
    sick.health = Health::Unhealthy;
    let mut other_port = endpoint("10.1.0.2", "c1", "n1");
    other_port.ports = BTreeMap::from([(8080, 8080)]);
    let mut weighted = endpoint("10.2.0.1", "c2", "n2");
    weighted.weight = 5;
    let view = view_from_network(
        &net("n1"),
        PORT,
        &[sick, other_port, weighted],
        &[gateway("192.0.2.2", "c2", "n2")],
    );
    assert_eq!(rows(&view), [("192.0.2.2".into(), 15443, 5)]);
    let reasons: Vec<Exclusion> = view.excluded.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, [Exclusion::Unhealthy, Exclusion::NoSuchPort]);
}
