//! Which numeric series a sample feeds, under lagscope's one vocabulary.
//!
//! The main runtime's series have bare names (`lag_p99_us`, `busy_ratio`);
//! other runtimes' are prefixed `rt.<name>.`; user gauges are `gauge.<name>`.

use lagscope_wire::{RuntimeSample, Sample};

/// Name of the main runtime, whose series are not prefixed.
pub const MAIN_RUNTIME: &str = "main";

/// Every (series name, value) pair of `sample`. Absent fields yield no point.
pub fn series_of(sample: &Sample) -> Vec<(String, f64)> {
    let mut out = Vec::with_capacity(32);
    for r in &sample.runtimes {
        let prefix = if r.name == MAIN_RUNTIME {
            String::new()
        } else {
            format!("rt.{}.", r.name)
        };
        runtime_series(&prefix, r, &mut out);
    }
    let m = &sample.memory;
    let mut put = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            out.push((name.to_string(), v));
        }
    };
    put("heap_live_bytes", m.heap_live_bytes.map(|v| v as f64));
    put("rss_bytes", m.rss_bytes.map(|v| v as f64));
    put("external_bytes", m.external_bytes.map(|v| v as f64));
    put("alloc_rate", m.alloc_rate);
    put("cpu_ratio", sample.process.cpu_ratio);
    put("threads", sample.process.threads.map(|v| v as f64));
    put("dropped_samples", Some(sample.dropped_samples as f64));
    for g in &sample.gauges {
        if let Some(v) = g.value {
            out.push((format!("gauge.{}", g.name), v));
        }
    }
    out
}

fn runtime_series(prefix: &str, r: &RuntimeSample, out: &mut Vec<(String, f64)>) {
    let mut put = |name: &str, v: Option<f64>| {
        if let Some(v) = v {
            out.push((format!("{prefix}{name}"), v));
        }
    };
    if let Some(lag) = &r.lag {
        put("lag_p50_us", Some(lag.p50_us as f64));
        put("lag_p99_us", Some(lag.p99_us as f64));
        put("lag_max_us", Some(lag.max_us as f64));
    }
    put("busy_ratio", Some(r.busy_ratio));
    put("alive_tasks", Some(r.alive_tasks as f64));
    put("global_queue_depth", Some(r.global_queue_depth as f64));
    let local: Option<usize> = r.worker.iter().map(|w| w.local_queue_depth).sum();
    put("local_queue_depth", local.map(|v| v as f64));
    put(
        "blocking_queue_depth",
        r.blocking_queue_depth.map(|v| v as f64),
    );
    put("blocking_threads", r.blocking_threads.map(|v| v as f64));
    put(
        "idle_blocking_threads",
        r.idle_blocking_threads.map(|v| v as f64),
    );
    if let Some(p) = &r.poll {
        put("poll_max_us", Some(p.max_us as f64));
        put("long_polls", Some(p.long_polls as f64));
    }
    for (i, w) in r.worker.iter().enumerate() {
        put(&format!("busy_ratio.worker.{i}"), Some(w.busy_ratio));
    }
}
