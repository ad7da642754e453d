//! OTLP export with the OpenTelemetry SDK (cargo feature `otel`): the agent's
//! samples as `tokio.*` / `rust.*` / `process.*` metrics and its stalls as
//! `tokio.stall` spans, from the agent's own thread (`lagscope-otel`), never
//! from the host's runtime.
//!
//! The endpoint, headers, timeout and resource come from the standard
//! variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_*_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`); `OTEL_METRIC_EXPORT_INTERVAL`
//! (ms) sets the export period (default 10 s). The service name falls back to
//! lagscope's.
//!
//! Metrics are collected with a manual reader and exported here, stall spans
//! are handed straight to the span exporter: no SDK background threads, and
//! an export that fails is dropped and counted, never retried or queued.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use lagscope_wire::metric::{
    Kind, Source, LAG_HISTOGRAM_BOUNDS_S, LAG_HISTOGRAM_OTLP, MAIN_RUNTIME, TABLE,
};
use lagscope_wire::{Sample, StallEvent};
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use opentelemetry_sdk::Resource;

use crate::export::queue::BoundedQueue;

/// How the agent speaks OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtelProtocol {
    /// OTLP/HTTP with protobuf bodies (port 4318 by default).
    HttpProtobuf,
    /// OTLP/gRPC (port 4317 by default).
    Grpc,
}

/// Default export period.
const PERIOD: Duration = Duration::from_secs(10);

/// The exporter and its queue of samples.
pub(crate) struct OtelExporter {
    pub(crate) protocol: OtelProtocol,
    pub(crate) service: String,
    pub(crate) queue: Arc<BoundedQueue<Arc<Sample>>>,
    /// Exports that failed (metrics batches and span batches).
    pub(crate) failures: Arc<AtomicU64>,
}

/// A manual reader the provider and this exporter share.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Latest figures for the observable instruments.
type Latest = Arc<Mutex<Option<Arc<Sample>>>>;

impl OtelExporter {
    /// Runs until the queue is closed. Never panics into the host.
    pub(crate) fn run(self) {
        // gRPC needs a runtime of its own; OTLP/HTTP's blocking client must
        // not run inside one, so it gets none.
        let rt = match self.protocol {
            OtelProtocol::Grpc => match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => Some(rt),
                Err(e) => {
                    tracing::warn!(target: "lagscope", "cannot start the OTLP exporter: {e}");
                    return;
                }
            },
            OtelProtocol::HttpProtobuf => None,
        };
        let guard = rt.as_ref().map(|rt| rt.enter());
        let built = match self.protocol {
            OtelProtocol::Grpc => MetricExporter::builder()
                .with_tonic()
                .build()
                .and_then(|m| Ok((m, SpanExporter::builder().with_tonic().build()?))),
            OtelProtocol::HttpProtobuf => MetricExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()
                .and_then(|m| {
                    Ok((
                        m,
                        SpanExporter::builder()
                            .with_http()
                            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                            .build()?,
                    ))
                }),
        };
        drop(guard);
        let (metrics, mut spans) = match built {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target: "lagscope", "cannot build the OTLP exporter: {e}");
                return;
            }
        };
        let resource = if std::env::var_os("OTEL_SERVICE_NAME").is_some() {
            Resource::builder().build()
        } else {
            Resource::builder()
                .with_service_name(self.service.clone())
                .build()
        };
        spans.set_resource(&resource);
        let reader = SharedReader(Arc::new(ManualReader::builder().build()));
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .with_resource(resource)
            .build();
        let latest: Latest = Arc::default();
        let lag = instruments(&provider, &latest);
        let period = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(PERIOD, Duration::from_millis)
            .max(Duration::from_millis(100));
        let mut next = Instant::now() + period;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            let popped = self.queue.pop(wait.max(Duration::from_millis(1)));
            let closed = popped.is_none() && self.queue.is_closed();
            if let Some(sample) = popped {
                record_lag(&lag, &sample);
                let finished: Vec<&StallEvent> =
                    sample.stalls.iter().filter(|e| !e.ongoing).collect();
                if !finished.is_empty() {
                    let batch = finished.iter().map(|e| span_of(e)).collect();
                    if block_on(rt.as_ref(), spans.export(batch)).is_err() {
                        self.failures.fetch_add(1, Relaxed);
                    }
                }
                *latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(sample);
            }
            if closed || Instant::now() >= next {
                let mut rm = ResourceMetrics::default();
                if reader.collect(&mut rm).is_ok()
                    && block_on(rt.as_ref(), metrics.export(&rm)).is_err()
                {
                    self.failures.fetch_add(1, Relaxed);
                }
                next = Instant::now() + period;
            }
            if closed {
                break;
            }
        }
        let _ = provider.shutdown();
    }
}

/// Runs `f` to completion on the gRPC exporter's runtime, or without one for
/// OTLP/HTTP (whose blocking client must not run inside a runtime).
fn block_on<F: std::future::Future>(rt: Option<&tokio::runtime::Runtime>, f: F) -> F::Output {
    match rt {
        Some(rt) => rt.block_on(f),
        None => futures_executor::block_on(f),
    }
}

/// Registers the observable gauges (read from the latest sample at each
/// collection) and returns the lag histogram.
fn instruments(provider: &SdkMeterProvider, latest: &Latest) -> Histogram<f64> {
    let meter = provider.meter_with_scope(
        InstrumentationScope::builder("lagscope")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    );
    // Every metric of the table with an OTLP name, read from the latest
    // sample's main runtime (or the process) at each collection.
    for def in TABLE {
        let Some(name) = def.otlp else { continue };
        // One observation per runtime-less value, or per task name.
        let read = move |s: &Sample| -> Vec<(f64, Option<String>)> {
            match def.source {
                Source::Runtime { read, .. } => s
                    .runtime(MAIN_RUNTIME)
                    .and_then(read)
                    .map(|v| (def.unit.to_base(v), None))
                    .into_iter()
                    .collect(),
                Source::Process { read, .. } => read(s)
                    .map(|v| (def.unit.to_base(v), None))
                    .into_iter()
                    .collect(),
                Source::Task { read, .. } => s
                    .tasks
                    .iter()
                    .filter_map(|t| Some((def.unit.to_base(read(t)?), Some(t.name.clone()))))
                    .collect(),
                Source::Worker { .. } => Vec::new(),
            }
        };
        let latest = latest.clone();
        let observe = move || {
            latest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref()
                .map(read)
                .unwrap_or_default()
        };
        // Gauge and counter builders are different types with the same steps.
        macro_rules! register {
            ($builder:expr) => {{
                let _ = $builder
                    .with_unit(def.unit.otlp())
                    .with_description(def.doc)
                    .with_callback(move |o| {
                        for (v, task) in observe() {
                            match task {
                                Some(name) => o.observe(v, &[KeyValue::new("task", name)]),
                                None => o.observe(v, &[]),
                            }
                        }
                    })
                    .build();
            }};
        }
        match def.kind {
            Kind::Gauge => register!(meter.f64_observable_gauge(name)),
            Kind::Counter => register!(meter.f64_observable_counter(name)),
        }
    }
    meter
        .f64_histogram(LAG_HISTOGRAM_OTLP)
        .with_unit("s")
        .with_description("Scheduling delay of lagscope's probe task.")
        .with_boundaries(LAG_HISTOGRAM_BOUNDS_S.to_vec())
        .build()
}

/// Records a sample's probe delays into the histogram. A sample carries the
/// distribution as quantiles, so its probes are spread over them
/// ([`lagscope_wire::LagStats::weighted_quantiles`]): the buckets then hold the quantiles
/// the agent measured.
fn record_lag(h: &Histogram<f64>, s: &Sample) {
    let Some(lag) = s.runtime(MAIN_RUNTIME).and_then(|r| r.lag.as_ref()) else {
        return;
    };
    for (times, us) in lag.weighted_quantiles() {
        for _ in 0..times.min(10_000) {
            h.record(us as f64 / 1e6, &[]);
        }
    }
}

/// A stall as a `tokio.stall` span, the child of the request span it
/// stalled when the stall carries its `traceparent`.
fn span_of(e: &StallEvent) -> SpanData {
    let parent = e.trace_parent.as_deref().and_then(parse_traceparent);
    let trace_id = parent.map_or_else(
        || {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&e.started_ms.to_be_bytes());
            b[8..].copy_from_slice(&(u64::from(e.tid as u32) << 32 | e.id).to_be_bytes());
            TraceId::from_bytes(b)
        },
        |(t, _)| t,
    );
    let span_id = SpanId::from_bytes((e.id ^ (e.started_ms << 20) | 1).to_be_bytes());
    let start = UNIX_EPOCH + Duration::from_millis(e.started_ms);
    let mut attributes = vec![
        KeyValue::new("tokio.runtime", e.runtime.clone()),
        KeyValue::new("thread.id", i64::from(e.tid)),
        KeyValue::new("tokio.stall.detection", e.detection.name()),
    ];
    if let Some(f) = &e.blocking_function {
        attributes.push(KeyValue::new("code.function.name", f.clone()));
    }
    if let Some(stack) = e.stacks.first() {
        attributes.push(KeyValue::new("code.stacktrace", stack.frames.join("\n")));
    }
    if let Some(at) = &e.spawned_at {
        attributes.push(KeyValue::new("tokio.task.spawn_location", at.clone()));
    }
    if let Some(span) = &e.span {
        attributes.push(KeyValue::new("tracing.span", span.clone()));
    }
    SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent.map_or(SpanId::INVALID, |(_, s)| s),
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed("tokio.stall"),
        start_time: start,
        end_time: start + Duration::from_micros(e.duration_us),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("lagscope")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    }
}

/// `00-<32 hex>-<16 hex>-<2 hex>` → (trace id, span id).
fn parse_traceparent(tp: &str) -> Option<(TraceId, SpanId)> {
    let mut parts = tp.split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    (trace != TraceId::INVALID && span != SpanId::INVALID).then_some((trace, span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_and_invalid_ones_do_not() {
        let (t, s) = parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .expect("valid");
        assert_eq!(t.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.to_string(), "b7ad6b7169203331");
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none()
        );
        assert!(parse_traceparent("garbage").is_none());
    }
}
