//! Two workers stalled at the same moment, on stable tokio's detector: each
//! stall must keep its own thread, function and length. Stable tokio does
//! not say which thread runs which worker, so the detector pairs them by
//! watching which thread leaves its function when a worker comes back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::{next_sample, runtime};
use lagscope::{Agent, Sample, StallEvent};

#[inline(never)]
fn sleeps_long(d: Duration) {
    std::thread::sleep(d);
    std::hint::black_box(());
}

#[inline(never)]
fn sleeps_short(d: Duration) {
    std::thread::sleep(d);
    std::hint::black_box(());
}

/// Runs `f` under `depth` more frames of user code.
#[inline(never)]
fn nested(depth: usize, f: &dyn Fn()) {
    if depth == 0 {
        f();
    } else {
        nested(depth - 1, f);
    }
    std::hint::black_box(depth);
}

/// Frames enough to put the stuck function deeper than the watchdog keeps
/// of a stack (its thread's start is then never seen).
const DEEP: usize = 64;

const LONG: Duration = Duration::from_millis(300);
const SHORT: Duration = Duration::from_millis(100);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Blocks both workers at once: one in `sleeps_long`, one in `sleeps_short`,
/// each under `depth` frames of [`nested`]. The tasks are spawned from a
/// plain thread (the runtime's shared queue), and each waits on its worker
/// until the other has started.
fn block_two_workers(rt: &tokio::runtime::Runtime, depth: usize) {
    let met = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = [true, false]
        .into_iter()
        .map(|long| {
            let met = met.clone();
            let handle = rt.handle().clone();
            std::thread::spawn(move || {
                handle.spawn(async move {
                    let began = Instant::now();
                    met.fetch_add(1, Ordering::AcqRel);
                    while met.load(Ordering::Acquire) < 2
                        && began.elapsed() < Duration::from_secs(1)
                    {
                        std::hint::spin_loop();
                    }
                    nested(depth, &|| {
                        if long {
                            sleeps_long(LONG);
                        } else {
                            sleeps_short(SHORT);
                        }
                    });
                })
            })
            .join()
            .expect("spawner thread")
        })
        .collect();
    for h in handles {
        rt.block_on(h).expect("block task");
    }
}

/// Finished stalls in the samples the agent wrote to `file` so far.
fn finished_stalls(file: &std::path::Path) -> Vec<StallEvent> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Sample>(line).ok())
        .flat_map(|s| s.stalls)
        .filter(|e| !e.ongoing)
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn two_stalls_at_once_keep_their_own_function_and_length() {
    let rt = runtime(2);
    // Every sample, from the file: a stall's end can be in a sample that
    // the next one replaces within milliseconds.
    let file = std::env::temp_dir().join(format!(
        "lagscope-concurrent-stalls-{}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&file);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(50))
        .stall_threshold(Duration::from_millis(20))
        .file(&file)
        .start(rt.handle().clone())
        .expect("start");
    next_sample(&agent, None, Duration::from_secs(5));
    // The watchdog reads the binary's symbol and line tables before its
    // first check (seconds for a fresh debug build on a cold cache): one
    // unasserted round first, until it reports a stall.
    let end = Instant::now() + Duration::from_secs(30);
    while finished_stalls(&file).is_empty() {
        assert!(Instant::now() < end, "the watchdog never reported a stall");
        block_two_workers(&rt, 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Shallow stacks, then stacks deeper than the watchdog keeps: which
    // thread left its function is told from either.
    for (round, depth) in [(0, 0), (1, 0), (2, 0), (3, DEEP), (4, DEEP), (5, DEEP)] {
        std::thread::sleep(Duration::from_millis(200));
        let since = unix_ms();
        block_two_workers(&rt, depth);
        let end = Instant::now() + Duration::from_secs(10);
        let finished = loop {
            let finished: Vec<StallEvent> = finished_stalls(&file)
                .into_iter()
                .filter(|e| e.started_ms + 50 >= since)
                .collect();
            if finished.len() >= 2 {
                break finished;
            }
            assert!(
                Instant::now() < end,
                "round {round}: both stalls not reported: {finished:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(finished.len(), 2, "round {round}: {finished:#?}");
        assert_ne!(finished[0].tid, finished[1].tid, "{finished:#?}");
        for (function, own, other) in [("sleeps_long", LONG, SHORT), ("sleeps_short", SHORT, LONG)]
        {
            let stall = finished
                .iter()
                .find(|e| {
                    e.blocking_function
                        .as_deref()
                        .is_some_and(|f| f.contains(function))
                })
                .unwrap_or_else(|| panic!("round {round}: no stall in {function}: {finished:#?}"));
            let took = Duration::from_micros(stall.duration_us);
            assert!(
                took.abs_diff(own) < took.abs_diff(other) && took >= own,
                "round {round}: {function} stalled {took:?}, not ~{own:?}: {finished:#?}"
            );
        }
    }
    agent.shutdown();
    let _ = std::fs::remove_file(&file);
}
