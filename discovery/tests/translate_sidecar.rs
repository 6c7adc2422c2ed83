//! Translation for workload proxies (`Role::Sidecar`) over the east-west scenario: no
//! listeners, and for every (service, port[, subset]) the split-horizon endpoints of the
//! sidecar's network — local workloads directly, other networks through their gateways.

#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures are ours; a panic names the broken one

use std::path::Path;

use discovery::mesh_config::MeshConfig;
use discovery::source::load_once;
use discovery::translate::translate;
use multicluster::proto::{GatewayConfig, GatewayIdentity, Role};

fn sidecar_config(cluster: &str, network: &str) -> GatewayConfig {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/translate/eastwest");
    let mesh = MeshConfig::load(&dir.join("mesh.yaml")).expect("mesh description loads");
    let snapshot = load_once(&mesh);
    let identity = GatewayIdentity {
        name: "productpage-v1-a".into(),
        namespace: "default".into(),
        cluster: cluster.into(),
        network: network.into(),
        role: Role::Sidecar as i32,
        ..Default::default()
    };
    let mut config = translate(&snapshot, &identity).config;
    config.version = "test".into();
    config
}

/// `address:port weight=w [gateway] sa=...` per endpoint, in the order the config holds them.
fn endpoints(config: &GatewayConfig, cluster: &str) -> Vec<String> {
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .unwrap_or_else(|| {
            panic!(
                "no cluster {cluster}; have {:?}",
                config.clusters.iter().map(|c| &c.name).collect::<Vec<_>>()
            )
        });
    cluster
        .endpoints
        .iter()
        .map(|e| {
            let kind = if e.network_gateway { " gateway" } else { "" };
            format!(
                "{}:{} weight={}{kind} network={} sa={}",
                e.address, e.port, e.weight, e.network, e.service_account
            )
        })
        .collect()
}

#[test]
fn network1_sidecar_sees_local_reviews_directly_and_network2_through_its_gateway() {
    let config = sidecar_config("cluster1", "network1");
    assert!(
        config.listeners.is_empty(),
        "a sidecar's listeners come from its CLI: {:?}",
        config.listeners
    );
    assert!(
        multicluster::validate(&config).is_empty(),
        "{:#?}",
        multicluster::validate(&config)
    );
    assert_eq!(
        endpoints(&config, "outbound|9080||reviews.default.svc.cluster.local"),
        [
            "10.10.1.1:9080 weight=1 network=network1 sa=bookinfo-reviews",
            "192.0.2.2:15443 weight=2 gateway network=network2 sa=",
        ]
    );
    assert_eq!(
        endpoints(
            &config,
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        ),
        ["10.10.1.1:9080 weight=1 network=network1 sa=bookinfo-reviews"]
    );
    assert_eq!(
        endpoints(
            &config,
            "outbound|9080|v2|reviews.default.svc.cluster.local"
        ),
        ["192.0.2.2:15443 weight=2 gateway network=network2 sa="]
    );
    // A service that only lives in network2 is reachable only through network2's gateway.
    assert_eq!(
        endpoints(
            &config,
            "outbound|9080||productpage.istio.svc.cluster.local"
        ),
        ["192.0.2.2:15443 weight=1 gateway network=network2 sa="]
    );
}

#[test]
fn network2_sidecar_sees_the_mirror_image() {
    let config = sidecar_config("cluster2", "network2");
    assert_eq!(
        endpoints(&config, "outbound|9080||reviews.default.svc.cluster.local"),
        [
            "10.20.1.1:9080 weight=1 network=network2 sa=bookinfo-reviews",
            "10.20.1.2:9080 weight=1 network=network2 sa=bookinfo-reviews",
            "192.0.2.1:15443 weight=1 gateway network=network1 sa=",
        ]
    );
    assert_eq!(
        endpoints(
            &config,
            "outbound|9080|v2|reviews.default.svc.cluster.local"
        ),
        [
            "10.20.1.1:9080 weight=1 network=network2 sa=bookinfo-reviews",
            "10.20.1.2:9080 weight=1 network=network2 sa=bookinfo-reviews",
        ]
    );
}

#[test]
fn every_service_port_and_subset_gets_a_cluster_and_the_cluster_names_are_istio_keys() {
    let config = sidecar_config("cluster1", "network1");
    let names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "outbound|9080||reviews.default.svc.cluster.local",
        "outbound|9080|v1|reviews.default.svc.cluster.local",
        "outbound|9080|v2|reviews.default.svc.cluster.local",
        "outbound|9080||productpage.istio.svc.cluster.local",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // The gateway's own Service is a mesh service too, but has no workloads behind port 15443
    // in the scenario, so its cluster is present and empty rather than pointing anywhere.
    let reviews = config
        .clusters
        .iter()
        .find(|c| c.name == "outbound|9080|v1|reviews.default.svc.cluster.local")
        .unwrap();
    assert_eq!(
        (
            reviews.service.as_str(),
            reviews.port,
            reviews.subset.as_str()
        ),
        ("reviews.default.svc.cluster.local", 9080, "v1")
    );
}

#[test]
fn a_gateway_role_still_gets_listeners_and_no_gateway_endpoints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/translate/eastwest");
    let snapshot = load_once(&MeshConfig::load(&dir.join("mesh.yaml")).unwrap());
    let identity = GatewayIdentity {
        name: "istio-eastwestgateway".into(),
        namespace: "istio-system".into(),
        labels: [("istio".to_owned(), "eastwestgateway".to_owned())].into(),
        cluster: "cluster1".into(),
        network: "network1".into(),
        role: Role::Gateway as i32,
    };
    let config = translate(&snapshot, &identity).config;
    assert!(!config.listeners.is_empty());
    // A role this discovery does not know (a newer proxy) is served as a gateway.
    let unknown = GatewayIdentity {
        role: 7,
        ..identity.clone()
    };
    assert_eq!(translate(&snapshot, &unknown).config, config);
    assert!(
        config
            .clusters
            .iter()
            .flat_map(|c| &c.endpoints)
            .all(|e| !e.network_gateway)
    );
}

#[test]
fn remote_workloads_without_a_gateway_are_reported_not_silently_dropped() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/translate/eastwest");
    let mut snapshot = load_once(&MeshConfig::load(&dir.join("mesh.yaml")).unwrap());
    snapshot
        .network_gateways
        .retain(|gateway| gateway.network.as_str() != "network2");
    let identity = GatewayIdentity {
        name: "productpage-v1-a".into(),
        namespace: "default".into(),
        cluster: "cluster1".into(),
        network: "network1".into(),
        role: Role::Sidecar as i32,
        ..Default::default()
    };
    let config = translate(&snapshot, &identity).config;
    assert_eq!(
        endpoints(&config, "outbound|9080||reviews.default.svc.cluster.local"),
        ["10.10.1.1:9080 weight=1 network=network1 sa=bookinfo-reviews"]
    );
    assert!(
        endpoints(
            &config,
            "outbound|9080|v2|reviews.default.svc.cluster.local"
        )
        .is_empty()
    );
    let reasons: Vec<&str> = config
        .rejections
        .iter()
        .filter(|r| r.kind == "Service" && r.name == "reviews" && r.field == "endpoints[10.20.1.1]")
        .map(|r| r.reason.as_str())
        .collect();
    assert!(
        reasons.iter().any(|reason| reason.starts_with("warning: endpoint 10.20.1.1 (cluster cluster2, network network2) is left out of outbound_.9080_.v2_.reviews.default.svc.cluster.local: network network2 has no east-west gateway")),
        "{reasons:#?}"
    );
}
