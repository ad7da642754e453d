//! Heap profiling by allocation site, with the counting allocator installed
//! as this test process's global allocator: the estimated live bytes of
//! each site against the truth, on a workload with known sizes.

#![cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]

use std::alloc::System;

use lagscope::alloc::heap::{HeapProfile, HeapSite};
use lagscope::alloc::Counting;

#[global_allocator]
static GLOBAL: Counting<System> = Counting::new(System);

#[inline(never)]
fn keeps_small_blocks(into: &mut Vec<Vec<u8>>, n: usize) {
    for i in 0..n {
        into.push(vec![i as u8; 1000]);
    }
}

#[inline(never)]
fn keeps_large_blocks(into: &mut Vec<Vec<u8>>, n: usize) {
    for i in 0..n {
        into.push(vec![i as u8; 64 * 1024]);
    }
}

#[inline(never)]
fn churns(n: usize) {
    for i in 0..n {
        std::hint::black_box(vec![i as u8; 4096]);
    }
}

/// Bytes of the sites whose stack holds `function`, as `field` reads them.
fn bytes_in(profile: &HeapProfile, function: &str, field: fn(&HeapSite) -> u64) -> u64 {
    profile
        .sites
        .iter()
        .filter(|s| s.frames.iter().any(|f| f.contains(function)))
        .map(field)
        .sum()
}

fn live_in(profile: &HeapProfile, function: &str) -> u64 {
    bytes_in(profile, function, |s| s.live_bytes)
}

fn allocated_in(profile: &HeapProfile, function: &str) -> u64 {
    bytes_in(profile, function, |s| s.allocated_bytes)
}

/// Runs `work` in `rounds` parts, taking a profile after each so that the
/// sampled stacks never outnumber the agent's slots between two unwinds;
/// returns the bytes allocated per function over all (profiles count them
/// since sampling started).
fn in_rounds(
    agent: &lagscope::AgentHandle,
    rounds: usize,
    mut work: impl FnMut(usize),
    functions: &[&str],
) -> Vec<u64> {
    let allocated_now = || {
        let p = agent.heap_profile().expect("heap sampling is on");
        functions
            .iter()
            .map(|f| allocated_in(&p, f))
            .collect::<Vec<_>>()
    };
    let before = allocated_now();
    for round in 0..rounds {
        work(round);
        let _ = agent.heap_profile();
    }
    allocated_now()
        .into_iter()
        .zip(before)
        .map(|(now, then)| now - then)
        .collect()
}

#[test]
fn live_bytes_per_site_are_estimated_within_ten_percent() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mean = 8 * 1024;
    let agent = lagscope::Agent::builder()
        .sample_interval(std::time::Duration::from_millis(100))
        .stall_threshold(std::time::Duration::ZERO)
        .profile_hz(0)
        .heap_sample_bytes(mean)
        .start(rt.handle().clone())
        .expect("start");
    // Let this thread pick up the interval before the measured work.
    churns(64);
    let _ = agent.heap_profile();

    let mut small = Vec::with_capacity(32 * 1024);
    let mut large = Vec::with_capacity(256);
    let functions = ["keeps_small_blocks", "keeps_large_blocks", "churns"];
    // Each round: 256 kB in 1000 B blocks kept, 128 KiB in 64 KiB blocks
    // kept, 256 KiB allocated and freed: ~80 samples.
    let allocated = in_rounds(
        &agent,
        128,
        |_| {
            keeps_small_blocks(&mut small, 256);
            keeps_large_blocks(&mut large, 2);
            churns(64);
        },
        &functions,
    );
    // Half the small blocks go: a freed sample leaves the live set.
    small.truncate(16 * 1024);
    small.shrink_to_fit();

    let profile = agent.heap_profile().expect("heap sampling is on");
    assert_eq!(profile.sample_bytes, mean);
    assert!(profile.samples > 1000, "{profile:?}");
    assert_eq!(profile.dropped, 0, "stacks lost: {profile:?}");
    let check = |what: &str, estimated: u64, truth: u64| {
        let error = (estimated as f64 - truth as f64).abs() / truth as f64;
        eprintln!(
            "{what}: estimated {estimated}, truth {truth} ({:+.1} %)",
            (estimated as f64 / truth as f64 - 1.0) * 100.0
        );
        assert!(
            error <= 0.10,
            "{what}: estimated {estimated}, truth {truth} ({:.1} % off); sites: {:#?}",
            error * 100.0,
            profile.sites.iter().take(8).collect::<Vec<_>>()
        );
    };
    check(
        "small blocks, live",
        live_in(&profile, "keeps_small_blocks"),
        16 * 1024 * 1000,
    );
    check(
        "large blocks, live",
        live_in(&profile, "keeps_large_blocks"),
        256 * 64 * 1024,
    );
    check("small blocks, allocated", allocated[0], 32 * 1024 * 1000);
    check("large blocks, allocated", allocated[1], 256 * 64 * 1024);
    check("churn, allocated", allocated[2], 8 * 1024 * 4096);
    let churn_live = live_in(&profile, "churns");
    assert!(
        churn_live < 64 * 1024,
        "freed blocks still counted live: {churn_live}"
    );
    drop(small);
    drop(large);
    let after = agent.heap_profile().expect("on");
    assert!(
        live_in(&after, "keeps_") < 1024 * 1024,
        "{:#?}",
        after.sites.iter().take(4).collect::<Vec<_>>()
    );
    agent.shutdown();
}
