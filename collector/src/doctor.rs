//! `lagscope doctor`: what is wrong with a service, in words. Pure rules over
//! a window of one instance's series, stalls and CPU profile; no I/O, so
//! they are unit-tested on recorded windows (`collector/tests/windows/`).
//!
//! One module per rule family (`stalls`, `cpu`, `pool`, `memory`,
//! `concurrency`, `requests`) over shared `stats`; every threshold is a
//! named constant in [`thresholds`], which this table and the README quote
//! (a test holds the README to the constants):
//!
//! | category | fires when |
//! |---|---|
//! | `event-loop-blocking` | stalls add up to ≥ [`STALL_SHARE`] of the window, or one lasts ≥ [`STALL_LONGEST_US`] (critical from [`STALL_CRITICAL_SHARE`]); without stall data, lag p99 median ≥ [`LAG_P99_MEDIAN_US`] or max ≥ [`LAG_MAX_US`] with workers below [`BUSY_SATURATED`] |
//! | `lock-contention` | as above, and ≥ [`LOCK_WAIT_FLOOR`] of the stalled time waiting for a mutex with ≥ [`LOCK_STALL_SHARE`] waiting or working under it, or ≥ [`LOCK_WAIT_ALONE`] waiting alone |
//! | `cpu-saturation` | busy ratio median ≥ [`BUSY_SATURATED`] on every core the host has (critical from [`BUSY_CRITICAL`]) |
//! | `underused-cores` | the same with fewer workers than host cores |
//! | `blocking-pool-saturation` | blocking queue median ≥ [`BLOCKING_QUEUE_MEDIAN`] and max ≥ [`BLOCKING_QUEUE_MAX`] (tokio_unstable), or the probe job's wait median ≥ [`BLOCKING_WAIT_MEDIAN_US`] and max ≥ [`BLOCKING_WAIT_MAX_US`] |
//! | `heap-leak` | Rust heap grows ≥ [`HEAP_GROWTH_PER_MIN`], ≥ [`HEAP_GROWTH_SHARE`] over the window, rising in ≥ [`HEAP_RISING_SHARE`] of steps; all of it again without its largest single step |
//! | `external-memory` | RSS − Rust heap grows ≥ [`NATIVE_GROWTH_PER_MIN`] and [`NATIVE_GROWTH_MIN_BYTES`] while the heap grows below [`HEAP_FLAT_PER_MIN`] or [`HEAP_FLAT_SHARE`] of that; or the C heap grows as much and ≥ [`C_HEAP_OVER_RUST`] times the Rust heap's rate |
//! | `unbounded-concurrency` | alive tasks grow ≥ [`TASKS_GROWTH_PER_MIN`] to ≥ [`TASKS_MIN_ALIVE`], by ≥ [`TASKS_GROWTH_FACTOR`] times |
//! | `stuck-requests` | an instrumented future is pending without a wake past the agent's stuck threshold (critical from [`STUCK_CRITICAL`]) |
//!
//! Findings are ordered by severity, then by score.

use std::collections::BTreeMap;

use lagscope_wire::api::{slope, TopFunction};
use lagscope_wire::metric::Metric;
use lagscope_wire::tasks::TaskSplit;

pub use lagscope_wire::doctor::{Category, Diagnosis, Finding, Severity, Window};
#[cfg(test)]
use lagscope_wire::{StallDetection, StallEvent};

mod concurrency;
mod cpu;
mod memory;
mod pool;
mod requests;
mod stalls;
mod stats;
pub mod thresholds;
mod waits;

use concurrency::*;
use cpu::*;
use memory::*;
use pool::*;
pub(crate) use requests::task_splits;
use requests::*;
use stalls::*;
use stats::*;
use thresholds::*;
use waits::*;

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
    findings.extend(stuck_requests(w));
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
    // Where the idle names wait, by await point, where the agent captured it.
    let mut points = Vec::new();
    let mut kinds: Vec<lagscope_wire::waits::WaitKind> = Vec::new();
    for t in task_splits(w).iter().filter(|t| t.idle >= TASK_IDLE_SHARE) {
        if let Some((text, k)) = wait_points(w, &t.name) {
            points.push(format!(
                "requests to {} spend their waiting on {text}",
                t.name
            ));
            for k in k {
                if !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
    }
    let waiting = !idle.is_empty();
    evidence.extend(idle);
    evidence.extend(points.iter().cloned());
    let summary = match points.first() {
        Some(first) => {
            format!("No problem found in the runtime: it keeps up and memory is flat; {first}")
        }
        None if waiting => "No problem found in the runtime: it keeps up and memory is flat; \
                            requests spend their time waiting outside it"
            .into(),
        None => "No problem found: the runtime keeps up, memory is flat".into(),
    };
    let recommendation = if !kinds.is_empty() {
        format!(
            "The runtime is not what makes these requests slow; their waits are: {}.",
            advice_for(&kinds)
        )
    } else if waiting {
        "The runtime is not what makes these requests slow: look at what they wait on \
         (a database, a downstream call, a lock or channel) — a trace of one slow request \
         shows which."
            .into()
    } else {
        "Nothing to do. Keep the agent on to catch regressions.".into()
    };
    Finding {
        category: Category::None,
        severity: Severity::Info,
        score: 0.0,
        summary,
        evidence,
        recommendation,
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
        {
            let mut stall_event = StallEvent::default();
            stall_event.id = id;
            stall_event.runtime = "main".into();
            stall_event.detection = StallDetection::PollHooks;
            stall_event.tid = 1;
            stall_event.started_ms = id * 1000;
            stall_event.duration_us = us;
            stall_event.blocking_function = culprit.map(String::from);
            stall_event.stacks = vec![{
                let mut stall_stack = StallStack::default();
                stall_stack.frames = frames.iter().map(|s| s.to_string()).collect();
                stall_stack.count = 1;
                stall_stack
            }];
            stall_event
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
    fn a_one_off_step_in_the_heap_is_not_a_leak() {
        // 6.2 MiB creeping 2 KiB a sample, with one step of 1.6 MiB (the
        // agent loading symbol tables as it names its first heap window).
        let step = window(&[(Metric::HeapLive, &|i| {
            6.2e6 + i as f64 * 2_000.0 + if i >= 10 { 1.6e6 } else { 0.0 }
        })]);
        assert!(step.slope_per_min(Metric::HeapLive).unwrap_or(0.0) > HEAP_GROWTH_PER_MIN);
        assert_eq!(diagnose(&step).top_category(), Category::None);
        // A leak that also had a step is still a leak.
        let leak = window(&[(Metric::HeapLive, &|i| {
            6.2e6 + i as f64 * 300_000.0 + if i >= 10 { 1.6e6 } else { 0.0 }
        })]);
        assert_eq!(diagnose(&leak).top_category(), Category::HeapLeak);
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
            .contains("lagscope::alloc::Counting"));
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
    fn the_readme_quotes_the_thresholds() {
        let readme = include_str!("../../README.md");
        let pct = |x: f64| format!("{:.0} %", x * 100.0);
        let ms = |us: f64| format!("{:.0} ms", us / 1e3);
        let mib = |b: f64| format!("{:.0} MiB", b / MIB);
        for quote in [
            format!("stalls add up to ≥ {} of the window", pct(STALL_SHARE)),
            format!("one lasts ≥ {}", ms(STALL_LONGEST_US)),
            format!(
                "lag p99 median ≥ {} or max ≥ {}",
                ms(LAG_P99_MEDIAN_US),
                ms(LAG_MAX_US)
            ),
            format!("≥ {} of the stalled time is threads waiting", pct(LOCK_WAIT_FLOOR)),
            format!("≥ {} waiting for it or working", pct(LOCK_STALL_SHARE)),
            format!("≥ {} waiting alone", pct(LOCK_WAIT_ALONE)),
            format!("busy ratio median ≥ {BUSY_SATURATED} on all cores ({BUSY_CRITICAL}, clinic's, is critical)"),
            format!("busy ratio median ≥ {BUSY_SATURATED} with fewer workers"),
            format!(
                "blocking queue median ≥ {BLOCKING_QUEUE_MEDIAN} and max ≥ {BLOCKING_QUEUE_MAX}"
            ),
            format!(
                "waiting median ≥ {}, max ≥ {}",
                ms(BLOCKING_WAIT_MEDIAN_US),
                ms(BLOCKING_WAIT_MAX_US)
            ),
            format!(
                "Rust heap +≥ {}/min, ≥ {} over the window, rising in ≥ {} of samples; as much without its largest step",
                mib(HEAP_GROWTH_PER_MIN),
                pct(HEAP_GROWTH_SHARE),
                pct(HEAP_RISING_SHARE)
            ),
            format!(
                "RSS − heap +≥ {}/min and {} over the window while the heap is flat (< {}/min, or {} of that growth)",
                mib(NATIVE_GROWTH_PER_MIN),
                mib(NATIVE_GROWTH_MIN_BYTES),
                mib(HEAP_FLAT_PER_MIN),
                pct(HEAP_FLAT_SHARE)
            ),
            format!("≥ {C_HEAP_OVER_RUST}× the Rust heap's rate"),
            format!(
                "alive tasks +≥ {TASKS_GROWTH_PER_MIN}/min to ≥ {TASKS_MIN_ALIVE}, growing ≥ {TASKS_GROWTH_FACTOR}× over the window"
            ),
            format!("critical from {STUCK_CRITICAL} of them"),
        ] {
            assert!(readme.contains(&quote), "README.md does not say {quote:?}");
        }
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
