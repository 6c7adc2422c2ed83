//! Turns one push into the ACK or NACK the gateway owes discovery.
//!
//! The order is the contract: `multicluster::validate` first (every problem, so one NACK names
//! them all), and only a config that passes reaches the sink. A refused config never touches the
//! sink, so the gateway keeps serving the previous one.

use std::sync::Arc;

use multicluster::proto::{Ack, ConfigPush, GatewayMessage, Nack, gateway_message::Kind};
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
pub async fn answer<S: ConfigSink>(push: ConfigPush, sink: &Arc<S>) -> Outcome {
    let Some(config) = push.config else {
        return refused(
            String::new(),
            vec!["push carries no configuration; discovery must send a GatewayConfig".into()],
        );
    };
    let version = config.version.clone();
    let problems: Vec<String> = multicluster::validate(&config)
        .iter()
        .map(ToString::to_string)
        .collect();
    if !problems.is_empty() {
        return refused(version, problems);
    }

    let sink = Arc::clone(sink);
    // Building listeners and TLS configs may block (files, key parsing); keep it off the
    // control runtime's workers.
    let applied = tokio::task::spawn_blocking(move || sink.apply(config)).await;
    match applied {
        Ok(Ok(())) => {
            info!(version, "applied configuration from discovery");
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
        }
    }

    #[tokio::test]
    async fn valid_config_is_applied_and_acked() {
        let sink = Arc::new(RecordingSink::default());
        let outcome = answer(push("3"), &sink).await;
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
        let outcome = answer(push(""), &sink).await;
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
        let outcome = answer(push("4"), &sink).await;
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
        let Outcome::Refused(refused) = answer(push("5"), &sink).await else {
            panic!("expected a refusal");
        };
        assert_eq!(refused.problems.len(), 1);
    }

    #[tokio::test]
    async fn push_without_config_is_nacked() {
        let sink = Arc::new(RecordingSink::default());
        let outcome = answer(ConfigPush { config: None }, &sink).await;
        assert!(matches!(outcome, Outcome::Refused(_)), "{outcome:?}");
    }
}
