//! The mesh index over the two-cluster test mesh in `testdata/mesh`.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use discovery::istio::service_entry::{Location, Resolution};
use discovery::mesh::{MeshSnapshot, ServiceOrigin, ServiceRecord, Severity, SyncState};
use discovery::mesh_config::MeshConfig;
use discovery::source::load_once;
use multicluster::model::{
    ClusterId, Endpoint, Health, NetworkGateway, NetworkId, Protocol, TargetPort,
};

fn testdata_mesh() -> MeshSnapshot {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/mesh/mesh.yaml");
    let config = MeshConfig::load(&path).expect("testdata mesh description loads");
    load_once(&config)
}

fn service<'a>(snapshot: &'a MeshSnapshot, hostname: &str) -> &'a ServiceRecord {
    snapshot
        .service(hostname)
        .unwrap_or_else(|| panic!("{hostname} missing; have {:?}", snapshot.services.keys()))
}

fn endpoint<'a>(record: &'a ServiceRecord, address: &str) -> &'a Endpoint {
    let address: IpAddr = address.parse().unwrap();
    record
        .endpoints
        .iter()
        .find(|endpoint| endpoint.address == address)
        .unwrap_or_else(|| panic!("no endpoint {address} in {}", record.service.hostname))
}

fn ports(pairs: &[(u16, u16)]) -> BTreeMap<u16, u16> {
    pairs.iter().copied().collect()
}

fn cluster(id: &str) -> ClusterId {
    ClusterId::new(id).unwrap()
}

fn network(id: &str) -> NetworkId {
    NetworkId::new(id).unwrap()
}

#[test]
fn index_reads_both_clusters() {
    let snapshot = testdata_mesh();
    assert_eq!(snapshot.generation, 1);
    assert_eq!(snapshot.domain_suffix, "cluster.local");
    let ids: Vec<&str> = snapshot.clusters.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["cluster1", "cluster2"]);
    for info in &snapshot.clusters {
        assert_eq!(info.sync, SyncState::Synced, "{}", info.id);
    }
    let cluster1 = snapshot.cluster("cluster1").unwrap();
    assert_eq!(cluster1.network, network("network1"));
    assert_eq!(cluster1.resources.get("Pod"), Some(&4));
    assert_eq!(cluster1.resources.get("Service"), Some(&5));
    assert_eq!(cluster1.resources.get("Secret"), Some(&1));
    let cluster2 = snapshot.cluster("cluster2").unwrap();
    assert_eq!(
        cluster2.resources.get("Namespace"),
        Some(&2),
        "List items count"
    );
    assert!(cluster2.source.starts_with("files: "));
}

#[test]
fn index_services_have_fqdn_ports_and_protocols() {
    let snapshot = testdata_mesh();
    let productpage = service(&snapshot, "productpage.bookinfo.svc.cluster.local");
    assert_eq!(productpage.origin, ServiceOrigin::Kubernetes);
    assert_eq!(productpage.service.name.to_string(), "bookinfo/productpage");
    assert_eq!(productpage.service.clusters, [cluster("cluster1")]);
    let port = productpage.service.port(9080).unwrap();
    assert_eq!(port.protocol, Protocol::Http);
    assert_eq!(port.target_port, TargetPort::Number(9080));

    // Same namespace/name in both clusters: one service, ports merged by number.
    let reviews = service(&snapshot, "reviews.bookinfo.svc.cluster.local");
    assert_eq!(
        reviews.service.clusters,
        [cluster("cluster1"), cluster("cluster2")]
    );
    let numbers: Vec<u16> = reviews.service.ports.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [9080, 9090]);
    assert_eq!(reviews.service.port(9090).unwrap().protocol, Protocol::Grpc);

    let ratings = service(&snapshot, "ratings.bookinfo.svc.cluster.local");
    assert_eq!(
        ratings.service.port(9080).unwrap().target_port,
        TargetPort::Name("http-ratings".to_string())
    );

    // UDP ports are not part of the mesh.
    let dns = service(&snapshot, "kube-dns.kube-system.svc.cluster.local");
    assert_eq!(dns.service.ports.len(), 1);
    assert_eq!(dns.service.ports[0].name.as_deref(), Some("dns-tcp"));
    assert_eq!(dns.service.ports[0].protocol, Protocol::Tcp);
}

#[test]
fn index_endpoints_carry_identity_locality_network_and_health() {
    let snapshot = testdata_mesh();
    let productpage = service(&snapshot, "productpage.bookinfo.svc.cluster.local");
    let page = endpoint(productpage, "10.10.1.5");
    assert_eq!(page.cluster, cluster("cluster1"));
    // No pod label: the system namespace's label decides.
    assert_eq!(page.network, network("network1"));
    assert_eq!(page.locality.to_string(), "us-east1/us-east1-b");
    assert_eq!(page.service_account, "bookinfo-productpage");
    assert!(page.mtls_capable);
    assert_eq!(page.health, Health::Healthy);
    assert_eq!(page.ports, ports(&[(9080, 9080)]));
    assert_eq!(page.labels.get("version").map(String::as_str), Some("v1"));

    let reviews = service(&snapshot, "reviews.bookinfo.svc.cluster.local");
    let addresses: Vec<String> = reviews
        .endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(
        addresses,
        ["10.10.1.7", "10.10.1.8", "10.20.1.4"],
        "cluster order, then address"
    );
    assert_eq!(endpoint(reviews, "10.10.1.7").health, Health::Healthy);
    assert_eq!(endpoint(reviews, "10.10.1.8").health, Health::Draining);
    assert_eq!(endpoint(reviews, "10.10.1.8").locality.zone, "us-east1-c");
    let remote = endpoint(reviews, "10.20.1.4");
    assert_eq!(remote.cluster, cluster("cluster2"));
    // Neither pod nor namespace label in cluster2: the configured network.
    assert_eq!(remote.network, network("network2"));
    // No locality labels on the pod: the slice's zone.
    assert_eq!(remote.locality.region, "");
    assert_eq!(remote.locality.zone, "eu-west1-a");
    assert_eq!(remote.ports, ports(&[(9080, 9080), (9090, 9091)]));
    assert_eq!(remote.labels.get("version").map(String::as_str), Some("v3"));
}

#[test]
fn index_joins_pods_by_ip_and_treats_podless_endpoints_as_plain() {
    let snapshot = testdata_mesh();
    let ratings = service(&snapshot, "ratings.bookinfo.svc.cluster.local");
    let by_ip = endpoint(ratings, "10.10.1.9");
    assert!(by_ip.mtls_capable, "pod found by IP");
    assert_eq!(
        by_ip.service_account, "default",
        "pod without serviceAccountName"
    );
    assert_eq!(
        by_ip.ports,
        ports(&[(9080, 9081)]),
        "named targetPort resolved by the slice"
    );
    assert_eq!(by_ip.labels.get("app").map(String::as_str), Some("ratings"));

    let vm = endpoint(ratings, "10.10.9.1");
    assert!(!vm.mtls_capable);
    assert_eq!(vm.service_account, "");
    assert!(vm.labels.is_empty());
    assert_eq!(vm.health, Health::Unhealthy);
    assert_eq!(vm.locality.zone, "us-east1-d");
    assert_eq!(vm.network, network("network1"));

    let details = service(&snapshot, "details.bookinfo.svc.cluster.local");
    let details = endpoint(details, "10.20.1.6");
    assert!(
        details.mtls_capable,
        "targetRef without namespace uses the slice's"
    );
}

#[test]
fn index_finds_network_gateways() {
    let snapshot = testdata_mesh();
    assert_eq!(
        snapshot.network_gateways,
        [NetworkGateway {
            network: network("network1"),
            cluster: cluster("cluster1"),
            address: "192.0.2.10".parse().unwrap(),
            port: 15443,
        }]
    );
    // cluster2's gateway is known by DNS name only; load_once does not resolve.
    assert_eq!(snapshot.gateway_hostnames.len(), 1);
    let hostname = &snapshot.gateway_hostnames[0];
    assert_eq!(hostname.hostname, "eastwest.network2.example.com");
    assert_eq!(hostname.network, network("network2"));
    assert_eq!(hostname.cluster, cluster("cluster2"));
    assert_eq!(
        hostname.port, 16443,
        "port from networking.istio.io/gatewayPort"
    );
    assert!(hostname.addresses.is_empty());
}

#[test]
fn index_turns_service_entries_into_services() {
    let snapshot = testdata_mesh();
    let nginx = service(&snapshot, "nginx.external.svc.cluster.local");
    let ServiceOrigin::ServiceEntry(origin) = &nginx.origin else {
        panic!("nginx comes from a ServiceEntry: {:?}", nginx.origin);
    };
    assert_eq!(origin.entry, "external/nginx-external");
    assert_eq!(origin.location, Location::MeshInternal);
    assert_eq!(origin.resolution, Resolution::Static);
    assert_eq!(origin.addresses, ["240.240.0.1"]);
    let port = nginx.service.port(443).unwrap();
    assert_eq!(port.protocol, Protocol::Http);
    assert_eq!(port.target_port, TargetPort::Number(8443));
    let v1 = endpoint(nginx, "10.20.5.1");
    assert_eq!(v1.ports, ports(&[(443, 8443)]));
    assert!(v1.mtls_capable, "MESH_INTERNAL");
    assert_eq!(v1.service_account, "nginx");
    assert_eq!(v1.network, network("network2"));
    assert_eq!(v1.cluster, cluster("cluster2"));
    let v2 = endpoint(nginx, "10.20.5.2");
    assert_eq!(
        v2.ports,
        ports(&[(443, 9443)]),
        "endpoint's own port by name"
    );
    assert_eq!(v2.weight, 3);
    assert_eq!(v2.locality.to_string(), "eu-west1/eu-west1-b");
    assert_eq!(v2.labels.get("version").map(String::as_str), Some("v2"));

    let httpbin = service(&snapshot, "httpbin.org");
    let ServiceOrigin::ServiceEntry(origin) = &httpbin.origin else {
        panic!("httpbin.org comes from a ServiceEntry");
    };
    assert_eq!(origin.location, Location::MeshExternal);
    assert_eq!(origin.resolution, Resolution::Dns);
    assert!(httpbin.endpoints.is_empty(), "DNS: the data plane resolves");
    assert_eq!(origin.dns_endpoints.len(), 1);
    assert_eq!(origin.dns_endpoints[0].hostname, "httpbin.org");
    assert_eq!(origin.dns_endpoints[0].ports, ports(&[(443, 443)]));
    assert_eq!(httpbin.service.port(443).unwrap().protocol, Protocol::Tls);
    assert_eq!(snapshot.service_entries.len(), 2);
}

#[test]
fn index_keeps_each_clusters_istio_config() {
    let snapshot = testdata_mesh();
    let gateways: Vec<(&str, &str)> = snapshot
        .gateways
        .iter()
        .map(|g| (g.cluster.as_str(), g.object.name()))
        .collect();
    assert_eq!(
        gateways,
        [
            ("cluster1", "cross-network-gateway"),
            ("cluster2", "cross-network-gateway")
        ]
    );
    assert!(
        snapshot.gateways[0]
            .origin
            .path
            .ends_with("cluster1/istio-system/gateway.yaml")
    );
    assert_eq!(
        snapshot.gateways[1].object.api_version,
        "networking.istio.io/v1alpha3"
    );

    // Same name, different subsets: not a conflict, each cluster keeps its own.
    let subsets: Vec<(&str, Vec<&str>)> = snapshot
        .destination_rules
        .iter()
        .map(|rule| {
            (
                rule.cluster.as_str(),
                rule.object
                    .spec
                    .subsets
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        subsets,
        [("cluster1", vec!["v1", "v2"]), ("cluster2", vec!["v3"])]
    );
    assert!(
        !snapshot
            .rejections
            .iter()
            .any(|r| r.kind == "DestinationRule" || r.kind == "Gateway"),
        "{:#?}",
        snapshot.rejections
    );
}

#[test]
fn index_rejects_the_invalid_virtual_service_and_keeps_the_rest() {
    let snapshot = testdata_mesh();
    assert!(snapshot.virtual_services.is_empty());
    let rejected = snapshot
        .rejections
        .iter()
        .find(|r| r.kind == "VirtualService")
        .expect("the VirtualService is rejected");
    assert_eq!(rejected.severity, Severity::Error);
    assert_eq!(rejected.name, "bookinfo-wildcard");
    assert_eq!(rejected.namespace, "bookinfo");
    assert_eq!(rejected.field, "spec.hosts[0]");
    assert_eq!(
        rejected.message,
        r#"domain name "*" invalid (label "*" invalid)"#
    );
    assert!(
        rejected
            .origin
            .contains("cluster1/bookinfo/traffic.yaml (document 1"),
        "{rejected}"
    );
    // The DestinationRule in the same file is still used (checked above), and so is
    // everything else: this is the only problem in the mesh.
    let errors: Vec<(String, String, String)> = snapshot
        .errors()
        .map(|r| (r.cluster.to_string(), r.kind.clone(), r.name.clone()))
        .collect();
    assert_eq!(
        errors,
        [(
            "cluster1".into(),
            "VirtualService".into(),
            "bookinfo-wildcard".into()
        )]
    );
    let warnings: Vec<String> = snapshot.warnings().map(|r| r.to_string()).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn index_keeps_secrets_per_cluster() {
    let snapshot = testdata_mesh();
    let secret = snapshot
        .secret(&cluster("cluster1"), "istio-system", "bookinfo-credential")
        .expect("secret indexed");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(secret.data.as_ref().unwrap().contains_key("tls.crt"));
    assert!(
        snapshot
            .secret(&cluster("cluster2"), "istio-system", "bookinfo-credential")
            .is_none()
    );
}
