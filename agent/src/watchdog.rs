//! The stall watchdog: notices a worker stuck in one poll while it is stuck,
//! and takes that thread's stack to name the function that blocks.
//!
//! Runs on its own thread (`lagscope-watchdog`). It checks every runtime
//! when the earliest poll it knows of would reach the threshold, and at
//! least once a threshold (each half threshold while a stall lasts): a
//! wake-up costs the host more than the check it makes, so a busy service
//! pays for about one check per threshold. Two ways to see a stall:
//!
//! - **poll hooks** (`--cfg tokio_unstable` with [`crate::PollHooks`]): each
//!   worker's poll-start timestamp, so detection is exact and the thread,
//!   task id and spawn location are known. The final duration is exact too
//!   (the hooks keep the last long poll's start and length), provided the
//!   stall threshold is at least the hooks' long-poll threshold (the defaults,
//!   20 ms and 10 ms, are).
//! - **worker metrics** (stable tokio): tokio publishes a worker's busy time
//!   and park count when it parks or every ~61 scheduler ticks, so a worker
//!   that is not parked and whose counters have not moved for the threshold is
//!   in one long poll (or in a run of polls without a maintenance tick — with
//!   polls that each take ≥ threshold/61, that can be a false alarm; the
//!   stack shows which). The stuck thread is found among the runtime's
//!   threads (`tokio-rt-worker`, or the thread that started the agent for a
//!   current-thread runtime) as the one whose stack is in user code rather
//!   than parked. The final duration is the busy time the worker published
//!   when it came back, which covers the stall plus the few polls around it.
//!   Several workers stalled at once are paired with the stuck threads by
//!   guess, then checked when one comes back: the thread that left the
//!   function it was stuck in is that worker's, and a wrong guess is
//!   swapped. Blocking-pool threads (also `tokio-rt-worker`) are told apart
//!   by their stacks and never paired.
//!
//! A stall's stack is taken when it is first seen and again every
//! [`RECAPTURE`] while it lasts (at most [`MAX_CAPTURES`] times); distinct
//! stacks are counted so a long stall shows where its time went.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lagscope_wire::frames::is_user_frame;
use lagscope_wire::{StallDetection, StallEvent, StallStack};
use tokio::runtime::Handle;

#[cfg(tokio_unstable)]
use crate::hooks::PollHooks;
use crate::platform::sched::{self, CpuReading, ThreadState};
use crate::platform::stack;

/// Default time in one poll from which a worker counts as stalled.
pub const DEFAULT_STALL_THRESHOLD: Duration = Duration::from_millis(20);
/// A long stall's stack is taken again this often.
pub const RECAPTURE: Duration = Duration::from_millis(50);
/// Most stacks taken for one stall.
pub const MAX_CAPTURES: u32 = 20;
/// Finished stalls kept for the next sample; beyond it the oldest are dropped.
const FINISHED_CAPACITY: usize = 64;
/// Frames kept per stack.
const STACK_DEPTH: usize = 48;
/// Distinct stacks kept per stall.
const DISTINCT_STACKS: usize = 8;
/// How long a capture may wait for the thread to answer.
const CAPTURE_TIMEOUT: Duration = Duration::from_millis(100);
/// Captures tried for one stack when the chain breaks early.
const CAPTURE_ATTEMPTS: usize = 4;
/// How often the watchdog takes one unclassified runtime thread's stack to
/// tell workers from blocking-pool threads.
const CLASSIFY_EVERY: Duration = Duration::from_millis(500);
/// Captures tried per thread to classify it.
const CLASSIFY_TRIES: u8 = 3;
/// Thread name tokio gives its workers (`/proc/<pid>/task/<tid>/comm`).
const WORKER_THREAD_NAME: &str = "tokio-rt-worker";

/// Stalls between the watchdog and the sampler.
#[derive(Default)]
pub(crate) struct StallBook {
    ongoing: HashMap<u64, StallEvent>,
    finished: VecDeque<StallEvent>,
    /// Stalls seen since start (for tests and the sample's counters).
    total: u64,
}

/// Shared handle to the book.
pub(crate) type Book = Arc<Shelf>;

/// The book, and a flag the sampler polls: a stall began or ended, so the
/// news should go out now rather than at the next regular sample.
#[derive(Default)]
pub(crate) struct Shelf {
    book: Mutex<StallBook>,
    news: AtomicBool,
}

impl Shelf {
    /// Whether a stall began or ended since the last call.
    pub(crate) fn take_news(&self) -> bool {
        self.news.swap(false, Relaxed)
    }
}

fn lock(book: &Book) -> MutexGuard<'_, StallBook> {
    book.book.lock().unwrap_or_else(|p| p.into_inner())
}

/// Finished stalls since the last call, then the ongoing ones.
pub(crate) fn take(book: &Book) -> Vec<StallEvent> {
    let mut b = lock(book);
    let mut out: Vec<StallEvent> = b.finished.drain(..).collect();
    let mut ongoing: Vec<StallEvent> = b.ongoing.values().cloned().collect();
    ongoing.sort_by_key(|e| e.id);
    out.extend(ongoing);
    out
}

/// A runtime the watchdog looks at.
pub(crate) struct Watch {
    pub(crate) runtime: String,
    pub(crate) handle: Handle,
    /// The thread that started the agent, if it runs this (current-thread)
    /// runtime: on stable tokio the only way to know that runtime's thread.
    pub(crate) driver_tid: Option<i32>,
    /// The runtime's [`new_runtime_token`](crate::sampler::lag::new_runtime_token), which its lag probes report.
    pub(crate) token: u64,
    #[cfg(tokio_unstable)]
    pub(crate) hooks: Option<PollHooks>,
}

/// One stall in progress, as the watchdog tracks it.
struct Active {
    id: u64,
    /// The stalled poll's start (poll hooks); 0 for the metrics detector.
    #[cfg_attr(not(tokio_unstable), allow(dead_code))]
    marker: u64,
    last_capture: Instant,
    tid: i32,
}

/// Slots of [`PROBE_RAN`], keyed by thread id.
const PROBE_SLOTS: usize = 256;

/// Where lag probes last ran: a thread id, when (ns since [`probe_epoch`])
/// and for which watched runtime (its [`new_runtime_token`](crate::sampler::lag::new_runtime_token)).
struct ProbeRan {
    tid: AtomicI32,
    runtime: AtomicU64,
    at_ns: AtomicU64,
}

/// Written by the lag probe on whatever worker polls it, read by the stable
/// detector: a worker thread that ran a probe after its counters froze is
/// going through many short polls, not stuck in one.
static PROBE_RAN: [ProbeRan; PROBE_SLOTS] = [const {
    ProbeRan {
        tid: AtomicI32::new(0),
        runtime: AtomicU64::new(0),
        at_ns: AtomicU64::new(0),
    }
}; PROBE_SLOTS];

fn probe_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch_ns(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(probe_epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Called by the lag probe task of the runtime `runtime` (its
/// [`new_runtime_token`](crate::sampler::lag::new_runtime_token)) when a worker polls it.
pub(crate) fn probe_ran_here(runtime: u64) {
    let tid = crate::platform::current_tid();
    let slot = &PROBE_RAN[tid.unsigned_abs() as usize % PROBE_SLOTS];
    slot.tid.store(tid, Ordering::Relaxed);
    slot.runtime.store(runtime, Ordering::Relaxed);
    slot.at_ns
        .store(since_epoch_ns(Instant::now()), Ordering::Release);
}

/// Whether thread `tid` ran a lag probe at or after `since`.
fn probe_ran_since(tid: i32, since: Instant) -> bool {
    let slot = &PROBE_RAN[tid.unsigned_abs() as usize % PROBE_SLOTS];
    let at = slot.at_ns.load(Ordering::Acquire);
    slot.tid.load(Ordering::Relaxed) == tid && at >= since_epoch_ns(since)
}

/// The watched runtime thread `tid` last ran a lag probe for, if it ran one
/// (and no other thread took its slot since). Tokio names the workers of
/// every runtime alike; this tells another runtime's workers apart.
fn probe_runtime(tid: i32) -> Option<u64> {
    let slot = &PROBE_RAN[tid.unsigned_abs() as usize % PROBE_SLOTS];
    let runtime = slot.runtime.load(Ordering::Relaxed);
    (slot.tid.load(Ordering::Relaxed) == tid && runtime != 0).then_some(runtime)
}

/// What the stable detector remembers of each worker.
#[derive(Clone, Copy)]
struct WorkerSeen {
    park_unpark: u64,
    busy: Duration,
    /// The check that saw the counters change.
    changed_at: Instant,
    /// How long before `changed_at` the change may have been: the time
    /// since the check before it (up to a threshold, or more when the
    /// watchdog was held up, taking a stack say).
    late: Duration,
    /// The last check of this worker.
    checked_at: Instant,
}

struct Watchdog {
    threshold: Duration,
    book: Book,
    next_id: u64,
    /// Keyed by (runtime index, slot or worker index).
    active: HashMap<(usize, usize), Active>,
    workers: HashMap<(usize, usize), WorkerSeen>,
    /// Threads named `tokio-rt-worker` known to be blocking-pool threads
    /// (tokio gives workers and its blocking pool the same name), and how
    /// many captures tried to tell the others apart.
    pool_threads: HashSet<i32>,
    classify_tries: HashMap<i32, u8>,
    last_classify: Instant,
    /// The first look at the CPU clock of a runnable thread suspected of a
    /// stall: the next look tells whether it ran or waited for a CPU.
    first_looks: HashMap<i32, CpuReading>,
    /// The first look at a thread found asleep in a call its task's poll
    /// made, with no user frame on its stack: when, and the call.
    asleep_looks: HashMap<i32, (Instant, String)>,
    /// When the next check is due: the earliest moment a poll now running
    /// could reach the threshold. Checks lower it.
    next_check: Instant,
    epoch_instant: Instant,
    epoch_system: SystemTime,
}

/// Watches `watches` until `stop` returns true.
pub(crate) fn run(
    watches: Vec<Watch>,
    threshold: Duration,
    book: Book,
    stop: impl Fn(Duration) -> bool,
) {
    let half = (threshold / 2).max(Duration::from_millis(1));
    let mut w = Watchdog {
        threshold,
        book,
        next_id: 1,
        active: HashMap::new(),
        workers: HashMap::new(),
        pool_threads: HashSet::new(),
        classify_tries: HashMap::new(),
        last_classify: Instant::now(),
        first_looks: HashMap::new(),
        asleep_looks: HashMap::new(),
        next_check: Instant::now(),
        epoch_instant: Instant::now(),
        epoch_system: SystemTime::now(),
    };
    // Read the symbol tables (up to half a second on a large binary) beside
    // the checks rather than before them, so a stall in the agent's first
    // moments is seen with its true start; a capture taken meanwhile waits
    // for the tables, not the stall's detection.
    let warm = match std::thread::Builder::new()
        .name("lagscope-warmup".into())
        .spawn(|| {
            crate::alloc::heap::leave_out_this_thread();
            let _ = std::panic::catch_unwind(stack::warm_up);
        }) {
        Ok(thread) => Some(thread),
        Err(_) => {
            stack::warm_up();
            None
        }
    };
    let mut wait = half;
    while !stop(wait) {
        w.next_check = Instant::now() + threshold.max(half);
        for (ri, watch) in watches.iter().enumerate() {
            #[cfg(tokio_unstable)]
            if let Some(hooks) = &watch.hooks {
                w.check_hooks(ri, watch, hooks);
                continue;
            }
            w.check_metrics(ri, watch);
        }
        wait = w.wait(half);
    }
    if let Some(warm) = warm {
        let _ = warm.join();
    }
}

/// Shortest wait between two checks, so a deadline just missed does not
/// make the watchdog spin.
const MIN_WAIT: Duration = Duration::from_millis(1);

impl Watchdog {
    /// How long to wait for the next check: half a threshold while a stall
    /// lasts (its stacks are retaken and its end seen at that pace), else
    /// until the earliest moment a stall could be seen.
    fn wait(&self, half: Duration) -> Duration {
        if !self.active.is_empty() {
            return half;
        }
        self.next_check
            .saturating_duration_since(Instant::now())
            .max(MIN_WAIT.min(half))
    }

    /// Asks for a check no later than `at`.
    fn check_by(&mut self, at: Instant) {
        self.next_check = self.next_check.min(at);
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        let t = if at >= self.epoch_instant {
            self.epoch_system.checked_add(at - self.epoch_instant)
        } else {
            self.epoch_system.checked_sub(self.epoch_instant - at)
        };
        t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Opens a stall: reports it at once, then takes its first stack.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        key: (usize, usize),
        runtime: &str,
        detection: StallDetection,
        marker: u64,
        started: Instant,
        tid: i32,
        stack: Option<Vec<String>>,
        task: (Option<u64>, Option<String>),
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let mut event = StallEvent {
            id,
            runtime: runtime.to_string(),
            detection,
            tid,
            started_ms: self.unix_ms(started),
            duration_us: micros(started.elapsed()),
            ongoing: true,
            blocking_function: None,
            stacks: Vec::new(),
            task_id: task.0,
            spawned_at: task.1,
            span: crate::span::current(tid),
            trace_parent: crate::span::current_trace_parent(tid),
        };
        let frames = stack.or_else(|| take_stack(tid));
        if let Some(frames) = frames {
            add_stack(&mut event, frames);
        }
        let mut b = lock(&self.book);
        b.total += 1;
        b.ongoing.insert(id, event);
        drop(b);
        self.book.news.store(true, Relaxed);
        self.active.insert(
            key,
            Active {
                id,
                marker,
                last_capture: Instant::now(),
                tid,
            },
        );
    }

    /// Updates a stall that goes on: its duration so far, another stack if due.
    fn update(&mut self, key: (usize, usize), so_far: Duration) {
        let Some(a) = self.active.get_mut(&key) else {
            return;
        };
        let (id, tid) = (a.id, a.tid);
        let (captures, named) = lock(&self.book).ongoing.get(&id).map_or((0, false), |e| {
            (e.captures(), e.blocking_function.is_some())
        });
        // Until a capture names the function (the thread may have been
        // interrupted where the frame chain breaks), try at every check.
        let due = a.last_capture.elapsed() >= RECAPTURE || !named;
        let frames = if due && captures < MAX_CAPTURES {
            a.last_capture = Instant::now();
            take_stack(tid)
        } else {
            None
        };
        let mut b = lock(&self.book);
        if let Some(e) = b.ongoing.get_mut(&id) {
            e.duration_us = micros(so_far);
            if let Some(frames) = frames {
                add_stack(e, frames);
            }
            if e.span.is_none() {
                e.span = crate::span::current(tid);
                e.trace_parent = crate::span::current_trace_parent(tid);
            }
        }
    }

    /// Closes a stall with its final duration.
    fn close(&mut self, key: (usize, usize), duration: Option<Duration>) {
        let Some(a) = self.active.remove(&key) else {
            return;
        };
        let mut b = lock(&self.book);
        if let Some(mut e) = b.ongoing.remove(&a.id) {
            e.ongoing = false;
            if let Some(d) = duration {
                e.duration_us = micros(d);
            }
            if b.finished.len() >= FINISHED_CAPACITY {
                b.finished.pop_front();
            }
            b.finished.push_back(e);
            self.book.news.store(true, Relaxed);
        }
    }

    /// Learns from a capture that reached the thread's start whether the
    /// thread is a worker or one of the blocking pool's.
    fn note_kind(&mut self, tid: i32, frames: &[String]) {
        if frames.iter().any(|f| f.contains("thread_start")) {
            self.classify_tries.insert(tid, CLASSIFY_TRIES);
            if is_blocking_pool_thread(frames) {
                self.pool_threads.insert(tid);
            } else {
                self.pool_threads.remove(&tid);
            }
        }
    }

    /// Takes the stack of one runtime thread not yet known as a worker or
    /// a pool thread (a few tries each), so that a pool thread is never
    /// taken for a stalled worker; forgets threads that are gone.
    fn classify_one_thread(&mut self, watch: &Watch) {
        let threads = runtime_threads(watch);
        self.classify_tries.retain(|tid, _| threads.contains(tid));
        self.pool_threads.retain(|tid| threads.contains(tid));
        let Some(&tid) = threads
            .iter()
            .find(|tid| self.classify_tries.get(tid).copied().unwrap_or(0) < CLASSIFY_TRIES)
        else {
            return;
        };
        *self.classify_tries.entry(tid).or_default() += 1;
        if let Some(frames) = take_stack(tid) {
            self.note_kind(tid, &frames);
        }
    }

    /// Stall `key` was opened without a thread (no stuck thread could be
    /// told when it was seen): adopt the one runtime thread, if there is
    /// exactly one, that no other stall holds and that is not parked.
    /// Called every [`RECAPTURE`] while the stall has no thread.
    fn adopt_a_thread(&mut self, key: (usize, usize), watch: &Watch) {
        // Tried at the recapture pace, not at every check.
        if let Some(a) = self.active.get_mut(&key) {
            a.last_capture = Instant::now();
        }
        let loose: Vec<(i32, Vec<String>)> = runtime_threads(watch)
            .into_iter()
            .filter(|tid| !self.active.values().any(|a| a.tid == *tid))
            .filter_map(|tid| take_stack(tid).map(|frames| (tid, frames)))
            .filter(|(_, frames)| !is_parked(frames) && !is_blocking_pool_thread(frames))
            .collect();
        let [(tid, frames)] = &loose[..] else {
            return;
        };
        let Some(a) = self.active.get_mut(&key) else {
            return;
        };
        a.tid = *tid;
        a.last_capture = Instant::now();
        let mut b = lock(&self.book);
        if let Some(e) = b.ongoing.get_mut(&a.id) {
            e.tid = *tid;
            add_stack(e, frames.clone());
        }
    }

    /// Worker `key` came back from a stall while other workers of its
    /// runtime are still stalled. Stable tokio does not say which thread
    /// runs which worker, so the stalls were paired with the stuck threads
    /// by guess; now the thread whose stall ended is the one that left the
    /// function it was stuck in. If the thread paired with `key` is still
    /// there and another stall's thread has left, the two were swapped:
    /// each worker takes the other's thread and stacks, and keeps its start.
    fn pair_with_the_thread_that_left(&mut self, key: (usize, usize)) {
        let others: Vec<(usize, usize)> = self
            .active
            .keys()
            .filter(|k| k.0 == key.0 && **k != key)
            .copied()
            .collect();
        if others.is_empty() {
            return;
        }
        let mine = self.left_its_stall(key);
        if mine == Some(true) {
            return;
        }
        // One that left; else, if this thread is surely still stuck, one
        // that cannot be told (its thread was never captured well): that
        // one is the thread that left.
        let left: Vec<((usize, usize), Option<bool>)> = others
            .into_iter()
            .map(|k| (k, self.left_its_stall(k)))
            .collect();
        let Some(other) = left
            .iter()
            .find(|(_, l)| *l == Some(true))
            .or_else(|| {
                left.iter()
                    .find(|(_, l)| mine == Some(false) && l.is_none())
            })
            .map(|(k, _)| *k)
        else {
            return;
        };
        let (Some(mine), Some(theirs)) = (self.active.remove(&key), self.active.remove(&other))
        else {
            return;
        };
        let mut b = lock(&self.book);
        let starts = (
            b.ongoing.get(&mine.id).map(|e| e.started_ms),
            b.ongoing.get(&theirs.id).map(|e| e.started_ms),
        );
        if let (Some(mine_started), Some(theirs_started)) = starts {
            if let Some(e) = b.ongoing.get_mut(&mine.id) {
                e.started_ms = theirs_started;
            }
            if let Some(e) = b.ongoing.get_mut(&theirs.id) {
                e.started_ms = mine_started;
            }
        }
        drop(b);
        self.active.insert(key, theirs);
        self.active.insert(other, mine);
    }

    /// Whether the thread of stall `key` has left the function its stall
    /// names (parked, or in other code): `None` when that cannot be told.
    fn left_its_stall(&self, key: (usize, usize)) -> Option<bool> {
        let a = self.active.get(&key)?;
        let now = take_stack(a.tid)?;
        if is_parked(&now) {
            return Some(true);
        }
        // A stack cut short (the chain broke before the thread's start), or
        // one that lost the caller of a library routine, tells nothing.
        if !now.iter().any(|f| f.contains("thread_start")) || capture_quality(&now) == LOST_CALLER {
            return None;
        }
        let b = lock(&self.book);
        let stall = b.ongoing.get(&a.id)?;
        let (deep, outer) = stall_frames(&stall.stacks);
        let has = |frames: &[&str]| now.iter().any(|f| frames.contains(&f.as_str()));
        if has(&deep) {
            Some(false)
        } else if has(&outer) {
            // In the same kind of task, with none of the stall's own frames
            // seen: another poll of it, or a capture that lost them.
            None
        } else {
            Some(true)
        }
    }

    /// Whether thread `tid`, found inside what looks like one poll running
    /// since `since`, holds its worker by itself (asleep in a call, or
    /// computing) rather than waiting for a CPU the machine does not give
    /// it: short polls preempted on an overloaded machine look like a long
    /// one from outside. A runnable thread holds its worker once it used
    /// half a threshold of CPU since its first look in this poll: polls
    /// shorter than that, however preempted, end before (a computing stall
    /// opens that much later, with its true start). Threads that cannot be
    /// read are trusted.
    fn blocks_by_itself(&mut self, tid: i32, since: Instant) -> bool {
        if sched::thread_state(tid) != Some(ThreadState::Runnable) {
            self.first_looks.remove(&tid);
            return true;
        }
        let Some(now) = sched::thread_cpu(tid) else {
            return true;
        };
        // A first look taken before this poll began says nothing of it.
        self.first_looks.retain(|_, r| r.at >= since);
        let first = *self.first_looks.entry(tid).or_insert(now);
        if now.cpu.saturating_sub(first.cpu) >= self.threshold / 2 {
            self.first_looks.remove(&tid);
            return true;
        }
        self.check_by(now.at + self.threshold / 4);
        false
    }

    /// Whether thread `tid`, whose stack (`frames`) has no user frame, is
    /// asleep in one call its task's poll made ([`poll_callee`]): asleep
    /// there at two looks a quarter threshold apart, both since `since`. A
    /// brief blocking call (a log line written to a file, say) is not
    /// caught twice.
    fn asleep_in_one_call(&mut self, tid: i32, frames: &[String], since: Instant) -> bool {
        let Some(call) = poll_callee(frames).map(|i| &frames[i]) else {
            return false;
        };
        if sched::thread_state(tid) != Some(ThreadState::Waiting) {
            self.asleep_looks.remove(&tid);
            return false;
        }
        let now = Instant::now();
        self.asleep_looks.retain(|_, (at, _)| *at >= since);
        let window = self.threshold / 4;
        match self.asleep_looks.get(&tid) {
            Some((at, seen)) if seen == call => {
                if now.duration_since(*at) >= window {
                    self.asleep_looks.remove(&tid);
                    return true;
                }
            }
            _ => {
                self.asleep_looks.insert(tid, (now, call.clone()));
            }
        }
        self.check_by(now + window);
        false
    }

    #[cfg(tokio_unstable)]
    fn check_hooks(&mut self, ri: usize, watch: &Watch, hooks: &PollHooks) {
        let state = hooks.state();
        let threshold_ns = u64::try_from(self.threshold.as_nanos()).unwrap_or(u64::MAX);
        for (si, slot) in state.slots().enumerate() {
            let key = (ri, si);
            let started = slot.poll_started_ns.load(Relaxed);
            let now_ns = state.now_ns();
            if let Some(a) = self.active.get(&key) {
                if a.marker == started {
                    self.update(key, Duration::from_nanos(now_ns.saturating_sub(started)));
                    continue;
                }
                // The stalled poll ended: its exact length is in the hooks.
                let exact = (slot.last_long_started_ns.load(Relaxed) == a.marker)
                    .then(|| Duration::from_nanos(slot.last_long_took_ns.load(Relaxed)));
                self.close(key, exact);
            }
            if started != 0 && now_ns.saturating_sub(started) < threshold_ns {
                // A poll is running: check when it reaches the threshold.
                let left = threshold_ns - now_ns.saturating_sub(started);
                self.check_by(Instant::now() + Duration::from_nanos(left));
            }
            if started != 0 && now_ns.saturating_sub(started) >= threshold_ns {
                let elapsed = Duration::from_nanos(now_ns.saturating_sub(started));
                let began = Instant::now()
                    .checked_sub(elapsed)
                    .unwrap_or_else(Instant::now);
                let task = (
                    Some(slot.task_id.load(Relaxed)).filter(|&t| t != 0),
                    slot.spawned_at().map(|l| l.to_string()),
                );
                let tid = slot.os_tid.load(Relaxed);
                if !self.blocks_by_itself(tid, began) {
                    continue;
                }
                self.open(
                    key,
                    &watch.runtime,
                    StallDetection::PollHooks,
                    started,
                    began,
                    tid,
                    None,
                    task,
                );
            }
        }
    }

    fn check_metrics(&mut self, ri: usize, watch: &Watch) {
        let metrics = watch.handle.metrics();
        let now = Instant::now();
        let mut suspects = Vec::new();
        for wi in 0..metrics.num_workers() {
            let key = (ri, wi);
            let park_unpark = metrics.worker_park_unpark_count(wi);
            let busy = metrics.worker_total_busy_duration(wi);
            let seen = self.workers.entry(key).or_insert(WorkerSeen {
                park_unpark,
                busy,
                changed_at: now,
                late: Duration::ZERO,
                checked_at: now,
            });
            let since_last_check = now - seen.checked_at;
            seen.checked_at = now;
            if seen.park_unpark != park_unpark || seen.busy != busy {
                let frozen_for = now - seen.changed_at;
                let busy_delta = busy.saturating_sub(seen.busy);
                let late = seen.late;
                *seen = WorkerSeen {
                    park_unpark,
                    busy,
                    changed_at: now,
                    late: since_last_check,
                    checked_at: now,
                };
                if self.active.contains_key(&key) {
                    // Busy time covers the stall and the polls around it; the
                    // frozen span, plus how late its start was seen, bounds
                    // it from above.
                    let d = if busy_delta.is_zero() {
                        frozen_for
                    } else {
                        busy_delta.min(frozen_for + late.max(self.threshold / 2))
                    };
                    self.pair_with_the_thread_that_left(key);
                    self.close(key, Some(d));
                }
                continue;
            }
            let frozen_for = now - seen.changed_at;
            if let Some(a) = self.active.get(&key) {
                if a.tid == 0 && a.last_capture.elapsed() >= RECAPTURE {
                    self.adopt_a_thread(key, watch);
                }
                self.update(key, frozen_for);
                continue;
            }
            // Odd = parked: an idle worker's counters freeze too.
            if park_unpark.is_multiple_of(2) {
                if frozen_for >= self.threshold {
                    suspects.push((key, seen.changed_at));
                    // Looked at again soon if it is not taken for a stall
                    // now (its thread went through lag probes, say).
                    self.check_by(now + self.threshold / 2);
                } else {
                    // Check when its counters will have been frozen a
                    // threshold.
                    let due = seen.changed_at + self.threshold;
                    self.check_by(due);
                }
            }
        }
        if suspects.is_empty() {
            if now.duration_since(self.last_classify) >= CLASSIFY_EVERY {
                self.last_classify = now;
                self.classify_one_thread(watch);
            }
            return;
        }
        // A thread that ran a lag probe since its worker's counters froze,
        // and within the last threshold, is going through other tasks: many
        // short polls between two publications of the counters, not one long
        // poll. (The second condition keeps a probe run just before a real
        // stall from hiding it: the stall is seen one threshold later, its
        // start and duration unchanged.)
        let recent = now.checked_sub(self.threshold).unwrap_or(now);
        let progressing = |tid: i32, since: Instant| probe_ran_since(tid, since.max(recent));
        let threads: Vec<i32> = runtime_threads(watch)
            .into_iter()
            .filter(|tid| !self.active.values().any(|a| a.tid == *tid))
            .filter(|tid| !self.pool_threads.contains(tid))
            .collect();
        suspects.retain(|&(_, since)| threads.iter().any(|&t| !progressing(t, since)));
        let Some(latest) = suspects.iter().map(|&(_, since)| since).max() else {
            return;
        };
        let (progressed, candidates): (Vec<i32>, Vec<i32>) = threads
            .into_iter()
            .partition(|&tid| progressing(tid, latest));
        // Find the stuck threads: the runtime's threads whose stack is in
        // user code rather than parked, and not already blamed for a stall.
        // A stack cut short (inside malloc, say) may be one too, behind them.
        // A brief capture tells a parked thread (the usual case: an idle
        // worker, looked at on every check while another runs short polls)
        // at a fraction of the cost; only the others are taken whole.
        let mut captured = Vec::new();
        for tid in candidates {
            // Before the tables are read a brief look could not be named
            // until they are, and the whole capture taken after it would be
            // late: take the whole stack at once.
            if stack::is_warm() {
                let Some(brief) = take_brief_stack(tid) else {
                    continue;
                };
                if is_parked(&brief) {
                    continue;
                }
            }
            let Some(frames) = take_stack(tid) else {
                continue;
            };
            self.note_kind(tid, &frames);
            if !is_parked(&frames) && !is_blocking_pool_thread(&frames) {
                captured.push((tid, frames));
            }
        }
        // Threads known to work for this runtime come before threads that
        // may be another, unwatched runtime's (tokio names them all alike).
        if captured
            .iter()
            .any(|&(tid, _)| probe_runtime(tid) == Some(watch.token))
        {
            captured.retain(|&(tid, _)| probe_runtime(tid) == Some(watch.token));
        }
        let before = captured.len();
        captured.retain(|&(tid, _)| self.blocks_by_itself(tid, latest));
        let captured_len = captured.len();
        if captured.is_empty() && before > 0 {
            // Every thread in user code was waiting for a CPU (or is looked
            // at for the first time): nothing to blame on the code yet.
            return;
        }
        let (mut stuck, rest): (Vec<(i32, Vec<String>)>, Vec<_>) = captured
            .into_iter()
            .partition(|(_, frames)| blocking_function(frames).is_some());
        // A thread asleep in a call its task's poll made (a sleep, a lock,
        // file I/O) holds its worker whatever frames are above the call: the
        // code that made it may be inlined into tokio's poll.
        let (asleep, unsure): (Vec<(i32, Vec<String>)>, Vec<_>) = rest
            .into_iter()
            .partition(|(tid, frames)| self.asleep_in_one_call(*tid, frames, latest));
        stuck.extend(asleep);
        if stuck.is_empty() && !progressed.is_empty() {
            // No thread without a recent probe is in user code, and some
            // thread went through probes: the frozen counters are a busy
            // worker's between two publications.
            return;
        }
        stuck.extend(unsure);
        // A thread computing since before the suspects froze may have been
        // looked at for the first time just now: it counts once a later
        // look shows it on a CPU (a quarter threshold on). Opening the
        // stalls before then would pair the threads there are with the
        // wrong workers; the stalls keep their start either way. A thread
        // that never shows (preempted short polls) stops the wait after
        // one more threshold.
        let deferred = before - captured_len;
        let earliest = suspects
            .iter()
            .map(|&(_, since)| since)
            .min()
            .unwrap_or(now);
        if deferred > 0
            && stuck.len() < suspects.len()
            && now.duration_since(earliest) < 2 * self.threshold
        {
            return;
        }
        for (key, since) in suspects {
            // With more stuck threads than suspects the pairing is a guess;
            // the stacks still say what each thread was doing.
            let (tid, frames) = if stuck.is_empty() {
                (0, None)
            } else {
                let (tid, frames) = stuck.remove(0);
                (tid, Some(frames))
            };
            // The metrics detector tells stalls apart by worker, not by poll.
            let marker = 0;
            self.open(
                key,
                &watch.runtime,
                StallDetection::WorkerMetrics,
                marker,
                since,
                tid,
                frames.or(Some(Vec::new())),
                (None, None),
            );
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Adds one capture to a stall, keeping distinct stacks most frequent first.
fn add_stack(event: &mut StallEvent, frames: Vec<String>) {
    if frames.is_empty() {
        return;
    }
    let full = event.stacks.len() >= DISTINCT_STACKS;
    match event.stacks.iter_mut().find(|s| s.frames == frames) {
        Some(s) => s.count += 1,
        // Too many distinct stacks: count the capture on the rarest one.
        None if full => {
            if let Some(last) = event.stacks.last_mut() {
                last.count += 1;
            }
        }
        None => event.stacks.push(StallStack { frames, count: 1 }),
    }
    event.stacks.sort_by_key(|s| std::cmp::Reverse(s.count));
    event.blocking_function = culprit_or_callee(&event.stacks);
}

/// The blocking function of a stall's captures (most frequent first): the
/// innermost user frame of the most frequent stack that has one — unless
/// another capture shows a deeper user frame on top of the same chain. A
/// capture that stops inside a leaf without a frame pointer (the vDSO's
/// `clock_gettime`, a libc routine) loses that leaf's caller; a capture
/// that did not stop there names it.
fn culprit(stacks: &[StallStack]) -> Option<String> {
    let chain = stacks.iter().find_map(|s| {
        let user = s.frames.iter().position(|f| is_user_frame(f))?;
        Some(&s.frames[user..])
    })?;
    stacks
        .iter()
        .filter(|s| s.frames.len() > chain.len() && s.frames.ends_with(chain))
        .find_map(|s| blocking_function(&s.frames[..s.frames.len() - chain.len()]))
        .or_else(|| blocking_function(chain))
}

/// The call a task's poll made, for a stack with no user frame: the
/// outermost frame of std, libc or another library inside tokio's task
/// poll (`std::thread::sleep`, a `Mutex`'s wait, a file read). A small
/// async block is inlined into tokio's poll, so the code that called it
/// has no frame of its own. `None` outside a task's poll, or when the poll
/// is the innermost frame (the task's own code is running).
fn poll_callee(stack: &[String]) -> Option<usize> {
    let poll = stack
        .iter()
        .position(|f| f.starts_with("tokio::runtime::task::"))?;
    stack[..poll].iter().rposition(|f| {
        lagscope_wire::frames::frame_crate(f)
            .is_some_and(|k| !matches!(k, "tokio" | "lagscope" | "core" | "tracing"))
    })
}

/// What names a stall's stack: its innermost user frame, else the call
/// its task's poll made ([`poll_callee`]).
fn culprit_or_callee(stacks: &[StallStack]) -> Option<String> {
    culprit(stacks).or_else(|| {
        stacks
            .iter()
            .find_map(|s| poll_callee(&s.frames).map(|i| s.frames[i].clone()))
    })
}

/// The user frames a thread still in this stall would show: those of its
/// captures below each capture's outermost user frame ("deep"), and those
/// outermost frames — the task's own future, which other polls of the same
/// kind of task share ("outer"). A capture with one user frame has it in
/// both.
fn stall_frames(stacks: &[StallStack]) -> (Vec<&str>, Vec<&str>) {
    fn add<'a>(to: &mut Vec<&'a str>, f: &'a str) {
        if !to.contains(&f) {
            to.push(f);
        }
    }
    let (mut deep, mut outer): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for s in stacks {
        let user: Vec<&str> = s
            .frames
            .iter()
            .map(String::as_str)
            .filter(|f| is_user_frame(f))
            .collect();
        let Some((&last, inner)) = user.split_last() else {
            if let Some(i) = poll_callee(&s.frames) {
                add(&mut deep, &s.frames[i]);
            }
            continue;
        };
        add(&mut outer, last);
        let inner = if inner.is_empty() { &user[..] } else { inner };
        for &f in inner {
            add(&mut deep, f);
        }
    }
    (deep, outer)
}

/// Threads that may run `watch`'s tasks: its driver, and the threads named
/// like tokio's workers except those known, by the lag probes they ran, to
/// work for another watched runtime.
fn runtime_threads(watch: &Watch) -> Vec<i32> {
    let mut tids: Vec<i32> = watch.driver_tid.into_iter().collect();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let another = probe_runtime(tid).is_some_and(|r| r != watch.token);
            if comm.trim_end() == WORKER_THREAD_NAME && !another && !tids.contains(&tid) {
                tids.push(tid);
            }
        }
    }
    tids
}

/// The symbolized stack of thread `tid`, innermost first.
///
/// The capture is unwound with the binaries' call-frame information, so it
/// goes through code built without frame pointers; a capture that still
/// stops short (code without CFI, such as the vDSO, or a stack deeper than
/// the copy where frame pointers are missing too) is retried a few times,
/// and the best one kept.
fn take_stack(tid: i32) -> Option<Vec<String>> {
    if tid == 0 {
        return None;
    }
    // While the tables are read, naming one capture waits for them: a second
    // attempt would show what the thread does after the wait (parked, once
    // a short stall ended), not what it did when first captured.
    let attempts = if stack::is_warm() {
        CAPTURE_ATTEMPTS
    } else {
        1
    };
    let mut best: Option<(u8, Vec<String>)> = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let Ok(addresses) = stack::capture(tid, CAPTURE_TIMEOUT) else {
            break;
        };
        let frames = frame_names(&addresses);
        let quality = capture_quality(&frames);
        if best.as_ref().is_none_or(|(q, _)| quality > *q) {
            best = Some((quality, frames));
        }
        if quality == GOOD_CAPTURE {
            break;
        }
    }
    best.map(|(_, frames)| frames)
}

/// Stack bytes of a brief capture: the innermost frames, where a parked
/// thread's `park` calls are.
const BRIEF_COPY: usize = 16 * 1024;

/// The innermost frames of thread `tid`: enough to tell whether it is parked.
fn take_brief_stack(tid: i32) -> Option<Vec<String>> {
    let addresses = stack::capture_up_to(tid, CAPTURE_TIMEOUT, BRIEF_COPY).ok()?;
    Some(frame_names(&addresses))
}

/// The names of a captured stack's frames, at most [`STACK_DEPTH`].
fn frame_names(addresses: &[usize]) -> Vec<String> {
    stack::symbolize(addresses)
        .into_iter()
        .take(STACK_DEPTH)
        .map(|f| f.function.unwrap_or_else(|| format!("{:#x}", f.address)))
        .collect()
}

/// A capture that shows where the thread is: parked, or in user code with
/// the caller of its innermost frame kept.
const GOOD_CAPTURE: u8 = 3;
/// A capture in user code that stopped in an unnamed library routine: the
/// routine's caller is probably missing.
const LOST_CALLER: u8 = 1;

/// How much a capture can be trusted to name what the thread runs: 0 (no
/// user frame, not parked), [`LOST_CALLER`], or [`GOOD_CAPTURE`].
fn capture_quality(frames: &[String]) -> u8 {
    // Caught inside the CPU profiler's signal handler, the capture has lost
    // the interrupted function.
    if frames.iter().any(|f| f.starts_with("lagscope::profiler::")) {
        return 0;
    }
    if is_parked(frames) {
        return GOOD_CAPTURE;
    }
    if blocking_function(frames).is_none() && poll_callee(frames).is_none() {
        return 0;
    }
    // Stopped in an unnamed library routine (`libc.so.6+0x…`) or at a bare
    // address: the frame that called it may be lost.
    match frames.first() {
        Some(leaf) if lagscope_wire::frames::is_unnamed(leaf) => LOST_CALLER,
        _ => GOOD_CAPTURE,
    }
}

/// The innermost frame that belongs to user code (see
/// [`lagscope_wire::frames::is_user_frame`]).
pub(crate) fn blocking_function(stack: &[String]) -> Option<String> {
    stack.iter().find(|name| is_user_frame(name)).cloned()
}

/// Whether a stack is a thread of tokio's blocking pool (idle, or running
/// `spawn_blocking` work), not a worker: tokio names both `tokio-rt-worker`
/// and starts workers through the pool too, but only a worker's stack has
/// the scheduler in it.
fn is_blocking_pool_thread(stack: &[String]) -> bool {
    stack
        .iter()
        .any(|f| f.starts_with("tokio::runtime::blocking::pool"))
        && !stack
            .iter()
            .any(|f| f.starts_with("tokio::runtime::scheduler::"))
}

/// Whether a stack is a worker waiting for work (in tokio's park).
fn is_parked(stack: &[String]) -> bool {
    stack
        .iter()
        .any(|f| f.starts_with("tokio::runtime::") && f.contains("::park"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_probe_run_marks_its_thread_from_that_moment() {
        let before = Instant::now();
        let runtime = crate::sampler::lag::new_runtime_token();
        probe_ran_here(runtime);
        let tid = crate::platform::current_tid();
        assert!(probe_ran_since(tid, before));
        assert_eq!(probe_runtime(tid), Some(runtime));
        assert_eq!(probe_runtime(tid + 1), None, "another thread");
        assert_ne!(crate::sampler::lag::new_runtime_token(), runtime);
        assert!(!probe_ran_since(
            tid,
            Instant::now() + Duration::from_millis(5)
        ));
        assert!(!probe_ran_since(tid + 1, before), "another thread");
    }

    #[test]
    fn a_stack_without_user_frames_is_named_by_the_call_its_poll_made() {
        let sleep = strings(&[
            "clock_nanosleep",
            "std::thread::sleep",
            "tokio::runtime::task::core::Core<T,S>::poll",
            "tokio::runtime::task::harness::poll_future",
            "tokio::runtime::scheduler::multi_thread::worker::Context::run_task",
            "std::sys::backtrace::__rust_begin_short_backtrace",
        ]);
        assert_eq!(poll_callee(&sleep), Some(1));
        let lock = strings(&[
            "syscall",
            "std::sys::pal::unix::futex::futex_wait",
            "std::sys::sync::mutex::futex::Mutex::lock_contended",
            "<core::pin::Pin<P> as core::future::future::Future>::poll",
            "tokio::runtime::task::core::Core<T,S>::poll",
        ]);
        assert_eq!(poll_callee(&lock), Some(2));
        let stacks = vec![StallStack {
            frames: lock,
            count: 1,
        }];
        assert_eq!(culprit(&stacks), None);
        assert_eq!(
            culprit_or_callee(&stacks).as_deref(),
            Some("std::sys::sync::mutex::futex::Mutex::lock_contended")
        );
        // The task's own (inlined) code running, or a thread outside any
        // task's poll: no call to name.
        let computing = strings(&[
            "tokio::runtime::task::core::Core<T,S>::poll",
            "tokio::runtime::task::harness::poll_future",
        ]);
        assert_eq!(poll_callee(&computing), None);
        let parked = strings(&[
            "syscall",
            "std::thread::park",
            "tokio::runtime::scheduler::multi_thread::park::Inner::park",
        ]);
        assert_eq!(poll_callee(&parked), None);
        // A user frame, where there is one, still names the stall.
        let user = strings(&[
            "clock_nanosleep",
            "std::thread::sleep",
            "svc::backoff",
            "tokio::runtime::task::core::Core<T,S>::poll",
        ]);
        let stacks = vec![StallStack {
            frames: user,
            count: 1,
        }];
        assert_eq!(culprit_or_callee(&stacks).as_deref(), Some("svc::backoff"));
    }

    #[test]
    fn the_blocking_function_is_the_innermost_user_frame() {
        let stack = strings(&[
            "clock_nanosleep",
            "std::thread::sleep",
            "my_service::handlers::checkout",
            "<core::pin::Pin<P> as core::future::Future>::poll",
            "tokio::runtime::task::harness::poll_future",
        ]);
        assert_eq!(
            blocking_function(&stack).as_deref(),
            Some("my_service::handlers::checkout")
        );
        let idle = strings(&[
            "epoll_wait",
            "mio::poll::Poll::poll",
            "tokio::runtime::io::driver::Driver::turn",
            "tokio::runtime::scheduler::multi_thread::park::Parker::park",
        ]);
        assert_eq!(blocking_function(&idle), None);
        assert!(is_parked(&idle));
        assert!(!is_parked(&stack));
    }

    #[test]
    fn a_capture_that_lost_the_leafs_caller_does_not_outvote_one_that_kept_it() {
        let outer = [
            "svc::block::run",
            "svc::handler::{{closure}}",
            "tokio::runtime::task::raw::poll",
        ];
        let lost: Vec<String> = strings(&outer);
        let kept: Vec<String> = std::iter::once("svc::block::hash_in_handler".to_string())
            .chain(lost.iter().cloned())
            .collect();
        let stacks = [
            StallStack {
                frames: lost.clone(),
                count: 2,
            },
            StallStack {
                frames: kept,
                count: 1,
            },
        ];
        assert_eq!(
            culprit(&stacks).as_deref(),
            Some("svc::block::hash_in_handler")
        );
        // A deeper capture that only adds library frames changes nothing.
        let library: Vec<String> = std::iter::once("std::time::Instant::now".to_string())
            .chain(lost.iter().cloned())
            .collect();
        let stacks = [
            StallStack {
                frames: lost,
                count: 2,
            },
            StallStack {
                frames: library,
                count: 1,
            },
        ];
        assert_eq!(culprit(&stacks).as_deref(), Some("svc::block::run"));
    }

    #[test]
    fn a_capture_that_stopped_in_an_unnamed_library_routine_is_not_trusted() {
        let good = strings(&["clock_nanosleep", "std::thread::sleep", "svc::handler"]);
        let lost = strings(&["libc.so.6+0x9ca94", "svc::handler", "tokio::poll"]);
        let bare = strings(&["0x7f00dead", "svc::handler"]);
        let parked = strings(&[
            "epoll_wait",
            "tokio::runtime::scheduler::multi_thread::park::Parker::park",
        ]);
        let in_profiler = strings(&[
            "process_vm_readv",
            "lagscope::profiler::handler",
            "svc::handler",
        ]);
        let pool = strings(&[
            "std::sync::Condvar::wait_timeout",
            "tokio::runtime::blocking::pool::Inner::run",
        ]);
        assert_eq!(capture_quality(&good), GOOD_CAPTURE);
        assert_eq!(capture_quality(&parked), GOOD_CAPTURE);
        assert_eq!(capture_quality(&lost), LOST_CALLER);
        assert_eq!(capture_quality(&bare), LOST_CALLER);
        assert_eq!(capture_quality(&in_profiler), 0);
        assert_eq!(capture_quality(&pool), 0);
        assert!(is_blocking_pool_thread(&pool));
        let worker = strings(&[
            "svc::handler",
            "tokio::runtime::scheduler::multi_thread::worker::run",
            "tokio::runtime::blocking::pool::Inner::run",
        ]);
        assert!(!is_blocking_pool_thread(&worker));
    }

    #[test]
    fn a_thread_is_still_in_its_stall_while_it_shows_the_stalls_own_frames() {
        let task = "svc::run_pair::{{closure}}";
        let stacks = [
            StallStack {
                frames: strings(&[
                    "serde_json::parse_str",
                    "svc::parse_body",
                    task,
                    "tokio::poll",
                ]),
                count: 1,
            },
            StallStack {
                frames: strings(&[
                    "[libc.so.6]",
                    "serde_json::visit_map",
                    "svc::parse_body",
                    task,
                ]),
                count: 1,
            },
        ];
        let (deep, outer) = stall_frames(&stacks);
        assert!(deep.contains(&"svc::parse_body") && deep.contains(&"serde_json::visit_map"));
        // The task's own future is shared by other polls of the same task.
        assert!(!deep.contains(&task));
        assert_eq!(outer, vec![task]);
        let only_task = [StallStack {
            frames: strings(&["memcpy", task, "tokio::poll"]),
            count: 1,
        }];
        assert_eq!(stall_frames(&only_task), (vec![task], vec![task]));
    }

    #[test]
    fn repeated_captures_are_counted_most_frequent_first() {
        let mut e = StallEvent {
            id: 1,
            runtime: "main".into(),
            detection: StallDetection::PollHooks,
            tid: 1,
            started_ms: 0,
            duration_us: 0,
            ongoing: true,
            blocking_function: None,
            stacks: vec![],
            task_id: None,
            spawned_at: None,
            span: None,
            trace_parent: None,
        };
        let a = strings(&["std::thread::sleep", "svc::a"]);
        let b = strings(&["svc::hash", "svc::b"]);
        add_stack(&mut e, a.clone());
        add_stack(&mut e, b.clone());
        add_stack(&mut e, b.clone());
        add_stack(&mut e, vec![]);
        assert_eq!(e.captures(), 3);
        assert_eq!(e.stacks[0].frames, b);
        assert_eq!(e.blocking_function.as_deref(), Some("svc::hash"));
        for i in 0..20 {
            add_stack(&mut e, strings(&[&format!("svc::f{i}")]));
        }
        assert_eq!(e.stacks.len(), DISTINCT_STACKS);
        assert_eq!(e.captures(), 23);
    }
}
