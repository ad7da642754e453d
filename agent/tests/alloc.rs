//! The counting allocator installed as the global allocator of this test
//! process (one test, so no other test allocates concurrently).

use std::alloc::System;
use std::time::Duration;

use lagscope::alloc::{stats, Counting};

#[global_allocator]
static GLOBAL: Counting<System> = Counting::new(System);

#[test]
fn live_bytes_track_allocations_and_frees_exactly_across_threads() {
    // libtest's own threads may allocate at any moment (rarely), so an
    // attempt whose figures another thread disturbed is retried.
    let balanced = (0..5).any(|_| {
        let before = stats().expect("installed").live_bytes;
        let keep: Vec<Vec<u8>> = (0..100).map(|_| vec![7u8; 10_000]).collect();
        let during = stats().expect("installed").live_bytes;
        // The outer Vec adds 100 * 24 bytes.
        let grew_exactly = during - before == 100 * 10_000 + 100 * 24;

        // Memory allocated on one thread and freed on another still balances.
        let handle = std::thread::spawn(move || drop(keep));
        handle.join().expect("freeing thread");
        let after = stats().expect("installed").live_bytes;
        grew_exactly && after == before
    });
    assert!(balanced, "live bytes never balanced in 5 attempts");

    // The agent reports the same figures in its samples.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let agent = lagscope::Agent::builder()
        .sample_interval(Duration::from_millis(20))
        .start(rt.handle().clone())
        .expect("start");
    let sample = loop {
        if let Some(s) = agent.snapshot() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(sample.memory.heap_live_bytes.expect("counted") > 0);
    assert!(sample.memory.heap_peak_bytes >= sample.memory.heap_live_bytes);
}
