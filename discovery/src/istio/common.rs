//! Message types shared by several Istio kinds.
//!
//! Every struct serializes every field (no `skip_serializing_if`): the decoder compares the
//! re-serialized value with the YAML to find fields Isthmus does not know.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Istio's `StringMatch`: one of exact, prefix or regex. An empty match (`{}`) means
/// "present" in header matches, so this is a struct of options rather than an enum.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

/// Which form a [`StringMatch`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMatchKind<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
    /// `{}`: matches when the value is present, whatever it is.
    Present,
}

impl StringMatch {
    pub fn exact(value: &str) -> Self {
        Self {
            exact: Some(value.to_string()),
            ..Self::default()
        }
    }

    pub fn prefix(value: &str) -> Self {
        Self {
            prefix: Some(value.to_string()),
            ..Self::default()
        }
    }

    pub fn regex(value: &str) -> Self {
        Self {
            regex: Some(value.to_string()),
            ..Self::default()
        }
    }

    /// The form of the match; validation rejects more than one form being set, and this
    /// prefers exact, then prefix, then regex.
    pub fn kind(&self) -> StringMatchKind<'_> {
        if let Some(exact) = &self.exact {
            StringMatchKind::Exact(exact)
        } else if let Some(prefix) = &self.prefix {
            StringMatchKind::Prefix(prefix)
        } else if let Some(regex) = &self.regex {
            StringMatchKind::Regex(regex)
        } else {
            StringMatchKind::Present
        }
    }

    /// How many of exact/prefix/regex are set (a valid match sets at most one).
    pub fn forms_set(&self) -> usize {
        [&self.exact, &self.prefix, &self.regex]
            .iter()
            .filter(|form| form.is_some())
            .count()
    }
}

/// A port named by number.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortSelector {
    pub number: u32,
}

/// Where traffic goes: a service host, optionally a subset and a port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Destination {
    pub host: String,
    pub subset: String,
    pub port: Option<PortSelector>,
}

/// A fractional percentage (`{value: 12.5}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Percent {
    pub value: f64,
}

/// `workloadSelector` of a DestinationRule (`matchLabels`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MatchLabelsSelector {
    pub match_labels: BTreeMap<String, String>,
}

/// `workloadSelector` of a ServiceEntry (`labels`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelsSelector {
    pub labels: BTreeMap<String, String>,
}

/// Header edits applied to a request or a response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeaderOperations {
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// Request and response header edits of a route or destination.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Headers {
    pub request: Option<HeaderOperations>,
    pub response: Option<HeaderOperations>,
}
