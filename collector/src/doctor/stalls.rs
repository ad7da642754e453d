//! Stalls and lag: `event-loop-blocking` (with the blocking function and
//! the fix its stack suggests) and `lock-contention`.

use super::*;

/// Whether a stack (innermost first) is a thread waiting for a lock. std's
/// `Mutex::lock_contended` is often inlined in release builds, leaving its
/// futex wait — glibc's generic `syscall` — right at the leaf.
pub(super) fn is_lock_wait(frames: &[String]) -> bool {
    frames
        .first()
        .is_some_and(|leaf| leaf == "syscall" || leaf.contains("futex"))
        || frames.iter().any(|f| {
            f.contains("Mutex::lock_contended")
                || f.contains("lock_slow")
                || (f.contains("mutex") && f.contains("futex"))
        })
}

pub(super) fn stall_findings(w: &Window) -> Vec<Finding> {
    if w.stalls.is_empty() {
        return Vec::new();
    }
    let total_us: f64 = w.stalls.iter().map(|s| s.duration_us as f64).sum();
    let longest = w.stalls.iter().map(|s| s.duration_us).max().unwrap_or(0) as f64;
    let share = total_us / 1000.0 / w.window_ms();
    if share < STALL_SHARE && longest < STALL_LONGEST_US {
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
    let severity = if longest >= STALL_LONGEST_US || share >= STALL_CRITICAL_SHARE {
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
pub(super) fn inlined_note(function: &str, capabilities: &[String]) -> Option<String> {
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
pub(super) fn recommend_for_stack(place: &str, frames: &[String]) -> String {
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

pub(super) fn lag_without_stalls(w: &Window) -> Vec<Finding> {
    let p99 = median(&w.means(Metric::LagP99));
    let lag_max = max(&w.maxes(Metric::LagMax));
    let busy = median(&w.means(Metric::BusyRatio)).unwrap_or(0.0);
    let (Some(p99), Some(lag_max)) = (p99, lag_max) else {
        return Vec::new();
    };
    if busy >= BUSY_SATURATED || (p99 < LAG_P99_MEDIAN_US && lag_max < LAG_MAX_US) {
        return Vec::new();
    }
    vec![Finding {
        category: Category::EventLoopBlocking,
        severity: if lag_max >= LAG_MAX_US {
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
