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
    pub fn start(mut self, handle: Handle) -> Result<AgentHandle, Error> {
        self.runtimes.insert(0, (MAIN_RUNTIME.to_string(), handle));
        self.apply_env(|var| std::env::var(var).ok())?;
        self.validate()?;
        AgentHandle::start(self)
    }

    /// Overrides options from `LAGSCOPE_*` variables read through `get`.
    pub(crate) fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        if let Some(v) = get("LAGSCOPE_SERVICE") {
            self.service = Some(non_empty("LAGSCOPE_SERVICE", v)?);
        }
        if let Some(v) = get("LAGSCOPE_INSTANCE") {
            self.instance = Some(non_empty("LAGSCOPE_INSTANCE", v)?);
        }
        if let Some(v) = get("LAGSCOPE_SAMPLE_INTERVAL") {
            self.sample_interval = env_duration("LAGSCOPE_SAMPLE_INTERVAL", v)?;
        }
        if let Some(v) = get("LAGSCOPE_LAG_PROBE_INTERVAL") {
            self.lag_probe_interval = env_duration("LAGSCOPE_LAG_PROBE_INTERVAL", v)?;
        }
        if let Some(v) = get("LAGSCOPE_BUFFER_CAPACITY") {
            self.buffer_capacity = v.trim().parse().map_err(|_| Error::InvalidEnv {
                var: "LAGSCOPE_BUFFER_CAPACITY",
                value: v.clone(),
                reason: "expected a whole number of samples, e.g. 300".into(),
            })?;
        }
        if let Some(v) = get("LAGSCOPE_FILE") {
            self.file = Some(PathBuf::from(non_empty("LAGSCOPE_FILE", v)?));
        }
        if let Some(v) = get("LAGSCOPE_COLLECTOR") {
            self.collector = Some(non_empty("LAGSCOPE_COLLECTOR", v)?);
        }
        if let Some(v) = get("LAGSCOPE_TOKEN") {
            self.token = Some(non_empty("LAGSCOPE_TOKEN", v)?);
        }
        if let Some(v) = get("LAGSCOPE_STALL_THRESHOLD") {
            #[cfg(target_os = "linux")]
            {
                self.stall_threshold = if v.trim() == "0" {
                    Duration::ZERO
                } else {
                    env_duration("LAGSCOPE_STALL_THRESHOLD", v)?
                };
            }
            #[cfg(not(target_os = "linux"))]
            return Err(Error::InvalidEnv {
                var: "LAGSCOPE_STALL_THRESHOLD",
                value: v,
                reason: "the stall watchdog needs Linux; unset it".into(),
            });
        }
        if let Some(v) = get("LAGSCOPE_PROFILE_HZ") {
            let hz = v.trim().parse::<u32>().map_err(|_| Error::InvalidEnv {
                var: "LAGSCOPE_PROFILE_HZ",
                value: v.clone(),
                reason: "expected a whole number of samples per second (0 for off)".into(),
            })?;
            #[cfg(target_os = "linux")]
            {
                self.profile_hz = hz;
            }
            #[cfg(not(target_os = "linux"))]
            if hz != 0 {
                return Err(Error::InvalidEnv {
                    var: "LAGSCOPE_PROFILE_HZ",
                    value: v,
                    reason: "the profiler needs Linux; set 0 or unset it".into(),
                });
            }
        }
        if let Some(v) = get("LAGSCOPE_OTEL") {
            let protocol = match v.trim() {
                "off" | "" => None,
                "http" | "http/protobuf" => Some("http"),
                "grpc" => Some("grpc"),
                _ => {
                    return Err(Error::InvalidEnv {
                        var: "LAGSCOPE_OTEL",
                        value: v,
                        reason: "expected http, grpc or off".into(),
                    })
                }
            };
            #[cfg(feature = "otel")]
            {
                self.otel = protocol.map(|p| match p {
                    "grpc" => crate::OtelProtocol::Grpc,
                    _ => crate::OtelProtocol::HttpProtobuf,
                });
            }
            #[cfg(not(feature = "otel"))]
            if protocol.is_some() {
                return Err(Error::InvalidEnv {
                    var: "LAGSCOPE_OTEL",
                    value: v,
                    reason: "this build has no OTLP export (cargo feature `otel`); unset it".into(),
                });
            }
        }
        if let Some(v) = get("LAGSCOPE_CA_FILE") {
            self.ca_file = Some(PathBuf::from(non_empty("LAGSCOPE_CA_FILE", v)?));
        }
        Ok(())
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
        if !self.stall_threshold.is_zero() && self.stall_threshold < Duration::from_millis(1) {
            return Err(Error::InvalidConfig {
                option: "stall_threshold",
                reason: format!("{:?} is below 1ms", self.stall_threshold),
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
        if self.buffer_capacity == 0 {
            return Err(Error::InvalidConfig {
                option: "buffer_capacity",
                reason: "must hold at least one sample".into(),
            });
        }
        if let Some(url) = &self.collector {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::InvalidConfig {
                    option: "collector",
                    reason: format!("{url:?} must be a URL such as http://127.0.0.1:6670"),
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

fn non_empty(var: &'static str, value: String) -> Result<String, Error> {
    if value.trim().is_empty() {
        return Err(Error::InvalidEnv {
            var,
            value,
            reason: "must not be empty (unset it to use the default)".into(),
        });
    }
    Ok(value)
}

fn env_duration(var: &'static str, value: String) -> Result<Duration, Error> {
    lagscope_wire::duration::parse(&value).ok_or_else(|| Error::InvalidEnv {
        var,
        value,
        reason: "expected a duration such as 500us, 10ms, 1s or 2m".into(),
    })
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
        b.apply_env(env(&[
            ("LAGSCOPE_SERVICE", "from-env"),
            ("LAGSCOPE_SAMPLE_INTERVAL", "200ms"),
            ("LAGSCOPE_BUFFER_CAPACITY", "7"),
        ]))
        .expect("valid env");
        assert_eq!(b.service.as_deref(), Some("from-env"));
        assert_eq!(b.sample_interval, Duration::from_millis(200));
        assert_eq!(b.buffer_capacity, 7);
    }

    #[test]
    fn invalid_environment_values_are_typed_errors() {
        let mut b = Builder::default();
        let err = b
            .apply_env(env(&[("LAGSCOPE_SAMPLE_INTERVAL", "fast")]))
            .expect_err("invalid");
        assert!(matches!(
            err,
            Error::InvalidEnv {
                var: "LAGSCOPE_SAMPLE_INTERVAL",
                ..
            }
        ));
        assert!(err.to_string().contains("10ms"), "{err}");
        let err = b
            .apply_env(env(&[("LAGSCOPE_BUFFER_CAPACITY", "-1")]))
            .expect_err("invalid");
        assert!(matches!(err, Error::InvalidEnv { .. }));
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
