//! Workload proxies end to end with discovery: sidecars subscribe as `Role::SIDECAR`, receive
//! the split-horizon view of `reviews`, and call across networks through real AUTO_PASSTHROUGH
//! east-west gateways (also subscribed to the same discovery), all on loopback.
//!
//! reviews v1 runs in cluster1 (network1), v2 in cluster2 (network2). The east-west gateways
//! listen on the addresses their Services advertise (127.0.0.41/42, port 15443).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;
// The sidecar tests' own helpers (mesh PKI, sidecars, echo apps, proxy clients), shared rather
// than copied.
#[path = "../gateway/tests/sidecar_support/mod.rs"]
mod sidecar_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use gateway::sidecar::{AppProtocol, SidecarHandle};
use gateway::xds::{self, ClientOptions};
use gateway::{Gateway, GatewayHandle, GatewayOptions};
use multicluster::proto::{GatewayIdentity, Role};
use sidecar_support::*;
use support::gateways::GatewaySpec;
use support::mesh::{MeshFiles, workload_yaml};
use support::wait;
use tokio::sync::watch;

/// Keeps a discovery subscription alive; dropping it stops the client.
struct Subscription {
    _stop: watch::Sender<bool>,
}

fn subscribe(gateway: Gateway, uri: &str, identity: GatewayIdentity) -> Subscription {
    let (stop, stopped) = watch::channel(false);
    let options = ClientOptions::new(uri, identity);
    tokio::spawn(async move {
        let mut stopped = stopped;
        xds::run(options, gateway, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await;
    });
    Subscription { _stop: stop }
}

fn sidecar_identity(name: &str, cluster: &str, network: &str) -> GatewayIdentity {
    GatewayIdentity {
        name: name.into(),
        namespace: "default".into(),
        cluster: cluster.into(),
        network: network.into(),
        role: Role::Sidecar as i32,
        ..Default::default()
    }
}

async fn east_west_gateway(
    cluster: &str,
    network: &str,
    ip: &str,
    uri: &str,
) -> (GatewayHandle, Subscription) {
    let spec = GatewaySpec::east_west(cluster, network, ip);
    let handle = Gateway::start(GatewayOptions {
        listener_address: Some(spec.listener_ip),
        // The advertised port: sidecars dial the address the gateway's Service publishes.
        free_ports: false,
        network: Some(network.into()),
        ..GatewayOptions::ephemeral()
    })
    .await
    .unwrap();
    let subscription = subscribe(handle.gateway(), uri, spec.identity());
    (handle, subscription)
}

/// `address:port weight [gateway]` of a sidecar's cluster, once it has `count` endpoints.
async fn endpoints_when(sidecar: &SidecarHandle, cluster: &str, count: usize) -> Vec<String> {
    let gateway = sidecar.gateway();
    wait::until(&format!("{cluster} to have {count} endpoints"), || {
        let config = gateway.config();
        let found = config
            .cluster(cluster)
            .filter(|c| c.endpoints.len() == count)
            .map(|c| {
                c.endpoints
                    .iter()
                    .map(|e| {
                        let kind = if e.network_gateway { " gateway" } else { "" };
                        format!("{} {}{kind}", e.address, e.weight)
                    })
                    .collect::<Vec<_>>()
            });
        async move { found }
    })
    .await
}

/// Which app answered each of `calls` requests.
async fn landings(
    proxy: SocketAddr,
    subset: Option<&str>,
    calls: usize,
) -> BTreeMap<String, usize> {
    let header = subset.map(|s| format!("isthmus-subset: {s}"));
    let extra: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut landed = BTreeMap::new();
    for _ in 0..calls {
        let (status, body) = proxy_get(proxy, &format!("http://{REVIEWS}:9080/"), &extra).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
        let xfcc = echoed(&body, "x-forwarded-client-cert");
        assert!(
            xfcc.len() == 1 && xfcc[0].contains(";URI=spiffe://cluster.local/ns/default/sa/"),
            "the app must see the caller's identity: {body}"
        );
        *landed
            .entry(body.lines().next().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    landed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_call_across_networks_through_east_west_gateways() {
    support::init();
    let pki = MeshPki::new();
    let v1_app = App::http_echo("reviews-v1").await;
    let v2_app = App::http_echo("reviews-v2").await;
    let v1 = sidecar(
        pki.mesh_tls(&pki.cluster1, "reviews"),
        vec![inbound([127, 0, 0, 43], v1_app.address, AppProtocol::Http)],
    )
    .await;
    let v2 = sidecar(
        pki.mesh_tls(&pki.cluster2, "reviews"),
        vec![inbound([127, 0, 0, 44], v2_app.address, AppProtocol::Http)],
    )
    .await;

    let files = MeshFiles::from_scenario("sidecar/eastwest");
    for (cluster, pod, version, address) in [
        ("cluster1", "reviews-v1-a", "v1", v1.inbound_addresses()[0]),
        ("cluster2", "reviews-v2-a", "v2", v2.inbound_addresses()[0]),
    ] {
        let yaml = workload_yaml(
            "default",
            "reviews",
            pod,
            &[("version", version)],
            "http",
            address,
        );
        files.write(&format!("{cluster}/workload-{pod}.yaml"), &yaml);
    }
    let discovery = files.start_discovery().await;
    let uri = discovery.grpc_uri();
    let (gateway1, _gateway1_subscription) =
        east_west_gateway("cluster1", "network1", "127.0.0.41", &uri).await;
    let (gateway2, _gateway2_subscription) =
        east_west_gateway("cluster2", "network2", "127.0.0.42", &uri).await;
    for (gateway, backend) in [
        (&gateway1, v1.inbound_addresses()[0]),
        (&gateway2, v2.inbound_addresses()[0]),
    ] {
        let gateway = gateway.gateway();
        wait::until_true("the east-west gateway to front its workload", || {
            let config = gateway.config();
            let fronts = config
                .cluster(&format!("outbound|9080||{REVIEWS}"))
                .is_some_and(|c| c.endpoints.iter().any(|e| e.address == backend));
            async move { fronts }
        })
        .await;
    }

    // network1's caller: v1 directly, v2 only through network2's gateway.
    let caller1 = sidecar(pki.mesh_tls(&pki.cluster1, "productpage"), vec![]).await;
    let _caller1_subscription = subscribe(
        caller1.gateway(),
        &uri,
        sidecar_identity("productpage-1", "cluster1", "network1"),
    );
    let all = format!("outbound|9080||{REVIEWS}");
    assert_eq!(
        endpoints_when(&caller1, &all, 2).await,
        [
            format!("{} 1", v1.inbound_addresses()[0]),
            "127.0.0.42:15443 1 gateway".to_owned()
        ]
    );
    assert_eq!(
        endpoints_when(&caller1, &format!("outbound|9080|v2|{REVIEWS}"), 1).await,
        ["127.0.0.42:15443 1 gateway"]
    );

    let proxy = caller1.outbound_address();
    assert_eq!(
        landings(proxy, None, 4).await,
        BTreeMap::from([
            ("app=reviews-v1".to_owned(), 2),
            ("app=reviews-v2".to_owned(), 2)
        ])
    );
    assert_eq!(
        landings(proxy, Some("v2"), 3).await,
        BTreeMap::from([("app=reviews-v2".to_owned(), 3)])
    );
    assert_eq!(
        landings(proxy, Some("v1"), 3).await,
        BTreeMap::from([("app=reviews-v1".to_owned(), 3)])
    );
    // The far side sees productpage's own identity: the gateway did not terminate.
    let (_, body) = proxy_get(
        proxy,
        &format!("http://{REVIEWS}:9080/"),
        &["isthmus-subset: v2"],
    )
    .await;
    assert!(
        echoed(&body, "x-forwarded-client-cert")[0]
            .ends_with(";URI=spiffe://cluster.local/ns/default/sa/productpage"),
        "{body}"
    );

    // network2's caller: the mirror image, v1 through network1's gateway.
    let caller2 = sidecar(pki.mesh_tls(&pki.cluster2, "productpage"), vec![]).await;
    let _caller2_subscription = subscribe(
        caller2.gateway(),
        &uri,
        sidecar_identity("productpage-2", "cluster2", "network2"),
    );
    assert_eq!(
        endpoints_when(&caller2, &format!("outbound|9080|v1|{REVIEWS}"), 1).await,
        ["127.0.0.41:15443 1 gateway"]
    );
    assert_eq!(
        landings(caller2.outbound_address(), Some("v1"), 2).await,
        BTreeMap::from([("app=reviews-v1".to_owned(), 2)])
    );
}
