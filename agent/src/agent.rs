//! The running agent: its threads, its latest sample, and how it stops.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::runtime::Handle;

use crate::builder::Builder;
use crate::error::Error;
use crate::export::collector::{CollectorExporter, Identity};
use crate::export::file::FileSink;
use crate::export::queue::BoundedQueue;
use crate::platform::procfs;
use crate::sample::Sample;
use crate::sampler::gauge::Gauges;
use crate::sampler::lag::LagProbe;
use crate::sampler::runtime::RuntimeSampler;
use crate::sampler::{Sampler, Watched};

pub(crate) use crate::sampler::gauge::GaugeFn;

/// Entry point: `Agent::builder()`.
#[derive(Debug)]
pub struct Agent(());

impl Agent {
    /// A builder with every option at its documented default.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// State shared by the handle and the agent's threads.
struct Shared {
    stopping: Mutex<bool>,
    wake: Condvar,
    latest: Mutex<Option<Arc<Sample>>>,
    gauges: Gauges,
    exports: Vec<Arc<BoundedQueue<Arc<Sample>>>>,
}

impl Shared {
    fn is_stopping(&self) -> bool {
        *self.stopping.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `period` for a stop; returns whether the agent is stopping.
    fn wait_stopping(&self, period: std::time::Duration) -> bool {
        let stopping = self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        let (stopping, _) = self
            .wake
            .wait_timeout_while(stopping, period, |s| !*s)
            .unwrap_or_else(|p| p.into_inner());
        *stopping
    }

    fn dropped(&self) -> u64 {
        self.exports.iter().map(|q| q.dropped()).sum()
    }

    fn publish(&self, sample: Sample) {
        let sample = Arc::new(sample);
        for q in &self.exports {
            q.push(sample.clone());
        }
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(sample);
    }
}

/// A running agent. Dropping it (or calling [`shutdown`](Self::shutdown)) stops
/// and joins the agent's threads.
pub struct AgentHandle {
    service: String,
    instance: String,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The heap samples' reader, while heap sampling is on.
    heap: Option<Arc<Mutex<crate::alloc::heap::Sites>>>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("service", &self.service)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    pub(crate) fn start(builder: Builder, config_warnings: Vec<String>) -> Result<Self, Error> {
        let service = builder.service.clone().unwrap_or_else(default_service);
        let instance = builder.instance.clone().unwrap_or_else(default_instance);
        let now = Instant::now();
        crate::tasks::set_max_names(builder.max_task_names);

        let runtime_shapes: Vec<(String, usize)> = builder
            .runtimes
            .iter()
            .map(|(name, h)| (name.clone(), h.metrics().num_workers()))
            .collect();
        let mut capabilities = Vec::new();
        if cfg!(tokio_unstable) {
            capabilities.push("tokio_unstable".to_string());
        }
        #[cfg(tokio_unstable)]
        if !builder.poll_hooks.is_empty() {
            capabilities.push("poll_hooks".to_string());
        }
        if crate::alloc::stats().is_some() {
            capabilities.push("heap".to_string());
            if builder.heap_sample_bytes > 0 && crate::alloc::heap::supported() {
                capabilities.push("heap-sampling".to_string());
            }
        }
        // What the build gives stack names: the dashboard says what is missing.
        if crate::platform::build_keeps_frame_pointers() {
            capabilities.push("frame-pointers".to_string());
        }
        if crate::platform::executable_has_line_tables() {
            capabilities.push("line-tables".to_string());
        }
        // The watchdog knows each runtime's workers by what its probes report.
        let tokens: Vec<u64> = builder
            .runtimes
            .iter()
            .map(|_| crate::sampler::lag::new_runtime_token())
            .collect();
        #[cfg(target_os = "linux")]
        let watches: Vec<crate::watchdog::Watch> = builder
            .runtimes
            .iter()
            .zip(&tokens)
            .map(|((name, handle), &token)| {
                // A current-thread runtime runs on the thread that drives it;
                // if the agent starts inside it, that is this thread.
                let inside = handle.runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::CurrentThread
                    && Handle::try_current().is_ok_and(|h| {
                        h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
                    })
                    && name == crate::builder::MAIN_RUNTIME;
                crate::watchdog::Watch {
                    runtime: name.clone(),
                    handle: handle.clone(),
                    driver_tid: inside.then(crate::platform::current_tid),
                    token,
                    #[cfg(tokio_unstable)]
                    hooks: builder
                        .poll_hooks
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, h)| h.clone()),
                }
            })
            .collect();
        #[cfg(tokio_unstable)]
        let mut hooks = builder.poll_hooks;
        let watched = builder
            .runtimes
            .into_iter()
            .zip(tokens)
            .map(|((name, handle), token)| {
                #[allow(unused_mut)]
                let mut runtime = RuntimeSampler::new(name.clone(), &handle, now);
                #[cfg(tokio_unstable)]
                if let Some(i) = hooks.iter().position(|(n, _)| *n == name) {
                    runtime.set_hooks(hooks.swap_remove(i).1);
                }
                Watched {
                    runtime,
                    blocking: crate::sampler::blocking::BlockingProbe::new(handle.clone(), now),
                    probe: LagProbe::new(handle, token, builder.lag_probe_interval, now),
                }
            })
            .collect();

        let sample_interval_us = Arc::new(AtomicU64::new(
            u64::try_from(builder.sample_interval.as_micros()).unwrap_or(u64::MAX),
        ));
        let file_sink = builder.file.as_deref().map(FileSink::open).transpose()?;
        let file_queue = file_sink
            .as_ref()
            .map(|_| Arc::new(BoundedQueue::new(builder.buffer_capacity)));
        let ca_pem = builder
            .ca_file
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|source| Error::File {
                    path: path.clone(),
                    source,
                })
            })
            .transpose()?;
        // The profiler, unless this process cannot have one (a foreign handler
        // on its signal, or another agent already profiling): then the agent
        // runs without it and says why once.
        #[cfg(target_os = "linux")]
        let profiler = match crate::profiler::install() {
            Ok(signal) => {
                capabilities.push("profiler".to_string());
                Some((signal, Arc::new(crate::profiler::Exchange::default())))
            }
            Err(why) => {
                crate::notices::say(format!("CPU profiling is off: {why}"));
                None
            }
        };
        let collector = builder.collector.clone().map(|url| CollectorExporter {
            url,
            token: builder.token.clone(),
            ca_pem,
            identity: Identity {
                service: service.clone(),
                instance: instance.clone(),
                runtimes: runtime_shapes,
                capabilities,
                config_warnings,
            },
            queue: Arc::new(BoundedQueue::new(builder.buffer_capacity)),
            sample_interval_us: sample_interval_us.clone(),
            max_unacked: builder.buffer_capacity,
            #[cfg(target_os = "linux")]
            profiles: profiler.as_ref().map(|(_, e)| e.clone()),
        });
        #[cfg(feature = "otel")]
        let otel = builder
            .otel
            .map(|protocol| crate::export::otel::OtelExporter {
                protocol,
                service: service.clone(),
                queue: Arc::new(BoundedQueue::new(builder.buffer_capacity)),
                failures: Arc::default(),
            });
        let mut exports = Vec::new();
        exports.extend(file_queue.clone());
        exports.extend(collector.as_ref().map(|c| c.queue.clone()));
        #[cfg(feature = "otel")]
        exports.extend(otel.as_ref().map(|o| o.queue.clone()));
        let shared = Arc::new(Shared {
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            latest: Mutex::new(None),
            gauges: Gauges::new(builder.gauges),
            exports,
        });

        let mut handle = AgentHandle {
            service: service.clone(),
            instance: instance.clone(),
            shared: shared.clone(),
            threads: Vec::new(),
            heap: None,
        };
        // If a spawn fails, dropping `handle` stops whatever was started.
        let mut heap_windows = None;
        if builder.heap_sample_bytes > 0 {
            match crate::alloc::heap::Sites::claim() {
                Some(sites) if crate::alloc::stats().is_some() => {
                    let sites = Arc::new(Mutex::new(sites));
                    handle.heap = Some(sites.clone());
                    let windows = Arc::new(crate::alloc::heap::Windows::default());
                    heap_windows = Some(windows.clone());
                    crate::alloc::heap::set_mean(builder.heap_sample_bytes);
                    let stop_shared = shared.clone();
                    let interval_us = sample_interval_us.clone();
                    handle.threads.push(spawn("lagscope-heap", move || {
                        // Unwinds the sampled stacks often enough that their
                        // slots come free, and ends a window every heap_window.
                        let run = AssertUnwindSafe(|| {
                            let window = || heap_window(interval_us.load(Ordering::Relaxed));
                            let mut wait = HEAP_DRAIN;
                            let mut window_ends = std::time::Instant::now() + window();
                            while !stop_shared.wait_stopping(wait) {
                                let mut sites = sites.lock().unwrap_or_else(|p| p.into_inner());
                                let drained = sites.drain();
                                if std::time::Instant::now() >= window_ends {
                                    windows.put(sites.window());
                                    window_ends += window();
                                }
                                drop(sites);
                                wait = if crate::alloc::heap::Sites::busy(drained) {
                                    HEAP_DRAIN_BUSY
                                } else {
                                    HEAP_DRAIN
                                };
                            }
                        });
                        if catch_unwind(run).is_err() {
                            crate::notices::say("heap sampling stopped after an internal error".into());
                        }
                        crate::alloc::heap::set_mean(0);
                    })?);
                }
                Some(_) => {
                    crate::notices::say("heap sampling needs lagscope::alloc::Counting as the global allocator; it stays off".into())
                }
                None => {
                    crate::notices::say("another agent in this process samples the heap; this one does not".into())
                }
            }
        }
        if let (Some(sink), Some(queue)) = (file_sink, file_queue) {
            handle
                .threads
                .push(spawn("lagscope-file", move || sink.run(queue))?);
        }
        #[cfg(feature = "otel")]
        if let Some(exporter) = otel {
            handle.threads.push(spawn("lagscope-otel", move || {
                let run = AssertUnwindSafe(|| exporter.run());
                if catch_unwind(run).is_err() {
                    crate::notices::say("the OTLP exporter stopped after an internal error".into());
                }
            })?);
        }
        if let Some(exporter) = collector {
            handle
                .threads
                .push(spawn("lagscope-export", move || exporter.run())?);
        }
        #[allow(unused_mut)]
        let mut sampler = Sampler::new(service, instance, sample_interval_us, watched, now);
        if let Some(windows) = heap_windows {
            sampler.set_heap_windows(windows);
        }
        #[cfg(target_os = "linux")]
        if !builder.stall_threshold.is_zero() && !watches.is_empty() {
            let book = crate::watchdog::Book::default();
            sampler.set_stall_book(book.clone());
            let stop_shared = shared.clone();
            let threshold = builder.stall_threshold;
            handle.threads.push(spawn("lagscope-watchdog", move || {
                let stop = |period| stop_shared.wait_stopping(period);
                // An agent bug must not take the host down: contain it here.
                let run = AssertUnwindSafe(|| crate::watchdog::run(watches, threshold, book, stop));
                if catch_unwind(run).is_err() {
                    crate::notices::say(
                        "the stall watchdog stopped after an internal error".into(),
                    );
                }
            })?);
        }
        #[cfg(target_os = "linux")]
        if let Some((signal, exchange)) = profiler {
            sampler.set_profiles(exchange.clone());
            let stop_shared = shared.clone();
            let hz = builder.profile_hz;
            handle.threads.push(spawn("lagscope-profiler", move || {
                let stop = |period| stop_shared.wait_stopping(period);
                let run = AssertUnwindSafe(|| crate::profiler::run(signal, hz, exchange, stop));
                if catch_unwind(run).is_err() {
                    crate::notices::say("the CPU profiler stopped after an internal error".into());
                }
            })?);
        }
        handle.threads.push(spawn("lagscope-sampler", move || {
            run_sampler(sampler, shared)
        })?);
        Ok(handle)
    }

    /// The service name this agent reports.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The instance id this agent reports.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The most recent sample, or `None` before the first interval has passed.
    pub fn snapshot(&self) -> Option<Sample> {
        let latest = self.shared.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.as_deref().cloned()
    }

    /// Reports a gauge, read once per sample on the agent's thread; a gauge of
    /// the same name is replaced. Keep `read` cheap and non-blocking: it delays
    /// the sample, never the host. A panic in `read` is caught and reads as `None`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let agent = lagscope::Agent::builder()
    ///     .sample_interval(Duration::from_millis(20))
    ///     .start(rt.handle().clone())
    ///     .unwrap();
    /// let waiting = Arc::new(AtomicUsize::new(3));
    /// let w = waiting.clone();
    /// agent.gauge("db.pool.waiting", move || w.load(Ordering::Relaxed) as f64);
    /// let value = loop {
    ///     if let Some(v) = agent.snapshot().and_then(|s| s.gauge("db.pool.waiting")) {
    ///         break v;
    ///     }
    ///     std::thread::sleep(Duration::from_millis(10));
    /// };
    /// assert_eq!(value, 3.0);
    /// ```
    pub fn gauge(&self, name: impl Into<String>, read: impl Fn() -> f64 + Send + Sync + 'static) {
        self.shared.gauges.set(name.into(), Box::new(read));
    }

    /// The monitor for the futures named `name` (see [`crate::instrument`]):
    /// keep it where one name wraps many futures, to skip the name lookup.
    ///
    /// ```
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let agent = lagscope::Agent::builder().start(rt.handle().clone()).unwrap();
    /// let jobs = agent.task_monitor("job: resize image");
    /// rt.block_on(jobs.instrument(async {}));
    /// assert_eq!(jobs.completed(), 1);
    /// agent.shutdown();
    /// ```
    pub fn task_monitor(&self, name: &str) -> crate::TaskMonitor {
        crate::TaskMonitor::named(name)
    }

    /// Live and allocated heap bytes by allocation site, from sampled
    /// allocations (see [`Builder::heap_sample_bytes`]); `None` while heap
    /// sampling is off. Allocated bytes count since heap sampling started;
    /// the agent also ships a profile to the collector every 10 s, with
    /// the bytes allocated over those 10 s and the 128 sites with the most
    /// live or allocated bytes.
    ///
    /// ```
    /// # #[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
    /// # {
    /// #[global_allocator]
    /// static GLOBAL: lagscope::alloc::Counting<std::alloc::System> =
    ///     lagscope::alloc::Counting::new(std::alloc::System);
    ///
    /// #[inline(never)]
    /// fn remember(cache: &mut Vec<Vec<u8>>) {
    ///     for _ in 0..4096 {
    ///         cache.push(vec![1u8; 1024]);
    ///     }
    /// }
    ///
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let agent = lagscope::Agent::builder()
    ///     .heap_sample_bytes(64 * 1024)
    ///     .start(rt.handle().clone())
    ///     .unwrap();
    /// let mut cache = Vec::new();
    /// remember(&mut cache);
    /// let profile = agent.heap_profile().expect("heap sampling is on");
    /// let live: u64 = profile
    ///     .sites
    ///     .iter()
    ///     .filter(|s| s.frames.iter().any(|f| f.contains("remember")))
    ///     .map(|s| s.live_bytes)
    ///     .sum();
    /// // 4 MiB live, estimated from ~64 samples.
    /// assert!(live > 2 << 20 && live < 6 << 20, "{live}");
    /// # }
    /// ```
    pub fn heap_profile(&self) -> Option<crate::alloc::heap::HeapProfile> {
        let sites = self.heap.as_ref()?;
        let profile = sites.lock().unwrap_or_else(|p| p.into_inner()).profile();
        Some(profile)
    }

    /// Stops the agent and waits for its threads to finish (promptly: they wait
    /// on a condition variable, not a sleep). Pending file output is flushed.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        *self
            .shared
            .stopping
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        for q in &self.shared.exports {
            q.close();
        }
        for t in self.threads.drain(..) {
            // A panic on an agent thread was already contained and reported there.
            let _ = t.join();
        }
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How often the agent ships the heap by allocation site: every
/// [`HEAP_WINDOW_SAMPLES`] samples (10 s at the default interval, 5 s at the
/// 500 ms `lagscope doctor` sets), within [`HEAP_WINDOW_MIN`] and
/// [`HEAP_WINDOW_MAX`]. Naming where a heap grew takes two windows, so
/// shorter samples make a short watch enough.
fn heap_window(sample_interval_us: u64) -> std::time::Duration {
    std::time::Duration::from_micros(sample_interval_us.saturating_mul(HEAP_WINDOW_SAMPLES))
        .clamp(HEAP_WINDOW_MIN, HEAP_WINDOW_MAX)
}
/// Samples per heap window.
const HEAP_WINDOW_SAMPLES: u64 = 10;
/// The shortest heap window, whatever the sample interval.
const HEAP_WINDOW_MIN: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest heap window, whatever the sample interval.
const HEAP_WINDOW_MAX: std::time::Duration = std::time::Duration::from_secs(60);
/// How often sampled heap stacks are unwound.
const HEAP_DRAIN: std::time::Duration = std::time::Duration::from_millis(100);
/// ... and while allocations come in bursts.
const HEAP_DRAIN_BUSY: std::time::Duration = std::time::Duration::from_millis(10);

fn spawn(name: &'static str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    let f = move || {
        crate::alloc::heap::leave_out_this_thread();
        f()
    };
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|source| Error::Thread {
            thread: name,
            source,
        })
}

fn run_sampler(mut sampler: Sampler, shared: Arc<Shared>) {
    let names: Vec<String> = sampler.runtime_names().map(String::from).collect();
    let result = catch_unwind(AssertUnwindSafe(|| loop {
        let now = Instant::now();
        if let Some(sample) = sampler.tick(now, &shared.gauges, shared.dropped()) {
            shared.publish(sample);
        }
        let deadline = sampler.next_deadline();
        let stopping = shared.stopping.lock().unwrap_or_else(|p| p.into_inner());
        let timeout = deadline.saturating_duration_since(Instant::now());
        let (stopping, _) = shared
            .wake
            .wait_timeout_while(stopping, timeout, |stop| !*stop)
            .unwrap_or_else(|p| p.into_inner());
        if *stopping {
            break;
        }
    }));
    if result.is_err() {
        // Never let an agent bug take the host down: stop sampling, say so once.
        tracing::warn!(target: "lagscope", "the sampler stopped after an internal error (runtimes: {names:?})");
    }
    debug_assert!(shared.is_stopping() || result.is_err());
}

fn default_service() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into())
}

fn default_instance() -> String {
    let host = procfs::hostname().unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_heap_window_is_ten_samples_within_its_bounds() {
        assert_eq!(heap_window(1_000_000), Duration::from_secs(10));
        assert_eq!(heap_window(500_000), Duration::from_secs(5));
        assert_eq!(heap_window(20_000), HEAP_WINDOW_MIN);
        assert_eq!(heap_window(30_000_000), HEAP_WINDOW_MAX);
        assert_eq!(heap_window(u64::MAX), HEAP_WINDOW_MAX);
    }
}
