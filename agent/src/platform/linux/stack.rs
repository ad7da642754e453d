//! The stack of another thread, taken while it runs: the building block for
//! naming the function that blocks a runtime worker.
//!
//! [`capture`] sends the thread a real-time signal (`SIGRTMIN + 3` by default;
//! never `SIGPROF`, which profilers own). Its handler walks the frame-pointer
//! chain from the interrupted registers into preallocated static memory —
//! no allocation, no locks, every memory read checked by the kernel
//! (`process_vm_readv`) so a broken chain ends the walk instead of crashing —
//! and copies the registers and the top [`CAPTURE_COPY_BYTES`] of the stack
//! the same way, then sets a flag. The caller unwinds the copy off the
//! signal path with the binaries' `.eh_frame` call-frame information, which
//! every Rust binary carries (panics need it), so code built without frame
//! pointers — cargo's default release profile, glibc, serde_json — is
//! walked through; the frame-pointer chain supplies frames beyond the copy.
//! Then [`symbolize`] names them.
//!
//! Linux on x86_64 or aarch64 only; elsewhere [`capture`] returns
//! [`StackError::Unsupported`]. On aarch64 the walk is the frame-pointer
//! chain alone.
//!
//! ```
//! # #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
//! # {
//! use std::sync::mpsc;
//! use std::time::Duration;
//!
//! #[inline(never)]
//! fn waits_for_a_while() {
//!     std::thread::sleep(Duration::from_millis(300));
//! }
//!
//! let (tx, rx) = mpsc::channel();
//! let t = std::thread::spawn(move || {
//!     tx.send(lagscope::low_level::stack::current_tid()).unwrap();
//!     waits_for_a_while();
//! });
//! let tid = rx.recv().unwrap();
//! std::thread::sleep(Duration::from_millis(50));
//! let frames = lagscope::low_level::stack::capture(tid, Duration::from_secs(1)).unwrap();
//! let names: Vec<String> = lagscope::low_level::stack::symbolize(&frames)
//!     .into_iter()
//!     .filter_map(|f| f.function)
//!     .collect();
//! assert!(names.iter().any(|n| n.contains("waits_for_a_while")), "{names:?}");
//! t.join().unwrap();
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::platform::slots::{Disarmed, Slot};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Most frames taken from one stack.
pub const MAX_FRAMES: usize = 128;
/// Offset from `SIGRTMIN` of the signal used by default.
pub const DEFAULT_SIGNAL_OFFSET: i32 = 3;
/// Largest plausible distance between the interrupted stack pointer and a
/// frame pointer: beyond it the chain is treated as broken.
const MAX_STACK_SPAN: usize = 64 * 1024 * 1024;

/// The one capture in flight. Static, so the handler touches no allocation.
/// Its [`Slot`] is armed by [`capture`] and answered by the target thread's
/// handler.
struct Request {
    slot: Slot,
    target: AtomicI32,
    len: AtomicUsize,
    /// Most stack bytes the handler copies for this request.
    copy_limit: AtomicUsize,
    /// Whether the handler reads the tokio task the thread is polling.
    want_task: AtomicBool,
    /// Whether it also marks the poll that task is in (see [`PollMark`]).
    want_mark: AtomicBool,
    /// That task's id; 0 for none (or not asked).
    task: AtomicU64,
    /// What the mark found, as [`PollMark::to_u8`].
    mark: AtomicU8,
    frames: [AtomicUsize; MAX_FRAMES],
}

static REQUEST: Request = Request {
    slot: Slot::new(),
    target: AtomicI32::new(0),
    len: AtomicUsize::new(0),
    copy_limit: AtomicUsize::new(CAPTURE_COPY_BYTES),
    want_task: AtomicBool::new(false),
    want_mark: AtomicBool::new(false),
    task: AtomicU64::new(0),
    mark: AtomicU8::new(0),
    frames: [const { AtomicUsize::new(0) }; MAX_FRAMES],
};

/// Bytes of the stack the capture handler copies for CFI unwinding: deep
/// enough for a tokio worker's whole stack in the common case.
pub const CAPTURE_COPY_BYTES: usize = 128 * 1024;

/// The capture's registers and stack copy, written by the handler that
/// answered [`REQUEST`] and read by [`capture`] once it is published.
static SLOT_COPY: StackCopy<{ CAPTURE_COPY_BYTES / 8 }> = StackCopy::new();

/// Serialises captures: the slot holds one at a time.
static CAPTURING: Mutex<()> = Mutex::new(());
/// The signal our handler is installed on, or why it could not be.
static INSTALLED: OnceLock<Result<i32, SignalError>> = OnceLock::new();

/// The real-time signal stack capture uses, once it is installed (the first
/// free one from `SIGRTMIN + 3` up).
pub fn signal() -> Option<i32> {
    INSTALLED.get().and_then(|r| r.as_ref().ok().copied())
}

/// Why a stack could not be captured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// Not Linux on x86_64 or aarch64.
    #[error("stack capture needs Linux on x86_64 or aarch64")]
    Unsupported,
    /// The signal already has a handler that is not lagscope's.
    #[error("cannot install the stack-capture handler: {0}")]
    Signal(SignalError),
    /// The thread does not exist (any more).
    #[error("no thread {0} in this process")]
    NoSuchThread(i32),
    /// The thread did not run the handler in time (signals blocked?).
    #[error("thread {0} did not answer the capture signal within {1:?}")]
    Timeout(i32, Duration),
}

/// The calling thread's OS thread id (what [`capture`] takes).
pub use super::current_tid;

/// Return addresses on thread `tid`'s stack, innermost first (the first is the
/// interrupted instruction itself). Waits at most `timeout` for the thread to
/// run the handler.
pub fn capture(tid: i32, timeout: Duration) -> Result<Vec<usize>, StackError> {
    capture_up_to(tid, timeout, CAPTURE_COPY_BYTES)
}

/// Like [`capture`], copying at most `copy_bytes` of the stack: enough for
/// the innermost frames (whether a thread is parked, say) at a fraction of
/// the cost of a whole stack.
pub(crate) fn capture_up_to(
    tid: i32,
    timeout: Duration,
    copy_bytes: usize,
) -> Result<Vec<usize>, StackError> {
    capture_with_task(tid, timeout, copy_bytes, Ask::Stack).map(|(frames, _)| frames)
}

/// What a capture asks of the thread besides its stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    /// The stack only.
    Stack,
    /// The id of the tokio task the thread is polling.
    Task,
    /// That id, and a mark on the poll (see [`PollMark`]).
    TaskAndMark,
}

/// What a capture learnt of the poll its thread was in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Polled {
    /// The id of the tokio task the thread polls: 0 for none, or not asked.
    pub(crate) task: u64,
    /// The mark on that poll (`Unknown` when not asked).
    pub(crate) mark: PollMark,
}

/// Like [`capture_up_to`], with what `ask` asks of the poll the thread is
/// in: the id of the tokio task it polls (0 when it polls none), so two
/// captures of a worker that name different tasks were taken in different
/// polls; and a mark on that poll, so two captures that found the same mark
/// were taken in one poll, even of one task polled again and again.
///
/// Ask more than the stack only of a thread known to have entered a tokio
/// runtime: the handler then reads tokio's thread-local context, which such
/// a thread has already set up (on any other thread, the first access
/// could allocate).
pub(crate) fn capture_with_task(
    tid: i32,
    timeout: Duration,
    copy_bytes: usize,
    ask: Ask,
) -> Result<(Vec<usize>, Polled), StackError> {
    if !cfg!(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )) {
        return Err(StackError::Unsupported);
    }
    let signal = INSTALLED
        .get_or_init(install)
        .clone()
        .map_err(StackError::Signal)?;
    let _one_at_a_time = CAPTURING.lock().unwrap_or_else(|p| p.into_inner());
    if taken_over(signal) {
        // The host replaced our handler after we installed it: a signal
        // sent now would reach the host's handler. Send none.
        return Err(StackError::Signal(SignalError::TakenOver(signal)));
    }

    settle(timeout).map_err(|()| StackError::Timeout(tid, timeout))?;
    REQUEST.len.store(0, Ordering::Relaxed);
    REQUEST.copy_limit.store(copy_bytes, Ordering::Relaxed);
    REQUEST
        .want_task
        .store(ask != Ask::Stack, Ordering::Relaxed);
    REQUEST
        .want_mark
        .store(ask == Ask::TaskAndMark, Ordering::Relaxed);
    REQUEST.task.store(0, Ordering::Relaxed);
    REQUEST
        .mark
        .store(PollMark::Unknown.to_u8(), Ordering::Relaxed);
    REQUEST.target.store(tid, Ordering::Relaxed);
    if !REQUEST.slot.arm() {
        // `settle` left it free and we hold `CAPTURING`: unreachable, but
        // a refusal beats a wrong answer.
        return Err(StackError::Timeout(tid, timeout));
    }
    if !super::signal_thread(tid, signal) {
        // Nobody can answer; a stray answer is settled by the next capture.
        let _ = REQUEST.slot.disarm();
        return Err(StackError::NoSuchThread(tid));
    }
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(_answer) = REQUEST.slot.ready() {
            let len = REQUEST.len.load(Ordering::Relaxed).min(MAX_FRAMES);
            let fp_frames: Vec<usize> = REQUEST.frames[..len]
                .iter()
                .map(|f| f.load(Ordering::Relaxed))
                .collect();
            let polled = Polled {
                task: REQUEST.task.load(Ordering::Relaxed),
                mark: PollMark::from_u8(REQUEST.mark.load(Ordering::Relaxed)),
            };
            // SAFETY: the answer is published and we, its one reader
            // (holding `CAPTURING`), hold it until `_answer` drops after
            // the unwind: no handler touches the copy meanwhile.
            let frames = unsafe { SLOT_COPY.unwind(&fp_frames, MAX_FRAMES) };
            return Ok((frames, polled));
        }
        if Instant::now() >= deadline {
            // Withdrawn; or a handler is answering, and the next capture
            // settles its answer. Waiting for it here held the watchdog up
            // (stall-accuracy's concurrent pairs: 90-94/100 right with a
            // 20 ms grace, 97/100 without).
            let _ = REQUEST.slot.disarm();
            return Err(StackError::Timeout(tid, timeout));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Frees [`REQUEST`] of what an earlier capture left: an answer published
/// after it gave up (dropped), or one still being written (waited for, at
/// most `timeout`). Called holding `CAPTURING`.
fn settle(timeout: Duration) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    loop {
        if REQUEST.slot.is_free() {
            return Ok(());
        }
        if let Some(stale) = REQUEST.slot.ready() {
            drop(stale);
            continue;
        }
        if REQUEST.slot.disarm() == Disarmed::Freed {
            continue;
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Installs the capture handler on the first free real-time signal from
/// `SIGRTMIN + DEFAULT_SIGNAL_OFFSET` up.
fn install() -> Result<i32, SignalError> {
    install_free(DEFAULT_SIGNAL_OFFSET, handler, "")
}

/// Whether the host installed its own handler over ours on `signal`; said
/// once (see [`crate::notices`]) the first time it is found.
fn taken_over(signal: i32) -> bool {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if is_ours(signal, handler) {
        return false;
    }
    if !SAID.swap(true, Ordering::Relaxed) {
        crate::notices::say(format!(
            "the host installed its own handler on signal {signal}, lagscope's stack-capture signal: stalls are no longer captured (use another real-time signal in the host)"
        ));
    }
    true
}

/// Checks, once a sample, that the capture handler (if installed) is still
/// ours, so a takeover is said even while no stall needs a capture.
pub(crate) fn check_signal() {
    if let Some(signal) = signal() {
        taken_over(signal);
    }
}

/// The signal handler. Async-signal-safe: it reads registers from the
/// context, makes `gettid`/`getpid`/`process_vm_readv` system calls, reads
/// tokio's thread-local context when asked (on a thread that has set it up:
/// see [`capture_with_task`]) and, when asked to mark the poll, the task's
/// coop budget there, and writes only static atomics.
extern "C" fn handler(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // A late signal of a capture that gave up, reaching its thread while
    // the slot is armed for another, leaves the slot to that one.
    // SAFETY: `gettid` is a plain system call.
    let me = unsafe { libc::gettid() };
    let Some(hold) = REQUEST
        .slot
        .answer_if(|| REQUEST.target.load(Ordering::Relaxed) == me)
    else {
        return;
    };
    let n = walk(context, &REQUEST.frames);
    REQUEST.len.store(n, Ordering::Relaxed);
    if REQUEST.want_task.load(Ordering::Relaxed) {
        REQUEST.task.store(polled_task(), Ordering::Relaxed);
        if REQUEST.want_mark.load(Ordering::Relaxed) {
            REQUEST.mark.store(mark_poll().to_u8(), Ordering::Relaxed);
        }
    }
    // SAFETY: this handler holds the request's slot (answered above): only
    // it writes the copy until it publishes it below, and the capturing
    // thread reads it only after that.
    unsafe { SLOT_COPY.fill(context, REQUEST.copy_limit.load(Ordering::Relaxed)) };
    hold.publish();
}

mod copy;
mod elf;
mod lines;
mod registers;
mod signal;
mod symbols;
mod task;
mod walk;

pub(crate) use copy::CopyPool;
use copy::StackCopy;
#[cfg(target_arch = "x86_64")]
pub(crate) use registers::own_registers;
pub use signal::SignalError;
pub(crate) use signal::{install_free, is_ours};
pub(crate) use task::PollMark;
use task::{mark_poll, polled_task};
pub(crate) use walk::{decide_frame_walk, own_stack_top, walk, walk_own};
#[cfg(target_arch = "x86_64")]
mod unwind;

/// Whether `/proc/self/exe` has a `.debug_line` section.
pub(crate) fn executable_has_line_tables() -> bool {
    elf::Elf::open(std::path::Path::new("/proc/self/exe"))
        .is_some_and(|e| e.section(".debug_line").is_some_and(|s| s.size > 0))
}

/// Loads the symbol and unwind tables of every mapped file now, so the
/// first capture is fast.
pub(crate) fn warm_up() {
    symbols::warm_up();
    #[cfg(target_arch = "x86_64")]
    unwind::warm_up();
    WARM.store(true, Ordering::Release);
}

/// Set once [`warm_up`] has read the tables.
static WARM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the tables are read: until then naming a capture waits for them
/// (seconds, for a large binary read from a cold disk), so what a thread
/// does by the time its first capture is named is no longer what it did
/// when captured.
pub(crate) fn is_warm() -> bool {
    WARM.load(Ordering::Acquire)
}

/// One symbolized frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The address.
    pub address: usize,
    /// Demangled function name (without the hash), if a symbol table has
    /// it; a function inlined at the address ends with its `(file:line)`.
    pub function: Option<String>,
    /// Whether the function was inlined into the next frame's (same
    /// address): known only where the binary has line tables.
    pub inlined: bool,
}

/// Names for captured addresses, from the ELF symbol tables of the mapped
/// files, plus the functions inlined at each address where the file has
/// DWARF line tables (`debug = "line-tables-only"`): such an address gives
/// one frame per inlined function, innermost first, then the function they
/// were inlined into. Without line tables, inlined functions show as the
/// function they were inlined into. The first call reads the symbol tables
/// and keeps a sorted index of 16 bytes per function (about 1 MiB for a
/// large service); line tables are read through a mapping of the file and
/// parsed one compilation unit at a time, as addresses fall in them. Never
/// call it on a host thread's hot path.
pub fn symbolize(addresses: &[usize]) -> Vec<Frame> {
    addresses
        .iter()
        .zip(symbols::frames(addresses))
        .flat_map(|(&address, names)| {
            if names.is_empty() {
                return vec![Frame {
                    address,
                    function: None,
                    inlined: false,
                }];
            }
            names
                .into_iter()
                .map(|n| Frame {
                    address,
                    function: Some(n.name.to_string()),
                    inlined: n.inlined,
                })
                .collect()
        })
        .collect()
}

#[cfg(all(
    test,
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{mpsc, Arc};

    #[inline(never)]
    fn sleeping_marker(d: Duration) {
        std::thread::sleep(d);
        std::hint::black_box(());
    }

    #[inline(never)]
    fn spinning_marker(stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
    }

    fn names(frames: &[usize]) -> Vec<String> {
        symbolize(frames)
            .into_iter()
            .filter_map(|f| f.function)
            .collect()
    }

    #[test]
    fn names_the_function_a_sleeping_thread_is_in() {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let _ = tx.send(current_tid());
            sleeping_marker(Duration::from_millis(400));
        });
        let tid = rx.recv().expect("tid");
        std::thread::sleep(Duration::from_millis(50));
        let frames = capture(tid, Duration::from_secs(2)).expect("captured");
        let names = names(&frames);
        assert!(
            names.iter().any(|n| n.contains("sleeping_marker")),
            "{names:#?}"
        );
        t.join().expect("thread");
    }

    #[test]
    fn names_the_function_a_spinning_thread_is_in() {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = stop.clone();
        let t = std::thread::spawn(move || {
            let _ = tx.send(current_tid());
            spinning_marker(&flag);
        });
        let tid = rx.recv().expect("tid");
        std::thread::sleep(Duration::from_millis(20));
        // A thread stopped on the first instructions of a callee (here
        // `AtomicBool::load`, a call in debug builds) has not pushed its frame
        // yet, which hides its caller from the walk: one capture in many can
        // miss the marker, so a few are taken.
        let mut last = Vec::new();
        let found = (0..5).any(|_| {
            let frames = capture(tid, Duration::from_secs(2)).expect("captured");
            last = names(&frames);
            last.iter().any(|n| n.contains("spinning_marker"))
        });
        stop.store(true, Ordering::Relaxed);
        t.join().expect("thread");
        assert!(found, "{last:#?}");
    }

    #[test]
    fn a_capture_tells_which_task_the_thread_polls() {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let _ = tx.send((current_tid(), 0));
            for _ in 0..2 {
                // Each task spins until the next capture has been taken.
                let tx = tx.clone();
                rt.block_on(rt.spawn(async move {
                    let begun = Instant::now();
                    let _ = tx.send((current_tid(), polled_task()));
                    while begun.elapsed() < Duration::from_millis(200) {
                        std::hint::spin_loop();
                    }
                }))
                .expect("task");
            }
            // Entered, polling no task.
            let _ = tx.send((current_tid(), 0));
            std::thread::sleep(Duration::from_millis(200));
        });
        let (tid, _) = rx.recv().expect("tid");
        let mut seen = Vec::new();
        for i in 0..3 {
            let (_, own) = rx.recv().expect("a task's own id");
            std::thread::sleep(Duration::from_millis(50));
            if i == 1 {
                // Not asked, not read.
                let (_, polled) = capture_with_task(tid, Duration::from_secs(2), 4096, Ask::Stack)
                    .expect("captured");
                assert_eq!(polled.task, 0);
            }
            let (_, polled) =
                capture_with_task(tid, Duration::from_secs(2), 4096, Ask::Task).expect("captured");
            assert_eq!(polled.mark, PollMark::Unknown, "not asked");
            seen.push((own, polled.task));
        }
        t.join().expect("thread");
        let [(a, a_seen), (b, b_seen), (none, none_seen)] = seen[..] else {
            panic!("{seen:?}");
        };
        assert!(a != 0 && b != 0 && a != b, "{seen:?}");
        assert_eq!((a_seen, b_seen), (a, b), "{seen:?}");
        assert_eq!((none, none_seen), (0, 0));
    }

    #[test]
    fn a_mark_tells_one_poll_from_the_next_poll_of_the_same_task() {
        let (tx, rx) = mpsc::channel();
        let (next_tx, next_rx) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(rt.spawn(async move {
                // Two polls of one task, each spinning until told to yield.
                for _ in 0..2 {
                    let _ = tx.send(current_tid());
                    let begun = Instant::now();
                    while next_rx.try_recv().is_err() && begun.elapsed() < Duration::from_secs(10) {
                        std::hint::spin_loop();
                    }
                    tokio::task::yield_now().await;
                }
            }))
            .expect("task");
        });
        let mut marks = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let tid = rx.recv().expect("a poll began");
            for _ in 0..2 {
                let (_, polled) =
                    capture_with_task(tid, Duration::from_secs(2), 4096, Ask::TaskAndMark)
                        .expect("captured");
                marks.push(polled.mark);
                tasks.push(polled.task);
            }
            let _ = next_tx.send(());
        }
        t.join().expect("thread");
        assert!(tasks.iter().all(|&t| t != 0 && t == tasks[0]), "{tasks:?}");
        if cfg!(tokio_unstable) {
            assert!(marks.iter().all(|&m| m == PollMark::Unknown), "{marks:?}");
        } else {
            use PollMark::{New, Same};
            assert_eq!(marks, [New, Same, New, Same]);
        }
    }

    #[test]
    fn many_captures_from_many_threads_neither_crash_nor_mix_up() {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let flag = stop.clone();
        let target = std::thread::spawn(move || {
            let _ = tx.send(current_tid());
            spinning_marker(&flag);
        });
        let tid = rx.recv().expect("tid");
        let requesters: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| {
                            capture(tid, Duration::from_secs(2)).is_ok_and(|f| !f.is_empty())
                        })
                        .count()
                })
            })
            .collect();
        let ok: usize = requesters
            .into_iter()
            .map(|r| r.join().expect("requester"))
            .sum();
        stop.store(true, Ordering::Relaxed);
        target.join().expect("target");
        assert_eq!(ok, 200);
    }

    /// A comparator that sleeps, called by glibc's `qsort`, which is built
    /// without frame pointers: the frame-pointer chain breaks inside
    /// `qsort`, so only the call-frame information leads back to the caller.
    extern "C" fn sleepy_comparator(a: *const libc::c_void, b: *const libc::c_void) -> i32 {
        sleeping_marker(Duration::from_millis(150));
        // SAFETY: qsort passes pointers to elements of the i32 array below.
        let (a, b) = unsafe { (*a.cast::<i32>(), *b.cast::<i32>()) };
        a.cmp(&b) as i32
    }

    #[inline(never)]
    fn sorts_through_libc() {
        let mut v = [3i32, 1, 2];
        // SAFETY: a valid array of 3 i32s and a comparator for i32s.
        unsafe {
            libc::qsort(
                v.as_mut_ptr().cast(),
                v.len(),
                std::mem::size_of::<i32>(),
                Some(sleepy_comparator),
            );
        }
        std::hint::black_box(v);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn unwinds_through_c_code_without_frame_pointers() {
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let _ = tx.send(current_tid());
            sorts_through_libc();
        });
        let tid = rx.recv().expect("tid");
        std::thread::sleep(Duration::from_millis(50));
        let frames = capture(tid, Duration::from_secs(2)).expect("captured");
        let names = names(&frames);
        t.join().expect("thread");
        let at = |needle: &str| names.iter().position(|n| n.contains(needle));
        let (Some(comparator), Some(caller)) = (at("sleepy_comparator"), at("sorts_through_libc"))
        else {
            panic!("{names:#?}");
        };
        assert!(comparator < caller, "{names:#?}");
        assert!(
            names
                .iter()
                .any(|n| n.contains("thread_start") || n.contains("clone")),
            "the walk should reach the thread's start: {names:#?}"
        );
    }

    /// Blocks or unblocks `signal` on the calling thread.
    fn mask(signal: i32, block: bool) {
        // SAFETY: a zeroed sigset_t is valid to empty and add to; the
        // calls only change the calling thread's own signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            let how = if block {
                libc::SIG_BLOCK
            } else {
                libc::SIG_UNBLOCK
            };
            assert_eq!(libc::pthread_sigmask(how, &set, std::ptr::null_mut()), 0);
        }
    }

    #[test]
    fn a_capture_that_times_out_leaves_the_next_one_working() {
        let signal = INSTALLED.get_or_init(install).clone().expect("installed");
        // A thread that blocks the signal answers only once it unblocks it,
        // long after its capture gave up: a late answer must neither land
        // in the next capture nor wedge it.
        let (tid_tx, tid_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let deaf = std::thread::spawn(move || {
            mask(signal, true);
            let _ = tid_tx.send(current_tid());
            let _ = go_rx.recv();
            mask(signal, false);
            sleeping_marker(Duration::from_millis(200));
        });
        let deaf_tid = tid_rx.recv().expect("tid");
        assert_eq!(
            capture(deaf_tid, Duration::from_millis(50)),
            Err(StackError::Timeout(deaf_tid, Duration::from_millis(50)))
        );
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = mpsc::channel();
        let other = std::thread::spawn(move || {
            let _ = tx.send(current_tid());
            spinning_marker(&flag);
        });
        let other_tid = rx.recv().expect("tid");
        // The deaf thread now runs its handler for the withdrawn capture
        // while the next ones are armed for another thread.
        let _ = go_tx.send(());
        for _ in 0..20 {
            let frames = capture(other_tid, Duration::from_secs(2)).expect("captured");
            let names = names(&frames);
            assert!(
                !names.iter().any(|n| n.contains("sleeping_marker")),
                "the late answer of another thread was taken: {names:#?}"
            );
        }
        stop.store(true, Ordering::Relaxed);
        deaf.join().expect("thread");
        other.join().expect("thread");
    }

    #[test]
    fn the_handler_runs_with_real_time_signals_blocked_so_ours_never_nest() {
        let signal = INSTALLED.get_or_init(install).clone().expect("installed");
        // SAFETY: a zeroed sigaction is a valid query argument; querying
        // with a null new action changes nothing; `sigismember` reads the
        // mask the kernel returned.
        let blocked = unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut current), 0);
            (libc::SIGRTMIN()..=libc::SIGRTMAX())
                .filter(|&rt| libc::sigismember(&current.sa_mask, rt) == 1)
                .count()
        };
        let all = (libc::SIGRTMAX() - libc::SIGRTMIN() + 1) as usize;
        assert_eq!(
            blocked, all,
            "the profiler's signal could nest inside a capture"
        );
    }

    #[test]
    fn a_thread_that_does_not_exist_is_an_error() {
        assert_eq!(
            capture(i32::MAX - 7, Duration::from_millis(100)),
            Err(StackError::NoSuchThread(i32::MAX - 7))
        );
    }
}
