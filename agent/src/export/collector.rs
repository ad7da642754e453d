//! Streams samples to a lagscope collector over gRPC (`lagscope.v1`).
//!
//! Runs on its own OS thread with its own single-threaded tokio runtime, never
//! on the host's. Samples wait in the agent's bounded queue; once sent they are
//! kept until the collector acknowledges them, and put back at the front of the
//! queue if the stream breaks, so a collector restart loses nothing that still
//! fits in the buffer. Reconnects use exponential backoff with jitter.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use lagscope_wire::pb::{
    self, agent_message, collector_client::CollectorClient, collector_message, AgentMessage,
};
use lagscope_wire::{Sample, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::export::queue::BoundedQueue;

/// Samples per batch message.
const BATCH: usize = 64;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long shutdown waits for the last samples to be acknowledged.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Who this agent is, sent in `Hello` on every connection.
pub(crate) struct Identity {
    pub(crate) service: String,
    pub(crate) instance: String,
    pub(crate) runtimes: Vec<(String, usize)>,
    pub(crate) capabilities: Vec<String>,
    /// `LAGSCOPE_*` values the agent ignored, said in the hello.
    pub(crate) config_warnings: Vec<String>,
}

pub(crate) struct CollectorExporter {
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    /// PEM of an extra certificate authority to trust for `https://`.
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) identity: Identity,
    pub(crate) queue: Arc<BoundedQueue<Arc<Sample>>>,
    /// The sampler's interval, which the collector may change.
    pub(crate) sample_interval_us: Arc<AtomicU64>,
    /// Most samples sent but not yet acknowledged. Past it, sending pauses and
    /// the queue (bounded, drop-oldest) absorbs the rest, so a collector that
    /// stops reading costs at most twice the buffer.
    pub(crate) max_unacked: usize,
    /// Where profile requests go (`None`: this agent does not profile).
    #[cfg(target_os = "linux")]
    pub(crate) profiles: Option<Arc<crate::profiler::Exchange>>,
}

/// How a session ended.
enum End {
    /// The queue was closed (agent shutting down) and everything was sent.
    Closed,
    /// The connection failed or the collector hung up; retry.
    Broken(String),
    /// The collector refused this agent; retry slowly, the operator must act.
    Refused(String),
}

impl CollectorExporter {
    /// Runs until the queue is closed. Never panics into the caller: errors are
    /// reported on stderr once per change of state.
    pub(crate) fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(target: "lagscope", "cannot start the collector exporter: {e}");
                return;
            }
        };
        rt.block_on(self.run_async());
    }

    async fn run_async(self) {
        let mut backoff = BACKOFF_MIN;
        let mut last_error: Option<String> = None;
        let mut unacked: VecDeque<Arc<Sample>> = VecDeque::new();
        loop {
            let end = self.session(&mut unacked).await;
            // Whatever was not acknowledged goes back to the front, in order.
            self.queue.requeue_front(unacked.drain(..));
            let (message, delay) = match end {
                End::Closed => return,
                End::Broken(m) => (m, backoff),
                End::Refused(m) => (m, BACKOFF_MAX),
            };
            if self.queue.is_closed() {
                return;
            }
            if last_error.as_deref() != Some(message.as_str()) {
                tracing::warn!(target: "lagscope", "collector {}: {message}; retrying", self.url);
                last_error = Some(message);
            }
            tokio::time::sleep(jitter(delay)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if self.queue.is_closed() {
                return;
            }
        }
    }

    async fn session(&self, unacked: &mut VecDeque<Arc<Sample>>) -> End {
        let endpoint = match Endpoint::from_shared(self.url.clone()) {
            Ok(e) => e
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5)),
            Err(e) => return End::Refused(format!("invalid URL: {e}")),
        };
        let endpoint = if self.url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_webpki_roots();
            if let Some(pem) = &self.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            match endpoint.tls_config(tls) {
                Ok(e) => e,
                Err(e) => return End::Refused(format!("TLS setup failed: {}", error_chain(&e))),
            }
        } else {
            endpoint
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => return End::Broken(format!("cannot connect: {}", error_chain(&e))),
        };
        let mut client = CollectorClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);

        let (tx, rx) = mpsc::channel::<AgentMessage>(4);
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = &self.token {
            match format!("Bearer {token}").parse() {
                Ok(value) => {
                    request.metadata_mut().insert("authorization", value);
                }
                Err(_) => return End::Refused("token is not valid header text".into()),
            }
        }
        if tx.send(self.hello()).await.is_err() {
            return End::Broken("stream closed before hello".into());
        }
        let mut responses = match client.session(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => return end_of(status),
        };
        // Resend what an earlier session did not get acknowledged.
        self.queue.requeue_front(unacked.drain(..));
        let mut closing_since: Option<tokio::time::Instant> = None;
        // Whether the collector was asked to acknowledge everything now.
        let mut flushed = false;
        loop {
            if self.queue.is_closed() && closing_since.is_none() {
                closing_since = Some(tokio::time::Instant::now());
            }
            let room = self.max_unacked.saturating_sub(unacked.len());
            let batch = self.queue.drain(BATCH.min(room));
            // The collector acknowledges every few batches; when closing,
            // one batch (empty if nothing is left) asks it to answer now.
            let flush = closing_since.is_some() && !flushed && !unacked.is_empty();
            if !batch.is_empty() || flush {
                let message = AgentMessage {
                    msg: Some(agent_message::Msg::Samples(pb::SampleBatch {
                        samples: batch.iter().map(|s| s.to_pb()).collect(),
                        flush: closing_since.is_some(),
                    })),
                };
                flushed |= closing_since.is_some();
                unacked.extend(batch);
                if tx.send(message).await.is_err() {
                    return End::Broken("stream closed".into());
                }
                continue;
            }
            if let Some(since) = closing_since {
                if unacked.is_empty() || since.elapsed() > FLUSH_TIMEOUT {
                    // End the request stream, then let the collector finish its side,
                    // so it sees a clean goodbye rather than a reset connection.
                    drop(tx);
                    let drain = async { while let Ok(Some(_)) = responses.message().await {} };
                    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
                    return End::Closed;
                }
            }
            tokio::select! {
                _ = self.queue.ready(), if closing_since.is_none() && room > 0 => {}
                _ = tokio::time::sleep(Duration::from_millis(50)), if closing_since.is_some() => {}
                response = responses.message() => match response {
                    Ok(Some(message)) => self.handle(message, unacked),
                    Ok(None) => return End::Broken("collector closed the stream".into()),
                    Err(status) => return end_of(status),
                },
            }
        }
    }

    fn handle(&self, message: pb::CollectorMessage, unacked: &mut VecDeque<Arc<Sample>>) {
        match message.msg {
            Some(collector_message::Msg::Ack(ack)) => {
                while unacked.front().is_some_and(|s| s.seq <= ack.seq) {
                    unacked.pop_front();
                }
            }
            Some(collector_message::Msg::SetSampleInterval(set)) => {
                // The sampler validates and clamps on its next tick.
                self.sample_interval_us.store(set.interval_us, Relaxed);
            }
            Some(collector_message::Msg::StartProfile(start)) => {
                #[cfg(target_os = "linux")]
                if let Some(exchange) = &self.profiles {
                    exchange.request(crate::profiler::Request {
                        id: start.request_id,
                        hz: start.hz.clamp(1, crate::profiler::MAX_PROFILE_HZ),
                        duration: Duration::from_millis(start.duration_ms.clamp(100, 600_000)),
                    });
                }
                #[cfg(not(target_os = "linux"))]
                let _ = start;
            }
            Some(collector_message::Msg::Welcome(_)) | None => {}
        }
    }

    fn hello(&self) -> AgentMessage {
        let id = &self.identity;
        AgentMessage {
            msg: Some(agent_message::Msg::Hello(pb::Hello {
                protocol_version: PROTOCOL_VERSION,
                service: id.service.clone(),
                instance: id.instance.clone(),
                pid: std::process::id(),
                host: crate::platform::procfs::hostname().unwrap_or_default(),
                agent_version: env!("CARGO_PKG_VERSION").into(),
                runtimes: id
                    .runtimes
                    .iter()
                    .map(|(name, workers)| pb::RuntimeShape {
                        name: name.clone(),
                        workers: *workers as u32,
                    })
                    .collect(),
                capabilities: id.capabilities.clone(),
                config_warnings: id.config_warnings.clone(),
                sample_interval_us: self.sample_interval_us.load(Relaxed),
                max_unacked: u32::try_from(self.max_unacked).unwrap_or(u32::MAX),
            })),
        }
    }
}

fn end_of(status: tonic::Status) -> End {
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => End::Refused(format!(
            "rejected this agent ({:?}: {}); check LAGSCOPE_TOKEN",
            status.code(),
            status.message()
        )),
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => End::Refused(format!(
            "rejected this agent ({:?}: {})",
            status.code(),
            status.message()
        )),
        code => End::Broken(format!("{code:?}: {}", status.message())),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `delay` scaled by a factor in [0.5, 1.5), so many agents do not reconnect in step.
fn jitter(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(delay.as_nanos() as u64);
    let unit = (h.finish() % 1000) as f64 / 1000.0;
    delay.mul_f64(0.5 + unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_one_and_a_half() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(100));
            assert!(
                d >= Duration::from_millis(50) && d < Duration::from_millis(150),
                "{d:?}"
            );
        }
    }

    #[test]
    fn auth_failures_are_refusals_and_others_are_retried() {
        assert!(
            matches!(end_of(tonic::Status::unauthenticated("bad token")), End::Refused(m) if m.contains("LAGSCOPE_TOKEN"))
        );
        assert!(matches!(
            end_of(tonic::Status::unavailable("down")),
            End::Broken(_)
        ));
    }
}
