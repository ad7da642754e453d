//! Where instrumented requests spend their time over a window, per name:
//! the split between waiting for a worker (scheduled), running (poll) and
//! waiting on anything else (idle), from the cumulative `task_*_us` series.
//! The doctor, the HTML report and the dashboard read it the same way.

use crate::metric::{task_name_of, Metric};
use crate::sample::shares;

/// One name's time over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSplit {
    /// The task name (`GET /orders/:id`).
    pub name: String,
    /// Requests completed in the window.
    pub requests: f64,
    /// Share of the accounted time spent waiting for a worker (0..1).
    pub scheduled: f64,
    /// Share spent being polled.
    pub poll: f64,
    /// Share spent idle (I/O, timers, other tasks).
    pub idle: f64,
    /// Time accounted in the window, in seconds (all three states).
    pub seconds: f64,
    /// Seconds between the first and last reading of the name in the
    /// window (the span `requests` were counted over).
    pub span_s: f64,
    /// Highest per-interval p99 of a request's scheduled time, µs.
    pub scheduled_p99_us: Option<f64>,
    /// Highest per-interval p99 of a request's poll time, µs.
    pub poll_p99_us: Option<f64>,
    /// Highest per-interval p99 of a request's idle time, µs.
    pub idle_p99_us: Option<f64>,
}

/// Every name found among `series_names`, from `points(series)` (each
/// point `(t_ms, value)`), busiest first. Names whose counters did not move
/// in the window are left out.
///
/// ```
/// use lagscope_wire::metric::Metric;
/// use lagscope_wire::tasks::task_splits;
/// let name = "GET /a";
/// let points = |series: &str| -> Option<Vec<(u64, f64)>> {
///     let m = [
///         (Metric::TaskScheduledTime, [0.0, 600_000.0]),
///         (Metric::TaskPollTime, [0.0, 300_000.0]),
///         (Metric::TaskIdleTime, [0.0, 100_000.0]),
///         (Metric::TaskCompleted, [10.0, 110.0]),
///     ];
///     let (_, v) = m.iter().find(|(m, _)| m.task_series(name) == series)?;
///     Some(vec![(0, v[0]), (1000, v[1])])
/// };
/// let names = [Metric::TaskScheduledTime.task_series(name)];
/// let split = &task_splits(names.iter().map(String::as_str), points)[0];
/// assert_eq!((split.requests, split.seconds, split.span_s), (100.0, 1.0, 1.0));
/// assert!((split.scheduled - 0.6).abs() < 1e-9);
/// ```
pub fn task_splits<'a>(
    series_names: impl IntoIterator<Item = &'a str>,
    points: impl Fn(&str) -> Option<Vec<(u64, f64)>>,
) -> Vec<TaskSplit> {
    let growth = |metric: Metric, name: &str| -> f64 {
        let p = points(&metric.task_series(name)).unwrap_or_default();
        match (p.first(), p.last()) {
            // A restarted agent starts its counters again from zero.
            (Some(&(_, first)), Some(&(_, last))) if last >= first => last - first,
            (Some(_), Some(&(_, last))) => last,
            _ => 0.0,
        }
    };
    let span_s = |name: &str| -> f64 {
        let p = points(&Metric::TaskCompleted.task_series(name)).unwrap_or_default();
        match (p.first(), p.last()) {
            (Some(&(first, _)), Some(&(last, _))) => last.saturating_sub(first) as f64 / 1000.0,
            _ => 0.0,
        }
    };
    let highest = |metric: Metric, name: &str| -> Option<f64> {
        points(&metric.task_series(name))?
            .iter()
            .map(|&(_, v)| v)
            .reduce(f64::max)
    };
    let mut out: Vec<TaskSplit> = series_names
        .into_iter()
        .filter_map(|series| task_name_of(Metric::TaskScheduledTime, series))
        .filter_map(|name| {
            let (s, p, i) = (
                growth(Metric::TaskScheduledTime, name),
                growth(Metric::TaskPollTime, name),
                growth(Metric::TaskIdleTime, name),
            );
            let (scheduled, poll, idle) = shares(s, p, i)?;
            Some(TaskSplit {
                name: name.to_string(),
                requests: growth(Metric::TaskCompleted, name),
                scheduled,
                poll,
                idle,
                seconds: (s + p + i) / 1e6,
                span_s: span_s(name),
                scheduled_p99_us: highest(Metric::TaskScheduledP99, name),
                poll_p99_us: highest(Metric::TaskPollP99, name),
                idle_p99_us: highest(Metric::TaskIdleP99, name),
            })
        })
        .collect();
    out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    out
}
