//! `lagscope doctor`: what is wrong with a service, in words. Pure rules over
//! a window of one instance's series, stalls and CPU profile; no I/O, so
//! they are unit-tested on recorded windows (`collector/tests/windows/`).
//!
//! Thresholds start from clinic.js Doctor's (event-loop delay median ≥ 10 ms
//! or max ≥ 100 ms; CPU ≥ 95 %) and are adapted where lagscope sees more:
//!
//! | category | fires when | why this threshold |
//! |---|---|---|
//! | `event-loop-blocking` | stalls add up to ≥ 1 % of the window, or one lasts ≥ 100 ms; without stall data, lag p99 median ≥ 10 ms or max ≥ 100 ms with workers not saturated | a stall is already ≥ 20 ms in one poll; 1 % is ~10 ms per second, clinic's lag median; 100 ms is clinic's max |
//! | `lock-contention` | as above, and ≥ 30 % of the stalled time is threads waiting in a mutex | waiting on a lock needs a different fix than slow code |
//! | `cpu-saturation` | busy ratio median ≥ 0.9 on every core the host has | tokio's busy ratio includes polling overhead clinic's CPU figure lacks; 0.9 warns, 0.95 (clinic) is critical |
//! | `underused-cores` | busy ratio median ≥ 0.9 with fewer workers than host cores | the cluster/worker-threads lesson: the fix is more workers, not less code |
//! | `blocking-pool-saturation` | blocking queue median ≥ 1 and max ≥ 10 (tokio_unstable) | any sustained queue means jobs wait for a thread |
//! | `heap-leak` | Rust heap grows ≥ 5 MiB/min, ≥ 20 % over the window, rising in ≥ 70 % of steps | steady growth, not a burst |
//! | `external-memory` | RSS − Rust heap grows ≥ 5 MiB/min while the heap grows < 1 MiB/min or a tenth of that growth | Node's "external" memory: C libraries, mmap |
//! | `unbounded-concurrency` | alive tasks grow ≥ 1000/min to ≥ 1000 and at least double | a task per request with no limit |

use std::collections::BTreeMap;

use lagscope_wire::api::slope;
use lagscope_wire::metric::Metric;
use lagscope_wire::tasks::TaskSplit;

pub use lagscope_wire::doctor::{Category, Diagnosis, Finding, Severity, Window};
#[cfg(test)]
use lagscope_wire::{StallDetection, StallEvent};

const MIB: f64 = 1024.0 * 1024.0;

/// Runs every rule over `w`.
pub fn diagnose(w: &Window) -> Diagnosis {
    let mut findings: Vec<Finding> = Vec::new();
    let stalled = stall_findings(w);
    let blocked = !stalled.is_empty();
    // A few short stalls (no critical one) beside saturated workers — a
    // worker descheduled on a loaded host looks like that — do not hide the
    // CPU verdict; the scores rank the two.
    let marginal = stalled.iter().all(|f| f.severity != Severity::Critical);
    findings.extend(stalled);
    if !blocked {
        findings.extend(lag_without_stalls(w));
    }
    if !blocked || marginal {
        findings.extend(cpu(w));
    }
    findings.extend(blocking_pool(w));
    findings.extend(heap_leak(w));
    findings.extend(external_memory(w));
    findings.extend(c_heap_growth(w));
    findings.extend(unbounded_concurrency(w));
    // What hurts users now comes first; the score ranks within a severity.
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.score.total_cmp(&a.score))
    });
    if findings.is_empty() {
        findings.push(healthy(w));
    }
    Diagnosis {
        service: w.service.clone(),
        instance: w.instance.clone(),
        from_ms: w.from_ms,
        to_ms: w.to_ms,
        findings,
    }
}

/// Figures the rules read off a window.
trait Stats {
    fn means(&self, metric: Metric) -> Vec<f64>;
    fn maxes(&self, metric: Metric) -> Vec<f64>;
    fn slope_per_min(&self, metric: Metric) -> Option<f64>;
    fn window_ms(&self) -> f64;
}

impl Stats for Window {
    fn means(&self, metric: Metric) -> Vec<f64> {
        self.series
            .get(metric.series())
            .map(|p| p.iter().map(|&(_, mean, _)| mean).collect())
            .unwrap_or_default()
    }

    fn maxes(&self, metric: Metric) -> Vec<f64> {
        self.series
            .get(metric.series())
            .map(|p| p.iter().map(|&(_, _, max)| max).collect())
            .unwrap_or_default()
    }

    /// Least-squares slope of the series' means, per minute.
    fn slope_per_min(&self, metric: Metric) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .series
            .get(metric.series())?
            .iter()
            .map(|&(t, mean, _)| (t as f64 / 60_000.0, mean))
            .collect();
        slope(&pts)
    }

    fn window_ms(&self) -> f64 {
        (self.to_ms.saturating_sub(self.from_ms)).max(1) as f64
    }
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(s[s.len() / 2])
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().max_by(f64::total_cmp)
}

/// Share of steps in which the series rose.
fn rising_share(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let up = v.windows(2).filter(|p| p[1] > p[0]).count();
    up as f64 / (v.len() - 1) as f64
}

fn ms(us: f64) -> String {
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else {
        format!("{:.1} ms", us / 1e3)
    }
}

/// Whether a stack (innermost first) is a thread waiting for a lock. std's
/// `Mutex::lock_contended` is often inlined in release builds, leaving its
/// futex wait — glibc's generic `syscall` — right at the leaf.
fn is_lock_wait(frames: &[String]) -> bool {
    frames
        .first()
        .is_some_and(|leaf| leaf == "syscall" || leaf.contains("futex"))
        || frames.iter().any(|f| {
            f.contains("Mutex::lock_contended")
                || f.contains("lock_slow")
                || (f.contains("mutex") && f.contains("futex"))
        })
}

/// Waiting for a lock must be at least this share of the stalled time to
/// call it contention…
const LOCK_WAIT_FLOOR: f64 = 0.1;
/// …and waiting plus working under the lock this share.
const LOCK_STALL_SHARE: f64 = 0.5;
/// Waiting alone this share is contention whoever holds the lock.
const LOCK_WAIT_ALONE: f64 = 0.3;

fn stall_findings(w: &Window) -> Vec<Finding> {
    if w.stalls.is_empty() {
        return Vec::new();
    }
    let total_us: f64 = w.stalls.iter().map(|s| s.duration_us as f64).sum();
    let longest = w.stalls.iter().map(|s| s.duration_us).max().unwrap_or(0) as f64;
    let share = total_us / 1000.0 / w.window_ms();
    if share < 0.01 && longest < 100_000.0 {
        return Vec::new();
    }
    let waiting_us: f64 = w
        .stalls
        .iter()
        .filter(|s| s.stacks.first().is_some_and(|st| is_lock_wait(&st.frames)))
        .map(|s| s.duration_us as f64)
        .sum();
    // The function to blame: most stalled time among stalls not waiting on a lock.
    let mut by_function: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for s in &w.stalls {
        let waiting = s.stacks.first().is_some_and(|st| is_lock_wait(&st.frames));
        if waiting {
            continue;
        }
        // One inlined function is one culprit, whatever line it stopped on.
        let name = s
            .blocking_function
            .as_deref()
            .map_or("(unknown)", lagscope_wire::frames::function_name);
        by_function
            .entry(name)
            .or_default()
            .push(s.duration_us as f64);
    }
    // Most stalled time first.
    let mut by_function: Vec<(&str, f64, Vec<f64>)> = by_function
        .into_iter()
        .map(|(name, us)| (name, us.iter().sum(), us))
        .collect();
    by_function.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let culprit = by_function
        .first()
        .map(|(name, _, _)| name.to_string())
        .filter(|n| n != "(unknown)");
    let culprit_stack: Vec<String> = culprit
        .as_deref()
        .and_then(|c| {
            w.stalls.iter().find(|s| {
                s.blocking_function
                    .as_deref()
                    .map(lagscope_wire::frames::function_name)
                    == Some(c)
            })
        })
        .and_then(|s| s.stacks.first())
        .map(|st| st.frames.clone())
        .unwrap_or_default();
    let severity = if longest >= 100_000.0 || share >= 0.05 {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let mut evidence = vec![
        format!(
            "{} stalls of one poll ≥ the threshold, {} in all ({:.1} % of the window)",
            w.stalls.len(),
            ms(total_us),
            share * 100.0
        ),
        format!("longest stall {}", ms(longest)),
    ];
    for (name, total, each) in by_function.iter().take(3) {
        evidence.push(format!(
            "{} stalls of typically {} in {name} ({} in all)",
            each.len(),
            ms(median(each).unwrap_or(0.0)),
            ms(*total)
        ));
    }
    if let Some(p99) = median(&w.means(Metric::LagP99)) {
        evidence.push(format!("lag p99 median {}", ms(p99)));
    }
    let lock_share = waiting_us / total_us.max(1.0);
    // The functions that waited for a lock, and the stalled time of tasks
    // working inside one of them (holding the lock) rather than waiting.
    let lockers: Vec<&str> = w
        .stalls
        .iter()
        .filter(|s| s.stacks.first().is_some_and(|st| is_lock_wait(&st.frames)))
        .filter_map(|s| s.blocking_function.as_deref())
        .collect();
    let held_us: f64 = w
        .stalls
        .iter()
        .filter(|s| !s.stacks.first().is_some_and(|st| is_lock_wait(&st.frames)))
        .filter(|s| {
            s.stacks
                .first()
                .is_some_and(|st| st.frames.iter().any(|f| lockers.contains(&f.as_str())))
        })
        .map(|s| s.duration_us as f64)
        .sum();
    let held_share = held_us / total_us.max(1.0);
    // Lock contention when tasks wait for a lock that other stalled tasks
    // hold while they work — judged on both together, so the verdict does not
    // flip with the split between waiting and working from run to run — or
    // when waiting alone is most of the stalled time.
    let contended = (lock_share >= LOCK_WAIT_FLOOR && lock_share + held_share >= LOCK_STALL_SHARE)
        || lock_share >= LOCK_WAIT_ALONE;
    if waiting_us > 0.0 {
        evidence.push(format!(
            "{:.0} % of the stalled time is tasks waiting for a mutex{}",
            lock_share * 100.0,
            if held_us > 0.0 {
                format!(
                    ", {:.0} % tasks working while they hold it",
                    held_share * 100.0
                )
            } else {
                String::new()
            }
        ));
    }
    if contended {
        let holder = culprit.as_deref().unwrap_or("the code that holds it");
        return vec![Finding {
            category: Category::LockContention,
            severity,
            score: 50.0 + share * 100.0 + lock_share * 20.0,
            summary: format!(
                "Workers block on a std::sync::Mutex held across slow work: {:.0} % of stalled \
                 time waiting for it, {:.0} % working while holding it",
                lock_share * 100.0,
                held_share * 100.0
            ),
            evidence,
            recommendation: format!(
                "A std::sync::Mutex blocks the worker thread while it waits. Keep critical sections \
                 short and never hold the guard across slow work (here {holder}); use \
                 tokio::sync::Mutex if it must be held across .await, or move the slow part out \
                 of the lock or into tokio::task::spawn_blocking."
            ),
            culprit,
        }];
    }
    // A library that blocked is named with the code that called it.
    let caller = culprit
        .as_deref()
        .and_then(|c| lagscope_wire::frames::caller_outside(&culprit_stack, c));
    let place = match (&culprit, &caller) {
        (Some(c), Some(by)) => format!("{c} (called from {by})"),
        (Some(c), None) => c.clone(),
        _ => "the stalled task".to_string(),
    };
    let mut recommendation = recommend_for_stack(&place, &culprit_stack);
    let named = caller.as_deref().or(culprit.as_deref());
    if let Some(note) = named.and_then(|n| inlined_note(n, &w.capabilities)) {
        evidence.push(note.clone());
        recommendation.push(' ');
        recommendation.push_str(&note);
    }
    vec![Finding {
        category: Category::EventLoopBlocking,
        severity,
        score: 40.0 + share * 100.0 + (longest / 10_000.0).min(30.0),
        summary: format!(
            "Blocking code in async tasks stalls the runtime: {} in {place}",
            ms(total_us)
        ),
        evidence,
        recommendation,
        culprit: caller.or(culprit),
    }]
}

/// What to say when the function blamed is an async block or closure
/// (`…::{{closure}}`) of a build without line tables: the async fns and
/// small functions the compiler inlined into it have no symbol of their own,
/// so the code that blocked may be one of them.
fn inlined_note(function: &str, capabilities: &[String]) -> Option<String> {
    let function = function.split(" (").next().unwrap_or(function);
    if !function.ends_with("{{closure}}") || capabilities.iter().any(|c| c == "line-tables") {
        return None;
    }
    Some(format!(
        "The blocking code may be inlined into {function}: an async fn or a small function \
         the compiler inlined has no symbol of its own. Build with \
         `[profile.release] debug = \"limited\"` to name it, or \"line-tables-only\" for its \
         file:line; neither changes the generated code."
    ))
}

/// Advice for a stall, from what its stack shows.
fn recommend_for_stack(place: &str, frames: &[String]) -> String {
    let has = |needle: &str| frames.iter().any(|f| f.contains(needle));
    // std::thread::sleep is often inlined down to libc's nanosleep.
    if has("std::thread::sleep") || has("nanosleep") {
        format!(
            "{place} calls std::thread::sleep inside async code: use tokio::time::sleep(..).await."
        )
    } else if has("fancy_regex") || has("regex::") {
        format!(
            "{place} runs a regex that backtracks for a long time: bound the input, rewrite the \
             pattern without nested quantifiers, or use the linear-time `regex` crate; run \
             untrusted patterns in tokio::task::spawn_blocking."
        )
    } else if has("serde_json") {
        format!(
            "{place} parses large JSON on a worker: do it in tokio::task::spawn_blocking (or a \
             rayon pool), or stream the body."
        )
    } else if has("std::fs") || has("std::io::Read") || has("read_to_end") {
        format!(
            "{place} does synchronous file I/O on a worker: use tokio::fs or move it into \
             tokio::task::spawn_blocking."
        )
    } else {
        format!(
            "{place} runs long on a worker: move the CPU-bound work to \
             tokio::task::spawn_blocking or a rayon pool, or break it up with \
             tokio::task::yield_now().await."
        )
    }
}

/// Requests and accounted time a task name needs in the window before the
/// doctor speaks of its split.
const TASK_MIN_REQUESTS: f64 = 10.0;
const TASK_MIN_SECONDS: f64 = 0.1;
/// A name whose requests wait this share of their time for a worker points
/// at the runtime (saturated or blocked).
const TASK_SCHEDULED_SHARE: f64 = 0.3;
/// A name whose requests are idle this share of their time waits on
/// something outside the runtime.
const TASK_IDLE_SHARE: f64 = 0.8;
/// A name taking this share of all requests' poll time is named as what
/// keeps the workers busy.
const TASK_POLL_SHARE: f64 = 0.5;

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
fn waiting_for_workers(w: &Window) -> Option<String> {
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
fn polling_the_workers(w: &Window) -> Option<String> {
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
fn idle_requests(w: &Window) -> Vec<String> {
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

fn lag_without_stalls(w: &Window) -> Vec<Finding> {
    let p99 = median(&w.means(Metric::LagP99));
    let lag_max = max(&w.maxes(Metric::LagMax));
    let busy = median(&w.means(Metric::BusyRatio)).unwrap_or(0.0);
    let (Some(p99), Some(lag_max)) = (p99, lag_max) else {
        return Vec::new();
    };
    if busy >= 0.9 || (p99 < 10_000.0 && lag_max < 100_000.0) {
        return Vec::new();
    }
    vec![Finding {
        category: Category::EventLoopBlocking,
        severity: if lag_max >= 100_000.0 {
            Severity::Critical
        } else {
            Severity::Warning
        },
        score: 35.0 + (p99 / 1000.0).min(30.0),
        summary: format!(
            "The runtime is lagging (p99 median {}, max {}) though its workers are not saturated",
            ms(p99),
            ms(lag_max)
        ),
        evidence: [
            format!("lag p99 median {}", ms(p99)),
            format!("lag max {}", ms(lag_max)),
            format!("busy ratio median {:.0} %", busy * 100.0),
        ]
        .into_iter()
        .chain(waiting_for_workers(w))
        .collect(),
        recommendation: "Something blocks a worker but no stack was captured (stall watchdog off \
            or unsupported here): enable it (LAGSCOPE_STALL_THRESHOLD) or take a profile \
            (lagscope profile) and look for blocking calls in async code."
            .into(),
        culprit: None,
    }]
}

fn cpu(w: &Window) -> Vec<Finding> {
    let Some(busy) = median(&w.means(Metric::BusyRatio)) else {
        return Vec::new();
    };
    if busy < 0.9 || w.workers == 0 {
        return Vec::new();
    }
    let cpu = median(&w.means(Metric::CpuRatio));
    let hot = w
        .top
        .iter()
        .take(3)
        .map(|t| {
            format!(
                "{} ({:.0} %)",
                t.name,
                100.0 * t.self_samples as f64 / w.profile_samples.max(1) as f64
            )
        })
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
    let severity = if busy >= 0.95 {
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
            w.top
                .first()
                .map(|t| format!(" (start with {})", t.name))
                .unwrap_or_default()
        ),
        culprit: w.top.first().map(|t| t.name.clone()),
    }]
}

/// A blocking job that waits this long (median over the window) for a
/// thread means the pool is saturated, whatever the build can count.
const BLOCKING_WAIT_MEDIAN_US: f64 = 100_000.0;
const BLOCKING_WAIT_MAX_US: f64 = 500_000.0;

fn blocking_pool(w: &Window) -> Vec<Finding> {
    // With tokio_unstable: the pool's queue. On any tokio: how long
    // lagscope's no-op spawn_blocking probe waited for a thread.
    let queue =
        median(&w.means(Metric::BlockingQueueDepth)).zip(max(&w.maxes(Metric::BlockingQueueDepth)));
    let wait = median(&w.means(Metric::BlockingWait)).zip(max(&w.maxes(Metric::BlockingWait)));
    let queued = queue.is_some_and(|(median, max)| median >= 1.0 && max >= 10.0);
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
    let critical =
        queue.is_some_and(|(m, _)| m >= 10.0) || wait.is_some_and(|(m, _)| m >= 1_000_000.0);
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

fn heap_leak(w: &Window) -> Vec<Finding> {
    let heap = w.means(Metric::HeapLive);
    let (Some(rate), Some(&first), Some(&last)) =
        (w.slope_per_min(Metric::HeapLive), heap.first(), heap.last())
    else {
        return Vec::new();
    };
    let growth = last - first;
    if rate < 5.0 * MIB || growth < 0.2 * first.max(1.0) || rising_share(&heap) < 0.7 {
        return Vec::new();
    }
    let site = w.heap.as_ref().and_then(growing_site);
    let mut evidence = vec![
        format!(
            "heap live {:.1} MiB → {:.1} MiB over the window",
            first / MIB,
            last / MIB
        ),
        format!("rose in {:.0} % of samples", rising_share(&heap) * 100.0),
    ];
    let bound = "Bound it (an LRU such as the `moka` or `lru` crates, a capacity check, or \
        eviction by age), and check the collection's size with AgentHandle::gauge.";
    let (summary, recommendation) = match &site {
        Some(site) => {
            evidence.push(site.evidence());
            (
                format!(
                    "The Rust heap grows steadily: +{:.1} MiB/min, allocated in {}",
                    rate / MIB,
                    site.function
                ),
                format!(
                    "What {} allocates is kept: a cache, map or queue that only grows? {bound}",
                    site.function
                ),
            )
        }
        None => (
            format!("The Rust heap grows steadily: +{:.1} MiB/min", rate / MIB),
            format!(
                "Something keeps what it allocates: look for caches, maps and queues that only \
                 grow. {bound} {}",
                if w.capabilities.iter().any(|c| c == "heap-sampling") {
                    "Heap sampling is on: watch longer (two heap windows: 10 s apart at the \
                     default sample interval, 5 s under `lagscope doctor -- CMD`) for where the \
                     growth was allocated."
                } else {
                    "Heap sampling (LAGSCOPE_HEAP_SAMPLE=512KiB, with lagscope::alloc::Counting \
                     as the global allocator) names where it was allocated."
                }
            ),
        ),
    };
    vec![Finding {
        category: Category::HeapLeak,
        severity: if rate >= 50.0 * MIB {
            Severity::Critical
        } else {
            Severity::Warning
        },
        score: 50.0 + (rate / MIB / 10.0).min(25.0),
        summary,
        evidence,
        recommendation,
        culprit: site.map(|s| s.function),
    }]
}

/// Where most of a heap's growth was allocated, by the user function
/// that asked for it.
#[derive(Debug, Clone, PartialEq)]
struct GrowingSite {
    /// The innermost user frame of the sites that grew most.
    function: String,
    /// The library function it called that allocated, if any
    /// (`std::collections::HashMap::insert`).
    via: Option<String>,
    /// Its share of all the growth (0..1).
    share: f64,
    /// Bytes it grew by.
    bytes: f64,
    /// Seconds between the readings.
    seconds: f64,
}

impl GrowingSite {
    fn evidence(&self) -> String {
        format!(
            "{:.0} % of the growth ({:+.1} MiB over {:.0} s of heap samples) was allocated in {}{}",
            self.share * 100.0,
            self.bytes / MIB,
            self.seconds,
            self.function,
            self.via
                .as_ref()
                .map(|v| format!(" (via {v})"))
                .unwrap_or_default()
        )
    }
}

/// The user function under which the most live heap grew between the two
/// readings; `None` if nothing grew or no grown site has a user frame.
fn growing_site(growth: &lagscope_wire::doctor::HeapGrowth) -> Option<GrowingSite> {
    let grown: f64 = growth.sites.iter().map(|s| s.grew().max(0) as f64).sum();
    if grown <= 0.0 {
        return None;
    }
    let mut by_function: BTreeMap<String, (f64, Option<String>)> = BTreeMap::new();
    for site in growth.sites.iter().filter(|s| s.grew() > 0) {
        let Some(at) = lagscope_wire::frames::allocating_frame(&site.frames) else {
            continue;
        };
        let function = lagscope_wire::frames::function_name(&site.frames[at]).to_string();
        // The library call the user function made (`BTreeMap::insert`).
        let via = at
            .checked_sub(1)
            .map(|i| lagscope_wire::frames::function_name(&site.frames[i]).to_string());
        let entry = by_function.entry(function).or_insert((0.0, via));
        entry.0 += site.grew() as f64;
    }
    let (function, (bytes, via)) = by_function
        .into_iter()
        .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))?;
    Some(GrowingSite {
        function,
        via,
        share: bytes / grown,
        bytes,
        seconds: growth.to_ms.saturating_sub(growth.from_ms) as f64 / 1000.0,
    })
}

/// How bad native memory growing at `rate` bytes/min is.
fn memory_growth_severity(rate: f64) -> Severity {
    if rate >= 50.0 * MIB {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// The score of a native-memory growth finding at `rate` bytes/min.
fn memory_growth_score(rate: f64) -> f64 {
    50.0 + (rate / MIB / 10.0).min(25.0)
}

/// Memory C code allocates with malloc (the C heap class) growing while the
/// Rust heap does not explain it.
fn c_heap_growth(w: &Window) -> Vec<Finding> {
    let values = w.means(Metric::CHeap);
    let (Some(rate), Some(&first), Some(&last)) = (
        w.slope_per_min(Metric::CHeap),
        values.first(),
        values.last(),
    ) else {
        return Vec::new();
    };
    let heap_rate = w.slope_per_min(Metric::HeapLive).unwrap_or(0.0);
    // Malloc's per-block overhead on Rust's own allocations lands in the C
    // heap too: growth that the Rust heap's explains is not C code's.
    if rate < 5.0 * MIB || last - first < 10.0 * MIB || rate < 2.0 * heap_rate.max(0.0) {
        return Vec::new();
    }
    let mapped = w.slope_per_min(Metric::External).map(|r| {
        format!(
            "mapped/other (RSS − allocator-held) {:+.1} MiB/min",
            r / MIB
        )
    });
    vec![Finding {
        category: Category::ExternalMemory,
        severity: memory_growth_severity(rate),
        score: memory_growth_score(rate),
        summary: format!(
            "The C heap grows: code outside Rust allocates with malloc, +{:.1} MiB/min, while \
             the Rust heap is flat",
            rate / MIB
        ),
        evidence: [
            format!(
                "C heap (malloc by C code, Rust's own allocations excluded) {:.1} MiB → {:.1} MiB",
                first / MIB,
                last / MIB
            ),
            format!("Rust heap {:+.1} MiB/min", heap_rate / MIB),
        ]
        .into_iter()
        .chain(mapped)
        .collect(),
        recommendation: "A C library or -sys crate allocates with malloc and does not free: \
            check that every object or handle it returns is released (its *_free / *_destroy \
            call, or Drop on the Rust wrapper), and bound its own caches. heaptrack or \
            valgrind --tool=massif on a test run name the allocating C function."
            .into(),
        culprit: None,
    }]
}

fn external_memory(w: &Window) -> Vec<Finding> {
    let heap_rate = w.slope_per_min(Metric::HeapLive).unwrap_or(0.0);
    let (name, values) = if w.series.contains_key(Metric::External.series()) {
        (Metric::External, w.means(Metric::External))
    } else {
        (Metric::Rss, w.means(Metric::Rss))
    };
    let (Some(rate), Some(&first), Some(&last)) =
        (w.slope_per_min(name), values.first(), values.last())
    else {
        return Vec::new();
    };
    // "Flat" beside the growth: the agent's own tables (heap sampling's
    // sites) add a little to a heap that does not leak.
    if rate < 5.0 * MIB || heap_rate >= MIB.max(rate / 10.0) || last - first < 10.0 * MIB {
        return Vec::new();
    }
    vec![Finding {
        category: Category::ExternalMemory,
        severity: memory_growth_severity(rate),
        score: memory_growth_score(rate),
        summary: format!(
            "Memory outside the Rust heap grows: +{:.1} MiB/min while the heap is flat",
            rate / MIB
        ),
        evidence: vec![
            format!(
                "{} {:.1} MiB → {:.1} MiB",
                name.def().label,
                first / MIB,
                last / MIB
            ),
            format!("Rust heap {:+.1} MiB/min", heap_rate / MIB),
        ],
        recommendation: "The growth is in memory the Rust allocator never saw: C libraries \
            behind FFI, mmap'd files or buffers, thread stacks, or a second allocator. Check \
            native dependencies' own limits and caches, and threads created per request."
            .into(),
        culprit: None,
    }]
}

fn unbounded_concurrency(w: &Window) -> Vec<Finding> {
    let tasks = w.means(Metric::AliveTasks);
    let (Some(rate), Some(&first), Some(&last)) = (
        w.slope_per_min(Metric::AliveTasks),
        tasks.first(),
        tasks.last(),
    ) else {
        return Vec::new();
    };
    if rate < 1000.0 || last < 1000.0 || last < 2.0 * first.max(1.0) {
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

fn healthy(w: &Window) -> Finding {
    let mut evidence = Vec::new();
    if let Some(p99) = median(&w.means(Metric::LagP99)) {
        evidence.push(format!("lag p99 median {}", ms(p99)));
    }
    if let Some(b) = median(&w.means(Metric::BusyRatio)) {
        evidence.push(format!("busy ratio median {:.0} %", b * 100.0));
    }
    if let Some(r) = w.slope_per_min(Metric::HeapLive) {
        evidence.push(format!("heap {:+.1} MiB/min", r / MIB));
    }
    evidence.push(format!("{} stalls", w.stalls.len()));
    let idle = idle_requests(w);
    let waiting = !idle.is_empty();
    evidence.extend(idle);
    Finding {
        category: Category::None,
        severity: Severity::Info,
        score: 0.0,
        summary: if waiting {
            "No problem found in the runtime: it keeps up and memory is flat; requests spend \
             their time waiting outside it"
                .into()
        } else {
            "No problem found: the runtime keeps up, memory is flat".into()
        },
        evidence,
        recommendation: if waiting {
            "The runtime is not what makes these requests slow: look at what they wait on \
             (a database, a downstream call, a lock or channel) — a trace of one slow request \
             shows which."
                .into()
        } else {
            "Nothing to do. Keep the agent on to catch regressions.".into()
        },
        culprit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagscope_wire::doctor::{HeapGrowth, SiteGrowth};
    use lagscope_wire::StallStack;

    fn window(series: &[(Metric, &dyn Fn(u64) -> f64)]) -> Window {
        let mut w = Window {
            service: "svc".into(),
            instance: "a".into(),
            from_ms: 0,
            to_ms: 20_000,
            workers: 2,
            host_cores: 2,
            ..Window::default()
        };
        for (metric, f) in series {
            let points = (0..40u64).map(|i| (i * 500, f(i), f(i))).collect();
            w.series.insert(metric.series().to_string(), points);
        }
        w
    }

    fn calm() -> Window {
        window(&[
            (Metric::LagP99, &|_| 300.0),
            (Metric::LagMax, &|_| 900.0),
            (Metric::BusyRatio, &|i| 0.2 + (i % 3) as f64 * 0.01),
            (Metric::HeapLive, &|i| 3e6 + (i % 2) as f64 * 1e5),
            (Metric::Rss, &|_| 30e6),
            (Metric::AliveTasks, &|_| 12.0),
        ])
    }

    fn stall(id: u64, us: u64, frames: &[&str], culprit: Option<&str>) -> StallEvent {
        StallEvent {
            id,
            runtime: "main".into(),
            detection: StallDetection::PollHooks,
            tid: 1,
            started_ms: id * 1000,
            duration_us: us,
            ongoing: false,
            blocking_function: culprit.map(String::from),
            stacks: vec![StallStack {
                frames: frames.iter().map(|s| s.to_string()).collect(),
                count: 1,
            }],
            task_id: None,
            spawned_at: None,
            span: None,
            trace_parent: None,
        }
    }

    #[test]
    fn a_calm_window_is_none() {
        let d = diagnose(&calm());
        assert_eq!(d.top_category(), Category::None);
        assert_eq!(d.findings.len(), 1);
    }

    #[test]
    fn stalls_name_the_function_and_the_fix() {
        let mut w = calm();
        w.stalls = (1..=5)
            .map(|i| {
                stall(
                    i,
                    300_000,
                    &["clock_nanosleep", "std::thread::sleep", "svc::checkout"],
                    Some("svc::checkout"),
                )
            })
            .collect();
        let d = diagnose(&w);
        let f = &d.findings[0];
        assert_eq!(f.category, Category::EventLoopBlocking);
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.culprit.as_deref(), Some("svc::checkout"));
        assert!(f.recommendation.contains("tokio::time::sleep"), "{f:?}");
        assert!(f.summary.contains("svc::checkout"));
    }

    #[test]
    fn the_fix_follows_what_the_stack_shows() {
        let advice = |frames: &[&str]| {
            let frames: Vec<String> = frames.iter().map(|s| s.to_string()).collect();
            recommend_for_stack("f", &frames)
        };
        assert!(
            advice(&["read", "<std::fs::File as std::io::Read>::read", "f"]).contains("tokio::fs")
        );
        assert!(advice(&["serde_json::de::from_slice", "f"]).contains("spawn_blocking"));
        assert!(advice(&["fancy_regex::run", "f"]).contains("regex"));
        assert!(advice(&["f"]).contains("rayon"));
    }

    #[test]
    fn waiting_on_a_mutex_is_lock_contention() {
        let mut w = calm();
        w.stalls = vec![
            stall(
                1,
                60_000,
                &["svc::hash", "svc::work_under_lock"],
                Some("svc::work_under_lock"),
            ),
            stall(
                2,
                120_000,
                &[
                    "syscall",
                    "std::sys::sync::mutex::futex::Mutex::lock_contended",
                    "svc::work_under_lock",
                ],
                Some("svc::work_under_lock"),
            ),
        ];
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::LockContention);
        assert!(d.findings[0].recommendation.contains("tokio::sync::Mutex"));
    }

    #[test]
    fn a_lock_held_across_work_is_contention_however_the_time_splits() {
        // Waiting is only 15-35 % of the stalled time; the rest is tasks
        // working inside the same function while they hold the lock.
        for waiting_ms in [30_000u64, 50_000, 70_000] {
            let mut w = calm();
            w.stalls = vec![
                stall(
                    1,
                    130_000,
                    &["svc::hash", "svc::work_under_lock"],
                    Some("svc::hash"),
                ),
                stall(
                    2,
                    waiting_ms,
                    &[
                        "syscall",
                        "std::sys::sync::mutex::futex::Mutex::lock_contended",
                        "svc::work_under_lock",
                    ],
                    Some("svc::work_under_lock"),
                ),
            ];
            let d = diagnose(&w);
            assert_eq!(d.top_category(), Category::LockContention, "{waiting_ms}");
            let both = d.findings[0].evidence.iter().any(|e| {
                e.contains("waiting for a mutex") && e.contains("working while they hold it")
            });
            assert!(both, "{:?}", d.findings[0].evidence);
        }
        // A wait for some other lock beside a long CPU stall: blocking, and
        // the wait is still said.
        let mut w = calm();
        w.stalls = vec![
            stall(
                1,
                400_000,
                &["svc::hash_in_handler"],
                Some("svc::hash_in_handler"),
            ),
            stall(
                2,
                50_000,
                &[
                    "syscall",
                    "std::sys::sync::mutex::futex::Mutex::lock_contended",
                    "svc::other",
                ],
                Some("svc::other"),
            ),
        ];
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::EventLoopBlocking);
        assert!(d.findings[0]
            .evidence
            .iter()
            .any(|e| e.contains("waiting for a mutex")));
    }

    #[test]
    fn an_inlined_lock_wait_is_seen_by_its_futex_leaf() {
        let mut w = calm();
        w.stalls = vec![
            stall(
                1,
                60_000,
                &["svc::hash", "svc::work_under_lock"],
                Some("svc::hash"),
            ),
            stall(
                2,
                120_000,
                &["syscall", "svc::work_under_lock"],
                Some("svc::work_under_lock"),
            ),
        ];
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::LockContention);
        assert!(d.findings[0].recommendation.contains("svc::hash"));
    }

    #[test]
    fn an_async_block_without_line_tables_says_code_may_be_inlined_into_it() {
        let closure = "svc::main::{{closure}}::{{closure}}";
        let mut w = calm();
        w.stalls = (1..=5)
            .map(|i| {
                stall(
                    i,
                    150_000,
                    &[closure, "tokio::runtime::task::core::Core<T,S>::poll"],
                    Some(closure),
                )
            })
            .collect();
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::EventLoopBlocking);
        let f = &d.findings[0];
        assert!(
            f.evidence
                .iter()
                .any(|e| e.contains("may be inlined into svc::main::{{closure}}::{{closure}}")),
            "{f:#?}"
        );
        assert!(f.recommendation.contains("debug = \"limited\""), "{f:#?}");

        // With line tables the inlined function would have been named.
        w.capabilities = vec!["line-tables".into()];
        let f = &diagnose(&w).findings[0];
        assert!(
            !f.evidence.iter().any(|e| e.contains("may be inlined")),
            "{f:#?}"
        );
    }

    #[test]
    fn an_inlined_function_is_one_culprit_whatever_line_it_stopped_on() {
        let mut w = calm();
        w.capabilities = vec!["line-tables".into()];
        w.stalls = (1..=4)
            .map(|i| {
                let f = format!("svc::digest::{{{{closure}}}} (src/main.rs:{})", 57 + i % 2);
                stall(i, 150_000, &[&f, "svc::main::{{closure}}"], Some(&f))
            })
            .collect();
        let f = &diagnose(&w).findings[0];
        assert_eq!(
            f.culprit.as_deref(),
            Some("svc::digest::{{closure}}"),
            "{f:#?}"
        );
        assert!(
            f.evidence
                .iter()
                .any(|e| e.starts_with("4 stalls of typically")),
            "{f:#?}"
        );
    }

    #[test]
    fn short_rare_stalls_are_not_a_problem() {
        let mut w = calm();
        w.stalls = vec![stall(1, 25_000, &["svc::f"], Some("svc::f"))];
        assert_eq!(diagnose(&w).top_category(), Category::None);
    }

    /// Adds a task name whose requests split their time as given, 200
    /// requests over the window.
    fn with_task(w: &mut Window, name: &str, scheduled: f64, poll: f64, idle: f64) {
        for (metric, per_point) in [
            (Metric::TaskScheduledTime, scheduled * 50_000.0),
            (Metric::TaskPollTime, poll * 50_000.0),
            (Metric::TaskIdleTime, idle * 50_000.0),
            (Metric::TaskCompleted, 5.0),
        ] {
            let points = (0..40u64)
                .map(|i| {
                    let v = i as f64 * per_point;
                    (i * 500, v, v)
                })
                .collect();
            w.series.insert(metric.task_series(name), points);
        }
        w.series.insert(
            Metric::TaskScheduledP99.task_series(name),
            (0..40u64).map(|i| (i * 500, 12_000.0, 12_000.0)).collect(),
        );
    }

    #[test]
    fn requests_waiting_for_a_worker_support_the_saturation_verdict() {
        let mut w = calm();
        w.series.insert(
            Metric::BusyRatio.series().into(),
            (0..40).map(|i| (i * 500, 0.99, 1.0)).collect(),
        );
        w.workers = 1;
        with_task(&mut w, "GET /checkout", 0.64, 0.3, 0.06);
        with_task(&mut w, "GET /health", 0.1, 0.1, 0.8);
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::UnderusedCores);
        assert!(
            d.findings[0].evidence.iter().any(|e| e
                == "requests to GET /checkout spend 64 % of their time waiting for a worker \
                    (p99 12.0 ms per request)"),
            "{:?}",
            d.findings[0].evidence
        );
    }

    #[test]
    fn the_name_that_takes_the_polled_time_is_named_though_others_wait_longer() {
        let mut w = calm();
        w.series.insert(
            Metric::BusyRatio.series().into(),
            (0..40).map(|i| (i * 500, 0.99, 1.0)).collect(),
        );
        w.workers = 1;
        with_task(&mut w, "POST /render", 0.6, 0.3, 0.1);
        with_task(&mut w, "GET /health", 0.1, 0.1, 0.8);
        with_task(&mut w, "traffic", 0.9, 0.02, 0.08);
        let d = diagnose(&w);
        let evidence = &d.findings[0].evidence;
        // 0.3 of 0.42 polled; 0.585 s over 195 requests.
        assert!(
            evidence.iter().any(|e| e
                == "requests to POST /render take 71 % of the time requests are polled \
                    (3.0 ms per request)"),
            "{evidence:?}"
        );
        assert!(
            evidence
                .iter()
                .any(|e| e.starts_with("requests to traffic spend 90 %")),
            "{evidence:?}"
        );
        // No name takes most of it: none is named.
        let mut even = calm();
        even.series = w.series.clone();
        even.workers = 1;
        with_task(&mut even, "GET /health", 0.1, 0.3, 0.6);
        assert!(!diagnose(&even).findings[0]
            .evidence
            .iter()
            .any(|e| e.contains("of the time requests are polled")),);
    }

    #[test]
    fn idle_requests_say_the_runtime_is_not_the_problem() {
        let mut w = calm();
        with_task(&mut w, "GET /orders/:id", 0.02, 0.03, 0.95);
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::None);
        let f = &d.findings[0];
        assert!(f.summary.contains("waiting outside it"), "{}", f.summary);
        assert!(
            f.evidence
                .iter()
                .any(|e| e.starts_with("requests to GET /orders/:id are idle 95 %")),
            "{:?}",
            f.evidence
        );
        // Too few requests: no claim.
        let mut few = calm();
        with_task(&mut few, "GET /rare", 0.0, 0.05, 0.95);
        for (name, points) in few.series.iter_mut() {
            if name.starts_with(Metric::TaskCompleted.series()) {
                for p in points.iter_mut() {
                    p.1 = 0.0;
                    p.2 = 0.0;
                }
            }
        }
        assert!(!diagnose(&few).findings[0].summary.contains("outside"));
    }

    #[test]
    fn a_few_short_stalls_do_not_hide_saturated_workers() {
        let mut w = calm();
        w.series.insert(
            Metric::BusyRatio.series().into(),
            (0..40).map(|i| (i * 500, 0.99, 1.0)).collect(),
        );
        w.workers = 1;
        // A loaded host descheduled the busy worker mid-poll a few times.
        w.stalls = (1..=4)
            .map(|id| stall(id, 55_000, &["svc::render"], Some("svc::render")))
            .collect();
        let d = diagnose(&w);
        assert_eq!(
            d.top_category(),
            Category::UnderusedCores,
            "{:?}",
            d.findings
        );
        assert!(d
            .findings
            .iter()
            .any(|f| f.category == Category::EventLoopBlocking));
    }

    #[test]
    fn saturated_workers_on_fewer_workers_than_cores_is_underused_cores() {
        let mut w = calm();
        w.series.insert(
            Metric::BusyRatio.series().into(),
            (0..40).map(|i| (i * 500, 0.99, 1.0)).collect(),
        );
        w.workers = 1;
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::UnderusedCores);
        assert!(d.findings[0].recommendation.contains("worker_threads"));
        w.workers = 2;
        assert_eq!(diagnose(&w).top_category(), Category::CpuSaturation);
    }

    #[test]
    fn memory_rules_tell_heap_from_external() {
        let leak = window(&[
            (Metric::HeapLive, &|i| 3e6 + i as f64 * 600_000.0),
            (Metric::Rss, &|i| 30e6 + i as f64 * 600_000.0),
            (Metric::External, &|_| 20e6),
        ]);
        assert_eq!(diagnose(&leak).top_category(), Category::HeapLeak);
        let native = window(&[
            (Metric::HeapLive, &|_| 3e6),
            (Metric::Rss, &|i| 30e6 + i as f64 * 600_000.0),
            (Metric::External, &|i| 20e6 + i as f64 * 600_000.0),
        ]);
        assert_eq!(diagnose(&native).top_category(), Category::ExternalMemory);
        // A heap creeping by ~1.5 MiB/min (heap sampling's own tables, say)
        // beside external memory growing a hundred times faster.
        let creeping = window(&[
            (Metric::HeapLive, &|i| 3e6 + i as f64 * 30_000.0),
            (Metric::Rss, &|i| 30e6 + i as f64 * 600_000.0),
            (Metric::External, &|i| 20e6 + i as f64 * 600_000.0),
        ]);
        assert!(creeping.slope_per_min(Metric::HeapLive).unwrap_or(0.0) > MIB);
        assert_eq!(diagnose(&creeping).top_category(), Category::ExternalMemory);
    }

    #[test]
    fn a_heap_leak_names_the_user_function_that_allocated_the_growth() {
        let mut leak = window(&[
            (Metric::HeapLive, &|i| 3e6 + i as f64 * 600_000.0),
            (Metric::Rss, &|i| 30e6 + i as f64 * 600_000.0),
        ]);
        let d = diagnose(&leak);
        assert_eq!(d.findings[0].culprit, None);
        assert!(d.findings[0]
            .recommendation
            .contains("LAGSCOPE_HEAP_SAMPLE"));
        let site = |frames: &[&str], before_bytes: u64, after_bytes: u64| SiteGrowth {
            frames: frames.iter().map(|f| f.to_string()).collect(),
            before_bytes,
            after_bytes,
        };
        const M: u64 = 1 << 20;
        leak.heap = Some(HeapGrowth {
            from_ms: 10_000,
            to_ms: 30_000,
            sites: vec![
                // The map's table and its values, both kept by the cache.
                site(
                    &[
                        "hashbrown::raw::RawTable<T,A>::reserve_rehash",
                        "std::collections::hash::map::HashMap<K,V,S>::insert",
                        "checkout::cache::Cache::remember",
                        "checkout::handler::{{closure}}",
                    ],
                    4 * M,
                    16 * M,
                ),
                site(
                    &[
                        "alloc::vec::Vec<T>::with_capacity",
                        "checkout::cache::Cache::remember (src/cache.rs:40)",
                        "checkout::handler::{{closure}}",
                    ],
                    8 * M,
                    20 * M,
                ),
                // Grew a little elsewhere; freed elsewhere again.
                site(&["checkout::parse"], 0, 3 * M),
                site(&["checkout::render"], 5 * M, 0),
                site(&["malloc"], 0, 10 * M),
            ],
        });
        let f = &diagnose(&leak).findings[0];
        assert_eq!(f.category, Category::HeapLeak);
        assert_eq!(
            f.culprit.as_deref(),
            Some("checkout::cache::Cache::remember")
        );
        assert!(
            f.summary
                .ends_with("allocated in checkout::cache::Cache::remember"),
            "{}",
            f.summary
        );
        // 24 MiB of 37 MiB grown; the site with no user frame counts in
        // the whole but names nothing.
        assert!(
            f.evidence.iter().any(|e| e
                == "65 % of the growth (+24.0 MiB over 20 s of heap samples) was allocated in \
                    checkout::cache::Cache::remember (via \
                    std::collections::hash::map::HashMap<K,V,S>::insert)"),
            "{:#?}",
            f.evidence
        );
        // Nothing grew: no site is named.
        for s in &mut leak.heap.as_mut().expect("set").sites {
            s.after_bytes = s.before_bytes;
        }
        assert_eq!(diagnose(&leak).findings[0].culprit, None);
    }

    #[test]
    fn a_critical_finding_comes_before_a_warning_that_scores_higher() {
        // A Node service at start: its heap grows 2 MiB in 20 s (a steep
        // slope, a warning) while a 300 ms block lags the loop (critical).
        let w = window(&[
            (Metric::LagP99, &|_| 12_000.0),
            (Metric::LagMax, &|i| {
                if i == 20 {
                    300_000.0
                } else {
                    15_000.0
                }
            }),
            (Metric::BusyRatio, &|_| 0.3),
            (Metric::HeapLive, &|i| 8.8e6 + i as f64 * 50e3),
        ]);
        let d = diagnose(&w);
        let categories: Vec<_> = d
            .findings
            .iter()
            .map(|f| (f.category, f.severity))
            .collect();
        assert_eq!(
            categories,
            [
                (Category::EventLoopBlocking, Severity::Critical),
                (Category::HeapLeak, Severity::Warning)
            ]
        );
        assert!(d.findings[1].score > d.findings[0].score, "{d:#?}");
    }

    #[test]
    fn piling_tasks_is_unbounded_concurrency() {
        let w = window(&[
            (Metric::AliveTasks, &|i| 10.0 + i as f64 * 100.0),
            (Metric::HeapLive, &|i| 3e6 + i as f64 * 50_000.0),
        ]);
        assert_eq!(diagnose(&w).top_category(), Category::UnboundedConcurrency);
    }

    #[test]
    fn a_blocking_queue_is_pool_saturation() {
        let mut w = calm();
        w.series.insert(
            Metric::BlockingQueueDepth.series().into(),
            (0..40).map(|i| (i * 500, 150.0, 190.0)).collect(),
        );
        w.series.insert(
            Metric::BlockingThreads.series().into(),
            (0..40).map(|i| (i * 500, 2.0, 2.0)).collect(),
        );
        assert_eq!(
            diagnose(&w).top_category(),
            Category::BlockingPoolSaturation
        );
    }

    #[test]
    fn c_heap_growth_is_named_by_its_class() {
        let mut w = calm();
        w.series.insert(
            Metric::CHeap.series().into(),
            (0..40u64)
                .map(|i| (i * 500, (4 + i) as f64 * MIB, (4 + i) as f64 * MIB))
                .collect(),
        );
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::ExternalMemory);
        assert!(d.findings[0].summary.starts_with("The C heap grows"));
        assert!(
            d.findings[0].evidence[0].starts_with("C heap (malloc by C code"),
            "{:?}",
            d.findings[0].evidence
        );
        // The same growth with the Rust heap growing as fast is Rust's overhead.
        w.series.insert(
            Metric::HeapLive.series().into(),
            (0..40u64)
                .map(|i| (i * 500, (4 + i) as f64 * MIB, (4 + i) as f64 * MIB))
                .collect(),
        );
        assert!(diagnose(&w)
            .findings
            .iter()
            .all(|f| !f.summary.starts_with("The C heap grows")));
    }

    #[test]
    fn a_long_blocking_wait_is_pool_saturation_without_unstable_metrics() {
        let mut w = calm();
        // Stable tokio: no queue depth, no thread counts; the probe waits seconds.
        w.series.insert(
            Metric::BlockingWait.series().into(),
            (0..40)
                .map(|i| (i * 500, 2_000_000.0 + i as f64 * 1e5, 2e6 + i as f64 * 1e5))
                .collect(),
        );
        let d = diagnose(&w);
        assert_eq!(d.top_category(), Category::BlockingPoolSaturation);
        let f = &d.findings[0];
        assert_eq!(f.severity, Severity::Critical);
        assert!(f.summary.contains("up to 5.90 s"), "{}", f.summary);
        assert!(
            f.recommendation.starts_with("All the blocking threads"),
            "{}",
            f.recommendation
        );
        // A pool that answers at once is fine.
        let mut ok = calm();
        ok.series.insert(
            Metric::BlockingWait.series().into(),
            (0..40).map(|i| (i * 500, 80.0, 300.0)).collect(),
        );
        assert_eq!(diagnose(&ok).top_category(), Category::None);
    }
}
