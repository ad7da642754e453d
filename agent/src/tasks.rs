//! Named task monitors: where the futures instrumented under one name (a
//! route, a job kind) spend their time — waiting for a worker (scheduled),
//! running on one (polled), or waiting for I/O, a timer or another task
//! (idle).
//!
//! Built on tokio-metrics' `TaskMonitorCore`, which counts slow polls, first-
//! poll delays and the cumulative time in each state for every instrumented
//! future, in flight or done. lagscope adds each *request's* totals when it
//! completes, into per-name histograms, so a sample carries the mean and the
//! 99th percentile of what one request spent in each state.
//!
//! Names are bounded ([`DEFAULT_MAX_TASK_NAMES`], `Builder::max_task_names`):
//! once the cap is reached, futures with a new name are counted under
//! [`OTHER_TASK`] and the fold is counted, so a path with ids in it cannot
//! grow memory without bound.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let answer = lagscope::instrument("doc-example", async { 42 }).await;
//! assert_eq!(answer, 42);
//! let monitor = lagscope::TaskMonitor::named("doc-example");
//! assert_eq!(monitor.name(), "doc-example");
//! assert_eq!(monitor.completed(), 1);
//! # });
//! ```

#[cfg(feature = "tower")]
pub mod route;
pub(crate) mod stuck;
pub(crate) mod wait;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lagscope_wire::sample::{TaskSample, TaskTimes, OTHER_TASK};
use pin_project_lite::pin_project;
use tokio_metrics::{TaskMonitorCore, TaskScheduling};

/// Default cap on distinct task names; further names fold into [`OTHER_TASK`].
pub const DEFAULT_MAX_TASK_NAMES: usize = 32;
/// Largest cap `Builder::max_task_names` accepts.
pub const MAX_TASK_NAMES: usize = 256;
/// Longest name kept; longer names are cut (on a character boundary).
pub const MAX_TASK_NAME_LEN: usize = 128;
/// Polls at least this long count as slow (the same threshold as the poll
/// hooks' long polls).
pub const SLOW_POLL_THRESHOLD: Duration = Duration::from_millis(10);

/// The futures instrumented under one name.
///
/// Cheap to clone; get one with [`TaskMonitor::named`] (or
/// `AgentHandle::task_monitor`) once and reuse it where a name is fixed, to
/// skip the name lookup [`instrument`] does on every call.
#[derive(Clone)]
pub struct TaskMonitor {
    entry: Arc<Entry>,
}

impl std::fmt::Debug for TaskMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskMonitor")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

impl TaskMonitor {
    /// The monitor for `name`, created on first use. Once the name cap is
    /// reached, a new name gets the [`OTHER_TASK`] monitor (and the fold is
    /// counted in `Sample::task_names_folded`).
    pub fn named(name: &str) -> TaskMonitor {
        TaskMonitor {
            entry: registry().get_or_insert(name),
        }
    }

    /// The name futures are counted under (`other` if the cap was reached).
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    /// Wraps `future` so its scheduled, poll and idle time count under this name.
    pub fn instrument<F: Future>(&self, future: F) -> Instrumented<F> {
        let entry = self.entry.clone();
        let timed = Timed {
            future,
            entry: entry.clone(),
            created: Instant::now(),
            first_poll: None,
            polled: Duration::ZERO,
            waiting: None,
            registration: None,
        };
        Instrumented {
            inner: TaskMonitorCore::instrument_with(timed, Core(entry)),
        }
    }

    /// Futures under this name that completed or were dropped so far.
    pub fn completed(&self) -> u64 {
        self.entry.core.cumulative().dropped_count
    }
}

/// Wraps `future` in the monitor for `name`: its time waiting for a worker,
/// being polled and idle is counted under `name` and reported with every
/// sample (Prometheus label `task`, OTLP attribute `task`, the dashboard's
/// `t` pane, the doctor).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// async fn load_cart(id: u64) -> u64 { id * 2 }
/// let cart = lagscope::instrument("GET /cart/:id", load_cart(7)).await;
/// assert_eq!(cart, 14);
/// # });
/// ```
pub fn instrument<F: Future>(name: &str, future: F) -> Instrumented<F> {
    TaskMonitor::named(name).instrument(future)
}

pin_project! {
    /// A future wrapped by [`instrument`] or [`TaskMonitor::instrument`].
    pub struct Instrumented<F> {
        #[pin]
        inner: tokio_metrics::Instrumented<Timed<F>, Core>,
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F> std::fmt::Debug for Instrumented<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented").finish_non_exhaustive()
    }
}

pin_project! {
    /// Inside the tokio-metrics wrapper: times this request's polls and, when
    /// it completes, records its totals.
    struct Timed<F> {
        #[pin]
        future: F,
        entry: Arc<Entry>,
        created: Instant,
        first_poll: Option<Instant>,
        polled: Duration,
        // A sampled `Pending` whose wait ends at the next poll.
        waiting: Option<wait::Waiting>,
        // In the stuck registry since its first `Pending`.
        registration: Option<stuck::Registration>,
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let start = Instant::now();
        let first = *this.first_poll.get_or_insert(start);
        // Through an opaque pointer, so the compiler cannot inline the
        // caller's future into this function: CPU profiles and stall stacks
        // keep naming the caller's code, not lagscope's wrapper.
        let poll: fn(Pin<&mut F>, &mut Context<'_>) -> Poll<F::Output> =
            std::hint::black_box(F::poll);
        // A poll the agent asked for, to see where a stuck future waits:
        // its wait goes on.
        let probe = this.registration.as_ref().is_some_and(|r| r.polled());
        if !probe {
            if let Some(waiting) = this.waiting.take() {
                wait::ended(waiting, start);
            }
        }
        let sampled = if probe {
            Some(0)
        } else {
            wait::sample_this_poll(this.entry.order)
        };
        let mut captured = 0;
        let out = match sampled {
            Some(weight) => {
                let (out, waiting) =
                    wait::poll_capturing(cx, weight, this.entry.order, |cx| poll(this.future, cx));
                if let Some(waiting) = waiting {
                    captured = waiting.id();
                    if !probe {
                        *this.waiting = Some(waiting);
                    }
                }
                out
            }
            None => poll(this.future, cx),
        };
        let end = Instant::now();
        if out.is_pending() {
            match this.registration.as_ref() {
                Some(r) => r.pending(end, cx.waker(), captured, probe),
                None => {
                    *this.registration =
                        stuck::Registration::new(this.entry.order, end, cx.waker(), captured);
                }
            }
        } else {
            *this.registration = None;
        }
        *this.polled += end.saturating_duration_since(start);
        if out.is_ready() {
            // The wrapper publishes this task's scheduling log during the poll.
            let scheduled = TaskScheduling::try_current()
                .map_or(Duration::ZERO, |s| s.total_scheduled_duration);
            let lifetime = end.saturating_duration_since(first);
            this.entry.requests.record(Request {
                scheduled,
                polled: *this.polled,
                idle: lifetime
                    .saturating_sub(*this.polled)
                    .saturating_sub(scheduled),
                first_poll_delay: first.saturating_duration_since(*this.created),
            });
        }
        out
    }
}

/// The monitor handle tokio-metrics keeps in each instrumented future.
#[doc(hidden)]
pub struct Core(Arc<Entry>);

impl AsRef<TaskMonitorCore> for Core {
    fn as_ref(&self) -> &TaskMonitorCore {
        &self.0.core
    }
}

/// One name: tokio-metrics' counters and lagscope's per-request histograms.
struct Entry {
    name: Arc<str>,
    /// First-seen order, so samples list names stably.
    order: usize,
    core: TaskMonitorCore,
    requests: RequestTimes,
}

/// What one request spent, by state.
#[derive(Debug, Clone, Copy)]
struct Request {
    scheduled: Duration,
    polled: Duration,
    idle: Duration,
    first_poll_delay: Duration,
}

/// Histogram buckets per power of two: bucket width ≤ 12.5 %, so a bucket's
/// middle is within ~6 % of any value in it.
const PER_OCTAVE: usize = 8;
/// Octaves of microseconds covered (up to ~2^28 µs ≈ 4.5 min; longer lands
/// in the last bucket).
const OCTAVES: usize = 28;
const BUCKETS: usize = 1 + OCTAVES * PER_OCTAVE;

/// The bucket of a value in µs: 0 for < 1 µs, then `PER_OCTAVE` per octave.
fn bucket_of(us: u64) -> usize {
    if us == 0 {
        return 0;
    }
    let octave = 63 - us.leading_zeros() as usize;
    // The 3 bits below the leading one pick the sub-bucket.
    let sub = if octave >= 3 {
        (us >> (octave - 3)) & 7
    } else {
        (us << (3 - octave)) & 7
    } as usize;
    (1 + octave * PER_OCTAVE + sub).min(BUCKETS - 1)
}

/// The middle of bucket `i`, in µs.
fn bucket_middle(i: usize) -> u64 {
    if i == 0 {
        return 0;
    }
    let octave = (i - 1) / PER_OCTAVE;
    let sub = ((i - 1) % PER_OCTAVE) as f64;
    let low = (1u64 << octave) as f64 * (1.0 + sub / PER_OCTAVE as f64);
    let width = (1u64 << octave) as f64 / PER_OCTAVE as f64;
    (low + width / 2.0).round() as u64
}

/// A lock-free histogram of durations: written by the host's threads when a
/// request completes, read by the sampler thread.
struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn read(&self) -> HistogramReading {
        HistogramReading {
            buckets: self.buckets.iter().map(|b| b.load(Relaxed)).collect(),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// A histogram's cumulative counts at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct HistogramReading {
    buckets: Vec<u64>,
    sum_us: u64,
}

impl HistogramReading {
    /// Mean and p99 of what was recorded between `earlier` and `self`.
    fn since(&self, earlier: Option<&HistogramReading>) -> Option<TaskTimes> {
        let before = |i: usize| earlier.and_then(|e| e.buckets.get(i)).copied().unwrap_or(0);
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &c)| c.saturating_sub(before(i)))
            .collect();
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return None;
        }
        let sum = self.sum_us.saturating_sub(earlier.map_or(0, |e| e.sum_us));
        let target = n - n / 100; // the 99th percentile's rank, 1-based
        let mut seen = 0;
        let mut p99 = 0;
        for (i, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                p99 = bucket_middle(i);
                break;
            }
        }
        Some({
            let mut task_times = TaskTimes::default();
            task_times.mean_us = sum / n;
            task_times.p99_us = p99;
            task_times
        })
    }
}

/// Per-request histograms of one name.
struct RequestTimes {
    scheduled: Histogram,
    polled: Histogram,
    idle: Histogram,
    first_poll_delay: Histogram,
    count: AtomicU64,
}

impl RequestTimes {
    fn new() -> Self {
        RequestTimes {
            scheduled: Histogram::new(),
            polled: Histogram::new(),
            idle: Histogram::new(),
            first_poll_delay: Histogram::new(),
            count: AtomicU64::new(0),
        }
    }

    fn record(&self, r: Request) {
        self.scheduled.record(r.scheduled);
        self.polled.record(r.polled);
        self.idle.record(r.idle);
        self.first_poll_delay.record(r.first_poll_delay);
        self.count.fetch_add(1, Relaxed);
    }
}

/// Every name seen, bounded.
struct Registry {
    names: RwLock<HashMap<Arc<str>, Arc<Entry>>>,
    other: OnceLock<Arc<Entry>>,
    cap: AtomicUsize,
    folded: AtomicU64,
    next_order: AtomicUsize,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        names: RwLock::new(HashMap::new()),
        other: OnceLock::new(),
        cap: AtomicUsize::new(DEFAULT_MAX_TASK_NAMES),
        folded: AtomicU64::new(0),
        next_order: AtomicUsize::new(0),
    })
}

impl Registry {
    fn entry(&self, name: &str) -> Arc<Entry> {
        Arc::new(Entry {
            name: name.into(),
            order: self.next_order.fetch_add(1, Relaxed),
            core: TaskMonitorCore::builder()
                .with_slow_poll_threshold(SLOW_POLL_THRESHOLD)
                .publish_scheduling_delay()
                .build(),
            requests: RequestTimes::new(),
        })
    }

    fn get_or_insert(&self, name: &str) -> Arc<Entry> {
        let name = clip(name);
        if name == OTHER_TASK {
            return self.other();
        }
        // A poisoned lock only means a panic elsewhere mid-insert; the map
        // itself is always whole.
        {
            let names = self.names.read().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = names.get(name) {
                return e.clone();
            }
            // Full: fold without taking the write lock, so a flood of new
            // names (paths with ids) does not serialize the callers.
            if names.len() >= self.cap.load(Relaxed) {
                drop(names);
                return self.fold();
            }
        }
        let mut names = self.names.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = names.get(name) {
            return e.clone();
        }
        if names.len() >= self.cap.load(Relaxed) {
            drop(names);
            return self.fold();
        }
        let e = self.entry(name);
        names.insert(e.name.clone(), e.clone());
        e
    }

    /// A new name past the cap: counted, and its futures go under `other`.
    fn fold(&self) -> Arc<Entry> {
        self.folded.fetch_add(1, Relaxed);
        self.other()
    }

    fn other(&self) -> Arc<Entry> {
        self.other.get_or_init(|| self.entry(OTHER_TASK)).clone()
    }

    /// Every entry, in first-seen order.
    fn entries(&self) -> Vec<Arc<Entry>> {
        let mut all: Vec<Arc<Entry>> = self
            .names
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .chain(self.other.get().cloned())
            .collect();
        all.sort_by_key(|e| e.order);
        all
    }
}

/// Cuts `name` to [`MAX_TASK_NAME_LEN`] bytes on a character boundary.
fn clip(name: &str) -> &str {
    if name.len() <= MAX_TASK_NAME_LEN {
        return name;
    }
    let mut end = MAX_TASK_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Sets the name cap (from `Builder::max_task_names`). Names already in use
/// stay; the cap applies to new ones.
pub(crate) fn set_max_names(cap: usize) {
    registry().cap.store(cap, Relaxed);
}

/// Names in use and their approximate memory, for tests and the overhead harness.
#[doc(hidden)]
pub fn registry_footprint() -> (usize, usize) {
    let entries = registry().entries();
    let per_entry = std::mem::size_of::<Entry>()
        + 4 * (BUCKETS * std::mem::size_of::<AtomicU64>() + std::mem::size_of::<Histogram>());
    let bytes = entries
        .iter()
        .map(|e| per_entry + e.name.len())
        .sum::<usize>();
    (entries.len(), bytes)
}

/// The name of the entry first seen `order`-th.
pub(crate) fn name_of(order: usize) -> Option<String> {
    registry()
        .entries()
        .into_iter()
        .find(|e| e.order == order)
        .map(|e| e.name.to_string())
}

/// The sampler's view: turns cumulative readings into interval figures.
#[derive(Default)]
pub(crate) struct TaskSampler {
    previous: HashMap<usize, [HistogramReading; 4]>,
    previous_requests: HashMap<usize, u64>,
}

impl TaskSampler {
    /// One [`TaskSample`] per name, and the cumulative fold count.
    pub(crate) fn sample(&mut self) -> (Vec<TaskSample>, u64) {
        let reg = registry();
        let tasks = reg
            .entries()
            .iter()
            .map(|e| {
                let m = e.core.cumulative();
                let r = &e.requests;
                let readings = [
                    r.scheduled.read(),
                    r.polled.read(),
                    r.idle.read(),
                    r.first_poll_delay.read(),
                ];
                let count = r.count.load(Relaxed);
                let before = self.previous.get(&e.order);
                let since = |i: usize| readings[i].since(before.map(|b| &b[i]));
                let mut sample = TaskSample::default();
                sample.name = e.name.to_string();
                sample.instrumented = m.instrumented_count;
                sample.completed = m.dropped_count;
                sample.slow_polls = m.total_slow_poll_count;
                sample.scheduled_us = micros(m.total_scheduled_duration);
                sample.poll_us = micros(m.total_poll_duration);
                sample.idle_us = micros(m.total_idle_duration);
                sample.requests = count
                    .saturating_sub(self.previous_requests.get(&e.order).copied().unwrap_or(0));
                sample.scheduled = since(0);
                sample.poll = since(1);
                sample.idle = since(2);
                sample.first_poll_delay = since(3);
                self.previous_requests.insert(e.order, count);
                self.previous.insert(e.order, readings);
                sample
            })
            .collect();
        (tasks, reg.folded.load(Relaxed))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_seven_percent_of_their_values() {
        for us in [
            1u64, 2, 3, 7, 9, 15, 100, 999, 1000, 1234, 65_432, 1_000_000, 99_999_999,
        ] {
            let middle = bucket_middle(bucket_of(us)) as f64;
            let err = (middle - us as f64).abs() / us as f64;
            // Below 16 µs buckets are 1 µs wide.
            assert!(
                err <= 0.07 || (middle - us as f64).abs() <= 1.0,
                "{us} → {middle}"
            );
        }
        // Monotonic.
        let mut last = 0;
        for us in 1..5000u64 {
            let b = bucket_of(us);
            assert!(b >= last, "{us}");
            last = b;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn p99_and_mean_of_known_values() {
        let h = Histogram::new();
        // 990 requests of 1 ms, 10 of 100 ms: p99 is the 990th value → 1 ms.
        for _ in 0..990 {
            h.record(Duration::from_millis(1));
        }
        let first = h.read();
        for _ in 0..10 {
            h.record(Duration::from_millis(100));
        }
        let t = h.read().since(None).expect("values");
        assert!((950..=1050).contains(&t.p99_us), "{t:?}");
        assert_eq!(t.mean_us, (990 * 1000 + 10 * 100_000) / 1000);
        // Only what came after `first`: ten 100 ms requests.
        let t = h.read().since(Some(&first)).expect("values");
        assert!((94_000..=106_000).contains(&t.p99_us), "{t:?}");
        assert_eq!(t.mean_us, 100_000);
        assert_eq!(h.read().since(Some(&h.read())), None);
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let long = "é".repeat(200);
        let cut = clip(&long);
        assert!(cut.len() <= MAX_TASK_NAME_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_splits_into_scheduled_polled_and_idle() {
        let monitor = TaskMonitor::named("unit: sleep then work");
        let mut sampler = TaskSampler::default();
        sampler.sample();
        monitor
            .instrument(async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                std::thread::sleep(Duration::from_millis(5));
            })
            .await;
        let (tasks, _) = sampler.sample();
        let t = tasks
            .iter()
            .find(|t| t.name == "unit: sleep then work")
            .expect("the name is sampled");
        assert_eq!(t.requests, 1);
        assert_eq!((t.instrumented, t.completed), (1, 1));
        let poll = t.poll.expect("poll time");
        assert!(poll.mean_us >= 5_000, "{t:?}");
        let idle = t.idle.expect("idle time");
        assert!(idle.mean_us >= 25_000, "{t:?}");
        assert!(t.idle_us >= 25_000, "{t:?}");
        assert!(t.poll_us >= 5_000, "{t:?}");
        // Nothing new: the interval figures are empty, the counters stay.
        let (tasks, _) = sampler.sample();
        let t = tasks
            .iter()
            .find(|t| t.name == "unit: sleep then work")
            .expect("still listed");
        assert_eq!(t.requests, 0);
        assert_eq!(t.poll, None);
        assert_eq!(t.completed, 1);
    }
}
