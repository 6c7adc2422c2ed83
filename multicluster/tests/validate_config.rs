//! `validate()` must find every problem in one pass and point at each.

#![allow(clippy::unwrap_used)] // test helpers panic on bad fixtures by design

use multicluster::proto::{
    Cluster, CredentialFiles, Endpoint, GatewayConfig, Listener, Protocol, RouteTable, Server,
    ServerTls, SniRoute, SniTable, TcpRoute, TcpRoutes, TlsCredential, TlsMode, TlsVersion,
    WeightedCluster, server::Routing, tls_credential::Source,
};
use multicluster::validate;

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";

fn cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        endpoints: vec![Endpoint {
            address: "10.0.0.1".into(),
            port: 9080,
            weight: 1,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn eastwest() -> GatewayConfig {
    GatewayConfig {
        version: "7".into(),
        listeners: vec![Listener {
            name: "0.0.0.0_15443".into(),
            bind_address: "0.0.0.0".into(),
            port: 15443,
            servers: vec![Server {
                name: "tls.15443.tls.cross-network-gateway.istio-system".into(),
                protocol: Protocol::Tls as i32,
                hosts: vec!["*.local".into()],
                tls: Some(ServerTls {
                    mode: TlsMode::AutoPassthrough as i32,
                    ..Default::default()
                }),
                routing: Some(Routing::AutoPassthrough(SniTable {
                    routes: vec![SniRoute {
                        sni: "outbound_.9080_._.reviews.default.svc.cluster.local".into(),
                        cluster: REVIEWS.into(),
                    }],
                })),
            }],
        }],
        clusters: vec![cluster(REVIEWS)],
        ..Default::default()
    }
}

fn messages(config: &GatewayConfig) -> Vec<String> {
    validate(config).iter().map(ToString::to_string).collect()
}

#[test]
fn a_good_config_has_no_problems() {
    assert_eq!(messages(&eastwest()), Vec::<String>::new());
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut config = eastwest();
    config.version.clear();
    config.clusters.push(cluster(REVIEWS));
    config.clusters.push(cluster("reviews-v1"));
    config.clusters[0].endpoints[0].address = "ten.0.0.1".into();
    let Some(Routing::AutoPassthrough(table)) = &mut config.listeners[0].servers[0].routing else {
        unreachable!()
    };
    table.routes.push(table.routes[0].clone());
    table.routes.push(SniRoute {
        sni: "inbound_.9080_._.reviews.default.svc.cluster.local".into(),
        cluster: "outbound|9080||missing.default.svc.cluster.local".into(),
    });
    config.listeners.push(Listener {
        name: "0.0.0.0_15443".into(),
        bind_address: "0.0.0.0".into(),
        port: 15443,
        servers: vec![],
    });

    let found = messages(&config);
    let expected = [
        "version: is empty; discovery must version every push",
        "clusters[outbound|9080||reviews.default.svc.cluster.local]: is defined more than once",
        "clusters[outbound|9080||reviews.default.svc.cluster.local].endpoints[0]: address \"ten.0.0.1\" is not an IP address",
        "clusters[reviews-v1]: name is not a valid cluster name",
        "listeners[0.0.0.0_15443]: is defined more than once",
        "auto_passthrough[outbound_.9080_._.reviews.default.svc.cluster.local]: SNI appears more than once on this listener",
        "auto_passthrough[inbound_.9080_._.reviews.default.svc.cluster.local]: \"inbound_.9080_._.reviews.default.svc.cluster.local\" is not an outbound name",
        "refers to cluster \"outbound|9080||missing.default.svc.cluster.local\", which is not defined",
        "listeners[0.0.0.0_15443]: binds the same address and port as listener 0.0.0.0_15443",
        "listeners[0.0.0.0_15443]: has no servers",
    ];
    for needle in expected {
        assert!(
            found.iter().any(|m| m.contains(needle)),
            "missing {needle:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn terminating_servers_need_their_credentials() {
    let mut config = eastwest();
    config.credentials.push(TlsCredential {
        name: "half".into(),
        source: Some(Source::Files(CredentialFiles {
            certificate_chain: "/etc/certs/tls.crt".into(),
            ..Default::default()
        })),
    });
    config.listeners.push(Listener {
        name: "0.0.0.0_443".into(),
        bind_address: "0.0.0.0".into(),
        port: 443,
        servers: vec![
            Server {
                name: "https".into(),
                protocol: Protocol::Https as i32,
                tls: Some(ServerTls {
                    mode: TlsMode::Simple as i32,
                    credential: "bookinfo-credential".into(),
                    min_version: TlsVersion::Tlsv13 as i32,
                    max_version: TlsVersion::Tlsv12 as i32,
                    ..Default::default()
                }),
                routing: Some(Routing::RouteTable("http.443".into())),
                ..Default::default()
            },
            Server {
                name: "tls".into(),
                protocol: Protocol::Tls as i32,
                tls: None,
                routing: Some(Routing::TcpRoutes(TcpRoutes {
                    routes: vec![TcpRoute {
                        destinations: vec![WeightedCluster {
                            cluster: REVIEWS.into(),
                            weight: 0,
                        }],
                    }],
                })),
                ..Default::default()
            },
        ],
    });
    config.route_tables.push(RouteTable {
        name: "http.443".into(),
        virtual_hosts: vec![],
    });
    let found = messages(&config);
    let expected = [
        "credentials[half]: has a certificate chain or a private key but not both",
        "listeners[0.0.0.0_443].servers[0].tls: min_version TLSV1_3 is above max_version TLSV1_2",
        "listeners[0.0.0.0_443].servers[0].tls: refers to credential \"bookinfo-credential\", which is not defined",
        "listeners[0.0.0.0_443].servers[1]: protocol TLS needs TLS settings",
    ];
    assert_eq!(found, expected);
}
