//! Prometheus text exposition of every live or stale instance's latest sample.
//!
//! Names follow the `tokio.*` / `process.*` vocabulary (documented in the
//! README), in seconds and bytes, with `service`, `instance` and `runtime` labels.

use std::fmt::Write;

use lagscope_wire::api::{CollectorStatus, Health};
use lagscope_wire::Sample;

use crate::store::StallTotals;

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn start<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn point(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

type Getter = fn(&Sample, usize) -> Option<f64>;
type ProcessGetter = fn(&Sample) -> Option<f64>;

/// Per-runtime gauges: (name, help, getter(sample, runtime index)).
const RUNTIME_GAUGES: &[(&str, &str, Getter)] = &[
    (
        "tokio_eventloop_delay_max_seconds",
        "Largest scheduling delay of the lag probe in the last interval.",
        |s, r| Some(s.runtimes[r].lag.as_ref()?.max_us as f64 / 1e6),
    ),
    (
        "tokio_eventloop_utilization",
        "Fraction of the interval the workers were busy (0..1).",
        |s, r| Some(s.runtimes[r].busy_ratio),
    ),
    ("tokio_workers", "Worker threads.", |s, r| {
        Some(s.runtimes[r].workers as f64)
    }),
    ("tokio_tasks_alive", "Tasks alive.", |s, r| {
        Some(s.runtimes[r].alive_tasks as f64)
    }),
    (
        "tokio_global_queue_depth",
        "Tasks in the global (inject) queue.",
        |s, r| Some(s.runtimes[r].global_queue_depth as f64),
    ),
    (
        "tokio_local_queue_depth",
        "Tasks in the workers' local queues (tokio_unstable).",
        |s, r| {
            s.runtimes[r]
                .worker
                .iter()
                .map(|w| w.local_queue_depth)
                .sum::<Option<usize>>()
                .map(|v| v as f64)
        },
    ),
    (
        "tokio_blocking_threads",
        "Threads in the blocking pool (tokio_unstable).",
        |s, r| s.runtimes[r].blocking_threads.map(|v| v as f64),
    ),
    (
        "tokio_blocking_idle_threads",
        "Idle threads in the blocking pool (tokio_unstable).",
        |s, r| s.runtimes[r].idle_blocking_threads.map(|v| v as f64),
    ),
    (
        "tokio_blocking_queue_depth",
        "Tasks waiting for the blocking pool (tokio_unstable).",
        |s, r| s.runtimes[r].blocking_queue_depth.map(|v| v as f64),
    ),
    (
        "tokio_poll_duration_max_seconds",
        "Longest task poll in the last interval (poll hooks).",
        |s, r| Some(s.runtimes[r].poll.as_ref()?.max_us as f64 / 1e6),
    ),
];

/// Per-process gauges.
const PROCESS_GAUGES: &[(&str, &str, ProcessGetter)] = &[
    (
        "process_memory_heap_live_bytes",
        "Bytes live in the Rust heap (counting allocator).",
        |s| s.memory.heap_live_bytes.map(|v| v as f64),
    ),
    ("process_memory_rss_bytes", "Resident set size.", |s| {
        s.memory.rss_bytes.map(|v| v as f64)
    }),
    (
        "process_memory_allocator_held_bytes",
        "Bytes the C allocator holds from the OS.",
        |s| s.memory.allocator_held_bytes.map(|v| v as f64),
    ),
    (
        "process_memory_external_bytes",
        "RSS the Rust allocator never saw (C libraries, mmap, stacks).",
        |s| s.memory.external_bytes.map(|v| v as f64),
    ),
    (
        "process_memory_alloc_rate_bytes_per_second",
        "Bytes allocated per second.",
        |s| s.memory.alloc_rate,
    ),
    (
        "process_cpu_utilization",
        "CPU used as a fraction of one core.",
        |s| s.process.cpu_ratio,
    ),
    ("process_threads", "Threads in the process.", |s| {
        s.process.threads.map(|v| v as f64)
    }),
    ("process_open_fds", "Open file descriptors.", |s| {
        s.process.open_fds.map(|v| v as f64)
    }),
    (
        "lagscope_agent_dropped_samples_total",
        "Samples the agent dropped because its exporter fell behind.",
        |s| Some(s.dropped_samples as f64),
    ),
];

/// Renders the exposition text.
pub fn render(
    latest: &[(&Sample, Health)],
    stalls: &[StallTotals<'_>],
    status: &CollectorStatus,
    record_dropped: u64,
    forwarder: Option<&crate::otlp::forward::Forwarder>,
) -> String {
    let mut out = String::new();
    let current: Vec<&Sample> = latest
        .iter()
        .filter(|(_, h)| *h != Health::Gone)
        .map(|(s, _)| *s)
        .collect();

    let mut f = Family::start(
        &mut out,
        "lagscope_instance_up",
        "gauge",
        "1 if the instance reports on schedule, 0 if it is late or disconnected.",
    );
    for (s, h) in latest.iter().filter(|(_, h)| *h != Health::Gone) {
        f.point(
            "lagscope_instance_up",
            &[("service", &s.service), ("instance", &s.instance)],
            if *h == Health::Live { 1.0 } else { 0.0 },
        );
    }

    let mut f = Family::start(
        &mut out,
        "tokio_eventloop_delay_seconds",
        "gauge",
        "Scheduling delay of the lag probe over the last interval, by quantile.",
    );
    for s in &current {
        for r in &s.runtimes {
            if let Some(lag) = &r.lag {
                for (q, v) in [
                    ("0.5", lag.p50_us),
                    ("0.9", lag.p90_us),
                    ("0.99", lag.p99_us),
                    ("0.999", lag.p999_us),
                ] {
                    f.point(
                        "tokio_eventloop_delay_seconds",
                        &[
                            ("service", s.service.as_str()),
                            ("instance", &s.instance),
                            ("runtime", &r.name),
                            ("quantile", q),
                        ],
                        v as f64 / 1e6,
                    );
                }
            }
        }
    }
    for (name, help, get) in RUNTIME_GAUGES {
        let mut f = Family::start(&mut out, name, "gauge", help);
        for s in &current {
            for (i, r) in s.runtimes.iter().enumerate() {
                if let Some(v) = get(s, i) {
                    f.point(
                        name,
                        &[
                            ("service", &s.service),
                            ("instance", &s.instance),
                            ("runtime", &r.name),
                        ],
                        v,
                    );
                }
            }
        }
    }
    let mut f = Family::start(
        &mut out,
        "tokio_worker_utilization",
        "gauge",
        "Fraction of the interval one worker was busy.",
    );
    for s in &current {
        for r in &s.runtimes {
            for (i, w) in r.worker.iter().enumerate() {
                let worker = i.to_string();
                f.point(
                    "tokio_worker_utilization",
                    &[
                        ("service", &s.service),
                        ("instance", &s.instance),
                        ("runtime", &r.name),
                        ("worker", &worker),
                    ],
                    w.busy_ratio,
                );
            }
        }
    }
    for (name, help, get) in PROCESS_GAUGES {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let mut f = Family::start(&mut out, name, kind, help);
        for s in &current {
            if let Some(v) = get(s) {
                f.point(
                    name,
                    &[("service", &s.service), ("instance", &s.instance)],
                    v,
                );
            }
        }
    }
    let mut f = Family::start(
        &mut out,
        "lagscope_gauge",
        "gauge",
        "User gauges registered with AgentHandle::gauge.",
    );
    for s in &current {
        for g in &s.gauges {
            if let Some(v) = g.value {
                f.point(
                    "lagscope_gauge",
                    &[
                        ("service", &s.service),
                        ("instance", &s.instance),
                        ("name", &g.name),
                    ],
                    v,
                );
            }
        }
    }
    for (name, kind, help, get) in [
        (
            "tokio_stalls_total",
            "counter",
            "Worker stalls (one poll longer than the stall threshold) seen.",
            (|t: &StallTotals<'_>| t.total as f64) as fn(&StallTotals<'_>) -> f64,
        ),
        (
            "tokio_stall_seconds_total",
            "counter",
            "Time workers spent in finished stalls.",
            |t| t.finished_seconds,
        ),
        (
            "tokio_stalls_ongoing",
            "gauge",
            "Workers stalled now.",
            |t| t.ongoing as f64,
        ),
    ] {
        let mut f = Family::start(&mut out, name, kind, help);
        for t in stalls {
            f.point(
                name,
                &[("service", t.service), ("instance", t.instance)],
                get(t),
            );
        }
    }
    for (name, kind, help, v) in [
        (
            "lagscope_collector_agents_connected",
            "gauge",
            "Agents connected now.",
            status.agents_connected as f64,
        ),
        (
            "lagscope_collector_samples_ingested_total",
            "counter",
            "Samples stored since start.",
            status.samples_ingested as f64,
        ),
        (
            "lagscope_collector_streams_rejected_total",
            "counter",
            "Agent streams refused or closed for bad input.",
            status.streams_rejected as f64,
        ),
        (
            "lagscope_collector_history_bytes",
            "gauge",
            "Estimated bytes of history held.",
            status.history_bytes as f64,
        ),
        (
            "lagscope_collector_history_bytes_limit",
            "gauge",
            "Cap on history bytes.",
            status.history_bytes_limit as f64,
        ),
        (
            "lagscope_collector_record_dropped_total",
            "counter",
            "Samples not written to the recording because the writer fell behind.",
            record_dropped as f64,
        ),
    ] {
        let mut f = Family::start(&mut out, name, kind, help);
        f.point(name, &[], v);
    }
    if let Some(fw) = forwarder {
        use std::sync::atomic::Ordering::Relaxed;
        for (name, help, v) in [
            (
                "lagscope_collector_otlp_exported_total",
                "Samples forwarded to the --otlp-export endpoint.",
                fw.exported.load(Relaxed),
            ),
            (
                "lagscope_collector_otlp_dropped_total",
                "Samples not forwarded: the queue was full or the endpoint failed.",
                fw.dropped.load(Relaxed),
            ),
        ] {
            let mut f = Family::start(&mut out, name, "counter", help);
            f.point(name, &[], v as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::sample;

    #[test]
    fn exposition_has_labelled_families_and_escapes_values() {
        let mut s = sample("svc", "host:\"1\"", 0, 0);
        s.runtimes[0].blocking_threads = None;
        s.runtimes[0].lag = Some(lagscope_wire::LagStats {
            probes: 1,
            pending_us: None,
            min_us: 100,
            mean_us: 100,
            p50_us: 100,
            p90_us: 100,
            p99_us: 250_000,
            p999_us: 250_000,
            max_us: 300_000,
        });
        let status = CollectorStatus {
            agents_connected: 1,
            samples_ingested: 1,
            streams_rejected: 0,
            history_bytes: 10,
            history_bytes_limit: 100,
        };
        let stalls = [StallTotals {
            service: "svc",
            instance: "a",
            total: 3,
            finished_seconds: 0.5,
            ongoing: 1,
        }];
        let text = render(&[(&s, Health::Live)], &stalls, &status, 0, None);
        assert!(text.contains("# TYPE tokio_stalls_total counter"));
        assert!(
            text.contains(r#"tokio_stalls_total{service="svc",instance="a"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"tokio_stall_seconds_total{service="svc",instance="a"} 0.5"#));
        assert!(text.contains(r#"tokio_eventloop_delay_seconds{service="svc",instance="host:\"1\"",runtime="main",quantile="0.99"} 0.25"#), "{text}");
        assert!(text.contains(r#"tokio_eventloop_delay_max_seconds{service="svc",instance="host:\"1\"",runtime="main"} 0.3"#));
        assert!(text.contains("# TYPE lagscope_collector_samples_ingested_total counter"));
        assert!(text.contains(r#"lagscope_instance_up{service="svc",instance="host:\"1\""} 1"#));
        // Unmeasured fields are absent, not zero.
        assert!(!text.contains("tokio_blocking_threads{"));
    }
}
