//! `--otlp-export URL`: forwards agents' samples (as metrics) and finished
//! stalls (as spans) to an OTLP/gRPC endpoint, never holding up ingest: a
//! bounded queue in front, the oldest dropped and counted when it is full.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::otlp::pb::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use crate::otlp::pb::collector::trace::v1::trace_service_client::TraceServiceClient;
use lagscope_wire::Sample;
use tokio::sync::Notify;

use super::map;

/// Samples waiting to be forwarded, at most.
pub const QUEUE: usize = 4096;
/// Samples per export call.
const BATCH: usize = 256;

/// The queue between ingest and the export task.
#[derive(Debug, Default)]
pub struct Forwarder {
    queue: Mutex<VecDeque<Sample>>,
    wake: Notify,
    /// Samples dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Samples exported.
    pub exported: AtomicU64,
    /// Export calls that failed.
    pub failures: AtomicU64,
}

impl Forwarder {
    /// Queues a copy of `sample`; never waits.
    pub fn push(&self, sample: &Sample) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= QUEUE {
            q.pop_front();
            self.dropped.fetch_add(1, Relaxed);
        }
        q.push_back(sample.clone());
        drop(q);
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<Sample> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.len().min(BATCH);
        q.drain(..n).collect()
    }

    /// Exports to `url` until the task is dropped. A failed batch is dropped
    /// (and counted) rather than retried, so a dead endpoint costs nothing
    /// but the queue.
    pub async fn run(self: Arc<Self>, url: String) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let batch = self.take();
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            match export(&url, &batch).await {
                Ok(()) => {
                    self.exported.fetch_add(batch.len() as u64, Relaxed);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    let first = self.failures.fetch_add(1, Relaxed) == 0;
                    self.dropped.fetch_add(batch.len() as u64, Relaxed);
                    if first {
                        eprintln!("lagscope collector: OTLP export to {url} failed: {e}");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

async fn export(url: &str, batch: &[Sample]) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let refs: Vec<&Sample> = batch.iter().collect();
    MetricsServiceClient::new(channel.clone())
        .export(map::request_from_samples(&refs))
        .await
        .map_err(|e| e.message().to_string())?;
    for s in batch {
        let finished: Vec<_> = s.stalls.iter().filter(|e| !e.ongoing).collect();
        if finished.is_empty() {
            continue;
        }
        TraceServiceClient::new(channel.clone())
            .export(map::spans_from_stalls(s, &finished))
            .await
            .map_err(|e| e.message().to_string())?;
    }
    Ok(())
}
