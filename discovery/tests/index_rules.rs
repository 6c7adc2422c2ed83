//! Index rules one at a time, on small inline meshes.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::net::IpAddr;
use std::path::PathBuf;

use discovery::index::{ClusterResources, IndexInput, build_snapshot};
use discovery::mesh::{MeshSnapshot, Rejection, Severity, SyncState};
use discovery::mesh_config::{ClusterConfig, ClusterSource, MeshConfig};
use discovery::resolve::{ResolvedHost, ResolvedHosts};
use discovery::resource::decode_documents;
use multicluster::model::{ClusterId, NetworkId, Protocol};

fn config(clusters: &[(&str, &str)]) -> MeshConfig {
    MeshConfig::new(
        clusters
            .iter()
            .map(|(id, network)| ClusterConfig {
                id: ClusterId::new(*id).unwrap(),
                network: NetworkId::new(*network).unwrap(),
                source: ClusterSource::Files {
                    directory: PathBuf::from(format!("/unused/{id}")),
                },
            })
            .collect(),
    )
}

fn resources(cluster: &str, yaml: &str) -> ClusterResources {
    let (decoded, errors) = decode_documents(yaml, &format!("{cluster}.yaml"));
    assert!(errors.is_empty(), "test YAML decodes: {errors:?}");
    ClusterResources::new(ClusterId::new(cluster).unwrap(), decoded)
}

fn build(
    config: &MeshConfig,
    clusters: &[ClusterResources],
    resolved: &ResolvedHosts,
) -> MeshSnapshot {
    build_snapshot(IndexInput {
        config,
        clusters,
        resolved,
        generation: 7,
    })
}

fn one_cluster(yaml: &str) -> MeshSnapshot {
    let config = config(&[("c1", "net1")]);
    build(&config, &[resources("c1", yaml)], &ResolvedHosts::new())
}

fn only_rejection(snapshot: &MeshSnapshot) -> &Rejection {
    assert_eq!(snapshot.rejections.len(), 1, "{:#?}", snapshot.rejections);
    &snapshot.rejections[0]
}

const SERVICE_A: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: a, namespace: ns}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

fn slice(name: &str, endpoints: &str) -> String {
    format!(
        r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: ns
  labels: {{kubernetes.io/service-name: a}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints:
{endpoints}
"#
    )
}

fn pod(name: &str, ip: &str, labels: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: ns
  labels: {{app: a{labels}}}
spec:
  containers: [{{name: app, image: app}}]
status: {{podIP: {ip}}}
"#
    )
}

fn system_namespace(network: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: istio-system\n  labels: {{topology.istio.io/network: {network}}}\n"
    )
}

fn networks_of(snapshot: &MeshSnapshot) -> Vec<(String, String)> {
    snapshot.services["a.ns.svc.cluster.local"]
        .endpoints
        .iter()
        .map(|e| (e.address.to_string(), e.network.to_string()))
        .collect()
}

#[test]
fn index_network_pod_label_beats_namespace_label_beats_cluster_network() {
    let endpoints = "- addresses: [10.0.0.1]\n- addresses: [10.0.0.2]\n- addresses: [10.0.0.3]\n";
    let workloads = [
        SERVICE_A.to_string(),
        slice("a-1", endpoints),
        pod(
            "labelled",
            "10.0.0.1",
            ", topology.istio.io/network: from-pod",
        ),
        pod("unlabelled", "10.0.0.2", ""),
    ]
    .join("\n---\n");

    let without_namespace_label = one_cluster(&workloads);
    assert_eq!(
        networks_of(&without_namespace_label),
        [
            ("10.0.0.1".into(), "from-pod".into()),
            ("10.0.0.2".into(), "net1".into()),
            ("10.0.0.3".into(), "net1".into()),
        ]
    );

    let with_namespace_label = one_cluster(&format!(
        "{workloads}\n---\n{}",
        system_namespace("from-namespace")
    ));
    assert_eq!(
        networks_of(&with_namespace_label),
        [
            ("10.0.0.1".into(), "from-pod".into()),
            ("10.0.0.2".into(), "from-namespace".into()),
            ("10.0.0.3".into(), "from-namespace".into()),
        ]
    );
}

#[test]
fn index_network_label_of_another_namespace_does_not_count() {
    let other = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns\n  labels: {topology.istio.io/network: elsewhere}\n";
    let snapshot = one_cluster(&format!(
        "{SERVICE_A}\n---\n{}\n---\n{other}",
        slice("a-1", "- addresses: [10.0.0.1]\n")
    ));
    assert_eq!(networks_of(&snapshot), [("10.0.0.1".into(), "net1".into())]);
}

#[test]
fn index_conflicting_port_protocol_warns_and_first_cluster_wins() {
    let config = config(&[("c1", "net1"), ("c2", "net2")]);
    let tcp = SERVICE_A.replace("name: http", "name: tcp-plain");
    let snapshot = build(
        &config,
        &[resources("c1", SERVICE_A), resources("c2", &tcp)],
        &ResolvedHosts::new(),
    );
    let service = &snapshot.services["a.ns.svc.cluster.local"].service;
    assert_eq!(service.port(80).unwrap().protocol, Protocol::Http);
    assert_eq!(service.clusters.len(), 2);
    let warning = only_rejection(&snapshot);
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.cluster.as_str(), "c2");
    assert!(
        warning
            .message
            .contains("port 80 is TCP here but HTTP in cluster c1"),
        "{warning}"
    );
}

#[test]
fn index_skips_external_name_services_with_a_warning() {
    let snapshot = one_cluster(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: ns}\nspec: {type: ExternalName, externalName: example.com}\n",
    );
    assert!(snapshot.services.is_empty());
    let warning = only_rejection(&snapshot);
    assert_eq!(
        (warning.severity, warning.field.as_str()),
        (Severity::Warning, "spec.type")
    );
    assert!(warning.message.contains("ServiceEntry"), "{warning}");
}

#[test]
fn index_ignores_slices_of_services_unknown_in_their_cluster() {
    let config = config(&[("c1", "net1"), ("c2", "net2")]);
    // Service a exists only in c1; c2 has a slice for it.
    let snapshot = build(
        &config,
        &[
            resources("c1", SERVICE_A),
            resources("c2", &slice("a-2", "- addresses: [10.2.0.1]\n")),
        ],
        &ResolvedHosts::new(),
    );
    assert!(
        snapshot.services["a.ns.svc.cluster.local"]
            .endpoints
            .is_empty()
    );
    let warning = only_rejection(&snapshot);
    assert_eq!(warning.kind, "EndpointSlice");
    assert!(
        warning.message.contains("not declared in cluster c2"),
        "{warning}"
    );
}

#[test]
fn index_invalid_endpoint_is_rejected_and_its_neighbours_stay() {
    let snapshot = one_cluster(&format!(
        "{SERVICE_A}\n---\n{}",
        slice("a-1", "- addresses: [not-an-ip]\n- addresses: [10.0.0.9]\n")
    ));
    let endpoints = &snapshot.services["a.ns.svc.cluster.local"].endpoints;
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].address, "10.0.0.9".parse::<IpAddr>().unwrap());
    assert_eq!(endpoints[0].ports.get(&80), Some(&8080));
    let error = only_rejection(&snapshot);
    assert_eq!(error.severity, Severity::Error);
    assert_eq!(error.field, "endpoints[0].addresses[0]");
    assert_eq!(error.name, "a-1");
}

#[test]
fn index_rejects_a_second_definition_in_the_same_cluster() {
    let second = SERVICE_A.replace("port: 80", "port: 81");
    let snapshot = one_cluster(&format!("{SERVICE_A}\n---\n{second}"));
    let ports: Vec<u16> = snapshot.services["a.ns.svc.cluster.local"]
        .service
        .ports
        .iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(ports, [80]);
    let error = only_rejection(&snapshot);
    assert_eq!(error.severity, Severity::Error);
    assert!(
        error
            .message
            .contains("defined twice in this cluster, first at c1.yaml (document 1"),
        "{error}"
    );
    assert!(error.origin.contains("document 2"), "{error}");
}

const GATEWAY_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: eastwest
  namespace: istio-system
  labels: {topology.istio.io/network: net1}
spec:
  type: LoadBalancer
  ports: [{name: tls, port: 15443}]
  externalIPs: [203.0.113.7]
status:
  loadBalancer:
    ingress:
    - ip: 203.0.113.5
    - hostname: gw.example.com
"#;

#[test]
fn index_gateway_addresses_come_from_ingress_external_ips_and_resolved_names() {
    let config = config(&[("c1", "net1")]);
    let mut resolved = ResolvedHosts::new();
    resolved.insert(
        "gw.example.com".to_string(),
        ResolvedHost {
            addresses: vec!["198.51.100.1".parse().unwrap()],
            error: None,
        },
    );
    let snapshot = build(&config, &[resources("c1", GATEWAY_SERVICE)], &resolved);
    let addresses: Vec<String> = snapshot
        .network_gateways
        .iter()
        .map(|g| format!("{}/{}:{}@{}", g.network, g.address, g.port, g.cluster))
        .collect();
    assert_eq!(
        addresses,
        [
            "net1/198.51.100.1:15443@c1",
            "net1/203.0.113.5:15443@c1",
            "net1/203.0.113.7:15443@c1"
        ]
    );
    assert_eq!(snapshot.gateway_hostnames[0].addresses.len(), 1);
    assert!(snapshot.rejections.is_empty(), "{:#?}", snapshot.rejections);
}

#[test]
fn index_gateway_lookup_failure_keeps_last_addresses_and_warns() {
    let config = config(&[("c1", "net1")]);
    let mut resolved = ResolvedHosts::new();
    resolved.insert(
        "gw.example.com".to_string(),
        ResolvedHost {
            addresses: vec!["198.51.100.1".parse().unwrap()],
            error: Some("DNS lookup of gw.example.com failed: timeout".to_string()),
        },
    );
    let snapshot = build(&config, &[resources("c1", GATEWAY_SERVICE)], &resolved);
    assert!(
        snapshot
            .network_gateways
            .iter()
            .any(|g| g.address.to_string() == "198.51.100.1")
    );
    let warning = only_rejection(&snapshot);
    assert_eq!(warning.severity, Severity::Warning);
    assert!(
        warning
            .message
            .contains("timeout; the last resolved addresses stay in use (198.51.100.1)"),
        "{warning}"
    );
}

#[test]
fn index_gateway_needs_its_port_and_an_address() {
    let no_port = GATEWAY_SERVICE.replace("port: 15443", "port: 443");
    let snapshot = one_cluster(&no_port);
    assert!(snapshot.network_gateways.is_empty());
    assert!(
        only_rejection(&snapshot)
            .message
            .contains("exposes no port 15443")
    );

    let labelled_port = no_port.replace(
        "labels: {topology.istio.io/network: net1}",
        "labels: {topology.istio.io/network: net1, networking.istio.io/gatewayPort: \"443\"}",
    );
    let snapshot = one_cluster(&labelled_port);
    assert_eq!(snapshot.network_gateways.len(), 2);
    assert!(snapshot.network_gateways.iter().all(|g| g.port == 443));

    let no_address = "apiVersion: v1\nkind: Service\nmetadata:\n  name: eastwest\n  namespace: istio-system\n  labels: {topology.istio.io/network: net1}\nspec:\n  ports: [{port: 15443}]\n";
    let snapshot = one_cluster(no_address);
    assert!(snapshot.network_gateways.is_empty());
    assert!(
        only_rejection(&snapshot)
            .message
            .contains("has no address yet")
    );
}

#[test]
fn index_service_entry_host_taken_by_a_kubernetes_service_is_ignored() {
    let entry = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shadow, namespace: ns}
spec:
  hosts: [a.ns.svc.cluster.local, b.example.com]
  addresses: [240.0.0.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.9.9.9}]
"#;
    let snapshot = one_cluster(&format!("{SERVICE_A}\n---\n{entry}"));
    assert_eq!(
        snapshot.services["a.ns.svc.cluster.local"].endpoints.len(),
        0
    );
    let b = &snapshot.services["b.example.com"];
    assert_eq!(b.endpoints.len(), 1);
    assert!(b.endpoints[0].mtls_capable);
    assert_eq!(b.endpoints[0].network.as_str(), "net1");
    let warning = only_rejection(&snapshot);
    assert_eq!(warning.field, "spec.hosts[0]");
    assert!(
        warning
            .message
            .contains("Kubernetes Service ns/a in cluster(s) c1"),
        "{warning}"
    );
}

#[test]
fn index_cluster_without_resources_is_pending() {
    let config = config(&[("c1", "net1"), ("c2", "net2")]);
    let snapshot = build(
        &config,
        &[resources("c1", SERVICE_A)],
        &ResolvedHosts::new(),
    );
    assert_eq!(snapshot.generation, 7);
    assert_eq!(snapshot.clusters[0].sync, SyncState::Synced);
    assert_eq!(snapshot.clusters[1].sync, SyncState::Pending);
    assert_eq!(snapshot.clusters[1].resource_count(), 0);
    assert_eq!(snapshot.clusters[0].resource_count(), 1);
}

const ENTRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: ext}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
"#;

#[test]
fn index_istio_objects_of_the_same_name_stay_per_cluster() {
    let config = config(&[("c1", "net1"), ("c2", "net2")]);
    let rule = |subset: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: a, namespace: ns}}\nspec:\n  host: a\n  subsets: [{{name: {subset}, labels: {{version: {subset}}}}}]\n"
        )
    };
    let snapshot = build(
        &config,
        &[resources("c1", &rule("v1")), resources("c2", &rule("v2"))],
        &ResolvedHosts::new(),
    );
    let rules: Vec<(String, String)> = snapshot
        .destination_rules
        .iter()
        .map(|r| (r.cluster.to_string(), r.object.spec.subsets[0].name.clone()))
        .collect();
    assert_eq!(
        rules,
        [("c1".into(), "v1".into()), ("c2".into(), "v2".into())]
    );
    assert!(snapshot.rejections.is_empty(), "{:#?}", snapshot.rejections);
}

#[test]
fn index_identical_service_entries_in_two_clusters_are_one_service() {
    let config = config(&[("c1", "net1"), ("c2", "net2")]);
    let snapshot = build(
        &config,
        &[resources("c1", ENTRY), resources("c2", ENTRY)],
        &ResolvedHosts::new(),
    );
    let clusters: Vec<&str> = snapshot.services["api.example.com"]
        .service
        .clusters
        .iter()
        .map(ClusterId::as_str)
        .collect();
    assert_eq!(clusters, ["c1", "c2"]);
    assert_eq!(
        snapshot.service_entries.len(),
        2,
        "both copies kept as config"
    );
    assert!(snapshot.rejections.is_empty(), "{:#?}", snapshot.rejections);
}

#[test]
fn index_differing_service_entries_first_cluster_defines_the_service() {
    let config = config(&[("c1", "net1"), ("c2", "net2")]);
    let other_port = ENTRY.replace("number: 443", "number: 8443");
    let snapshot = build(
        &config,
        &[resources("c1", ENTRY), resources("c2", &other_port)],
        &ResolvedHosts::new(),
    );
    let service = &snapshot.services["api.example.com"].service;
    assert_eq!(service.ports[0].number, 443);
    assert_eq!(service.clusters.len(), 1);
    let warning = only_rejection(&snapshot);
    assert_eq!(
        (warning.cluster.as_str(), warning.severity),
        ("c2", Severity::Warning)
    );
    assert!(
        warning
            .message
            .contains("cluster c1 defines this ServiceEntry differently at c1.yaml"),
        "{warning}"
    );
}
