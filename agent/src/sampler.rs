//! The sampler thread: owns every per-interval reader and turns them into one
//! [`Sample`] per interval.
//!
//! It runs on its own OS thread (`lagscope-sampler`), never on a watched
//! runtime, so it keeps reporting while every worker is blocked.

pub(crate) mod blocking;
pub(crate) mod gauge;
pub(crate) mod lag;
pub(crate) mod memory;
#[cfg(tokio_unstable)]
pub(crate) mod poll;
pub(crate) mod process;
pub(crate) mod runtime;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use self::lag::LagProbe;
use self::memory::MemorySampler;
use self::process::ProcessSampler;
use self::runtime::RuntimeSampler;
use crate::sample::{Sample, StuckRequest, MAX_STUCK_LISTED};

/// One watched runtime: its counters, its lag probe and its blocking-pool probe.
pub(crate) struct Watched {
    pub(crate) runtime: RuntimeSampler,
    pub(crate) probe: LagProbe,
    pub(crate) blocking: blocking::BlockingProbe,
}

/// Shortest sample interval, in code, the environment or a collector's
/// request.
pub(crate) const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
/// Longest sample interval.
pub(crate) const MAX_SAMPLE_INTERVAL: Duration = Duration::from_secs(3600);
/// Shortest time between an early (stall news) sample and the one before.
const EARLIEST: Duration = Duration::from_millis(100);

/// How long past its time a blocking-pool probe waits for the sampler
/// thread to wake for something else (see [`Sampler::next_deadline`]).
const BLOCKING_SLACK: Duration = lag::IDLE_INTERVAL;

pub(crate) struct Sampler {
    service: String,
    instance: String,
    interval: Duration,
    /// Requested interval in µs; the collector may change it while running.
    requested_interval_us: Arc<AtomicU64>,
    watched: Vec<Watched>,
    memory: MemorySampler,
    process: ProcessSampler,
    tasks: crate::tasks::TaskSampler,
    seq: u64,
    previous_at: Instant,
    next_sample: Instant,
    #[cfg(target_os = "linux")]
    stalls: Option<crate::watchdog::Book>,
    #[cfg(target_os = "linux")]
    profiles: Option<std::sync::Arc<crate::profiler::Exchange>>,
    heap: Option<Arc<crate::alloc::heap::Windows>>,
    /// Where instrumented futures wait (on unless switched off).
    waits: Option<crate::tasks::wait::Waits>,
    waits_drained_at: Instant,
    /// Lists futures pending without a poll for longer than this.
    stuck: Option<StuckWatch>,
    /// Memory as read when the agent began to stop (see [`Self::stopping`]).
    memory_at_stop: Option<crate::sample::MemorySample>,
}

impl Sampler {
    pub(crate) fn new(
        service: String,
        instance: String,
        requested_interval_us: Arc<AtomicU64>,
        watched: Vec<Watched>,
        now: Instant,
    ) -> Self {
        let interval = Duration::from_micros(requested_interval_us.load(Relaxed));
        Sampler {
            service,
            instance,
            interval,
            requested_interval_us,
            watched,
            memory: MemorySampler::new(),
            process: ProcessSampler::new(),
            tasks: crate::tasks::TaskSampler::default(),
            seq: 0,
            previous_at: now,
            next_sample: now + interval,
            #[cfg(target_os = "linux")]
            stalls: None,
            #[cfg(target_os = "linux")]
            profiles: None,
            heap: None,
            waits: None,
            waits_drained_at: now,
            stuck: None,
            memory_at_stop: None,
        }
    }

    /// Lists futures pending without a poll for longer than `after`.
    pub(crate) fn watch_stuck(&mut self, after: Duration) {
        crate::tasks::stuck::enable(true);
        self.stuck = Some(StuckWatch { after });
    }

    /// The stuck futures now: the list (oldest first, capped) and the
    /// count per name.
    fn stuck_now(&mut self) -> (Vec<StuckRequest>, HashMap<String, u64>) {
        let Some(watch) = &self.stuck else {
            return (Vec::new(), HashMap::new());
        };
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut names: HashMap<usize, Option<String>> = HashMap::new();
        let mut listed = Vec::new();
        for s in crate::tasks::stuck::scan(watch.after) {
            let Some(name) = names
                .entry(s.task)
                .or_insert_with(|| crate::tasks::name_of(s.task))
                .clone()
            else {
                continue;
            };
            *counts.entry(name.clone()).or_default() += 1;
            if listed.len() >= MAX_STUCK_LISTED {
                continue;
            }
            let mut r = StuckRequest::default();
            r.task = name;
            r.pending_ms = u64::try_from(s.pending.as_millis()).unwrap_or(u64::MAX);
            if let Some((kind, frames)) = self
                .waits
                .as_ref()
                .and_then(|w| (s.capture != 0).then(|| w.point_of(s.capture)).flatten())
            {
                r.kind = kind.name().to_string();
                r.frames = frames;
            }
            listed.push(r);
        }
        (listed, counts)
    }

    /// Samples where instrumented futures wait, `per_second` captures a
    /// second, from now on.
    pub(crate) fn capture_waits(&mut self, per_second: u32) {
        self.waits = crate::tasks::wait::Waits::start(per_second);
        if self.waits.is_none() {
            tracing::info!(
                target: "lagscope",
                "another agent of this process captures await points; this one sends none"
            );
        }
    }

    /// Reports the heap windows the heap thread ends.
    pub(crate) fn set_heap_windows(&mut self, windows: Arc<crate::alloc::heap::Windows>) {
        self.heap = Some(windows);
    }

    /// Reports the stalls the watchdog records in `book`.
    #[cfg(target_os = "linux")]
    pub(crate) fn set_stall_book(&mut self, book: crate::watchdog::Book) {
        self.stalls = Some(book);
    }

    /// Reports the profiles the profiler finishes.
    #[cfg(target_os = "linux")]
    pub(crate) fn set_profiles(&mut self, exchange: std::sync::Arc<crate::profiler::Exchange>) {
        self.profiles = Some(exchange);
    }

    /// Runs the probes; returns a sample if one is due.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        gauges: &gauge::Gauges,
        dropped: u64,
    ) -> Option<Sample> {
        for w in &mut self.watched {
            w.probe.collect();
            w.blocking.tick(now);
        }
        if let Some(waits) = &mut self.waits {
            // Often enough that the stack copies come free between bursts.
            if now >= self.waits_drained_at + waits.drain_every() {
                waits.drain();
                self.waits_drained_at = now;
            }
        }
        let requested = Duration::from_micros(self.requested_interval_us.load(Relaxed))
            .clamp(MIN_SAMPLE_INTERVAL, MAX_SAMPLE_INTERVAL);
        if requested != self.interval {
            self.interval = requested;
            self.next_sample = self.previous_at + requested;
        }
        // Stall news goes out at once (at most every EARLIEST), so a stall
        // shows in the dashboard well within a second of starting or ending.
        #[cfg(target_os = "linux")]
        let early = now >= self.previous_at + EARLIEST
            && self.stalls.as_ref().is_some_and(|b| b.take_news());
        #[cfg(not(target_os = "linux"))]
        let early = false;
        let sample = if early {
            // The regular cadence restarts from here, so an early sample is
            // never followed by a regular one a moment later.
            self.next_sample = now + self.interval;
            Some(self.sample(now, gauges, dropped))
        } else {
            (now >= self.next_sample).then(|| {
                // Keep the cadence; after a long pause start afresh rather than catch up.
                self.next_sample = (self.next_sample + self.interval).max(now);
                self.sample(now, gauges, dropped)
            })
        };
        // Spawn the next probe only after sampling, so the runtime counters never
        // count the agent's own probe sitting in the global queue.
        for w in &mut self.watched {
            w.probe.spawn_if_due(now);
        }
        sample
    }

    /// The agent begins to stop: reads memory now, for the last sample. The
    /// host's memory is what it holds when it asks the agent to stop; what
    /// the sources then allocate to hand over their windows (naming a
    /// profile's stacks can read symbol tables) is the agent's own.
    pub(crate) fn stopping(&mut self, now: Instant) {
        let interval = now.duration_since(self.previous_at);
        self.memory_at_stop = Some(self.memory.sample(interval));
    }

    /// The sample taken as the agent stops, whenever the last one was: it
    /// carries what the stopped sources left (a partial profile or heap
    /// window), so a watch that ends between two windows keeps its end.
    /// Marked [`Sample::last`]: its memory is the teardown's.
    pub(crate) fn last_sample(
        &mut self,
        now: Instant,
        gauges: &gauge::Gauges,
        dropped: u64,
    ) -> Sample {
        for w in &mut self.watched {
            w.probe.collect();
        }
        let mut last = self.sample(now, gauges, dropped);
        last.last = true;
        last
    }

    /// When the sampler thread must wake next. A blocking-pool probe may
    /// wait up to [`BLOCKING_SLACK`] past its time for the thread's next
    /// wake-up (a lag probe's, at most `lag::IDLE_INTERVAL` apart while idle), so it costs
    /// no wake-up of its own.
    pub(crate) fn next_deadline(&self) -> Instant {
        self.watched
            .iter()
            .flat_map(|w| {
                [
                    w.probe.next_deadline(),
                    w.blocking.next_deadline() + BLOCKING_SLACK,
                ]
            })
            .fold(self.next_sample, Instant::min)
    }

    fn sample(&mut self, now: Instant, gauges: &gauge::Gauges, dropped: u64) -> Sample {
        let interval = now.duration_since(self.previous_at);
        self.previous_at = now;
        let runtimes = self
            .watched
            .iter_mut()
            .map(|w| {
                let mut r = w.runtime.sample(now);
                r.lag = w.probe.take_stats(now);
                r.blocking_wait_us = w.blocking.take(now);
                r
            })
            .collect();
        let (mut tasks, task_names_folded) = self.tasks.sample();
        if let Some(waits) = &mut self.waits {
            // Probes answered since the last drain name their stuck futures.
            waits.drain();
        }
        let (stuck, stuck_counts) = self.stuck_now();
        for t in &mut tasks {
            t.stuck = stuck_counts.get(&t.name).copied().unwrap_or(0);
        }
        #[cfg(target_os = "linux")]
        crate::platform::stack::check_signal();
        let sample = {
            let mut sample_ = Sample::default();
            sample_.service = self.service.clone();
            sample_.instance = self.instance.clone();
            sample_.seq = self.seq;
            sample_.timestamp_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            sample_.interval_us = interval.as_micros() as u64;
            sample_.runtimes = runtimes;
            sample_.memory = match self.memory_at_stop.take() {
                Some(at_stop) => at_stop,
                None => self.memory.sample(interval),
            };
            sample_.process = self.process.sample(interval);
            sample_.gauges = gauges.read();
            sample_.dropped_samples = dropped;
            #[cfg(target_os = "linux")]
            {
                sample_.stalls = self
                    .stalls
                    .as_ref()
                    .map(crate::watchdog::take)
                    .unwrap_or_default();
            }
            #[cfg(target_os = "linux")]
            {
                sample_.profiles = self.profiles.as_ref().map(|e| e.take()).unwrap_or_default();
            }
            sample_.tasks = tasks;
            sample_.task_names_folded = task_names_folded;
            sample_.heap = self.heap.as_ref().and_then(|w| w.take());
            sample_.waits = self
                .waits
                .as_mut()
                .and_then(|w| w.window(crate::tasks::name_of));
            sample_.stuck = stuck;
            sample_.notices = crate::notices::take();
            sample_
        };
        self.seq += 1;
        sample
    }
}

/// The stuck list's threshold; registration stops with it.
struct StuckWatch {
    after: Duration,
}

impl Drop for StuckWatch {
    fn drop(&mut self) {
        crate::tasks::stuck::enable(false);
    }
}
