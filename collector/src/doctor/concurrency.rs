//! Tasks that pile up: `unbounded-concurrency`.

use super::*;

pub(super) fn unbounded_concurrency(w: &Window) -> Vec<Finding> {
    let tasks = w.means(Metric::AliveTasks);
    let (Some(rate), Some(&first), Some(&last)) = (
        w.slope_per_min(Metric::AliveTasks),
        tasks.first(),
        tasks.last(),
    ) else {
        return Vec::new();
    };
    if rate < TASKS_GROWTH_PER_MIN
        || last < TASKS_MIN_ALIVE
        || last < TASKS_GROWTH_FACTOR * first.max(1.0)
    {
        return Vec::new();
    }
    vec![Finding {
        category: Category::UnboundedConcurrency,
        severity: Severity::Critical,
        score: 70.0 + (rate / 10_000.0).min(20.0),
        summary: format!(
            "Tasks pile up: {first:.0} → {last:.0} alive (+{rate:.0}/min) with no limit"
        ),
        evidence: vec![
            format!("alive tasks {first:.0} → {last:.0}"),
            format!("growing {rate:.0} per minute"),
        ],
        recommendation: "Work is spawned faster than it finishes, with no bound: limit \
            concurrency with a tokio::sync::Semaphore (acquire before spawning) or a JoinSet \
            with a cap, and push back on callers (tower::limit::ConcurrencyLimit, a bounded \
            channel) instead of spawning a task per request."
            .into(),
        culprit: None,
    }]
}
