//! The agent's options as plain data: what [`crate::Builder`] sets, what
//! the `LAGSCOPE_*` environment overrides ([`env`]), and the one check of
//! what a running agent can use ([`Options::validate`]). `Clone`, so the
//! environment layer tries a variable on a copy.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

pub(crate) mod env;

/// Default time between samples.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Default time between lag probes.
pub const DEFAULT_LAG_PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Default number of samples kept for exporters that fall behind (5 minutes at
/// the default interval); beyond it the oldest are dropped and counted.
pub const DEFAULT_BUFFER_CAPACITY: usize = 300;
/// Most samples [`crate::Builder::buffer_capacity`] accepts (a day at 1 Hz;
/// a few hundred MiB at worst), so a typo cannot reserve unbounded memory.
pub const MAX_BUFFER_CAPACITY: usize = 86_400;
/// Longest [`crate::Builder::stall_threshold`]: a poll that long is an
/// outage, not a stall to catch.
#[cfg(target_os = "linux")]
pub const MAX_STALL_THRESHOLD: Duration = Duration::from_secs(60);
const MIN_LAG_PROBE_INTERVAL: Duration = Duration::from_micros(100);
/// Largest mean heap sampling interval.
const MAX_HEAP_SAMPLE_BYTES: u64 = 1 << 30;

/// Every option of the agent but the runtimes, hooks and gauges it is
/// handed (which the builder keeps beside these).
#[derive(Clone)]
pub(crate) struct Options {
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
    #[cfg(target_os = "linux")]
    pub(crate) stall_threshold: Duration,
    #[cfg(target_os = "linux")]
    pub(crate) profile_hz: u32,
    pub(crate) max_task_names: usize,
    /// As asked for; `None`: [`Options::heap_sample`]'s default.
    pub(crate) heap_sample_bytes: Option<u64>,
    /// Await points of instrumented futures captured a second (0: off).
    pub(crate) wait_captures: u32,
    /// How long an instrumented future is pending without a poll before it
    /// is listed as stuck (zero: never).
    pub(crate) stuck_after: Duration,
}

/// Default [`crate::Builder::stuck_after`].
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(10);

impl Default for Options {
    fn default() -> Self {
        Options {
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
            #[cfg(target_os = "linux")]
            stall_threshold: crate::watchdog::DEFAULT_STALL_THRESHOLD,
            #[cfg(target_os = "linux")]
            profile_hz: crate::profiler::DEFAULT_PROFILE_HZ,
            max_task_names: crate::tasks::DEFAULT_MAX_TASK_NAMES,
            heap_sample_bytes: None,
            wait_captures: crate::tasks::wait::DEFAULT_CAPTURES_PER_SECOND,
            stuck_after: DEFAULT_STUCK_AFTER,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Options");
        d.field("service", &self.service)
            .field("instance", &self.instance)
            .field("sample_interval", &self.sample_interval)
            .field("lag_probe_interval", &self.lag_probe_interval)
            .field("buffer_capacity", &self.buffer_capacity)
            .field("file", &self.file)
            .field("collector", &self.collector)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file);
        #[cfg(target_os = "linux")]
        d.field("stall_threshold", &self.stall_threshold)
            .field("profile_hz", &self.profile_hz);
        d.field("max_task_names", &self.max_task_names)
            .field("heap_sample_bytes", &self.heap_sample())
            .field("wait_captures", &self.wait_captures)
            .field("stuck_after", &self.stuck_after)
            .finish()
    }
}

impl Options {
    /// Heap sampling's mean interval in bytes (0: off): as asked for, else
    /// [`DEFAULT_HEAP_SAMPLE_BYTES`](crate::alloc::heap::DEFAULT_HEAP_SAMPLE_BYTES)
    /// where heap sampling can run.
    pub(crate) fn heap_sample(&self) -> u64 {
        self.heap_sample_bytes
            .unwrap_or(if crate::alloc::heap::supported() {
                crate::alloc::heap::DEFAULT_HEAP_SAMPLE_BYTES
            } else {
                0
            })
    }

    /// Whether a running agent can use these options; the error names the
    /// first that it cannot.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !(crate::sampler::MIN_SAMPLE_INTERVAL..=crate::sampler::MAX_SAMPLE_INTERVAL)
            .contains(&self.sample_interval)
        {
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
        if self.heap_sample_bytes.is_some_and(|b| b > 0) && !crate::alloc::heap::supported() {
            return Err(Error::InvalidConfig {
                option: "heap_sample_bytes",
                reason: "heap sampling needs Linux on x86_64 with glibc".into(),
            });
        }
        if self.heap_sample() > MAX_HEAP_SAMPLE_BYTES {
            return Err(Error::InvalidConfig {
                option: "heap_sample_bytes",
                reason: format!(
                    "{} is above {MAX_HEAP_SAMPLE_BYTES} (1 GiB)",
                    self.heap_sample()
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
        if self.wait_captures > crate::tasks::wait::MAX_CAPTURES_PER_SECOND {
            return Err(Error::InvalidConfig {
                option: "wait_captures_per_second",
                reason: format!(
                    "{} is above {} (0 turns wait capture off)",
                    self.wait_captures,
                    crate::tasks::wait::MAX_CAPTURES_PER_SECOND
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
        Ok(())
    }
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
        let b = Options {
            sample_interval: Duration::from_millis(1),
            ..Options::default()
        };
        assert!(matches!(
            b.validate(),
            Err(Error::InvalidConfig {
                option: "sample_interval",
                ..
            })
        ));
        let b = Options {
            sample_interval: Duration::from_millis(100),
            lag_probe_interval: Duration::from_millis(200),
            ..Options::default()
        };
        assert!(matches!(
            b.validate(),
            Err(Error::InvalidConfig {
                option: "lag_probe_interval",
                ..
            })
        ));
        let b = Options {
            buffer_capacity: 0,
            ..Options::default()
        };
        assert!(b.validate().is_err());
        let b = Options {
            buffer_capacity: MAX_BUFFER_CAPACITY + 1,
            ..Options::default()
        };
        assert!(b.validate().is_err());
        let b = Options {
            collector: Some("127.0.0.1:6670".into()),
            ..Options::default()
        };
        assert!(matches!(
            b.validate(),
            Err(Error::InvalidConfig {
                option: "collector",
                ..
            })
        ));
        let b = Options {
            token: Some("has space".into()),
            ..Options::default()
        };
        assert!(b.validate().is_err());
    }
}
