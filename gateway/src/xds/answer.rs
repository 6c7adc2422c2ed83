//! Turns one push into the ACK or NACK the gateway owes discovery.
//!
//! The order is the contract: `multicluster::validate` first (every problem, so one NACK names
//! them all), and only a config that passes reaches the sink. A refused config never touches the
//! sink, so the gateway keeps serving the previous one.

use std::sync::Arc;

use multicluster::proto::{
    Ack, ConfigPush, GatewayConfig, GatewayMessage, Nack, gateway_message::Kind,
};
use tracing::{info, warn};

use super::ConfigSink;
use super::status::RefusedVersion;

/// What became of one pushed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied { version: String },
    Refused(RefusedVersion),
}

impl Outcome {
    pub fn to_message(&self) -> GatewayMessage {
        let kind = match self {
            Outcome::Applied { version } => Kind::Ack(Ack {
                version: version.clone(),
            }),
            Outcome::Refused(refused) => Kind::Nack(Nack {
                version: refused.version.clone(),
                problems: refused.problems.clone(),
            }),
        };
        GatewayMessage { kind: Some(kind) }
    }
}

/// Validates the pushed config and, if it is sound, hands it to the sink.
///
/// `held` is the last configuration this stream applied, the base of a delta. A delta is
/// applied onto it in place and put back if the result is refused, so a refused push leaves
/// the gateway on its previous version either way.
pub async fn answer<S: ConfigSink>(
    push: ConfigPush,
    sink: &Arc<S>,
    held: &mut Option<GatewayConfig>,
) -> Outcome {
    match (push.config, push.delta) {
        (Some(config), None) => {
            let version = config.version.clone();
            if let Err(problems) = check(&config) {
                return refused(version, problems);
            }
            // The sink takes a copy; the one kept is the base the next delta applies onto.
            let outcome = hand_over(config.clone(), sink).await;
            if matches!(outcome, Outcome::Applied { .. }) {
                *held = Some(config);
            }
            outcome
        }
        (None, Some(delta)) => {
            let (config, undo) = match multicluster::delta::apply_delta(held.as_mut(), delta) {
                Ok(applied) => applied,
                Err(error) => return refused(error.version().to_owned(), vec![error.to_string()]),
            };
            let version = config.version.clone();
            // The held config passed validation: only what the delta touched can be new.
            let checked = check_with(config, |config| {
                multicluster::validate::validate_after_delta(config, undo.touched())
            });
            let outcome = match checked {
                Ok(()) => hand_over(config.clone(), sink).await,
                Err(problems) => refused(version, problems),
            };
            if let (Outcome::Refused(_), Some(held)) = (&outcome, held.as_mut()) {
                undo.restore(held);
            }
            outcome
        }
        (Some(config), Some(_)) => refused(
            config.version,
            vec!["push carries both a configuration and a delta; discovery must send one".into()],
        ),
        (None, None) => refused(
            String::new(),
            vec!["push carries no configuration; discovery must send a GatewayConfig".into()],
        ),
    }
}

/// Every problem `multicluster::validate` finds, or none.
fn check(config: &GatewayConfig) -> Result<(), Vec<String>> {
    check_with(config, multicluster::validate)
}

fn check_with(
    config: &GatewayConfig,
    validate: impl FnOnce(&GatewayConfig) -> Vec<multicluster::ConfigProblem>,
) -> Result<(), Vec<String>> {
    let validating = std::time::Instant::now();
    let problems: Vec<String> = validate(config).iter().map(ToString::to_string).collect();
    tracing::debug!(
        version = config.version,
        validate_ms = validating.elapsed().as_secs_f64() * 1000.0,
        problems = problems.len(),
        "validated configuration from discovery"
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

async fn hand_over<S: ConfigSink>(config: GatewayConfig, sink: &Arc<S>) -> Outcome {
    let version = config.version.clone();
    let applying = std::time::Instant::now();
    let sink = Arc::clone(sink);
    // Building listeners and TLS configs may block (files, key parsing); keep it off the
    // control runtime's workers.
    match tokio::task::spawn_blocking(move || sink.apply(config)).await {
        Ok(Ok(())) => {
            let apply_ms = applying.elapsed().as_secs_f64() * 1000.0;
            info!(version, apply_ms, "applied configuration from discovery");
            Outcome::Applied { version }
        }
        Ok(Err(problems)) if problems.is_empty() => refused(
            version,
            vec!["the gateway refused the configuration without naming a problem".into()],
        ),
        Ok(Err(problems)) => refused(version, problems),
        Err(error) => refused(
            version,
            vec![format!(
                "applying the configuration failed inside the gateway: {error}"
            )],
        ),
    }
}

fn refused(version: String, problems: Vec<String>) -> Outcome {
    warn!(
        version,
        problems = ?problems,
        "refused configuration from discovery (NACK); still serving the previous one"
    );
    Outcome::Refused(RefusedVersion { version, problems })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use multicluster::proto::GatewayConfig;

    use super::*;

    /// Records what it was given; refuses when told to.
    #[derive(Default)]
    struct RecordingSink {
        applied: Mutex<Vec<String>>,
        refuse_with: Option<Vec<String>>,
    }

    impl ConfigSink for RecordingSink {
        fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
            if let Some(problems) = &self.refuse_with {
                return Err(problems.clone());
            }
            self.applied
                .lock()
                .expect("not poisoned")
                .push(config.version);
            Ok(())
        }
    }

    fn push(version: &str) -> ConfigPush {
        ConfigPush {
            config: Some(GatewayConfig {
                version: version.into(),
                ..Default::default()
            }),
            delta: None,
        }
    }

    fn cluster(name: &str, address: &str) -> multicluster::proto::Cluster {
        multicluster::proto::Cluster {
            name: name.into(),
            service: "a.default.svc.cluster.local".into(),
            port: 80,
            endpoints: vec![multicluster::proto::Endpoint {
                address: address.into(),
                port: 8080,
                weight: 1,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn delta(version: &str, base: &str, clusters: Vec<multicluster::proto::Cluster>) -> ConfigPush {
        ConfigPush {
            config: None,
            delta: Some(multicluster::proto::ConfigDelta {
                version: version.into(),
                base_version: base.into(),
                clusters,
                removed_clusters: Vec::new(),
            }),
        }
    }

    #[tokio::test]
    async fn delta_is_applied_onto_the_held_config() {
        let sink = Arc::new(RecordingSink::default());
        let mut held = None;
        let full = ConfigPush {
            config: Some(GatewayConfig {
                version: "1".into(),
                clusters: vec![cluster(
                    "outbound|80||a.default.svc.cluster.local",
                    "10.0.0.1",
                )],
                ..Default::default()
            }),
            delta: None,
        };
        assert!(matches!(
            answer(full, &sink, &mut held).await,
            Outcome::Applied { .. }
        ));
        let moved = cluster("outbound|80||a.default.svc.cluster.local", "10.0.0.2");
        let outcome = answer(delta("2", "1", vec![moved.clone()]), &sink, &mut held).await;
        assert_eq!(
            outcome,
            Outcome::Applied {
                version: "2".into()
            }
        );
        let held = held.expect("applied");
        assert_eq!(held.version, "2");
        assert_eq!(held.clusters, vec![moved]);
        assert_eq!(*sink.applied.lock().expect("not poisoned"), vec!["1", "2"]);
    }

    /// Version 1 holding one cluster, `a`.
    fn version_one_with_a() -> GatewayConfig {
        GatewayConfig {
            version: "1".into(),
            clusters: vec![cluster(
                "outbound|80||a.default.svc.cluster.local",
                "10.0.0.1",
            )],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn refused_delta_keeps_the_previous_version() {
        let sink = Arc::new(RecordingSink::default());
        let base = version_one_with_a();
        let mut held = Some(base.clone());
        // Against a version this stream does not hold.
        let outcome = answer(delta("3", "2", Vec::new()), &sink, &mut held).await;
        assert!(
            matches!(&outcome, Outcome::Refused(r) if r.version == "3"),
            "{outcome:?}"
        );
        // Onto the right base, but invalid: a cluster without a name.
        let outcome = answer(
            delta("4", "1", vec![cluster("", "10.0.0.2")]),
            &sink,
            &mut held,
        )
        .await;
        assert!(
            matches!(&outcome, Outcome::Refused(r) if r.version == "4"),
            "{outcome:?}"
        );
        assert_eq!(held, Some(base), "still on version 1");
        assert!(sink.applied.lock().expect("not poisoned").is_empty());
    }

    #[tokio::test]
    async fn a_delta_is_checked_in_its_clusters_with_the_full_check_s_words() {
        let sink = Arc::new(RecordingSink::default());
        let base = version_one_with_a();
        let mut held = Some(base.clone());
        let bad = cluster("outbound|80||b.default.svc.cluster.local", "not-an-ip");
        let mut whole = base.clone();
        whole.version = "2".into();
        whole.clusters.push(bad.clone());
        let expected: Vec<String> = multicluster::validate(&whole)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(expected.len(), 1, "{expected:?}");
        let outcome = answer(delta("2", "1", vec![bad]), &sink, &mut held).await;
        assert_eq!(
            outcome,
            Outcome::Refused(RefusedVersion {
                version: "2".into(),
                problems: expected
            })
        );
        assert_eq!(held, Some(base), "still on version 1");
    }

    #[tokio::test]
    async fn a_delta_that_removes_a_referenced_cluster_is_refused() {
        use multicluster::proto::{
            HttpRoute, RouteAction, RouteTable, VirtualHost, WeightedCluster, http_route,
        };
        let sink = Arc::new(RecordingSink::default());
        let b = "outbound|80||b.default.svc.cluster.local";
        let base = GatewayConfig {
            version: "1".into(),
            clusters: vec![
                cluster("outbound|80||a.default.svc.cluster.local", "10.0.0.1"),
                cluster(b, "10.0.0.5"),
            ],
            route_tables: vec![RouteTable {
                name: "http.80".into(),
                virtual_hosts: vec![VirtualHost {
                    name: "b".into(),
                    domains: vec!["b.example.com".into()],
                    routes: vec![HttpRoute {
                        name: "to-b".into(),
                        action: Some(http_route::Action::Route(RouteAction {
                            destinations: vec![WeightedCluster {
                                cluster: b.into(),
                                weight: 100,
                            }],
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                }],
            }],
            ..Default::default()
        };
        let mut held = Some(base.clone());
        let mut push = delta("2", "1", Vec::new());
        if let Some(delta) = push.delta.as_mut() {
            delta.removed_clusters = vec![b.into()];
        }
        let outcome = answer(push, &sink, &mut held).await;
        assert!(
            matches!(&outcome, Outcome::Refused(r) if r.problems.len() == 1 && r.problems[0].contains("which is not defined")),
            "{outcome:?}"
        );
        assert_eq!(held, Some(base), "still on version 1");
    }

    #[tokio::test]
    async fn delta_the_sink_refuses_is_undone() {
        let sink = Arc::new(RecordingSink {
            refuse_with: Some(vec!["listener port 80 is taken".into()]),
            ..Default::default()
        });
        let base = GatewayConfig {
            version: "1".into(),
            clusters: vec![
                cluster("outbound|80||a.default.svc.cluster.local", "10.0.0.1"),
                cluster("outbound|80||b.default.svc.cluster.local", "10.0.0.5"),
            ],
            ..Default::default()
        };
        let mut held = Some(base.clone());
        let mut push = delta(
            "2",
            "1",
            vec![
                cluster("outbound|80||a.default.svc.cluster.local", "10.0.0.2"),
                cluster("outbound|80||c.default.svc.cluster.local", "10.0.0.3"),
            ],
        );
        if let Some(delta) = push.delta.as_mut() {
            delta.removed_clusters = vec!["outbound|80||b.default.svc.cluster.local".into()];
        }
        let outcome = answer(push, &sink, &mut held).await;
        assert!(
            matches!(&outcome, Outcome::Refused(r) if r.version == "2" && r.problems == ["listener port 80 is taken"]),
            "{outcome:?}"
        );
        assert_eq!(
            held,
            Some(base),
            "replaced, added and removed clusters put back"
        );
    }

    #[tokio::test]
    async fn valid_config_is_applied_and_acked() {
        let sink = Arc::new(RecordingSink::default());
        let outcome = answer(push("3"), &sink, &mut None).await;
        assert_eq!(
            outcome,
            Outcome::Applied {
                version: "3".into()
            }
        );
        assert_eq!(*sink.applied.lock().expect("not poisoned"), vec!["3"]);
        assert_eq!(
            outcome.to_message().kind,
            Some(Kind::Ack(Ack {
                version: "3".into()
            }))
        );
    }

    #[tokio::test]
    async fn invalid_config_is_nacked_without_reaching_the_sink() {
        let sink = Arc::new(RecordingSink::default());
        // An empty version is one of the problems validate() reports.
        let outcome = answer(push(""), &sink, &mut None).await;
        let Outcome::Refused(refused) = &outcome else {
            panic!("expected a refusal, got {outcome:?}");
        };
        assert!(
            refused.problems.iter().any(|p| p.starts_with("version:")),
            "{refused:?}"
        );
        assert!(sink.applied.lock().expect("not poisoned").is_empty());
    }

    #[tokio::test]
    async fn sink_refusal_is_nacked_with_its_problems() {
        let sink = Arc::new(RecordingSink {
            refuse_with: Some(vec!["listener 0.0.0.0_443: port in use".into()]),
            ..Default::default()
        });
        let outcome = answer(push("4"), &sink, &mut None).await;
        assert_eq!(
            outcome.to_message().kind,
            Some(Kind::Nack(Nack {
                version: "4".into(),
                problems: vec!["listener 0.0.0.0_443: port in use".into()],
            }))
        );
    }

    #[tokio::test]
    async fn refusal_without_reasons_still_explains() {
        let sink = Arc::new(RecordingSink {
            refuse_with: Some(Vec::new()),
            ..Default::default()
        });
        let Outcome::Refused(refused) = answer(push("5"), &sink, &mut None).await else {
            panic!("expected a refusal");
        };
        assert_eq!(refused.problems.len(), 1);
    }

    #[tokio::test]
    async fn push_without_config_is_nacked() {
        let sink = Arc::new(RecordingSink::default());
        let outcome = answer(
            ConfigPush {
                config: None,
                delta: None,
            },
            &sink,
            &mut None,
        )
        .await;
        assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
    }
}
