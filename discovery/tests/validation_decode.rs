//! Decoding multi-document Kubernetes YAML into resources.

use discovery::istio::gateway::ServerTlsMode;
use discovery::istio::service_entry::Resolution;
use discovery::resource::{DecodeError, Origin, Resource, decode_documents};

const GATEWAY: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\nspec:\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, credentialName: cred}\n    hosts: [a.example.com]\n";

#[test]
fn every_istio_api_version_is_accepted() {
    for version in ["v1alpha3", "v1beta1", "v1"] {
        let yaml = GATEWAY.replace(
            "networking.istio.io/v1\n",
            &format!("networking.istio.io/{version}\n"),
        );
        let (decoded, errors) = decode_documents(&yaml, "gw.yaml");
        assert!(errors.is_empty(), "{version}: {errors:?}");
        let Resource::Gateway(gateway) = &decoded[0].resource else {
            panic!("{version}: not a gateway: {:?}", decoded[0].resource);
        };
        assert_eq!(
            gateway.api_version,
            format!("networking.istio.io/{version}")
        );
        let tls = gateway.spec.servers[0].tls.as_ref().expect("tls decoded");
        assert_eq!(tls.mode, ServerTlsMode::Simple);
        assert_eq!(tls.credential_name, "cred");
    }
}

#[test]
fn unknown_kind_is_reported_with_file_document_version_and_kind() {
    let yaml = format!(
        "{GATEWAY}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\n---\n{GATEWAY}"
    );
    let (decoded, errors) = decode_documents(&yaml, "mesh.yaml");
    assert_eq!(decoded.len(), 2, "the other documents are kept");
    assert_eq!(decoded[1].origin.document, 3);
    assert_eq!(errors.len(), 1);
    let error = &errors[0];
    assert!(
        matches!(error, DecodeError::Unsupported { api_version, kind, .. } if api_version == "v1" && kind == "ConfigMap")
    );
    assert_eq!(
        error.origin(),
        &Origin {
            path: "mesh.yaml".to_string(),
            document: 2,
            line: 10,
            item: None
        }
    );
    assert_eq!(
        error.to_string(),
        "mesh.yaml (document 2, line 10): unsupported apiVersion \"v1\" with kind \"ConfigMap\": Isthmus reads v1 Namespace, Service, Pod, Secret, List, discovery.k8s.io/v1 EndpointSlice and networking.istio.io/v1alpha3, v1beta1 or v1 Gateway, VirtualService, DestinationRule, ServiceEntry"
    );
}

#[test]
fn unknown_istio_version_is_unsupported() {
    let yaml = GATEWAY.replace("networking.istio.io/v1\n", "networking.istio.io/v2\n");
    let (decoded, errors) = decode_documents(&yaml, "gw.yaml");
    assert!(decoded.is_empty());
    assert!(
        matches!(&errors[..], [DecodeError::Unsupported { api_version, kind, .. }] if api_version == "networking.istio.io/v2" && kind == "Gateway")
    );
}

#[test]
fn broken_yaml_is_reported_with_its_document_and_the_rest_kept() {
    let yaml = format!(
        "{GATEWAY}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: [unclosed\n---\n{GATEWAY}"
    );
    let (decoded, errors) = decode_documents(&yaml, "broken.yaml");
    assert_eq!(decoded.len(), 2);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let DecodeError::Yaml { origin, message } = &errors[0] else {
        panic!("expected a YAML error, got {:?}", errors[0]);
    };
    assert_eq!(origin.path, "broken.yaml");
    assert_eq!(origin.document, 2);
    assert_eq!(message, "line 12, column 18: unclosed bracket '['");
    assert_eq!(
        errors[0].to_string(),
        "broken.yaml (document 2, line 10): invalid YAML: line 12, column 18: unclosed bracket '['"
    );
}

#[test]
fn schema_mismatch_names_the_resource() {
    let yaml = GATEWAY.replace("number: 443", "number: https");
    let (decoded, errors) = decode_documents(&yaml, "gw.yaml");
    assert!(decoded.is_empty());
    let DecodeError::Invalid {
        kind,
        name,
        api_version,
        message,
        ..
    } = &errors[0]
    else {
        panic!("expected a schema error, got {:?}", errors[0]);
    };
    assert_eq!(
        (kind.as_str(), name.as_str(), api_version.as_str()),
        ("Gateway", "gw", "networking.istio.io/v1")
    );
    assert_eq!(
        message,
        "spec.servers[0].port.number: invalid type: string \"https\", expected u32"
    );
}

#[test]
fn kubernetes_schema_mismatch_names_the_field() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  ports: [{name: http, port: eighty}]\n";
    let (_, errors) = decode_documents(yaml, "svc.yaml");
    assert_eq!(
        errors[0].to_string(),
        "svc.yaml (document 1, line 1): Service \"reviews\" (v1) does not match its schema: spec.ports[0].port: invalid type: string \"eighty\", expected i32"
    );
}

#[test]
fn missing_kind_and_non_objects_are_errors() {
    let (decoded, errors) = decode_documents(
        "apiVersion: v1\nmetadata: {name: x}\n---\n- a\n- b\n",
        "odd.yaml",
    );
    assert!(decoded.is_empty());
    assert_eq!(
        errors[0].to_string(),
        "odd.yaml (document 1, line 1): missing kind: every document needs apiVersion and kind"
    );
    assert_eq!(
        errors[1].to_string(),
        "odd.yaml (document 2, line 4): expected a Kubernetes object (a mapping with apiVersion and kind), found a sequence"
    );
}

#[test]
fn empty_documents_are_skipped_but_counted() {
    let yaml = format!("# comment\n---\n---\n# nothing here\n---\n{GATEWAY}---\n");
    let (decoded, errors) = decode_documents(&yaml, "sparse.yaml");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].origin.document, 3);
}

#[test]
fn list_items_are_decoded_with_their_index() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: bookinfo}\n- apiVersion: v1\n  kind: Service\n  metadata: {name: reviews, namespace: bookinfo}\n  spec:\n    ports: [{name: http, port: 9080}]\n- apiVersion: v1\n  kind: Banana\n";
    let (decoded, errors) = decode_documents(yaml, "list.yaml");
    assert_eq!(decoded.len(), 2);
    assert_eq!(decoded[0].kind(), "Namespace");
    assert_eq!(decoded[0].namespace(), "", "Namespace is cluster-scoped");
    assert_eq!(decoded[1].kind(), "Service");
    assert_eq!(decoded[1].namespace(), "bookinfo");
    assert_eq!(decoded[1].origin.item, Some(1));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].origin().item, Some(2));
    assert!(
        errors[0]
            .to_string()
            .starts_with("list.yaml (document 1, line 1, items[2]): unsupported")
    );
}

#[test]
fn kubernetes_kinds_decode_into_k8s_openapi_types() {
    let text = std::fs::read_to_string("testdata/validation/conformance/d1-east-west.yaml")
        .expect("fixture");
    let (decoded, errors) = decode_documents(&text, "d1.yaml");
    assert!(errors.is_empty(), "{errors:?}");
    let kinds: Vec<&str> = decoded.iter().map(|d| d.kind()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "Gateway",
            "Service",
            "Service",
            "EndpointSlice",
            "Pod",
            "DestinationRule"
        ]
    );
    let Resource::EndpointSlice(slice) = &decoded[4].resource else {
        panic!("not a slice")
    };
    let endpoints = slice.endpoints.as_ref().expect("endpoints");
    assert_eq!(endpoints[0].addresses, vec!["10.20.0.5".to_string()]);
    let Resource::Service(gateway_service) = &decoded[2].resource else {
        panic!("not a service")
    };
    let ingress = gateway_service
        .status
        .as_ref()
        .and_then(|status| status.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .expect("load balancer ingress");
    assert_eq!(ingress[0].ip.as_deref(), Some("127.0.0.20"));
}

#[test]
fn secrets_decode_data_and_string_data() {
    let text = std::fs::read_to_string("testdata/validation/conformance/b4-credential-name.yaml")
        .expect("fixture");
    let (decoded, errors) = decode_documents(&text, "b4.yaml");
    assert!(errors.is_empty(), "{errors:?}");
    let Resource::Secret(tls) = &decoded[0].resource else {
        panic!("not a secret")
    };
    assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(
        tls.string_data
            .as_ref()
            .expect("stringData")
            .contains_key("tls.crt")
    );
    let Resource::Secret(ca) = &decoded[1].resource else {
        panic!("not a secret")
    };
    let data = ca.data.as_ref().expect("data");
    assert_eq!(data["ca.crt"].0, b"-----BEGIN CERTIFICATE-----\n".to_vec());
}

#[test]
fn namespace_defaults_and_istio_defaults() {
    let yaml = "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [ext.example.com]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n";
    let (decoded, errors) = decode_documents(yaml, "se.yaml");
    assert!(errors.is_empty());
    assert_eq!(decoded[0].namespace(), "default");
    assert_eq!(decoded[0].name(), "ext");
    let Resource::ServiceEntry(entry) = &decoded[0].resource else {
        panic!("not a service entry")
    };
    assert_eq!(entry.spec.resolution, Resolution::None);
    assert_eq!(entry.namespace(), "default");
}

#[test]
fn durations_keep_their_text_and_value() {
    let text =
        std::fs::read_to_string("testdata/validation/conformance/f1-egress-mtls-origination.yaml")
            .expect("fixture");
    let (decoded, _) = decode_documents(&text, "f1.yaml");
    let rule = decoded
        .iter()
        .find_map(|d| match &d.resource {
            Resource::DestinationRule(rule) => Some(rule),
            _ => None,
        })
        .expect("destination rule");
    let policy = rule.spec.traffic_policy.as_ref().expect("traffic policy");
    let outlier = policy
        .outlier_detection
        .as_ref()
        .expect("outlier detection");
    let interval = outlier.interval.as_ref().expect("interval");
    assert_eq!(interval.raw(), "1.5s");
    assert_eq!(
        interval.duration(),
        Some(std::time::Duration::from_millis(1500))
    );
    assert_eq!(outlier.consecutive_5xx_errors, Some(5));
    let pool = policy
        .connection_pool
        .as_ref()
        .and_then(|pool| pool.http.as_ref())
        .expect("http pool");
    assert_eq!(
        pool.idle_timeout.as_ref().and_then(|d| d.duration()),
        Some(std::time::Duration::from_secs(60))
    );
}

mod properties {
    use discovery::istio::parse_duration;
    use discovery::resource::decode_documents;
    use proptest::prelude::*;
    use std::time::Duration;

    proptest! {
        #[test]
        fn millisecond_durations_round_trip(ms in 0u64..10_000_000_000) {
            prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
            let seconds = ms / 1000;
            let fraction = ms % 1000;
            prop_assert_eq!(
                parse_duration(&format!("{seconds}.{fraction:03}s")),
                Ok(Duration::from_millis(ms))
            );
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(text in "(?s).{0,400}") {
            let (decoded, errors) = decode_documents(&text, "fuzz.yaml");
            // Every document yields at most one outcome (a List can yield more, but not here).
            prop_assert!(decoded.len() + errors.len() <= text.matches("---").count() + text.matches("...").count() + 1);
        }

        #[test]
        fn decoding_yaml_shaped_text_never_panics(
            lines in proptest::collection::vec("( {0,4})(apiVersion|kind|metadata|spec|servers|- port|hosts|---|name)(: )?([a-z0-9./*{}\\[\\]-]{0,12})", 0..20)
        ) {
            let text = lines.join("\n");
            let _ = decode_documents(&text, "fuzz.yaml");
        }
    }
}

#[test]
fn pods_of_one_file_with_equal_labels_share_one_label_set() {
    let pod = |name: &str, version: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels:\n    app: reviews\n    version: {version}\n"
        )
    };
    let yaml = [
        pod("reviews-a", "v1"),
        pod("reviews-b", "v1"),
        pod("reviews-c", "v2"),
    ]
    .join("---\n");
    let (decoded, errors) = decode_documents(&yaml, "pods.yaml");
    assert!(errors.is_empty(), "{errors:?}");
    let labels: Vec<_> = decoded
        .iter()
        .map(|decoded| match &decoded.resource {
            Resource::Pod(pod) => pod.metadata.labels.clone().expect("labels"),
            other => panic!("not a pod: {other:?}"),
        })
        .collect();
    assert!(
        std::sync::Arc::ptr_eq(&labels[0], &labels[1]),
        "equal sets are one"
    );
    assert!(!std::sync::Arc::ptr_eq(&labels[0], &labels[2]));
    assert_eq!(labels[2].get("version").map(String::as_str), Some("v2"));
}
