//! The agent as a service would use it: started on real runtimes, read back
//! through `snapshot()` and the JSON-lines file.

use std::time::{Duration, Instant};

mod common;

use common::{next_sample, runtime};
use lagscope::{Agent, Sample, MAIN_RUNTIME};

#[test]
fn blocking_a_worker_is_reported_as_max_lag_close_to_the_block() {
    let rt = runtime(1);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(100))
        .lag_probe_interval(Duration::from_millis(1))
        .start(rt.handle().clone())
        .expect("start");
    for block_ms in [5u64, 20, 100, 500] {
        let block = Duration::from_millis(block_ms);
        // Start from a fresh interval so the block lands in a known window.
        let before = next_sample(&agent, None, Duration::from_secs(5)).seq;
        let first = next_sample(&agent, Some(before), Duration::from_secs(5)).seq;
        rt.spawn(async move { std::thread::sleep(block) });
        let mut max_us = 0;
        let mut seq = first;
        for _ in 0..(block_ms / 100 + 3) {
            let s = next_sample(&agent, Some(seq), Duration::from_secs(5));
            seq = s.seq;
            let lag = s.runtime(MAIN_RUNTIME).and_then(|r| r.lag.clone());
            max_us = max_us.max(lag.map_or(0, |l| l.max_us));
        }
        let block_us = block_ms * 1000;
        // Loose bounds: the probe is 1 ms apart, and on a loaded machine the
        // agent's thread may spawn it a few ms late (the harness measures the
        // real precision; this checks the block shows).
        assert!(
            max_us + (block_us / 10).max(5_000) >= block_us && max_us <= block_us * 2 + 20_000,
            "{block_ms} ms block reported as {max_us} µs max lag"
        );
    }
}

#[test]
fn a_long_block_shows_as_growing_lag_while_it_lasts() {
    let rt = runtime(1);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(200))
        .start(rt.handle().clone())
        .expect("start");
    next_sample(&agent, None, Duration::from_secs(5));
    let started = Instant::now();
    rt.spawn(async { std::thread::sleep(Duration::from_secs(3)) });
    let mut live_max_us = 0;
    let mut seq = None;
    // Only samples taken while the block is still going on count.
    while started.elapsed() < Duration::from_millis(2_800) {
        let s = next_sample(&agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        if started.elapsed() < Duration::from_millis(2_800) {
            let lag = s.runtime(MAIN_RUNTIME).and_then(|r| r.lag.clone());
            live_max_us = live_max_us.max(lag.map_or(0, |l| l.max_us));
        }
    }
    assert!(live_max_us >= 1_000_000, "live lag only {live_max_us} µs");
}

#[test]
fn the_agents_own_probe_never_shows_in_the_queue_depths() {
    let rt = runtime(1);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(20))
        .lag_probe_interval(Duration::from_millis(20))
        .start(rt.handle().clone())
        .expect("start");
    let mut seq = None;
    for _ in 0..20 {
        let s = next_sample(&agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        let main = s.runtime(MAIN_RUNTIME).expect("main");
        assert_eq!(
            main.global_queue_depth, 0,
            "an idle runtime has nothing queued"
        );
    }
}

#[test]
fn several_runtimes_are_sampled_by_name() {
    let main = runtime(2);
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(50))
        .runtime("io", io.handle().clone())
        .start(main.handle().clone())
        .expect("start");
    let s = next_sample(&agent, None, Duration::from_secs(5));
    let names: Vec<_> = s.runtimes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["main", "io"]);
    assert_eq!(s.runtime("main").expect("main").workers, 2);
    assert_eq!(s.runtime("io").expect("io").workers, 1);
}

#[test]
fn duplicate_runtime_names_are_an_error_not_a_panic() {
    let rt = runtime(1);
    let err = Agent::builder()
        .runtime(MAIN_RUNTIME, rt.handle().clone())
        .start(rt.handle().clone())
        .expect_err("duplicate");
    assert!(matches!(err, lagscope::Error::DuplicateRuntime(_)), "{err}");
}

#[test]
fn starts_and_stops_from_inside_the_watched_runtime() {
    let rt = runtime(2);
    let seq = rt.block_on(async {
        let agent = Agent::builder()
            .sample_interval(Duration::from_millis(20))
            .start(tokio::runtime::Handle::current())
            .expect("start");
        let mut seen = None;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(s) = agent.snapshot() {
                seen = Some(s.seq);
                break;
            }
        }
        let stopped = Instant::now();
        drop(agent);
        // The threads wait on a condition variable, so joining is immediate.
        assert!(stopped.elapsed() < Duration::from_secs(1));
        seen
    });
    assert!(
        seq.is_some(),
        "a sample arrived while running inside the runtime"
    );
}

#[test]
fn samples_are_appended_to_the_json_lines_file() {
    let rt = runtime(1);
    let dir = std::env::temp_dir().join(format!("lagscope-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("samples.jsonl");
    let _ = std::fs::remove_file(&path);
    let agent = Agent::builder()
        .service("file-test")
        .sample_interval(Duration::from_millis(20))
        .file(&path)
        .start(rt.handle().clone())
        .expect("start");
    let mut seq = None;
    for _ in 0..3 {
        seq = Some(next_sample(&agent, seq, Duration::from_secs(5)).seq);
    }
    agent.shutdown();
    let text = std::fs::read_to_string(&path).expect("file written");
    let samples: Vec<Sample> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a sample"))
        .collect();
    assert!(samples.len() >= 3, "{} lines", samples.len());
    assert!(samples.iter().all(|s| s.service == "file-test"));
    assert!(samples.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unwritable_file_is_a_clear_error() {
    let rt = runtime(1);
    let err = Agent::builder()
        .file("/nonexistent-dir/lagscope/samples.jsonl")
        .start(rt.handle().clone())
        .expect_err("cannot open");
    assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
}

#[test]
fn fields_this_build_cannot_measure_are_absent() {
    let rt = runtime(1);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(20))
        .start(rt.handle().clone())
        .expect("start");
    let s = next_sample(&agent, None, Duration::from_secs(5));
    let main = s.runtime(MAIN_RUNTIME).expect("main");
    assert_eq!(main.blocking_queue_depth.is_some(), cfg!(tokio_unstable));
    // This test binary does not install the counting allocator.
    assert_eq!(s.memory.heap_live_bytes, None);
    assert!(s.memory.rss_bytes.is_some() || !cfg!(target_os = "linux"));
}

#[cfg(tokio_unstable)]
#[test]
fn poll_hooks_measure_the_exact_block_per_worker() {
    let hooks = lagscope::PollHooks::with_long_poll_threshold(Duration::from_millis(10));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    hooks.install(&mut builder);
    let rt = builder.build().expect("runtime");
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(100))
        .poll_hooks(MAIN_RUNTIME, &hooks)
        .start(rt.handle().clone())
        .expect("start");
    let first = next_sample(&agent, None, Duration::from_secs(5)).seq;
    rt.spawn(async { std::thread::sleep(Duration::from_millis(50)) });
    let mut seq = first;
    let mut found = None;
    for _ in 0..5 {
        let s = next_sample(&agent, Some(seq), Duration::from_secs(5));
        seq = s.seq;
        let main = s.runtime(MAIN_RUNTIME).expect("main").clone();
        if main.poll.as_ref().is_some_and(|p| p.long_polls > 0) {
            found = Some(main);
            break;
        }
    }
    let main = found.expect("the long poll was seen");
    let poll = main.poll.expect("hooks installed");
    assert_eq!(poll.long_polls, 1);
    assert!(poll.max_us >= 50_000 && poll.max_us < 150_000, "{poll:?}");
    let long_on_workers: u64 = main.worker.iter().filter_map(|w| w.long_polls).sum();
    assert_eq!(long_on_workers, 1, "attributed to the worker that ran it");
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[test]
fn the_stack_of_a_blocked_worker_names_the_blocking_function() {
    #[inline(never)]
    fn handler_that_blocks() {
        std::thread::sleep(Duration::from_millis(300));
        std::hint::black_box(());
    }
    let rt = runtime(2);
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(lagscope::low_level::stack::current_tid());
        handler_that_blocks();
    });
    let tid = rx.recv().expect("worker tid");
    std::thread::sleep(Duration::from_millis(50));
    let frames =
        lagscope::low_level::stack::capture(tid, Duration::from_secs(2)).expect("captured");
    let names: Vec<String> = lagscope::low_level::stack::symbolize(&frames)
        .into_iter()
        .filter_map(|f| f.function)
        .collect();
    let blocking = names
        .iter()
        .position(|n| n.contains("handler_that_blocks"))
        .unwrap_or_else(|| panic!("{names:#?}"));
    // Below it: the tokio worker that polled the task.
    assert!(
        names[blocking..].iter().any(|n| n.contains("tokio")),
        "{names:#?}"
    );
}

/// A two-worker runtime, with poll hooks if asked (tokio_unstable only).
#[cfg(target_os = "linux")]
fn stall_runtime(with_hooks: bool) -> (tokio::runtime::Runtime, lagscope::Builder) {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    let agent = Agent::builder().sample_interval(Duration::from_millis(50));
    #[cfg(tokio_unstable)]
    if with_hooks {
        let hooks = lagscope::PollHooks::new();
        hooks.install(&mut builder);
        let rt = builder.build().expect("runtime");
        return (rt, agent.poll_hooks(MAIN_RUNTIME, &hooks));
    }
    assert!(!with_hooks, "poll hooks need tokio_unstable");
    (builder.build().expect("runtime"), agent)
}

#[cfg(target_os = "linux")]
fn watchdog_names_the_function_that_stalls_a_worker(with_hooks: bool, computing: bool) {
    #[inline(never)]
    fn stalls_the_worker(d: Duration, computing: bool) {
        if computing {
            let end = Instant::now() + d;
            let mut x = 0u64;
            while Instant::now() < end {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        } else {
            std::thread::sleep(d);
        }
        std::hint::black_box(());
    }
    let (rt, agent) = stall_runtime(with_hooks);
    let agent = agent
        .stall_threshold(Duration::from_millis(20))
        .start(rt.handle().clone())
        .expect("start");
    // A poll that computes blocks its worker on an overloaded machine too,
    // though it gets only a share of a CPU.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _spinners = computing.then(|| Spinners::start(cores));
    next_sample(&agent, None, Duration::from_secs(5));
    rt.spawn(async move { stalls_the_worker(Duration::from_millis(600), computing) });

    let (mut live, mut finished) = (None, None);
    let mut seq = None;
    let end = Instant::now() + Duration::from_secs(10);
    while finished.is_none() && Instant::now() < end {
        let s = next_sample(&agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        for e in s.stalls {
            if e.ongoing {
                live = Some(e);
            } else {
                finished = Some(e);
            }
        }
    }
    let live = live.expect("the stall was reported while it lasted");
    assert!(
        live.blocking_function
            .as_deref()
            .is_some_and(|f| f.contains("stalls_the_worker")),
        "{live:#?}"
    );
    let finished = finished.expect("the stall was reported when it ended");
    assert_eq!(finished.id, live.id);
    let expected = if with_hooks {
        lagscope::StallDetection::PollHooks
    } else {
        lagscope::StallDetection::WorkerMetrics
    };
    assert_eq!(finished.detection, expected);
    // Exact with the hooks; from published busy time without them.
    let slack = if with_hooks { 30_000 } else { 60_000 };
    assert!(
        finished.duration_us >= 600_000 - slack / 2 && finished.duration_us < 600_000 + slack,
        "duration {} µs for a 600 ms block",
        finished.duration_us
    );
    assert!(
        finished.captures() >= 2,
        "a long stall is captured repeatedly"
    );
    assert!(finished
        .blocking_function
        .as_deref()
        .is_some_and(|f| f.contains("stalls_the_worker")));
    if with_hooks {
        let spawned = finished.spawned_at.as_deref().unwrap_or_default();
        assert!(spawned.contains("agent.rs"), "spawned at {spawned:?}");
        assert!(finished.task_id.is_some());
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_watchdog_names_the_blocking_function_from_worker_metrics() {
    watchdog_names_the_function_that_stalls_a_worker(false, false);
}

#[cfg(target_os = "linux")]
#[test]
fn the_watchdog_names_a_computing_function_on_an_overloaded_machine() {
    watchdog_names_the_function_that_stalls_a_worker(false, true);
}

/// The first stall the agent reports as ended, within 10 s.
fn first_finished_stall(agent: &lagscope::AgentHandle) -> lagscope::StallEvent {
    let mut seq = None;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let s = next_sample(agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        if let Some(e) = s.stalls.into_iter().find(|e| !e.ongoing) {
            return e;
        }
    }
    panic!("no stall was reported as ended within 10 s");
}

/// A stall that begins as the agent starts, while the watchdog still reads
/// the symbol tables, is seen with its true start and named.
#[cfg(target_os = "linux")]
#[test]
fn a_stall_in_the_agents_first_moments_keeps_its_true_start() {
    #[inline(never)]
    fn blocks_at_once(d: Duration) {
        std::thread::sleep(d);
        std::hint::black_box(());
    }
    let (rt, agent) = stall_runtime(false);
    let agent = agent.start(rt.handle().clone()).expect("start");
    rt.spawn(async { blocks_at_once(Duration::from_millis(600)) });
    let finished = first_finished_stall(&agent);
    assert!(
        finished.duration_us >= 500_000,
        "a 600 ms block measured {} µs",
        finished.duration_us
    );
    assert!(
        finished
            .blocking_function
            .as_deref()
            .is_some_and(|f| f.contains("blocks_at_once")),
        "{finished:#?}"
    );
}

/// A block that begins after the runtime has been idle for seconds, when
/// the watchdog checks only every 100 ms, is still caught and named, with
/// its start and length right.
#[cfg(target_os = "linux")]
fn a_block_after_a_quiet_spell_keeps_its_start_and_length(with_hooks: bool) {
    #[inline(never)]
    fn wakes_to_block(d: Duration) {
        // Two sleeps, so the linker does not fold it into another test's
        // identical function (and name that one).
        std::thread::sleep(d / 2);
        std::thread::sleep(d / 2);
        std::hint::black_box(());
    }
    let (rt, agent) = stall_runtime(with_hooks);
    let agent = agent.start(rt.handle().clone()).expect("start");
    // Quiet for well past the watchdog's one second.
    std::thread::sleep(Duration::from_millis(2500));
    let began_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    rt.spawn(async { wakes_to_block(Duration::from_millis(300)) });
    let finished = first_finished_stall(&agent);
    assert!(
        finished
            .blocking_function
            .as_deref()
            .is_some_and(|f| f.contains("wakes_to_block")),
        "{finished:#?}"
    );
    assert!(
        (270_000..360_000).contains(&finished.duration_us),
        "a 300 ms block measured {} µs",
        finished.duration_us
    );
    assert!(
        finished.started_ms + 5 >= began_ms && finished.started_ms <= began_ms + 30,
        "started at {} for a block begun at {began_ms}",
        finished.started_ms
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_block_after_a_quiet_spell_keeps_its_start_and_length_from_worker_metrics() {
    a_block_after_a_quiet_spell_keeps_its_start_and_length(false);
}

#[cfg(all(tokio_unstable, target_os = "linux"))]
#[test]
fn a_block_after_a_quiet_spell_keeps_its_start_and_length_from_poll_hooks() {
    a_block_after_a_quiet_spell_keeps_its_start_and_length(true);
}

#[cfg(all(tokio_unstable, target_os = "linux"))]
#[test]
fn the_watchdog_names_the_blocking_function_from_poll_hooks() {
    watchdog_names_the_function_that_stalls_a_worker(true, false);
}

#[cfg(all(tokio_unstable, target_os = "linux"))]
#[test]
fn the_watchdog_names_a_computing_function_on_an_overloaded_machine_from_poll_hooks() {
    watchdog_names_the_function_that_stalls_a_worker(true, true);
}

/// Threads that keep every core busy until dropped, so the runtime's workers
/// wait for a CPU now and then, in the middle of their polls.
struct Spinners(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Vec<std::thread::JoinHandle<()>>,
);

impl Spinners {
    fn start(n: usize) -> Spinners {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                })
            })
            .collect();
        Spinners(stop, threads)
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.1.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(target_os = "linux")]
fn healthy_work_reports_no_stalls(with_hooks: bool) {
    let (rt, agent) = stall_runtime(with_hooks);
    // An overloaded machine preempts workers in the middle of short polls:
    // that is not a poll that blocks.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _spinners = Spinners::start(cores);
    let agent = agent.start(rt.handle().clone()).expect("start");
    // Many short polls, some yielding, none long.
    rt.spawn(async {
        let end = Instant::now() + Duration::from_millis(800);
        while Instant::now() < end {
            for _ in 0..50 {
                tokio::spawn(async {
                    let mut h = 0u64;
                    for i in 0..1_000u64 {
                        h = h.wrapping_mul(31).wrapping_add(i);
                    }
                    std::hint::black_box(h);
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut seq = None;
    for _ in 0..15 {
        let s = next_sample(&agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        assert!(s.stalls.is_empty(), "false alarm: {:#?}", s.stalls);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn healthy_work_reports_no_stalls_from_worker_metrics() {
    healthy_work_reports_no_stalls(false);
}

#[cfg(all(tokio_unstable, target_os = "linux"))]
#[test]
fn healthy_work_reports_no_stalls_from_poll_hooks() {
    healthy_work_reports_no_stalls(true);
}

#[cfg(target_os = "linux")]
#[test]
fn stall_news_does_not_wait_for_the_next_regular_sample() {
    let (rt, agent) = stall_runtime(false);
    let agent = agent
        .sample_interval(Duration::from_secs(5))
        .start(rt.handle().clone())
        .expect("start");
    std::thread::sleep(Duration::from_millis(300));
    let blocked_at = Instant::now();
    rt.spawn(async { std::thread::sleep(Duration::from_millis(400)) });
    let seen = |ongoing: bool| {
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            if agent
                .snapshot()
                .is_some_and(|s| s.stalls.iter().any(|e| e.ongoing == ongoing))
            {
                return Some(blocked_at.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    };
    let started = seen(true).expect("the stall was published while it lasted");
    let ended = seen(false).expect("its end was published");
    // With 5 s between regular samples, both arrive long before the next one.
    assert!(started < Duration::from_secs(2), "{started:?}");
    assert!(ended < Duration::from_secs(2), "{ended:?}");
}
