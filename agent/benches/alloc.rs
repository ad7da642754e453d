//! `Counting<System>` against `System`, at 1 and 8 threads.
//!
//! `cargo bench -p lagscope --bench alloc`
//!
//! Criterion measures each allocator; a final interleaved pass (rounds
//! alternate the two allocators, so machine noise hits both alike) prints the
//! slowdown as a ratio with its spread.
//!
//! Instruction counts, which unlike time are repeatable on a noisy machine:
//!
//! ```sh
//! cargo bench -p lagscope --bench alloc --no-run
//! for a in none system counting; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/deps/alloc-* --instructions $a 2>&1 | grep refs
//! done
//! ```
//!
//! (system − none) against (counting − none) is the counting allocator's cost
//! in instructions over 1 M allocations and frees on one thread; add
//! `counting-sampled` (heap sampling on, every 512 KiB on average, no agent)
//! for the cost of the sampling countdown and free filter on top.
//!
//! Heap sampling (`--heap`): an interleaved time ratio of `Counting<System>`
//! with heap sampling every 512 KiB (an agent unwinding the samples) against
//! it with sampling off, and the cost of one sampled allocation (every
//! allocation sampled, in bursts the agent's slots hold).
//!
//! ```sh
//! cargo bench -p lagscope --bench alloc -- --heap
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use lagscope::alloc::Counting;

static COUNTING: Counting<System> = Counting::new(System);

/// Sizes cycled through: small objects dominate real services.
const SIZES: [usize; 8] = [16, 24, 32, 48, 64, 128, 512, 4096];
const BATCH: usize = 64;

/// Allocates and frees `ops` blocks in batches of `BATCH` on the calling thread.
fn churn<A: GlobalAlloc>(alloc: &A, ops: u64) {
    let mut ptrs = [(std::ptr::null_mut::<u8>(), 0usize); BATCH];
    let mut done = 0;
    while done < ops {
        for (i, slot) in ptrs.iter_mut().enumerate() {
            let size = SIZES[i % SIZES.len()];
            let layout = Layout::from_size_align(size, 8).expect("valid layout");
            // SAFETY: non-zero size and valid alignment; freed below with the same layout.
            #[allow(unsafe_code)]
            let p = unsafe { alloc.alloc(layout) };
            *slot = (black_box(p), size);
        }
        for &(p, size) in &ptrs {
            let layout = Layout::from_size_align(size, 8).expect("valid layout");
            // SAFETY: `p` came from `alloc.alloc` with this layout and is freed once.
            #[allow(unsafe_code)]
            unsafe {
                alloc.dealloc(p, layout)
            };
        }
        done += BATCH as u64;
    }
}

/// Runs `churn` on `threads` threads at once; returns the wall time.
fn run<A: GlobalAlloc + Sync>(alloc: &A, threads: usize, ops_per_thread: u64) -> Duration {
    // What the agent's sampler does once per interval: shards of the threads
    // spawned by earlier iterations go back to the pool.
    lagscope::alloc::reclaim_exited_threads();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| churn(alloc, ops_per_thread));
        }
    });
    start.elapsed()
}

fn criterion_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc");
    for threads in [1usize, 8] {
        group.bench_with_input(BenchmarkId::new("System", threads), &threads, |b, &t| {
            b.iter_custom(|iters| run(&System, t, iters.max(BATCH as u64)))
        });
        group.bench_with_input(
            BenchmarkId::new("Counting<System>", threads),
            &threads,
            |b, &t| b.iter_custom(|iters| run(&COUNTING, t, iters.max(BATCH as u64))),
        );
    }
    group.finish();
}

fn interleaved_ratio() {
    const ROUNDS: usize = 31;
    const OPS: u64 = 2_000_000;
    println!("\ninterleaved: Counting<System> time / System time, {ROUNDS} rounds of {OPS} ops per thread");
    for threads in [1usize, 8] {
        let mut ratios = Vec::with_capacity(ROUNDS);
        for round in 0..ROUNDS {
            // Alternate which goes first so warm-up effects cancel.
            let (base, counted) = if round % 2 == 0 {
                let b = run(&System, threads, OPS);
                (b, run(&COUNTING, threads, OPS))
            } else {
                let c = run(&COUNTING, threads, OPS);
                (run(&System, threads, OPS), c)
            };
            ratios.push(counted.as_secs_f64() / base.as_secs_f64());
        }
        ratios.sort_by(f64::total_cmp);
        let q = |p: f64| ratios[((ratios.len() - 1) as f64 * p).round() as usize];
        println!(
            "  {threads} thread(s): ratio median {:.3} (p25 {:.3}, p75 {:.3}, min {:.3}, max {:.3})",
            q(0.5),
            q(0.25),
            q(0.75),
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
}

criterion_group!(benches, criterion_benches);

/// Per-allocation cost of heap sampling at the default interval, and of
/// one sampled allocation.
fn heap_sampling() {
    const ROUNDS: usize = 31;
    const OPS: u64 = 2_000_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // Counting is not this bench's global allocator, so its allocations
    // are the ones sampled: the agent unwinds them.
    churn(&COUNTING, BATCH as u64);
    let agent = lagscope::Agent::builder()
        .stall_threshold(Duration::ZERO)
        .profile_hz(0)
        .heap_sample_bytes(lagscope::alloc::heap::DEFAULT_HEAP_SAMPLE_BYTES)
        .start(rt.handle().clone())
        .expect("agent");
    let mut ratios = Vec::with_capacity(ROUNDS);
    let mut extra_ns = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let timed = |bytes: u64| {
            lagscope::low_level::set_heap_sample_bytes(bytes);
            // Let this thread draw its interval under the new setting.
            churn(&COUNTING, 4096);
            run(&COUNTING, 1, OPS)
        };
        let default = lagscope::alloc::heap::DEFAULT_HEAP_SAMPLE_BYTES;
        let (off, on) = if round % 2 == 0 {
            let off = timed(0);
            (off, timed(default))
        } else {
            let on = timed(default);
            (timed(0), on)
        };
        ratios.push(on.as_secs_f64() / off.as_secs_f64());
        extra_ns.push((on.as_secs_f64() - off.as_secs_f64()) * 1e9 / (2 * OPS) as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (r, rmin, rmax) = median(&mut ratios);
    let (e, emin, emax) = median(&mut extra_ns);
    println!(
        "\nheap sampling every 512 KiB, {ROUNDS} interleaved rounds of {OPS} allocations + frees:"
    );
    println!("  time ratio on/off: median {r:.3} [{rmin:.3}..{rmax:.3}]");
    println!("  extra per allocation or free: median {e:.2} ns [{emin:.2}..{emax:.2}]");

    // One sampled allocation: every allocation sampled, in batches of 32
    // (the agent's stack slots hold them), the agent unwinding in between.
    let layout = Layout::from_size_align(64, 8).expect("layout");
    let big = Layout::from_size_align(128 * 1024, 8).expect("layout");
    // Allocates and frees one block past the thread's countdown, so that it
    // draws its next interval under the setting just made.
    let redraw = || {
        // SAFETY: valid layout; freed at once with it.
        #[allow(unsafe_code)]
        unsafe {
            COUNTING.dealloc(black_box(COUNTING.alloc(big)), big)
        };
    };
    let batch = || {
        let mut ptrs = [std::ptr::null_mut::<u8>(); 32];
        let start = Instant::now();
        for p in ptrs.iter_mut() {
            // SAFETY: valid layout; freed below with it.
            #[allow(unsafe_code)]
            let q = unsafe { COUNTING.alloc(layout) };
            *p = black_box(q);
        }
        let took = start.elapsed();
        for &p in &ptrs {
            // SAFETY: from `COUNTING.alloc` with this layout, freed once.
            #[allow(unsafe_code)]
            unsafe {
                COUNTING.dealloc(p, layout)
            };
        }
        took
    };
    let mut per_sample = Vec::new();
    for _ in 0..200 {
        lagscope::low_level::set_heap_sample_bytes(0);
        redraw();
        let unsampled = batch();
        lagscope::low_level::set_heap_sample_bytes(1);
        redraw();
        let _ = agent.heap_profile();
        let sampled = batch();
        per_sample.push((sampled.as_secs_f64() - unsampled.as_secs_f64()) * 1e9 / 32.0);
    }
    lagscope::low_level::set_heap_sample_bytes(0);
    let (s, smin, smax) = median(&mut per_sample);
    println!("  one sampled allocation: median {s:.0} ns [{smin:.0}..{smax:.0}] more than an unsampled one");
    agent.shutdown();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--instructions") {
        // One fixed single-threaded workload, nothing else, for callgrind.
        match args.get(i + 1).map(String::as_str) {
            Some("system") => churn(&System, 1_000_000),
            Some("counting") => churn(&COUNTING, 1_000_000),
            Some("counting-sampled") => {
                churn(&COUNTING, 1);
                lagscope::low_level::set_heap_sample_bytes(
                    lagscope::alloc::heap::DEFAULT_HEAP_SAMPLE_BYTES,
                );
                churn(&COUNTING, 1_000_000);
            }
            _ => {}
        }
        return;
    }
    if args.iter().any(|a| a == "--heap") {
        heap_sampling();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved_ratio();
}
