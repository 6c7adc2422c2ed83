//! A gateway's configuration, encoded once and sent to every gateway that receives it.
//!
//! Replicas of one gateway get the same configuration, which at mesh scale is megabytes of
//! protobuf. Encoding it once per distinct configuration, not once per stream, is most of the
//! push cost saved: each stream only adds its own version. The generated server sends
//! [`SharedPush`] where the protocol says `ConfigPush` (build.rs maps the type), and the bytes
//! on the wire are exactly a `ConfigPush`.
//!
//! A push is either the full configuration or, when only clusters changed since the version the
//! gateway last ACKed, a `ConfigDelta` carrying just those clusters. The delta's clusters are
//! slices of the full encoding: `ConfigDelta.clusters` has the field number of
//! `GatewayConfig.clusters`, so a cluster's bytes, key included, are the same in both.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use multicluster::proto::GatewayConfig;
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::translate::{ClusterPart, ReusingTranslation};

/// `ConfigPush.config`.
const CONFIG_FIELD: u32 = 1;
/// `ConfigPush.delta`.
const DELTA_FIELD: u32 = 2;
/// `GatewayConfig.version`, and `ConfigDelta.version`.
const VERSION_FIELD: u32 = 1;
/// `GatewayConfig.clusters`, and `ConfigDelta.clusters`.
const CLUSTERS_FIELD: u32 = 3;
/// `ConfigDelta.base_version`.
const BASE_VERSION_FIELD: u32 = 2;
/// `ConfigDelta.removed_clusters`.
const REMOVED_FIELD: u32 = 4;

/// One gateway configuration, computed and encoded once.
#[derive(Debug, PartialEq)]
pub struct PreparedConfig {
    /// The `GatewayConfig` encoded with an empty version.
    encoded: Bytes,
    /// Each cluster's name and where its field (key, length and message) lies in `encoded`.
    clusters: Vec<(String, Range<usize>)>,
    /// Where the clusters' fields lie together: prost writes fields in tag order, so everything
    /// before and after this span is the rest of the configuration.
    clusters_span: Range<usize>,
}

impl PreparedConfig {
    /// Encodes `config`; its version is ignored (the push layer assigns versions per gateway).
    pub fn new(mut config: GatewayConfig) -> Self {
        config.version.clear();
        let encoded = Bytes::from(config.encode_to_vec());
        let ranges = cluster_fields(&encoded);
        let clusters_span = match (ranges.first(), ranges.last()) {
            (Some(first), Some(last)) => first.start..last.end,
            // No clusters: an empty span where they would be; any delta then sends them all.
            _ => 0..0,
        };
        // prost writes the repeated field in vector order, so the n-th field is the n-th cluster.
        let clusters = config
            .clusters
            .into_iter()
            .map(|cluster| cluster.name)
            .zip(ranges)
            .collect();
        PreparedConfig {
            encoded,
            clusters,
            clusters_span,
        }
    }

    /// Encodes a translation that reused clusters: byte for byte what [`PreparedConfig::new`]
    /// gives for the whole config, without encoding again the clusters that come already
    /// encoded. Takes the translation's `rest` and leaves its clusters in place for
    /// [`ReusingTranslation::into_memo`].
    pub fn from_translation(translation: &mut ReusingTranslation) -> Self {
        let mut rest = std::mem::take(&mut translation.rest);
        rest.version.clear();
        rest.clusters.clear();
        let rest = rest.encode_to_vec();
        // prost writes fields in tag order: the clusters go before the first later field.
        let split = top_level_fields(&rest)
            .and_then(|fields| {
                fields
                    .iter()
                    .find(|(tag, _)| *tag > CLUSTERS_FIELD)
                    .map(|(_, range)| range.start)
            })
            .unwrap_or(rest.len());
        // Megabytes at mesh scale: sized once rather than grown by doubling.
        let clusters_len: usize = translation
            .clusters
            .iter()
            .map(|(_, part)| match part {
                ClusterPart::Fresh { cluster, .. } => {
                    encoding::message::encoded_len(CLUSTERS_FIELD, cluster.as_ref())
                }
                ClusterPart::Reused(entry) => entry.field().len(),
            })
            .sum();
        let mut encoded = Vec::with_capacity(rest.len() + clusters_len);
        encoded.extend_from_slice(&rest[..split]);
        let mut names = Vec::with_capacity(translation.clusters.len());
        for (name, part) in &translation.clusters {
            let start = encoded.len();
            match part {
                ClusterPart::Fresh { cluster, .. } => {
                    encoding::message::encode(CLUSTERS_FIELD, cluster.as_ref(), &mut encoded);
                }
                ClusterPart::Reused(entry) => encoded.extend_from_slice(entry.field()),
            }
            names.push((name.clone(), start..encoded.len()));
        }
        let clusters_span = match (names.first(), names.last()) {
            (Some((_, first)), Some((_, last))) => first.start..last.end,
            _ => 0..0,
        };
        encoded.extend_from_slice(&rest[split..]);
        PreparedConfig {
            encoded: Bytes::from(encoded),
            clusters: names,
            clusters_span,
        }
    }

    /// Each cluster's encoded field, key included, in order; shares this config's bytes.
    pub fn cluster_fields(&self) -> impl Iterator<Item = Bytes> + '_ {
        self.clusters
            .iter()
            .map(|(_, range)| self.encoded.slice(range.clone()))
    }

    /// The encoded configuration without a version: equal bytes mean an equal configuration,
    /// since prost writes fields and (BTreeMap) map entries in a fixed order.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The push of this configuration as `version`.
    pub(crate) fn push(self: &Arc<Self>, version: String) -> SharedPush {
        SharedPush {
            version,
            body: Body::Full(self.encoded.clone()),
        }
    }

    /// The push of this configuration as `version` for a gateway holding `base` as
    /// `base_version`: a delta when only clusters differ and the delta is the smaller message,
    /// else the full configuration.
    pub(crate) fn push_over(
        self: &Arc<Self>,
        version: String,
        base: &PreparedConfig,
        base_version: &str,
    ) -> SharedPush {
        match self.delta_from(base) {
            Some((clusters, removed)) => SharedPush {
                version,
                body: Body::Delta {
                    base_version: base_version.to_owned(),
                    clusters,
                    removed,
                },
            },
            None => self.push(version),
        }
    }

    fn rest(&self) -> (&[u8], &[u8]) {
        (
            &self.encoded[..self.clusters_span.start],
            &self.encoded[self.clusters_span.end..],
        )
    }

    /// The changed or added clusters' fields and the removed clusters' names, or `None` when
    /// anything but clusters changed or the delta would not be smaller than the whole.
    fn delta_from(&self, base: &PreparedConfig) -> Option<(Vec<Bytes>, Vec<String>)> {
        if self.clusters.is_empty() || base.clusters.is_empty() || self.rest() != base.rest() {
            return None;
        }
        let before: HashMap<&str, &[u8]> = base
            .clusters
            .iter()
            .map(|(name, range)| (name.as_str(), &base.encoded[range.clone()]))
            .collect();
        let mut size = 0;
        let mut changed = Vec::new();
        for (name, range) in &self.clusters {
            let bytes = &self.encoded[range.clone()];
            if before.get(name.as_str()) != Some(&bytes) {
                size += bytes.len();
                changed.push(self.encoded.slice(range.clone()));
            }
        }
        let now: std::collections::HashSet<&str> = self
            .clusters
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        let removed: Vec<String> = base
            .clusters
            .iter()
            .filter(|(name, _)| !now.contains(name.as_str()))
            .map(|(name, _)| name.clone())
            .collect();
        size += removed.iter().map(String::len).sum::<usize>();
        // Past half the whole, the gateway's merge buys little over decoding the full config.
        (size < self.encoded.len() / 2).then_some((changed, removed))
    }
}

/// The byte ranges of every top-level `clusters` field of an encoded `GatewayConfig`.
fn cluster_fields(encoded: &[u8]) -> Vec<Range<usize>> {
    top_level_fields(encoded)
        .unwrap_or_default()
        .into_iter()
        .filter(|(tag, _)| *tag == CLUSTERS_FIELD)
        .map(|(_, range)| range)
        .collect()
}

/// The tag and byte range of every top-level field of an encoded `GatewayConfig` (all of
/// whose fields are length-delimited), or `None` if the bytes are not such a message.
fn top_level_fields(encoded: &[u8]) -> Option<Vec<(u32, Range<usize>)>> {
    let mut fields = Vec::new();
    let mut rest = encoded;
    while !rest.is_empty() {
        let start = encoded.len() - rest.len();
        let key = encoding::decode_varint(&mut rest).ok()?;
        if WireType::try_from(key & 0x7).ok()? != WireType::LengthDelimited {
            return None;
        }
        let length = usize::try_from(encoding::decode_varint(&mut rest).ok()?).ok()?;
        if length > rest.len() {
            return None;
        }
        rest = &rest[length..];
        let tag = u32::try_from(key >> 3).ok()?;
        fields.push((tag, start..encoded.len() - rest.len()));
    }
    Some(fields)
}

/// `ConfigPush` with the config's bytes shared between streams. Encode-only: discovery never
/// receives one.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedPush {
    version: String,
    body: Body,
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    /// `ConfigPush.config`: the encoded config without its version.
    Full(Bytes),
    /// `ConfigPush.delta`.
    Delta {
        base_version: String,
        /// Encoded `clusters` fields, key included.
        clusters: Vec<Bytes>,
        removed: Vec<String>,
    },
}

impl Default for SharedPush {
    fn default() -> Self {
        SharedPush {
            version: String::new(),
            body: Body::Full(Bytes::new()),
        }
    }
}

fn string_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        encoding::key_len(tag) + encoding::encoded_len_varint(value.len() as u64) + value.len()
    }
}

fn encode_string(tag: u32, value: &str, buf: &mut impl BufMut) {
    if !value.is_empty() {
        encoding::encode_key(tag, WireType::LengthDelimited, buf);
        encoding::encode_varint(value.len() as u64, buf);
        buf.put_slice(value.as_bytes());
    }
}

impl SharedPush {
    /// Whether this push is a delta (for logs and tests).
    pub(crate) fn is_delta(&self) -> bool {
        matches!(self.body, Body::Delta { .. })
    }

    fn field(&self) -> u32 {
        match self.body {
            Body::Full(_) => CONFIG_FIELD,
            Body::Delta { .. } => DELTA_FIELD,
        }
    }

    fn inner_len(&self) -> usize {
        let version = string_len(VERSION_FIELD, &self.version);
        match &self.body {
            Body::Full(config) => version + config.len(),
            Body::Delta {
                base_version,
                clusters,
                removed,
            } => {
                version
                    + string_len(BASE_VERSION_FIELD, base_version)
                    + clusters.iter().map(Bytes::len).sum::<usize>()
                    + removed
                        .iter()
                        .map(|name| string_len(REMOVED_FIELD, name))
                        .sum::<usize>()
            }
        }
    }
}

impl Message for SharedPush {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::encode_key(self.field(), WireType::LengthDelimited, buf);
        encoding::encode_varint(self.inner_len() as u64, buf);
        // Field 1 first, as prost would write it; the shared bytes never hold a version.
        encode_string(VERSION_FIELD, &self.version, buf);
        match &self.body {
            Body::Full(config) => buf.put_slice(config),
            Body::Delta {
                base_version,
                clusters,
                removed,
            } => {
                encode_string(BASE_VERSION_FIELD, base_version, buf);
                for cluster in clusters {
                    buf.put_slice(cluster);
                }
                for name in removed {
                    encode_string(REMOVED_FIELD, name, buf);
                }
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        let inner = self.inner_len();
        encoding::key_len(self.field()) + encoding::encoded_len_varint(inner as u64) + inner
    }

    fn clear(&mut self) {
        *self = SharedPush::default();
    }
}

#[cfg(test)]
mod tests {
    use multicluster::proto::{Cluster, ConfigPush};

    use super::*;

    #[test]
    fn shared_push_is_a_config_push_on_the_wire() {
        let config = GatewayConfig {
            version: "ignored".into(),
            clusters: vec![Cluster {
                name: "outbound|80||a.default.svc.cluster.local".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let prepared = Arc::new(PreparedConfig::new(config.clone()));
        let push = prepared.push("7".into());
        let bytes = push.encode_to_vec();
        assert_eq!(bytes.len(), push.encoded_len());
        let decoded = ConfigPush::decode(bytes.as_slice()).expect("a ConfigPush");
        let expected = GatewayConfig {
            version: "7".into(),
            ..config
        };
        assert_eq!(decoded.config, Some(expected.clone()));
        assert_eq!(
            bytes,
            ConfigPush {
                config: Some(expected),
                delta: None,
            }
            .encode_to_vec(),
            "byte for byte what prost writes"
        );
    }
}

#[cfg(test)]
mod delta_tests {
    use multicluster::proto::{Cluster, ConfigPush, Endpoint, Listener};

    use super::*;

    fn cluster(name: &str, address: &str) -> Cluster {
        Cluster {
            name: name.into(),
            endpoints: vec![Endpoint {
                address: address.into(),
                port: 80,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn config(clusters: Vec<Cluster>) -> GatewayConfig {
        GatewayConfig {
            listeners: vec![Listener {
                name: "0.0.0.0_15443".into(),
                port: 15443,
                ..Default::default()
            }],
            clusters,
            ..Default::default()
        }
    }

    fn decode(push: &SharedPush) -> ConfigPush {
        let bytes = push.encode_to_vec();
        assert_eq!(bytes.len(), push.encoded_len());
        ConfigPush::decode(bytes.as_slice()).expect("a ConfigPush")
    }

    #[test]
    fn a_cluster_change_is_sent_as_a_delta_that_applies_to_the_full_config() {
        let many: Vec<Cluster> = (0..10)
            .map(|n| cluster(&format!("outbound|80||s{n}"), "10.0.0.1"))
            .collect();
        let before = config(many.clone());
        let mut after_clusters = many;
        after_clusters[3] = cluster("outbound|80||s3", "10.0.0.9");
        after_clusters.remove(5);
        after_clusters.push(cluster("outbound|80||s99", "10.0.0.7"));
        let after = config(after_clusters);

        let base = Arc::new(PreparedConfig::new(before.clone()));
        let next = Arc::new(PreparedConfig::new(after.clone()));
        let push = next.push_over("8".into(), &base, "7");
        assert!(push.is_delta());
        let decoded = decode(&push);
        assert_eq!(decoded.config, None);
        let delta = decoded.delta.expect("a delta");
        assert_eq!(delta.clusters.len(), 2, "the changed and the added cluster");
        assert_eq!(delta.removed_clusters, vec!["outbound|80||s5".to_owned()]);

        let mut held = GatewayConfig {
            version: "7".into(),
            ..before
        };
        let (applied, _undo) =
            multicluster::delta::apply_delta(Some(&mut held), delta).expect("base matches");
        let expected = GatewayConfig {
            version: "8".into(),
            ..after
        };
        assert_eq!(*applied, expected, "a delta applied equals the full config");
    }

    #[test]
    fn anything_but_clusters_changing_sends_the_full_config() {
        let clusters: Vec<Cluster> = (0..10)
            .map(|n| cluster(&format!("outbound|80||s{n}"), "10.0.0.1"))
            .collect();
        let before = config(clusters.clone());
        let mut after = config(clusters);
        after.listeners[0].port = 15444;
        let base = Arc::new(PreparedConfig::new(before));
        let next = Arc::new(PreparedConfig::new(after.clone()));
        let push = next.push_over("2".into(), &base, "1");
        assert!(!push.is_delta());
        let expected = GatewayConfig {
            version: "2".into(),
            ..after
        };
        assert_eq!(decode(&push).config, Some(expected));
    }
}
