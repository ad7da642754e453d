//! Configuration: a builder with documented defaults, overridable from the
//! environment.
//!
//! Precedence, lowest first: the defaults below, then builder calls, then
//! `LAGSCOPE_*` environment variables (so operators can retune a deployed
//! binary without a rebuild).
//!
//! | option | default | environment |
//! |---|---|---|
//! | [`service`](Builder::service) | the executable's file name | `LAGSCOPE_SERVICE` |
//! | [`instance`](Builder::instance) | `<hostname>:<pid>` | `LAGSCOPE_INSTANCE` |
//! | [`sample_interval`](Builder::sample_interval) | [`DEFAULT_SAMPLE_INTERVAL`](crate::DEFAULT_SAMPLE_INTERVAL) | `LAGSCOPE_SAMPLE_INTERVAL` |
//! | [`lag_probe_interval`](Builder::lag_probe_interval) | [`DEFAULT_LAG_PROBE_INTERVAL`](crate::DEFAULT_LAG_PROBE_INTERVAL) | `LAGSCOPE_LAG_PROBE_INTERVAL` |
//! | [`buffer_capacity`](Builder::buffer_capacity) | [`DEFAULT_BUFFER_CAPACITY`](crate::DEFAULT_BUFFER_CAPACITY) | `LAGSCOPE_BUFFER_CAPACITY` |
//! | [`file`](Builder::file) | none | `LAGSCOPE_FILE` |
//! | [`collector`](Builder::collector) | none | `LAGSCOPE_COLLECTOR` |
//! | [`token`](Builder::token) | none | `LAGSCOPE_TOKEN` |
//! | [`ca_file`](Builder::ca_file) | Mozilla's root certificates | `LAGSCOPE_CA_FILE` |
//! | [`stall_threshold`](Builder::stall_threshold) (Linux) | 20 ms | `LAGSCOPE_STALL_THRESHOLD` |
//! | [`profile_hz`](Builder::profile_hz) (Linux) | 19 | `LAGSCOPE_PROFILE_HZ` |
//! | [`heap_sample_bytes`](Builder::heap_sample_bytes) (Linux x86_64, glibc) | 512 KiB with [`Counting`](crate::alloc::Counting) installed | `LAGSCOPE_HEAP_SAMPLE` |
//! | [`max_task_names`](Builder::max_task_names) | [`DEFAULT_MAX_TASK_NAMES`](crate::DEFAULT_MAX_TASK_NAMES) | `LAGSCOPE_MAX_TASK_NAMES` |
//! | [`wait_captures_per_second`](Builder::wait_captures_per_second) | 32 | `LAGSCOPE_WAIT_CAPTURES` (`0` for off) |
//! | [`stuck_after`](Builder::stuck_after) | [`DEFAULT_STUCK_AFTER`](crate::DEFAULT_STUCK_AFTER) | `LAGSCOPE_STUCK_AFTER` |
//! | `otel` (cargo feature `otel`) | off | `LAGSCOPE_OTEL` (`http`, `grpc`, `off`) plus the standard `OTEL_*` variables |
//!
//! Durations in the environment are written `250ms`, `1s`, `2m`, `500us`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::agent::{AgentHandle, GaugeFn, Setup};
use crate::error::Error;
#[cfg(tokio_unstable)]
use crate::hooks::PollHooks;
use crate::options::Options;
#[cfg(doc)]
use crate::options::{
    DEFAULT_BUFFER_CAPACITY, DEFAULT_LAG_PROBE_INTERVAL, DEFAULT_SAMPLE_INTERVAL,
};

// Name of the runtime passed to [`Builder::start`], from the metric table.
pub use lagscope_wire::metric::MAIN_RUNTIME;

/// Entry point: `Agent::builder()`.
#[derive(Debug)]
pub struct Agent(());

impl Agent {
    /// A builder with every option at its documented default.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// Configures and starts the agent. Get one from [`crate::Agent::builder`].
///
/// ```
/// use std::time::Duration;
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let agent = lagscope::Agent::builder()
///     .service("checkout")
///     .sample_interval(Duration::from_millis(50))
///     .start(rt.handle().clone())
///     .expect("valid configuration");
/// assert_eq!(agent.service(), "checkout");
/// agent.shutdown();
/// ```
#[must_use = "a builder does nothing until `start` is called"]
#[derive(Default)]
pub struct Builder {
    options: Options,
    runtimes: Vec<(String, Handle)>,
    #[cfg(tokio_unstable)]
    poll_hooks: Vec<(String, PollHooks)>,
    gauges: Vec<(String, GaugeFn)>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("options", &self.options)
            .field(
                "runtimes",
                &self.runtimes.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field(
                "gauges",
                &self.gauges.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Builder {
    /// The service this process belongs to; many processes (instances) can share
    /// one. Default: the executable's file name. Environment: `LAGSCOPE_SERVICE`.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.options.service = Some(name.into());
        self
    }

    /// This process's id within its service. Default: `<hostname>:<pid>`.
    /// Environment: `LAGSCOPE_INSTANCE`.
    pub fn instance(mut self, id: impl Into<String>) -> Self {
        self.options.instance = Some(id.into());
        self
    }

    /// Time between samples, 10 ms to 1 h. Default: [`DEFAULT_SAMPLE_INTERVAL`].
    /// Environment: `LAGSCOPE_SAMPLE_INTERVAL`.
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.options.sample_interval = interval;
        self
    }

    /// Time between lag probes, 100 µs up to the sample interval. A shorter
    /// interval catches shorter blocks more precisely (a block is measured to
    /// within about one probe interval) at the cost of one task spawn per probe.
    /// With the default, probes back off to one every 100 ms while every
    /// worker is parked (an idle service then costs a few wake-ups a second);
    /// an interval set here is kept while idle too.
    /// Default: [`DEFAULT_LAG_PROBE_INTERVAL`]. Environment: `LAGSCOPE_LAG_PROBE_INTERVAL`.
    pub fn lag_probe_interval(mut self, interval: Duration) -> Self {
        self.options.lag_probe_interval = interval;
        self
    }

    /// Samples kept for exporters that fall behind; the oldest are dropped (and
    /// counted in [`crate::Sample::dropped_samples`]) beyond it. Default:
    /// [`DEFAULT_BUFFER_CAPACITY`]. Environment: `LAGSCOPE_BUFFER_CAPACITY`.
    pub fn buffer_capacity(mut self, samples: usize) -> Self {
        self.options.buffer_capacity = samples;
        self
    }

    /// Appends every sample as one JSON line to `path`, from the agent's own
    /// export thread. Default: off. Environment: `LAGSCOPE_FILE`.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.file = Some(path.into());
        self
    }

    /// Streams samples to a lagscope collector at `url` (e.g.
    /// `http://127.0.0.1:6670`, or `https://…` for TLS) from the agent's own
    /// export thread and runtime:
    /// reconnects with backoff, resends what the collector did not acknowledge,
    /// and drops the oldest samples beyond [`buffer_capacity`](Self::buffer_capacity).
    /// Default: off. Environment: `LAGSCOPE_COLLECTOR`.
    pub fn collector(mut self, url: impl Into<String>) -> Self {
        self.options.collector = Some(url.into());
        self
    }

    /// Token the collector requires (sent as `authorization: Bearer <token>`).
    /// Default: none. Environment: `LAGSCOPE_TOKEN`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.options.token = Some(token.into());
        self
    }

    /// PEM file of the certificate authority to trust for an `https://`
    /// collector, e.g. a self-signed collector certificate. Default: Mozilla's
    /// root certificates (built in). Environment: `LAGSCOPE_CA_FILE`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.options.ca_file = Some(path.into());
        self
    }

    /// Watches another runtime of this process under `name`, in addition to the
    /// one passed to [`start`](Self::start) (named [`MAIN_RUNTIME`]).
    pub fn runtime(mut self, name: impl Into<String>, handle: Handle) -> Self {
        self.runtimes.push((name.into(), handle));
        self
    }

    /// Reads exact poll durations of the runtime named `runtime` from `hooks`,
    /// which must have been installed on that runtime's builder (see
    /// [`PollHooks`]). Needs `--cfg tokio_unstable`.
    #[cfg(tokio_unstable)]
    pub fn poll_hooks(mut self, runtime: impl Into<String>, hooks: &PollHooks) -> Self {
        self.poll_hooks.push((runtime.into(), hooks.clone()));
        self
    }

    /// A worker stuck in one poll this long counts as stalled: the stall
    /// watchdog takes its stack and reports it in [`crate::Sample::stalls`]
    /// (exactly with [`poll_hooks`](Self::poll_hooks) under tokio_unstable,
    /// from the workers' counters otherwise). `Duration::ZERO` turns the
    /// watchdog off. Default: [`crate::DEFAULT_STALL_THRESHOLD`].
    /// Environment: `LAGSCOPE_STALL_THRESHOLD` (`0` for off). Linux only.
    #[cfg(target_os = "linux")]
    pub fn stall_threshold(mut self, threshold: Duration) -> Self {
        self.options.stall_threshold = threshold;
        self
    }

    /// Rate of the continuous CPU profile, in samples per CPU-second of each
    /// thread (sent as 10 s windows with the samples); `0` turns continuous
    /// profiling off, while profiles requested through the collector
    /// (`lagscope profile`) still work. Default:
    /// [`crate::DEFAULT_PROFILE_HZ`]. Environment: `LAGSCOPE_PROFILE_HZ`.
    /// Linux only.
    #[cfg(target_os = "linux")]
    pub fn profile_hz(mut self, hz: u32) -> Self {
        self.options.profile_hz = hz;
        self
    }

    /// Samples where instrumented futures ([`crate::instrument`],
    /// [`crate::TaskMonitor`], the tower layer) wait: about `n` polls a
    /// second that go `Pending` record the await point (the async call
    /// chain, unwound without frame pointers) and the time until the next
    /// poll, sent as wait profiles by name and site (socket, timer, lock,
    /// channel, another task); `0` turns it off. More captures give tighter
    /// shares sooner, for the agent's CPU naming them. At most 1000.
    /// Default: 32. Environment: `LAGSCOPE_WAIT_CAPTURES`. Await points are
    /// captured on Linux x86_64 with glibc.
    ///
    /// ```
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let too_many = lagscope::Agent::builder()
    ///     .wait_captures_per_second(5_000)
    ///     .start(rt.handle().clone());
    /// assert!(too_many.is_err(), "at most 1000 a second");
    /// let agent = lagscope::Agent::builder()
    ///     .wait_captures_per_second(0) // off
    ///     .start(rt.handle().clone())
    ///     .unwrap();
    /// # drop(agent);
    /// ```
    pub fn wait_captures_per_second(mut self, n: u32) -> Self {
        self.options.wait_captures = n;
        self
    }

    /// How long an instrumented future may be pending without being polled
    /// again before it is listed as stuck, with its name, age and await
    /// point (`Sample::stuck`, counted per name). A future that keeps being
    /// woken (a long-lived stream) is polled and never stuck. `Duration::ZERO`
    /// turns the list off. Default: [`crate::DEFAULT_STUCK_AFTER`] (10 s).
    /// Environment: `LAGSCOPE_STUCK_AFTER` (`30s`, `0` for off).
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let agent = lagscope::Agent::builder()
    ///     .stuck_after(Duration::from_secs(30))
    ///     .start(rt.handle().clone())
    ///     .unwrap();
    /// assert!(agent.snapshot().is_none_or(|s| s.stuck.is_empty()));
    /// # drop(agent);
    /// ```
    pub fn stuck_after(mut self, after: Duration) -> Self {
        self.options.stuck_after = after;
        self
    }

    /// Samples heap allocations every `bytes` on average (0: off; 512 KiB,
    /// [`crate::alloc::heap::DEFAULT_HEAP_SAMPLE_BYTES`], is what tcmalloc
    /// and jemalloc use) and keeps each live sample's stack, so
    /// [`AgentHandle::heap_profile`] says which code allocated what is live.
    /// Needs [`crate::alloc::Counting`] as the global allocator (without it
    /// the heap is not sampled; a notice says so if sampling was asked for).
    /// Default: 512 KiB where heap sampling can run.
    /// Environment: `LAGSCOPE_HEAP_SAMPLE` (bytes, or `512KiB`, `1MiB`; `0`
    /// for off). Linux on x86_64 with glibc only.
    pub fn heap_sample_bytes(mut self, bytes: u64) -> Self {
        self.options.heap_sample_bytes = Some(bytes);
        self
    }

    /// Also exports over OTLP with the OpenTelemetry SDK (see
    /// [`OtelProtocol`](crate::OtelProtocol)): metrics named `tokio.*`,
    /// `rust.*`, `process.*` and stalls as `tokio.stall` spans, configured by
    /// the standard `OTEL_EXPORTER_OTLP_*`, `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES` variables. Default: off. Environment:
    /// `LAGSCOPE_OTEL=http|grpc|off`.
    #[cfg(feature = "otel")]
    pub fn otel(mut self, protocol: crate::OtelProtocol) -> Self {
        self.options.otel = Some(protocol);
        self
    }

    /// Most distinct names [`crate::instrument`] and the tower layer keep
    /// (1 to [`crate::tasks::MAX_TASK_NAMES`]); futures with a new name past
    /// it count under `other`, and the fold is counted. Default:
    /// [`crate::DEFAULT_MAX_TASK_NAMES`]. Environment: `LAGSCOPE_MAX_TASK_NAMES`.
    pub fn max_task_names(mut self, names: usize) -> Self {
        self.options.max_task_names = names;
        self
    }

    /// Reports a user gauge, read on the agent's thread once per sample (keep it
    /// cheap and non-blocking). See [`AgentHandle::gauge`] to add one later.
    pub fn gauge(
        mut self,
        name: impl Into<String>,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Self {
        self.gauges.push((name.into(), Box::new(read)));
        self
    }

    /// Starts the agent's threads watching `handle` (and any runtimes added with
    /// [`runtime`](Self::runtime)). Works from inside or outside a runtime: the
    /// agent runs on its own OS threads, and only a tiny probe task is ever
    /// spawned on the watched runtimes.
    ///
    /// Options set in code that cannot be used are a typed [`Error`]. A
    /// `LAGSCOPE_*` variable that cannot be used is the operator's, not the
    /// program's: it is ignored (the value from code, or the default, stays),
    /// reported once through `tracing` (target `lagscope`), and sent to the collector with the agent's hello
    /// so the dashboard shows it — a service never fails to start over one.
    pub fn start(mut self, handle: Handle) -> Result<AgentHandle, Error> {
        self.runtimes.insert(0, (MAIN_RUNTIME.to_string(), handle));
        self.validate()?;
        let warnings = crate::options::env::apply(&mut self.options, |var| std::env::var(var).ok());
        for w in &warnings {
            tracing::warn!(target: "lagscope", "{w}");
        }
        AgentHandle::start(Setup {
            options: self.options,
            runtimes: self.runtimes,
            #[cfg(tokio_unstable)]
            poll_hooks: self.poll_hooks,
            gauges: self.gauges,
            config_warnings: warnings,
        })
    }

    /// Whether these options and runtimes can be watched; the error names
    /// the first problem.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        self.options.validate()?;
        for (i, (name, _)) in self.runtimes.iter().enumerate() {
            if self.runtimes[..i].iter().any(|(other, _)| other == name) {
                return Err(Error::DuplicateRuntime(name.clone()));
            }
        }
        #[cfg(tokio_unstable)]
        for (name, _) in &self.poll_hooks {
            if !self.runtimes.iter().any(|(r, _)| r == name) {
                return Err(Error::UnknownRuntime(name.clone()));
            }
        }
        Ok(())
    }
}
