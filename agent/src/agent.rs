//! The running agent: its threads, its latest sample, and how it stops.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::runtime::Handle;

use crate::error::Error;
use crate::export::collector::Identity;
use crate::export::{Outputs, SampleQueue};
use crate::options::Options;
use crate::platform::procfs;
use crate::sample::Sample;
use crate::sampler::gauge::Gauges;
use crate::sampler::lag::LagProbe;
use crate::sampler::runtime::RuntimeSampler;
use crate::sampler::{Sampler, Watched};

pub(crate) use crate::sampler::gauge::GaugeFn;

/// How far the agent has got in stopping. It stops in that order, so what
/// the sources hold when they stop (a partial CPU profile or heap window)
/// goes out in the sampler's last sample, which the exporters then flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Running,
    /// The threads that feed the sampler (heap, watchdog, profiler) finish.
    Sources,
    /// The sampler takes its last sample and finishes.
    Sampler,
}

/// What an agent thread is, for the order in which they stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Sampler,
    Export,
}

/// State shared by the handle and the agent's threads.
struct Shared {
    stopping: Mutex<Stage>,
    wake: Condvar,
    latest: Mutex<Option<Arc<Sample>>>,
    gauges: Gauges,
    exports: Vec<SampleQueue>,
}

impl Shared {
    /// Waits up to `period` for a source thread's stop; returns whether it
    /// is to stop.
    fn wait_stopping(&self, period: std::time::Duration) -> bool {
        self.wait_for(Stage::Sources, period)
    }

    /// Waits up to `period` for the agent to reach `stage`; returns whether
    /// it has.
    fn wait_for(&self, stage: Stage, period: std::time::Duration) -> bool {
        let stopping = self.stopping.lock().unwrap_or_else(|p| p.into_inner());
        let (stopping, _) = self
            .wake
            .wait_timeout_while(stopping, period, |s| *s < stage)
            .unwrap_or_else(|p| p.into_inner());
        *stopping >= stage
    }

    fn set_stage(&self, stage: Stage) {
        *self.stopping.lock().unwrap_or_else(|p| p.into_inner()) = stage;
        self.wake.notify_all();
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
    threads: Vec<(Role, JoinHandle<()>)>,
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

/// What [`crate::Builder::start`] hands the agent: its options, the
/// runtimes it watches (the main one first) and what comes with them.
pub(crate) struct Setup {
    pub(crate) options: Options,
    pub(crate) runtimes: Vec<(String, Handle)>,
    #[cfg(tokio_unstable)]
    pub(crate) poll_hooks: Vec<(String, PollHooksOf)>,
    pub(crate) gauges: Vec<(String, GaugeFn)>,
    /// Environment variables left out, for the collector's hello.
    pub(crate) config_warnings: Vec<String>,
}

impl AgentHandle {
    /// Starts the agent's threads. If one cannot be spawned, dropping the
    /// half-built handle stops those already started.
    pub(crate) fn start(setup: Setup) -> Result<Self, Error> {
        let Setup {
            options,
            runtimes,
            #[cfg(tokio_unstable)]
            poll_hooks,
            gauges,
            config_warnings,
        } = setup;
        let service = options.service.clone().unwrap_or_else(default_service);
        let instance = options.instance.clone().unwrap_or_else(default_instance);
        let now = Instant::now();
        crate::tasks::set_max_names(options.max_task_names);
        #[cfg(not(tokio_unstable))]
        let poll_hooks: Vec<(String, PollHooksOf)> = Vec::new();

        let heap_sites = claim_heap(&options);
        let mut capabilities = capabilities(!poll_hooks.is_empty(), heap_sites.is_some());
        let shapes = runtimes
            .iter()
            .map(|(name, h)| (name.clone(), h.metrics().num_workers()))
            .collect();
        // The watchdog knows each runtime's workers by what its probes report.
        let tokens: Vec<u64> = runtimes
            .iter()
            .map(|_| crate::sampler::lag::new_runtime_token())
            .collect();
        #[cfg(target_os = "linux")]
        let watches = watches(&runtimes, &tokens, &poll_hooks);
        let watched = watched(
            runtimes,
            tokens,
            poll_hooks,
            options.lag_probe_interval,
            now,
        );
        let interval_us = Arc::new(AtomicU64::new(
            u64::try_from(options.sample_interval.as_micros()).unwrap_or(u64::MAX),
        ));
        #[cfg(target_os = "linux")]
        let profiler = install_profiler(&mut capabilities);
        let identity = Identity {
            service: service.clone(),
            instance: instance.clone(),
            runtimes: shapes,
            capabilities,
            config_warnings,
        };
        let outputs = Outputs::open(
            &options,
            identity,
            &interval_us,
            #[cfg(target_os = "linux")]
            profiler.as_ref().map(|(_, e)| e.clone()),
        )?;
        let shared = Arc::new(Shared {
            stopping: Mutex::new(Stage::Running),
            wake: Condvar::new(),
            latest: Mutex::new(None),
            gauges: Gauges::new(gauges),
            exports: outputs.queues(),
        });
        let mut handle = AgentHandle {
            service: service.clone(),
            instance: instance.clone(),
            shared: shared.clone(),
            threads: Vec::new(),
            heap: None,
        };

        let heap_windows = match heap_sites {
            Some(sites) => Some(handle.start_heap(sites, options.heap_sample(), &interval_us)?),
            None => None,
        };
        for (thread, what, run) in outputs.into_threads() {
            handle.supervise(Role::Export, thread, what, run)?;
        }
        #[allow(unused_mut)]
        let mut sampler = Sampler::new(service, instance, interval_us, watched, now);
        if let Some(windows) = heap_windows {
            sampler.set_heap_windows(windows);
        }
        if options.wait_captures > 0 {
            sampler.capture_waits(options.wait_captures);
        }
        if !options.stuck_after.is_zero() {
            sampler.watch_stuck(options.stuck_after);
        }
        #[cfg(target_os = "linux")]
        if !options.stall_threshold.is_zero() && !watches.is_empty() {
            let book = crate::watchdog::Book::default();
            sampler.set_stall_book(book.clone());
            let threshold = options.stall_threshold;
            handle.supervise_source("lagscope-watchdog", "the stall watchdog", move |stop| {
                crate::watchdog::run(watches, threshold, book, stop)
            })?;
        }
        #[cfg(target_os = "linux")]
        if let Some((signal, exchange)) = profiler {
            sampler.set_profiles(exchange.clone());
            let hz = options.profile_hz;
            handle.supervise_source("lagscope-profiler", "the CPU profiler", move |stop| {
                crate::profiler::run(signal, hz, exchange, stop)
            })?;
        }
        handle.supervise(
            Role::Sampler,
            "lagscope-sampler",
            "the sampler",
            move || run_sampler(sampler, shared),
        )?;
        Ok(handle)
    }

    /// Runs a source of the sampler's data (see [`Stage`]) under
    /// [`supervise`](Self::supervise); `f` gets the check it waits on, which
    /// says when to stop.
    fn supervise_source(
        &mut self,
        thread: &'static str,
        what: &'static str,
        f: impl FnOnce(&dyn Fn(std::time::Duration) -> bool) + Send + 'static,
    ) -> Result<(), Error> {
        let shared = self.shared.clone();
        self.supervise(Role::Source, thread, what, move || {
            f(&|period| shared.wait_stopping(period))
        })
    }

    /// Runs `f` on a thread of the agent called `thread`: left out of heap
    /// sampling, and contained, so an agent bug cannot take the host down
    /// (`what` stopped after an internal error is said once).
    fn supervise(
        &mut self,
        role: Role,
        thread: &'static str,
        what: &'static str,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), Error> {
        let run = move || {
            crate::alloc::heap::leave_out_this_thread();
            if catch_unwind(AssertUnwindSafe(f)).is_err() {
                crate::notices::say(format!("{what} stopped after an internal error"));
            }
        };
        let joined = std::thread::Builder::new()
            .name(thread.into())
            .spawn(run)
            .map_err(|source| Error::Thread { thread, source })?;
        self.threads.push((role, joined));
        Ok(())
    }

    /// Starts heap sampling with the sites [`claim_heap`] took; the
    /// windows of sites it ships, for the sampler.
    fn start_heap(
        &mut self,
        sites: crate::alloc::heap::Sites,
        sample_bytes: u64,
        interval_us: &Arc<AtomicU64>,
    ) -> Result<Arc<crate::alloc::heap::Windows>, Error> {
        let sites = Arc::new(Mutex::new(sites));
        self.heap = Some(sites.clone());
        let windows = Arc::new(crate::alloc::heap::Windows::default());
        crate::alloc::heap::set_mean(sample_bytes);
        let (interval_us, out) = (interval_us.clone(), windows.clone());
        self.supervise_source("lagscope-heap", "heap sampling", move |stop| {
            // Sampling stops with this thread, however it ends.
            struct Off;
            impl Drop for Off {
                fn drop(&mut self) {
                    crate::alloc::heap::set_mean(0);
                }
            }
            let _off = Off;
            drain_heap(&sites, &out, &interval_us, stop);
        })?;
        Ok(windows)
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
    /// allocations (see [`crate::Builder::heap_sample_bytes`]); `None` while heap
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
    /// on a condition variable, not a sleep). What the agent holds goes out
    /// first: the CPU profile and heap window under way, in a last sample
    /// (naming the profile's stacks can take a moment the first time).
    /// Pending file output is flushed; the collector gets a bounded time.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Stops the sources, then the sampler (whose last sample carries what
    /// they held), then the exporters (which flush it, for a bounded time).
    fn stop(&mut self) {
        let mut threads = std::mem::take(&mut self.threads);
        let mut join = |role: Role| {
            for (_, t) in threads.extract_if(.., |(r, _)| *r == role) {
                // A panic on an agent thread was already contained and reported there.
                let _ = t.join();
            }
        };
        self.shared.set_stage(Stage::Sources);
        join(Role::Source);
        self.shared.set_stage(Stage::Sampler);
        join(Role::Sampler);
        for q in &self.shared.exports {
            q.close();
        }
        join(Role::Export);
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What this agent can report, for the collector's hello: the dashboard
/// says what a build or process lacks.
fn capabilities(poll_hooks: bool, heap_sampling: bool) -> Vec<String> {
    let mut capabilities = Vec::new();
    let mut say = |c: &str, has: bool| {
        if has {
            capabilities.push(c.to_string());
        }
    };
    say("tokio_unstable", cfg!(tokio_unstable));
    say("poll_hooks", poll_hooks);
    say("heap", crate::alloc::stats().is_some());
    say("heap-sampling", heap_sampling);
    say(
        "frame-pointers",
        crate::platform::build_keeps_frame_pointers(),
    );
    say("line-tables", crate::platform::executable_has_line_tables());
    capabilities
}

/// The heap's sites, where heap sampling is on and can run: it needs
/// [`Counting`](crate::alloc::Counting) and is one agent's per process. Why
/// it cannot is a notice where sampling was asked for, and only a debug
/// event where it is the default.
fn claim_heap(options: &Options) -> Option<crate::alloc::heap::Sites> {
    if options.heap_sample() == 0 {
        return None;
    }
    let off = |why: &str| {
        if options.heap_sample_bytes.is_some() {
            crate::notices::say(why.into());
        } else {
            tracing::debug!(target: "lagscope", "{why}");
        }
        None
    };
    match crate::alloc::heap::Sites::claim() {
        Some(sites) if crate::alloc::stats().is_some() => Some(sites),
        Some(_) => off(
            "heap sampling needs lagscope::alloc::Counting as the global allocator; it stays off",
        ),
        None => off("another agent in this process samples the heap; this one does not"),
    }
}

/// The runtimes as the stall watchdog watches them.
#[cfg(target_os = "linux")]
fn watches(
    runtimes: &[(String, Handle)],
    tokens: &[u64],
    #[allow(unused_variables)] poll_hooks: &[(String, PollHooksOf)],
) -> Vec<crate::watchdog::Watch> {
    use tokio::runtime::RuntimeFlavor::CurrentThread;
    runtimes
        .iter()
        .zip(tokens)
        .map(|((name, handle), &token)| {
            // A current-thread runtime runs on the thread that drives it; if
            // the agent starts inside it, that is this thread.
            let inside = handle.runtime_flavor() == CurrentThread
                && Handle::try_current().is_ok_and(|h| h.runtime_flavor() == CurrentThread)
                && name == crate::MAIN_RUNTIME;
            crate::watchdog::Watch {
                runtime: name.clone(),
                handle: handle.clone(),
                driver_tid: inside.then(crate::platform::current_tid),
                token,
                #[cfg(tokio_unstable)]
                hooks: poll_hooks
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, h)| h.clone()),
            }
        })
        .collect()
}

/// The runtimes as the sampler reads them: counters, blocking pool, lag.
fn watched(
    runtimes: Vec<(String, Handle)>,
    tokens: Vec<u64>,
    #[allow(unused_mut, unused_variables)] mut poll_hooks: Vec<(String, PollHooksOf)>,
    lag_probe_interval: std::time::Duration,
    now: Instant,
) -> Vec<Watched> {
    runtimes
        .into_iter()
        .zip(tokens)
        .map(|((name, handle), token)| {
            #[allow(unused_mut)]
            let mut runtime = RuntimeSampler::new(name.clone(), &handle, now);
            #[cfg(tokio_unstable)]
            if let Some(i) = poll_hooks.iter().position(|(n, _)| *n == name) {
                runtime.set_hooks(poll_hooks.swap_remove(i).1);
            }
            Watched {
                runtime,
                blocking: crate::sampler::blocking::BlockingProbe::new(handle.clone(), now),
                probe: LagProbe::new(
                    handle,
                    token,
                    lag_probe_interval,
                    crate::sampler::lag::idle_gap(lag_probe_interval),
                    now,
                ),
            }
        })
        .collect()
}

/// Poll hooks where tokio has them; nothing to hold otherwise.
#[cfg(tokio_unstable)]
type PollHooksOf = crate::hooks::PollHooks;
#[cfg(not(tokio_unstable))]
type PollHooksOf = std::convert::Infallible;

/// The profiler, unless this process cannot have one (a foreign handler on
/// its signal, or another agent already profiling): then the agent runs
/// without it and says why once.
#[cfg(target_os = "linux")]
fn install_profiler(
    capabilities: &mut Vec<String>,
) -> Option<(i32, Arc<crate::profiler::Exchange>)> {
    match crate::profiler::install() {
        Ok(signal) => {
            capabilities.push("profiler".to_string());
            Some((signal, Arc::new(crate::profiler::Exchange::default())))
        }
        Err(why) => {
            crate::notices::say(format!("CPU profiling is off: {why}"));
            None
        }
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
/// The longest wait between two unwindings of the sampled heap stacks.
const HEAP_DRAIN: std::time::Duration = std::time::Duration::from_millis(100);
/// The shortest, while samples come fast (see `Sites::next_drain`).
const HEAP_DRAIN_BUSY: std::time::Duration = std::time::Duration::from_millis(10);

/// Unwinds the sampled heap stacks often enough that their slots come
/// free, and ends a window of sites every [`heap_window`], until the agent
/// stops.
fn drain_heap(
    sites: &Mutex<crate::alloc::heap::Sites>,
    windows: &crate::alloc::heap::Windows,
    interval_us: &AtomicU64,
    stop: &dyn Fn(std::time::Duration) -> bool,
) {
    let window = || heap_window(interval_us.load(Ordering::Relaxed));
    let mut wait = HEAP_DRAIN;
    let mut window_ends = Instant::now() + window();
    let mut last_drain = Instant::now();
    while !stop(wait) {
        let mut sites = sites.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let drained = sites.drain();
        if Instant::now() >= window_ends {
            windows.put(sites.window());
            window_ends += window();
        }
        drop(sites);
        wait = crate::alloc::heap::Sites::next_drain(
            now.duration_since(last_drain),
            drained,
            HEAP_DRAIN_BUSY,
            HEAP_DRAIN,
        );
        last_drain = now;
    }
    // The partial window goes out with the sampler's last sample.
    let mut sites = sites.lock().unwrap_or_else(|p| p.into_inner());
    sites.drain();
    windows.put(sites.window());
}

fn run_sampler(mut sampler: Sampler, shared: Arc<Shared>) {
    loop {
        let now = Instant::now();
        if let Some(sample) = sampler.tick(now, &shared.gauges, shared.dropped()) {
            shared.publish(sample);
        }
        let timeout = sampler
            .next_deadline()
            .saturating_duration_since(Instant::now());
        if shared.wait_for(Stage::Sources, timeout) {
            break;
        }
    }
    sampler.stopping(Instant::now());
    while !shared.wait_for(Stage::Sampler, std::time::Duration::from_millis(100)) {}
    // The sources have stopped: their last windows go out now.
    let last = sampler.last_sample(Instant::now(), &shared.gauges, shared.dropped());
    shared.publish(last);
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
