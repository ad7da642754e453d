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
//!     tx.send(lagscope::stack::current_tid()).unwrap();
//!     waits_for_a_while();
//! });
//! let tid = rx.recv().unwrap();
//! std::thread::sleep(Duration::from_millis(50));
//! let frames = lagscope::stack::capture(tid, Duration::from_secs(1)).unwrap();
//! let names: Vec<String> = lagscope::stack::symbolize(&frames)
//!     .into_iter()
//!     .filter_map(|f| f.function)
//!     .collect();
//! assert!(names.iter().any(|n| n.contains("waits_for_a_while")), "{names:?}");
//! t.join().unwrap();
//! # }
//! ```

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crate::platform::slots::{self, Disarmed, Slot};
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
    frames: [AtomicUsize; MAX_FRAMES],
}

static REQUEST: Request = Request {
    slot: Slot::new(),
    target: AtomicI32::new(0),
    len: AtomicUsize::new(0),
    copy_limit: AtomicUsize::new(CAPTURE_COPY_BYTES),
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
static INSTALLED: OnceLock<Result<i32, String>> = OnceLock::new();

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
    Signal(String),
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
        return Err(StackError::Signal(format!(
            "signal {signal} was taken over by another handler after lagscope installed its own; stack capture is off"
        )));
    }

    settle(timeout).map_err(|()| StackError::Timeout(tid, timeout))?;
    REQUEST.len.store(0, Ordering::Relaxed);
    REQUEST.copy_limit.store(copy_bytes, Ordering::Relaxed);
    REQUEST.target.store(tid, Ordering::Relaxed);
    if !REQUEST.slot.arm() {
        // `settle` left it free and we hold `CAPTURING`: unreachable, but
        // a refusal beats a wrong answer.
        return Err(StackError::Timeout(tid, timeout));
    }
    // SAFETY: tgkill only sends a signal; our handler for it is installed.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::c_long::from(tid),
            libc::c_long::from(signal),
        )
    };
    if sent != 0 {
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
            // SAFETY: the answer is published and we, its one reader
            // (holding `CAPTURING`), hold it until `_answer` drops after
            // the unwind: no handler touches the copy meanwhile.
            return Ok(unsafe { SLOT_COPY.unwind(&fp_frames, MAX_FRAMES) });
        }
        let now = Instant::now();
        if now >= deadline {
            // Withdrawn, or a handler is answering: its answer is moments
            // away (it never blocks), so it is waited for a little longer
            // and otherwise settled by the next capture.
            if REQUEST.slot.disarm() == Disarmed::Freed || now >= deadline + ANSWER_GRACE {
                return Err(StackError::Timeout(tid, timeout));
            }
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// How long a capture that timed out still waits for a handler caught
/// answering it.
const ANSWER_GRACE: Duration = Duration::from_millis(20);

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

/// A signal handler's signature, as `sigaction` stores it.
pub(crate) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Installs the capture handler on the first free real-time signal from
/// `SIGRTMIN + DEFAULT_SIGNAL_OFFSET` up.
fn install() -> Result<i32, String> {
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

/// What `signal` is set to now: `SIG_DFL`, `SIG_IGN` or a handler's address.
fn disposition(signal: i32) -> Result<usize, String> {
    // SAFETY: a zeroed sigaction is a valid "query" argument; sigaction only
    // writes the current disposition into `old`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying with a null new action changes nothing.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } != 0 {
        return Err(format!("cannot query signal {signal}"));
    }
    Ok(old.sa_sigaction)
}

/// Whether `signal` still runs `handler` (a host may install its own over
/// it at any time).
pub(crate) fn is_ours(signal: i32, handler: Handler) -> bool {
    disposition(signal).is_ok_and(|d| d == handler as usize)
}

/// Installs `handler` on the first real-time signal from `SIGRTMIN + first`
/// up that nobody handles (or that already runs `handler`): a host that uses
/// lagscope's usual signal for itself keeps it, and lagscope moves aside.
/// `hint` ends the message when none is free.
pub(crate) fn install_free(first: i32, handler: Handler, hint: &str) -> Result<i32, String> {
    let (low, high) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    for signal in low + first..=high {
        let current = disposition(signal)?;
        if current == libc::SIG_DFL || current == handler as usize {
            let name = format!("SIGRTMIN+{}", signal - low);
            return install_handler(signal, handler, &name, hint);
        }
    }
    Err(format!(
        "every real-time signal from SIGRTMIN+{first} to SIGRTMAX already has a handler; lagscope will not replace one{hint}"
    ))
}

/// Installs `handler` on `signal` (called `name` in messages), refusing to
/// replace a handler someone else installed; `hint` ends the refusal.
/// `handler` must be async-signal-safe.
pub(crate) fn install_handler(
    signal: i32,
    handler: Handler,
    name: &str,
    hint: &str,
) -> Result<i32, String> {
    decide_frame_walk();
    // SAFETY: a zeroed sigaction is a valid "query" argument; sigaction only
    // writes the current disposition into `old`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying with a null new action changes nothing.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } != 0 {
        return Err(format!("cannot query signal {signal}"));
    }
    if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != handler as usize {
        return Err(format!(
            "signal {signal} ({name}) already has a handler; lagscope will not replace it{hint}"
        ));
    }
    // SAFETY: as above, zeroed is a valid starting point; every field we rely
    // on is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid sigset_t to empty.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: the caller passes an async-signal-safe handler; it is a plain
    // function, so it lives forever.
    if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
        return Err(format!("cannot install a handler for signal {signal}"));
    }
    Ok(signal)
}

/// The signal handler. Async-signal-safe: it reads registers from the
/// context, makes `gettid`/`getpid`/`process_vm_readv` system calls, and
/// writes only static atomics.
extern "C" fn handler(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let Some(hold) = REQUEST.slot.answer() else {
        return;
    };
    // Read after answering, which acquires what the capture wrote before
    // it armed the slot. A signal that reached another thread declines
    // (dropping the hold arms the slot again).
    // SAFETY: `gettid` is a plain system call.
    if unsafe { libc::gettid() } != REQUEST.target.load(Ordering::Relaxed) {
        return;
    }
    let n = walk(context, &REQUEST.frames);
    REQUEST.len.store(n, Ordering::Relaxed);
    // SAFETY: this handler holds the request's slot (answered above): only
    // it writes the copy until it publishes it below, and the capturing
    // thread reads it only after that.
    unsafe { SLOT_COPY.fill(context, REQUEST.copy_limit.load(Ordering::Relaxed)) };
    hold.publish();
}

/// An interrupted thread's registers and the top of its stack, copied by a
/// signal handler into static memory and unwound afterwards with the
/// binaries' call-frame information (see [`unwind`]). `WORDS` words of stack
/// are kept. Who may touch it when is up to the owner's state machine, so
/// [`StackCopy::fill`] and [`StackCopy::unwind`] are `unsafe`.
struct StackCopy<const WORDS: usize> {
    pc: AtomicUsize,
    sp: AtomicUsize,
    fp: AtomicUsize,
    bytes: AtomicUsize,
    words: UnsafeCell<[usize; WORDS]>,
}

// SAFETY: the words are written only by `fill` and read only by `unwind`,
// whose callers guarantee (through an atomic state with acquire/release
// ordering) that the two never overlap.
unsafe impl<const WORDS: usize> Sync for StackCopy<WORDS> {}

/// Stack copies shared between a signal handler, which fills any free one,
/// and one thread that unwinds and frees them: the CPU profiler's. Free
/// slots are taken lowest first, so at low sampling rates only the first
/// few are ever touched (resident).
pub(crate) struct CopyPool<const SLOTS: usize, const WORDS: usize> {
    slots: [PoolSlot<WORDS>; SLOTS],
}

struct PoolSlot<const WORDS: usize> {
    slot: Slot,
    copy: StackCopy<WORDS>,
}

impl<const SLOTS: usize, const WORDS: usize> CopyPool<SLOTS, WORDS> {
    pub(crate) const fn new() -> Self {
        CopyPool {
            slots: [const {
                PoolSlot {
                    slot: Slot::new(),
                    copy: StackCopy::new(),
                }
            }; SLOTS],
        }
    }

    /// In a signal handler: copies the interrupted stack into the first free
    /// slot and returns its index; `None` if every slot is taken.
    /// Async-signal-safe.
    pub(crate) fn fill(&self, context: *mut libc::c_void) -> Option<usize> {
        let (i, hold) = slots::claim_first(self.slots.iter().map(|s| &s.slot))?;
        // SAFETY: this handler holds the slot (claimed above), so it alone
        // touches the copy until it publishes it below.
        unsafe { self.slots[i].copy.fill(context, usize::MAX) };
        hold.publish();
        Some(i)
    }

    /// Outside a signal handler: copies the calling thread's own stack from
    /// `sp` (at most up to `top`, its end) with the registers `pc`, `sp`,
    /// `fp` it read at one instruction, into the first free slot; returns
    /// its index, `None` if every slot is taken.
    pub(crate) fn fill_own(&self, pc: usize, sp: usize, fp: usize, top: usize) -> Option<usize> {
        let (i, hold) = slots::claim_first(self.slots.iter().map(|s| &s.slot))?;
        // SAFETY: this thread holds the slot (claimed above), so it alone
        // touches the copy until it publishes it below; the caller passes
        // its own live stack, mapped from `sp` to `top`.
        unsafe { self.slots[i].copy.fill_own(pc, sp, fp, top) };
        hold.publish();
        Some(i)
    }

    /// Unwinds slot `i` (see [`StackCopy::unwind`]) and frees it. A slot
    /// that is not ready gives `fp_frames` back. Only one thread may call
    /// this.
    pub(crate) fn unwind(&self, i: usize, fp_frames: &[usize], max: usize) -> Vec<usize> {
        let Some(slot) = self.slots.get(i) else {
            return fp_frames.to_vec();
        };
        let Some(_read) = slot.slot.ready() else {
            return fp_frames.to_vec();
        };
        // SAFETY: the slot is published and this, its one reader, holds it
        // until `_read` drops after the unwind: no writer touches the copy.
        unsafe { slot.copy.unwind(fp_frames, max) }
    }
}

/// Stack pages read per `process_vm_readv` call while copying.
const PAGES_PER_READ: usize = 16;
const PAGE: usize = 4096;

impl<const WORDS: usize> StackCopy<WORDS> {
    const fn new() -> Self {
        StackCopy {
            pc: AtomicUsize::new(0),
            sp: AtomicUsize::new(0),
            fp: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            words: UnsafeCell::new([0; WORDS]),
        }
    }

    /// Copies the interrupted registers and as much of the stack above the
    /// stack pointer as is mapped, up to `WORDS` words and `limit` bytes. Async-signal-safe:
    /// `process_vm_readv` into this static memory, page by page so that the
    /// copy stops cleanly at the stack's top.
    ///
    /// # Safety
    /// No other thread may call `fill` or `unwind` on this copy until the
    /// caller publishes it (with release ordering) to the one that unwinds.
    unsafe fn fill(&self, context: *mut libc::c_void, limit: usize) {
        self.bytes.store(0, Ordering::Relaxed);
        let Some((pc, fp, sp)) = registers(context) else {
            return;
        };
        self.pc.store(pc, Ordering::Relaxed);
        self.sp.store(sp, Ordering::Relaxed);
        self.fp.store(fp, Ordering::Relaxed);
        let dest = self.words.get().cast::<u8>();
        let total = (WORDS * std::mem::size_of::<usize>()).min(limit);
        let mut copied = 0;
        while copied < total {
            let mut remote = [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; PAGES_PER_READ];
            let mut n = 0;
            let mut planned = 0;
            while n < PAGES_PER_READ && copied + planned < total {
                let at = sp + copied + planned;
                let to_page_end = PAGE - at % PAGE;
                let len = to_page_end.min(total - copied - planned);
                remote[n] = libc::iovec {
                    iov_base: at as *mut libc::c_void,
                    iov_len: len,
                };
                planned += len;
                n += 1;
            }
            let local = libc::iovec {
                // SAFETY: `copied + planned <= total`, the buffer's size.
                iov_base: unsafe { dest.add(copied) }.cast(),
                iov_len: planned,
            };
            // SAFETY: `local` lies inside our static buffer, which the
            // caller gives us alone; the kernel checks every remote range
            // and stops at the first unmapped one instead of faulting.
            let read = unsafe {
                libc::process_vm_readv(libc::getpid(), &local, 1, remote.as_ptr(), n as _, 0)
            };
            if read <= 0 {
                break;
            }
            copied += read as usize;
            if (read as usize) < planned {
                break;
            }
        }
        self.bytes.store(copied, Ordering::Relaxed);
    }

    /// Copies the calling thread's own stack from `sp` up to `top` (at most
    /// `WORDS` words) with a plain memory copy.
    ///
    /// # Safety
    /// As [`StackCopy::fill`]; and `sp..top` must be the calling thread's
    /// mapped stack, `sp` at or below the caller's own frame.
    unsafe fn fill_own(&self, pc: usize, sp: usize, fp: usize, top: usize) {
        self.pc.store(pc, Ordering::Relaxed);
        self.sp.store(sp, Ordering::Relaxed);
        self.fp.store(fp, Ordering::Relaxed);
        let bytes = top
            .saturating_sub(sp)
            .min(WORDS * std::mem::size_of::<usize>());
        // SAFETY: `sp..sp + bytes` lies in this thread's mapped stack (the
        // caller's promise) and the buffer holds `WORDS` words; the two
        // never overlap (the buffer is static memory).
        unsafe {
            std::ptr::copy_nonoverlapping(sp as *const u8, self.words.get().cast::<u8>(), bytes)
        };
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// Unwinds the copy (CFI, then `fp_frames` beyond its end); at most
    /// `max` frames, innermost first.
    ///
    /// # Safety
    /// The copy must have been published to this thread by the one that
    /// filled it (acquire ordering), and no `fill` may run until this returns.
    unsafe fn unwind(&self, fp_frames: &[usize], max: usize) -> Vec<usize> {
        let bytes = self
            .bytes
            .load(Ordering::Relaxed)
            .min(WORDS * std::mem::size_of::<usize>());
        if bytes == 0 || cfg!(not(target_arch = "x86_64")) {
            return fp_frames.iter().take(max).copied().collect();
        }
        // SAFETY: the caller guarantees no writer; `bytes` of the buffer
        // were written by `fill`.
        let stack = unsafe { std::slice::from_raw_parts(self.words.get().cast::<u8>(), bytes) };
        #[cfg(target_arch = "x86_64")]
        {
            let copy = unwind::Copied {
                pc: self.pc.load(Ordering::Relaxed),
                sp: self.sp.load(Ordering::Relaxed),
                fp: self.fp.load(Ordering::Relaxed),
                stack,
            };
            unwind::unwind(&copy, fp_frames, max)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = stack;
            fp_frames.iter().take(max).copied().collect()
        }
    }
}

/// Words above the stack pointer searched for a saved frame pointer when the
/// chain breaks at the first step.
const SCAN_WORDS: usize = 512;

/// Walks the interrupted thread's frame-pointer chain into `out`: the
/// interrupted instruction, then return addresses, innermost first. Returns
/// how many were written. Async-signal-safe: reads go through
/// `process_vm_readv`, writes only to `out`.
///
/// On x86_64 the stack copy's CFI unwinding does the real work and this walk
/// only supplies frames beyond the copy, so it runs only where the build
/// keeps frame pointers ([`FRAME_WALK`]); elsewhere only the instruction is
/// written. On aarch64 it is the whole walk: code without frame pointers
/// (glibc's `malloc`, say) may use the frame-pointer register for data,
/// which breaks the chain at once, so then the words just above the stack
/// pointer are searched for the frame pointer the function saved, and the
/// walk resumes from there (losing the one frame that called it).
pub(crate) fn walk(context: *mut libc::c_void, out: &[AtomicUsize]) -> usize {
    let Some((pc, fp, sp)) = registers(context) else {
        return 0;
    };
    if out.is_empty() {
        return 0;
    }
    out[0].store(pc, Ordering::Relaxed);
    if cfg!(target_arch = "x86_64") {
        if !FRAME_WALK.load(Ordering::Relaxed) {
            return 1;
        }
        return 1 + follow(fp, sp, &out[1..]);
    }
    let mut n = 1 + follow(fp, sp, &out[1..]);
    if n == 1 {
        if let Some(saved) = scan_for_frame(sp) {
            n += follow(saved, sp, &out[1..]);
        }
    }
    n
}

/// The calling thread's instruction, stack and frame pointers, read at one
/// instruction: where an unwind of its own stack starts.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnRegisters {
    pub(crate) pc: usize,
    pub(crate) sp: usize,
    pub(crate) fp: usize,
}

/// Reads [`OwnRegisters`] where it is called: always inlined, so the
/// instruction and stack pointer are the caller's own.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn own_registers() -> OwnRegisters {
    let (pc, sp, fp): (usize, usize, usize);
    // SAFETY: reads three registers at one instruction into locals; touches
    // no memory, the stack or the flags.
    unsafe {
        std::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {fp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            fp = out(reg) fp,
            options(nomem, nostack, preserves_flags),
        );
    }
    OwnRegisters { pc, sp, fp }
}

thread_local! {
    /// The end (highest address) of this thread's stack; 0 until read.
    static STACK_TOP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The end (highest address) of the calling thread's stack, read once per
/// thread (`pthread_getattr_np`; for the main thread glibc reads
/// `/proc/self/maps` through its own allocator).
pub(crate) fn own_stack_top() -> Option<usize> {
    let known = STACK_TOP.try_with(|t| t.get()).ok()?;
    if known != 0 {
        return Some(known);
    }
    // SAFETY: zeroed is a valid `pthread_attr_t` to be initialised by
    // `pthread_getattr_np`, which fills it for the calling thread; it is
    // destroyed once read. `stack` and `size` are written by
    // `pthread_attr_getstack` from it.
    let top = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut stack: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut stack, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if !ok || stack.is_null() {
            return None;
        }
        (stack as usize).checked_add(size)?
    };
    let _ = STACK_TOP.try_with(|t| t.set(top));
    Some(top)
}

/// Whether handlers walk the frame-pointer chain on x86_64: only when this
/// build keeps frame pointers. Without them the chain is the frame-pointer
/// register's garbage, and following it costs system calls for nothing.
static FRAME_WALK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Decides [`FRAME_WALK`] for this build; called before a handler is
/// installed.
pub(crate) fn decide_frame_walk() {
    FRAME_WALK.store(super::build_keeps_frame_pointers(), Ordering::Relaxed);
}

/// Outside a signal handler: the calling thread's own frame-pointer chain
/// from `fp`, within its stack `sp..top`, as return addresses into `out`,
/// innermost first; returns how many. Reads the stack directly (no system
/// call), so a heap sample can take frames beyond its bounded copy. Nothing
/// where the build does not keep frame pointers ([`FRAME_WALK`]).
pub(crate) fn walk_own(mut fp: usize, sp: usize, top: usize, out: &[AtomicUsize]) -> usize {
    if !FRAME_WALK.load(Ordering::Relaxed) {
        return 0;
    }
    let word = std::mem::size_of::<usize>();
    let mut n = 0;
    while n < out.len()
        && fp >= sp
        && fp.is_multiple_of(word)
        && fp.checked_add(2 * word).is_some_and(|end| end <= top)
    {
        // SAFETY: `fp..fp + 2 words` lies within `sp..top`, the calling
        // thread's own mapped stack (the caller's promise), and is aligned;
        // this thread is the only writer of its stack, and it is not
        // writing while it reads here.
        let (next_fp, return_address) = unsafe {
            (
                std::ptr::read(fp as *const usize),
                std::ptr::read((fp + word) as *const usize),
            )
        };
        if return_address == 0 {
            break;
        }
        out[n].store(return_address, Ordering::Relaxed);
        n += 1;
        if next_fp <= fp {
            break;
        }
        fp = next_fp;
    }
    n
}

/// Whether `fp` can be a frame pointer of a stack whose pointer is `sp`:
/// aligned, above it and within a plausible span.
fn plausible_frame(fp: usize, sp: usize) -> bool {
    fp != 0
        && fp.is_multiple_of(std::mem::size_of::<usize>())
        && fp >= sp
        && fp - sp <= MAX_STACK_SPAN
}

/// Follows the chain from `fp`, writing return addresses to `out`.
fn follow(mut fp: usize, sp: usize, out: &[AtomicUsize]) -> usize {
    let mut n = 0;
    while n < out.len() && plausible_frame(fp, sp) {
        let mut record = [0usize; 2]; // [caller's frame pointer, return address]
        if !read_own_memory(fp, &mut record) {
            break;
        }
        let [next_fp, return_address] = record;
        if return_address == 0 {
            break;
        }
        out[n].store(return_address, Ordering::Relaxed);
        n += 1;
        if next_fp <= fp {
            break;
        }
        fp = next_fp;
    }
    n
}

/// The first word above `sp` that points at a frame record which itself
/// chains to another plausible record: most likely a saved frame pointer.
fn scan_for_frame(sp: usize) -> Option<usize> {
    let mut chunk = [0usize; 32];
    for base in (0..SCAN_WORDS).step_by(chunk.len()) {
        let at = sp + base * std::mem::size_of::<usize>();
        if !read_words(at, &mut chunk) {
            return None;
        }
        for (i, &word) in chunk.iter().enumerate() {
            let word_at = at + i * std::mem::size_of::<usize>();
            if word <= word_at || !plausible_frame(word, sp) {
                continue;
            }
            let mut first = [0usize; 2];
            let mut second = [0usize; 2];
            if read_own_memory(word, &mut first)
                && first[1] != 0
                && first[0] > word
                && plausible_frame(first[0], sp)
                && read_own_memory(first[0], &mut second)
                && second[1] != 0
                && (second[0] == 0 || second[0] > first[0])
            {
                return Some(word);
            }
        }
    }
    None
}

/// (program counter, frame pointer, stack pointer) of the interrupted code.
#[allow(unused_variables)]
fn registers(context: *mut libc::c_void) -> Option<(usize, usize, usize)> {
    if context.is_null() {
        return None;
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        // SAFETY: with SA_SIGINFO the kernel passes a valid ucontext_t.
        let uc = unsafe { &*(context as *const libc::ucontext_t) };
        let g = &uc.uc_mcontext.gregs;
        Some((
            g[libc::REG_RIP as usize] as usize,
            g[libc::REG_RBP as usize] as usize,
            g[libc::REG_RSP as usize] as usize,
        ))
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        // SAFETY: with SA_SIGINFO the kernel passes a valid ucontext_t.
        let uc = unsafe { &*(context as *const libc::ucontext_t) };
        let m = &uc.uc_mcontext;
        Some((m.pc as usize, m.regs[29] as usize, m.sp as usize))
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        None
    }
}

/// Copies two words from `address` in this process, or returns false if any
/// of it is unmapped (the kernel checks; nothing faults).
fn read_own_memory(address: usize, out: &mut [usize; 2]) -> bool {
    read_words(address, out)
}

/// Copies `out.len()` words from `address` in this process, or returns false
/// if any of it is unmapped.
fn read_words(address: usize, out: &mut [usize]) -> bool {
    let bytes = std::mem::size_of_val(out);
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: bytes,
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: bytes,
    };
    // SAFETY: `local` points at `out`, which is writable for `bytes`; the
    // kernel validates `remote` and fails with EFAULT instead of faulting.
    let read = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    read == bytes as isize
}

mod elf;
mod lines;
mod symbols;
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
    fn a_thread_that_does_not_exist_is_an_error() {
        assert_eq!(
            capture(i32::MAX - 7, Duration::from_millis(100)),
            Err(StackError::NoSuchThread(i32::MAX - 7))
        );
    }
}
