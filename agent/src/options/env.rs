//! The `LAGSCOPE_*` environment layer over [`Options`]: one table of
//! variables and how each sets its option. A variable that does not parse,
//! or would make the options invalid, is left out with a warning that names
//! it; the value from code (or the default) stays.

use std::path::PathBuf;
use std::time::Duration;

use super::{Options, MAX_BUFFER_CAPACITY};
use crate::error::Error;

/// Overrides `options` from `LAGSCOPE_*` variables read through `get`;
/// returns a warning for each variable left out, saying why.
pub(crate) fn apply(options: &mut Options, get: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut warnings = Vec::new();
    for (var, set) in ENV {
        let Some(value) = get(var) else { continue };
        let mut tried = options.clone();
        match set(&mut tried, &value).and_then(|()| tried.validate()) {
            Ok(()) => *options = tried,
            Err(e) => {
                let reason = match e {
                    Error::InvalidEnv { reason, .. } => reason,
                    other => other.to_string(),
                };
                warnings.push(format!(
                    "ignoring {var}={value:?}: {reason}; keeping the value from code or the default"
                ));
            }
        }
    }
    warnings
}

type EnvSetter = fn(&mut Options, &str) -> Result<(), Error>;

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
        b.heap_sample_bytes = Some(env_bytes(v).ok_or_else(|| {
            invalid(
                "LAGSCOPE_HEAP_SAMPLE",
                v,
                "expected bytes, e.g. 524288, 512KiB or 1MiB (0 for off)",
            )
        })?);
        Ok(())
    }),
    ("LAGSCOPE_WAIT_CAPTURES", |b, v| {
        b.wait_captures = v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n <= crate::tasks::wait::MAX_CAPTURES_PER_SECOND)
            .ok_or_else(|| {
                invalid(
                    "LAGSCOPE_WAIT_CAPTURES",
                    v,
                    "expected await points captured a second, 0 (off) to 1000",
                )
            })?;
        Ok(())
    }),
    ("LAGSCOPE_STUCK_AFTER", |b, v| {
        b.stuck_after = if v.trim() == "0" {
            Duration::ZERO
        } else {
            env_duration("LAGSCOPE_STUCK_AFTER", v)?
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{DEFAULT_BUFFER_CAPACITY, DEFAULT_SAMPLE_INTERVAL};

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |var| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    #[test]
    fn environment_overrides_builder_values() {
        let mut b = Options {
            service: Some("from-code".into()),
            sample_interval: Duration::from_secs(5),
            ..Options::default()
        };
        let warnings = apply(
            &mut b,
            env(&[
                ("LAGSCOPE_SERVICE", "from-env"),
                ("LAGSCOPE_SAMPLE_INTERVAL", "200ms"),
                ("LAGSCOPE_BUFFER_CAPACITY", "7"),
            ]),
        );
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
            let mut b = Options {
                sample_interval: Duration::from_millis(500),
                ..Options::default()
            };
            let warnings = apply(&mut b, env(&[(var, value)]));
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
            let mut b = Options::default();
            let warnings = apply(&mut b, env(&[("LAGSCOPE_HEAP_SAMPLE", "64KiB")]));
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(b.heap_sample(), 64 * 1024);
            let _ = apply(&mut b, env(&[("LAGSCOPE_HEAP_SAMPLE", "0")]));
            assert_eq!(b.heap_sample(), 0, "0 turns it off");
        }
    }

    #[test]
    fn a_bad_variable_does_not_stop_the_good_ones() {
        let mut b = Options::default();
        let warnings = apply(
            &mut b,
            env(&[
                ("LAGSCOPE_SAMPLE_INTERVAL", "fast"),
                ("LAGSCOPE_SERVICE", "from-env"),
            ]),
        );
        assert_eq!(warnings.len(), 1);
        assert_eq!(b.service.as_deref(), Some("from-env"));
        assert_eq!(b.sample_interval, DEFAULT_SAMPLE_INTERVAL);
    }
}
