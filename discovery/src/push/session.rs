//! One gateway's stream: the initial push, debounced updates, and the ACK/NACK bookkeeping.
//!
//! At most one version is in flight per gateway: the next push waits until the previous one was
//! answered. A gateway that applies slowly therefore never builds up a backlog of stale
//! configurations; when it answers, it receives the newest one (computed at that moment).

use std::sync::Arc;
use std::time::Duration;

use multicluster::proto::{GatewayIdentity, GatewayMessage, gateway_message::Kind};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tonic::{Status, Streaming};
use tracing::{debug, info, warn};

use super::ConfigSource;
use super::debounce::Debounce;
use super::gateways::Connection;
use super::metrics::{PushKind, PushMetrics};
use super::wire::{PreparedConfig, SharedPush};

pub(crate) type Outbound = mpsc::Sender<Result<SharedPush, Status>>;

/// How long a stream that is ending waits to hand its error status to a gateway that does not
/// read.
const ERROR_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error(
        "gateway sent a second hello on the same stream; open a new stream to announce a \
         different identity"
    )]
    SecondHello,
    #[error("gateway message carries none of hello, ack or nack; is the gateway up to date?")]
    EmptyMessage,
    #[error("{answer} for version {version:?} is out of order: {expectation}")]
    OutOfOrder {
        answer: &'static str,
        version: String,
        expectation: String,
    },
    #[error("computing the gateway's configuration failed: {0}")]
    Source(String),
    #[error("reading from the gateway stream failed: {0}")]
    Inbound(Status),
}

impl SessionError {
    fn to_status(&self) -> Status {
        match self {
            SessionError::Source(_) => Status::internal(self.to_string()),
            SessionError::Inbound(status) => status.clone(),
            _ => Status::invalid_argument(self.to_string()),
        }
    }
}

pub(crate) struct Session {
    pub(crate) identity: GatewayIdentity,
    pub(crate) connection: Connection,
    pub(crate) source: Arc<dyn ConfigSource>,
    pub(crate) metrics: Arc<PushMetrics>,
    pub(crate) inbound: Streaming<GatewayMessage>,
    pub(crate) outbound: Outbound,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) debounce: Debounce,
}

/// The mutable part of a running session.
struct State {
    changes: watch::Receiver<u64>,
    /// Set once the source's sender is gone: nothing will change any more.
    changes_closed: bool,
    /// The last configuration pushed, to skip pushes that change nothing.
    last_content: Option<Arc<PreparedConfig>>,
    /// The version sent and not yet ACKed or NACKed.
    awaiting: Option<String>,
    /// What `awaiting` carries, to become `acked` when the gateway ACKs it.
    in_flight: Option<Arc<PreparedConfig>>,
    /// The version this gateway last ACKed on this stream and its content: the base of the
    /// next delta. A new stream starts without one, so a reconnecting gateway gets a full push.
    acked: Option<(String, Arc<PreparedConfig>)>,
}

/// What woke the session up.
enum Event {
    Stop,
    Message(Result<Option<GatewayMessage>, Status>),
    Changed { source_open: bool },
    Due,
}

/// Whether the session goes on after a step.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl Session {
    pub(crate) async fn run(mut self) {
        let mut state = State {
            changes: self.source.changes(),
            changes_closed: false,
            last_content: None,
            awaiting: None,
            in_flight: None,
            acked: None,
        };
        let result = self.serve(&mut state).await;
        let gateway = self.identity.name.as_str();
        let namespace = self.identity.namespace.as_str();
        let cluster = self.identity.cluster.as_str();
        match result {
            Ok(()) => info!(gateway, namespace, cluster, "gateway stream closed"),
            Err(SessionError::Inbound(status)) => {
                info!(gateway, namespace, cluster, %status, "gateway stream broke");
            }
            Err(error) => {
                warn!(gateway, namespace, cluster, %error, "ending gateway stream");
                // Best effort: the gateway may have stopped reading.
                let delivered = timeout(
                    ERROR_DELIVERY_TIMEOUT,
                    self.outbound.send(Err(error.to_status())),
                );
                if !matches!(delivered.await, Ok(Ok(()))) {
                    debug!(gateway, "could not deliver the error status to the gateway");
                }
            }
        }
    }

    async fn serve(&mut self, state: &mut State) -> Result<(), SessionError> {
        if self.push(state, PushKind::Initial, None).await? == Flow::Stop {
            return Ok(());
        }
        loop {
            // A push waits for the answer to the previous one; changes keep accumulating.
            let due = match (self.debounce.deadline(), &state.awaiting) {
                (Some(deadline), None) => Some(deadline),
                _ => None,
            };
            let event = tokio::select! {
                _ = self.shutdown.wait_for(|stop| *stop) => Event::Stop,
                message = self.inbound.message() => Event::Message(message),
                changed = state.changes.changed(), if !state.changes_closed => {
                    Event::Changed { source_open: changed.is_ok() }
                }
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => Event::Due,
                () = self.outbound.closed() => Event::Stop,
            };
            match event {
                Event::Stop | Event::Message(Ok(None)) => return Ok(()),
                Event::Message(Ok(Some(message))) => self.answer(state, message)?,
                Event::Message(Err(status)) => return Err(SessionError::Inbound(status)),
                Event::Changed { source_open: true } => self.debounce.note_change(Instant::now()),
                Event::Changed { source_open: false } => state.changes_closed = true,
                Event::Due => {
                    let first_change = self.debounce.take();
                    if self.push(state, PushKind::Update, first_change).await? == Flow::Stop {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Computes the gateway's configuration now and sends it if it differs from the last one.
    async fn push(
        &mut self,
        state: &mut State,
        kind: PushKind,
        first_change: Option<Instant>,
    ) -> Result<Flow, SessionError> {
        // Reserve first, compute second: a gateway that was slow to read gets the inputs of
        // the moment it is ready, not those of the moment the change happened.
        let permit = tokio::select! {
            permit = self.outbound.clone().reserve_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return Ok(Flow::Stop),
            },
            _ = self.shutdown.wait_for(|stop| *stop) => return Ok(Flow::Stop),
        };

        // Marked seen before computing: a change that lands during the computation triggers
        // another round instead of being lost.
        state.changes.borrow_and_update();
        let source = Arc::clone(&self.source);
        let identity = self.identity.clone();
        // Translation is CPU work; keep it off the runtime's worker threads.
        let prepared = tokio::task::spawn_blocking(move || source.prepared_for(&identity))
            .await
            .map_err(|error| SessionError::Source(error.to_string()))?;

        let unchanged = state.last_content.as_ref().is_some_and(|last| {
            Arc::ptr_eq(last, &prepared) || last.encoded() == prepared.encoded()
        });
        if unchanged {
            debug!(
                gateway = %self.identity.name,
                "inputs changed but this gateway's configuration did not; nothing pushed"
            );
            return Ok(Flow::Continue);
        }

        let version = self.connection.next_version();
        let push = next_push(state, &prepared, version.clone());
        let delta = push.is_delta();
        permit.send(Ok(push));
        state.in_flight = Some(Arc::clone(&prepared));
        state.last_content = Some(prepared);
        state.awaiting = Some(version.clone());
        self.connection.sent(&version);
        self.metrics
            .record_push(kind, first_change.map(|changed| changed.elapsed()));
        debug!(
            gateway = %self.identity.name,
            version,
            r#type = kind.as_str(),
            delta,
            "pushed configuration"
        );
        Ok(Flow::Continue)
    }

    fn answer(&self, state: &mut State, message: GatewayMessage) -> Result<(), SessionError> {
        match message.kind {
            None => Err(SessionError::EmptyMessage),
            Some(Kind::Hello(_)) => Err(SessionError::SecondHello),
            Some(Kind::Ack(ack)) => {
                expect_awaited(state, "ack", &ack.version)?;
                state.acked = state
                    .in_flight
                    .take()
                    .map(|content| (ack.version.clone(), content));
                self.connection.acked(&ack.version);
                debug!(gateway = %self.identity.name, version = ack.version, "gateway acked");
                Ok(())
            }
            Some(Kind::Nack(nack)) => {
                expect_awaited(state, "nack", &nack.version)?;
                // The gateway stays on its previous version, but whatever made it refuse may
                // also have left its copy unlike ours: the next push is whole.
                state.in_flight = None;
                state.acked = None;
                self.connection.nacked(&nack.version, &nack.problems);
                self.metrics.record_nack();
                warn!(
                    gateway = %self.identity.name,
                    namespace = %self.identity.namespace,
                    cluster = %self.identity.cluster,
                    version = nack.version,
                    problems = ?nack.problems,
                    "gateway refused configuration (NACK); it keeps serving its previous version"
                );
                Ok(())
            }
        }
    }
}

/// A delta over the version the gateway last ACKed on this stream, or the full config when
/// there is none (a new stream, or a NACK since).
fn next_push(state: &State, prepared: &Arc<PreparedConfig>, version: String) -> SharedPush {
    match &state.acked {
        Some((base_version, base)) => prepared.push_over(version, base, base_version),
        None => prepared.push(version),
    }
}

/// An answer must name exactly the version that is waiting for one.
fn expect_awaited(
    state: &mut State,
    answer: &'static str,
    version: &str,
) -> Result<(), SessionError> {
    match state.awaiting.take() {
        Some(awaited) if awaited == version => Ok(()),
        Some(awaited) => Err(SessionError::OutOfOrder {
            answer,
            version: version.to_owned(),
            expectation: format!("the version awaiting an answer is {awaited:?}"),
        }),
        None => Err(SessionError::OutOfOrder {
            answer,
            version: version.to_owned(),
            expectation: "no version is awaiting an answer".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(awaiting: Option<&str>) -> State {
        let (_sender, changes) = watch::channel(0);
        State {
            changes,
            changes_closed: false,
            last_content: None,
            awaiting: awaiting.map(str::to_owned),
            in_flight: None,
            acked: None,
        }
    }

    fn prepared(address: &str) -> Arc<PreparedConfig> {
        let clusters = (0..4)
            .map(|n| multicluster::proto::Cluster {
                name: format!("outbound|80||s{n}.default.svc.cluster.local"),
                endpoints: vec![multicluster::proto::Endpoint {
                    address: if n == 0 { address } else { "10.0.0.1" }.into(),
                    port: 80,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        Arc::new(PreparedConfig::new(multicluster::proto::GatewayConfig {
            clusters,
            ..Default::default()
        }))
    }

    #[test]
    fn a_new_stream_gets_a_full_push_then_deltas_over_the_acked_version() {
        let mut state = state(None);
        assert!(!next_push(&state, &prepared("10.0.0.2"), "1".into()).is_delta());
        state.acked = Some(("1".into(), prepared("10.0.0.2")));
        assert!(next_push(&state, &prepared("10.0.0.3"), "2".into()).is_delta());
    }

    #[test]
    fn answer_for_the_awaited_version_clears_it() {
        let mut state = state(Some("4"));
        assert!(expect_awaited(&mut state, "ack", "4").is_ok());
        assert_eq!(state.awaiting, None);
    }

    #[test]
    fn answer_for_another_version_is_out_of_order() {
        let mut state = state(Some("4"));
        let error = expect_awaited(&mut state, "nack", "3").expect_err("out of order");
        assert_eq!(
            error.to_string(),
            "nack for version \"3\" is out of order: the version awaiting an answer is \"4\""
        );
    }

    #[test]
    fn answer_when_nothing_was_sent_is_out_of_order() {
        let mut state = state(None);
        let error = expect_awaited(&mut state, "ack", "1").expect_err("nothing awaited");
        assert!(
            error
                .to_string()
                .contains("no version is awaiting an answer")
        );
        assert_eq!(error.to_status().code(), tonic::Code::InvalidArgument);
    }
}
