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
//!   polls that each take ≥ threshold/61, that can be a false alarm: the
//!   lag probe, the task each capture finds the thread polling and the
//!   mark a capture leaves on the poll (its coop budget, spent; see
//!   `stack::PollMark`) tell those apart). The stuck thread is found among the runtime's
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
//!
//! Here: the check loop and a stall's life (open, update, close). Beside
//! it: `book` (stalls between the watchdog and the sampler), `hooks` and
//! `metrics` (the two detectors), `threads` (workers told from pool
//! threads, stalls paired with threads), `culprit` (captures and the frame
//! that blocks) and `probe` (which runtime a thread works for).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lagscope_wire::frames::is_user_frame;
use lagscope_wire::{StallDetection, StallEvent, StallStack};
use tokio::runtime::Handle;

#[cfg(tokio_unstable)]
use crate::hooks::PollHooks;

mod book;
mod culprit;
#[cfg(tokio_unstable)]
mod hooks;
mod metrics;
mod probe;
mod threads;

use crate::platform::sched::{self, CpuReading, ThreadState};
use crate::platform::stack;
use book::lock;
pub(crate) use book::{take, Book};
pub(crate) use culprit::blocking_function;
use culprit::*;
pub(crate) use probe::probe_ran_here;
use probe::*;
use threads::*;

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
/// How long a look at the task a thread polls is compared with later ones.
const TASK_LOOK_MEMORY: Duration = Duration::from_secs(10);
/// Every worker parked at every check for this long: the watchdog checks
/// only every [`IDLE_CHECK`] until a worker is seen awake.
const IDLE_AFTER: Duration = Duration::from_secs(1);
/// Busy time between two checks from which a parked worker counts as having
/// worked (a lag probe's wake-up takes a few microseconds).
const AWAKE_BUSY: Duration = Duration::from_millis(1);
/// The gap between checks while the runtime is idle (see [`Quiet`]).
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// Thread name tokio gives its workers (`/proc/<pid>/task/<tid>/comm`).
const WORKER_THREAD_NAME: &str = "tokio-rt-worker";

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

/// The last look at the poll a thread is in (stable tokio's detector).
#[derive(Clone, Copy)]
struct TaskLook {
    /// The id of the task it polled.
    task: u64,
    /// The first of the looks in a row that found the thread in this poll
    /// (the same task and, where marks are known, the same mark).
    first_at: Instant,
    /// The look before `first_at`, which found the thread in another poll;
    /// the freeze of its worker's counters when there was none since.
    after: Instant,
    /// When the look was taken.
    at: Instant,
    /// Whether another task was seen since the worker's counters froze.
    moved: bool,
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
    /// The last look at the tokio task a suspected worker's thread polls:
    /// when, and the task's id. Another task at a later look means the
    /// thread went through polls (stable tokio's detector).
    task_looks: HashMap<i32, TaskLook>,
    /// Threads a stack showed inside a tokio runtime (parked, or under its
    /// scheduler): ones a capture may ask for the task they poll.
    entered: HashSet<i32>,
    /// When the next check is due: the earliest moment a poll now running
    /// could reach the threshold. Checks lower it.
    next_check: Instant,
    /// Whether a check since this was last cleared asked for another or
    /// found a worker awake (something ran that may become a stall).
    asked: bool,
    /// Polls each poll-hook slot had run at the last check.
    #[cfg_attr(not(tokio_unstable), allow(dead_code))]
    slot_polls: HashMap<(usize, usize), u64>,
    epoch_instant: Instant,
    epoch_system: SystemTime,
}

impl Watchdog {
    fn new(threshold: Duration, book: Book) -> Watchdog {
        Watchdog {
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
            task_looks: HashMap::new(),
            entered: HashSet::new(),
            next_check: Instant::now(),
            asked: false,
            slot_polls: HashMap::new(),
            epoch_instant: Instant::now(),
            epoch_system: SystemTime::now(),
        }
    }
}

/// Watches `watches` until `stop` returns true.
pub(crate) fn run(
    watches: Vec<Watch>,
    threshold: Duration,
    book: Book,
    stop: impl Fn(Duration) -> bool,
) {
    let half = (threshold / 2).max(Duration::from_millis(1));
    let mut w = Watchdog::new(threshold, book);
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
    let mut quiet = Quiet::default();
    while !stop(wait) {
        w.next_check = Instant::now() + threshold.max(half);
        w.asked = false;
        for (ri, watch) in watches.iter().enumerate() {
            #[cfg(tokio_unstable)]
            if let Some(hooks) = &watch.hooks {
                w.check_hooks(ri, watch, hooks);
                continue;
            }
            w.check_metrics(ri, watch);
        }
        let idle = w.active.is_empty() && !w.asked;
        wait = quiet.wait(idle, Instant::now(), w.wait(half));
    }
    if let Some(warm) = warm {
        let _ = warm.join();
    }
}

/// How long the watchdog has seen nothing that could become a stall: every
/// worker parked (no poll running) at every check, no stall open.
///
/// A wake-up costs 30–50 µs of CPU on a small VM, so checking every
/// threshold (20 ms) costs an idle service ~2 ms of CPU a second. After
/// [`IDLE_AFTER`] of quiet the checks come every [`IDLE_CHECK`] until one
/// finds a worker awake (or woken for more than a lag probe's moment). The
/// price: a block that starts on a runtime idle for a second is opened up
/// to [`IDLE_CHECK`] late (its length, from tokio's busy time, and so its
/// start are set right when it ends), and one shorter than about
/// [`IDLE_CHECK`] may end unseen.
#[derive(Debug, Default)]
struct Quiet {
    since: Option<Instant>,
}

impl Quiet {
    /// The wait before the next check, after one that found the runtime
    /// `idle` at `now`; `busy_wait` is the wait while it is not.
    fn wait(&mut self, idle: bool, now: Instant, busy_wait: Duration) -> Duration {
        if !idle {
            self.since = None;
            return busy_wait;
        }
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= IDLE_AFTER {
            busy_wait.max(IDLE_CHECK)
        } else {
            busy_wait
        }
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
        self.asked = true;
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
        let mut event = StallEvent::default();
        event.id = id;
        event.runtime = runtime.to_string();
        event.detection = detection;
        event.tid = tid;
        event.started_ms = self.unix_ms(started);
        event.duration_us = micros(started.elapsed());
        event.ongoing = true;
        event.task_id = task.0;
        event.spawned_at = task.1;
        event.span = crate::span::current(tid);
        event.trace_parent = crate::span::current_trace_parent(tid);
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
        let now_ms = self.unix_ms(Instant::now());
        let mut b = lock(&self.book);
        if let Some(mut e) = b.ongoing.remove(&a.id) {
            e.ongoing = false;
            if let Some(d) = duration {
                e.duration_us = micros(d);
                // It ended by now, so it began no later than its length
                // before: a stall first seen late (after a quiet spell's
                // longer gap) gets its start back.
                let d_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                e.started_ms = e.started_ms.min(now_ms.saturating_sub(d_ms));
            }
            if b.finished.len() >= FINISHED_CAPACITY {
                b.finished.pop_front();
            }
            b.finished.push_back(e);
            self.book.news.store(true, Relaxed);
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn checks_space_out_after_a_second_of_quiet_and_return_at_once() {
        let busy = Duration::from_millis(20);
        let mut q = Quiet::default();
        let t0 = Instant::now();
        assert_eq!(q.wait(true, t0, busy), busy, "quiet for no time yet");
        let later = t0 + IDLE_AFTER - Duration::from_millis(1);
        assert_eq!(q.wait(true, later, busy), busy);
        assert_eq!(q.wait(true, t0 + IDLE_AFTER, busy), IDLE_CHECK);
        // One check that finds a worker awake ends the quiet spell...
        let woke = t0 + IDLE_AFTER + IDLE_CHECK;
        assert_eq!(q.wait(false, woke, busy), busy);
        // ...and the next spell is timed from its own start.
        assert_eq!(q.wait(true, woke, busy), busy);
        assert_eq!(q.wait(true, woke + IDLE_AFTER, busy), IDLE_CHECK);
        // A longer wait asked for while quiet (a slow check) is kept.
        let slow = Duration::from_millis(250);
        assert_eq!(q.wait(true, woke + 2 * IDLE_AFTER, slow), slow);
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

    fn unmarked(task: u64) -> stack::Polled {
        stack::Polled {
            task,
            mark: stack::PollMark::Unknown,
        }
    }

    #[test]
    fn a_thread_seen_in_other_tasks_is_in_one_poll_since_it_was_first_seen_in_it() {
        let mut w = Watchdog::new(Duration::from_millis(20), Book::default());
        let frozen = Instant::now();
        let at = |ms| frozen + Duration::from_millis(ms);
        // No task: between polls where polls are marked (stable tokio);
        // elsewhere nothing beyond the counters.
        let between = if cfg!(tokio_unstable) { frozen } else { at(0) };
        assert_eq!(
            w.in_its_poll_since_at(7, unmarked(0), frozen, at(0)),
            Some(between)
        );
        // One task only since the freeze: in one poll since the freeze, as
        // far as can be told.
        assert_eq!(
            w.in_its_poll_since_at(7, unmarked(41), frozen, at(0)),
            Some(frozen)
        );
        assert_eq!(
            w.in_its_poll_since_at(7, unmarked(41), frozen, at(2)),
            Some(frozen)
        );
        // Another task: it went through polls, and is in this one since
        // the first look that saw it, however long it stays there.
        assert_eq!(
            w.in_its_poll_since_at(7, unmarked(42), frozen, at(4)),
            Some(at(4))
        );
        assert_eq!(
            w.in_its_poll_since_at(7, unmarked(42), frozen, at(6)),
            Some(at(4))
        );
        // Back in the first task: a new run of looks.
        assert_eq!(
            w.in_its_poll_since_at(7, unmarked(41), frozen, at(8)),
            Some(at(8))
        );
        // Each thread on its own.
        assert_eq!(
            w.in_its_poll_since_at(8, unmarked(42), frozen, at(8)),
            Some(frozen)
        );
        // Looks from before a later freeze are no comparison.
        assert_eq!(
            w.in_its_poll_since_at(7, unmarked(43), at(9), at(10)),
            Some(at(9))
        );
    }

    #[test]
    fn a_marked_poll_is_one_poll_once_looks_in_it_span_half_a_threshold() {
        use stack::PollMark::{New, Same};
        let threshold = Duration::from_millis(20);
        let mut w = Watchdog::new(threshold, Book::default());
        let frozen = Instant::now();
        let at = |ms| frozen + Duration::from_millis(ms);
        let look = |mark| stack::Polled { task: 41, mark };
        // The first look marks the poll; one look says nothing of how long
        // the poll lasts, and asks for a look half a threshold on.
        assert_eq!(w.in_its_poll_since_at(7, look(New), frozen, at(0)), None);
        assert!(w.next_check <= at(10));
        assert_eq!(w.in_its_poll_since_at(7, look(Same), frozen, at(5)), None);
        // Still marked half a threshold after the first look: one poll,
        // since the freeze (no look found another poll since).
        assert_eq!(
            w.in_its_poll_since_at(7, look(Same), frozen, at(10)),
            Some(frozen)
        );
        // The same task found with a fresh budget was polled again: a new
        // run of looks, in a poll since this look at the earliest.
        assert_eq!(
            w.in_its_poll_since_at(7, look(New), frozen, at(11)),
            Some(at(11))
        );
        // Half a threshold on, in that poll since the look before it.
        assert_eq!(
            w.in_its_poll_since_at(7, look(Same), frozen, at(21)),
            Some(at(10))
        );
        // A task that only yields, each poll shorter than half a threshold,
        // is never one poll however long its worker's counters stay frozen.
        let mut w = Watchdog::new(threshold, Book::default());
        for i in 0..40u64 {
            let mark = if i % 2 == 0 { New } else { Same };
            let now = at(i * 3);
            let began = w.in_its_poll_since_at(7, look(mark), frozen, now);
            assert!(
                began.is_none_or(|b| now - b < threshold / 2),
                "look {i}: {began:?}"
            );
        }
        // Without a task id, a mark still tells.
        let unknown = stack::Polled { task: 0, mark: New };
        assert_eq!(w.in_its_poll_since_at(8, unknown, frozen, at(200)), None);
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
        let stacks = vec![{
            let mut stall_stack = StallStack::default();
            stall_stack.frames = lock;
            stall_stack.count = 1;
            stall_stack
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
        let stacks = vec![{
            let mut stall_stack = StallStack::default();
            stall_stack.frames = user;
            stall_stack.count = 1;
            stall_stack
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
            {
                let mut stall_stack = StallStack::default();
                stall_stack.frames = lost.clone();
                stall_stack.count = 2;
                stall_stack
            },
            {
                let mut stall_stack = StallStack::default();
                stall_stack.frames = kept;
                stall_stack.count = 1;
                stall_stack
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
            {
                let mut stall_stack = StallStack::default();
                stall_stack.frames = lost;
                stall_stack.count = 2;
                stall_stack
            },
            {
                let mut stall_stack = StallStack::default();
                stall_stack.frames = library;
                stall_stack.count = 1;
                stall_stack
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
            {
                let mut stall_stack = StallStack::default();
                stall_stack.frames = strings(&[
                    "serde_json::parse_str",
                    "svc::parse_body",
                    task,
                    "tokio::poll",
                ]);
                stall_stack.count = 1;
                stall_stack
            },
            {
                let mut stall_stack = StallStack::default();
                stall_stack.frames = strings(&[
                    "[libc.so.6]",
                    "serde_json::visit_map",
                    "svc::parse_body",
                    task,
                ]);
                stall_stack.count = 1;
                stall_stack
            },
        ];
        let (deep, outer) = stall_frames(&stacks);
        assert!(deep.contains(&"svc::parse_body") && deep.contains(&"serde_json::visit_map"));
        // The task's own future is shared by other polls of the same task.
        assert!(!deep.contains(&task));
        assert_eq!(outer, vec![task]);
        let only_task = [{
            let mut stall_stack = StallStack::default();
            stall_stack.frames = strings(&["memcpy", task, "tokio::poll"]);
            stall_stack.count = 1;
            stall_stack
        }];
        assert_eq!(stall_frames(&only_task), (vec![task], vec![task]));
    }

    #[test]
    fn repeated_captures_are_counted_most_frequent_first() {
        let mut e = StallEvent::default();
        e.id = 1;
        e.runtime = "main".into();
        e.detection = StallDetection::PollHooks;
        e.tid = 1;
        e.ongoing = true;
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
