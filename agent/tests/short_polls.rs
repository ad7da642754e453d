//! The stable-tokio stall detector on a worker saturated by short polls.
//! In its own test binary: it keeps a core busy for seconds, which would
//! starve the timing-sensitive tests it ran beside.

use std::time::{Duration, Instant};

mod common;

use common::{next_sample, runtime};
use lagscope::Agent;

/// One worker saturated by CPU-bound tasks that yield every ~0.5 ms: its
/// counters are published only every few dozen polls, so they freeze for
/// longer than the threshold — yet no poll is long. The worker metrics
/// detector must not call that a stall; a real block afterwards still is one.
#[cfg(target_os = "linux")]
#[test]
fn short_cpu_polls_on_one_busy_worker_are_not_a_stall_but_a_block_is() {
    #[inline(never)]
    fn blocks_after_short_polls(d: Duration) {
        std::thread::sleep(d);
        std::hint::black_box(());
    }
    let rt = runtime(1);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(50))
        .stall_threshold(Duration::from_millis(20))
        .start(rt.handle().clone())
        .expect("start");
    next_sample(&agent, None, Duration::from_secs(5));
    let busy_until = Instant::now() + Duration::from_millis(1500);
    // Batches of 32 tasks spawned from inside the runtime, as a service's
    // handlers would, each yielding between ~0.5 ms slices of CPU.
    rt.spawn(async move {
        while Instant::now() < busy_until {
            let batch: Vec<_> = (0..32u64)
                .map(|i| {
                    tokio::spawn(async move {
                        for round in 0..4u64 {
                            let mut h = i ^ round;
                            for k in 0..150_000u64 {
                                h = h.wrapping_mul(6364136223846793005).wrapping_add(k);
                            }
                            std::hint::black_box(h);
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in batch {
                let _ = t.await;
            }
        }
    });
    // The first batch meets tokio before it has tuned how often a worker
    // looks at the global queue (where the lag probe waits): the probe can
    // wait longer than the threshold there, and that moment may read as a
    // stall. From then on the worker runs a probe every few ms.
    std::thread::sleep(Duration::from_millis(300));
    let warm_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut seq = Some(next_sample(&agent, None, Duration::from_secs(5)).seq);
    let mut false_stalls = Vec::new();
    while Instant::now() < busy_until {
        let s = next_sample(&agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        // Ongoing news of a stall that began in the first batch is not new.
        false_stalls.extend(s.stalls.into_iter().filter(|e| e.started_ms >= warm_ms));
    }
    assert!(
        false_stalls.is_empty(),
        "short polls read as stalls: {false_stalls:#?}"
    );
    // Settle, then a real block on the same worker is still caught.
    std::thread::sleep(Duration::from_millis(200));
    rt.spawn(async { blocks_after_short_polls(Duration::from_millis(300)) });
    the_block_is_reported_in(&agent, seq, "blocks_after_short_polls");
}

/// Two workers, each with one task that computes ~4 ms and yields, again
/// and again: every look at a worker's thread finds the same task in user
/// code, and its counters freeze for ~61 polls at a time. Only the poll
/// marks (stable tokio) tell its polls apart: no stall; a real block
/// afterwards still is one. (A tokio_unstable build does not mark polls;
/// there, poll hooks are the exact detector.)
#[cfg(all(target_os = "linux", not(tokio_unstable)))]
#[test]
fn a_task_that_yields_alone_on_its_worker_is_not_a_stall_but_a_block_is() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    #[inline(never)]
    fn blocks_after_a_yield_loop(d: Duration) {
        std::thread::sleep(d);
        std::hint::black_box(());
    }
    let rt = runtime(2);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(50))
        .stall_threshold(Duration::from_millis(20))
        .start(rt.handle().clone())
        .expect("start");
    let first = next_sample(&agent, None, Duration::from_secs(5));
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..2 {
        let stop = stop.clone();
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let end = Instant::now() + Duration::from_millis(4);
                let mut h = 1u64;
                while Instant::now() < end {
                    h = std::hint::black_box(h.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                tokio::task::yield_now().await;
            }
        });
    }
    let busy_until = Instant::now() + Duration::from_millis(2000);
    let mut seq = Some(first.seq);
    let mut false_stalls = Vec::new();
    while Instant::now() < busy_until {
        let s = next_sample(&agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        false_stalls.extend(s.stalls);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(
        false_stalls.is_empty(),
        "a yield loop read as stalls: {false_stalls:#?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    rt.spawn(async { blocks_after_a_yield_loop(Duration::from_millis(300)) });
    the_block_is_reported_in(&agent, seq, "blocks_after_a_yield_loop");
}

/// Waits for the next finished stall after sample `seq` and checks it is a
/// ~300 ms block in function `function`.
fn the_block_is_reported_in(agent: &lagscope::AgentHandle, mut seq: Option<u64>, function: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    let stall = loop {
        let s = next_sample(agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        if let Some(e) = s.stalls.into_iter().find(|e| !e.ongoing) {
            break e;
        }
        assert!(Instant::now() < end, "the block was not reported");
    };
    assert!(
        stall
            .blocking_function
            .as_deref()
            .is_some_and(|f| f.contains(function)),
        "{stall:#?}"
    );
    assert!(stall.duration_us >= 250_000, "{}", stall.duration_us);
}
