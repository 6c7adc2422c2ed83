//! Per-cluster values: the overlays are written for cluster1 on network1 in istio-system, and
//! rendering puts the command line's values wherever those defaults stand — label values, env
//! values, and inside embedded YAML such as discovery's mesh.yaml.

use serde_json::Value;

pub const OVERLAY_CLUSTER: &str = "cluster1";
pub const OVERLAY_NETWORK: &str = "network1";
pub const OVERLAY_NAMESPACE: &str = "istio-system";

#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error(
        "--{flag} {value:?} is not a valid Kubernetes label value: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    )]
    BadLabelValue { flag: &'static str, value: String },
    #[error(
        "--namespace {0:?} is not a valid namespace name: use at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
    )]
    BadNamespace(String),
    #[error(
        "--image {0:?} is not an image reference: give one like registry.example/isthmus:0.1.0"
    )]
    BadImage(String),
    #[error(
        "deploy/overlays/{role} never mentions {default:?}: the overlay and the renderer's defaults drifted apart"
    )]
    Unused { role: String, default: &'static str },
}

/// Replacements of the overlay's defaults, checked.
#[derive(Debug)]
pub struct Substitution {
    pairs: Vec<(&'static str, String)>,
}

impl Substitution {
    pub fn new(cluster: &str, network: &str, namespace: &str) -> Result<Self, ValueError> {
        check_label_value("cluster", cluster)?;
        check_label_value("network", network)?;
        if !is_dns_label(namespace) {
            return Err(ValueError::BadNamespace(namespace.to_owned()));
        }
        Ok(Self {
            pairs: vec![
                (OVERLAY_CLUSTER, cluster.to_owned()),
                (OVERLAY_NETWORK, network.to_owned()),
                (OVERLAY_NAMESPACE, namespace.to_owned()),
            ],
        })
    }

    /// Replaces every string equal to a default; returns which defaults were seen, so a role
    /// whose overlay lost one is an error rather than a rendering that ignores a flag.
    pub fn apply(&self, objects: &mut [Value]) -> Vec<&'static str> {
        let mut seen = Vec::new();
        for object in objects {
            self.apply_value(object, &mut seen);
        }
        seen
    }

    fn apply_value(&self, value: &mut Value, seen: &mut Vec<&'static str>) {
        match value {
            Value::String(text) => {
                if let Some((default, replacement)) =
                    self.pairs.iter().find(|(default, _)| text == default)
                {
                    seen.push(default);
                    *text = replacement.clone();
                } else if text.contains('\n') {
                    self.apply_embedded(text, seen);
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|item| self.apply_value(item, seen)),
            Value::Object(map) => map
                .values_mut()
                .for_each(|item| self.apply_value(item, seen)),
            _ => {}
        }
    }

    /// A multi-line string holding a YAML mapping (a mounted config file) is substituted too;
    /// it is re-emitted only when something in it changed.
    fn apply_embedded(&self, text: &mut String, seen: &mut Vec<&'static str>) {
        let Ok(mut inner) = serde_saphyr::from_str::<Value>(text) else {
            return;
        };
        if !inner.is_object() {
            return;
        }
        let original = inner.clone();
        self.apply_value(&mut inner, seen);
        if inner != original
            && let Ok(emitted) = serde_saphyr::to_string(&inner)
        {
            *text = emitted;
        }
    }
}

pub fn check_image(image: &str) -> Result<(), ValueError> {
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValueError::BadImage(image.to_owned()));
    }
    Ok(())
}

fn check_label_value(flag: &'static str, value: &str) -> Result<(), ValueError> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let valid = value.len() <= 63
        && edge_ok(value.chars().next())
        && edge_ok(value.chars().last())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ValueError::BadLabelValue {
            flag,
            value: value.to_owned(),
        })
    }
}

fn is_dns_label(value: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    value.len() <= 63
        && edge_ok(value.chars().next())
        && edge_ok(value.chars().last())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_replaced_in_strings_and_embedded_yaml() {
        let substitution = Substitution::new("c2", "n2", "mesh").expect("valid values");
        let mut objects = vec![json!({
            "labels": {"topology.istio.io/network": "network1"},
            "data": {"mesh.yaml": "clusters:\n- id: cluster1\n  network: network1\n"},
            "other": "network10",
        })];
        let seen = substitution.apply(&mut objects);
        assert_eq!(objects[0]["labels"]["topology.istio.io/network"], "n2");
        assert_eq!(objects[0]["other"], "network10");
        let mesh: Value =
            serde_saphyr::from_str(objects[0]["data"]["mesh.yaml"].as_str().expect("a string"))
                .expect("still YAML");
        assert_eq!(mesh, json!({"clusters": [{"id": "c2", "network": "n2"}]}));
        assert!(seen.contains(&OVERLAY_CLUSTER) && seen.contains(&OVERLAY_NETWORK));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let error = Substitution::new("cluster 2", "n", "ns").expect_err("space");
        assert!(error.to_string().contains("--cluster"), "{error}");
        let error = Substitution::new("c", "n", "Mesh").expect_err("uppercase");
        assert!(error.to_string().contains("--namespace"), "{error}");
        assert!(Substitution::new("c", "-n", "ns").is_err());
    }
}
