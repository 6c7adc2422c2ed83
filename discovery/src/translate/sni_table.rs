//! AUTO_PASSTHROUGH: the exact SNI names an east-west gateway accepts.
//!
//! One name per (service, port) and one per (service, port, DestinationRule subset), for every
//! service the server's hosts select. Each maps to a cluster of the endpoints on the gateway's
//! own network; a name whose cluster is empty stays in the table so the gateway can say "no
//! endpoints on this network" instead of "unknown SNI".

use multicluster::proto;
use multicluster::sni::SniKey;

use super::clusters::{EndpointScope, Target};
use super::hosts::covers;
use super::listeners::ServerContext;
use super::{Item, Translator};

impl Translator<'_> {
    pub(super) fn sni_table(&mut self, context: &ServerContext<'_>) -> proto::SniTable {
        let item = Item::of("Gateway", context.gateway);
        let field = format!("{}.hosts", context.field());
        let mut routes = Vec::new();
        let snapshot = self.snapshot;
        for (hostname, record) in &snapshot.services {
            let namespace = &record.service.name.namespace;
            let selected = context
                .hosts
                .iter()
                .any(|host| host.admits_namespace(namespace) && covers(&host.host, hostname));
            if !selected {
                continue;
            }
            let subsets: Vec<&str> = self
                .destination_rule(hostname)
                .map(|rule| rule.spec.subsets.iter().map(|s| s.name.as_str()).collect())
                .unwrap_or_default();
            for port in &record.service.ports {
                for subset in std::iter::once("").chain(subsets.iter().copied()) {
                    let target = Target {
                        host: hostname,
                        port: Some(u32::from(port.number)),
                        subset,
                    };
                    let Some(cluster) =
                        self.cluster_for(&item, &field, &target, EndpointScope::OwnNetworkMtls)
                    else {
                        continue;
                    };
                    // cluster_for only names clusters whose key is a valid SNI key.
                    if let Ok(key) = SniKey::from_cluster_name(&cluster) {
                        routes.push(proto::SniRoute {
                            sni: key.to_sni(),
                            cluster,
                        });
                    }
                }
            }
        }
        proto::SniTable { routes }
    }
}
