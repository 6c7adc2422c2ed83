//! `isthmus validate`: the conformance fixtures are clean, the invalid fixtures produce
//! exactly the lines in their `.expected` files.
//!
//! Set `ISTHMUS_UPDATE_GOLDEN=1` to rewrite the `.expected` files after an intended change
//! (then read the diff before committing).

use std::fs;
use std::path::{Path, PathBuf};

use discovery::resource::{Resource, decode_documents};
use discovery::validate_cmd::{Severity, validate_paths};

const CONFORMANCE: &str = "testdata/validation/conformance";
const INVALID: &str = "testdata/validation/invalid";

fn yaml_files(directory: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(directory)
        .expect("fixture directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn conformance_fixtures_decode_and_validate_without_errors() {
    let outcome = validate_paths(&[PathBuf::from(CONFORMANCE)]);
    assert!(!outcome.has_errors(), "{}", outcome.render());
    assert_eq!(outcome.exit_code(), 0);
    assert_eq!(outcome.files_checked, 21, "one file per scenario A1..F1");
    assert!(outcome.resources_checked >= 50, "{}", outcome.summary());
    // Warnings are user-visible; the only one in the scenarios is Istio's own advice for a
    // TCP ServiceEntry port without addresses... which no scenario has. Keep it that way.
    assert_eq!(outcome.warning_count(), 0, "{}", outcome.render());
}

#[test]
fn conformance_fixtures_cover_all_three_api_versions_and_every_istio_kind() {
    let mut versions = Vec::new();
    let mut kinds = Vec::new();
    for file in yaml_files(CONFORMANCE) {
        let text = fs::read_to_string(&file).expect("fixture");
        let (decoded, errors) = decode_documents(&text, &file.display().to_string());
        assert!(errors.is_empty(), "{errors:?}");
        for item in decoded {
            kinds.push(item.kind());
            let api_version = match &item.resource {
                Resource::Gateway(object) => &object.api_version,
                Resource::VirtualService(object) => &object.api_version,
                Resource::DestinationRule(object) => &object.api_version,
                Resource::ServiceEntry(object) => &object.api_version,
                _ => continue,
            };
            versions.push(api_version.clone());
        }
    }
    for version in [
        "networking.istio.io/v1alpha3",
        "networking.istio.io/v1beta1",
        "networking.istio.io/v1",
    ] {
        assert!(
            versions.iter().any(|v| v == version),
            "no fixture uses {version}"
        );
    }
    for kind in [
        "Gateway",
        "VirtualService",
        "DestinationRule",
        "ServiceEntry",
        "Namespace",
        "Service",
        "EndpointSlice",
        "Pod",
        "Secret",
    ] {
        assert!(kinds.contains(&kind), "no fixture has a {kind}");
    }
}

#[test]
fn invalid_fixtures_fail_with_the_listed_messages() {
    let update = std::env::var_os("ISTHMUS_UPDATE_GOLDEN").is_some();
    let files = yaml_files(INVALID);
    assert!(files.len() >= 7);
    for file in files {
        let outcome = validate_paths(std::slice::from_ref(&file));
        assert!(outcome.has_errors(), "{} should fail", file.display());
        assert_eq!(outcome.exit_code(), 1);
        let expected_path = file.with_extension("expected");
        let rendered = outcome.render();
        if update {
            fs::write(&expected_path, &rendered).expect("write golden");
            continue;
        }
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        assert_eq!(rendered, expected, "output for {} changed", file.display());
    }
}

#[test]
fn rendered_lines_name_file_kind_resource_and_field() {
    let file = Path::new(INVALID).join("b7-istio-mutual-with-certificate.yaml");
    let outcome = validate_paths(&[file]);
    assert_eq!(
        outcome.render(),
        "error: testdata/validation/invalid/b7-istio-mutual-with-certificate.yaml: Gateway istio-system/mesh-mtls: spec.servers[0].tls.serverCertificate: ISTIO_MUTUAL TLS cannot have associated server certificate\n\
         error: testdata/validation/invalid/b7-istio-mutual-with-certificate.yaml: Gateway istio-system/mesh-mtls: spec.servers[0].tls.privateKey: ISTIO_MUTUAL TLS cannot have associated private key\n"
    );
    assert_eq!(
        outcome.summary(),
        "2 errors, 0 warnings in 1 file (1 resource)"
    );
}

#[test]
fn warnings_alone_do_not_fail() {
    let directory = tempfile::tempdir().expect("tempdir");
    let file = directory.path().join("warn.yaml");
    fs::write(
        &file,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db}\nspec:\n  hosts: [db.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n",
    )
    .expect("write");
    let outcome = validate_paths(&[directory.path().to_path_buf()]);
    assert!(!outcome.has_errors());
    assert_eq!(outcome.exit_code(), 0);
    assert_eq!(outcome.warning_count(), 1);
    assert_eq!(outcome.findings[0].severity, Severity::Warning);
    assert!(outcome.render().starts_with("warning: "));
}

#[test]
fn directories_are_read_sorted_and_unreadable_paths_are_errors() {
    let directory = tempfile::tempdir().expect("tempdir");
    let rule = |name: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec:\n  host: \"\"\n"
        )
    };
    fs::write(directory.path().join("b.yml"), rule("second")).expect("write");
    fs::write(directory.path().join("a.yaml"), rule("first")).expect("write");
    fs::write(directory.path().join("notes.txt"), "not yaml").expect("write");
    let missing = directory.path().join("missing.yaml");
    let outcome = validate_paths(&[directory.path().to_path_buf(), missing]);
    let names: Vec<&str> = outcome
        .findings
        .iter()
        .filter_map(|finding| finding.resource.as_deref())
        .collect();
    assert_eq!(
        names,
        [
            "DestinationRule default/first",
            "DestinationRule default/second"
        ]
    );
    assert_eq!(outcome.files_checked, 2);
    let last = outcome
        .findings
        .last()
        .expect("a finding for the missing file");
    assert_eq!(last.severity, Severity::Error);
    assert!(
        last.message.starts_with("cannot read file: "),
        "{}",
        last.message
    );
    assert_eq!(outcome.error_count(), 3);
}
