//! The frame-pointer walk: an interrupted thread's chain (in a signal
//! handler) or the calling thread's own, every read checked by the kernel so
//! a broken chain ends the walk instead of crashing.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::registers::registers;
use super::MAX_STACK_SPAN;

/// Words above the stack pointer searched for a saved frame pointer when the
/// chain breaks at the first step.
pub(super) const SCAN_WORDS: usize = 512;

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

thread_local! {
    /// The end (highest address) of this thread's stack; 0 until read.
    pub(super) static STACK_TOP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
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
pub(super) static FRAME_WALK: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(true);

/// Decides [`FRAME_WALK`] for this build; called before a handler is
/// installed.
pub(crate) fn decide_frame_walk() {
    FRAME_WALK.store(
        crate::platform::build_keeps_frame_pointers(),
        Ordering::Relaxed,
    );
}

/// Outside a signal handler: the calling thread's own frame-pointer chain
/// from `fp`, within its stack `sp..top`, as return addresses into `out`,
/// innermost first; returns how many. Reads the stack directly (no system
/// call), so a heap sample can take frames beyond its bounded copy. Nothing
/// where the build does not keep frame pointers ([`FRAME_WALK`]).
pub(crate) fn walk_own(fp: usize, sp: usize, top: usize, out: &[AtomicUsize]) -> usize {
    if !FRAME_WALK.load(Ordering::Relaxed) {
        return 0;
    }
    let word = std::mem::size_of::<usize>();
    chain(fp, out, |fp| {
        if fp < sp
            || !fp.is_multiple_of(word)
            || fp.checked_add(2 * word).is_none_or(|end| end > top)
        {
            return None;
        }
        // SAFETY: `fp..fp + 2 words` lies within `sp..top`, the calling
        // thread's own mapped stack (the caller's promise), and is aligned;
        // this thread is the only writer of its stack, and it is not
        // writing while it reads here.
        Some(unsafe {
            [
                std::ptr::read(fp as *const usize),
                std::ptr::read((fp + word) as *const usize),
            ]
        })
    })
}

/// The frame-pointer chain from `fp`: each record read by `record` (the
/// caller's frame pointer and the return address, or `None` where the
/// chain cannot go on) gives one return address to `out`, innermost first,
/// until the chain stops climbing; returns how many. No allocation: it runs
/// in signal handlers.
fn chain(
    mut fp: usize,
    out: &[AtomicUsize],
    record: impl Fn(usize) -> Option<[usize; 2]>,
) -> usize {
    let mut n = 0;
    while n < out.len() {
        let Some([next_fp, return_address]) = record(fp) else {
            break;
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
pub(super) fn plausible_frame(fp: usize, sp: usize) -> bool {
    fp != 0
        && fp.is_multiple_of(std::mem::size_of::<usize>())
        && fp >= sp
        && fp - sp <= MAX_STACK_SPAN
}

/// Follows the chain from `fp`, writing return addresses to `out`.
pub(super) fn follow(fp: usize, sp: usize, out: &[AtomicUsize]) -> usize {
    chain(fp, out, |fp| {
        let mut record = [0usize; 2]; // [caller's frame pointer, return address]
        (plausible_frame(fp, sp) && read_own_memory(fp, &mut record)).then_some(record)
    })
}

/// The first word above `sp` that points at a frame record which itself
/// chains to another plausible record: most likely a saved frame pointer.
pub(super) fn scan_for_frame(sp: usize) -> Option<usize> {
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

/// Copies two words from `address` in this process, or returns false if any
/// of it is unmapped (the kernel checks; nothing faults).
pub(super) fn read_own_memory(address: usize, out: &mut [usize; 2]) -> bool {
    read_words(address, out)
}

/// Copies `out.len()` words from `address` in this process, or returns false
/// if any of it is unmapped.
pub(super) fn read_words(address: usize, out: &mut [usize]) -> bool {
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
