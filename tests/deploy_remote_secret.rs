//! `isthmus create-remote-secret`: the reader objects for the remote cluster, then Istio's
//! `istio/multiCluster` Secret once a real token is given; never a made-up token.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn isthmus(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_isthmus"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("isthmus runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("isthmus exits")
}

fn documents(output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout.clone()).expect("UTF-8");
    serde_saphyr::from_multiple(&text).expect("multi-document YAML")
}

// A throwaway JWT-shaped fixture, not a credential of any cluster.
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln";

const KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: 'https://203.0.113.1:6443'}
- name: c2
  cluster:
    server: https://192.0.2.10:6443
    certificate-authority-data: Y2EtcGVt
contexts:
- name: ctx-other
  context: {cluster: other, user: u}
- name: ctx-c2
  context: {cluster: c2, user: u}
current-context: ctx-c2
users:
- name: u
  user: {token: not-copied}
";

#[test]
fn without_a_token_it_prints_the_reader_and_how_to_get_the_token() {
    let output = isthmus(&["create-remote-secret", "--name", "cluster2"], "");
    let objects = documents(&output);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Secret",
            "ClusterRole",
            "ClusterRoleBinding"
        ]
    );
    let secret = &objects[1];
    assert_eq!(secret["type"], "kubernetes.io/service-account-token");
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        objects[0]["metadata"]["name"]
    );
    assert!(
        secret.get("data").is_none() && secret.get("stringData").is_none(),
        "no token of ours"
    );
    for rule in objects[2]["rules"].as_array().expect("rules") {
        assert_eq!(
            rule["verbs"],
            serde_json::json!(["get", "list", "watch"]),
            "{rule}"
        );
    }
    assert_eq!(
        objects[3]["subjects"][0]["name"],
        objects[0]["metadata"]["name"]
    );
    assert_eq!(
        objects[3]["roleRef"]["name"],
        objects[2]["metadata"]["name"]
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--token-file -"), "{stderr}");
    assert!(
        stderr.contains("get secret isthmus-reader-service-account-token"),
        "{stderr}"
    );
    assert!(!stderr.contains('<'), "no placeholder to fill in: {stderr}");
}

#[test]
fn with_a_token_it_prints_the_istio_remote_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, KUBECONFIG).expect("write kubeconfig");
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 path");
    let output = isthmus(
        &[
            "create-remote-secret",
            "--name",
            "cluster2",
            "--kubeconfig",
            kubeconfig,
            "--token-file",
            "-",
        ],
        &format!("{TOKEN}\n"),
    );
    let objects = documents(&output);
    assert_eq!(objects.len(), 1);
    let secret = &objects[0];
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["namespace"], "istio-system");
    // A string, not the boolean true: label values must be strings.
    assert_eq!(
        secret["metadata"]["labels"]["istio/multiCluster"],
        Value::String("true".into())
    );
    assert_eq!(
        secret["metadata"]["annotations"]["networking.istio.io/cluster"],
        "cluster2"
    );
    let data = secret["stringData"].as_object().expect("stringData");
    assert_eq!(data.keys().collect::<Vec<_>>(), ["cluster2"]);
    let config: Value =
        serde_saphyr::from_str(data["cluster2"].as_str().expect("kubeconfig")).expect("YAML");
    assert_eq!(config["current-context"], "cluster2");
    let cluster = &config["clusters"][0]["cluster"];
    assert_eq!(cluster["server"], "https://192.0.2.10:6443");
    assert_eq!(cluster["certificate-authority-data"], "Y2EtcGVt");
    assert_eq!(config["users"][0]["user"]["token"], TOKEN);

    let output = isthmus(
        &[
            "create-remote-secret",
            "--name",
            "cluster2",
            "--kubeconfig",
            kubeconfig,
            "--context",
            "ctx-other",
            "--server",
            "https://gw.example:443",
            "--token-file",
            "-",
        ],
        TOKEN,
    );
    assert!(
        !output.status.success(),
        "the other context has no CA to trust"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("--certificate-authority"));
}

#[test]
fn a_token_still_in_base64_is_refused() {
    let output = isthmus(
        &[
            "create-remote-secret",
            "--name",
            "cluster2",
            "--server",
            "https://x",
            "--token-file",
            "-",
        ],
        "ZXlKaGJHY2lPaUpTVXpJMU5pSjku",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("base64 -d"), "{stderr}");
    assert!(output.stdout.is_empty());
}
