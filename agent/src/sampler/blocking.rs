//! The blocking-pool probe: how long a no-op `spawn_blocking` job waits for
//! a thread. It needs no unstable tokio API, so a saturated blocking pool is
//! seen on stable tokio too; with `tokio_unstable` it sits beside the pool's
//! queue depth and thread counts.
//!
//! One probe is in flight at a time, sent every [`PROBE_INTERVAL`]; while it
//! waits its age counts, so a pool that is saturated right now shows a
//! growing wait live. Its cost: one idle blocking thread the pool keeps
//! alive, and a job that does nothing every quarter second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Time between probes (tokio keeps an idle blocking thread 10 s, so the
/// probe's thread is reused rather than started anew each time).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(250);

const NOT_RUN: u64 = u64::MAX;

struct InFlight {
    sent_at: Instant,
    /// Wait in µs, written by the job when a thread runs it.
    wait_us: Arc<AtomicU64>,
    job: JoinHandle<()>,
}

pub(crate) struct BlockingProbe {
    handle: Handle,
    next_send: Instant,
    in_flight: Option<InFlight>,
    /// Longest wait of the jobs that ran since the last sample.
    longest_us: Option<u64>,
    /// Set once the runtime has shut down: its jobs can never run.
    gone: bool,
}

impl BlockingProbe {
    pub(crate) fn new(handle: Handle, now: Instant) -> Self {
        BlockingProbe {
            handle,
            next_send: now,
            in_flight: None,
            longest_us: None,
            gone: false,
        }
    }

    /// When this probe next needs the sampler thread.
    pub(crate) fn next_deadline(&self) -> Instant {
        self.next_send
    }

    /// Records a job that ran, and sends the next one when due.
    pub(crate) fn tick(&mut self, now: Instant) {
        if let Some(flight) = &self.in_flight {
            let wait = flight.wait_us.load(Ordering::Acquire);
            if wait != NOT_RUN {
                self.longest_us = Some(self.longest_us.map_or(wait, |l| l.max(wait)));
                self.in_flight = None;
            } else if flight.job.is_finished() {
                // Finished without running: the runtime was shut down.
                self.gone = true;
                self.in_flight = None;
            }
        }
        if self.gone || self.in_flight.is_some() {
            // Nothing to send until the job runs: look again an interval
            // later, never at a deadline already past (the sampler thread
            // would wake at once, again and again).
            if now >= self.next_send {
                self.next_send = now + PROBE_INTERVAL;
            }
            return;
        }
        if now < self.next_send {
            return;
        }
        let wait_us = Arc::new(AtomicU64::new(NOT_RUN));
        let written = wait_us.clone();
        let sent_at = Instant::now();
        let job = self.handle.spawn_blocking(move || {
            let us = u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(NOT_RUN - 1);
            written.store(us, Ordering::Release);
        });
        self.in_flight = Some(InFlight {
            sent_at,
            wait_us,
            job,
        });
        self.next_send = (self.next_send + PROBE_INTERVAL).max(now);
    }

    /// The longest wait since the last call, counting the job still waiting
    /// (`None` before the first job ran or was sent).
    pub(crate) fn take(&mut self, now: Instant) -> Option<u64> {
        let pending = self.in_flight.as_ref().map(|f| {
            u64::try_from(now.saturating_duration_since(f.sent_at).as_micros()).unwrap_or(u64::MAX)
        });
        let longest = self.longest_us.take();
        match (longest, pending) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saturated_pool_shows_a_growing_wait_and_a_free_one_none() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .build()
            .expect("runtime");
        let mut probe = BlockingProbe::new(rt.handle().clone(), Instant::now());
        // A free pool: the job runs at once.
        let end = Instant::now() + Duration::from_secs(5);
        let free = loop {
            probe.tick(Instant::now());
            if probe.in_flight.is_none() && probe.longest_us.is_some() {
                break probe.take(Instant::now()).expect("a wait");
            }
            assert!(Instant::now() < end, "the probe never ran");
            std::thread::sleep(Duration::from_millis(5));
        };
        // Starting the pool's first thread takes a while on a loaded
        // machine; still far below the wait behind a busy pool below.
        assert!(free < 120_000, "{free} µs on a free pool");
        // The only blocking thread busy for 400 ms: the probe waits behind it.
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn_blocking(move || {
            let _ = tx.send(());
            std::thread::sleep(Duration::from_millis(400));
        });
        rx.recv().expect("the job started");
        probe.next_send = Instant::now();
        probe.tick(Instant::now());
        // While the job waits (past the next send time too), the sampler is
        // not woken before the next interval, however often it ticks.
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(60));
            let now = Instant::now();
            probe.tick(now);
            assert!(probe.in_flight.is_some(), "the job cannot have run yet");
            assert!(
                probe.next_deadline() > now,
                "a deadline in the past would spin the sampler"
            );
        }
        let waiting = probe.take(Instant::now()).expect("pending age");
        assert!(waiting >= 290_000, "{waiting} µs while the pool is busy");
    }
}
