//! Prometheus text exposition of every live or stale instance's latest sample.
//!
//! The sample's families come from the metric table
//! ([`lagscope_wire::metric`]): names, types and help text, values in seconds
//! and bytes, with `service`, `instance` and (per runtime) `runtime` and
//! (per worker) `worker` labels.

use std::fmt::Write;

use lagscope_wire::api::{CollectorStatus, Health};
use lagscope_wire::metric::{Source, TABLE};
use lagscope_wire::Sample;

use crate::listener::ConnectionStats;
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

/// Renders the exposition text.
pub fn render(
    latest: &[(&Sample, Health)],
    stalls: &[StallTotals<'_>],
    status: &CollectorStatus,
    record_dropped: u64,
    forwarder: Option<&crate::otlp::forward::Forwarder>,
    pyroscope: Option<&crate::pyroscope::Pusher>,
    connections: &[(&str, &ConnectionStats)],
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

    for def in TABLE {
        let Some(name) = def.prometheus else {
            continue;
        };
        let mut f = Family::start(&mut out, name, def.kind.prometheus(), def.doc);
        for s in &current {
            let instance = [("service", s.service.as_str()), ("instance", &s.instance)];
            match def.source {
                Source::Process { read, .. } => {
                    if let Some(v) = read(s) {
                        f.point(name, &instance, def.unit.to_base(v));
                    }
                }
                Source::Runtime { read, .. } => {
                    for r in &s.runtimes {
                        if let Some(v) = read(r) {
                            let labels = [instance[0], instance[1], ("runtime", &r.name)];
                            f.point(name, &labels, def.unit.to_base(v));
                        }
                    }
                }
                Source::Task { read, .. } => {
                    for t in &s.tasks {
                        if let Some(v) = read(t) {
                            let labels = [instance[0], instance[1], ("task", t.name.as_str())];
                            f.point(name, &labels, def.unit.to_base(v));
                        }
                    }
                }
                Source::Worker { read } => {
                    for r in &s.runtimes {
                        for (i, w) in r.worker.iter().enumerate() {
                            if let Some(v) = read(w) {
                                let worker = i.to_string();
                                let labels = [
                                    instance[0],
                                    instance[1],
                                    ("runtime", &r.name),
                                    ("worker", &worker),
                                ];
                                f.point(name, &labels, def.unit.to_base(v));
                            }
                        }
                    }
                }
            }
        }
    }
    let mut f = Family::start(
        &mut out,
        "lagscope_user_value",
        "gauge",
        "Values of the gauges a service registered with AgentHandle::gauge, by name.",
    );
    for s in &current {
        for g in &s.gauges {
            if let Some(v) = g.value {
                f.point(
                    "lagscope_user_value",
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
            "lagscope_collector_samples_refused_total",
            "counter",
            "Samples refused for being dated more than 10 minutes ahead of the collector's clock or before the history it keeps.",
            status.samples_refused as f64,
        ),
        (
            "lagscope_collector_input_cut_total",
            "counter",
            "Names, stacks and frames cut to the collector's size bounds.",
            status.input_cut as f64,
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
    use std::sync::atomic::Ordering::Relaxed;
    for (name, kind, help, get) in [
        (
            "lagscope_collector_connections_open",
            "gauge",
            "Connections open now, by port.",
            (|c: &ConnectionStats| c.open.load(Relaxed)) as fn(&ConnectionStats) -> u64,
        ),
        (
            "lagscope_collector_connections_refused_total",
            "counter",
            "Connections refused because the port's connection cap was reached.",
            |c| c.refused.load(Relaxed),
        ),
        (
            "lagscope_collector_connections_timed_out_total",
            "counter",
            "Connections closed for staying silent, sending a request too slowly or not reading the answer.",
            |c| c.timed_out.load(Relaxed),
        ),
        (
            "lagscope_collector_health_reserved_total",
            "counter",
            "GET /healthz answered from the places kept for it while the port's connection cap was reached.",
            |c| c.health_reserved.load(Relaxed),
        ),
    ] {
        let mut f = Family::start(&mut out, name, kind, help);
        for (port, stats) in connections {
            f.point(name, &[("port", port)], get(stats) as f64);
        }
    }
    if let Some(fw) = forwarder {
        counters(
            &mut out,
            &[
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
            ],
        );
    }
    if let Some(p) = pyroscope {
        counters(
            &mut out,
            &[
                (
                    "lagscope_collector_pyroscope_pushed_total",
                    "Profile windows pushed to the --pyroscope server.",
                    p.pushed.load(Relaxed),
                ),
                (
                    "lagscope_collector_pyroscope_dropped_total",
                    "Profile windows not pushed: the queue was full, or every try failed.",
                    p.dropped.load(Relaxed),
                ),
                (
                    "lagscope_collector_pyroscope_failures_total",
                    "Pushes to the --pyroscope server that failed (each retried window counts each try).",
                    p.failures.load(Relaxed),
                ),
            ],
        );
    }
    out
}

/// Label-less counters, one family each: (name, help, value).
fn counters(out: &mut String, families: &[(&str, &str, u64)]) {
    for &(name, help, v) in families {
        let mut f = Family::start(out, name, "counter", help);
        f.point(name, &[], v as f64);
    }
}

/// Says how many instances a bounded exposition left out.
pub fn omitted(out: &mut String, instances: usize, cap: usize) {
    let name = "lagscope_collector_metrics_instances_omitted";
    let help = format!(
        "Instances left out of this exposition (it covers at most {cap}; scrape /metrics?service=NAME per service)."
    );
    let mut f = Family::start(out, name, "gauge", &help);
    f.point(name, &[], instances as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::sample;

    fn status() -> CollectorStatus {
        CollectorStatus {
            agents_connected: 1,
            samples_ingested: 1,
            streams_rejected: 0,
            samples_refused: 0,
            input_cut: 0,
            recording: None,
            history_bytes: 10,
            history_bytes_limit: 100,
        }
    }

    #[test]
    fn exposition_has_labelled_families_and_escapes_values() {
        let mut s = sample("svc", "host:\"1\"", 0, 0);
        s.runtimes[0].blocking_threads = None;
        s.runtimes[0].lag = Some({
            let mut lag_stats = lagscope_wire::LagStats::default();
            lag_stats.probes = 1;
            lag_stats.min_us = 100;
            lag_stats.mean_us = 100;
            lag_stats.p50_us = 100;
            lag_stats.p90_us = 100;
            lag_stats.p99_us = 250_000;
            lag_stats.p999_us = 250_000;
            lag_stats.max_us = 300_000;
            lag_stats
        });
        let status = status();
        let stalls = [StallTotals {
            service: "svc",
            instance: "a",
            total: 3,
            finished_seconds: 0.5,
            ongoing: 1,
        }];
        let text = render(&[(&s, Health::Live)], &stalls, &status, 0, None, None, &[]);
        assert!(text.contains("# TYPE tokio_stalls_total counter"));
        assert!(
            text.contains(r#"tokio_stalls_total{service="svc",instance="a"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"tokio_stall_seconds_total{service="svc",instance="a"} 0.5"#));
        assert!(text.contains(r#"tokio_eventloop_delay_p99_seconds{service="svc",instance="host:\"1\"",runtime="main"} 0.25"#), "{text}");
        assert!(text.contains(r#"tokio_eventloop_delay_max_seconds{service="svc",instance="host:\"1\"",runtime="main"} 0.3"#));
        assert!(text.contains("# TYPE lagscope_collector_samples_ingested_total counter"));
        assert!(text.contains(r#"lagscope_instance_up{service="svc",instance="host:\"1\""} 1"#));
        // Unmeasured fields are absent, not zero.
        assert!(!text.contains("tokio_blocking_threads{"));
        assert!(text.contains(r#"tokio_worker_utilization{service="svc",instance="host:\"1\"",runtime="main",worker="1"}"#), "{text}");
    }

    #[test]
    fn every_table_metric_with_a_prometheus_name_is_exposed() {
        let mut s = lagscope_wire::Sample::synthetic("svc", "a", 0, 0);
        s.runtimes[0].poll = Some({
            let mut poll_stats = lagscope_wire::PollStats::default();
            poll_stats.max_us = 1;
            poll_stats.long_polls = 1;
            poll_stats
        });
        let status = status();
        let text = render(&[(&s, Health::Live)], &[], &status, 0, None, None, &[]);
        for def in TABLE {
            if let Some(name) = def.prometheus {
                assert!(
                    text.contains(&format!("# TYPE {name} {}", def.kind.prometheus())),
                    "{name}"
                );
                assert!(text.contains(&format!("\n{name}{{")), "no point for {name}");
            }
        }
    }
}
