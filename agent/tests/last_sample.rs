//! An agent that stops sends what its sources hold: the CPU profile and heap
//! window under way go out as it stops, so a watch that ends between two
//! windows keeps its end. A process of its own: one profiler and one
//! heap sampler per process, and the counting allocator installed.

#![cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]

use std::alloc::System;
use std::time::{Duration, Instant};

use lagscope::alloc::Counting;
use lagscope::{Agent, Sample};

#[global_allocator]
static GLOBAL: Counting<System> = Counting::new(System);

#[inline(never)]
fn burns_cpu_for(d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut h = 1u64;
    while Instant::now() < end {
        for i in 0..10_000u64 {
            h = h.wrapping_mul(31).wrapping_add(i);
        }
        h = std::hint::black_box(h);
    }
    h
}

#[inline(never)]
fn keeps_blocks(into: &mut Vec<Vec<u8>>, n: usize) {
    for _ in 0..n {
        into.push(std::hint::black_box(vec![7u8; 4096]));
    }
}

#[test]
fn the_profile_and_heap_window_under_way_go_out_as_the_agent_stops() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("lagscope-last-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("samples.jsonl");
    let agent = Agent::builder()
        .service("last-sample")
        .sample_interval(Duration::from_millis(100))
        .profile_hz(99)
        .heap_sample_bytes(16 * 1024)
        .file(&path)
        .start(rt.handle().clone())
        .expect("start");
    // Well inside the first windows: 10 s of profile, 5 s of heap.
    let kept = rt.block_on(async {
        tokio::spawn(async {
            let mut kept = Vec::new();
            keeps_blocks(&mut kept, 1024);
            burns_cpu_for(Duration::from_millis(700));
            kept
        })
        .await
        .expect("task")
    });
    agent.shutdown();
    let text = std::fs::read_to_string(&path).expect("file written");
    let _ = std::fs::remove_dir_all(&dir);
    let samples: Vec<Sample> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a sample"))
        .collect();
    // The windows are 10 s (profile) and 5 s (heap): whatever of them the
    // samples carry was sent as the agent stopped (by its last sample, or
    // by one taken while the sources were stopping).
    let profiled: u64 = samples
        .iter()
        .flat_map(|s| &s.profiles)
        .filter(|p| p.request_id.is_none())
        .flat_map(|p| &p.stacks)
        .filter(|s| s.frames.iter().any(|f| f.contains("burns_cpu_for")))
        .map(|s| u64::from(s.count))
        .sum();
    assert!(
        profiled >= 10,
        "the profile sent at the stop has {profiled} samples in burns_cpu_for"
    );
    let marked: Vec<bool> = samples.iter().map(|s| s.last).collect();
    assert_eq!(
        marked.iter().filter(|&&l| l).count(),
        1,
        "one sample is marked last: {marked:?}"
    );
    assert_eq!(marked.last(), Some(&true), "the last one: {marked:?}");
    let heap = samples
        .iter()
        .filter_map(|s| s.heap.as_ref())
        .next_back()
        .expect("a heap window, sent at the stop");
    let live: u64 = heap
        .sites
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.contains("keeps_blocks")))
        .map(|s| s.live_bytes)
        .sum();
    assert!(
        live >= 1 << 20,
        "keeps_blocks holds 4 MiB; the window sent at the stop says {live} B: {heap:?}"
    );
    drop(kept);
}
