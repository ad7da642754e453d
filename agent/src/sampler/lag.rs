//! The lag probe: how long a task made runnable waits for its first poll.
//!
//! The sampler thread spawns a tiny task through the runtime's handle; from a
//! thread outside the runtime that goes through the global (inject) queue, so
//! the measured delay is what a newly woken request would see. One probe is in
//! flight at a time; while it waits, its age counts as lag, so a runtime that is
//! blocked right now shows growing lag live rather than after it recovers.
//!
//! While every worker is parked nothing can be waiting for one, and a probe
//! would only time a parked worker's wake-up (and cost one: ~40 µs of CPU
//! for the sampler thread and as much for the worker, on a small machine).
//! So while the runtime is idle the probes back off, doubling the gap up to
//! [`IDLE_INTERVAL`]; the first look that finds a worker awake, or a probe
//! that waited, brings them back to the configured interval. A block that
//! starts on an idle runtime is seen by the probe at most [`IDLE_INTERVAL`]
//! late (the stall watchdog times it from the poll's own start). Only the
//! default interval backs off ([`idle_gap`]): one set on purpose is kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::runtime::{Handle, RuntimeMetrics};
use tokio::task::JoinHandle;

use crate::sample::LagStats;

const NOT_POLLED: u64 = u64::MAX;
/// 1 µs .. 60 s at 2 significant digits (1 % precision, ~22 KiB).
const HIST_MAX_US: u64 = 60_000_000;
/// Longest gap between probes while every worker is parked.
pub(crate) const IDLE_INTERVAL: Duration = Duration::from_millis(200);
/// The longest gap between probes while idle, for a configured interval:
/// [`IDLE_INTERVAL`] for the default, the interval itself (no back-off) for
/// one set on purpose, which asks for the precision it costs.
pub(crate) fn idle_gap(interval: Duration) -> Duration {
    if interval == crate::options::DEFAULT_LAG_PROBE_INTERVAL {
        IDLE_INTERVAL
    } else {
        interval
    }
}

/// A probe that waited less than this found an idle runtime.
const IDLE_DELAY_US: u64 = 2_000;

struct InFlight {
    spawned_at: Instant,
    /// Delay in µs, written by the probe task on its first poll.
    delay_us: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// A number that tells the watched runtimes of this process apart, those of
/// one agent and those of another (tokio's own runtime id is unstable):
/// each runtime's lag probe reports it where it runs. Never 0.
pub(crate) fn new_runtime_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(crate) struct LagProbe {
    handle: Handle,
    metrics: RuntimeMetrics,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    token: u64,
    interval: Duration,
    /// The longest gap while idle.
    idle_gap: Duration,
    /// The gap to the next probe: `interval`, or longer while idle.
    gap: Duration,
    /// Whether the last probe to run waited less than [`IDLE_DELAY_US`].
    last_was_quick: bool,
    next_spawn: Instant,
    next_check: Instant,
    in_flight: Option<InFlight>,
    histogram: Histogram<u64>,
    /// Set once the runtime has shut down: its probes can never run.
    gone: bool,
}

impl LagProbe {
    /// A probe of the runtime behind `handle`, which the stall watchdog
    /// knows by `token` (the probe tells it which threads work for it).
    /// While every worker is parked the gap between probes grows up to
    /// `idle_gap` (see [`idle_gap`]).
    pub(crate) fn new(
        handle: Handle,
        token: u64,
        interval: Duration,
        idle_gap: Duration,
        now: Instant,
    ) -> Self {
        LagProbe {
            metrics: handle.metrics(),
            handle,
            token,
            interval,
            idle_gap: idle_gap.max(interval),
            gap: interval,
            last_was_quick: false,
            next_spawn: now,
            next_check: now,
            in_flight: None,
            // Bounds are constants known to be valid.
            histogram: Histogram::new_with_bounds(1, HIST_MAX_US, 2)
                .unwrap_or_else(|_| unreachable_histogram()),
            gone: false,
        }
    }

    /// When this probe next needs the sampler thread.
    pub(crate) fn next_deadline(&self) -> Instant {
        self.next_check
    }

    /// Collects a finished probe and spawns the next one when due.
    #[cfg(test)]
    pub(crate) fn tick(&mut self, now: Instant) {
        self.collect();
        self.spawn_if_due(now);
    }

    /// Records the probe in flight if it has run.
    pub(crate) fn collect(&mut self) {
        let Some(flight) = &self.in_flight else {
            return;
        };
        let finished = flight.task.is_finished();
        let delay = flight.delay_us.load(Ordering::Acquire);
        if delay != NOT_POLLED {
            self.last_was_quick = delay < IDLE_DELAY_US;
            self.record(delay);
            self.in_flight = None;
        } else if finished {
            // Finished without ever being polled: the runtime was shut down.
            self.gone = true;
            self.in_flight = None;
        }
    }

    /// Spawns the next probe if none is in flight and one is due.
    pub(crate) fn spawn_if_due(&mut self, now: Instant) {
        if self.gone {
            self.next_check = now + Duration::from_secs(3600);
            return;
        }
        if self.in_flight.is_none() && now >= self.next_spawn {
            self.gap = if self.last_was_quick && self.all_parked() {
                (self.gap * 2).min(self.idle_gap)
            } else {
                self.interval
            };
            self.spawn(now);
        }
        // The delay is timed by the task itself; the sampler only needs to come
        // back to collect it and spawn the next probe, or to re-check a late one.
        self.next_check = if self.next_spawn > now {
            self.next_spawn
        } else {
            now + self.interval
        };
    }

    fn spawn(&mut self, now: Instant) {
        let delay_us = Arc::new(AtomicU64::new(NOT_POLLED));
        let written = delay_us.clone();
        let spawned_at = Instant::now();
        #[cfg(target_os = "linux")]
        let token = self.token;
        let task = self.handle.spawn(async move {
            let us = u64::try_from(spawned_at.elapsed().as_micros()).unwrap_or(u64::MAX - 1);
            written.store(us, Ordering::Release);
            // The stable stall detector's proof that this worker is not stuck.
            #[cfg(target_os = "linux")]
            crate::watchdog::probe_ran_here(token);
        });
        self.in_flight = Some(InFlight {
            spawned_at,
            delay_us,
            task,
        });
        // Keep a steady cadence, but never schedule into the past after a long stall.
        self.next_spawn = (self.next_spawn + self.gap).max(now);
    }

    /// Whether every worker of the runtime is parked right now (stable
    /// metrics: a worker's park/unpark count is odd while it is parked).
    fn all_parked(&self) -> bool {
        (0..self.metrics.num_workers()).all(|w| self.metrics.worker_park_unpark_count(w) % 2 == 1)
    }

    /// The gap the probe keeps now (for tests).
    #[cfg(test)]
    fn gap(&self) -> Duration {
        self.gap
    }

    fn record(&mut self, delay_us: u64) {
        self.histogram
            .saturating_record(delay_us.clamp(1, HIST_MAX_US));
    }

    /// Statistics since the last call, including the age of a probe still waiting.
    pub(crate) fn take_stats(&mut self, now: Instant) -> Option<LagStats> {
        let pending_us = self.in_flight.as_ref().filter(|_| !self.gone).map(|f| {
            u64::try_from(now.duration_since(f.spawned_at).as_micros()).unwrap_or(u64::MAX)
        });
        let probes = self.histogram.len();
        let stats = if probes == 0 {
            let pending = pending_us?;
            {
                let mut lag_stats = LagStats::default();
                lag_stats.pending_us = pending_us;
                lag_stats.min_us = pending;
                lag_stats.mean_us = pending;
                lag_stats.p50_us = pending;
                lag_stats.p90_us = pending;
                lag_stats.p99_us = pending;
                lag_stats.p999_us = pending;
                lag_stats.max_us = pending;
                lag_stats
            }
        } else {
            let mut h = self.histogram.clone();
            // A waiting probe that is older than the worst completed one is the
            // live lag: fold it in so percentiles and max show it now.
            let pending_counts = pending_us.filter(|&p| p > h.max());
            if let Some(p) = pending_counts {
                h.saturating_record(p.clamp(1, HIST_MAX_US));
            }
            {
                let mut lag_stats = LagStats::default();
                lag_stats.probes = probes;
                lag_stats.pending_us = pending_us;
                lag_stats.min_us = h.min();
                lag_stats.mean_us = h.mean().round() as u64;
                lag_stats.p50_us = h.value_at_quantile(0.5);
                lag_stats.p90_us = h.value_at_quantile(0.9);
                lag_stats.p99_us = h.value_at_quantile(0.99);
                lag_stats.p999_us = h.value_at_quantile(0.999);
                lag_stats.max_us = pending_counts.unwrap_or(0).max(h.max());
                lag_stats
            }
        };
        self.histogram.reset();
        Some(stats)
    }
}

#[cold]
fn unreachable_histogram() -> Histogram<u64> {
    // `new_with_bounds(1, 60e6, 2)` cannot fail; fall back to an auto-resizing one.
    Histogram::new(2).unwrap_or_else(|_| panic!("hdrhistogram rejects 2 significant digits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn drive(probe: &mut LagProbe, for_: Duration) {
        let end = Instant::now() + for_;
        while Instant::now() < end {
            probe.tick(Instant::now());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn idle_runtime_has_small_lag() {
        let rt = runtime();
        let mut probe = LagProbe::new(
            rt.handle().clone(),
            1,
            Duration::from_millis(5),
            IDLE_INTERVAL,
            Instant::now(),
        );
        drive(&mut probe, Duration::from_millis(200));
        let stats = probe.take_stats(Instant::now()).expect("probes ran");
        assert!(stats.probes >= 2, "{stats:?}");
        assert!(stats.p50_us < 5_000, "{stats:?}");
    }

    #[test]
    fn probes_back_off_while_idle_and_return_once_a_worker_is_busy() {
        let rt = runtime();
        let interval = Duration::from_millis(5);
        let mut probe = LagProbe::new(
            rt.handle().clone(),
            1,
            interval,
            IDLE_INTERVAL,
            Instant::now(),
        );
        drive(&mut probe, Duration::from_millis(600));
        // Up to the longest gap, unless a busy machine delayed a probe.
        assert!(
            probe.gap() >= interval * 8,
            "idle: the gap grew only to {:?}",
            probe.gap()
        );
        let idle = probe.take_stats(Instant::now()).expect("probes ran");
        assert!(
            idle.probes <= 15,
            "600 ms idle at a 5 ms interval took {} probes",
            idle.probes
        );
        // A worker busy computing (not parked): probes at the interval again.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy = stop.clone();
        rt.spawn(async move {
            while !busy.load(Ordering::Relaxed) {
                std::hint::spin_loop();
                tokio::task::yield_now().await;
            }
        });
        drive(&mut probe, Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(probe.gap(), interval, "busy: the configured interval");
        assert_eq!(idle_gap(interval), interval, "a chosen interval is kept");
        assert_eq!(
            idle_gap(crate::options::DEFAULT_LAG_PROBE_INTERVAL),
            IDLE_INTERVAL
        );
        let busy_stats = probe.take_stats(Instant::now()).expect("probes ran");
        assert!(
            busy_stats.probes >= 10,
            "300 ms busy at a 5 ms interval took {} probes",
            busy_stats.probes
        );
    }

    #[test]
    fn blocked_runtime_shows_pending_age_before_it_recovers() {
        let rt = runtime();
        let mut probe = LagProbe::new(
            rt.handle().clone(),
            1,
            Duration::from_millis(5),
            IDLE_INTERVAL,
            Instant::now(),
        );
        drive(&mut probe, Duration::from_millis(20));
        rt.spawn(async { std::thread::sleep(Duration::from_millis(600)) });
        drive(&mut probe, Duration::from_millis(350));
        let live = probe.take_stats(Instant::now()).expect("pending probe");
        assert!(live.pending_us.unwrap_or(0) >= 250_000, "{live:?}");
        assert!(live.max_us >= 250_000, "{live:?}");
        drive(&mut probe, Duration::from_millis(400));
        let after = probe.take_stats(Instant::now()).expect("probe completed");
        assert!(
            after.max_us >= 500_000 && after.max_us < 700_000,
            "{after:?}"
        );
    }

    #[test]
    fn shut_down_runtime_stops_reporting() {
        let rt = runtime();
        let mut probe = LagProbe::new(
            rt.handle().clone(),
            1,
            Duration::from_millis(5),
            IDLE_INTERVAL,
            Instant::now(),
        );
        drop(rt);
        drive(&mut probe, Duration::from_millis(30));
        probe.take_stats(Instant::now());
        drive(&mut probe, Duration::from_millis(30));
        assert_eq!(probe.take_stats(Instant::now()), None);
    }
}
