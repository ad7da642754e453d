//! Helpers the agent's test binaries share.

use std::time::{Duration, Instant};

use lagscope::{AgentHandle, Sample};

/// A multi-thread runtime with `workers` workers and every driver on.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Waits for a sample newer than `after`, for at most `timeout`.
pub fn next_sample(agent: &AgentHandle, after: Option<u64>, timeout: Duration) -> Sample {
    let end = Instant::now() + timeout;
    loop {
        if let Some(s) = agent.snapshot() {
            if after.is_none_or(|seq| s.seq > seq) {
                return s;
            }
        }
        assert!(Instant::now() < end, "no sample within {timeout:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
