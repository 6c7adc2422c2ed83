//! The part of kustomize that deploy/ uses: `bases`/`resources`, `namespace`, `images` and
//! `patchesStrategicMerge` (maps merge, lists of named items merge by `name`). A kustomization
//! field outside that set is refused, so the renderer can never silently build something
//! different from `kubectl kustomize`; CI compares the two (scripts/validate-manifests.sh).

use serde::Deserialize;
use serde_json::Value;

use super::embedded;

#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    #[error("deploy/{0} is not compiled into this binary: add it to src/cli/deploy/embedded.rs")]
    Missing(String),
    #[error("deploy/{path}: {message}")]
    Yaml { path: String, message: String },
    #[error(
        "deploy/{path}: document {index} is not a Kubernetes object with kind and metadata.name"
    )]
    NotAnObject { path: String, index: usize },
    #[error("deploy/{path}: patch {kind}/{name} matches no resource: fix its kind or name")]
    UnmatchedPatch {
        path: String,
        kind: String,
        name: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Kustomization {
    #[serde(default)]
    bases: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    namespace: Option<String>,
    #[serde(default)]
    images: Vec<ImageRule>,
    #[serde(default)]
    patches_strategic_merge: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImageRule {
    name: String,
    new_name: Option<String>,
    new_tag: Option<String>,
}

/// What the command line puts in place of a kustomization's own settings.
#[derive(Debug, Default)]
pub struct Overrides {
    pub namespace: Option<String>,
    /// A whole image reference for every container whose image the kustomization renames.
    pub image: Option<String>,
}

/// Builds the kustomization in `dir` (relative to deploy/), as `kubectl kustomize` would.
pub fn build(dir: &str, overrides: &Overrides) -> Result<Vec<Value>, KustomizeError> {
    let path = format!("{dir}/kustomization.yaml");
    let kustomization: Kustomization = parse(&path)?;
    let mut objects = Vec::new();
    for base in &kustomization.bases {
        objects.extend(build(&join(dir, base), &Overrides::default())?);
    }
    for resource in &kustomization.resources {
        let path = join(dir, resource);
        if embedded::file(&format!("{path}/kustomization.yaml")).is_some() {
            objects.extend(build(&path, &Overrides::default())?);
        } else {
            objects.extend(documents(&path)?);
        }
    }
    for patch_path in &kustomization.patches_strategic_merge {
        let patch_path = join(dir, patch_path);
        for patch in documents(&patch_path)? {
            let target = objects
                .iter_mut()
                .find(|object| same_object(object, &patch))
                .ok_or_else(|| KustomizeError::UnmatchedPatch {
                    path: patch_path.clone(),
                    kind: text(&patch["kind"]),
                    name: text(&patch["metadata"]["name"]),
                })?;
            merge(target, &patch);
        }
    }
    for rule in &kustomization.images {
        let image = match (&overrides.image, &rule.new_name, &rule.new_tag) {
            (Some(image), _, _) => image.clone(),
            (None, new_name, new_tag) => {
                let name = new_name.as_deref().unwrap_or(&rule.name);
                match new_tag {
                    Some(tag) => format!("{name}:{tag}"),
                    None => name.to_owned(),
                }
            }
        };
        for object in &mut objects {
            set_images(object, &rule.name, &image);
        }
    }
    if let Some(namespace) = overrides
        .namespace
        .as_ref()
        .or(kustomization.namespace.as_ref())
    {
        set_namespace(&mut objects, namespace);
    }
    Ok(objects)
}

fn parse<T: for<'de> Deserialize<'de>>(path: &str) -> Result<T, KustomizeError> {
    let text = embedded::file(path).ok_or_else(|| KustomizeError::Missing(path.to_owned()))?;
    serde_saphyr::from_str(text).map_err(|error| KustomizeError::Yaml {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

/// The objects of a multi-document YAML file.
fn documents(path: &str) -> Result<Vec<Value>, KustomizeError> {
    let text = embedded::file(path).ok_or_else(|| KustomizeError::Missing(path.to_owned()))?;
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|error| KustomizeError::Yaml {
            path: path.to_owned(),
            message: error.to_string(),
        })?;
    let documents: Vec<Value> = documents.into_iter().filter(|doc| !doc.is_null()).collect();
    for (index, document) in documents.iter().enumerate() {
        if !document["kind"].is_string() || !document["metadata"]["name"].is_string() {
            return Err(KustomizeError::NotAnObject {
                path: path.to_owned(),
                index,
            });
        }
    }
    Ok(documents)
}

/// `dir` joined with a relative path, `..` resolved (paths stay inside deploy/).
fn join(dir: &str, relative: &str) -> String {
    let mut parts: Vec<&str> = dir.split('/').filter(|part| !part.is_empty()).collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn api_group(object: &Value) -> &str {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

fn same_object(object: &Value, patch: &Value) -> bool {
    object["kind"] == patch["kind"]
        && object["metadata"]["name"] == patch["metadata"]["name"]
        && api_group(object) == api_group(patch)
}

/// Strategic merge as deploy/ uses it: maps merge key by key (`null` removes), lists whose
/// items all carry a `name` merge item by item (containers, env, volumes), other lists are
/// replaced.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    merge(existing, value);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (Value::Array(target), Value::Array(patch)) if named(target) && named(patch) => {
            let mut added = Vec::new();
            for item in patch {
                match target
                    .iter_mut()
                    .find(|existing| existing["name"] == item["name"])
                {
                    Some(existing) => merge(existing, item),
                    None => added.push(item.clone()),
                }
            }
            // Items only the patch has go first, where kustomize puts them (env order is
            // visible to `$(VAR)` references).
            target.splice(0..0, added);
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn named(items: &[Value]) -> bool {
    items.iter().all(|item| item["name"].is_string())
}

fn set_images(value: &mut Value, name: &str, image: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "containers" || key == "initContainers" {
                    for container in child.as_array_mut().into_iter().flatten() {
                        if container["image"]
                            .as_str()
                            .is_some_and(|old| image_name(old) == name)
                        {
                            container["image"] = Value::String(image.to_owned());
                        }
                    }
                } else {
                    set_images(child, name, image);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| set_images(item, name, image)),
        _ => {}
    }
}

/// `repo/name:tag@digest` → `repo/name` (a port in the registry host is not a tag).
fn image_name(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    match reference.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => reference,
    }
}

const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
];

/// Namespaced objects move to `namespace`, and so do binding subjects naming one of the
/// ServiceAccounts being moved (kustomize's namespace transformer).
fn set_namespace(objects: &mut [Value], namespace: &str) {
    let accounts: Vec<Value> = objects
        .iter()
        .filter(|object| object["kind"] == "ServiceAccount")
        .map(|object| object["metadata"]["name"].clone())
        .collect();
    for object in objects.iter_mut() {
        let kind = text(&object["kind"]);
        if !CLUSTER_SCOPED.contains(&kind.as_str())
            && let Some(metadata) = object["metadata"].as_object_mut()
        {
            metadata.insert("namespace".into(), Value::String(namespace.to_owned()));
        }
        if kind == "RoleBinding" || kind == "ClusterRoleBinding" {
            for subject in object["subjects"].as_array_mut().into_iter().flatten() {
                if subject["kind"] == "ServiceAccount" && accounts.contains(&subject["name"]) {
                    subject["namespace"] = Value::String(namespace.to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_lists_merge_by_name_and_other_lists_are_replaced() {
        let mut target = json!({"env": [{"name": "A", "value": "1"}], "args": ["x"], "drop": 1});
        merge(
            &mut target,
            &json!({"env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}],
                    "args": ["y"], "drop": null}),
        );
        assert_eq!(
            target,
            json!({"env": [{"name": "B", "value": "3"}, {"name": "A", "value": "2"}], "args": ["y"]})
        );
    }

    #[test]
    fn image_names_ignore_tags_digests_but_not_registry_ports() {
        assert_eq!(image_name("isthmus:0.1.0"), "isthmus");
        assert_eq!(image_name("reg:5000/isthmus"), "reg:5000/isthmus");
        assert_eq!(
            image_name("reg:5000/isthmus:1@sha256:ab"),
            "reg:5000/isthmus"
        );
    }

    #[test]
    fn relative_paths_resolve_inside_deploy() {
        assert_eq!(
            join("overlays/eastwest", "../../base/eastwest"),
            "base/eastwest"
        );
        assert_eq!(
            join("overlays/eastwest", "./cluster.yaml"),
            "overlays/eastwest/cluster.yaml"
        );
    }
}
