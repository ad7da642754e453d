//! The CPU profiler: every thread of the process is sampled on its own CPU
//! time, so counts are proportional to CPU used, and a thread that sleeps
//! costs nothing.
//!
//! Each thread gets a POSIX timer on its CPU-time clock
//! (`timer_create` with the thread's clock and `SIGEV_THREAD_ID`, as Go's
//! runtime does on Linux) delivering a real-time signal (`SIGRTMIN + 4`;
//! never `SIGPROF`, which belongs to whatever profiler the host may run).
//! The handler walks the frame-pointer chain ([`crate::stack`]) into a
//! preallocated static ring of records — no allocation, no locks — and the
//! `lagscope-profiler` thread drains the ring every [`DRAIN`] into a bounded
//! table of distinct stacks, names them once per window and hands the
//! window to the sampler, which sends it with the next sample.
//!
//! A thread whose timer stays silent while it runs (a kernel state seen
//! under heavy load) is found and sampled by the profiler thread instead
//! ([`threads`]).
//!
//! Continuous windows run at a low rate (19 Hz by default, [`WINDOW`] long);
//! a profile request from the collector switches every thread to its rate
//! for its duration and answers with a profile carrying the request's id.
//!
//! The handler stays installed (inert) after the agent stops, so a timer
//! signal still in flight can never reach the default action, which for a
//! real-time signal is to kill the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lagscope_wire::{Profile, ProfileStack};

use crate::platform::slots::Slot;
use crate::platform::stack;

mod threads;
use threads::Threads;

/// Default continuous sampling rate (per CPU-second of each thread).
pub const DEFAULT_PROFILE_HZ: u32 = 19;
/// Highest rate a request may ask for.
pub const MAX_PROFILE_HZ: u32 = 1000;
/// Length of a continuous profile window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// How often the ring is drained while there are samples.
const DRAIN: Duration = Duration::from_millis(100);
/// Longest wait between two drains while there are none (see
/// [`next_drain`]): a wake-up costs an idle process more than the drain.
const IDLE_DRAIN: Duration = Duration::from_millis(400);
/// How often the thread list is read for new and gone threads.
const RESCAN: Duration = Duration::from_secs(1);
/// Offset from `SIGRTMIN` of the profiler's signal.
pub const PROFILE_SIGNAL_OFFSET: i32 = 4;
/// Frames kept per sample.
const DEPTH: usize = 64;
/// Records in the ring between the handlers and the profiler thread.
const RING: usize = 1024;
/// Distinct stacks kept per window; further new stacks count as dropped.
const MAX_STACKS: usize = 4096;

/// One sample between a handler and the profiler thread, handed over by
/// its [`Slot`].
struct Record {
    slot: Slot,
    tid: AtomicUsize,
    len: AtomicUsize,
    /// 1 + the index of the [`COPIES`] slot holding this sample's stack
    /// copy; 0 if none was free.
    copy: AtomicUsize,
    frames: [AtomicUsize; DEPTH],
}

static RECORDS: [Record; RING] = [const {
    Record {
        slot: Slot::new(),
        tid: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        copy: AtomicUsize::new(0),
        frames: [const { AtomicUsize::new(0) }; DEPTH],
    }
}; RING];

/// Stack bytes copied per sample for CFI unwinding: the user function a
/// CPU-bound sample is in sits within a few KiB of the leaf.
const COPY_BYTES: usize = 32 * 1024;
/// Stack copies between the handlers and the profiler thread. The handler
/// takes the first free one, so at low rates only the first few are ever
/// touched (resident); a sample that finds none keeps its frame-pointer
/// walk alone. The ring is drained often enough ([`drain_every`]) that
/// this happens only in bursts.
const COPY_SLOTS: usize = 32;

static COPIES: stack::CopyPool<COPY_SLOTS, { COPY_BYTES / 8 }> = stack::CopyPool::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);
static RING_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Whether the handler records anything.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The signal the handler is installed on, or why it could not be.
static INSTALLED: OnceLock<Result<i32, stack::SignalError>> = OnceLock::new();

/// A profile the collector asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) id: u64,
    pub(crate) hz: u32,
    pub(crate) duration: Duration,
}

/// Between the exporter (requests in), the profiler thread and the sampler
/// (profiles out).
#[derive(Default)]
pub(crate) struct Exchange {
    requests: Mutex<Vec<Request>>,
    finished: Mutex<Vec<Profile>>,
}

impl Exchange {
    /// Queues a request (a new one replaces any not yet started).
    pub(crate) fn request(&self, r: Request) {
        let mut q = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        q.clear();
        q.push(r);
    }

    /// Profiles finished since the last call.
    pub(crate) fn take(&self) -> Vec<Profile> {
        std::mem::take(&mut *self.finished.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn next_request(&self) -> Option<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
    }

    fn finish(&self, p: Profile) {
        let mut f = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: if nobody takes them (no sampler), keep only the newest.
        if f.len() >= 8 {
            f.remove(0);
        }
        f.push(p);
    }
}

/// Set while a profiler runs: the ring is per process, so one at a time.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Why this process cannot have a CPU profiler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProfilerError {
    /// Its timer signal could not be handled.
    #[error(transparent)]
    Signal(#[from] stack::SignalError),
    /// Another agent in the process holds the one sample ring.
    #[error("another lagscope agent in this process already profiles it")]
    Running,
}

/// Installs the signal handler (once per process) and claims the profiler;
/// the error says why it cannot run.
pub(crate) fn install() -> Result<i32, ProfilerError> {
    let signal = INSTALLED
        .get_or_init(|| {
            stack::install_free(
                PROFILE_SIGNAL_OFFSET,
                handler,
                " (turn the profiler off with LAGSCOPE_PROFILE_HZ=0)",
            )
        })
        .clone()?;
    if RUNNING.swap(true, Ordering::AcqRel) {
        return Err(ProfilerError::Running);
    }
    Ok(signal)
}

/// The timer signal's handler. Async-signal-safe: atomics on static memory,
/// `gettid`, and the frame walk (which reads through `process_vm_readv`).
extern "C" fn handler(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let i = NEXT.fetch_add(1, Ordering::Relaxed) % RING;
    let r = &RECORDS[i];
    let Some(hold) = r.slot.claim() else {
        RING_DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let n = stack::walk(context, &r.frames);
    let tid = stack::current_tid();
    r.tid.store(tid as usize, Ordering::Relaxed);
    r.len.store(n, Ordering::Relaxed);
    let copy = COPIES.fill(context).map_or(0, |i| i + 1);
    r.copy.store(copy, Ordering::Relaxed);
    hold.publish();
}

/// Stacks of one window, by address, before naming.
struct Window {
    request_id: Option<u64>,
    hz: u32,
    start: SystemTime,
    ends: Instant,
    stacks: HashMap<Vec<usize>, u32>,
    samples: u64,
    dropped: u64,
}

impl Window {
    fn new(request_id: Option<u64>, hz: u32, length: Duration) -> Self {
        Window {
            request_id,
            hz,
            start: SystemTime::now(),
            ends: Instant::now() + length,
            stacks: HashMap::new(),
            samples: 0,
            dropped: 0,
        }
    }

    /// Adds a sample standing for `weight` periods of CPU.
    fn add(&mut self, frames: Vec<usize>, weight: u32) {
        let full = self.stacks.len() >= MAX_STACKS;
        match self.stacks.get_mut(&frames) {
            Some(c) => *c = c.saturating_add(weight),
            None if full => {
                self.dropped += u64::from(weight);
                return;
            }
            None => {
                self.stacks.insert(frames, weight);
            }
        }
        self.samples += u64::from(weight);
    }

    /// Names the stacks and ends the window.
    fn finish(self, names: &HashMap<usize, String>) -> Profile {
        let ms = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        let mut merged: HashMap<Vec<String>, u32> = HashMap::new();
        for (addresses, count) in self.stacks {
            // The last address is the thread id, pushed by `drain`.
            let (tid, addresses) = match addresses.split_last() {
                Some((tid, rest)) => (*tid, rest),
                None => continue,
            };
            let mut frames: Vec<String> = stack::symbolize(addresses)
                .into_iter()
                .map(|f| f.function.unwrap_or_else(|| format!("{:#x}", f.address)))
                .collect();
            frames.push(names.get(&tid).cloned().unwrap_or_else(|| "thread".into()));
            *merged.entry(frames).or_default() += count;
        }
        let mut stacks: Vec<ProfileStack> = merged
            .into_iter()
            .map(|(frames, count)| {
                let mut profile_stack = ProfileStack::default();
                profile_stack.frames = frames;
                profile_stack.count = count;
                profile_stack
            })
            .collect();
        stacks.sort_by_key(|s| std::cmp::Reverse(s.count));
        {
            let mut profile = Profile::default();
            profile.request_id = self.request_id;
            profile.start_ms = ms(self.start);
            profile.end_ms = ms(SystemTime::now());
            profile.hz = self.hz;
            profile.samples = self.samples;
            profile.dropped = self.dropped;
            profile.stacks = stacks;
            profile
        }
    }
}

/// Moves every finished record from the ring into `window`, each weighted
/// as `threads` says; how many there were. The thread id is kept as the
/// stack's last element so threads stay apart.
fn drain(window: &mut Window, threads: &mut Threads) -> usize {
    let mut drained = 0;
    for r in &RECORDS {
        let Some(hold) = r.slot.ready() else {
            continue;
        };
        let len = r.len.load(Ordering::Relaxed).min(DEPTH);
        let fp_frames: Vec<usize> = r.frames[..len]
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .collect();
        let mut frames = match r.copy.load(Ordering::Relaxed).checked_sub(1) {
            Some(i) => COPIES.unwind(i, &fp_frames, DEPTH),
            None => fp_frames,
        };
        let len = frames.len();
        let tid = r.tid.load(Ordering::Relaxed);
        frames.push(tid);
        drop(hold);
        drained += 1;
        let weight = threads.answered(i32::try_from(tid).unwrap_or(-1));
        if len > 0 {
            window.add(frames, weight);
        }
    }
    let lost = RING_DROPPED.swap(0, Ordering::Relaxed);
    if lost > 0 {
        window.dropped += lost;
        threads.lost_samples();
    }
    drained
}

/// How often to drain at `hz`: at most [`DRAIN`], and often enough that the
/// samples of all CPUs between two drains fill at most half the stack copies.
fn drain_every(hz: u32, cpus: usize) -> Duration {
    copies_last(hz, cpus).min(DRAIN)
}

/// How long the samples of all CPUs at `hz` take to fill half the stack
/// copies (at least 5 ms).
fn copies_last(hz: u32, cpus: usize) -> Duration {
    let per_second = f64::from(hz.max(1)) * cpus as f64;
    Duration::from_secs_f64(COPY_SLOTS as f64 / 2.0 / per_second).max(Duration::from_millis(5))
}

/// The wait before the next drain, after one that found `drained` samples
/// following a wait of `last`: [`drain_every`] while there are samples;
/// while there are none (an idle process), twice the last wait, up to
/// [`IDLE_DRAIN`] and never longer than samples arriving at once would take
/// to fill half the stack copies, so no sample loses its copy for it.
fn next_drain(last: Duration, drained: usize, hz: u32, cpus: usize) -> Duration {
    let busy = drain_every(hz, cpus);
    if drained > 0 {
        return busy;
    }
    (last * 2).clamp(busy, IDLE_DRAIN.min(copies_last(hz, cpus)).max(busy))
}

/// Thread names by tid (`/proc/self/task/<tid>/comm`), for the profile roots.
fn thread_names() -> HashMap<usize, String> {
    let mut names = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
                names.insert(tid, comm.trim_end().to_string());
            }
        }
    }
    names
}

/// Runs the profiler until `stop` returns true. `continuous_hz == 0` samples
/// only when a request comes.
pub(crate) fn run(
    signal: i32,
    continuous_hz: u32,
    exchange: Arc<Exchange>,
    stop: impl Fn(Duration) -> bool,
) {
    stack::warm_up();
    let mut threads = Threads::new(signal, continuous_hz);
    ENABLED.store(true, Ordering::Relaxed);
    threads.rescan();
    let mut window = Window::new(None, continuous_hz, WINDOW);
    let mut names = thread_names();
    let mut last_scan = Instant::now();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut wait = drain_every(window.hz, cpus);
    while !stop(wait) {
        if !stack::is_ours(signal, handler) {
            // The host installed its own handler over ours: stop the timers
            // at once so no more of our signals reach it.
            crate::notices::say(format!(
                "the host installed its own handler on signal {signal}, lagscope's profiler signal: CPU profiling is off (use another real-time signal in the host)"
            ));
            break;
        }
        let drained = drain(&mut window, &mut threads);
        wait = next_drain(wait, drained, window.hz, cpus);
        if let Some(relay) = threads.relay() {
            wait = wait.min(relay);
        }
        let now = Instant::now();
        if now.duration_since(last_scan) >= RESCAN {
            threads.judge();
            if threads.rescan() {
                // Names of threads seen so far, kept for threads that exit
                // mid-window (all are read again when a window ends).
                names.extend(thread_names());
            }
            last_scan = now;
        }
        if window.request_id.is_none() {
            if let Some(r) = exchange.next_request() {
                // Close the continuous window early and serve the request.
                let done =
                    std::mem::replace(&mut window, Window::new(Some(r.id), r.hz, r.duration));
                if continuous_hz > 0 && done.samples > 0 {
                    exchange.finish(done.finish(&names));
                }
                // Threads started since the last scan are profiled (and named) too.
                threads.rescan();
                names.extend(thread_names());
                last_scan = now;
                threads.set_rate(r.hz.clamp(1, MAX_PROFILE_HZ));
                wait = drain_every(window.hz, cpus);
                continue;
            }
        }
        if now >= window.ends {
            let was_request = window.request_id.is_some();
            let done = std::mem::replace(&mut window, Window::new(None, continuous_hz, WINDOW));
            // Name threads started since the last scan before the roots are set.
            names.extend(thread_names());
            if done.request_id.is_some() || done.samples > 0 {
                exchange.finish(done.finish(&names));
            }
            names = thread_names();
            if was_request {
                threads.set_rate(continuous_hz);
            }
        }
    }
    threads.stop();
    ENABLED.store(false, Ordering::Relaxed);
    // The window under way goes out with the sampler's last sample (a
    // request's too: whoever asked gets what there is).
    drain(&mut window, &mut threads);
    if window.request_id.is_some() || window.samples > 0 {
        names.extend(thread_names());
        exchange.finish(window.finish(&names));
    }
    RUNNING.store(false, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn burns_cpu(until: Instant) -> u64 {
        let mut h = 1u64;
        while Instant::now() < until {
            for i in 0..10_000u64 {
                h = h.wrapping_mul(31).wrapping_add(i);
            }
            h = std::hint::black_box(h);
        }
        h
    }

    #[test]
    fn drains_space_out_while_there_are_no_samples_and_return_with_them() {
        let busy = drain_every(DEFAULT_PROFILE_HZ, 2);
        assert_eq!(busy, DRAIN);
        let mut wait = busy;
        let mut waits = Vec::new();
        for _ in 0..4 {
            wait = next_drain(wait, 0, DEFAULT_PROFILE_HZ, 2);
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, [200, 400, 400, 400]);
        // Samples arriving at once after the longest wait fill at most half
        // the stack copies.
        assert!(IDLE_DRAIN <= copies_last(DEFAULT_PROFILE_HZ, 2));
        assert_eq!(next_drain(wait, 3, DEFAULT_PROFILE_HZ, 2), busy);
        // Many CPUs: the copies bound the wait, idle or not.
        let many = drain_every(DEFAULT_PROFILE_HZ, 64);
        assert!(many < DRAIN);
        assert_eq!(next_drain(many, 0, DEFAULT_PROFILE_HZ, 64), many);
        // A fast request never waits longer than its copies last.
        let fast = next_drain(Duration::from_secs(1), 0, MAX_PROFILE_HZ, 2);
        assert_eq!(fast, drain_every(MAX_PROFILE_HZ, 2));
    }

    /// One profiler at a time in this test process (the ring is per process).
    static ONE_PROFILER: Mutex<()> = Mutex::new(());

    /// Profiles a thread burning CPU for `burn` with a 199 Hz request of
    /// `length`; `silent` makes the burner's timer silent. The burner's
    /// samples: in all, and in `burns_cpu`.
    fn profile_a_burner(burn: Duration, length: Duration, silent: bool) -> (u32, u32) {
        let _one = ONE_PROFILER.lock().unwrap_or_else(|p| p.into_inner());
        let signal = install().expect("installed");
        let exchange = Arc::new(Exchange::default());
        let stop = Arc::new(AtomicBool::new(false));
        let profiler = {
            let (exchange, stop) = (exchange.clone(), stop.clone());
            std::thread::spawn(move || {
                run(signal, 0, exchange, |d| {
                    std::thread::sleep(d);
                    stop.load(Ordering::Relaxed)
                })
            })
        };
        let (started, is_started) = std::sync::mpsc::channel();
        let burner = std::thread::Builder::new()
            .name("burner".into())
            .spawn(move || {
                if silent {
                    threads::tests::SILENT.store(stack::current_tid(), Ordering::Relaxed);
                }
                let _ = started.send(());
                burns_cpu(Instant::now() + burn)
            })
            .expect("thread");
        is_started.recv().expect("the burner starts");
        // The request comes while the burner runs: a profile covers the
        // threads alive when it starts.
        exchange.request(Request {
            id: 7,
            hz: 199,
            duration: length,
        });
        let _ = burner.join();
        let profile = (0..80)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(100));
                exchange
                    .take()
                    .into_iter()
                    .find(|p| p.request_id == Some(7))
            })
            .expect("the requested profile");
        stop.store(true, Ordering::Relaxed);
        let _ = profiler.join();
        threads::tests::SILENT.store(-1, Ordering::Relaxed);
        assert_eq!(profile.hz, 199);
        // Other tests run in this process too: look at the burner's samples.
        let burner: Vec<&ProfileStack> = profile
            .stacks
            .iter()
            .filter(|s| s.frames.last().is_some_and(|root| root == "burner"))
            .collect();
        let total: u32 = burner.iter().map(|s| s.count).sum();
        let burning: u32 = burner
            .iter()
            .filter(|s| s.frames.iter().any(|f| f.contains("burns_cpu")))
            .map(|s| s.count)
            .sum();
        (total, burning)
    }

    #[test]
    fn a_requested_profile_finds_the_function_that_burns_cpu() {
        let (total, burning) = profile_a_burner(
            Duration::from_millis(1200),
            Duration::from_millis(800),
            false,
        );
        assert!(total >= 60, "{total} samples of the burner");
        assert!(
            f64::from(burning) >= 0.9 * f64::from(total),
            "{burning} of {total} samples in burns_cpu"
        );
    }

    #[test]
    fn a_thread_whose_timer_stays_silent_is_still_profiled() {
        // Judged after its first 20 periods of CPU (at the first rescan,
        // 1 s in), then relayed for the rest of the request.
        let (total, burning) = profile_a_burner(
            Duration::from_millis(2800),
            Duration::from_millis(2500),
            true,
        );
        assert!(total >= 60, "{total} samples of the burner");
        assert!(
            f64::from(burning) >= 0.9 * f64::from(total),
            "{burning} of {total} samples in burns_cpu"
        );
    }

    #[test]
    fn a_full_window_counts_what_it_cannot_keep() {
        let mut w = Window::new(None, 19, WINDOW);
        for i in 0..(MAX_STACKS + 10) {
            w.add(vec![i, 1], 1);
        }
        w.add(vec![0, 1], 1);
        assert_eq!(w.stacks.len(), MAX_STACKS);
        assert_eq!(w.dropped, 10);
        assert_eq!(w.samples, MAX_STACKS as u64 + 1);
    }
}
