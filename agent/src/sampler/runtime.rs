//! Runtime counters: workers, tasks, queues, busy ratio, parks; with
//! `tokio_unstable` also local queues, the blocking pool, polls and steals, and
//! exact poll durations from [`crate::PollHooks`].
//!
//! tokio's worker counters are cumulative; this keeps the previous reading and
//! reports deltas over the interval, in the style of tokio-metrics' `intervals()`.

use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeMetrics};

use crate::sample::{RuntimeSample, WorkerSample};
#[cfg(tokio_unstable)]
use crate::{hooks::PollHooks, sample::PollStats};

#[derive(Clone, Copy, Default)]
struct WorkerTotals {
    busy: Duration,
    parks: u64,
    #[cfg(tokio_unstable)]
    polls: u64,
    #[cfg(tokio_unstable)]
    steals: u64,
}

pub(crate) struct RuntimeSampler {
    name: String,
    metrics: RuntimeMetrics,
    previous: Vec<WorkerTotals>,
    previous_at: Instant,
    #[cfg(tokio_unstable)]
    hooks: Option<PollHooks>,
    #[cfg(tokio_unstable)]
    previous_slots: Vec<(std::thread::ThreadId, crate::sampler::poll::SlotTotals)>,
    /// tokio's schedule-latency bucket counts summed over workers, when the
    /// runtime was built with the histogram.
    #[cfg(tokio_unstable)]
    previous_schedule: Vec<u64>,
}

impl RuntimeSampler {
    pub(crate) fn new(name: String, handle: &Handle, now: Instant) -> Self {
        let metrics = handle.metrics();
        let previous = (0..metrics.num_workers())
            .map(|w| read_worker(&metrics, w))
            .collect();
        RuntimeSampler {
            name,
            metrics,
            previous,
            previous_at: now,
            #[cfg(tokio_unstable)]
            hooks: None,
            #[cfg(tokio_unstable)]
            previous_slots: Vec::new(),
            #[cfg(tokio_unstable)]
            previous_schedule: schedule_buckets(handle.metrics()),
        }
    }

    #[cfg(tokio_unstable)]
    pub(crate) fn set_hooks(&mut self, hooks: PollHooks) {
        self.previous_slots = crate::sampler::poll::read_slots(&hooks);
        self.hooks = Some(hooks);
    }

    /// Reads the counters and returns the deltas since the previous call.
    pub(crate) fn sample(&mut self, now: Instant) -> RuntimeSample {
        let m = &self.metrics;
        let wall = now
            .duration_since(self.previous_at)
            .max(Duration::from_nanos(1));
        let mut worker = Vec::with_capacity(self.previous.len());
        let mut busy_total = Duration::ZERO;
        for (w, prev) in self.previous.iter_mut().enumerate() {
            let cur = read_worker(m, w);
            let busy = cur.busy.saturating_sub(prev.busy);
            busy_total += busy;
            worker.push({
                let mut worker_sample = WorkerSample::default();
                worker_sample.busy_ratio = ratio(busy, wall);
                worker_sample.park_count = cur.parks.saturating_sub(prev.parks);
                worker_sample.parked = m.worker_park_unpark_count(w) % 2 == 1;
                #[cfg(tokio_unstable)]
                {
                    worker_sample.local_queue_depth = Some(m.worker_local_queue_depth(w));
                }
                #[cfg(tokio_unstable)]
                {
                    worker_sample.polls = Some(cur.polls.saturating_sub(prev.polls));
                }
                #[cfg(tokio_unstable)]
                {
                    worker_sample.steals = Some(cur.steals.saturating_sub(prev.steals));
                }
                worker_sample
            });
            *prev = cur;
        }
        let workers = worker.len();
        #[allow(unused_mut)]
        let mut sample = RuntimeSample::default();
        sample.name = self.name.clone();
        sample.workers = workers;
        sample.alive_tasks = m.num_alive_tasks();
        sample.global_queue_depth = m.global_queue_depth();
        sample.busy_ratio = if workers == 0 {
            0.0
        } else {
            ratio(busy_total, wall * workers as u32)
        };
        sample.worker = worker;
        #[cfg(tokio_unstable)]
        {
            sample.blocking_threads = Some(m.num_blocking_threads());
            sample.idle_blocking_threads = Some(m.num_idle_blocking_threads());
            sample.blocking_queue_depth = Some(m.blocking_queue_depth());
            if let Some(hooks) = &self.hooks {
                sample.poll = Some(self.poll_stats(hooks.clone(), &mut sample.worker));
            }
            sample.schedule_latency = self.schedule_latency();
        }
        self.previous_at = now;
        sample
    }

    #[cfg(tokio_unstable)]
    fn poll_stats(&mut self, hooks: PollHooks, worker: &mut [WorkerSample]) -> PollStats {
        use crate::sampler::poll;
        let current = poll::read_slots(&hooks);
        let deltas = poll::deltas(&self.previous_slots, &current);
        for (w, sample) in worker.iter_mut().enumerate() {
            let Some(thread) = self.metrics.worker_thread_id(w) else {
                continue;
            };
            if let Some((_, d)) = deltas.iter().find(|(t, _)| *t == thread) {
                sample.long_polls = Some(d.long_polls);
                sample.max_poll_us = Some(d.max_poll_ns / 1_000);
            } else {
                sample.long_polls = Some(0);
                sample.max_poll_us = Some(0);
            }
        }
        let stats = poll::summarize(
            deltas.iter().map(|(_, d)| d),
            hooks.state().long_poll_threshold_ns(),
        );
        self.previous_slots = current;
        stats
    }
}

#[cfg(tokio_unstable)]
impl RuntimeSampler {
    /// Every task's scheduling delay over the interval, from tokio's
    /// histogram (bucket deltas since the previous sample).
    fn schedule_latency(&mut self) -> Option<crate::sample::LagStats> {
        let current = schedule_buckets(self.metrics.clone());
        let delta: Vec<u64> = current
            .iter()
            .zip(self.previous_schedule.iter().chain(std::iter::repeat(&0)))
            .map(|(c, p)| c.saturating_sub(*p))
            .collect();
        self.previous_schedule = current;
        let bounds: Vec<(u64, Option<u64>)> = (0..delta.len())
            .map(|b| {
                let r = self.metrics.schedule_latency_histogram_bucket_range(b);
                let start = r.start.as_micros() as u64;
                // The last bucket is open-ended (its end is "forever").
                let end = (r.end < Duration::from_secs(3600)).then_some(r.end.as_micros() as u64);
                (start, end)
            })
            .collect();
        crate::sample::LagStats::from_buckets(&delta, &bounds)
    }
}

/// tokio's schedule-latency bucket counts summed over workers; empty when
/// the runtime was built without the histogram.
#[cfg(tokio_unstable)]
fn schedule_buckets(m: RuntimeMetrics) -> Vec<u64> {
    if !m.schedule_latency_histogram_enabled() {
        return Vec::new();
    }
    (0..m.schedule_latency_histogram_num_buckets())
        .map(|b| {
            (0..m.num_workers())
                .map(|w| m.schedule_latency_histogram_bucket_count(w, b))
                .sum()
        })
        .collect()
}

fn read_worker(m: &RuntimeMetrics, w: usize) -> WorkerTotals {
    WorkerTotals {
        busy: m.worker_total_busy_duration(w),
        parks: m.worker_park_count(w),
        #[cfg(tokio_unstable)]
        polls: m.worker_poll_count(w),
        #[cfg(tokio_unstable)]
        steals: m.worker_steal_count(w),
    }
}

fn ratio(part: Duration, whole: Duration) -> f64 {
    (part.as_secs_f64() / whole.as_secs_f64()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_worker_has_high_busy_ratio_and_idle_one_low() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut sampler = RuntimeSampler::new("main".into(), rt.handle(), Instant::now());
        std::thread::sleep(Duration::from_millis(100));
        let idle = sampler.sample(Instant::now());
        assert_eq!(idle.workers, 2);
        assert!(idle.busy_ratio < 0.2, "{idle:?}");

        rt.spawn(async {
            let end = Instant::now() + Duration::from_millis(400);
            while Instant::now() < end {
                std::hint::spin_loop();
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        let busy = sampler.sample(Instant::now());
        let max = busy.worker.iter().map(|w| w.busy_ratio).fold(0.0, f64::max);
        assert!(max > 0.6, "{busy:?}");
        assert!(busy.busy_ratio > 0.3 && busy.busy_ratio < 0.75, "{busy:?}");
    }

    #[test]
    fn unstable_only_fields_follow_the_build() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut sampler = RuntimeSampler::new("main".into(), rt.handle(), Instant::now());
        let s = sampler.sample(Instant::now());
        assert_eq!(s.blocking_threads.is_some(), cfg!(tokio_unstable));
        assert_eq!(s.worker[0].polls.is_some(), cfg!(tokio_unstable));
        assert_eq!(s.poll, None, "no hooks installed");
        assert_eq!(s.schedule_latency, None, "no histogram enabled");
    }

    #[cfg(tokio_unstable)]
    #[test]
    fn tokio_schedule_latency_histogram_gives_every_tasks_delay() {
        let rt =
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_metrics_schedule_latency_histogram()
                .metrics_schedule_latency_histogram_configuration(
                    tokio::runtime::HistogramConfiguration::log(
                        tokio::runtime::LogHistogram::default(),
                    ),
                )
                .build()
                .expect("runtime");
        let mut sampler = RuntimeSampler::new("main".into(), rt.handle(), Instant::now());
        // 200 tasks queued behind one that holds the only worker for 20 ms:
        // most wait about that long before their first poll.
        rt.block_on(async {
            let blocker = tokio::spawn(async { std::thread::sleep(Duration::from_millis(20)) });
            let tasks: Vec<_> = (0..200).map(|_| tokio::spawn(async {})).collect();
            blocker.await.expect("blocker");
            for t in tasks {
                t.await.expect("task");
            }
        });
        // Workers publish their histogram when they park or every few dozen
        // ticks: gather intervals until every task has been counted.
        let (mut polls, mut max_us) = (0, 0);
        let end = Instant::now() + Duration::from_secs(5);
        while polls < 200 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
            if let Some(lat) = sampler.sample(Instant::now()).schedule_latency {
                assert!(
                    lat.p50_us <= lat.p99_us && lat.p99_us <= lat.max_us,
                    "{lat:?}"
                );
                polls += lat.probes;
                max_us = max_us.max(lat.max_us);
            }
        }
        assert!(polls >= 200, "{polls} polls counted");
        assert!(
            max_us >= 10_000,
            "the queued tasks waited ~20 ms: {max_us} µs"
        );
        // Nothing ran since: the next interval is empty.
        assert_eq!(sampler.sample(Instant::now()).schedule_latency, None);
    }
}
