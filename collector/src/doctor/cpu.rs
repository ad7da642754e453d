//! Saturated workers: `cpu-saturation`, or `underused-cores` when the
//! runtime has fewer workers than the host has cores.

use super::*;

pub(super) fn cpu(w: &Window) -> Vec<Finding> {
    let Some(busy) = median(&w.means(Metric::BusyRatio)) else {
        return Vec::new();
    };
    if busy < BUSY_SATURATED || w.workers == 0 {
        return Vec::new();
    }
    let cpu = median(&w.means(Metric::CpuRatio));
    // The service's own functions, charged with the library code they
    // call, say what to make cheaper; a window recorded without them, or a
    // profile with no user frame, falls back to the functions on top.
    let top = if w.top_user.is_empty() {
        &w.top
    } else {
        &w.top_user
    };
    let share = |t: &TopFunction| 100.0 * t.self_samples as f64 / w.profile_samples.max(1) as f64;
    // The first three, but none below 1 % after the first.
    let hot = top
        .iter()
        .take(3)
        .enumerate()
        .filter(|(i, t)| *i == 0 || share(t) >= 1.0)
        .map(|(_, t)| format!("{} ({:.0} %)", t.name, share(t)))
        .collect::<Vec<_>>();
    let mut evidence = vec![
        format!("busy ratio median {:.0} %", busy * 100.0),
        format!(
            "{} workers on a host with {} cores",
            w.workers, w.host_cores
        ),
    ];
    if let Some(c) = cpu {
        evidence.push(format!("process CPU median {:.2} cores", c));
    }
    if !hot.is_empty() {
        evidence.push(format!("hottest functions: {}", hot.join(", ")));
    }
    evidence.extend(polling_the_workers(w));
    evidence.extend(waiting_for_workers(w));
    let severity = if busy >= BUSY_CRITICAL {
        Severity::Critical
    } else {
        Severity::Warning
    };
    if w.workers < w.host_cores {
        return vec![Finding {
            category: Category::UnderusedCores,
            severity,
            score: 55.0 + busy * 10.0,
            summary: format!(
                "{} worker{} busy while {} of the host's {} cores idle",
                w.workers,
                if w.workers == 1 { " is" } else { "s are" },
                w.host_cores - w.workers,
                w.host_cores
            ),
            evidence,
            recommendation: format!(
                "The runtime has fewer workers than cores: raise worker_threads on the tokio \
                 runtime builder to {} (the default is one per core), or run more processes \
                 behind a load balancer.",
                w.host_cores
            ),
            // The fix is configuration, not a function.
            culprit: None,
        }];
    }
    vec![Finding {
        category: Category::CpuSaturation,
        severity,
        score: 55.0 + busy * 10.0,
        summary: format!(
            "All {} workers are busy (median {:.0} %): the service is CPU-bound",
            w.workers,
            busy * 100.0
        ),
        evidence,
        recommendation: format!(
            "Add cores or processes, or make the hot code cheaper{}; `lagscope flamegraph` shows \
             where the time goes.",
            top.first()
                .map(|t| format!(" (start with {})", t.name))
                .unwrap_or_default()
        ),
        culprit: top.first().map(|t| t.name.clone()),
    }]
}
