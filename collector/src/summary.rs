//! A plain-text summary of a window of history: per instance, lag p99/max,
//! busy ratio, memory and its trend. Printed by `demo --headless` and
//! `replay --headless`.

use std::fmt::Write;

use lagscope_wire::api::Series;
use lagscope_wire::metric::Metric;

use crate::store::Store;

/// Headline figures of one instance over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceReport {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance: String,
    /// Samples in the window.
    pub samples: usize,
    /// Worst per-interval lag p99, µs.
    pub lag_p99_us: Option<f64>,
    /// Worst lag, µs.
    pub lag_max_us: Option<f64>,
    /// Mean busy ratio.
    pub busy_ratio: Option<f64>,
    /// Latest Rust heap live bytes.
    pub heap_live_bytes: Option<f64>,
    /// Heap (or, without heap counting, RSS) growth per minute.
    pub memory_growth_per_min: Option<f64>,
    /// Latest RSS.
    pub rss_bytes: Option<f64>,
}

/// Reports for every instance with samples in `[from_ms, to_ms]`.
pub fn report(store: &Store, from_ms: u64, to_ms: u64) -> Vec<InstanceReport> {
    let names = [
        Metric::LagP99,
        Metric::LagMax,
        Metric::BusyRatio,
        Metric::HeapLive,
        Metric::Rss,
    ]
    .map(|m| m.series().to_string());
    store
        .instance_ids()
        .into_iter()
        .filter_map(|(service, instance)| {
            let r = store.series(&service, &instance, &names, from_ms, to_ms, None)?;
            let get = |m: Metric| r.series.iter().find(|s| s.name == m.series());
            let max = |s: Option<&Series>| {
                s.and_then(|s| s.points.iter().map(|p| p.max).reduce(f64::max))
            };
            let last = |s: Option<&Series>| s.and_then(|s| s.points.last().map(|p| p.mean));
            let samples = get(Metric::BusyRatio).map_or(0, |s| s.points.len());
            if samples == 0 {
                return None;
            }
            let busy = get(Metric::BusyRatio)
                .map(|s| s.points.iter().map(|p| p.mean).sum::<f64>() / s.points.len() as f64);
            let growth = get(Metric::HeapLive)
                .and_then(|s| s.slope_per_min(from_ms, to_ms))
                .or_else(|| get(Metric::Rss).and_then(|s| s.slope_per_min(from_ms, to_ms)));
            Some(InstanceReport {
                service: service.clone(),
                instance: instance.clone(),
                samples,
                lag_p99_us: max(get(Metric::LagP99)),
                lag_max_us: max(get(Metric::LagMax)),
                busy_ratio: busy,
                heap_live_bytes: last(get(Metric::HeapLive)),
                memory_growth_per_min: growth,
                rss_bytes: last(get(Metric::Rss)),
            })
        })
        .collect()
}

/// The reports as an aligned text table.
pub fn render(reports: &[InstanceReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<18} {:>7} {:>11} {:>11} {:>6} {:>10} {:>13} {:>10}",
        "service", "instance", "samples", "lag p99", "lag max", "busy", "heap", "growth/min", "rss"
    );
    let ms = |us: Option<f64>| us.map_or("-".into(), |v| format!("{:.1}ms", v / 1000.0));
    let mib = |b: Option<f64>| b.map_or("-".into(), |v| format!("{:.1}MiB", v / 1048576.0));
    for r in reports {
        let _ = writeln!(
            out,
            "{:<22} {:<18} {:>7} {:>11} {:>11} {:>6} {:>10} {:>13} {:>10}",
            r.service,
            r.instance,
            r.samples,
            ms(r.lag_p99_us),
            ms(r.lag_max_us),
            r.busy_ratio
                .map_or("-".into(), |b| format!("{:.0}%", b * 100.0)),
            mib(r.heap_live_bytes),
            r.memory_growth_per_min
                .map_or("-".into(), |g| format!("{:+.2}MiB", g / 1048576.0)),
            mib(r.rss_bytes),
        );
    }
    out
}
