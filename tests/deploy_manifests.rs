//! `isthmus deploy`: the rendered YAML parses, carries the labels, ports and probes the
//! gateways and discovery need, and is the deploy/ kustomize base with its overlay applied.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn isthmus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_isthmus"))
        .args(args)
        .output()
        .expect("isthmus runs")
}

fn render(role: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["deploy", role];
    args.extend_from_slice(extra);
    let output = isthmus(&args);
    assert!(
        output.status.success(),
        "isthmus {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 YAML");
    serde_saphyr::from_multiple(&text).expect("the output is multi-document YAML")
}

const OTHER: &[&str] = &[
    "--network",
    "network-b",
    "--cluster",
    "cluster-b",
    "--namespace",
    "mesh-b",
    "--image",
    "registry.example:5000/isthmus:1.2.3",
];
const DEFAULTS: &[&str] = &["--network", "network1", "--cluster", "cluster1"];

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {objects:#?}"))
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .expect("env list")
        .iter()
        .find(|entry| entry["name"] == name)
        .map_or(&Value::Null, |entry| &entry["value"])
}

fn service_ports(service: &Value) -> Vec<(u64, String, u64)> {
    service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|port| {
            (
                port["port"].as_u64().expect("port"),
                port["protocol"].as_str().expect("protocol").to_owned(),
                port["targetPort"].as_u64().expect("targetPort"),
            )
        })
        .collect()
}

fn args(container: &Value) -> Vec<&str> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|arg| arg.as_str().expect("string arg"))
        .collect()
}

fn assert_gateway_probes(container: &Value) {
    let readiness = &container["readinessProbe"]["httpGet"];
    assert_eq!(readiness["path"], "/healthz/ready");
    assert_eq!(readiness["port"], 15021);
    assert_eq!(container["livenessProbe"]["tcpSocket"]["port"], 15021);
}

/// The values of the command line replace the overlay's everywhere: no default survives.
fn assert_no_defaults(objects: &[Value]) {
    let text = serde_json::to_string(objects).expect("JSON");
    for default in ["network1", "cluster1", "istio-system", "isthmus:0.1.0"] {
        assert!(!text.contains(default), "{default} left in {text}");
    }
    for object in objects {
        let kind = object["kind"].as_str().expect("kind");
        if !kind.starts_with("Cluster") {
            assert_eq!(object["metadata"]["namespace"], "mesh-b", "{kind}");
        }
    }
}

#[test]
fn eastwest_gateway_is_a_labelled_load_balancer_with_probes_and_the_cross_network_gateway() {
    let objects = render("eastwest", OTHER);
    assert_no_defaults(&objects);

    let service = object(&objects, "Service", "isthmus-eastwestgateway");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    let labels = &service["metadata"]["labels"];
    assert_eq!(labels["istio"], "eastwestgateway");
    assert_eq!(labels["topology.istio.io/network"], "network-b");
    let ports = service_ports(service);
    for port in [15021, 15443, 15012] {
        assert!(
            ports.contains(&(port, "TCP".into(), port)),
            "{port} in {ports:?}"
        );
    }

    let deployment = object(&objects, "Deployment", "isthmus-eastwestgateway");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["istio"], "eastwestgateway");
    assert_eq!(pod_labels["topology.istio.io/network"], "network-b");
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&pod_labels[key], value, "Service selector {key}");
    }
    let container = container(deployment);
    assert_eq!(container["image"], "registry.example:5000/isthmus:1.2.3");
    assert_eq!(
        args(container),
        ["gateway", "--label", "istio=eastwestgateway"]
    );
    assert_eq!(env(container, "ISTHMUS_CLUSTER"), "cluster-b");
    assert_eq!(env(container, "ISTHMUS_NETWORK"), "network-b");
    assert_eq!(
        env(container, "ISTHMUS_DISCOVERY"),
        "http://isthmus-discovery:15012"
    );
    assert_gateway_probes(container);

    let budget = object(&objects, "PodDisruptionBudget", "isthmus-eastwestgateway");
    assert_eq!(budget["spec"]["minAvailable"], 1);
    for (key, value) in budget["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("labels")
    {
        assert_eq!(&pod_labels[key], value, "PDB selector {key}");
    }

    let gateway = object(&objects, "Gateway", "cross-network-gateway");
    assert_eq!(gateway["apiVersion"], "networking.istio.io/v1");
    assert_eq!(gateway["spec"]["selector"]["istio"], "eastwestgateway");
    let server = &gateway["spec"]["servers"][0];
    assert_eq!(server["port"]["number"], 15443);
    assert_eq!(server["port"]["protocol"], "TLS");
    assert_eq!(server["tls"]["mode"], "AUTO_PASSTHROUGH");
    assert_eq!(server["hosts"], serde_json::json!(["*.local"]));
}

#[test]
fn ingress_gateway_serves_443_over_tcp_and_udp() {
    let objects = render("ingress", OTHER);
    assert_no_defaults(&objects);
    let service = object(&objects, "Service", "isthmus-ingressgateway");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    let ports = service_ports(service);
    assert!(ports.contains(&(443, "TCP".into(), 8443)), "{ports:?}");
    assert!(ports.contains(&(443, "UDP".into(), 8443)), "{ports:?}");
    let deployment = object(&objects, "Deployment", "isthmus-ingressgateway");
    let container = container(deployment);
    let args = args(container);
    assert!(
        args.windows(2)
            .any(|pair| pair == ["--port-map", "443=8443"]),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|pair| pair == ["--label", "istio=ingressgateway"]),
        "{args:?}"
    );
    let container_ports: Vec<(u64, &str)> = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|port| {
            (
                port["containerPort"].as_u64().expect("port"),
                port["protocol"].as_str().expect("protocol"),
            )
        })
        .collect();
    assert!(container_ports.contains(&(8443, "TCP")) && container_ports.contains(&(8443, "UDP")));
    assert_gateway_probes(container);
}

#[test]
fn discovery_reads_read_only_and_mounts_its_mesh() {
    let objects = render("discovery", OTHER);
    assert_no_defaults(&objects);
    let role = object(&objects, "ClusterRole", "isthmus-discovery");
    let mut granted = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        assert_eq!(
            rule["verbs"],
            serde_json::json!(["get", "list", "watch"]),
            "{rule}"
        );
        for resource in rule["resources"].as_array().expect("resources") {
            granted.push(resource.as_str().expect("resource").to_owned());
        }
    }
    for needed in [
        "namespaces",
        "services",
        "endpointslices",
        "pods",
        "secrets",
        "gateways",
        "virtualservices",
        "destinationrules",
        "serviceentries",
    ] {
        assert!(
            granted.iter().any(|resource| resource == needed),
            "{needed} in {granted:?}"
        );
    }
    let binding = object(&objects, "ClusterRoleBinding", "isthmus-discovery");
    assert_eq!(binding["subjects"][0]["namespace"], "mesh-b");

    let deployment = object(&objects, "Deployment", "isthmus-discovery");
    let container = container(deployment);
    assert_eq!(
        args(container),
        ["discovery", "--mesh", "/etc/isthmus/mesh.yaml"]
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], 15014);
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/etc/isthmus");
    let config_map = object(&objects, "ConfigMap", "isthmus-mesh");
    let mesh: Value =
        serde_saphyr::from_str(config_map["data"]["mesh.yaml"].as_str().expect("mesh.yaml"))
            .expect("mesh.yaml is YAML");
    assert_eq!(mesh["systemNamespace"], "mesh-b");
    assert_eq!(mesh["clusters"][0]["id"], "cluster-b");
    assert_eq!(mesh["clusters"][0]["network"], "network-b");
    // Discovery's own loader accepts what the ConfigMap mounts.
    let loaded = discovery::mesh_config::MeshConfig::parse(
        config_map["data"]["mesh.yaml"].as_str().expect("mesh.yaml"),
        Path::new("/etc/isthmus"),
        "mesh.yaml",
    )
    .expect("discovery loads the rendered mesh");
    assert_eq!(loaded.system_namespace, "mesh-b");
    assert_eq!(loaded.clusters[0].id.to_string(), "cluster-b");
    assert!(
        loaded.has_kubernetes(),
        "the local cluster is read in-cluster"
    );
    let service = object(&objects, "Service", "isthmus-discovery");
    assert_eq!(service_ports(service)[0], (15012, "TCP".into(), 15012));
}

// === base + overlay semantics ===

fn read_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("deploy file");
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    documents.into_iter().filter(|doc| !doc.is_null()).collect()
}

/// Whether every leaf of `expected` is in `actual` (named list items matched by name);
/// `image` is left to the overlay's `images:`.
fn contains(actual: &Value, expected: &Value) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                if key == "image" {
                    continue;
                }
                let found = actual.get(key).ok_or_else(|| format!("{key} missing"))?;
                contains(found, value).map_err(|error| format!("{key}.{error}"))?;
            }
            Ok(())
        }
        (Value::Array(actual), Value::Array(expected))
            if expected.iter().all(|item| item["name"].is_string()) =>
        {
            for item in expected {
                let found = actual
                    .iter()
                    .find(|candidate| candidate["name"] == item["name"])
                    .ok_or_else(|| format!("[{}] missing", item["name"]))?;
                contains(found, item)?;
            }
            Ok(())
        }
        (actual, expected) if actual == expected => Ok(()),
        (actual, expected) => Err(format!(" {actual} != {expected}")),
    }
}

#[test]
fn defaults_render_the_kustomize_base_with_its_overlay() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for role in ["discovery", "eastwest", "ingress"] {
        let rendered = render(role, DEFAULTS);
        let mut expected = Vec::new();
        for directory in [
            deploy.join("base").join(role),
            deploy.join("overlays").join(role),
        ] {
            for entry in std::fs::read_dir(&directory).expect("deploy directory") {
                let path = entry.expect("entry").path();
                if path
                    .file_name()
                    .is_some_and(|name| name != "kustomization.yaml")
                {
                    expected.extend(read_documents(&path));
                }
            }
        }
        for part in &expected {
            let kind = part["kind"].as_str().expect("kind");
            let name = part["metadata"]["name"].as_str().expect("name");
            let actual = object(&rendered, kind, name);
            if let Err(difference) = contains(actual, part) {
                panic!("{role}: {kind}/{name}: {difference}");
            }
            if !kind.starts_with("Cluster") {
                assert_eq!(
                    actual["metadata"]["namespace"], "istio-system",
                    "{kind}/{name}"
                );
            }
        }
        let mut names: Vec<(&Value, &Value)> = expected
            .iter()
            .map(|part| (&part["kind"], &part["metadata"]["name"]))
            .collect();
        names.sort_by_key(|(kind, name)| (kind.to_string(), name.to_string()));
        names.dedup();
        assert_eq!(
            rendered.len(),
            names.len(),
            "{role}: exactly the base's and overlay's objects"
        );
        for object in &rendered {
            for container in object["spec"]["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
            {
                assert_eq!(
                    container["image"], "isthmus:0.1.0",
                    "the overlay's images: entry"
                );
            }
        }
    }
}

#[test]
fn bad_values_are_refused_naming_the_flag() {
    let output = isthmus(&[
        "deploy",
        "eastwest",
        "--network",
        "network 2",
        "--cluster",
        "c",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--network") && stderr.contains("label value"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing half-rendered on stdout");
}
