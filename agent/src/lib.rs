//! lagscope: runtime diagnostics for tokio services, cheap enough to leave on.
//!
//! Link the crate, start an [`Agent`], and the service can answer: is the
//! scheduler lagging, how busy are the workers, is the blocking pool saturated,
//! is memory growing in the Rust heap or outside it, how much CPU is used?
//!
//! The agent samples on its own OS thread, never on the runtime it watches;
//! only a tiny lag-probe task is spawned there. Its memory is bounded: exporters
//! that fall behind lose the oldest samples and count them.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = tokio::runtime::Builder::new_multi_thread()
//!     .worker_threads(2)
//!     .enable_all()
//!     .build()
//!     .unwrap();
//! let agent = lagscope::Agent::builder()
//!     .service("checkout")
//!     .sample_interval(Duration::from_millis(50))
//!     .start(rt.handle().clone())
//!     .unwrap();
//!
//! let sample = loop {
//!     if let Some(s) = agent.snapshot() {
//!         break s;
//!     }
//!     std::thread::sleep(Duration::from_millis(10));
//! };
//! let main = sample.runtime(lagscope::MAIN_RUNTIME).unwrap();
//! assert_eq!(main.workers, 2);
//! assert!(main.busy_ratio <= 1.0);
//! agent.shutdown();
//! ```
//!
//! With `--cfg tokio_unstable` the samples also carry blocking-pool and
//! local-queue depths, and [`PollHooks`] give exact poll durations.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod agent;
pub mod alloc;
mod builder;
mod error;
mod export;
#[cfg(tokio_unstable)]
mod hooks;
pub mod low_level;
mod notices;
mod options;
mod platform;
#[cfg(target_os = "linux")]
mod profiler;
mod sampler;
mod span;
pub mod tasks;
#[cfg(target_os = "linux")]
mod watchdog;

pub use agent::AgentHandle;
pub use builder::{Agent, Builder, MAIN_RUNTIME};
pub use error::Error;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub use export::otel::OtelProtocol;
#[cfg(tokio_unstable)]
#[cfg_attr(docsrs, doc(cfg(tokio_unstable)))]
pub use hooks::{PollHooks, DEFAULT_LONG_POLL_THRESHOLD};
pub(crate) use lagscope_wire::sample;
pub use lagscope_wire::sample::{
    GaugeValue, LagStats, MemorySample, PollStats, ProcessSample, Profile, ProfileStack,
    RuntimeSample, Sample, StallDetection, StallEvent, StallStack, TaskSample, TaskTimes,
    WorkerSample,
};
#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub use options::MAX_STALL_THRESHOLD;
pub use options::{
    DEFAULT_BUFFER_CAPACITY, DEFAULT_LAG_PROBE_INTERVAL, DEFAULT_SAMPLE_INTERVAL,
    DEFAULT_STUCK_AFTER, MAX_BUFFER_CAPACITY,
};
#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub use profiler::DEFAULT_PROFILE_HZ;
pub use span::{tracing_layer, SpanLayer};
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use tasks::route;
pub use tasks::{instrument, Instrumented, TaskMonitor, DEFAULT_MAX_TASK_NAMES};
#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub use watchdog::DEFAULT_STALL_THRESHOLD;
