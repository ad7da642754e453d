//! The one metric table: every number lagscope charts, stores, exposes to
//! Prometheus or speaks over OTLP is declared here once — its series name,
//! unit, kind, doc, Prometheus name, OTLP name, the sample field it comes
//! from and how to write it back — and every consumer takes it from here.
//!
//! [`Metric`] is an enum generated with the table, so code names a metric as
//! `Metric::LagP99`, never as a string; a metric added to the table reaches the
//! collector's store, Prometheus, OTLP out (agent and collector) and OTLP in
//! without touching them, and a sample field no metric claims fails
//! `every_numeric_sample_field_is_a_metric_or_named_as_not_one`.
//!
//! ```
//! use lagscope_wire::metric::{Metric, Unit};
//! let p99 = Metric::LagP99.def();
//! assert_eq!(p99.series, "lag_p99_us");
//! assert_eq!(p99.unit, Unit::Micros);
//! assert_eq!(p99.prometheus, Some("tokio_eventloop_delay_p99_seconds"));
//! assert_eq!(p99.otlp, Some("tokio.eventloop.delay.p99"));
//!
//! let sample = lagscope_wire::Sample::synthetic("svc", "a", 0, 0);
//! let runtime = &sample.runtimes[0];
//! assert_eq!(Metric::LagP99.read_runtime(runtime), Some(300.0));
//! // Exports speak base units: seconds, bytes.
//! assert_eq!(p99.unit.to_base(300.0), 0.0003);
//! ```

use crate::{LagStats, PollStats, RuntimeSample, Sample, TaskSample, TaskTimes, WorkerSample};

/// The unit a metric's value is stored and charted in. Exports convert to
/// the base unit ([`Unit::to_base`]): seconds for durations, bytes for sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds (exported as seconds, OTLP `s`).
    Micros,
    /// Bytes (OTLP `By`).
    Bytes,
    /// Bytes per second (OTLP `By/s`).
    BytesPerSecond,
    /// A dimensionless fraction (OTLP `1`); CPU can exceed 1.0 (cores).
    Ratio,
    /// A count of things, with the OTLP annotation naming them (`{task}`).
    Count(&'static str),
}

impl Unit {
    /// `value` (in this unit) in the export's base unit.
    pub fn to_base(self, value: f64) -> f64 {
        match self {
            Unit::Micros => value / 1e6,
            _ => value,
        }
    }

    /// `value` in the export's base unit, back in this unit.
    pub fn from_base(self, value: f64) -> f64 {
        match self {
            Unit::Micros => value * 1e6,
            _ => value,
        }
    }

    /// The OTLP unit string (UCUM, as the semantic conventions write it).
    pub fn otlp(self) -> &'static str {
        match self {
            Unit::Micros => "s",
            Unit::Bytes => "By",
            Unit::BytesPerSecond => "By/s",
            Unit::Ratio => "1",
            Unit::Count(annotation) => annotation,
        }
    }
}

/// How a metric's value behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value at the end of the interval (or a statistic over it).
    Gauge,
    /// A cumulative count since the agent started.
    Counter,
}

impl Kind {
    /// The Prometheus `# TYPE`.
    pub fn prometheus(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// What a metric describes, and so the labels it carries: a runtime
/// (`runtime`), one worker of a runtime (`runtime`, `worker`), the futures
/// instrumented under one name (`task`), or the process.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// Read from and written to one runtime's sample.
    Runtime {
        /// The value, if this build measured it.
        read: fn(&RuntimeSample) -> Option<f64>,
        /// Sets the value (OTLP in).
        write: fn(&mut RuntimeSample, f64),
    },
    /// Read from one worker's sample; series `<series>.<worker index>`.
    Worker {
        /// The value, if this build measured it.
        read: fn(&WorkerSample) -> Option<f64>,
    },
    /// Read from and written to one name's [`TaskSample`]; series
    /// `<series>.<name>`.
    Task {
        /// The value, if this build measured it.
        read: fn(&TaskSample) -> Option<f64>,
        /// Sets the value (OTLP in).
        write: fn(&mut TaskSample, f64),
    },
    /// Read from and written to the sample as a whole.
    Process {
        /// The value, if this build measured it.
        read: fn(&Sample) -> Option<f64>,
        /// Sets the value (OTLP in).
        write: fn(&mut Sample, f64),
    },
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// Which metric this row describes.
    pub metric: Metric,
    /// Name of the collector's series (main runtime; other runtimes' are
    /// prefixed `rt.<name>.`, workers' suffixed `.<index>`). Units in the name.
    pub series: &'static str,
    /// Short label for chart legends.
    pub label: &'static str,
    /// What the stored value is measured in.
    pub unit: Unit,
    /// Gauge or counter.
    pub kind: Kind,
    /// One sentence for `# HELP`, OTLP descriptions and the README.
    pub doc: &'static str,
    /// The [`Sample`] field it comes from (`runtimes[].lag.p99_us`).
    pub field: &'static str,
    /// Prometheus family name (base units), if it is exposed there.
    pub prometheus: Option<&'static str>,
    /// OTLP metric name (base units), if it is spoken over OTLP.
    pub otlp: Option<&'static str>,
    /// Where the value comes from.
    pub source: Source,
}

macro_rules! metric_table {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident {
            series: $series:literal,
            label: $label:literal,
            unit: $unit:expr,
            kind: $kind:ident,
            field: $field:literal,
            prometheus: $prom:expr,
            otlp: $otlp:expr,
            source: $source:expr $(,)?
        }
    ),+ $(,)?) => {
        /// Every metric in lagscope's vocabulary; see [`Metric::def`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Metric {
            $( $(#[doc = $doc])+ $variant, )+
        }

        /// The table, in [`Metric`] order.
        pub static TABLE: &[MetricDef] = &[
            $( MetricDef {
                metric: Metric::$variant,
                series: $series,
                label: $label,
                unit: $unit,
                kind: Kind::$kind,
                doc: strip_space(concat!($($doc),+)),
                field: $field,
                prometheus: $prom,
                otlp: $otlp,
                source: $source,
            }, )+
        ];

        impl Metric {
            /// Every metric, in table order.
            pub const ALL: &'static [Metric] = &[ $( Metric::$variant, )+ ];
        }
    };
}

/// A doc comment's text without the space after `///`.
const fn strip_space(doc: &'static str) -> &'static str {
    match doc.as_bytes() {
        [b' ', ..] => doc.split_at(1).1,
        _ => doc,
    }
}

fn lag(r: &mut RuntimeSample) -> &mut LagStats {
    r.lag.get_or_insert_with(LagStats::default)
}

fn schedule_latency(r: &mut RuntimeSample) -> &mut LagStats {
    r.schedule_latency.get_or_insert_with(LagStats::default)
}

fn poll(r: &mut RuntimeSample) -> &mut PollStats {
    r.poll.get_or_insert_with(PollStats::default)
}

fn count(v: f64) -> usize {
    v.max(0.0).round() as usize
}

fn whole(v: f64) -> u64 {
    v.max(0.0).round() as u64
}

metric_table! {
    /// Smallest scheduling delay of the lag probe in the interval.
    LagMin {
        series: "lag_min_us", label: "min", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].lag.min_us",
        prometheus: Some("tokio_eventloop_delay_min_seconds"),
        otlp: Some("tokio.eventloop.delay.min"),
        source: Source::Runtime {
            read: |r| Some(r.lag.as_ref()?.min_us as f64),
            write: |r, v| lag(r).min_us = whole(v),
        },
    },
    /// Mean scheduling delay of the lag probe in the interval.
    LagMean {
        series: "lag_mean_us", label: "mean", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].lag.mean_us",
        prometheus: Some("tokio_eventloop_delay_mean_seconds"),
        otlp: Some("tokio.eventloop.delay.mean"),
        source: Source::Runtime {
            read: |r| Some(r.lag.as_ref()?.mean_us as f64),
            write: |r, v| lag(r).mean_us = whole(v),
        },
    },
    /// Median scheduling delay of the lag probe in the interval.
    LagP50 {
        series: "lag_p50_us", label: "p50", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].lag.p50_us",
        prometheus: Some("tokio_eventloop_delay_p50_seconds"),
        otlp: Some("tokio.eventloop.delay.p50"),
        source: Source::Runtime {
            read: |r| Some(r.lag.as_ref()?.p50_us as f64),
            write: |r, v| lag(r).p50_us = whole(v),
        },
    },
    /// 90th percentile scheduling delay of the lag probe in the interval.
    LagP90 {
        series: "lag_p90_us", label: "p90", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].lag.p90_us",
        prometheus: Some("tokio_eventloop_delay_p90_seconds"),
        otlp: Some("tokio.eventloop.delay.p90"),
        source: Source::Runtime {
            read: |r| Some(r.lag.as_ref()?.p90_us as f64),
            write: |r, v| lag(r).p90_us = whole(v),
        },
    },
    /// 99th percentile scheduling delay of the lag probe in the interval.
    LagP99 {
        series: "lag_p99_us", label: "p99", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].lag.p99_us",
        prometheus: Some("tokio_eventloop_delay_p99_seconds"),
        otlp: Some("tokio.eventloop.delay.p99"),
        source: Source::Runtime {
            read: |r| Some(r.lag.as_ref()?.p99_us as f64),
            write: |r, v| lag(r).p99_us = whole(v),
        },
    },
    /// Largest scheduling delay of the lag probe in the interval (a probe still waiting counts with its age).
    LagMax {
        series: "lag_max_us", label: "max", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].lag.max_us",
        prometheus: Some("tokio_eventloop_delay_max_seconds"),
        otlp: Some("tokio.eventloop.delay.max"),
        source: Source::Runtime {
            read: |r| Some(r.lag.as_ref()?.max_us as f64),
            write: |r, v| lag(r).max_us = whole(v),
        },
    },
    /// Median scheduling delay of every task polled in the interval (tokio's schedule-latency histogram).
    ScheduleLatencyP50 {
        series: "schedule_latency_p50_us", label: "all p50", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].schedule_latency.p50_us",
        prometheus: Some("tokio_schedule_latency_p50_seconds"),
        otlp: Some("tokio.schedule.latency.p50"),
        source: Source::Runtime {
            read: |r| Some(r.schedule_latency.as_ref()?.p50_us as f64),
            write: |r, v| schedule_latency(r).p50_us = whole(v),
        },
    },
    /// 99th percentile scheduling delay of every task polled in the interval (tokio's schedule-latency histogram).
    ScheduleLatencyP99 {
        series: "schedule_latency_p99_us", label: "all p99", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].schedule_latency.p99_us",
        prometheus: Some("tokio_schedule_latency_p99_seconds"),
        otlp: Some("tokio.schedule.latency.p99"),
        source: Source::Runtime {
            read: |r| Some(r.schedule_latency.as_ref()?.p99_us as f64),
            write: |r, v| schedule_latency(r).p99_us = whole(v),
        },
    },
    /// Largest scheduling delay of any task polled in the interval (tokio's schedule-latency histogram).
    ScheduleLatencyMax {
        series: "schedule_latency_max_us", label: "all max", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].schedule_latency.max_us",
        prometheus: Some("tokio_schedule_latency_max_seconds"),
        otlp: Some("tokio.schedule.latency.max"),
        source: Source::Runtime {
            read: |r| Some(r.schedule_latency.as_ref()?.max_us as f64),
            write: |r, v| schedule_latency(r).max_us = whole(v),
        },
    },
    /// Fraction of the interval the workers were busy, averaged over workers (0..1).
    BusyRatio {
        series: "busy_ratio", label: "busy", unit: Unit::Ratio, kind: Gauge,
        field: "runtimes[].busy_ratio",
        prometheus: Some("tokio_eventloop_utilization"),
        otlp: Some("tokio.eventloop.utilization"),
        source: Source::Runtime {
            read: |r| Some(r.busy_ratio),
            write: |r, v| r.busy_ratio = v.clamp(0.0, 1.0),
        },
    },
    /// Fraction of the interval one worker was busy (0..1).
    WorkerBusyRatio {
        series: "busy_ratio.worker", label: "w", unit: Unit::Ratio, kind: Gauge,
        field: "runtimes[].worker[].busy_ratio",
        prometheus: Some("tokio_worker_utilization"),
        otlp: None,
        source: Source::Worker { read: |w| Some(w.busy_ratio) },
    },
    /// Worker threads of the runtime.
    Workers {
        series: "workers", label: "workers", unit: Unit::Count("{worker}"), kind: Gauge,
        field: "runtimes[].workers",
        prometheus: Some("tokio_workers"),
        otlp: Some("tokio.workers"),
        source: Source::Runtime {
            read: |r| Some(r.workers as f64),
            write: |r, v| r.workers = count(v).max(1),
        },
    },
    /// Tasks alive at the end of the interval.
    AliveTasks {
        series: "alive_tasks", label: "tasks alive", unit: Unit::Count("{task}"), kind: Gauge,
        field: "runtimes[].alive_tasks",
        prometheus: Some("tokio_tasks_alive"),
        otlp: Some("tokio.tasks.alive"),
        source: Source::Runtime {
            read: |r| Some(r.alive_tasks as f64),
            write: |r, v| r.alive_tasks = count(v),
        },
    },
    /// Tasks waiting in the global (inject) queue.
    GlobalQueueDepth {
        series: "global_queue_depth", label: "global", unit: Unit::Count("{task}"), kind: Gauge,
        field: "runtimes[].global_queue_depth",
        prometheus: Some("tokio_global_queue_depth"),
        otlp: Some("tokio.queue.global.depth"),
        source: Source::Runtime {
            read: |r| Some(r.global_queue_depth as f64),
            write: |r, v| r.global_queue_depth = count(v),
        },
    },
    /// Tasks in the workers' local queues, summed (tokio_unstable).
    LocalQueueDepth {
        series: "local_queue_depth", label: "local", unit: Unit::Count("{task}"), kind: Gauge,
        field: "runtimes[].worker[].local_queue_depth",
        prometheus: Some("tokio_local_queue_depth"),
        otlp: None,
        source: Source::Runtime {
            read: |r| r.worker.iter().map(|w| w.local_queue_depth).sum::<Option<usize>>().map(|v| v as f64),
            // A sum over workers; not spoken over OTLP, so never written.
            write: |_, _| {},
        },
    },
    /// Threads in the blocking pool (tokio_unstable).
    BlockingThreads {
        series: "blocking_threads", label: "blk thr", unit: Unit::Count("{thread}"), kind: Gauge,
        field: "runtimes[].blocking_threads",
        prometheus: Some("tokio_blocking_threads"),
        otlp: Some("tokio.blocking.threads"),
        source: Source::Runtime {
            read: |r| r.blocking_threads.map(|v| v as f64),
            write: |r, v| r.blocking_threads = Some(count(v)),
        },
    },
    /// Idle threads in the blocking pool (tokio_unstable).
    IdleBlockingThreads {
        series: "idle_blocking_threads", label: "blk idle", unit: Unit::Count("{thread}"), kind: Gauge,
        field: "runtimes[].idle_blocking_threads",
        prometheus: Some("tokio_blocking_idle_threads"),
        otlp: Some("tokio.blocking.idle_threads"),
        source: Source::Runtime {
            read: |r| r.idle_blocking_threads.map(|v| v as f64),
            write: |r, v| r.idle_blocking_threads = Some(count(v)),
        },
    },
    /// Tasks waiting for a thread of the blocking pool (tokio_unstable).
    BlockingQueueDepth {
        series: "blocking_queue_depth", label: "blocking", unit: Unit::Count("{task}"), kind: Gauge,
        field: "runtimes[].blocking_queue_depth",
        prometheus: Some("tokio_blocking_queue_depth"),
        otlp: Some("tokio.blocking.queue.depth"),
        source: Source::Runtime {
            read: |r| r.blocking_queue_depth.map(|v| v as f64),
            write: |r, v| r.blocking_queue_depth = Some(count(v)),
        },
    },
    /// Longest time a no-op spawn_blocking job waited for a blocking thread in the interval.
    BlockingWait {
        series: "blocking_wait_us", label: "blocking wait", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].blocking_wait_us",
        prometheus: Some("tokio_blocking_wait_max_seconds"),
        otlp: Some("tokio.blocking.wait.max"),
        source: Source::Runtime {
            read: |r| r.blocking_wait_us.map(|v| v as f64),
            write: |r, v| r.blocking_wait_us = Some(whole(v)),
        },
    },
    /// Longest task poll in the interval (poll hooks).
    PollMax {
        series: "poll_max_us", label: "max poll", unit: Unit::Micros, kind: Gauge,
        field: "runtimes[].poll.max_us",
        prometheus: Some("tokio_poll_duration_max_seconds"),
        otlp: Some("tokio.poll.duration.max"),
        source: Source::Runtime {
            read: |r| Some(r.poll.as_ref()?.max_us as f64),
            write: |r, v| poll(r).max_us = whole(v),
        },
    },
    /// Polls in the interval that lasted at least the long-poll threshold (poll hooks).
    LongPolls {
        series: "long_polls", label: "long polls", unit: Unit::Count("{poll}"), kind: Gauge,
        field: "runtimes[].poll.long_polls",
        prometheus: Some("tokio_long_polls"),
        otlp: Some("tokio.poll.long"),
        source: Source::Runtime {
            read: |r| Some(r.poll.as_ref()?.long_polls as f64),
            write: |r, v| poll(r).long_polls = whole(v),
        },
    },
    /// Bytes live in the Rust heap (counting allocator).
    HeapLive {
        series: "heap_live_bytes", label: "heap", unit: Unit::Bytes, kind: Gauge,
        field: "memory.heap_live_bytes",
        prometheus: Some("process_memory_heap_live_bytes"),
        otlp: Some("rust.memory.heap.live"),
        source: Source::Process {
            read: |s| s.memory.heap_live_bytes.map(|v| v as f64),
            write: |s, v| s.memory.heap_live_bytes = Some(whole(v)),
        },
    },
    /// Bytes allocated per second over the interval (counting allocator).
    AllocRate {
        series: "alloc_rate", label: "alloc/s", unit: Unit::BytesPerSecond, kind: Gauge,
        field: "memory.alloc_rate",
        prometheus: Some("process_memory_alloc_rate_bytes_per_second"),
        otlp: Some("rust.memory.allocation.rate"),
        source: Source::Process {
            read: |s| s.memory.alloc_rate,
            write: |s, v| s.memory.alloc_rate = Some(v),
        },
    },
    /// Resident set size of the process.
    Rss {
        series: "rss_bytes", label: "rss", unit: Unit::Bytes, kind: Gauge,
        field: "memory.rss_bytes",
        prometheus: Some("process_memory_rss_bytes"),
        otlp: Some("process.memory.usage"),
        source: Source::Process {
            read: |s| s.memory.rss_bytes.map(|v| v as f64),
            write: |s, v| s.memory.rss_bytes = Some(whole(v)),
        },
    },
    /// Bytes the C allocator holds from the OS (glibc mallinfo2: arena + mmapped).
    AllocatorHeld {
        series: "allocator_held_bytes", label: "malloc held", unit: Unit::Bytes, kind: Gauge,
        field: "memory.allocator_held_bytes",
        prometheus: Some("process_memory_allocator_held_bytes"),
        otlp: Some("rust.memory.allocator.held"),
        source: Source::Process {
            read: |s| s.memory.allocator_held_bytes.map(|v| v as f64),
            write: |s, v| s.memory.allocator_held_bytes = Some(whole(v)),
        },
    },
    /// Bytes C code holds through malloc, the Rust heap excluded (C libraries, -sys crates).
    CHeap {
        series: "c_heap_bytes", label: "C heap", unit: Unit::Bytes, kind: Gauge,
        field: "memory.c_heap_bytes",
        prometheus: Some("process_memory_c_heap_bytes"),
        otlp: Some("process.memory.c_heap"),
        source: Source::Process {
            read: |s| s.memory.c_heap_bytes.map(|v| v as f64),
            write: |s, v| s.memory.c_heap_bytes = Some(whole(v)),
        },
    },
    /// Mapped and other memory: RSS the C allocator does not hold (mmap, thread stacks, code).
    External {
        series: "external_bytes", label: "external", unit: Unit::Bytes, kind: Gauge,
        field: "memory.external_bytes",
        prometheus: Some("process_memory_external_bytes"),
        otlp: Some("rust.memory.external"),
        source: Source::Process {
            read: |s| s.memory.external_bytes.map(|v| v as f64),
            write: |s, v| s.memory.external_bytes = Some(whole(v)),
        },
    },
    /// CPU used over the interval as a fraction of one core (can exceed 1.0).
    CpuRatio {
        series: "cpu_ratio", label: "cpu", unit: Unit::Ratio, kind: Gauge,
        field: "process.cpu_ratio",
        prometheus: Some("process_cpu_utilization"),
        otlp: Some("process.cpu.utilization"),
        source: Source::Process {
            read: |s| s.process.cpu_ratio,
            write: |s, v| s.process.cpu_ratio = Some(v.max(0.0)),
        },
    },
    /// Threads in the process.
    Threads {
        series: "threads", label: "threads", unit: Unit::Count("{thread}"), kind: Gauge,
        field: "process.threads",
        prometheus: Some("process_threads"),
        otlp: Some("process.thread.count"),
        source: Source::Process {
            read: |s| s.process.threads.map(|v| v as f64),
            write: |s, v| s.process.threads = Some(whole(v)),
        },
    },
    /// Open file descriptors.
    OpenFds {
        series: "open_fds", label: "fds", unit: Unit::Count("{file_descriptor}"), kind: Gauge,
        field: "process.open_fds",
        prometheus: Some("process_open_fds"),
        otlp: Some("process.unix.file_descriptor.count"),
        source: Source::Process {
            read: |s| s.process.open_fds.map(|v| v as f64),
            write: |s, v| s.process.open_fds = Some(whole(v)),
        },
    },
    /// Cores available to the process.
    HostCores {
        series: "host_cores", label: "cores", unit: Unit::Count("{cpu}"), kind: Gauge,
        field: "process.host_cores",
        prometheus: Some("process_cpu_cores"),
        otlp: Some("system.cpu.logical.count"),
        source: Source::Process {
            read: |s| (s.process.host_cores > 0).then_some(s.process.host_cores as f64),
            write: |s, v| s.process.host_cores = count(v),
        },
    },
    /// Samples the agent dropped so far because its exporter fell behind.
    DroppedSamples {
        series: "dropped_samples", label: "dropped", unit: Unit::Count("{sample}"), kind: Counter,
        field: "dropped_samples",
        prometheus: Some("lagscope_agent_dropped_samples_total"),
        otlp: Some("lagscope.agent.dropped_samples"),
        source: Source::Process {
            read: |s| Some(s.dropped_samples as f64),
            write: |s, v| s.dropped_samples = whole(v),
        },
    },
    /// Futures instrumented under the name (cumulative).
    TaskInstrumented {
        series: "task_instrumented", label: "started", unit: Unit::Count("{task}"), kind: Counter,
        field: "tasks[].instrumented",
        prometheus: Some("tokio_task_instrumented_total"),
        otlp: Some("tokio.task.instrumented"),
        source: Source::Task {
            read: |t| Some(t.instrumented as f64),
            write: |t, v| t.instrumented = whole(v),
        },
    },
    /// Instrumented futures that completed or were dropped (cumulative).
    TaskCompleted {
        series: "task_completed", label: "done", unit: Unit::Count("{task}"), kind: Counter,
        field: "tasks[].completed",
        prometheus: Some("tokio_task_completed_total"),
        otlp: Some("tokio.task.completed"),
        source: Source::Task {
            read: |t| Some(t.completed as f64),
            write: |t, v| t.completed = whole(v),
        },
    },
    /// Polls of instrumented futures that took at least the slow-poll threshold (cumulative).
    TaskSlowPolls {
        series: "task_slow_polls", label: "slow polls", unit: Unit::Count("{poll}"), kind: Counter,
        field: "tasks[].slow_polls",
        prometheus: Some("tokio_task_slow_polls_total"),
        otlp: Some("tokio.task.slow_polls"),
        source: Source::Task {
            read: |t| Some(t.slow_polls as f64),
            write: |t, v| t.slow_polls = whole(v),
        },
    },
    /// Instrumented futures pending without a wake for longer than the
    /// agent's stuck threshold (`stuck_after`), now.
    TaskStuck {
        series: "task_stuck", label: "stuck", unit: Unit::Count("{task}"), kind: Gauge,
        field: "tasks[].stuck",
        prometheus: Some("tokio_task_stuck"),
        otlp: Some("tokio.task.stuck"),
        source: Source::Task {
            read: |t| Some(t.stuck as f64),
            write: |t, v| t.stuck = whole(v),
        },
    },
    /// Time instrumented futures spent woken and waiting for a worker (cumulative).
    TaskScheduledTime {
        series: "task_scheduled_us", label: "scheduled", unit: Unit::Micros, kind: Counter,
        field: "tasks[].scheduled_us",
        prometheus: Some("tokio_task_scheduled_seconds_total"),
        otlp: Some("tokio.task.scheduled.time"),
        source: Source::Task {
            read: |t| Some(t.scheduled_us as f64),
            write: |t, v| t.scheduled_us = whole(v),
        },
    },
    /// Time instrumented futures spent being polled (cumulative).
    TaskPollTime {
        series: "task_poll_us", label: "polled", unit: Unit::Micros, kind: Counter,
        field: "tasks[].poll_us",
        prometheus: Some("tokio_task_poll_seconds_total"),
        otlp: Some("tokio.task.poll.time"),
        source: Source::Task {
            read: |t| Some(t.poll_us as f64),
            write: |t, v| t.poll_us = whole(v),
        },
    },
    /// Time instrumented futures spent idle, waiting to be woken (cumulative).
    TaskIdleTime {
        series: "task_idle_us", label: "idle", unit: Unit::Micros, kind: Counter,
        field: "tasks[].idle_us",
        prometheus: Some("tokio_task_idle_seconds_total"),
        otlp: Some("tokio.task.idle.time"),
        source: Source::Task {
            read: |t| Some(t.idle_us as f64),
            write: |t, v| t.idle_us = whole(v),
        },
    },
    /// Mean time a request completed in the interval spent waiting for a worker.
    TaskScheduledMean {
        series: "task_scheduled_mean_us", label: "scheduled mean", unit: Unit::Micros, kind: Gauge,
        field: "tasks[].scheduled.mean_us",
        prometheus: Some("tokio_task_scheduled_mean_seconds"),
        otlp: Some("tokio.task.scheduled.mean"),
        source: Source::Task {
            read: |t| Some(t.scheduled.as_ref()?.mean_us as f64),
            write: |t, v| t.scheduled.get_or_insert_with(TaskTimes::default).mean_us = whole(v),
        },
    },
    /// 99th percentile time a request completed in the interval spent waiting for a worker.
    TaskScheduledP99 {
        series: "task_scheduled_p99_us", label: "scheduled p99", unit: Unit::Micros, kind: Gauge,
        field: "tasks[].scheduled.p99_us",
        prometheus: Some("tokio_task_scheduled_p99_seconds"),
        otlp: Some("tokio.task.scheduled.p99"),
        source: Source::Task {
            read: |t| Some(t.scheduled.as_ref()?.p99_us as f64),
            write: |t, v| t.scheduled.get_or_insert_with(TaskTimes::default).p99_us = whole(v),
        },
    },
    /// Mean time a request completed in the interval spent being polled.
    TaskPollMean {
        series: "task_poll_mean_us", label: "polled mean", unit: Unit::Micros, kind: Gauge,
        field: "tasks[].poll.mean_us",
        prometheus: Some("tokio_task_poll_mean_seconds"),
        otlp: Some("tokio.task.poll.mean"),
        source: Source::Task {
            read: |t| Some(t.poll.as_ref()?.mean_us as f64),
            write: |t, v| t.poll.get_or_insert_with(TaskTimes::default).mean_us = whole(v),
        },
    },
    /// 99th percentile time a request completed in the interval spent being polled.
    TaskPollP99 {
        series: "task_poll_p99_us", label: "polled p99", unit: Unit::Micros, kind: Gauge,
        field: "tasks[].poll.p99_us",
        prometheus: Some("tokio_task_poll_p99_seconds"),
        otlp: Some("tokio.task.poll.p99"),
        source: Source::Task {
            read: |t| Some(t.poll.as_ref()?.p99_us as f64),
            write: |t, v| t.poll.get_or_insert_with(TaskTimes::default).p99_us = whole(v),
        },
    },
    /// Mean time a request completed in the interval spent idle.
    TaskIdleMean {
        series: "task_idle_mean_us", label: "idle mean", unit: Unit::Micros, kind: Gauge,
        field: "tasks[].idle.mean_us",
        prometheus: Some("tokio_task_idle_mean_seconds"),
        otlp: Some("tokio.task.idle.mean"),
        source: Source::Task {
            read: |t| Some(t.idle.as_ref()?.mean_us as f64),
            write: |t, v| t.idle.get_or_insert_with(TaskTimes::default).mean_us = whole(v),
        },
    },
    /// 99th percentile time a request completed in the interval spent idle.
    TaskIdleP99 {
        series: "task_idle_p99_us", label: "idle p99", unit: Unit::Micros, kind: Gauge,
        field: "tasks[].idle.p99_us",
        prometheus: Some("tokio_task_idle_p99_seconds"),
        otlp: Some("tokio.task.idle.p99"),
        source: Source::Task {
            read: |t| Some(t.idle.as_ref()?.p99_us as f64),
            write: |t, v| t.idle.get_or_insert_with(TaskTimes::default).p99_us = whole(v),
        },
    },
    /// Mean time a request completed in the interval spent between creation and first poll.
    TaskFirstPollDelayMean {
        series: "task_first_poll_delay_mean_us", label: "first poll mean", unit: Unit::Micros, kind: Gauge,
        field: "tasks[].first_poll_delay.mean_us",
        prometheus: Some("tokio_task_first_poll_delay_mean_seconds"),
        otlp: Some("tokio.task.first_poll.delay.mean"),
        source: Source::Task {
            read: |t| Some(t.first_poll_delay.as_ref()?.mean_us as f64),
            write: |t, v| t.first_poll_delay.get_or_insert_with(TaskTimes::default).mean_us = whole(v),
        },
    },
    /// 99th percentile time a request completed in the interval spent between creation and first poll.
    TaskFirstPollDelayP99 {
        series: "task_first_poll_delay_p99_us", label: "first poll p99", unit: Unit::Micros, kind: Gauge,
        field: "tasks[].first_poll_delay.p99_us",
        prometheus: Some("tokio_task_first_poll_delay_p99_seconds"),
        otlp: Some("tokio.task.first_poll.delay.p99"),
        source: Source::Task {
            read: |t| Some(t.first_poll_delay.as_ref()?.p99_us as f64),
            write: |t, v| t.first_poll_delay.get_or_insert_with(TaskTimes::default).p99_us = whole(v),
        },
    },
    /// Instrumentations folded into the name `other` because the name cap was reached.
    TaskNamesFolded {
        series: "task_names_folded", label: "folded", unit: Unit::Count("{task}"), kind: Counter,
        field: "task_names_folded",
        prometheus: Some("lagscope_task_names_folded_total"),
        otlp: Some("lagscope.task.names.folded"),
        source: Source::Process {
            read: |s| Some(s.task_names_folded as f64),
            write: |s, v| s.task_names_folded = whole(v),
        },
    },
}

/// The OTLP histogram of the lag probe's delays (seconds), exported beside
/// the quantile gauges by the agent and the collector alike; its buckets are
/// rebuilt from each sample's quantiles with [`LagStats::weighted_quantiles`].
pub const LAG_HISTOGRAM_OTLP: &str = "tokio.eventloop.delay";

/// Bucket bounds of [`LAG_HISTOGRAM_OTLP`], in seconds.
pub const LAG_HISTOGRAM_BOUNDS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Prefix of another runtime's series (`rt.<name>.lag_p99_us`); the main
/// runtime's have none.
pub const RUNTIME_SERIES_PREFIX: &str = "rt.";

/// Prefix of a user gauge's series (`gauge.db.pool.waiting`).
pub const GAUGE_SERIES_PREFIX: &str = "gauge.";

/// Name of the runtime passed to `lagscope::start`, whose series are not prefixed.
pub const MAIN_RUNTIME: &str = "main";

impl Metric {
    /// This metric's row of the table.
    pub fn def(self) -> &'static MetricDef {
        &TABLE[self as usize]
    }

    /// The main runtime's (or the process's) series name.
    pub fn series(self) -> &'static str {
        self.def().series
    }

    /// The series of worker `index` (for [`Source::Worker`] metrics).
    pub fn worker_series(self, index: usize) -> String {
        format!("{}.{index}", self.def().series)
    }

    /// The series of the futures instrumented as `name` (for [`Source::Task`] metrics).
    pub fn task_series(self, name: &str) -> String {
        task_series(self.def().series, name)
    }

    /// The value for one runtime, if it is a runtime metric and was measured.
    pub fn read_runtime(self, r: &RuntimeSample) -> Option<f64> {
        match self.def().source {
            Source::Runtime { read, .. } => read(r),
            _ => None,
        }
    }
}

/// `<series>.<task name>`: the name is the rest of the series name, dots and all.
fn task_series(series: &str, name: &str) -> String {
    format!("{series}.{name}")
}

/// The task name of a series of `metric` (`task_poll_us./orders` → `/orders`).
///
/// ```
/// use lagscope_wire::metric::{task_name_of, Metric};
/// let series = Metric::TaskPollTime.task_series("GET /a.b");
/// assert_eq!(task_name_of(Metric::TaskPollTime, &series), Some("GET /a.b"));
/// assert_eq!(task_name_of(Metric::TaskIdleTime, &series), None);
/// ```
pub fn task_name_of(metric: Metric, series: &str) -> Option<&str> {
    series
        .strip_prefix(metric.def().series)?
        .strip_prefix('.')
        .filter(|name| !name.is_empty())
}

/// Every (series name, value) of `sample` under lagscope's one vocabulary:
/// the main runtime's series bare, other runtimes' prefixed `rt.<name>.`,
/// workers' suffixed with their index, user gauges as `gauge.<name>`.
/// Unmeasured fields yield no point.
///
/// ```
/// let s = lagscope_wire::Sample::synthetic("svc", "a", 0, 0);
/// let series = lagscope_wire::metric::series_of(&s);
/// assert!(series.iter().any(|(name, v)| name == "busy_ratio.worker.1" && *v == 0.3));
/// ```
pub fn series_of(sample: &Sample) -> Vec<(String, f64)> {
    let mut out = Vec::with_capacity(TABLE.len() + 8);
    for r in &sample.runtimes {
        let prefix = if r.name == MAIN_RUNTIME {
            String::new()
        } else {
            format!("{RUNTIME_SERIES_PREFIX}{}.", r.name)
        };
        for def in TABLE {
            match def.source {
                Source::Runtime { read, .. } => {
                    if let Some(v) = read(r) {
                        out.push((format!("{prefix}{}", def.series), v));
                    }
                }
                Source::Worker { read } => {
                    for (i, w) in r.worker.iter().enumerate() {
                        if let Some(v) = read(w) {
                            out.push((format!("{prefix}{}.{i}", def.series), v));
                        }
                    }
                }
                Source::Process { .. } | Source::Task { .. } => {}
            }
        }
    }
    for def in TABLE {
        match def.source {
            Source::Process { read, .. } => {
                if let Some(v) = read(sample) {
                    out.push((def.series.to_string(), v));
                }
            }
            Source::Task { read, .. } => {
                for t in &sample.tasks {
                    if let Some(v) = read(t) {
                        out.push((task_series(def.series, &t.name), v));
                    }
                }
            }
            Source::Runtime { .. } | Source::Worker { .. } => {}
        }
    }
    for g in &sample.gauges {
        if let Some(v) = g.value {
            out.push((format!("{GAUGE_SERIES_PREFIX}{}", g.name), v));
        }
    }
    out
}

/// The table as Markdown: series, unit, Prometheus and OTLP names, meaning
/// (what `lagscope metrics` prints).
///
/// ```
/// let md = lagscope_wire::metric::markdown();
/// assert!(md.contains("| `lag_p99_us` | µs | `tokio_eventloop_delay_p99_seconds` | `tokio.eventloop.delay.p99` |"));
/// ```
pub fn markdown() -> String {
    let mut out =
        String::from("| series | unit | Prometheus | OTLP | meaning |\n|---|---|---|---|---|\n");
    let code = |name: Option<&str>| name.map_or_else(|| "—".to_string(), |n| format!("`{n}`"));
    for d in TABLE {
        let unit = match d.unit {
            Unit::Micros => "µs",
            Unit::Bytes => "bytes",
            Unit::BytesPerSecond => "bytes/s",
            Unit::Ratio => "ratio",
            Unit::Count(what) => what,
        };
        let series = match d.source {
            Source::Worker { .. } => format!("{}.<i>", d.series),
            Source::Task { .. } => format!("{}.<name>", d.series),
            _ => d.series.to_string(),
        };
        out.push_str(&format!(
            "| `{series}` | {unit} | {} | {} | {} |\n",
            code(d.prometheus),
            code(d.otlp),
            d.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn docs_are_one_sentence_without_leading_space() {
        for d in TABLE {
            assert!(
                !d.doc.starts_with(' ') && d.doc.ends_with('.'),
                "{:?}",
                d.doc
            );
        }
    }

    #[test]
    fn the_table_is_in_enum_order() {
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(TABLE[i].metric, *m);
            assert_eq!(m.def().metric, *m);
        }
    }

    #[test]
    fn names_are_unique_in_every_namespace() {
        let unique = |names: Vec<&str>| {
            let set: HashSet<_> = names.iter().collect();
            assert_eq!(set.len(), names.len(), "duplicate in {names:?}");
        };
        unique(TABLE.iter().map(|d| d.series).collect());
        unique(TABLE.iter().filter_map(|d| d.prometheus).collect());
        unique(TABLE.iter().filter_map(|d| d.otlp).collect());
        unique(TABLE.iter().map(|d| d.field).collect());
    }

    /// promtool's lint rules, for the names we can check without the tool:
    /// snake case, base units, `_total` on counters and only there.
    #[test]
    fn prometheus_names_follow_the_lint_rules() {
        for d in TABLE {
            let Some(name) = d.prometheus else { continue };
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_eq!(
                d.kind == Kind::Counter,
                name.ends_with("_total"),
                "{name}: counters and only counters end in _total"
            );
            for abbreviated in ["_us", "_ms", "_sec", "_kb", "_mb"] {
                assert!(
                    !name.contains(&format!("{abbreviated}_")) && !name.ends_with(abbreviated),
                    "{name}"
                );
            }
            let base = name.strip_suffix("_total").unwrap_or(name);
            match d.unit {
                Unit::Micros => assert!(base.ends_with("_seconds"), "{name}"),
                Unit::Bytes => assert!(base.ends_with("_bytes"), "{name}"),
                Unit::BytesPerSecond => assert!(base.ends_with("_bytes_per_second"), "{name}"),
                _ => {}
            }
            for reserved in ["_count", "_sum", "_bucket"] {
                assert!(!name.ends_with(reserved), "{name}");
            }
        }
    }

    #[test]
    fn series_names_carry_their_unit() {
        for d in TABLE {
            match d.unit {
                Unit::Micros => assert!(d.series.ends_with("_us"), "{}", d.series),
                Unit::Bytes => assert!(d.series.ends_with("_bytes"), "{}", d.series),
                _ => {}
            }
        }
    }

    #[test]
    fn every_metric_reads_a_value_from_a_fully_measured_sample() {
        let mut s = Sample::synthetic("svc", "a", 0, 0);
        s.runtimes[0].poll = Some(crate::PollStats {
            polls: 10,
            long_polls: 1,
            long_poll_threshold_us: 1000,
            p50_us: 10,
            p99_us: 100,
            max_us: 2000,
        });
        let series = series_of(&s);
        for d in TABLE {
            let name = match d.source {
                Source::Worker { .. } => format!("{}.0", d.series),
                Source::Task { .. } => d.metric.task_series(&s.tasks[0].name),
                _ => d.series.to_string(),
            };
            assert!(
                series.iter().any(|(n, _)| *n == name),
                "{:?} gives no value",
                d.metric
            );
        }
    }

    #[test]
    fn written_values_read_back() {
        let mut s = Sample::synthetic("svc", "a", 0, 0);
        for d in TABLE {
            let value = if d.unit == Unit::Ratio { 0.5 } else { 7.0 };
            match d.source {
                Source::Runtime { read, write } => {
                    let before = read(&s.runtimes[0]);
                    write(&mut s.runtimes[0], value);
                    let after = read(&s.runtimes[0]);
                    // A sum over workers is not written back.
                    assert!(
                        after == Some(value)
                            || (d.metric == Metric::LocalQueueDepth && after == before),
                        "{:?}: wrote {value}, read {after:?}",
                        d.metric
                    );
                }
                Source::Process { read, write } => {
                    write(&mut s, value);
                    assert_eq!(read(&s), Some(value), "{:?}", d.metric);
                }
                Source::Task { read, write } => {
                    write(&mut s.tasks[0], value);
                    assert_eq!(read(&s.tasks[0]), Some(value), "{:?}", d.metric);
                }
                Source::Worker { .. } => {}
            }
        }
    }

    /// Every numeric field of a sample is a metric in the table, or is named
    /// here as not one: a field added to the sample without a table row
    /// fails here rather than giving an empty chart.
    #[test]
    fn every_numeric_sample_field_is_a_metric_or_named_as_not_one() {
        const NOT_METRICS: &[&str] = &[
            "seq",
            "timestamp_ms",
            "interval_us",
            "runtimes[].lag.probes",
            "runtimes[].lag.pending_us",
            "runtimes[].lag.p999_us",
            "runtimes[].schedule_latency.probes",
            "runtimes[].schedule_latency.min_us",
            "runtimes[].schedule_latency.mean_us",
            "runtimes[].schedule_latency.p90_us",
            "runtimes[].schedule_latency.p999_us",
            "runtimes[].worker[].park_count",
            "runtimes[].worker[].polls",
            "runtimes[].worker[].steals",
            "runtimes[].worker[].long_polls",
            "runtimes[].worker[].max_poll_us",
            "runtimes[].poll.polls",
            "runtimes[].poll.long_poll_threshold_us",
            "runtimes[].poll.p50_us",
            "runtimes[].poll.p99_us",
            "memory.heap_peak_bytes",
            "memory.allocations",
            "memory.allocated_bytes",
            "process.cpu_user_us",
            "process.cpu_system_us",
            "tasks[].requests",
        ];
        let mut s = Sample::synthetic("svc", "a", 0, 0);
        s.runtimes[0].poll = Some(crate::PollStats {
            polls: 1,
            long_polls: 1,
            long_poll_threshold_us: 1,
            p50_us: 1,
            p99_us: 1,
            max_us: 1,
        });
        if let Some(l) = s.runtimes[0].lag.as_mut() {
            l.pending_us = Some(1);
        }
        for w in &mut s.runtimes[0].worker {
            w.long_polls = Some(1);
            w.max_poll_us = Some(1);
        }
        let json = serde_json::to_value(&s).expect("serializes");
        let mut fields = Vec::new();
        numeric_leaves("", &json, &mut fields);
        let claimed: HashSet<&str> = TABLE
            .iter()
            .map(|d| d.field)
            .chain(NOT_METRICS.iter().copied())
            .collect();
        for f in &fields {
            assert!(
                claimed.contains(f.as_str()),
                "sample field {f} is neither in the metric table nor in NOT_METRICS"
            );
        }
        for d in TABLE {
            assert!(
                fields.iter().any(|f| f == d.field),
                "{:?} names field {} the sample does not have",
                d.metric,
                d.field
            );
        }
    }

    fn numeric_leaves(path: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match v {
            serde_json::Value::Number(_) => out.push(path.to_string()),
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    numeric_leaves(&join(k), v, out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items.iter().take(1) {
                    numeric_leaves(&format!("{path}[]"), item, out);
                }
            }
            _ => {}
        }
    }
}
