//! Watches a small service that blocks its runtime every few seconds and leaks
//! a little memory, printing one line per sample.
//!
//! `cargo run --release --example watch -- [seconds]`
//!
//! Expect: lag max near 300 ms in the samples that contain a block (one worker,
//! so nothing else can pick up the probe), the busy ratio jumping with it, and
//! heap live bytes growing by ~1 MiB a second.

use std::alloc::System;
use std::time::Duration;

use lagscope::alloc::Counting;
use lagscope::{Sample, MAIN_RUNTIME};

#[global_allocator]
static GLOBAL: Counting<System> = Counting::new(System);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("expected seconds, got {s:?}"))?,
        None => 10,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let agent = lagscope::Agent::builder()
        .service("watch-example")
        .start(rt.handle().clone())?;

    rt.spawn(async {
        let mut leak: Vec<Vec<u8>> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for i in 0u64.. {
            tick.tick().await;
            leak.push(vec![1; 100 * 1024]);
            if i % 30 == 29 {
                // The bug lagscope is for: blocking inside async code.
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    });

    println!("lag p99/max (ms) | busy | tasks | heap MiB | rss MiB | external MiB | cpu");
    let mut last = None;
    let end = std::time::Instant::now() + Duration::from_secs(seconds);
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(s) = agent.snapshot().filter(|s| Some(s.seq) != last) {
            last = Some(s.seq);
            println!("{}", line(&s));
        }
    }
    agent.shutdown();
    Ok(())
}

fn line(s: &Sample) -> String {
    let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1048576.0));
    let Some(r) = s.runtime(MAIN_RUNTIME) else {
        return "no runtime".into();
    };
    let lag = r.lag.as_ref().map_or("-".into(), |l| {
        format!(
            "{:.1}/{:.1}",
            l.p99_us as f64 / 1000.0,
            l.max_us as f64 / 1000.0
        )
    });
    format!(
        "{lag:>16} | {:>4.2} | {:>5} | {:>8} | {:>7} | {:>12} | {}",
        r.busy_ratio,
        r.alive_tasks,
        mib(s.memory.heap_live_bytes),
        mib(s.memory.rss_bytes),
        mib(s.memory.external_bytes),
        s.process
            .cpu_ratio
            .map_or("-".into(), |c| format!("{c:.2}")),
    )
}
