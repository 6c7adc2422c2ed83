//! A gateway's configuration, encoded once and sent to every gateway that receives it.
//!
//! Replicas of one gateway get the same configuration, which at mesh scale is megabytes of
//! protobuf. Encoding it once per distinct configuration, not once per stream, is most of the
//! push cost saved: each stream only adds its own version. The generated server sends
//! [`SharedPush`] where the protocol says `ConfigPush` (build.rs maps the type), and the bytes
//! on the wire are exactly a `ConfigPush`.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};
use multicluster::proto::GatewayConfig;
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

/// `ConfigPush.config`.
const CONFIG_FIELD: u32 = 1;
/// `GatewayConfig.version`.
const VERSION_FIELD: u32 = 1;

/// One gateway configuration, computed and encoded once.
#[derive(Debug, PartialEq)]
pub struct PreparedConfig {
    /// The `GatewayConfig` encoded with an empty version.
    encoded: Bytes,
}

impl PreparedConfig {
    /// Encodes `config`; its version is ignored (the push layer assigns versions per gateway).
    pub fn new(mut config: GatewayConfig) -> Self {
        config.version.clear();
        PreparedConfig {
            encoded: Bytes::from(config.encode_to_vec()),
        }
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
            config: self.encoded.clone(),
        }
    }
}

/// `ConfigPush { config }` with the config's bytes shared between streams. Encode-only: discovery
/// never receives one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedPush {
    version: String,
    config: Bytes,
}

impl SharedPush {
    fn config_len(&self) -> usize {
        let version = if self.version.is_empty() {
            0
        } else {
            encoding::string::encoded_len(VERSION_FIELD, &self.version)
        };
        version + self.config.len()
    }
}

impl Message for SharedPush {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        encoding::encode_key(CONFIG_FIELD, WireType::LengthDelimited, buf);
        encoding::encode_varint(self.config_len() as u64, buf);
        // Field 1 first, as prost would write it; the shared bytes never hold a version.
        if !self.version.is_empty() {
            encoding::string::encode(VERSION_FIELD, &self.version, buf);
        }
        buf.put_slice(&self.config);
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
        let inner = self.config_len();
        encoding::key_len(CONFIG_FIELD) + encoding::encoded_len_varint(inner as u64) + inner
    }

    fn clear(&mut self) {
        self.version.clear();
        self.config = Bytes::new();
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
                config: Some(expected)
            }
            .encode_to_vec(),
            "byte for byte what prost writes"
        );
    }
}
