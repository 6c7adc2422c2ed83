//! The running gateway is the sink discovery's configurations go to.

use multicluster::proto::GatewayConfig;

use super::ConfigSink;
use crate::runtime::Gateway;

impl ConfigSink for Gateway {
    fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        Gateway::apply(self, config)
    }
}
