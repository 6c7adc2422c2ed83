//! Document → [`Resource`] dispatch on apiVersion and kind.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::istio::{API_VERSIONS, IstioObject};

use super::kubernetes::LabelSets;
use super::split::split_documents;
use super::{DecodeError, Decoded, Origin, Resource};

/// Decodes every document of a multi-document YAML text. `origin` names the text in
/// messages (usually the file path). Empty documents are skipped silently; documents that
/// fail are returned as errors and the others are still decoded.
pub fn decode_documents(text: &str, origin: &str) -> (Vec<Decoded>, Vec<DecodeError>) {
    let mut resources = Vec::new();
    let mut errors = Vec::new();
    let mut label_sets = LabelSets::default();
    for document in split_documents(text) {
        let place = Origin {
            path: origin.to_string(),
            document: document.index,
            line: document.line,
            item: None,
        };
        // Parsing into a JSON value first gives YAML the meaning Kubernetes gives it (the
        // API server also sees JSON), and lets us dispatch on apiVersion/kind. Most documents
        // take the fast road; what it cannot vouch for, and every error, is serde-saphyr's.
        let parsed = match super::fast_yaml::json_value(&document.text) {
            Some(value) => Ok(value),
            None => serde_saphyr::from_str(&document.text),
        };
        let value: Value = match parsed {
            Ok(value) => value,
            Err(error) => {
                let message = yaml_message(&error, document.line);
                errors.push(DecodeError::Yaml {
                    origin: place,
                    message,
                });
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        let decoded_before = resources.len();
        decode_value(value, place, true, &mut resources, &mut errors);
        for decoded in &mut resources[decoded_before..] {
            share_labels(&mut decoded.resource, &mut label_sets);
        }
    }
    (resources, errors)
}

/// Points `resource`'s labels at the equal set an earlier object of the same text has, so a
/// file of pods holds each distinct set once.
fn share_labels(resource: &mut Resource, known: &mut LabelSets) {
    let metadata = match resource {
        Resource::Pod(pod) => Arc::get_mut(pod).map(|pod| &mut pod.metadata),
        Resource::Service(service) => Arc::get_mut(service).map(|service| &mut service.metadata),
        Resource::EndpointSlice(slice) => Arc::get_mut(slice).map(|slice| &mut slice.metadata),
        _ => None,
    };
    if let Some(labels) = metadata.and_then(|metadata| metadata.labels.as_mut()) {
        *labels = known.share(labels);
    }
}

/// Decodes one object that arrived as JSON (from an API server) by the same rules as a document
/// of a file, so the same object means the same thing from either source. A `List` is refused:
/// watches deliver objects one at a time.
pub fn decode_object(value: Value, origin: Origin) -> Result<Decoded, Box<DecodeError>> {
    let mut resources = Vec::with_capacity(1);
    let mut errors = Vec::new();
    decode_value(value, origin.clone(), false, &mut resources, &mut errors);
    if let Some(error) = errors.into_iter().next() {
        return Err(Box::new(error));
    }
    resources.pop().ok_or_else(|| {
        Box::new(DecodeError::NotAnObject {
            origin,
            found: "nothing",
        })
    })
}

/// The parser's reason, with its line made relative to the file rather than the document.
fn yaml_message(error: &serde_saphyr::Error, first_line: usize) -> String {
    let bare = one_line(&error.without_snippet().to_string());
    let bare = bare.strip_prefix("error: ").unwrap_or(&bare).to_string();
    let Some(location) = error.location() else {
        return bare;
    };
    let prefix = format!("line {} column {}: ", location.line(), location.column());
    let suffix = format!(" at line {}, column {}", location.line(), location.column());
    let reason = bare.strip_prefix(&prefix).unwrap_or(&bare);
    let reason = reason.strip_suffix(&suffix).unwrap_or(reason);
    let line = u64::try_from(first_line)
        .unwrap_or(u64::MAX)
        .saturating_add(location.line())
        .saturating_sub(1);
    format!("line {line}, column {}: {reason}", location.column())
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

fn decode_value(
    value: Value,
    origin: Origin,
    lists_allowed: bool,
    resources: &mut Vec<Decoded>,
    errors: &mut Vec<DecodeError>,
) {
    let Value::Object(mut object) = value else {
        errors.push(DecodeError::NotAnObject {
            origin,
            found: type_name(&value),
        });
        return;
    };
    let Some(api_version) = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        errors.push(DecodeError::MissingTypeMeta {
            origin,
            field: "apiVersion",
        });
        return;
    };
    let Some(kind) = object
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        errors.push(DecodeError::MissingTypeMeta {
            origin,
            field: "kind",
        });
        return;
    };

    if kind == "List" && api_version == "v1" {
        if !lists_allowed {
            errors.push(DecodeError::NestedList { origin });
            return;
        }
        let items = match object.remove("items") {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) => Vec::new(),
            Some(other) => {
                errors.push(DecodeError::Invalid {
                    origin,
                    api_version,
                    kind,
                    name: String::new(),
                    message: format!("items must be a sequence, found {}", type_name(&other)),
                });
                return;
            }
        };
        for (index, item) in items.into_iter().enumerate() {
            let item_origin = Origin {
                item: Some(index),
                ..origin.clone()
            };
            decode_value(item, item_origin, false, resources, errors);
        }
        return;
    }

    let name = object
        .get("metadata")
        .and_then(|metadata| metadata.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let invalid = |message: String| DecodeError::Invalid {
        origin: origin.clone(),
        api_version: api_version.clone(),
        kind: kind.clone(),
        name: name.clone(),
        message,
    };
    let istio = API_VERSIONS.contains(&api_version.as_str());
    let decoded = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => kube_object(object).map(Resource::Namespace),
        ("v1", "Service") => kube_object(object).map(Resource::Service),
        ("v1", "Pod") => kube_object(object).map(Resource::Pod),
        ("v1", "Secret") => kube_object(object).map(Resource::Secret),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            kube_object(object).map(Resource::EndpointSlice)
        }
        (_, "Gateway") if istio => istio_object(object).map(Resource::Gateway),
        (_, "VirtualService") if istio => istio_object(object).map(Resource::VirtualService),
        (_, "DestinationRule") if istio => istio_object(object).map(Resource::DestinationRule),
        (_, "ServiceEntry") if istio => istio_object(object).map(Resource::ServiceEntry),
        _ => {
            errors.push(DecodeError::Unsupported {
                origin,
                api_version,
                kind,
            });
            return;
        }
    };
    match decoded {
        Ok(resource) => resources.push(Decoded { origin, resource }),
        Err(message) => errors.push(invalid(message)),
    }
}

fn kube_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<Arc<T>, String> {
    from_value(Value::Object(object), "").map(Arc::new)
}

/// Deserializes with the path of the offending field in the error (`spec.ports[0].port: ...`).
fn from_value<T: DeserializeOwned>(value: Value, root: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match (root.is_empty(), path.as_str()) {
            (true, "." | "") => inner.to_string(),
            (true, path) => format!("{path}: {inner}"),
            (false, "." | "") => format!("{root}: {inner}"),
            (false, path) => format!("{root}.{path}: {inner}"),
        }
    })
}

fn istio_object<S>(mut object: Map<String, Value>) -> Result<Arc<IstioObject<S>>, String>
where
    S: DeserializeOwned + Serialize + Default,
{
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let metadata = match object.remove("metadata") {
        None | Some(Value::Null) => Default::default(),
        Some(metadata) => from_value(metadata, "metadata")?,
    };
    let mut unknown_fields = Vec::new();
    let spec = match object.remove("spec") {
        None | Some(Value::Null) => S::default(),
        Some(raw) => {
            let spec: S = from_value(raw.clone(), "spec")?;
            // Serializing back writes every field Isthmus knows: whatever else the YAML
            // holds was not understood.
            let known = serde_json::to_value(&spec).map_err(|error| format!("spec: {error}"))?;
            collect_unknown(&raw, &known, "spec", &mut unknown_fields);
            spec
        }
    };
    for key in object.keys() {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "status") {
            unknown_fields.push(key.clone());
        }
    }
    Ok(Arc::new(IstioObject {
        api_version,
        metadata,
        spec,
        unknown_fields,
    }))
}

fn collect_unknown(raw: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (raw, known) {
        (Value::Object(raw), Value::Object(known)) => {
            for (key, raw_value) in raw {
                let child = format!("{path}.{key}");
                match known.get(key) {
                    None => out.push(child),
                    Some(known_value) => collect_unknown(raw_value, known_value, &child, out),
                }
            }
        }
        (Value::Array(raw), Value::Array(known)) => {
            for (index, (raw_value, known_value)) in raw.iter().zip(known).enumerate() {
                collect_unknown(raw_value, known_value, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}
