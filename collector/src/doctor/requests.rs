//! Requests by name: how their time splits between polled, waiting for a
//! worker and idle, as evidence for the other rules and for a healthy
//! runtime whose requests wait outside it.

use super::*;

/// Per-name splits of the window with enough requests to judge, busiest first.
pub(crate) fn task_splits(w: &Window) -> Vec<TaskSplit> {
    lagscope_wire::tasks::task_splits(w.series.keys().map(String::as_str), |series| {
        w.series
            .get(series)
            .map(|p| p.iter().map(|&(t, mean, _)| (t, mean)).collect())
    })
    .into_iter()
    .filter(|t| t.requests >= TASK_MIN_REQUESTS && t.seconds >= TASK_MIN_SECONDS)
    .collect()
}

/// "requests to X spend 64 % of their time waiting for a worker", for the
/// name that spent the most time waiting, among those that wait a telling
/// share of theirs.
pub(super) fn waiting_for_workers(w: &Window) -> Option<String> {
    let t = task_splits(w)
        .into_iter()
        .filter(|t| t.scheduled >= TASK_SCHEDULED_SHARE)
        .max_by(|a, b| (a.scheduled * a.seconds).total_cmp(&(b.scheduled * b.seconds)))?;
    Some(format!(
        "requests to {} spend {:.0} % of their time waiting for a worker{}",
        t.name,
        t.scheduled * 100.0,
        t.scheduled_p99_us
            .map(|p| format!(" (p99 {} per request)", ms(p)))
            .unwrap_or_default()
    ))
}

/// "requests to X take 93 % of the time requests are polled", for the name
/// that keeps the workers busiest, when it takes most of it: on a saturated
/// runtime every name waits, and this one is what to make cheaper.
pub(super) fn polling_the_workers(w: &Window) -> Option<String> {
    let splits = task_splits(w);
    let polled = |t: &TaskSplit| t.poll * t.seconds;
    let all: f64 = splits.iter().map(polled).sum();
    let top = splits
        .iter()
        .max_by(|a, b| polled(a).total_cmp(&polled(b)))?;
    let share = polled(top) / all;
    if share.is_nan() || share < TASK_POLL_SHARE {
        return None;
    }
    let per_request = if top.requests > 0.0 {
        format!(" ({} per request)", ms(polled(top) * 1e6 / top.requests))
    } else {
        String::new()
    };
    Some(format!(
        "requests to {} take {:.0} % of the time requests are polled{per_request}",
        top.name,
        share * 100.0
    ))
}

/// "requests to X are idle 90 % …" for every name that mostly waits
/// outside the runtime.
pub(super) fn idle_requests(w: &Window) -> Vec<String> {
    task_splits(w)
        .into_iter()
        .filter(|t| t.idle >= TASK_IDLE_SHARE)
        .map(|t| {
            format!(
                "requests to {} are idle {:.0} % of their time (waiting on I/O, timers or other \
                 tasks); {:.0} % polled, {:.0} % waiting for a worker",
                t.name,
                t.idle * 100.0,
                t.poll * 100.0,
                t.scheduled * 100.0
            )
        })
        .collect()
}
