//! Where a configured listener really binds: tests and local runs move listeners to another
//! address or port without changing the configuration they apply.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::config::ListenerKey;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Bind every listener to this address instead of the configured one (e.g. 127.0.0.11
    /// for one of several gateways on loopback).
    pub address: Option<IpAddr>,
    /// Configured port → port to bind; 0 picks a free port.
    pub ports: BTreeMap<u16, u16>,
    /// Ports `ports` does not name bind to a free port instead of the configured one.
    pub free_ports: bool,
}

impl Placement {
    pub fn socket_address(&self, key: &ListenerKey) -> SocketAddr {
        let address = self.address.unwrap_or(key.address);
        let unmapped = if self.free_ports { 0 } else { key.port };
        let port = self.ports.get(&key.port).copied().unwrap_or(unmapped);
        SocketAddr::new(address, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_independently() {
        let key = ListenerKey {
            address: "0.0.0.0".parse().unwrap(),
            port: 15443,
        };
        assert_eq!(
            Placement::default().socket_address(&key),
            "0.0.0.0:15443".parse().unwrap()
        );
        let placement = Placement {
            address: Some("127.0.0.11".parse().unwrap()),
            ports: BTreeMap::from([(15443, 18443)]),
            free_ports: true,
        };
        assert_eq!(
            placement.socket_address(&key),
            "127.0.0.11:18443".parse().unwrap()
        );
        let other = ListenerKey { port: 443, ..key };
        assert_eq!(
            placement.socket_address(&other),
            "127.0.0.11:0".parse().unwrap()
        );
    }
}
