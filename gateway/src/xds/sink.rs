//! What can receive discovery's configurations: the running gateway, and anything shared.

use std::sync::Arc;

use multicluster::proto::GatewayConfig;

use super::ConfigSink;
use crate::runtime::Gateway;

impl ConfigSink for Gateway {
    fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        Gateway::apply(self, config)
    }
}

/// Lets the caller keep a handle on the sink it gives the client (admin, tests).
impl<T: ConfigSink> ConfigSink for Arc<T> {
    fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        T::apply(self, config)
    }
}
