//! Helpers shared by the validation tests.
#![allow(dead_code)]

use discovery::istio::{Report, validate_resource};
use discovery::resource::decode_documents;

/// Decodes exactly one resource from `yaml` and validates it.
pub fn report_for(yaml: &str) -> Report {
    let (decoded, errors) = decode_documents(yaml, "test.yaml");
    assert!(errors.is_empty(), "unexpected decode errors: {errors:#?}");
    assert_eq!(decoded.len(), 1, "expected one resource in {yaml}");
    validate_resource(&decoded[0].resource)
}

fn listing(report: &Report) -> String {
    let errors: Vec<String> = report
        .errors
        .iter()
        .map(|p| format!("  error {}: {}", p.field, p.message))
        .collect();
    let warnings: Vec<String> = report
        .warnings
        .iter()
        .map(|p| format!("  warning {}: {}", p.field, p.message))
        .collect();
    format!("{}\n{}", errors.join("\n"), warnings.join("\n"))
}

pub fn assert_error(report: &Report, field: &str, message: &str) {
    assert!(
        report
            .errors
            .iter()
            .any(|p| p.field == field && p.message == message),
        "expected error at {field}: {message}\nfound:\n{}",
        listing(report)
    );
}

pub fn assert_warning(report: &Report, field: &str, message: &str) {
    assert!(
        report
            .warnings
            .iter()
            .any(|p| p.field == field && p.message == message),
        "expected warning at {field}: {message}\nfound:\n{}",
        listing(report)
    );
}

/// Exactly these errors, in any order.
pub fn assert_only_errors(report: &Report, expected: &[(&str, &str)]) {
    let mut found: Vec<(String, String)> = report
        .errors
        .iter()
        .map(|p| (p.field.clone(), p.message.clone()))
        .collect();
    let mut wanted: Vec<(String, String)> = expected
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    found.sort();
    wanted.sort();
    assert_eq!(found, wanted, "\nfound:\n{}", listing(report));
}

pub fn assert_valid(report: &Report) {
    assert!(
        report.errors.is_empty(),
        "expected no errors, found:\n{}",
        listing(report)
    );
}

/// A Gateway with one server given as YAML lines indented under `servers:`.
pub fn gateway(servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: istio-system}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}"
    )
}

/// A VirtualService whose spec is given as YAML lines indented by two spaces.
pub fn virtual_service(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {{name: vs, namespace: default}}\nspec:\n{spec}"
    )
}

pub fn destination_rule(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata: {{name: dr, namespace: default}}\nspec:\n{spec}"
    )
}

pub fn service_entry(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: se, namespace: default}}\nspec:\n{spec}"
    )
}
