//! Every allocation sampled: blocks served from the reserved range and from
//! the wrapped allocator alike keep their contents through `realloc`, come
//! back zeroed from `alloc_zeroed` however often their memory was reused,
//! and leave the live samples and the counters when freed, on any thread.

#![cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
// The allocator API is `unsafe` to call: this test calls it directly.
#![allow(unsafe_code)]

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout, System};

use lagscope::alloc::{stats, Counting};

#[global_allocator]
static GLOBAL: Counting<System> = Counting::new(System);

const SIZES: [usize; 9] = [1, 8, 100, 256, 257, 1000, 4096, 4097, 70_000];
const ALIGNS: [usize; 6] = [1, 8, 64, 512, 4096, 8192];

fn pattern(i: usize) -> u8 {
    (i * 31 % 251) as u8 + 1
}

/// Allocates, fills, grows, shrinks and frees one block of each size and
/// alignment, checking its bytes at every step.
#[inline(never)]
fn exercises_every_kind_of_block(round: usize) {
    for &size in &SIZES {
        for &align in &ALIGNS {
            let layout = Layout::from_size_align(size, align).expect("layout");
            // SAFETY: non-zero size; every block is freed with its layout.
            unsafe {
                let zeroed = alloc_zeroed(layout);
                assert!(!zeroed.is_null());
                assert_eq!(zeroed as usize % align, 0);
                let bytes = std::slice::from_raw_parts(zeroed, size);
                assert!(
                    bytes.iter().all(|&b| b == 0),
                    "alloc_zeroed({size}, {align}) not zero in round {round}"
                );
                // Dirty it, so a reuse of this memory must zero it again.
                zeroed.write_bytes(0xAB, size);
                dealloc(zeroed, layout);

                let p = alloc(layout);
                assert!(!p.is_null());
                for i in 0..size {
                    *p.add(i) = pattern(i);
                }
                let grown_size = size * 3 + 5;
                let grown = realloc(p, layout, grown_size);
                assert!(!grown.is_null());
                assert_eq!(grown as usize % align, 0);
                for i in 0..size {
                    assert_eq!(*grown.add(i), pattern(i), "grown {size}/{align} at {i}");
                }
                let grown_layout = Layout::from_size_align(grown_size, align).expect("layout");
                let shrunk_size = size.div_ceil(2);
                let shrunk = realloc(grown, grown_layout, shrunk_size);
                assert!(!shrunk.is_null());
                for i in 0..shrunk_size {
                    assert_eq!(*shrunk.add(i), pattern(i), "shrunk {size}/{align} at {i}");
                }
                let shrunk_layout = Layout::from_size_align(shrunk_size, align).expect("layout");
                dealloc(shrunk, shrunk_layout);
            }
        }
    }
}

#[inline(never)]
fn keeps_blocks_for_another_thread(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![pattern(i); 16 + i % 4000]).collect()
}

/// One pass of the work: every kind of block, then blocks kept and freed
/// on another thread.
fn work() {
    for round in 0..20 {
        exercises_every_kind_of_block(round);
    }
    let kept = keeps_blocks_for_another_thread(20_000);
    for (i, block) in kept.iter().enumerate() {
        assert!(block.iter().all(|&b| b == pattern(i)));
    }
    std::thread::spawn(move || drop(kept))
        .join()
        .expect("freeing thread");
}

#[test]
fn sampled_blocks_keep_their_bytes_and_leave_the_live_samples_when_freed() {
    // First with no agent, whose own allocations would move the counters:
    // about every allocation sampled, and the counters balance exactly
    // (libtest's own threads may allocate at any moment, rarely: retried).
    lagscope::low_level::set_heap_sample_bytes(16);
    drop(vec![0u8; 64]);
    let balanced = (0..3).any(|_| {
        let before = stats().expect("installed").live_bytes;
        work();
        stats().expect("installed").live_bytes == before
    });
    assert!(balanced, "live bytes never balanced in 3 attempts");

    // Then with the agent reading the live samples.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let agent = lagscope::Agent::builder()
        .sample_interval(std::time::Duration::from_millis(100))
        .stall_threshold(std::time::Duration::ZERO)
        .profile_hz(0)
        .heap_sample_bytes(16)
        .start(rt.handle().clone())
        .expect("start");
    let kept = keeps_blocks_for_another_thread(20_000);
    let profile = agent.heap_profile().expect("heap sampling is on");
    assert!(profile.samples > 20_000, "{} samples", profile.samples);
    let kept_live = live_in(&profile, "keeps_blocks_for_another_thread");
    assert!(kept_live > 0, "kept blocks are live samples");
    std::thread::spawn(move || drop(kept))
        .join()
        .expect("freeing thread");
    work();

    let after = agent.heap_profile().expect("on");
    for function in [
        "exercises_every_kind_of_block",
        "keeps_blocks_for_another_thread",
    ] {
        let live = live_in(&after, function);
        assert_eq!(
            live, 0,
            "{function}: {live} bytes still live after every free"
        );
    }
    agent.shutdown();
}

fn live_in(profile: &lagscope::alloc::heap::HeapProfile, function: &str) -> u64 {
    profile
        .sites
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.contains(function)))
        .map(|s| s.live_bytes)
        .sum()
}
