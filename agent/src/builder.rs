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
//! | [`sample_interval`](Builder::sample_interval) | [`DEFAULT_SAMPLE_INTERVAL`] | `LAGSCOPE_SAMPLE_INTERVAL` |
//! | [`lag_probe_interval`](Builder::lag_probe_interval) | [`DEFAULT_LAG_PROBE_INTERVAL`] | `LAGSCOPE_LAG_PROBE_INTERVAL` |
//! | [`buffer_capacity`](Builder::buffer_capacity) | [`DEFAULT_BUFFER_CAPACITY`] | `LAGSCOPE_BUFFER_CAPACITY` |
//! | [`file`](Builder::file) | none | `LAGSCOPE_FILE` |
//! | [`collector`](Builder::collector) | none | `LAGSCOPE_COLLECTOR` |
//! | [`token`](Builder::token) | none | `LAGSCOPE_TOKEN` |
//! | [`ca_file`](Builder::ca_file) | Mozilla's root certificates | `LAGSCOPE_CA_FILE` |
//! | [`stall_threshold`](Builder::stall_threshold) (Linux) | 20 ms | `LAGSCOPE_STALL_THRESHOLD` |
//! | [`profile_hz`](Builder::profile_hz) (Linux) | 19 | `LAGSCOPE_PROFILE_HZ` |
//! | [`heap_sample_bytes`](Builder::heap_sample_bytes) (Linux x86_64, glibc) | 0 (off) | `LAGSCOPE_HEAP_SAMPLE` |
//! | [`max_task_names`](Builder::max_task_names) | [`DEFAULT_MAX_TASK_NAMES`](crate::DEFAULT_MAX_TASK_NAMES) | `LAGSCOPE_MAX_TASK_NAMES` |
//! | `otel` (cargo feature `otel`) | off | `LAGSCOPE_OTEL` (`http`, `grpc`, `off`) plus the standard `OTEL_*` variables |
//!
//! Durations in the environment are written `250ms`, `1s`, `2m`, `500us`.

use std::path::PathBuf;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::agent::{AgentHandle, GaugeFn};
use crate::error::Error;
#[cfg(tokio_unstable)]
use crate::hooks::PollHooks;

/// Default time between samples.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Default time between lag probes.
pub const DEFAULT_LAG_PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Default number of samples kept for exporters that fall behind (5 minutes at
/// the default interval); beyond it the oldest are dropped and counted.
pub const DEFAULT_BUFFER_CAPACITY: usize = 300;
// Name of the runtime passed to [`Builder::start`], from the metric table.
pub use lagscope_wire::metric::MAIN_RUNTIME;

/// Most samples [`Builder::buffer_capacity`] accepts (a day at 1 Hz; a few
/// hundred MiB at worst), so a typo cannot reserve unbounded memory.
pub const MAX_BUFFER_CAPACITY: usize = 86_400;

/// Longest [`Builder::stall_threshold`]: a poll that long is an outage, not
/// a stall to catch.
#[cfg(target_os = "linux")]
pub const MAX_STALL_THRESHOLD: Duration = Duration::from_secs(60);

pub(crate) const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
pub(crate) const MAX_SAMPLE_INTERVAL: Duration = Duration::from_secs(3600);
const MIN_LAG_PROBE_INTERVAL: Duration = Duration::from_micros(100);

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
pub struct Builder {
    pub(crate) service: Option<String>,
    pub(crate) instance: Option<String>,
    pub(crate) sample_interval: Duration,
    pub(crate) lag_probe_interval: Duration,
    pub(crate) buffer_capacity: usize,
    pub(crate) file: Option<PathBuf>,
    #[cfg(feature = "otel")]
    pub(crate) otel: Option<crate::export::otel::OtelProtocol>,
    pub(crate) collector: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) runtimes: Vec<(String, Handle)>,
    #[cfg(tokio_unstable)]
    pub(crate) poll_hooks: Vec<(String, PollHooks)>,
    #[cfg(target_os = "linux")]
    pub(crate) stall_threshold: Duration,
    #[cfg(target_os = "linux")]
    pub(crate) profile_hz: u32,
    pub(crate) gauges: Vec<(String, GaugeFn)>,
    pub(crate) max_task_names: usize,
    pub(crate) heap_sample_bytes: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            service: None,
            instance: None,
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
            lag_probe_interval: DEFAULT_LAG_PROBE_INTERVAL,
            buffer_capacity: DEFAULT_BUFFER_CAPACITY,
            file: None,
            #[cfg(feature = "otel")]
            otel: None,
            collector: None,
            token: None,
            ca_file: None,
            runtimes: Vec::new(),
            #[cfg(tokio_unstable)]
            poll_hooks: Vec::new(),
            #[cfg(target_os = "linux")]
            stall_threshold: crate::watchdog::DEFAULT_STALL_THRESHOLD,
            #[cfg(target_os = "linux")]
            profile_hz: crate::profiler::DEFAULT_PROFILE_HZ,
            gauges: Vec::new(),
            max_task_names: crate::tasks::DEFAULT_MAX_TASK_NAMES,
            heap_sample_bytes: 0,
        }
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("service", &self.service)
            .field("instance", &self.instance)
            .field("sample_interval", &self.sample_interval)
            .field("lag_probe_interval", &self.lag_probe_interval)
            .field("buffer_capacity", &self.buffer_capacity)
            .field("file", &self.file)
            .field("collector", &self.collector)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
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
        self.service = Some(name.into());
        self
    }

    /// This process's id within its service. Default: `<hostname>:<pid>`.
    /// Environment: `LAGSCOPE_INSTANCE`.
    pub fn instance(mut self, id: impl Into<String>) -> Self {
        self.instance = Some(id.into());
        self
    }

    /// Time between samples, 10 ms to 1 h. Default: [`DEFAULT_SAMPLE_INTERVAL`].
    /// Environment: `LAGSCOPE_SAMPLE_INTERVAL`.
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval;
        self
    }

    /// Time between lag probes, 100 µs up to the sample interval. A shorter
    /// interval catches shorter blocks more precisely (a block is measured to
    /// within about one probe interval) at the cost of one task spawn per probe.
    /// Default: [`DEFAULT_LAG_PROBE_INTERVAL`]. Environment: `LAGSCOPE_LAG_PROBE_INTERVAL`.
    pub fn lag_probe_interval(mut self, interval: Duration) -> Self {
        self.lag_probe_interval = interval;
        self
    }

    /// Samples kept for exporters that fall behind; the oldest are dropped (and
    /// counted in [`crate::Sample::dropped_samples`]) beyond it. Default:
    /// [`DEFAULT_BUFFER_CAPACITY`]. Environment: `LAGSCOPE_BUFFER_CAPACITY`.
    pub fn buffer_capacity(mut self, samples: usize) -> Self {
        self.buffer_capacity = samples;
        self
    }

    /// Appends every sample as one JSON line to `path`, from the agent's own
    /// export thread. Default: off. Environment: `LAGSCOPE_FILE`.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Streams samples to a lagscope collector at `url` (e.g.
    /// `http://127.0.0.1:6670`, or `https://…` for TLS) from the agent's own
    /// export thread and runtime:
    /// reconnects with backoff, resends what the collector did not acknowledge,
    /// and drops the oldest samples beyond [`buffer_capacity`](Self::buffer_capacity).
    /// Default: off. Environment: `LAGSCOPE_COLLECTOR`.
    pub fn collector(mut self, url: impl Into<String>) -> Self {
        self.collector = Some(url.into());
        self
    }

    /// Token the collector requires (sent as `authorization: Bearer <token>`).
    /// Default: none. Environment: `LAGSCOPE_TOKEN`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// PEM file of the certificate authority to trust for an `https://`
    /// collector, e.g. a self-signed collector certificate. Default: Mozilla's
    /// root certificates (built in). Environment: `LAGSCOPE_CA_FILE`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
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
        self.stall_threshold = threshold;
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
        self.profile_hz = hz;
        self
    }

    /// Samples heap allocations every `bytes` on average (0: off; 512 KiB,
    /// [`crate::alloc::heap::DEFAULT_HEAP_SAMPLE_BYTES`], is what tcmalloc
    /// and jemalloc use) and keeps each live sample's stack, so
    /// [`AgentHandle::heap_profile`] says which code allocated what is live.
    /// Needs [`crate::alloc::Counting`] as the global allocator. Default: off.
    /// Environment: `LAGSCOPE_HEAP_SAMPLE` (bytes, or `512KiB`, `1MiB`; `0`
    /// for off). Linux on x86_64 with glibc only.
    pub fn heap_sample_bytes(mut self, bytes: u64) -> Self {
        self.heap_sample_bytes = bytes;
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
        self.otel = Some(protocol);
        self
    }

    /// Most distinct names [`crate::instrument`] and the tower layer keep
    /// (1 to [`crate::tasks::MAX_TASK_NAMES`]); futures with a new name past
    /// it count under `other`, and the fold is counted. Default:
    /// [`crate::DEFAULT_MAX_TASK_NAMES`]. Environment: `LAGSCOPE_MAX_TASK_NAMES`.
    pub fn max_task_names(mut self, names: usize) -> Self {
        self.max_task_names = names;
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
    /// said once on stderr, and sent to the collector with the agent's hello
    /// so the dashboard shows it — a service never fails to start over one.
    pub fn start(mut self, handle: Handle) -> Result<AgentHandle, Error> {
        self.runtimes.insert(0, (MAIN_RUNTIME.to_string(), handle));
        self.validate()?;
        let warnings = self.apply_env(|var| std::env::var(var).ok());
        for w in &warnings {
            tracing::warn!(target: "lagscope", "{w}");
        }
        AgentHandle::start(self, warnings)
    }

    /// Overrides options from `LAGSCOPE_*` variables read through `get`. A
    /// value that does not parse, or that would make the configuration
    /// invalid, is left out; the returned warnings say which and why.
    pub(crate) fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Vec<String> {
        let mut warnings = Vec::new();
        for (var, set) in ENV {
            let Some(value) = get(var) else { continue };
            let before = self.env_snapshot();
            let outcome = set(self, &value).and_then(|()| self.validate());
            if let Err(e) = outcome {
                self.env_restore(before);
                let reason = match e {
                    Error::InvalidEnv { reason, .. } => reason,
                    other => other.to_string(),
                };
                warnings.push(format!(
                    "ignoring {var}={value:?}: {reason}; keeping the value from code or the default"
                ));
            }
        }
        warnings
    }

    /// The options the environment can change, to put back after a bad value.
    fn env_snapshot(&self) -> EnvSnapshot {
        EnvSnapshot {
            service: self.service.clone(),
            instance: self.instance.clone(),
            sample_interval: self.sample_interval,
            lag_probe_interval: self.lag_probe_interval,
            buffer_capacity: self.buffer_capacity,
            file: self.file.clone(),
            collector: self.collector.clone(),
            token: self.token.clone(),
            ca_file: self.ca_file.clone(),
            max_task_names: self.max_task_names,
            heap_sample_bytes: self.heap_sample_bytes,
            #[cfg(target_os = "linux")]
            stall_threshold: self.stall_threshold,
            #[cfg(target_os = "linux")]
            profile_hz: self.profile_hz,
            #[cfg(feature = "otel")]
            otel: self.otel,
        }
    }

    fn env_restore(&mut self, s: EnvSnapshot) {
        self.service = s.service;
        self.instance = s.instance;
        self.sample_interval = s.sample_interval;
        self.lag_probe_interval = s.lag_probe_interval;
        self.buffer_capacity = s.buffer_capacity;
        self.file = s.file;
        self.collector = s.collector;
        self.token = s.token;
        self.ca_file = s.ca_file;
        self.max_task_names = s.max_task_names;
        self.heap_sample_bytes = s.heap_sample_bytes;
        #[cfg(target_os = "linux")]
        {
            self.stall_threshold = s.stall_threshold;
            self.profile_hz = s.profile_hz;
        }
        #[cfg(feature = "otel")]
        {
            self.otel = s.otel;
        }
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !(MIN_SAMPLE_INTERVAL..=MAX_SAMPLE_INTERVAL).contains(&self.sample_interval) {
            return Err(Error::InvalidConfig {
                option: "sample_interval",
                reason: format!("{:?} is outside 10ms..=1h", self.sample_interval),
            });
        }
        if self.lag_probe_interval < MIN_LAG_PROBE_INTERVAL
            || self.lag_probe_interval > self.sample_interval
        {
            return Err(Error::InvalidConfig {
                option: "lag_probe_interval",
                reason: format!(
                    "{:?} must be between 100us and the sample interval ({:?})",
                    self.lag_probe_interval, self.sample_interval
                ),
            });
        }
        #[cfg(target_os = "linux")]
        if !self.stall_threshold.is_zero()
            && !(Duration::from_millis(1)..=MAX_STALL_THRESHOLD).contains(&self.stall_threshold)
        {
            return Err(Error::InvalidConfig {
                option: "stall_threshold",
                reason: format!(
                    "{:?} is outside 1ms..={MAX_STALL_THRESHOLD:?} (0 turns the watchdog off)",
                    self.stall_threshold
                ),
            });
        }
        if self.heap_sample_bytes > 0 && !crate::alloc::heap::supported() {
            return Err(Error::InvalidConfig {
                option: "heap_sample_bytes",
                reason: "heap sampling needs Linux on x86_64 with glibc".into(),
            });
        }
        if self.heap_sample_bytes > MAX_HEAP_SAMPLE_BYTES {
            return Err(Error::InvalidConfig {
                option: "heap_sample_bytes",
                reason: format!(
                    "{} is above {MAX_HEAP_SAMPLE_BYTES} (1 GiB)",
                    self.heap_sample_bytes
                ),
            });
        }
        if !(1..=crate::tasks::MAX_TASK_NAMES).contains(&self.max_task_names) {
            return Err(Error::InvalidConfig {
                option: "max_task_names",
                reason: format!(
                    "{} is outside 1..={}",
                    self.max_task_names,
                    crate::tasks::MAX_TASK_NAMES
                ),
            });
        }
        #[cfg(target_os = "linux")]
        if self.profile_hz > crate::profiler::MAX_PROFILE_HZ {
            return Err(Error::InvalidConfig {
                option: "profile_hz",
                reason: format!(
                    "{} is above {}",
                    self.profile_hz,
                    crate::profiler::MAX_PROFILE_HZ
                ),
            });
        }
        if !(1..=MAX_BUFFER_CAPACITY).contains(&self.buffer_capacity) {
            return Err(Error::InvalidConfig {
                option: "buffer_capacity",
                reason: format!(
                    "{} is outside 1..={MAX_BUFFER_CAPACITY} samples",
                    self.buffer_capacity
                ),
            });
        }
        if let Some(url) = &self.collector {
            if !is_collector_url(url) {
                return Err(Error::InvalidConfig {
                    option: "collector",
                    reason: format!(
                        "{url:?} must be a URL with a host, such as http://127.0.0.1:6670"
                    ),
                });
            }
        }
        if let Some(token) = &self.token {
            if token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
                return Err(Error::InvalidConfig {
                    option: "token",
                    reason: "must be printable ASCII without spaces".into(),
                });
            }
        }
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

/// What `apply_env` saves before trying a variable.
struct EnvSnapshot {
    service: Option<String>,
    instance: Option<String>,
    sample_interval: Duration,
    lag_probe_interval: Duration,
    buffer_capacity: usize,
    file: Option<PathBuf>,
    collector: Option<String>,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    max_task_names: usize,
    heap_sample_bytes: u64,
    #[cfg(target_os = "linux")]
    stall_threshold: Duration,
    #[cfg(target_os = "linux")]
    profile_hz: u32,
    #[cfg(feature = "otel")]
    otel: Option<crate::export::otel::OtelProtocol>,
}

type EnvSetter = fn(&mut Builder, &str) -> Result<(), Error>;

/// Every `LAGSCOPE_*` variable and how it sets its option.
const ENV: &[(&str, EnvSetter)] = &[
    ("LAGSCOPE_SERVICE", |b, v| {
        b.service = Some(non_empty("LAGSCOPE_SERVICE", v)?);
        Ok(())
    }),
    ("LAGSCOPE_INSTANCE", |b, v| {
        b.instance = Some(non_empty("LAGSCOPE_INSTANCE", v)?);
        Ok(())
    }),
    ("LAGSCOPE_SAMPLE_INTERVAL", |b, v| {
        b.sample_interval = env_duration("LAGSCOPE_SAMPLE_INTERVAL", v)?;
        Ok(())
    }),
    ("LAGSCOPE_LAG_PROBE_INTERVAL", |b, v| {
        b.lag_probe_interval = env_duration("LAGSCOPE_LAG_PROBE_INTERVAL", v)?;
        Ok(())
    }),
    ("LAGSCOPE_BUFFER_CAPACITY", |b, v| {
        b.buffer_capacity = v.trim().parse().map_err(|_| Error::InvalidEnv {
            var: "LAGSCOPE_BUFFER_CAPACITY",
            value: v.into(),
            reason: format!("expected a whole number of samples, 1 to {MAX_BUFFER_CAPACITY}"),
        })?;
        Ok(())
    }),
    ("LAGSCOPE_FILE", |b, v| {
        let path = PathBuf::from(non_empty("LAGSCOPE_FILE", v)?);
        // A file the operator named but the process cannot write is said
        // and skipped, like any other unusable variable: the service runs.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::InvalidEnv {
                var: "LAGSCOPE_FILE",
                value: v.into(),
                reason: format!(
                    "cannot open it for appending ({e}); samples are not written to a file"
                ),
            })?;
        b.file = Some(path);
        Ok(())
    }),
    ("LAGSCOPE_COLLECTOR", |b, v| {
        b.collector = Some(non_empty("LAGSCOPE_COLLECTOR", v)?);
        Ok(())
    }),
    ("LAGSCOPE_TOKEN", |b, v| {
        b.token = Some(non_empty("LAGSCOPE_TOKEN", v)?);
        Ok(())
    }),
    ("LAGSCOPE_CA_FILE", |b, v| {
        let path = PathBuf::from(non_empty("LAGSCOPE_CA_FILE", v)?);
        std::fs::metadata(&path)
            .and_then(|m| match m.is_file() {
                true => std::fs::File::open(&path).map(drop),
                false => Err(std::io::Error::other("not a file")),
            })
            .map_err(|e| Error::InvalidEnv {
                var: "LAGSCOPE_CA_FILE",
                value: v.into(),
                reason: format!("cannot read it ({e}); the collector's certificate is checked against the built-in roots"),
            })?;
        b.ca_file = Some(path);
        Ok(())
    }),
    ("LAGSCOPE_STALL_THRESHOLD", |b, v| {
        #[cfg(target_os = "linux")]
        {
            b.stall_threshold = if v.trim() == "0" {
                Duration::ZERO
            } else {
                env_duration("LAGSCOPE_STALL_THRESHOLD", v)?
            };
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = b;
            Err(invalid(
                "LAGSCOPE_STALL_THRESHOLD",
                v,
                "the stall watchdog needs Linux",
            ))
        }
    }),
    ("LAGSCOPE_PROFILE_HZ", |b, v| {
        let hz = v.trim().parse::<u32>().map_err(|_| {
            invalid(
                "LAGSCOPE_PROFILE_HZ",
                v,
                "expected a whole number of samples per second (0 for off)",
            )
        })?;
        #[cfg(target_os = "linux")]
        {
            b.profile_hz = hz;
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = b;
            match hz {
                0 => Ok(()),
                _ => Err(invalid(
                    "LAGSCOPE_PROFILE_HZ",
                    v,
                    "the profiler needs Linux",
                )),
            }
        }
    }),
    ("LAGSCOPE_HEAP_SAMPLE", |b, v| {
        b.heap_sample_bytes = env_bytes(v).ok_or_else(|| {
            invalid(
                "LAGSCOPE_HEAP_SAMPLE",
                v,
                "expected bytes, e.g. 524288, 512KiB or 1MiB (0 for off)",
            )
        })?;
        Ok(())
    }),
    ("LAGSCOPE_MAX_TASK_NAMES", |b, v| {
        b.max_task_names = v.trim().parse().map_err(|_| {
            invalid(
                "LAGSCOPE_MAX_TASK_NAMES",
                v,
                &format!(
                    "expected a whole number of names, 1 to {}",
                    crate::tasks::MAX_TASK_NAMES
                ),
            )
        })?;
        Ok(())
    }),
    ("LAGSCOPE_OTEL", |b, v| {
        let protocol = match v.trim() {
            "off" | "" => None,
            "http" | "http/protobuf" => Some("http"),
            "grpc" => Some("grpc"),
            _ => return Err(invalid("LAGSCOPE_OTEL", v, "expected http, grpc or off")),
        };
        #[cfg(feature = "otel")]
        {
            b.otel = protocol.map(|p| match p {
                "grpc" => crate::OtelProtocol::Grpc,
                _ => crate::OtelProtocol::HttpProtobuf,
            });
            Ok(())
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = b;
            match protocol {
                None => Ok(()),
                Some(_) => Err(invalid(
                    "LAGSCOPE_OTEL",
                    v,
                    "this build has no OTLP export (cargo feature `otel`)",
                )),
            }
        }
    }),
];

fn invalid(var: &'static str, value: &str, reason: &str) -> Error {
    Error::InvalidEnv {
        var,
        value: value.into(),
        reason: reason.into(),
    }
}

fn non_empty(var: &'static str, value: &str) -> Result<String, Error> {
    if value.trim().is_empty() {
        return Err(invalid(var, value, "must not be empty"));
    }
    Ok(value.to_string())
}

/// Largest mean heap sampling interval.
const MAX_HEAP_SAMPLE_BYTES: u64 = 1 << 30;

/// `524288`, `512KiB`, `512k`, `1MiB`, `1m` as bytes.
fn env_bytes(value: &str) -> Option<u64> {
    let v = value.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(scale)
}

fn env_duration(var: &'static str, value: &str) -> Result<Duration, Error> {
    lagscope_wire::duration::parse(value).ok_or_else(|| {
        invalid(
            var,
            value,
            "expected a duration such as 500us, 10ms, 1s or 2m",
        )
    })
}

/// `http://host[:port][/]` or `https://…`, with a host and, if given, a
/// numeric port.
fn is_collector_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    !host.is_empty()
        && !host.contains(|c: char| c.is_whitespace() || c == '@')
        && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |var| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    #[test]
    fn environment_overrides_builder_values() {
        let mut b = Builder::default()
            .service("from-code")
            .sample_interval(Duration::from_secs(5));
        let warnings = b.apply_env(env(&[
            ("LAGSCOPE_SERVICE", "from-env"),
            ("LAGSCOPE_SAMPLE_INTERVAL", "200ms"),
            ("LAGSCOPE_BUFFER_CAPACITY", "7"),
        ]));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(b.service.as_deref(), Some("from-env"));
        assert_eq!(b.sample_interval, Duration::from_millis(200));
        assert_eq!(b.buffer_capacity, 7);
    }

    #[test]
    fn invalid_environment_values_are_ignored_with_a_warning_naming_the_variable() {
        for (var, value) in [
            ("LAGSCOPE_SAMPLE_INTERVAL", "abc"),
            ("LAGSCOPE_PROFILE_HZ", "100000"),
            ("LAGSCOPE_BUFFER_CAPACITY", "0"),
            ("LAGSCOPE_BUFFER_CAPACITY", "99999999999999"),
            ("LAGSCOPE_COLLECTOR", "not-a-url"),
            ("LAGSCOPE_COLLECTOR", "http://"),
            ("LAGSCOPE_TOKEN", " "),
            ("LAGSCOPE_LAG_PROBE_INTERVAL", "5s"),
            ("LAGSCOPE_STALL_THRESHOLD", "2h"),
            ("LAGSCOPE_HEAP_SAMPLE", "lots"),
            ("LAGSCOPE_HEAP_SAMPLE", "2GiB"),
            ("LAGSCOPE_FILE", "/nonexistent/dir/x.jsonl"),
            ("LAGSCOPE_CA_FILE", "/nonexistent"),
            ("LAGSCOPE_CA_FILE", "/"),
        ] {
            let mut b = Builder::default().sample_interval(Duration::from_millis(500));
            let warnings = b.apply_env(env(&[(var, value)]));
            assert_eq!(warnings.len(), 1, "{var}={value}: {warnings:?}");
            assert!(warnings[0].contains(var), "{}", warnings[0]);
            b.validate().expect("the configuration stays valid");
            assert_eq!(b.sample_interval, Duration::from_millis(500), "{var}");
            assert_eq!(b.buffer_capacity, DEFAULT_BUFFER_CAPACITY, "{var}");
            assert_eq!(b.collector, None, "{var}");
            assert_eq!(b.file, None, "{var}");
            assert_eq!(b.ca_file, None, "{var}");
        }
    }

    #[test]
    fn heap_sample_sizes_are_read_with_their_units() {
        assert_eq!(env_bytes("524288"), Some(524288));
        assert_eq!(env_bytes("512KiB"), Some(512 * 1024));
        assert_eq!(env_bytes(" 64k "), Some(64 * 1024));
        assert_eq!(env_bytes("1MiB"), Some(1 << 20));
        assert_eq!(env_bytes("0"), Some(0));
        assert_eq!(env_bytes("1.5MiB"), None);
        assert_eq!(env_bytes("MiB"), None);
        if crate::alloc::heap::supported() {
            let mut b = Builder::default();
            let warnings = b.apply_env(env(&[("LAGSCOPE_HEAP_SAMPLE", "64KiB")]));
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(b.heap_sample_bytes, 64 * 1024);
        }
    }

    #[test]
    fn a_bad_variable_does_not_stop_the_good_ones() {
        let mut b = Builder::default();
        let warnings = b.apply_env(env(&[
            ("LAGSCOPE_SAMPLE_INTERVAL", "fast"),
            ("LAGSCOPE_SERVICE", "from-env"),
        ]));
        assert_eq!(warnings.len(), 1);
        assert_eq!(b.service.as_deref(), Some("from-env"));
        assert_eq!(b.sample_interval, DEFAULT_SAMPLE_INTERVAL);
    }

    #[test]
    fn collector_urls_need_a_scheme_and_a_host() {
        for ok in [
            "http://127.0.0.1:6670",
            "https://collector.example:443/",
            "http://[::1]:6670",
            "http://collector",
        ] {
            assert!(is_collector_url(ok), "{ok}");
        }
        for bad in [
            "http://",
            "127.0.0.1:6670",
            "http://:6670",
            "http://host:port",
            "http://[::1",
            "ftp://x",
        ] {
            assert!(!is_collector_url(bad), "{bad}");
        }
    }

    #[test]
    fn out_of_range_options_are_rejected() {
        let b = Builder::default().sample_interval(Duration::from_millis(1));
        assert!(matches!(
            b.validate(),
            Err(Error::InvalidConfig {
                option: "sample_interval",
                ..
            })
        ));
        let b = Builder::default()
            .sample_interval(Duration::from_millis(100))
            .lag_probe_interval(Duration::from_millis(200));
        assert!(matches!(
            b.validate(),
            Err(Error::InvalidConfig {
                option: "lag_probe_interval",
                ..
            })
        ));
        let b = Builder::default().buffer_capacity(0);
        assert!(b.validate().is_err());
        let b = Builder::default().buffer_capacity(MAX_BUFFER_CAPACITY + 1);
        assert!(b.validate().is_err());
        let b = Builder::default().collector("127.0.0.1:6670");
        assert!(matches!(
            b.validate(),
            Err(Error::InvalidConfig {
                option: "collector",
                ..
            })
        ));
        let b = Builder::default().token("has space");
        assert!(b.validate().is_err());
    }
}
