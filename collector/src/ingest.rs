//! The gRPC side: agents' `Session` streams, authenticated and bounded, feeding
//! the store (and the recording, if one is being made).
//!
//! A misbehaving stream (malformed frames, oversized messages, no hello) is
//! closed with a status and logged; other agents are unaffected.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use lagscope_wire::pb::{
    self, agent_message, collector_message, collector_server, AgentMessage, CollectorMessage,
};
use lagscope_wire::{Sample, PROTOCOL_VERSION};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::record::Recorder;
use crate::shared::Shared;
use crate::store::AgentInfo;

/// How long an agent has to say hello after opening its stream.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Most samples an acknowledgement waits for: at 1 Hz an agent hears back
/// every 8 s, inside its 10 s HTTP/2 keep-alive, so acks also keep the
/// connection from needing pings.
const ACK_EVERY_MAX: u64 = 8;

/// The longest an acknowledgement waits, whatever the count.
const ACK_DELAY_MAX: Duration = Duration::from_secs(8);

/// When to acknowledge what was stored. Each ack is a frame and a write on
/// both sides, and at 1 Hz it was half the collector's work per agent, so
/// samples are acknowledged every few batches: at most a quarter of the
/// agent's unacknowledged allowance (it never has to pause for them), at most
/// [`ACK_EVERY_MAX`] and [`ACK_DELAY_MAX`] apart, and at once when the agent
/// flushes before exiting. Older agents (no allowance said): every batch.
#[derive(Debug)]
struct AckPolicy {
    every: u64,
    /// Highest sequence stored or skipped since the last ack, and how many.
    pending: Option<u64>,
    count: u64,
    since: tokio::time::Instant,
}

impl AckPolicy {
    fn new(max_unacked: u32) -> Self {
        AckPolicy {
            every: (u64::from(max_unacked) / 4).clamp(1, ACK_EVERY_MAX),
            pending: None,
            count: 0,
            since: tokio::time::Instant::now(),
        }
    }

    fn note(&mut self, seq: u64) {
        self.pending = Some(self.pending.map_or(seq, |a| a.max(seq)));
        self.count += 1;
    }

    /// The sequence to acknowledge after a batch, if it is time.
    fn due(&mut self, flush: bool) -> Option<u64> {
        let now = tokio::time::Instant::now();
        let due =
            flush || self.count >= self.every || now.duration_since(self.since) >= ACK_DELAY_MAX;
        if !due {
            return None;
        }
        let seq = self.pending.take()?;
        self.count = 0;
        self.since = now;
        Some(seq)
    }
}

/// The `lagscope.v1.Collector` service.
pub struct Ingest {
    shared: Arc<Shared>,
    recorder: Option<Recorder>,
    sessions: Arc<AtomicUsize>,
    max_agents: usize,
    quiet: bool,
}

impl Ingest {
    /// A service writing into `shared`, accepting at most `max_agents` streams;
    /// `quiet` keeps it from logging agents coming and going on stderr.
    pub fn new(
        shared: Arc<Shared>,
        recorder: Option<Recorder>,
        max_agents: usize,
        quiet: bool,
    ) -> Self {
        Ingest {
            shared,
            recorder,
            sessions: Arc::new(AtomicUsize::new(0)),
            max_agents,
            quiet,
        }
    }

    fn reject(&self, status: Status) -> Status {
        self.shared.store().count_rejected_stream();
        if !self.quiet {
            eprintln!(
                "lagscope collector: refused an agent stream: {}",
                status.message()
            );
        }
        status
    }
}

/// Decrements the session count when a session ends, however it ends.
struct SessionSlot(Arc<AtomicUsize>);

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[tonic::async_trait]
impl collector_server::Collector for Ingest {
    type SessionStream = ReceiverStream<Result<CollectorMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        if let Some(expected) = &self.shared.token {
            let given = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if !crate::auth::bearer_matches(given, expected) {
                return Err(self.reject(Status::unauthenticated(
                    "missing or wrong token: start the agent with LAGSCOPE_TOKEN set to the collector's --token",
                )));
            }
        }
        if self.sessions.fetch_add(1, Relaxed) >= self.max_agents {
            self.sessions.fetch_sub(1, Relaxed);
            return Err(self.reject(Status::resource_exhausted(format!(
                "the collector accepts at most {} agents (--max-agents)",
                self.max_agents
            ))));
        }
        let slot = SessionSlot(self.sessions.clone());
        let mut inbound = request.into_inner();

        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(AgentMessage {
                msg: Some(agent_message::Msg::Hello(h)),
            }))) => h,
            Ok(Ok(_)) => {
                return Err(self.reject(Status::invalid_argument(
                    "the first message of a session must be a Hello",
                )))
            }
            Ok(Err(status)) => return Err(self.reject(status)),
            Err(_) => return Err(self.reject(Status::deadline_exceeded("no Hello within 10 s"))),
        };
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(self.reject(Status::failed_precondition(format!(
                "agent speaks protocol {}, this collector speaks {PROTOCOL_VERSION}",
                hello.protocol_version
            ))));
        }
        if hello.service.is_empty() || hello.instance.is_empty() {
            return Err(self.reject(Status::invalid_argument(
                "Hello needs a service and an instance",
            )));
        }
        let info = AgentInfo {
            pid: hello.pid,
            host: hello.host.clone(),
            agent_version: hello.agent_version.clone(),
            capabilities: hello.capabilities.clone(),
            config_warnings: hello.config_warnings.clone(),
            via_otlp: false,
            notices: Vec::new(),
        };
        let acks = AckPolicy::new(hello.max_unacked);
        let (service, instance) = (hello.service, hello.instance);
        self.shared
            .store()
            .connect(&service, &instance, info, crate::shared::now_ms())
            .map_err(|e| self.reject(Status::resource_exhausted(e.to_string())))?;
        self.shared.note_update();

        let (tx, rx) = mpsc::channel(16);
        let welcome = CollectorMessage {
            msg: Some(collector_message::Msg::Welcome(pb::Welcome {
                protocol_version: PROTOCOL_VERSION,
                collector_version: env!("CARGO_PKG_VERSION").into(),
            })),
        };
        let _ = tx.send(Ok(welcome)).await;
        let session = self.shared.open_session(&service, &instance, tx.clone());
        let shared = self.shared.clone();
        let recorder = self.recorder.clone();
        let quiet = self.quiet;
        tokio::spawn(async move {
            let _slot = slot;
            let outcome = pump(
                &shared,
                recorder.as_ref(),
                &service,
                &instance,
                &mut inbound,
                &tx,
                acks,
            )
            .await;
            if let Err(status) = outcome {
                let bad_input = is_bad_input(&status);
                if bad_input {
                    shared.store().count_rejected_stream();
                }
                if quiet {
                    // The demo's dashboard owns the terminal.
                } else if bad_input {
                    eprintln!(
                        "lagscope collector: closed the stream of {service}/{instance} for bad input: {}",
                        status.message()
                    );
                } else {
                    eprintln!(
                        "lagscope collector: {service}/{instance} disconnected: {}",
                        status.message()
                    );
                }
                let _ = tx.send(Err(status)).await;
            }
            // A newer session of the same instance keeps it connected.
            if shared.close_session(&service, &instance, session) {
                shared
                    .store()
                    .disconnect(&service, &instance, crate::shared::now_ms());
                shared.note_update();
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Whether a stream ended because of what the agent sent (malformed or
/// oversized messages, protocol violations) rather than a lost connection.
fn is_bad_input(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Internal
            | tonic::Code::InvalidArgument
            | tonic::Code::OutOfRange
            | tonic::Code::ResourceExhausted
            | tonic::Code::FailedPrecondition
    )
}

/// Stores each batch and acknowledges what was stored, until the agent
/// hangs up.
async fn pump(
    shared: &Shared,
    recorder: Option<&Recorder>,
    service: &str,
    instance: &str,
    inbound: &mut Streaming<AgentMessage>,
    tx: &mpsc::Sender<Result<CollectorMessage, Status>>,
    mut acks: AckPolicy,
) -> Result<(), Status> {
    while let Some(message) = inbound.message().await? {
        let Some(agent_message::Msg::Samples(batch)) = message.msg else {
            continue;
        };
        let mut stored = false;
        {
            let mut store = shared.store();
            for p in batch.samples {
                let sample = Sample::from_pb(p, service, instance);
                let seq = sample.seq;
                let now_ms = crate::shared::now_ms();
                if store.check_clock(sample.timestamp_ms, now_ms).is_err() {
                    // Acknowledged, so the agent does not send it again.
                    acks.note(seq);
                    continue;
                }
                let recorded = recorder.map(|r| (r, sample.clone()));
                let forwarded = shared.forwarder().map(|f| (f, sample.clone()));
                match store.ingest(sample) {
                    Ok(true) => {
                        stored = true;
                        if let Some((r, s)) = recorded {
                            r.append(&s);
                        }
                        if let Some((f, s)) = forwarded {
                            f.push(&s);
                        }
                        if let Some(p) = shared.pyroscope() {
                            if let Some(s) = store.latest(service, instance) {
                                p.offer(s);
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(e) => return Err(Status::failed_precondition(e.to_string())),
                }
                acks.note(seq);
            }
        }
        if stored {
            shared.note_update();
        }
        if let Some(seq) = acks.due(batch.flush) {
            let ack = CollectorMessage {
                msg: Some(collector_message::Msg::Ack(pb::Ack { seq })),
            };
            if tx.send(Ok(ack)).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_agents_have_every_batch_acknowledged() {
        let mut acks = AckPolicy::new(0);
        for seq in 0..3 {
            acks.note(seq);
            assert_eq!(acks.due(false), Some(seq));
        }
        assert_eq!(acks.due(true), None, "nothing pending, nothing to say");
    }

    #[test]
    fn acks_come_every_quarter_of_the_allowance_and_at_most_every_eight() {
        // What is acknowledged over samples 0..n, one per batch.
        let acked = |max_unacked: u32, n: u64| -> Vec<u64> {
            let mut acks = AckPolicy::new(max_unacked);
            (0..n)
                .filter_map(|seq| {
                    acks.note(seq);
                    acks.due(false)
                })
                .collect()
        };
        assert_eq!(acked(20, 12), [4, 9]);
        assert_eq!(acked(300, 20), [7, 15]);
    }

    #[test]
    fn a_flush_is_acknowledged_at_once() {
        let mut acks = AckPolicy::new(300);
        acks.note(41);
        acks.note(42);
        assert_eq!(acks.due(false), None);
        assert_eq!(acks.due(true), Some(42));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_agent_hears_back_within_the_delay() {
        let mut acks = AckPolicy::new(300);
        acks.note(1);
        tokio::time::advance(ACK_DELAY_MAX - Duration::from_millis(1)).await;
        assert_eq!(acks.due(false), None);
        acks.note(2);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(acks.due(false), Some(2));
    }
}
