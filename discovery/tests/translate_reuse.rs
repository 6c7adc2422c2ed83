//! A translation that reuses the previous one's clusters encodes byte for byte what a fresh
//! translation encodes, and reuses exactly the clusters whose inputs are unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures are ours; a panic names the broken one

mod translate_support;

use std::sync::Arc;

use discovery::mesh::{MeshSnapshot, ServiceRecord};
use discovery::push::PreparedConfig;
use discovery::translate::{ClusterMemo, ClusterPart, translate, translate_reusing};
use multicluster::proto::GatewayIdentity;
use translate_support::load_scenario as scenario;

const REVIEWS: &str = "reviews.default.svc.cluster.local";

/// Translates reusing `memo`; checks the bytes against a fresh translation and returns the
/// names of the reused clusters and the memo for the next round.
fn round(
    snapshot: &MeshSnapshot,
    gateway: &GatewayIdentity,
    memo: &ClusterMemo,
) -> (Vec<String>, ClusterMemo) {
    let mut translation = translate_reusing(snapshot, gateway, memo);
    let reused = translation
        .clusters
        .iter()
        .filter(|(_, part)| matches!(part, ClusterPart::Reused(_)))
        .map(|(name, _)| name.clone())
        .collect();
    let assembled = PreparedConfig::from_translation(&mut translation);
    let fresh = PreparedConfig::new(translate(snapshot, gateway).config);
    assert!(
        assembled.encoded() == fresh.encoded(),
        "gateway {}: the reusing translation differs from a fresh one",
        gateway.name
    );
    let memo = translation
        .into_memo(assembled.cluster_fields())
        .expect("a gateway translation leaves a memo");
    (reused, memo)
}

/// `snapshot` with one endpoint of `hostname` moved to another address: a new record, as the
/// endpoint index makes it, every other record shared.
fn with_moved_endpoint(snapshot: &MeshSnapshot, hostname: &str) -> MeshSnapshot {
    let mut moved = snapshot.clone();
    let record = moved.services.get_mut(hostname).expect("service exists");
    let mut endpoints = record.endpoints.clone();
    let first = endpoints.first_mut().expect("service has endpoints");
    first.address = "10.99.0.1".parse().unwrap();
    *record = Arc::new(ServiceRecord {
        service: record.service.clone(),
        endpoints,
        origin: record.origin.clone(),
    });
    moved.generation += 1;
    moved
}

fn clusters_of(names: &[String], hostname: &str) -> usize {
    names
        .iter()
        .filter(|name| name.ends_with(&format!("|{hostname}")))
        .count()
}

#[test]
fn east_west_reuses_every_unchanged_cluster_and_rebuilds_the_moved_service() {
    let (snapshot, gateways) = scenario("eastwest");
    for gateway in &gateways {
        let (first, memo) = round(&snapshot, gateway, &ClusterMemo::default());
        assert!(first.is_empty(), "nothing to reuse the first time");

        let (same, memo) = round(&snapshot, gateway, &memo);
        assert!(
            clusters_of(&same, REVIEWS) > 0,
            "{}: the same snapshot reuses the reviews clusters: {same:?}",
            gateway.name
        );

        let moved = with_moved_endpoint(&snapshot, REVIEWS);
        let (after_move, memo) = round(&moved, gateway, &memo);
        assert_eq!(
            clusters_of(&after_move, REVIEWS),
            0,
            "{}: reviews changed, so none of its clusters is reused",
            gateway.name
        );
        assert_eq!(
            after_move.len(),
            same.len() - clusters_of(&same, REVIEWS),
            "{}: every other cluster still is",
            gateway.name
        );

        // The rebuilt clusters are remembered in turn.
        let (again, _) = round(&moved, gateway, &memo);
        assert_eq!(again, same, "{}", gateway.name);
    }
}

#[test]
fn a_destination_rule_change_rebuilds_every_cluster() {
    let (snapshot, gateways) = scenario("eastwest");
    let gateway = &gateways[0];
    let (_, memo) = round(&snapshot, gateway, &ClusterMemo::default());
    let mut changed = snapshot.clone();
    let rule = changed
        .destination_rules
        .first_mut()
        .expect("the scenario has a DestinationRule");
    let subset = rule.object.spec.subsets.first_mut().expect("with subsets");
    subset.labels.insert("track".into(), "canary".into());
    let (reused, _) = round(&changed, gateway, &memo);
    assert!(reused.is_empty(), "reused across a rule change: {reused:?}");
}

#[test]
fn north_south_and_host_scenarios_assemble_the_same_bytes() {
    for name in ["northsouth", "hosts"] {
        let (snapshot, gateways) = scenario(name);
        for gateway in &gateways {
            let (_, memo) = round(&snapshot, gateway, &ClusterMemo::default());
            let (_, memo) = round(&snapshot, gateway, &memo);
            let moved = match snapshot.services.keys().next() {
                Some(hostname) if !snapshot.services[hostname].endpoints.is_empty() => {
                    with_moved_endpoint(&snapshot, &hostname.clone())
                }
                _ => snapshot.clone(),
            };
            round(&moved, gateway, &memo);
        }
    }
}

#[test]
fn a_cluster_whose_build_raised_a_rejection_is_built_again() {
    let (snapshot, gateways) = scenario("northsouth");
    for gateway in &gateways {
        let (_, memo) = round(&snapshot, gateway, &ClusterMemo::default());
        let mut translation = translate_reusing(&snapshot, gateway, &memo);
        let rejections = std::mem::take(&mut translation.rest.rejections);
        let fresh = translate(&snapshot, gateway).config.rejections;
        assert_eq!(
            rejections, fresh,
            "{}: every rejection raised again",
            gateway.name
        );
        for (name, part) in &translation.clusters {
            if let ClusterPart::Fresh { cluster, .. } = part {
                assert!(
                    cluster.tls.is_some()
                        || rejections
                            .iter()
                            .any(|r| r.reason.contains(cluster.service.as_str()))
                        || !snapshot.services.contains_key(&cluster.service),
                    "{}: {name} was built again without a reason",
                    gateway.name
                );
            }
        }
    }
}
