//! `--pyroscope URL`: pushes every agent's continuous CPU profile windows
//! and heap windows to Pyroscope's HTTP ingest, where fleets keep
//! profiles: `POST /ingest?name=…&from=…&until=…&format=pprof`, the profile
//! as the form file `profile` and its sample types as `sample_type_config`
//! (Pyroscope's server API reference, "pprof format"). The pprof is the one
//! `lagscope flamegraph --format pprof` writes, names kept whole.
//!
//! It never holds up ingest: windows wait in a bounded queue (the oldest
//! dropped and counted when it is full), each push is tried
//! [`ATTEMPTS`] times with a growing pause (a refusal other than 429 is
//! not retried), then dropped and counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use lagscope_wire::{HeapProfile, Profile, Sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::flame::{self, Folded};

/// Profile windows waiting to be pushed, at most.
pub const QUEUE: usize = 256;
/// Tries per window.
pub const ATTEMPTS: u32 = 3;
/// How long one push may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The multipart boundary (never inside a gzip stream's framing: the form
/// parts carry their lengths implicitly, and this string is long and odd).
const BOUNDARY: &str = "lagscope-pyroscope-7f3a9c1e5b";

/// A `--pyroscope` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--pyroscope {url:?} {why}")]
pub struct BadUrl {
    url: String,
    why: &'static str,
}

/// One window to push.
#[derive(Debug)]
struct Job {
    service: String,
    instance: String,
    window: Window,
}

#[derive(Debug)]
enum Window {
    Cpu(Profile),
    Heap(HeapProfile),
}

/// The queue between ingest and the push task, with its counters.
#[derive(Debug)]
pub struct Pusher {
    host_port: String,
    /// The URL's path, without a trailing `/` (a Pyroscope behind a prefix).
    base: String,
    queue: Mutex<VecDeque<Job>>,
    wake: Notify,
    /// Windows pushed.
    pub pushed: AtomicU64,
    /// Windows not pushed: the queue was full, or every try failed.
    pub dropped: AtomicU64,
    /// Tries that failed.
    pub failures: AtomicU64,
}

impl Pusher {
    /// A pusher to the Pyroscope at `url` (`http://host:port[/prefix]`).
    pub fn new(url: &str) -> Result<Pusher, BadUrl> {
        let bad = |why| BadUrl {
            url: url.to_string(),
            why,
        };
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            bad("must be http://host:port (for https, put a TLS-terminating proxy in front)")
        })?;
        let (host_port, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host_port.is_empty() || !host_port.contains(':') {
            return Err(bad("must name a host and port, e.g. http://127.0.0.1:4040"));
        }
        Ok(Pusher {
            host_port: host_port.to_string(),
            base: format!("/{}", path.trim_end_matches('/'))
                .trim_end_matches('/')
                .to_string(),
            queue: Mutex::default(),
            wake: Notify::new(),
            pushed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        })
    }

    /// Queues the sample's continuous CPU windows and heap window (those
    /// with stacks); never waits.
    pub fn offer(&self, sample: &Sample) {
        let cpu = sample
            .profiles
            .iter()
            .filter(|p| p.request_id.is_none() && !p.stacks.is_empty())
            .cloned()
            .map(Window::Cpu);
        let heap = sample
            .heap
            .iter()
            .filter(|h| !h.sites.is_empty() && !sample.last)
            .cloned()
            .map(Window::Heap);
        let mut queued = false;
        for window in cpu.chain(heap) {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= QUEUE {
                q.pop_front();
                self.dropped.fetch_add(1, Relaxed);
            }
            q.push_back(Job {
                service: sample.service.clone(),
                instance: sample.instance.clone(),
                window,
            });
            queued = true;
        }
        if queued {
            self.wake.notify_one();
        }
    }

    fn take(&self) -> Option<Job> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    /// Pushes until the task is dropped.
    pub async fn run(self: std::sync::Arc<Self>) {
        let mut said = false;
        loop {
            let Some(job) = self.take() else {
                self.wake.notified().await;
                continue;
            };
            let (path, body) = match request(&self.base, &job) {
                Ok(r) => r,
                Err(_) => {
                    self.dropped.fetch_add(1, Relaxed);
                    continue;
                }
            };
            let mut pause = Duration::from_millis(500);
            let mut done = false;
            for attempt in 1..=ATTEMPTS {
                match self.post(&path, &body).await {
                    Ok(status) if (200..300).contains(&status) => {
                        done = true;
                        break;
                    }
                    outcome => {
                        self.failures.fetch_add(1, Relaxed);
                        if !said {
                            said = true;
                            let what = match &outcome {
                                Ok(status) => format!("answered {status}"),
                                Err(e) => e.to_string(),
                            };
                            eprintln!(
                                "lagscope collector: pushing a profile to Pyroscope at {} failed: {what}",
                                self.host_port
                            );
                        }
                        let retry = match outcome {
                            Ok(status) => status == 429 || status >= 500,
                            Err(_) => true,
                        };
                        if !retry || attempt == ATTEMPTS {
                            break;
                        }
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                    }
                }
            }
            if done {
                self.pushed.fetch_add(1, Relaxed);
            } else {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// One `POST` on a fresh connection; the response's status.
    async fn post(&self, path: &str, body: &[u8]) -> std::io::Result<u16> {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(&self.host_port).await?;
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lagscope/{}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                self.host_port,
                env!("CARGO_PKG_VERSION"),
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body).await?;
            let mut response = Vec::new();
            (&mut stream)
                .take(64 * 1024)
                .read_to_end(&mut response)
                .await?;
            status_of(&response)
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }
}

fn status_of(response: &[u8]) -> std::io::Result<u16> {
    let line = response.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line in the answer"))
}

/// The application name Pyroscope files a window under: the service, with
/// `service_name` and `instance` labels. Characters Pyroscope's name syntax
/// reserves become `_`.
pub fn app_name(service: &str, instance: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_-.:/".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let service = clean(service);
    format!(
        "{service}{{service_name={service},instance={}}}",
        clean(instance)
    )
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The request path with its query, and the multipart body, for `job`.
fn request(base: &str, job: &Job) -> Result<(String, Vec<u8>), flame::FlameError> {
    let (pprof, config, start_ms, end_ms) = match &job.window {
        Window::Cpu(p) => {
            let folded = Folded::from_stacks(
                p.stacks
                    .iter()
                    .map(|s| (s.frames.as_slice(), u64::from(s.count))),
            );
            let pprof = flame::pprof_gz(&folded, p.hz, p.start_ms, p.end_ms)?;
            // The `samples` type is the CPU profile (Pyroscope's own
            // default for it); `cpu` carries the same in nanoseconds.
            let config = r#"{"samples":{"units":"samples","aggregation":"sum","display-name":"cpu","sampled":true}}"#;
            (pprof, config, p.start_ms, p.end_ms)
        }
        Window::Heap(h) => {
            let sites = |bytes: fn(&lagscope_wire::HeapSite) -> u64| {
                Folded::from_stacks(h.sites.iter().map(|s| (s.frames.as_slice(), bytes(s))))
            };
            let pprof = flame::heap_pprof_gz(
                &sites(|s| s.allocated_bytes),
                &sites(|s| s.live_bytes),
                lagscope_wire::api::HeapKind::Inuse,
                h.sample_bytes,
                h.start_ms,
                h.end_ms,
            )?;
            let config = r#"{"inuse_space":{"units":"bytes","aggregation":"average","display-name":"inuse_space_bytes","sampled":false},"alloc_space":{"units":"bytes","aggregation":"sum","display-name":"alloc_space_bytes","sampled":false}}"#;
            (pprof, config, h.start_ms, h.end_ms)
        }
    };
    let path = format!(
        "{base}/ingest?name={}&from={}&until={}&format=pprof&spyName=lagscope",
        percent_encode(&app_name(&job.service, &job.instance)),
        start_ms / 1000,
        end_ms.div_ceil(1000),
    );
    let mut body = Vec::with_capacity(pprof.len() + config.len() + 512);
    for (field, file, content) in [
        ("profile", "profile.pb.gz", pprof.as_slice()),
        (
            "sample_type_config",
            "sample_type_config.json",
            config.as_bytes(),
        ),
    ] {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Ok((path, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_names_and_requests() {
        assert!(Pusher::new("https://x:4040").is_err());
        assert!(Pusher::new("http://nohost").is_err());
        let p = Pusher::new("http://127.0.0.1:4040/pyro/").expect("valid");
        assert_eq!(
            (p.host_port.as_str(), p.base.as_str()),
            ("127.0.0.1:4040", "/pyro")
        );
        assert_eq!(
            Pusher::new("http://127.0.0.1:4040").expect("valid").base,
            ""
        );
        assert_eq!(
            app_name("check out", "vm:12{x}"),
            "check_out{service_name=check_out,instance=vm:12_x_}"
        );
        let mut profile = Profile::default();
        profile.start_ms = 1_700_000_000_000;
        profile.end_ms = 1_700_000_010_000;
        profile.hz = 19;
        let mut stack = lagscope_wire::ProfileStack::default();
        stack.frames = vec!["inner".into(), "outer".into()];
        stack.count = 3;
        profile.stacks.push(stack);
        let job = Job {
            service: "svc".into(),
            instance: "i".into(),
            window: Window::Cpu(profile),
        };
        let (path, body) = request("/pyro", &job).expect("encoded");
        assert_eq!(
            path,
            "/pyro/ingest?name=svc%7Bservice_name%3Dsvc%2Cinstance%3Di%7D&from=1700000000&until=1700000010&format=pprof&spyName=lagscope"
        );
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("name=\"profile\"") && text.contains("name=\"sample_type_config\""));
        assert!(text.ends_with(&format!("--{BOUNDARY}--\r\n")));
        assert_eq!(
            status_of(b"HTTP/1.1 503 Service Unavailable\r\n").ok(),
            Some(503)
        );
    }
}
