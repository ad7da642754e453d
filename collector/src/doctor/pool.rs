//! The blocking pool: `blocking-pool-saturation`, from its queue
//! (tokio_unstable) or the wait of lagscope's probe job (any tokio).

use super::*;

pub(super) fn blocking_pool(w: &Window) -> Vec<Finding> {
    // With tokio_unstable: the pool's queue. On any tokio: how long
    // lagscope's no-op spawn_blocking probe waited for a thread.
    let queue =
        median(&w.means(Metric::BlockingQueueDepth)).zip(max(&w.maxes(Metric::BlockingQueueDepth)));
    let wait = median(&w.means(Metric::BlockingWait)).zip(max(&w.maxes(Metric::BlockingWait)));
    let queued = queue
        .is_some_and(|(median, max)| median >= BLOCKING_QUEUE_MEDIAN && max >= BLOCKING_QUEUE_MAX);
    let waiting = wait.is_some_and(|(median, max)| {
        median >= BLOCKING_WAIT_MEDIAN_US && max >= BLOCKING_WAIT_MAX_US
    });
    if !queued && !waiting {
        return Vec::new();
    }
    let mut evidence = Vec::new();
    if let Some((median, max)) = queue {
        evidence.push(format!("blocking queue median {median:.0}, max {max:.0}"));
    }
    if let Some((median, max)) = wait {
        evidence.push(format!(
            "a no-op spawn_blocking job waited up to {} for a thread (median {} per interval)",
            ms(max),
            ms(median)
        ));
    }
    let threads = median(&w.means(Metric::BlockingThreads));
    if let Some(threads) = threads {
        let idle = median(&w.means(Metric::IdleBlockingThreads)).unwrap_or(0.0);
        evidence.push(format!(
            "{threads:.0} blocking threads, {idle:.0} idle (median)"
        ));
    }
    let critical = queue.is_some_and(|(m, _)| m >= BLOCKING_QUEUE_MAX)
        || wait.is_some_and(|(m, _)| m >= BLOCKING_WAIT_CRITICAL_US);
    let score = 60.0
        + queue
            .map_or(0.0, |(m, _)| (m / 10.0).min(20.0))
            .max(wait.map_or(0.0, |(m, _)| (m / 100_000.0).min(20.0)));
    let summary = match (queue.filter(|_| queued), wait) {
        (Some((median, max)), _) => {
            format!("spawn_blocking jobs wait for a thread: queue median {median:.0}, max {max:.0}")
        }
        (None, Some((_, max))) => format!(
            "spawn_blocking jobs wait for a thread: up to {} before they start",
            ms(max)
        ),
        (None, None) => "spawn_blocking jobs wait for a thread".into(),
    };
    let all = threads.map_or_else(|| "the".to_string(), |t| format!("{t:.0}"));
    vec![Finding {
        category: Category::BlockingPoolSaturation,
        severity: if critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
        score,
        summary,
        evidence,
        recommendation: format!(
            "All {all} blocking threads are busy and jobs queue behind them: raise \
             max_blocking_threads on the runtime builder, bound submissions with a \
             tokio::sync::Semaphore, and move CPU-bound jobs to a rayon pool sized to the cores."
        ),
        culprit: None,
    }]
}
