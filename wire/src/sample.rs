//! The sample: one plain struct per sampling interval.
//!
//! Every field carries its unit in its name (`_us`, `_bytes`, `_ratio`). A field
//! that this build or platform cannot measure is `None`, never a made-up zero:
//! for example the blocking-pool fields need `--cfg tokio_unstable`, and the
//! heap fields need `lagscope::alloc::Counting` installed as the global allocator.
//!
//! The structs are `#[non_exhaustive]` with `Default`: elsewhere, make one
//! with `T::default()` and set its fields, so a new field breaks no one.

use serde::{Deserialize, Serialize};

/// Everything the agent measured over one sampling interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Sample {
    /// Service name (see `lagscope::Builder::service`).
    pub service: String,
    /// Instance id, unique per process (see `lagscope::Builder::instance`).
    pub instance: String,
    /// Sequence number of this sample, starting at 0 for the agent's first.
    pub seq: u64,
    /// Wall-clock end of the interval, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Length of the interval this sample covers, in microseconds.
    pub interval_us: u64,
    /// One entry per watched runtime, in the order they were registered.
    pub runtimes: Vec<RuntimeSample>,
    /// Heap, RSS and external memory.
    pub memory: MemorySample,
    /// CPU, threads and file descriptors of the whole process.
    pub process: ProcessSample,
    /// User-registered gauges, in registration order (see `lagscope::AgentHandle::gauge`).
    pub gauges: Vec<GaugeValue>,
    /// Samples dropped so far because an exporter could not keep up (cumulative).
    pub dropped_samples: u64,
    /// Stalls that ended during the interval, and those still going on at its
    /// end (`ongoing`), from the stall watchdog (needs `tokio_unstable` and
    /// `lagscope::PollHooks`).
    #[serde(default)]
    pub stalls: Vec<StallEvent>,
    /// CPU profiles finished since the last sample: the continuous low-rate
    /// windows and answers to profile requests.
    #[serde(default)]
    pub profiles: Vec<Profile>,
    /// Futures instrumented by name (`lagscope::instrument`, the tower
    /// layer), one entry per name in first-seen order.
    #[serde(default)]
    pub tasks: Vec<TaskSample>,
    /// Instrumentations folded into [`OTHER_TASK`] because the name cap was
    /// reached (cumulative).
    #[serde(default)]
    pub task_names_folded: u64,
    /// The heap by allocation site, from sampled allocations, when a heap
    /// window ended during the interval (heap sampling on: see
    /// `lagscope::Builder::heap_sample_bytes`).
    #[serde(default)]
    pub heap: Option<HeapProfile>,
    /// What the agent must tell the operator, said once, in the first
    /// sample after it happened: a part that stopped working after start (a
    /// signal the host took over, say).
    #[serde(default)]
    pub notices: Vec<String>,
    /// Sent as the agent stops: the process is most likely shutting down,
    /// so its memory readings and its heap window's live bytes describe
    /// the teardown rather than the service (the collector keeps them out
    /// of memory trends). Its counters, stalls and profiles count as any
    /// sample's.
    #[serde(default)]
    pub last: bool,
    /// Where instrumented futures waited over the interval, from sampled
    /// captures of their await points (`None` when nothing was captured).
    #[serde(default)]
    pub waits: Option<WaitProfile>,
    /// Instrumented futures pending without a poll for longer than the
    /// stuck threshold at the end of the interval (see
    /// `lagscope::Builder::stuck_after`), oldest first, at most
    /// [`MAX_STUCK_LISTED`].
    #[serde(default)]
    pub stuck: Vec<StuckRequest>,
}

/// Stuck requests a sample lists at most; the count per name
/// ([`TaskSample::stuck`]) covers them all.
pub const MAX_STUCK_LISTED: usize = 64;

/// Where instrumented futures waited over `[start_ms, end_ms]`: polls of
/// instrumented futures are sampled, and a sampled poll that returns
/// `Pending` records the await point the future registered its waker at;
/// the time until the future's next poll is charged to that site, weighted
/// by the inverse of the sampling rate so the totals estimate every wait.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WaitProfile {
    /// Window start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Window end, ms since the Unix epoch.
    pub end_ms: u64,
    /// Await points captured since the process started.
    pub captures: u64,
    /// Captures lost since the process started: no stack slot was free, or
    /// the hand-over to the agent was full.
    pub dropped: u64,
    /// Sites by name, most wait first; beyond the agent's cap per name the
    /// rest are summed into one [`OTHER_SITES`] site.
    pub sites: Vec<WaitSite>,
}

/// One await point of one name, and the waits charged to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WaitSite {
    /// The instrumented name (route, job kind).
    pub task: String,
    /// What the future waited on (see [`crate::waits::WaitKind`]).
    pub kind: String,
    /// Function names, innermost first: from the call that registered the
    /// waker up to the instrumented future.
    pub frames: Vec<String>,
    /// Estimated time waited here over the window, µs.
    pub wait_us: u64,
    /// Sampled waits that ended over the window.
    pub waits: u64,
}

/// A future pending without a poll for longer than the stuck threshold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StuckRequest {
    /// The instrumented name.
    pub task: String,
    /// How long it has been pending, ms.
    pub pending_ms: u64,
    /// What it waits on (see [`crate::waits::WaitKind`]); empty if its
    /// await point is not known yet.
    pub kind: String,
    /// Its await point, innermost first (empty if not known yet).
    pub frames: Vec<String>,
}

/// The heap by allocation site, estimated from allocations sampled about
/// once every `sample_bytes` bytes: the bytes still live at `end_ms`, and
/// those allocated over `[start_ms, end_ms]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeapProfile {
    /// Start of the window the allocated bytes count over, ms since the
    /// Unix epoch.
    pub start_ms: u64,
    /// When the live bytes were read, ms since the Unix epoch.
    pub end_ms: u64,
    /// Mean sampling interval in bytes.
    pub sample_bytes: u64,
    /// Allocations sampled since the process started.
    pub samples: u64,
    /// Samples lost since the process started: the live table was full, or
    /// no stack slot was free.
    pub dropped: u64,
    /// Sites, most live bytes first; beyond the agent's cap the rest are
    /// summed into one [`OTHER_SITES`] site.
    pub sites: Vec<HeapSite>,
}

/// The site the sites beyond the cap of a [`HeapProfile`] are summed into.
pub const OTHER_SITES: &str = "[other sites]";

/// One allocation site: a distinct stack that allocated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeapSite {
    /// Function names, innermost first, starting at the code that called
    /// the allocator.
    pub frames: Vec<String>,
    /// Estimated bytes allocated here and not yet freed.
    pub live_bytes: u64,
    /// Estimated bytes allocated here over the window.
    pub allocated_bytes: u64,
}

/// The name instrumentations fold into once the name cap is reached.
pub const OTHER_TASK: &str = "other";

/// Where the futures instrumented under one name spent their time.
///
/// The cumulative fields come from tokio-metrics' `TaskMonitor` and cover
/// every instrumented future, in flight or done: *scheduled* is time woken
/// and waiting for a worker, *poll* time running on one, *idle* time waiting
/// for I/O, a timer or another task. The [`TaskTimes`] cover the requests
/// that completed during the interval, each request's total.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskSample {
    /// The name (`GET /orders/:id`, or what the caller chose).
    pub name: String,
    /// Futures instrumented under this name (cumulative).
    pub instrumented: u64,
    /// Futures that completed or were dropped (cumulative).
    pub completed: u64,
    /// Polls that took at least the slow-poll threshold (cumulative).
    pub slow_polls: u64,
    /// Time woken and waiting for a worker, in µs (cumulative).
    pub scheduled_us: u64,
    /// Time being polled, in µs (cumulative).
    pub poll_us: u64,
    /// Time waiting to be woken, in µs (cumulative).
    pub idle_us: u64,
    /// Requests that completed during the interval (the population of the
    /// figures below).
    pub requests: u64,
    /// Per request: time waiting for a worker.
    pub scheduled: Option<TaskTimes>,
    /// Per request: time being polled.
    pub poll: Option<TaskTimes>,
    /// Per request: time idle.
    pub idle: Option<TaskTimes>,
    /// Per request: from instrumentation (creation) to first poll.
    pub first_poll_delay: Option<TaskTimes>,
    /// Futures pending without a poll for longer than the stuck threshold,
    /// at the end of the interval.
    #[serde(default)]
    pub stuck: u64,
}

/// Mean and 99th percentile of one per-request time over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskTimes {
    /// Mean, in microseconds.
    pub mean_us: u64,
    /// 99th percentile, in microseconds (bucketed: within 10 %).
    pub p99_us: u64,
}

impl TaskSample {
    /// Shares of the time accounted between two cumulative readings
    /// (`earlier` of the same name, or `None` for since the start):
    /// (scheduled, poll, idle), summing to 1, or `None` if no time passed.
    ///
    /// ```
    /// use lagscope_wire::TaskSample;
    /// let mut t = TaskSample::default();
    /// (t.scheduled_us, t.poll_us, t.idle_us) = (60, 30, 10);
    /// assert_eq!(t.shares_since(None), Some((0.6, 0.3, 0.1)));
    /// ```
    pub fn shares_since(&self, earlier: Option<&TaskSample>) -> Option<(f64, f64, f64)> {
        let (s0, p0, i0) = earlier.map_or((0, 0, 0), |e| (e.scheduled_us, e.poll_us, e.idle_us));
        shares(
            self.scheduled_us.saturating_sub(s0) as f64,
            self.poll_us.saturating_sub(p0) as f64,
            self.idle_us.saturating_sub(i0) as f64,
        )
    }
}

/// (scheduled, poll, idle) as fractions of their sum, or `None` when it is 0.
pub fn shares(scheduled: f64, poll: f64, idle: f64) -> Option<(f64, f64, f64)> {
    let total = scheduled + poll + idle;
    (total > 0.0).then(|| (scheduled / total, poll / total, idle / total))
}

/// Stacks sampled on CPU time over a window: each thread is sampled every
/// `1/hz` seconds of the CPU time it uses, so counts are proportional to CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Profile {
    /// The profile request this answers; `None` for continuous windows.
    pub request_id: Option<u64>,
    /// Window start, ms since the Unix epoch.
    pub start_ms: u64,
    /// Window end, ms since the Unix epoch.
    pub end_ms: u64,
    /// Sampling rate, per CPU-second of each thread.
    pub hz: u32,
    /// Stacks taken (the sum of the counts).
    pub samples: u64,
    /// Stacks lost: the handler's buffer was full, or the window's table was.
    pub dropped: u64,
    /// Distinct stacks with their counts.
    pub stacks: Vec<ProfileStack>,
}

/// One distinct stack of a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProfileStack {
    /// Function names, innermost first (the thread's name last, as the root).
    pub frames: Vec<String>,
    /// Samples that found this stack.
    pub count: u32,
}

/// A worker stuck in one poll for at least the stall threshold, with the
/// stacks of its thread taken while it was stuck.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StallEvent {
    /// Identifies the stall across samples: the same id while it goes on and
    /// in its final report.
    pub id: u64,
    /// Runtime name.
    pub runtime: String,
    /// How it was seen.
    pub detection: StallDetection,
    /// OS thread id of the stuck worker, 0 if it could not be told.
    pub tid: i32,
    /// When the poll started, ms since the Unix epoch.
    pub started_ms: u64,
    /// How long the poll lasted (or has lasted so far, if `ongoing`), µs.
    pub duration_us: u64,
    /// Whether the poll was still running at the end of the interval.
    pub ongoing: bool,
    /// The innermost frame in user code (not std, core, alloc, tokio, libc
    /// or lagscope) of the most frequent stack: the function that blocked.
    pub blocking_function: Option<String>,
    /// Distinct stacks taken during the stall, most frequent first (long
    /// stalls are captured repeatedly, so the counts show where time went).
    pub stacks: Vec<StallStack>,
    /// The stalled task's id, when the poll hooks saw it.
    pub task_id: Option<u64>,
    /// Where the stalled task was spawned (`file:line:column`), when known.
    pub spawned_at: Option<String>,
    /// The `tracing` span the thread was in (name and fields), with
    /// `lagscope::tracing_layer()` installed.
    pub span: Option<String>,
    /// That span's OpenTelemetry context as a W3C `traceparent`
    /// (`00-<trace id>-<span id>-<flags>`), when the service uses
    /// tracing-opentelemetry: the stall's span is made its child.
    #[serde(default)]
    pub trace_parent: Option<String>,
}

/// How the stall watchdog saw a stall.
#[derive(Debug, Clone, Default, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StallDetection {
    /// Per-worker poll-start times from the poll hooks: exact (needs
    /// tokio_unstable and `lagscope::PollHooks`).
    PollHooks,
    /// Stable tokio: a worker's published counters froze while it was not
    /// parked.
    WorkerMetrics,
    /// Not said (a stall from another tool, or a newer agent's kind).
    #[serde(other)]
    #[default]
    Unknown,
}

impl StallDetection {
    /// The kebab-case name, as in JSON, protobuf and OTLP attributes.
    ///
    /// ```
    /// use lagscope_wire::StallDetection;
    /// assert_eq!(StallDetection::PollHooks.name(), "poll-hooks");
    /// assert_eq!(StallDetection::from_name("worker-metrics"), StallDetection::WorkerMetrics);
    /// assert_eq!(StallDetection::from_name("ebpf"), StallDetection::Unknown);
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            StallDetection::PollHooks => "poll-hooks",
            StallDetection::WorkerMetrics => "worker-metrics",
            StallDetection::Unknown => "unknown",
        }
    }

    /// The kind named `name`; [`StallDetection::Unknown`] for any other.
    pub fn from_name(name: &str) -> StallDetection {
        [StallDetection::PollHooks, StallDetection::WorkerMetrics]
            .into_iter()
            .find(|d| d.name() == name)
            .unwrap_or(StallDetection::Unknown)
    }
}

impl std::fmt::Display for StallDetection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One distinct stack of a stall and how many captures found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StallStack {
    /// Function names, innermost first.
    pub frames: Vec<String>,
    /// Captures that found this stack.
    pub count: u32,
}

impl StallEvent {
    /// Captures taken in all.
    pub fn captures(&self) -> u32 {
        self.stacks.iter().map(|s| s.count).sum()
    }
}

/// Measurements of one tokio runtime over the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RuntimeSample {
    /// The name given in `lagscope::Builder::runtime` (`"main"` for the runtime passed to `start`).
    pub name: String,
    /// Scheduling delay seen by the lag probe: the time from "made runnable"
    /// to "first poll". `None` if no probe completed or was pending in this interval.
    pub lag: Option<LagStats>,
    /// Number of worker threads.
    pub workers: usize,
    /// Tasks alive at the end of the interval.
    pub alive_tasks: usize,
    /// Tasks waiting in the global (inject) queue at the end of the interval.
    pub global_queue_depth: usize,
    /// Fraction of the interval the workers spent busy, averaged over workers
    /// (0.0 idle .. 1.0 saturated): the analogue of Node's event-loop utilization.
    pub busy_ratio: f64,
    /// Per-worker measurements, indexed by tokio's worker index.
    pub worker: Vec<WorkerSample>,
    /// Threads in the blocking pool (needs `tokio_unstable`).
    pub blocking_threads: Option<usize>,
    /// Idle threads in the blocking pool (needs `tokio_unstable`).
    pub idle_blocking_threads: Option<usize>,
    /// Tasks queued for the blocking pool (needs `tokio_unstable`).
    pub blocking_queue_depth: Option<usize>,
    /// Task poll durations from the poll hooks (needs `tokio_unstable` and
    /// `lagscope::PollHooks` installed on this runtime's builder).
    pub poll: Option<PollStats>,
    /// Every task's scheduling delay (made runnable → polled) over the
    /// interval, from tokio's own histogram (needs `tokio_unstable` and
    /// `Builder::enable_metrics_schedule_latency_histogram()`): the lag of all
    /// tasks, not only the probe's. Quantiles are bucket upper bounds (the
    /// lower bound for the last, open bucket); `probes` counts the polls.
    #[serde(default)]
    pub schedule_latency: Option<LagStats>,
    /// Longest wait of lagscope's no-op `spawn_blocking` probe for a
    /// blocking thread over the interval, counting one still waiting, in
    /// µs: how long a blocking job waits to start (any tokio).
    #[serde(default)]
    pub blocking_wait_us: Option<u64>,
}

/// Scheduling-delay statistics of the lag probe over one interval, in microseconds.
///
/// A probe that has been waiting longer than any completed one counts with its
/// current age, so a runtime that is blocked right now shows growing lag live.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LagStats {
    /// Probes that completed in the interval.
    pub probes: u64,
    /// Age of the probe still waiting for its first poll at the end of the interval.
    pub pending_us: Option<u64>,
    /// Smallest delay.
    pub min_us: u64,
    /// Mean delay.
    pub mean_us: u64,
    /// Median delay.
    pub p50_us: u64,
    /// 90th percentile delay.
    pub p90_us: u64,
    /// 99th percentile delay.
    pub p99_us: u64,
    /// 99.9th percentile delay.
    pub p999_us: u64,
    /// Largest delay.
    pub max_us: u64,
}

impl LagStats {
    /// Statistics of a bucketed histogram: `counts[i]` delays fell in bucket
    /// `bounds[i] = (start_us, end_us)`, `end_us` `None` for an open last
    /// bucket. Quantiles and max are bucket upper bounds (the start of an open
    /// bucket), min the first bucket's start, mean from bucket midpoints.
    /// `None` when no delay was counted.
    ///
    /// ```
    /// let bounds = [(0, Some(100)), (100, Some(200)), (200, None)];
    /// let lag = lagscope_wire::LagStats::from_buckets(&[90, 9, 1], &bounds).unwrap();
    /// assert_eq!((lag.probes, lag.p50_us, lag.p99_us, lag.max_us), (100, 100, 200, 200));
    /// assert_eq!(lagscope_wire::LagStats::from_buckets(&[0, 0, 0], &bounds), None);
    /// ```
    pub fn from_buckets(counts: &[u64], bounds: &[(u64, Option<u64>)]) -> Option<LagStats> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let upper = |i: usize| {
            bounds
                .get(i)
                .map_or(0, |&(start, end)| end.unwrap_or(start))
        };
        let quantile = |q: f64| {
            let target = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= target {
                    return upper(i);
                }
            }
            upper(counts.len().saturating_sub(1))
        };
        let nonempty = || {
            counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(i, _)| i)
        };
        let first = nonempty().next().unwrap_or(0);
        let last = nonempty().next_back().unwrap_or(0);
        let weighted: f64 = counts
            .iter()
            .zip(bounds)
            .map(|(&c, &(start, end))| {
                c as f64 * end.map_or(start as f64, |e| (start + e) as f64 / 2.0)
            })
            .sum();
        Some(LagStats {
            probes: total,
            pending_us: None,
            min_us: bounds.get(first).map_or(0, |b| b.0),
            mean_us: (weighted / total as f64).round() as u64,
            p50_us: quantile(0.5),
            p90_us: quantile(0.9),
            p99_us: quantile(0.99),
            p999_us: quantile(0.999),
            max_us: upper(last),
        })
    }

    /// The distribution as (number of probes, delay in µs) at p50, p90, p99
    /// and max — half the probes at p50, 40 % at p90, 9 % at p99 and at least
    /// one at max — for filling a histogram whose buckets then hold the
    /// quantiles the agent measured (a sample carries quantiles, not every
    /// probe's delay).
    ///
    /// ```
    /// let mut lag = lagscope_wire::LagStats::default();
    /// lag.probes = 100;
    /// (lag.p50_us, lag.p90_us, lag.p99_us, lag.max_us) = (1, 2, 3, 4);
    /// assert_eq!(lag.weighted_quantiles(), [(50, 1), (40, 2), (9, 3), (1, 4)]);
    /// ```
    pub fn weighted_quantiles(&self) -> [(u64, u64); 4] {
        let n = self.probes.max(1) as f64;
        let times = |share: f64| (n * share).round() as u64;
        [
            (times(0.5), self.p50_us),
            (times(0.4), self.p90_us),
            (times(0.09), self.p99_us),
            (times(0.01).max(1), self.max_us),
        ]
    }
}

/// Measurements of one worker thread over the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerSample {
    /// Fraction of the interval this worker was busy.
    pub busy_ratio: f64,
    /// Times the worker parked during the interval.
    pub park_count: u64,
    /// Whether the worker was parked (idle) at the end of the interval.
    pub parked: bool,
    /// Tasks in this worker's local queue (needs `tokio_unstable`).
    pub local_queue_depth: Option<usize>,
    /// Tasks polled during the interval (needs `tokio_unstable`).
    pub polls: Option<u64>,
    /// Tasks stolen from other workers during the interval (needs `tokio_unstable`).
    pub steals: Option<u64>,
    /// Polls that lasted at least the long-poll threshold (needs `lagscope::PollHooks`).
    pub long_polls: Option<u64>,
    /// Longest poll during the interval, in microseconds (needs `lagscope::PollHooks`).
    pub max_poll_us: Option<u64>,
}

/// Poll-duration statistics from the poll hooks, over all workers of a runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PollStats {
    /// Polls completed during the interval.
    pub polls: u64,
    /// Polls that lasted at least the long-poll threshold.
    pub long_polls: u64,
    /// Threshold for `long_polls`, in microseconds.
    pub long_poll_threshold_us: u64,
    /// Median poll duration (upper bound of its power-of-two bucket).
    pub p50_us: u64,
    /// 99th percentile poll duration (upper bound of its power-of-two bucket).
    pub p99_us: u64,
    /// Longest poll, exact.
    pub max_us: u64,
}

/// Memory of the process at the end of the interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemorySample {
    /// Bytes live in the Rust heap (needs `lagscope::alloc::Counting`).
    pub heap_live_bytes: Option<u64>,
    /// Highest `heap_live_bytes` the sampler has seen (sampled, not exact).
    pub heap_peak_bytes: Option<u64>,
    /// Allocations during the interval (needs `lagscope::alloc::Counting`).
    pub allocations: Option<u64>,
    /// Bytes allocated during the interval (needs `lagscope::alloc::Counting`).
    pub allocated_bytes: Option<u64>,
    /// Bytes allocated per second over the interval.
    pub alloc_rate: Option<f64>,
    /// Resident set size of the process.
    pub rss_bytes: Option<u64>,
    /// Bytes the C allocator holds from the OS (glibc `mallinfo2`: arena + mmapped).
    pub allocator_held_bytes: Option<u64>,
    /// Bytes C code holds through malloc (C libraries, `-sys` crates): what
    /// malloc handed out less the Rust heap when Rust allocates through it
    /// (needs `lagscope::alloc::Counting`; glibc).
    #[serde(default)]
    pub c_heap_bytes: Option<u64>,
    /// `rss_bytes - allocator_held_bytes`: memory the Rust allocator never saw
    /// (C libraries' own mappings, mmap, thread stacks, code). The analogue of
    /// Node's `external`.
    pub external_bytes: Option<u64>,
}

/// CPU and resources of the whole process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessSample {
    /// User CPU time used during the interval, in microseconds.
    pub cpu_user_us: Option<u64>,
    /// System CPU time used during the interval, in microseconds.
    pub cpu_system_us: Option<u64>,
    /// CPU used over the interval as a fraction of one core (can exceed 1.0).
    pub cpu_ratio: Option<f64>,
    /// Threads in the process.
    pub threads: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Cores available to the process.
    pub host_cores: usize,
}

/// One user-registered gauge's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GaugeValue {
    /// The gauge's name, e.g. `db.pool.waiting`.
    pub name: String,
    /// The value, or `None` if the gauge's closure panicked.
    pub value: Option<f64>,
}

impl Sample {
    /// The runtime sample with the given name.
    pub fn runtime(&self, name: &str) -> Option<&RuntimeSample> {
        self.runtimes.iter().find(|r| r.name == name)
    }

    /// The value of the gauge with the given name.
    pub fn gauge(&self, name: &str) -> Option<f64> {
        self.gauges.iter().find(|g| g.name == name)?.value
    }

    /// A plausible sample of a 2-worker runtime under light load, for tests,
    /// benchmarks and examples: every field measured, values varying a little
    /// with `seq`.
    ///
    /// ```
    /// let s = lagscope_wire::Sample::synthetic("checkout", "web-1:42", 7, 1_000);
    /// assert_eq!(s.runtime("main").unwrap().workers, 2);
    /// assert!(s.memory.heap_live_bytes.is_some());
    /// ```
    pub fn synthetic(service: &str, instance: &str, seq: u64, timestamp_ms: u64) -> Sample {
        const WORKERS: usize = 2;
        Sample {
            service: service.into(),
            instance: instance.into(),
            seq,
            timestamp_ms,
            interval_us: 1_000_000,
            runtimes: vec![RuntimeSample {
                name: "main".into(),
                lag: Some(LagStats {
                    probes: 100,
                    pending_us: None,
                    min_us: 40,
                    mean_us: 90,
                    p50_us: 80 + seq % 7,
                    p90_us: 150,
                    p99_us: 300 + seq % 11,
                    p999_us: 900,
                    max_us: 1000 + seq % 13,
                }),
                workers: WORKERS,
                alive_tasks: 12,
                global_queue_depth: (seq % 3) as usize,
                busy_ratio: 0.3,
                worker: (0..WORKERS)
                    .map(|_| WorkerSample {
                        busy_ratio: 0.3,
                        park_count: 10,
                        parked: false,
                        local_queue_depth: Some(1),
                        polls: Some(100),
                        steals: Some(1),
                        long_polls: None,
                        max_poll_us: None,
                    })
                    .collect(),
                blocking_threads: Some(2),
                idle_blocking_threads: Some(1),
                blocking_queue_depth: Some(0),
                poll: None,
                schedule_latency: Some(LagStats {
                    probes: 5000,
                    pending_us: None,
                    min_us: 0,
                    mean_us: 60,
                    p50_us: 50 + seq % 5,
                    p90_us: 100,
                    p99_us: 400,
                    p999_us: 800,
                    max_us: 1600,
                }),
                blocking_wait_us: Some(40),
            }],
            memory: MemorySample {
                heap_live_bytes: Some(20 << 20),
                heap_peak_bytes: Some(20 << 20),
                allocations: Some(1000),
                allocated_bytes: Some(1 << 20),
                alloc_rate: Some(1048576.0),
                rss_bytes: Some(30 << 20),
                allocator_held_bytes: Some(24 << 20),
                c_heap_bytes: Some(3 << 20),
                external_bytes: Some(6 << 20),
            },
            process: ProcessSample {
                cpu_user_us: Some(100_000),
                cpu_system_us: Some(10_000),
                cpu_ratio: Some(0.11),
                threads: Some(6),
                open_fds: Some(12),
                host_cores: 2,
            },
            gauges: vec![],
            dropped_samples: 0,
            stalls: vec![],
            profiles: vec![],
            tasks: vec![TaskSample {
                name: "GET /orders/:id".into(),
                instrumented: 1000 + seq * 10,
                completed: 990 + seq * 10,
                slow_polls: 3,
                scheduled_us: 20_000 + seq * 200,
                poll_us: 30_000 + seq * 300,
                idle_us: 150_000 + seq * 1500,
                requests: 10,
                scheduled: Some(TaskTimes {
                    mean_us: 20,
                    p99_us: 90,
                }),
                poll: Some(TaskTimes {
                    mean_us: 30,
                    p99_us: 120,
                }),
                idle: Some(TaskTimes {
                    mean_us: 150,
                    p99_us: 900,
                }),
                first_poll_delay: Some(TaskTimes {
                    mean_us: 15,
                    p99_us: 60,
                }),
                stuck: 0,
            }],
            task_names_folded: 0,
            notices: Vec::new(),
            heap: None,
            last: false,
            waits: None,
            stuck: Vec::new(),
        }
    }
}
