//! Cost of `lagscope::instrument`: the same futures polled bare and wrapped,
//! side by side.
//!
//! `cargo bench -p lagscope --bench task_monitor`
//!
//! Criterion measures both; a final interleaved pass (rounds alternate the
//! two, so machine noise hits both alike) prints the cost per instrumented
//! poll in ns and per instrumented future (one creation, one poll, one
//! completion), with the ratio of wall times.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};

/// Returns `Pending` (waking itself) `left` times, then `Ready`: one poll
/// per step, no other work, so the wrapper's cost is what is measured.
struct Steps {
    left: u32,
}

impl Future for Steps {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.left == 0 {
            return Poll::Ready(());
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

const STEPS: u32 = 1000;

/// How the futures are wrapped.
#[derive(Clone, Copy, PartialEq)]
enum Wrap {
    /// Not at all.
    Bare,
    /// tokio-metrics' `TaskMonitor` alone (its defaults), for reference.
    TokioMetrics,
    /// `lagscope::instrument`: tokio-metrics plus per-request histograms.
    Lagscope,
}

/// `futures` futures of `STEPS` polls each; returns the wall time.
fn many_polls(rt: &tokio::runtime::Runtime, futures: u64, wrap: Wrap) -> Duration {
    let monitor = lagscope::TaskMonitor::named("bench: polls");
    let reference = tokio_metrics::TaskMonitor::new();
    let start = Instant::now();
    for _ in 0..futures {
        let f = Steps { left: STEPS };
        match wrap {
            Wrap::Bare => rt.block_on(f),
            Wrap::TokioMetrics => rt.block_on(reference.instrument(f)),
            Wrap::Lagscope => rt.block_on(monitor.instrument(f)),
        }
    }
    start.elapsed()
}

/// `n` one-poll futures inside one task: creation, poll and completion.
fn many_futures(rt: &tokio::runtime::Runtime, n: u64, instrumented: bool) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        for i in 0..n {
            if instrumented {
                black_box(lagscope::instrument("bench: futures", async { black_box(i) }).await);
            } else {
                black_box(async { black_box(i) }.await);
            }
        }
    });
    start.elapsed()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn criterion_benches(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("task_monitor");
    group.bench_function("1000 polls bare", |b| {
        b.iter_custom(|iters| many_polls(&rt, iters, Wrap::Bare))
    });
    group.bench_function("1000 polls tokio-metrics TaskMonitor", |b| {
        b.iter_custom(|iters| many_polls(&rt, iters, Wrap::TokioMetrics))
    });
    group.bench_function("1000 polls lagscope::instrument", |b| {
        b.iter_custom(|iters| many_polls(&rt, iters, Wrap::Lagscope))
    });
    group.bench_function("future bare", |b| {
        b.iter_custom(|iters| many_futures(&rt, iters, false))
    });
    group.bench_function("future instrumented", |b| {
        b.iter_custom(|iters| many_futures(&rt, iters, true))
    });
    group.finish();
}

/// Median, p25 and p75 of `v`.
fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.25), q(0.75))
}

fn interleaved() {
    const ROUNDS: usize = 31;
    const FUTURES: u64 = 200;
    const ONE_POLL: u64 = 200_000;
    let rt = runtime();
    let mut per_poll = Vec::new();
    let mut per_poll_reference = Vec::new();
    let mut poll_ratio = Vec::new();
    let mut per_future = Vec::new();
    let mut future_ratio = Vec::new();
    for round in 0..ROUNDS {
        // Alternate which goes first so warm-up effects cancel.
        let pair = |f: &dyn Fn(bool) -> Duration| {
            if round % 2 == 0 {
                let b = f(false);
                (b, f(true))
            } else {
                let i = f(true);
                (f(false), i)
            }
        };
        let wrap = |lagscope: bool| if lagscope { Wrap::Lagscope } else { Wrap::Bare };
        let (bare, inst) = pair(&|i| many_polls(&rt, FUTURES, wrap(i)));
        let polls = (FUTURES * u64::from(STEPS + 1)) as f64;
        per_poll.push((inst.as_secs_f64() - bare.as_secs_f64()) * 1e9 / polls);
        poll_ratio.push(inst.as_secs_f64() / bare.as_secs_f64());
        let reference = |tm: bool| if tm { Wrap::TokioMetrics } else { Wrap::Bare };
        let (bare, tm) = pair(&|i| many_polls(&rt, FUTURES, reference(i)));
        per_poll_reference.push((tm.as_secs_f64() - bare.as_secs_f64()) * 1e9 / polls);
        let (bare, inst) = pair(&|i| many_futures(&rt, ONE_POLL, i));
        per_future.push((inst.as_secs_f64() - bare.as_secs_f64()) * 1e9 / ONE_POLL as f64);
        future_ratio.push(inst.as_secs_f64() / bare.as_secs_f64());
    }
    println!("\ninterleaved, {ROUNDS} rounds (median, p25–p75):");
    let (m, a, b) = quartiles(per_poll);
    let (r, _, _) = quartiles(poll_ratio);
    println!(
        "  cost per instrumented poll: {m:.1} ns ({a:.1}–{b:.1}); time ratio vs bare {r:.2} \
         (bare = a poll that does nothing but wake itself, on a current-thread runtime)"
    );
    let (m, a, b) = quartiles(per_poll_reference);
    println!(
        "  for reference, tokio-metrics' TaskMonitor alone: {m:.1} ns per poll ({a:.1}–{b:.1})"
    );
    let (m, a, b) = quartiles(per_future);
    let (r, _, _) = quartiles(future_ratio);
    println!(
        "  cost per instrumented future (create, 1 poll, complete, name lookup): {m:.1} ns \
         ({a:.1}–{b:.1}); time ratio vs bare {r:.2}"
    );
}

criterion_group!(benches, criterion_benches);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved();
}
