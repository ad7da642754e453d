//! OpenTelemetry metrics ↔ lagscope samples, both ways. Pure code.
//!
//! In: runtime metrics of other runtimes, mapped onto the same concepts as a
//! tokio service so the dashboard and the doctor treat them alike.
//!
//! | concept | Node.js | Go | lagscope (`tokio.*`) |
//! |---|---|---|---|
//! | lag (s) | `nodejs.eventloop.delay.{min,mean,p50,p90,p99,max}` | `go.schedule.duration` (histogram) | `tokio.eventloop.delay.{min,mean,p50,p90,p99,max}` |
//! | busy ratio | `nodejs.eventloop.utilization` | — | `tokio.eventloop.utilization` |
//! | heap (By) | `v8js.memory.heap.used` (summed over spaces) | `go.memory.used` | `rust.memory.heap.live` |
//! | RSS (By) | `process.memory.usage` | `process.memory.usage` | `process.memory.usage` |
//! | CPU (cores) | `process.cpu.utilization` | `process.cpu.utilization` | `process.cpu.utilization` |
//! | tasks | — | `go.goroutine.count` | `tokio.tasks.alive` |
//! | workers | 1 (the event loop) | `go.processor.limit` | `tokio.workers` |
//! | cores | `system.cpu.logical.count` | `system.cpu.logical.count` | `system.cpu.logical.count` |
//!
//! Out: every sample as `tokio.*` / `rust.*` / `process.*` metrics (the table
//! above, plus `tokio.queue.global.depth`, `tokio.blocking.*`), and every
//! finished stall as a `tokio.stall` span.

use std::collections::HashMap;

use crate::otlp::pb::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::pb::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::pb::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use crate::otlp::pb::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use crate::otlp::pb::resource::v1::Resource;
use crate::otlp::pb::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use lagscope_wire::metric::{
    Kind, Metric as LagscopeMetric, Source, LAG_HISTOGRAM_BOUNDS_S, LAG_HISTOGRAM_OTLP,
    MAIN_RUNTIME, TABLE,
};
use lagscope_wire::{LagStats, RuntimeSample, Sample, StallDetection, StallEvent};

/// One instance's sample from an OTLP export, and what its resource says.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The sample (its `seq` is set by the receiver).
    pub sample: Sample,
    /// `process.pid`.
    pub pid: u32,
    /// `host.name`.
    pub host: String,
    /// The runtime that sent it: `nodejs`, `go`, `tokio` or `otlp`.
    pub runtime: String,
}

/// Samples from an export request: one per resource that carries any of the
/// runtime metrics above (others are ignored and counted by the caller).
pub fn samples_from_request(req: &ExportMetricsServiceRequest, now_ms: u64) -> Vec<Mapped> {
    req.resource_metrics
        .iter()
        .filter_map(|rm| sample_from_resource(rm, now_ms))
        .collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn attr_string(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn point_value(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
}

/// The attribute naming the futures a `tokio.task.*` point describes.
pub const TASK_ATTRIBUTE: &str = "task";

/// Most task names taken from one resource's export; further names are
/// ignored, so a sender cannot grow the collector's series without bound.
pub const MAX_OTLP_TASK_NAMES: usize = 256;

/// Latest value per metric name, summed over the points of that time
/// (several attribute sets, like V8's heap spaces); histograms kept whole.
/// Points with a `task` attribute are kept per task name instead.
#[derive(Default)]
struct Values {
    numbers: HashMap<String, (u64, f64)>,
    histograms: HashMap<String, HistogramDataPoint>,
    /// (metric name, task name) → (time, value).
    tasks: HashMap<(String, String), (u64, f64)>,
    task_names: Vec<String>,
    newest_ns: u64,
}

impl Values {
    fn add_points(&mut self, name: &str, points: &[NumberDataPoint]) {
        let (tasks, points): (Vec<&NumberDataPoint>, Vec<&NumberDataPoint>) = points
            .iter()
            .partition(|p| attr(&p.attributes, TASK_ATTRIBUTE).is_some());
        for p in tasks {
            let (Some(task), Some(value)) =
                (attr_string(&p.attributes, TASK_ATTRIBUTE), point_value(p))
            else {
                continue;
            };
            if !self.task_names.contains(&task) {
                if self.task_names.len() >= MAX_OTLP_TASK_NAMES {
                    continue;
                }
                self.task_names.push(task.clone());
            }
            self.newest_ns = self.newest_ns.max(p.time_unix_nano);
            let e = self
                .tasks
                .entry((name.to_string(), task))
                .or_insert((0, 0.0));
            if p.time_unix_nano >= e.0 && value.is_finite() {
                *e = (p.time_unix_nano, value);
            }
        }
        let Some(latest) = points.iter().map(|p| p.time_unix_nano).max() else {
            return;
        };
        let sum: f64 = points
            .iter()
            .filter(|p| p.time_unix_nano == latest)
            .filter_map(|p| point_value(p))
            .sum();
        self.newest_ns = self.newest_ns.max(latest);
        let e = self.numbers.entry(name.to_string()).or_insert((0, 0.0));
        if latest >= e.0 {
            *e = (latest, sum);
        }
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.numbers
            .get(name)
            .map(|&(_, v)| v)
            .filter(|v| v.is_finite())
    }
}

fn sample_from_resource(rm: &ResourceMetrics, now_ms: u64) -> Option<Mapped> {
    let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
    let mut v = Values::default();
    for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
        match &m.data {
            Some(metric::Data::Gauge(g)) => v.add_points(&m.name, &g.data_points),
            Some(metric::Data::Sum(s)) => v.add_points(&m.name, &s.data_points),
            Some(metric::Data::Histogram(h)) => {
                if let Some(p) = h.data_points.iter().max_by_key(|p| p.time_unix_nano) {
                    v.newest_ns = v.newest_ns.max(p.time_unix_nano);
                    v.histograms.insert(m.name.clone(), p.clone());
                }
            }
            _ => {}
        }
    }
    let runtime = if v.get("nodejs.eventloop.utilization").is_some()
        || v.get("nodejs.eventloop.delay.p99").is_some()
    {
        "nodejs"
    } else if v.histograms.contains_key("go.schedule.duration")
        || v.get("go.goroutine.count").is_some()
    {
        "go"
    } else if v
        .get(LagscopeMetric::BusyRatio.def().otlp.unwrap_or_default())
        .is_some()
    {
        "tokio"
    } else if v
        .get(LagscopeMetric::Rss.def().otlp.unwrap_or_default())
        .is_some()
    {
        "otlp"
    } else {
        return None;
    };
    let service = attr_string(attrs, "service.name").unwrap_or_else(|| "unknown_service".into());
    let host = attr_string(attrs, "host.name").unwrap_or_default();
    let pid = attr_string(attrs, "process.pid")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let instance = attr_string(attrs, "service.instance.id").unwrap_or_else(|| {
        if host.is_empty() && pid == 0 {
            "otlp".into()
        } else {
            format!("{host}:{pid}")
        }
    });
    let timestamp_ms = if v.newest_ns > 0 {
        v.newest_ns / 1_000_000
    } else {
        now_ms
    };
    let mut sample = empty_sample(service, instance, timestamp_ms);
    // lagscope's own names, and the semantic conventions every runtime
    // shares (`process.*`, `system.*`), straight from the metric table.
    for def in TABLE {
        if let Some(value) = def.otlp.and_then(|name| v.get(name)) {
            write(&mut sample, def.metric, def.unit.from_base(value));
        }
    }
    // Per-name task metrics, in the order the names first appeared.
    for task in &v.task_names {
        let mut t = lagscope_wire::TaskSample::default();
        t.name = task.clone();
        for def in TABLE {
            if let (Source::Task { write, .. }, Some(name)) = (def.source, def.otlp) {
                if let Some(&(_, value)) = v.tasks.get(&(name.to_string(), task.clone())) {
                    write(&mut t, def.unit.from_base(value));
                }
            }
        }
        sample.tasks.push(t);
    }
    // Other runtimes' names for the same concepts.
    match runtime {
        "nodejs" => {
            for (suffix, metric) in [
                ("min", LagscopeMetric::LagMin),
                ("mean", LagscopeMetric::LagMean),
                ("p50", LagscopeMetric::LagP50),
                ("p90", LagscopeMetric::LagP90),
                ("p99", LagscopeMetric::LagP99),
                ("max", LagscopeMetric::LagMax),
            ] {
                if let Some(s) = v.get(&format!("nodejs.eventloop.delay.{suffix}")) {
                    write(&mut sample, metric, s * 1e6);
                }
            }
            if let Some(busy) = v.get("nodejs.eventloop.utilization") {
                write(&mut sample, LagscopeMetric::BusyRatio, busy);
            }
            if let Some(heap) = v.get("v8js.memory.heap.used") {
                write(&mut sample, LagscopeMetric::HeapLive, heap);
            }
        }
        "go" => {
            sample.runtimes[0].lag = v
                .histograms
                .get("go.schedule.duration")
                .and_then(lag_from_histogram);
            for (name, metric) in [
                ("go.processor.limit", LagscopeMetric::Workers),
                ("go.goroutine.count", LagscopeMetric::AliveTasks),
                ("go.memory.used", LagscopeMetric::HeapLive),
            ] {
                if let Some(value) = v.get(name) {
                    write(&mut sample, metric, value);
                }
            }
        }
        _ => {}
    }
    if let Some(lag) = &mut sample.runtimes[0].lag {
        fill_missing_quantiles(lag);
    }
    let m = &mut sample.memory;
    if m.external_bytes.is_none() {
        if let (Some(rss), Some(heap)) = (m.rss_bytes, m.heap_live_bytes) {
            m.external_bytes = Some(rss.saturating_sub(heap));
        }
    }
    Some(Mapped {
        sample,
        pid,
        host,
        runtime: runtime.to_string(),
    })
}

/// Sets `metric` (in its table unit) in the sample's one runtime or in the sample.
fn write(sample: &mut Sample, metric: LagscopeMetric, value: f64) {
    match metric.def().source {
        Source::Runtime { write, .. } => write(&mut sample.runtimes[0], value),
        Source::Process { write, .. } => write(sample, value),
        Source::Worker { .. } | Source::Task { .. } => {}
    }
}

/// A runtime reporting only some lag quantiles (Node.js sends p50/p99/max,
/// some exporters only p99): the missing ones are bounded by those given.
fn fill_missing_quantiles(lag: &mut LagStats) {
    let p99 = lag.p99_us;
    for q in [&mut lag.mean_us, &mut lag.p50_us, &mut lag.p90_us] {
        if *q == 0 {
            *q = p99;
        }
    }
    lag.p999_us = lag.p999_us.max(p99);
    lag.max_us = lag.max_us.max(lag.p999_us);
}

/// A sample with one runtime, every measurement absent or zero.
fn empty_sample(service: String, instance: String, timestamp_ms: u64) -> Sample {
    {
        let mut sample = Sample::default();
        sample.service = service;
        sample.instance = instance;
        sample.timestamp_ms = timestamp_ms;
        sample.runtimes = vec![{
            let mut runtime_sample = RuntimeSample::default();
            runtime_sample.name = MAIN_RUNTIME.into();
            runtime_sample.workers = 1;
            runtime_sample
        }];
        sample
    }
}

/// Quantiles of a histogram in seconds (bucket upper bounds, the last
/// bucket's from `max`), as lag in µs.
fn lag_from_histogram(h: &HistogramDataPoint) -> Option<LagStats> {
    if h.count == 0 || h.bucket_counts.is_empty() {
        return None;
    }
    let max_s = h
        .max
        .unwrap_or_else(|| h.explicit_bounds.last().copied().unwrap_or(0.0));
    let quantile = |q: f64| {
        let target = (q * h.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in h.bucket_counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return h
                    .explicit_bounds
                    .get(i)
                    .copied()
                    .unwrap_or(max_s)
                    .min(max_s);
            }
        }
        max_s
    };
    let us = |s: f64| (s * 1e6).max(0.0) as u64;
    Some({
        let mut lag_stats = LagStats::default();
        lag_stats.probes = h.count;
        lag_stats.min_us = us(h.min.unwrap_or(0.0));
        lag_stats.mean_us = h.sum.map_or(0, |s| us(s / h.count as f64));
        lag_stats.p50_us = us(quantile(0.5));
        lag_stats.p90_us = us(quantile(0.9));
        lag_stats.p99_us = us(quantile(0.99));
        lag_stats.p999_us = us(quantile(0.999));
        lag_stats.max_us = us(max_s);
        lag_stats
    })
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn resource(sample: &Sample) -> Resource {
    Resource {
        attributes: vec![
            kv(
                "service.name",
                any_value::Value::StringValue(sample.service.clone()),
            ),
            kv(
                "service.instance.id",
                any_value::Value::StringValue(sample.instance.clone()),
            ),
            kv(
                "process.runtime.name",
                any_value::Value::StringValue("tokio".into()),
            ),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "lagscope".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// Samples as OTLP metrics: every metric of the table that has an OTLP
/// name (gauges, counters as cumulative sums; base units), of the main
/// runtime and the process, plus the lag histogram.
pub fn request_from_samples(samples: &[&Sample]) -> ExportMetricsServiceRequest {
    let resource_metrics = samples
        .iter()
        .map(|s| {
            let t = s.timestamp_ms.saturating_mul(1_000_000);
            let runtime = s.runtime(MAIN_RUNTIME).or(s.runtimes.first());
            let mut metrics: Vec<Metric> = TABLE
                .iter()
                .filter_map(|def| {
                    let name = def.otlp?;
                    let point = |value: f64, attributes: Vec<KeyValue>| NumberDataPoint {
                        time_unix_nano: t,
                        value: Some(number_data_point::Value::AsDouble(def.unit.to_base(value))),
                        attributes,
                        ..Default::default()
                    };
                    let points: Vec<NumberDataPoint> = match def.source {
                        Source::Runtime { read, .. } => read(runtime?)
                            .map(|v| point(v, vec![]))
                            .into_iter()
                            .collect(),
                        Source::Process { read, .. } => {
                            read(s).map(|v| point(v, vec![])).into_iter().collect()
                        }
                        Source::Task { read, .. } => s
                            .tasks
                            .iter()
                            .filter_map(|task| {
                                let v = read(task)?;
                                Some(point(
                                    v,
                                    vec![kv(
                                        TASK_ATTRIBUTE,
                                        any_value::Value::StringValue(task.name.clone()),
                                    )],
                                ))
                            })
                            .collect(),
                        Source::Worker { .. } => Vec::new(),
                    };
                    if points.is_empty() {
                        return None;
                    }
                    Some(Metric {
                        name: name.into(),
                        description: def.doc.into(),
                        unit: def.unit.otlp().into(),
                        data: Some(match def.kind {
                            Kind::Gauge => metric::Data::Gauge(Gauge {
                                data_points: points,
                            }),
                            Kind::Counter => metric::Data::Sum(Sum {
                                data_points: points,
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                                is_monotonic: true,
                            }),
                        }),
                        ..Default::default()
                    })
                })
                .collect();
            if let Some(lag) = runtime.and_then(|r| r.lag.as_ref()) {
                metrics.push(lag_histogram(lag, t, s.interval_us));
            }
            ResourceMetrics {
                resource: Some(resource(s)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// The interval's probe delays as a delta histogram in seconds, rebuilt from
/// the sample's quantiles exactly as the agent's own OTLP export does.
fn lag_histogram(lag: &LagStats, t: u64, interval_us: u64) -> Metric {
    let bounds = LAG_HISTOGRAM_BOUNDS_S;
    let mut bucket_counts = vec![0u64; bounds.len() + 1];
    let (mut count, mut sum) = (0, 0.0);
    for (n, us) in lag.weighted_quantiles() {
        let secs = us as f64 / 1e6;
        let bucket = bounds
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(bounds.len());
        bucket_counts[bucket] += n;
        count += n;
        sum += secs * n as f64;
    }
    Metric {
        name: LAG_HISTOGRAM_OTLP.into(),
        description: "Scheduling delay of lagscope's probe task.".into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                start_time_unix_nano: t.saturating_sub(interval_us.saturating_mul(1000)),
                time_unix_nano: t,
                count,
                sum: Some(sum),
                bucket_counts,
                explicit_bounds: bounds.to_vec(),
                min: Some(lag.min_us as f64 / 1e6),
                max: Some(lag.max_us as f64 / 1e6),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    }
}

/// Finished stalls as `tokio.stall` spans (one trace each).
pub fn spans_from_stalls(sample: &Sample, stalls: &[&StallEvent]) -> ExportTraceServiceRequest {
    let spans = stalls
        .iter()
        .map(|e| {
            let start = e.started_ms.saturating_mul(1_000_000);
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&e.started_ms.to_be_bytes());
            trace_id[8..].copy_from_slice(&e.id.to_be_bytes());
            let mut attributes = vec![
                kv(
                    "tokio.runtime",
                    any_value::Value::StringValue(e.runtime.clone()),
                ),
                kv("thread.id", any_value::Value::IntValue(i64::from(e.tid))),
                kv(
                    "tokio.stall.detection",
                    any_value::Value::StringValue(e.detection.name().into()),
                ),
            ];
            if let Some(f) = &e.blocking_function {
                attributes.push(kv(
                    "code.function.name",
                    any_value::Value::StringValue(f.clone()),
                ));
            }
            if let Some(stack) = e.stacks.first() {
                attributes.push(kv(
                    "code.stacktrace",
                    any_value::Value::StringValue(stack.frames.join("\n")),
                ));
            }
            if let Some(at) = &e.spawned_at {
                attributes.push(kv(
                    "tokio.task.spawn_location",
                    any_value::Value::StringValue(at.clone()),
                ));
            }
            Span {
                trace_id: trace_id.to_vec(),
                span_id: e.id.to_be_bytes().to_vec(),
                name: "tokio.stall".into(),
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + e.duration_us.saturating_mul(1000),
                attributes,
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(sample)),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// `tokio.stall` spans back into stalls, by (service, instance) of their
/// resource (what [`spans_from_stalls`] writes; other spans are ignored).
pub fn stalls_from_spans(req: &ExportTraceServiceRequest) -> Vec<(String, String, StallEvent)> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let attrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let service =
            attr_string(attrs, "service.name").unwrap_or_else(|| "unknown_service".into());
        let instance = attr_string(attrs, "service.instance.id").unwrap_or_else(|| "otlp".into());
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            if span.name != "tokio.stall" {
                continue;
            }
            let a = &span.attributes[..];
            let id = span
                .span_id
                .as_slice()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let frames: Vec<String> = attr_string(a, "code.stacktrace")
                .map(|s| s.lines().map(String::from).collect())
                .unwrap_or_default();
            out.push((service.clone(), instance.clone(), {
                let mut stall_event = StallEvent::default();
                stall_event.id = id;
                stall_event.runtime =
                    attr_string(a, "tokio.runtime").unwrap_or_else(|| "main".into());
                stall_event.detection = StallDetection::from_name(
                    &attr_string(a, "tokio.stall.detection").unwrap_or_default(),
                );
                stall_event.tid = attr_string(a, "thread.id")
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                stall_event.started_ms = span.start_time_unix_nano / 1_000_000;
                stall_event.duration_us = span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano)
                    / 1000;
                stall_event.blocking_function = attr_string(a, "code.function.name");
                stall_event.stacks = if frames.is_empty() {
                    vec![]
                } else {
                    vec![{
                        let mut stall_stack = lagscope_wire::StallStack::default();
                        stall_stack.frames = frames;
                        stall_stack.count = 1;
                        stall_stack
                    }]
                };
                stall_event.spawned_at = attr_string(a, "tokio.task.spawn_location");
                stall_event
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(name: &str, points: &[(f64, &str)]) -> Metric {
        Metric {
            name: name.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: points
                    .iter()
                    .map(|&(v, space)| NumberDataPoint {
                        time_unix_nano: 1_800_000_000_000_000_000,
                        value: Some(number_data_point::Value::AsDouble(v)),
                        attributes: vec![kv(
                            "v8js.heap.space.name",
                            any_value::Value::StringValue(space.into()),
                        )],
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        }
    }

    fn request(resource_attrs: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource_attrs,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn node_runtime_metrics_become_a_sample() {
        let req = request(
            vec![
                kv("service.name", any_value::Value::StringValue("web".into())),
                kv("process.pid", any_value::Value::IntValue(42)),
                kv("host.name", any_value::Value::StringValue("h".into())),
            ],
            vec![
                gauge("nodejs.eventloop.delay.p50", &[(0.011, "")]),
                gauge("nodejs.eventloop.delay.p99", &[(0.25, "")]),
                gauge("nodejs.eventloop.delay.max", &[(0.3, "")]),
                gauge("nodejs.eventloop.utilization", &[(0.4, "")]),
                gauge("v8js.memory.heap.used", &[(1e6, "new"), (3e6, "old")]),
                gauge("process.memory.usage", &[(50e6, "")]),
            ],
        );
        let m = &samples_from_request(&req, 0)[0];
        assert_eq!(m.runtime, "nodejs");
        assert_eq!(
            (m.sample.service.as_str(), m.sample.instance.as_str()),
            ("web", "h:42")
        );
        let r = &m.sample.runtimes[0];
        let lag = r.lag.as_ref().expect("lag");
        assert_eq!(
            (lag.p50_us, lag.p99_us, lag.max_us),
            (11_000, 250_000, 300_000)
        );
        assert!((r.busy_ratio - 0.4).abs() < 1e-9);
        assert_eq!(m.sample.memory.heap_live_bytes, Some(4_000_000));
        assert_eq!(m.sample.memory.external_bytes, Some(46_000_000));
        assert_eq!(m.sample.timestamp_ms, 1_800_000_000_000);
    }

    #[test]
    fn go_scheduling_latency_comes_from_its_histogram() {
        let h = Metric {
            name: "go.schedule.duration".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    count: 100,
                    sum: Some(0.5),
                    bucket_counts: vec![90, 9, 1],
                    explicit_bounds: vec![0.001, 0.01],
                    max: Some(0.2),
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        };
        let req = request(vec![], vec![h, gauge("go.goroutine.count", &[(300.0, "")])]);
        let m = &samples_from_request(&req, 5)[0];
        assert_eq!(m.runtime, "go");
        let lag = m.sample.runtimes[0].lag.as_ref().expect("lag");
        assert_eq!(
            (lag.p50_us, lag.p90_us, lag.p99_us, lag.max_us),
            (1000, 1000, 10_000, 200_000)
        );
        assert_eq!(m.sample.runtimes[0].alive_tasks, 300);
        assert_eq!(m.sample.instance, "otlp");
    }

    #[test]
    fn unrelated_metrics_are_ignored() {
        let req = request(vec![], vec![gauge("http.server.requests", &[(1.0, "")])]);
        assert!(samples_from_request(&req, 0).is_empty());
    }

    #[test]
    fn lagscope_samples_round_trip_through_otlp() {
        let mut s = Sample::synthetic("svc", "a:1", 3, 1_800_000_000_000);
        s.process.host_cores = 4;
        let req = request_from_samples(&[&s]);
        let back = &samples_from_request(&req, 0)[0];
        assert_eq!(back.runtime, "tokio");
        assert_eq!(back.sample.service, "svc");
        assert_eq!(back.sample.instance, "a:1");
        let (a, b) = (&s.runtimes[0], &back.sample.runtimes[0]);
        assert_eq!(
            a.lag.as_ref().map(|l| l.p99_us),
            b.lag.as_ref().map(|l| l.p99_us)
        );
        assert_eq!(a.workers, b.workers);
        assert_eq!(s.memory.heap_live_bytes, back.sample.memory.heap_live_bytes);
        assert_eq!(back.sample.process.host_cores, 4);
    }

    /// Every metric the table gives an OTLP name leaves through
    /// `request_from_samples` and comes back through `samples_from_request`
    /// with the same value: neither side can drop or rename one.
    #[test]
    fn every_table_metric_with_an_otlp_name_round_trips() {
        let mut s = Sample::synthetic("svc", "a:1", 3, 1_800_000_000_000);
        s.runtimes[0].poll = Some({
            let mut poll_stats = lagscope_wire::PollStats::default();
            poll_stats.max_us = 1500;
            poll_stats.long_polls = 3;
            poll_stats
        });
        s.dropped_samples = 5;
        let back = &samples_from_request(&request_from_samples(&[&s]), 0)[0].sample;
        for def in TABLE.iter().filter(|d| d.otlp.is_some()) {
            let (sent, got) = match def.source {
                Source::Runtime { read, .. } => (read(&s.runtimes[0]), read(&back.runtimes[0])),
                Source::Process { read, .. } => (read(&s), read(back)),
                Source::Task { read, .. } => (read(&s.tasks[0]), read(&back.tasks[0])),
                Source::Worker { .. } => continue,
            };
            assert!(
                sent.is_some(),
                "{:?} unmeasured in the test sample",
                def.metric
            );
            assert_eq!(sent, got, "{:?}", def.metric);
        }
    }

    #[test]
    fn the_lag_histogram_holds_every_probe_of_the_interval() {
        let s = Sample::synthetic("svc", "a:1", 3, 1_800_000_000_000);
        let req = request_from_samples(&[&s]);
        let h = req.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == LAG_HISTOGRAM_OTLP)
            .expect("histogram");
        let Some(metric::Data::Histogram(h)) = &h.data else {
            panic!("not a histogram")
        };
        let p = &h.data_points[0];
        assert_eq!(p.count, 100);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 100);
    }

    #[test]
    fn stalls_become_spans_with_the_blocking_function() {
        let s = Sample::synthetic("svc", "a:1", 3, 1_800_000_000_000);
        let mut stall = StallEvent::default();
        stall.id = 7;
        stall.runtime = "main".into();
        stall.detection = StallDetection::PollHooks;
        stall.tid = 9;
        stall.started_ms = 1_800_000_000_000;
        stall.duration_us = 250_000;
        stall.blocking_function = Some("svc::checkout".into());
        stall.stacks = vec![{
            let mut stall_stack = lagscope_wire::StallStack::default();
            stall_stack.frames = vec!["std::thread::sleep".into(), "svc::checkout".into()];
            stall_stack.count = 2;
            stall_stack
        }];
        let req = spans_from_stalls(&s, &[&stall]);
        let back = stalls_from_spans(&req);
        assert_eq!(
            back[0].2.blocking_function.as_deref(),
            Some("svc::checkout")
        );
        assert_eq!(back[0].2.duration_us, 250_000);
        assert_eq!((back[0].0.as_str(), back[0].1.as_str()), ("svc", "a:1"));
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, "tokio.stall");
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            250_000_000
        );
        assert!(span
            .attributes
            .iter()
            .any(|a| a.key == "code.function.name"));
    }
}
