//! Golden tests of translation: conformance YAML in, one `GatewayConfig` per gateway out.
//!
//! Each scenario under `testdata/translate/<name>/` holds a mesh description, cluster
//! directories, and `gateways.yaml` naming the gateways to translate for. The expected configs
//! live in `expected/<cluster>.<gateway>.json`; regenerate them with `UPDATE_GOLDEN=1` and read
//! the diff before committing. The tests below the golden check pin the behaviour that matters
//! so a golden file can never silently bless a regression.

#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures are ours; a panic names the broken one

mod translate_support;

use discovery::translate::translate;
use multicluster::proto::{
    GatewayConfig, Listener, TlsMode, http_route::Action, server::Routing, tls_credential::Source,
};
use translate_support::{load_scenario, scenario_dir};

fn translate_scenario(name: &str) -> Vec<(String, GatewayConfig)> {
    let (snapshot, identities) = load_scenario(name);
    identities
        .into_iter()
        .map(|identity| {
            let mut config = translate(&snapshot, &identity).config;
            config.version = "golden".into();
            (format!("{}.{}", identity.cluster, identity.name), config)
        })
        .collect()
}

fn check_golden(scenario: &str) {
    let expected_dir = scenario_dir(scenario).join("expected");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (key, config) in translate_scenario(scenario) {
        let problems = multicluster::validate(&config);
        assert!(
            problems.is_empty(),
            "{scenario}/{key}: translation produced an invalid config: {problems:#?}"
        );
        let actual = serde_json::to_string_pretty(&config).unwrap() + "\n";
        let path = expected_dir.join(format!("{key}.json"));
        if update {
            std::fs::create_dir_all(&expected_dir).unwrap();
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", path.display()));
        assert!(
            expected == actual,
            "{scenario}/{key} differs from {}; rerun with UPDATE_GOLDEN=1 and review the diff",
            path.display()
        );
    }
}

fn config_for(scenario: &str, key: &str) -> GatewayConfig {
    translate_scenario(scenario)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, config)| config)
        .unwrap_or_else(|| panic!("no gateway {key} in {scenario}"))
}

fn listener<'c>(config: &'c GatewayConfig, name: &str) -> &'c Listener {
    config
        .listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no listener {name}: {:?}",
                config.listeners.iter().map(|l| &l.name).collect::<Vec<_>>()
            )
        })
}

fn endpoints_of(config: &GatewayConfig, cluster: &str) -> Vec<String> {
    config
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .unwrap_or_else(|| panic!("no cluster {cluster}"))
        .endpoints
        .iter()
        .map(|e| format!("{}:{}", e.address, e.port))
        .collect()
}

fn rejection_reasons(config: &GatewayConfig) -> Vec<String> {
    config
        .rejections
        .iter()
        .map(|r| {
            format!(
                "{} {}/{} {}: {}",
                r.kind, r.namespace, r.name, r.field, r.reason
            )
        })
        .collect()
}

#[test]
fn eastwest_matches_golden() {
    check_golden("eastwest");
}

#[test]
fn northsouth_matches_golden() {
    check_golden("northsouth");
}

#[test]
fn eastwest_sni_table_has_every_service_port_and_subset() {
    let config = config_for("eastwest", "cluster1.istio-eastwestgateway");
    let listener = listener(&config, "0.0.0.0_15443");
    let Some(Routing::AutoPassthrough(table)) = &listener.servers[0].routing else {
        panic!("15443 is not AUTO_PASSTHROUGH: {listener:?}")
    };
    let snis: Vec<&str> = table.routes.iter().map(|r| r.sni.as_str()).collect();
    // `*.local` selects every service, the gateway's own Service included (as in Istio); its
    // clusters are empty because no gateway pod is a mesh workload.
    assert_eq!(
        snis,
        [
            "outbound_.15012_._.istio-eastwestgateway.istio-system.svc.cluster.local",
            "outbound_.15017_._.istio-eastwestgateway.istio-system.svc.cluster.local",
            "outbound_.15021_._.istio-eastwestgateway.istio-system.svc.cluster.local",
            "outbound_.15443_._.istio-eastwestgateway.istio-system.svc.cluster.local",
            "outbound_.9080_._.productpage.istio.svc.cluster.local",
            "outbound_.9080_._.reviews.default.svc.cluster.local",
            "outbound_.9080_.v1_.reviews.default.svc.cluster.local",
            "outbound_.9080_.v2_.reviews.default.svc.cluster.local",
        ]
    );
    // Only endpoints on network1 stand behind cluster1's gateway.
    assert_eq!(
        endpoints_of(&config, "outbound|9080||reviews.default.svc.cluster.local"),
        ["10.10.1.1:9080"]
    );
    assert_eq!(
        endpoints_of(
            &config,
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        ),
        ["10.10.1.1:9080"]
    );
    assert!(
        endpoints_of(
            &config,
            "outbound|9080|v2|reviews.default.svc.cluster.local"
        )
        .is_empty()
    );
    assert!(
        endpoints_of(
            &config,
            "outbound|9080||productpage.istio.svc.cluster.local"
        )
        .is_empty()
    );
}

#[test]
fn eastwest_gateway_of_network2_fronts_its_own_endpoints() {
    let config = config_for("eastwest", "cluster2.istio-eastwestgateway");
    assert_eq!(
        endpoints_of(
            &config,
            "outbound|9080|v2|reviews.default.svc.cluster.local"
        ),
        ["10.20.1.1:9080", "10.20.1.2:9080"]
    );
    assert_eq!(
        endpoints_of(
            &config,
            "outbound|9080||productpage.istio.svc.cluster.local"
        ),
        ["10.20.2.1:9080"]
    );
    assert!(
        endpoints_of(
            &config,
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        )
        .is_empty()
    );
}

#[test]
fn ingress_routes_follow_conformance() {
    let config = config_for("northsouth", "cluster1.istio-ingressgateway");
    let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["0.0.0.0_80", "0.0.0.0_443", "0.0.0.0_8080", "0.0.0.0_31400"]
    );

    // A1: one virtual host, one route with the three prefixes, to httpbin:8000.
    let table = config
        .route_tables
        .iter()
        .find(|t| t.name == "http.80")
        .unwrap();
    assert_eq!(table.virtual_hosts.len(), 1);
    assert_eq!(table.virtual_hosts[0].domains, ["httpbin.example.com"]);
    let route = &table.virtual_hosts[0].routes[0];
    assert_eq!(route.matches.len(), 3);
    let Some(Action::Route(action)) = &route.action else {
        panic!("A1 route has no destination")
    };
    assert_eq!(
        action.destinations[0].cluster,
        "outbound|8000||httpbin.default.svc.cluster.local"
    );
    assert_eq!(
        endpoints_of(&config, "outbound|8000||httpbin.default.svc.cluster.local"),
        ["10.10.0.11:8000"]
    );

    // A4: the short name resolves in the VirtualService's namespace.
    let table = config
        .route_tables
        .iter()
        .find(|t| t.name == "http.8080")
        .unwrap();
    let bookinfo = table
        .virtual_hosts
        .iter()
        .find(|h| h.domains == ["bookinfo.example.com"])
        .unwrap();
    let Some(Action::Route(action)) = &bookinfo.routes[0].action else {
        panic!()
    };
    assert_eq!(
        action.destinations[0].cluster,
        "outbound|9080||productpage.istio.svc.cluster.local"
    );
    assert_eq!(
        endpoints_of(
            &config,
            "outbound|9080||productpage.istio.svc.cluster.local"
        ),
        ["10.10.0.21:9080"]
    );
    // ... and from istio-system finds nothing: an empty cluster (503) and a reason.
    assert!(
        endpoints_of(
            &config,
            "outbound|9080||productpage.istio-system.svc.cluster.local"
        )
        .is_empty()
    );
    let reasons = rejection_reasons(&config);
    assert!(
        reasons.iter().any(
            |r| r.starts_with("VirtualService istio-system/bookinfo-short-name")
                && r.contains("no service productpage.istio-system.svc.cluster.local")
        ),
        "{reasons:#?}"
    );

    // C1: TCP to subset v1 only.
    let Some(Routing::TcpRoutes(tcp)) = &listener(&config, "0.0.0.0_31400").servers[0].routing
    else {
        panic!()
    };
    assert_eq!(
        tcp.routes[0].destinations[0].cluster,
        "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
    );
    assert_eq!(
        endpoints_of(
            &config,
            "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
        ),
        ["10.10.0.31:9000"]
    );

    // C4 and E1 share 443, told apart by SNI.
    let servers = &listener(&config, "0.0.0.0_443").servers;
    assert_eq!(servers.len(), 2);
    let passthrough = servers
        .iter()
        .find(|s| s.hosts == ["nginx.example.com"])
        .unwrap();
    let Some(Routing::TlsRoutes(tls)) = &passthrough.routing else {
        panic!()
    };
    assert_eq!(tls.routes[0].sni_hosts, ["nginx.example.com"]);
    assert_eq!(
        tls.routes[0].destinations[0].cluster,
        "outbound|443||my-nginx.default.svc.cluster.local"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("VirtualService default/nginx-tcp")
                && r.contains("`tcp` routes do not apply")),
        "{reasons:#?}"
    );
    let simple = servers
        .iter()
        .find(|s| s.hosts == ["httpbin.quic-corp.com"])
        .unwrap();
    assert_eq!(simple.name, "https.443.https.httpbin-gateway.httpbin");
    let tls = simple.tls.as_ref().unwrap();
    assert_eq!(tls.mode, TlsMode::Simple as i32);
    assert_eq!(tls.credential, "secret:istio-system/httpbin-cred");
    let credential = config
        .credentials
        .iter()
        .find(|c| c.name == tls.credential)
        .unwrap();
    let Some(Source::Pem(pem)) = &credential.source else {
        panic!()
    };
    assert!(
        pem.certificate_chain
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(
        simple.routing,
        Some(Routing::RouteTable(
            "https.443.https.httpbin-gateway.httpbin".into()
        ))
    );
}

#[test]
fn egress_originates_mutual_tls_per_subset() {
    let config = config_for("northsouth", "cluster1.istio-egressgateway");
    let names: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["0.0.0.0_80"],
        "the ingress Gateways must not leak into the egress gateway"
    );
    let table = &config.route_tables[0];
    let routes = &table.virtual_hosts[0].routes;
    assert_eq!(routes.len(), 2);
    for (route, subset, address) in [
        (&routes[0], "v1", "10.10.9.1"),
        (&routes[1], "v2", "10.10.9.2"),
    ] {
        assert_eq!(
            route.matches[0].headers["want"].kind,
            Some(multicluster::proto::string_match::Kind::Exact(
                subset.into()
            ))
        );
        let Some(Action::Route(action)) = &route.action else {
            panic!()
        };
        let cluster_name = format!("outbound|443|{subset}|nginx.external.svc.cluster.local");
        assert_eq!(action.destinations[0].cluster, cluster_name);
        assert_eq!(
            endpoints_of(&config, &cluster_name),
            [format!("{address}:443")]
        );
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .unwrap();
        let tls = cluster.tls.as_ref().expect("port-level TLS origination");
        assert_eq!(tls.mode, TlsMode::Mutual as i32);
        let credential = config
            .credentials
            .iter()
            .find(|c| c.name == tls.credential)
            .unwrap();
        let Some(Source::Files(files)) = &credential.source else {
            panic!()
        };
        assert_eq!(files.certificate_chain, "/etc/certs/client.pem");
        assert_eq!(files.ca_certificates, "/etc/certs/ca.pem");
    }
}

#[test]
fn hosts_matches_golden() {
    check_golden("hosts");
}

#[test]
fn a2_one_server_or_two_give_the_same_routes() {
    let one = config_for("hosts", "one.ingress");
    let two = config_for("hosts", "two.ingress");
    assert_eq!(listener(&one, "0.0.0.0_80").servers.len(), 1);
    assert_eq!(listener(&two, "0.0.0.0_80").servers.len(), 2);
    for config in [&one, &two] {
        for server in &listener(config, "0.0.0.0_80").servers {
            assert_eq!(server.routing, Some(Routing::RouteTable("http.80".into())));
        }
    }
    assert_eq!(
        one.route_tables, two.route_tables,
        "both forms must yield one and the same route table"
    );
    let hosts: Vec<(&str, &str)> = one.route_tables[0]
        .virtual_hosts
        .iter()
        .map(|h| {
            let Some(Action::Route(action)) = &h.routes[0].action else {
                panic!()
            };
            (
                h.domains[0].as_str(),
                action.destinations[0].cluster.as_str(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        [
            (
                "a.example.com",
                "outbound|8000||svc-a.default.svc.cluster.local"
            ),
            (
                "b.example.com",
                "outbound|8000||svc-b.default.svc.cluster.local"
            )
        ]
    );
}

#[test]
fn a3_host_intersection_table() {
    let config = config_for("hosts", "a3.ingress");
    let domains = |port: u32| -> Vec<String> {
        config
            .route_tables
            .iter()
            .find(|t| t.name == format!("http.{port}"))
            .map(|t| {
                t.virtual_hosts
                    .iter()
                    .flat_map(|h| h.domains.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(domains(8001), ["*"]);
    assert_eq!(domains(8002), ["bookinfo.com"]);
    assert!(
        domains(8003).is_empty(),
        "bookinfo.com ∩ bookinfo.demo routes nothing (404)"
    );
    assert_eq!(domains(8004), ["bookinfo.com"]);
    assert_eq!(domains(8005), ["bookinfo.com"], "mypage.com stays unrouted");
    assert_eq!(domains(8006), ["bookinfo.com", "bookinfo.demo"]);
}
