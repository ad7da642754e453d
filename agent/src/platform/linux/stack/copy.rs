//! Stack copies: an interrupted (or the calling) thread's registers and
//! the top of its stack, copied into static memory without allocating and
//! unwound later off the signal path; a pool of them for the samplers.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::registers::registers;
use super::*;
use crate::platform::slots::{self, Slot};

/// An interrupted thread's registers and the top of its stack, copied by a
/// signal handler into static memory and unwound afterwards with the
/// binaries' call-frame information (see [`unwind`]). `WORDS` words of stack
/// are kept. Who may touch it when is up to the owner's state machine, so
/// [`StackCopy::fill`] and [`StackCopy::unwind`] are `unsafe`.
pub(super) struct StackCopy<const WORDS: usize> {
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

pub(super) struct PoolSlot<const WORDS: usize> {
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
        let (i, hold) = slots::claim_first(&self.slots, |s| &s.slot)?;
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
        let (i, hold) = slots::claim_first(&self.slots, |s| &s.slot)?;
        // SAFETY: this thread holds the slot (claimed above), so it alone
        // touches the copy until it publishes it below; the caller passes
        // its own live stack, mapped from `sp` to `top`.
        unsafe { self.slots[i].copy.fill_own(pc, sp, fp, top) };
        hold.publish();
        Some(i)
    }

    /// Frees slot `i`, published by [`CopyPool::fill_own`] on this thread
    /// and never handed to the reader (its capture was abandoned): no one
    /// else can hold or read it.
    pub(crate) fn discard(&self, i: usize) {
        if let Some(slot) = self.slots.get(i) {
            drop(slot.slot.ready());
        }
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
pub(super) const PAGES_PER_READ: usize = 16;
pub(super) const PAGE: usize = 4096;

impl<const WORDS: usize> StackCopy<WORDS> {
    pub(super) const fn new() -> Self {
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
    pub(super) unsafe fn fill(&self, context: *mut libc::c_void, limit: usize) {
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
    pub(super) unsafe fn fill_own(&self, pc: usize, sp: usize, fp: usize, top: usize) {
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
    pub(super) unsafe fn unwind(&self, fp_frames: &[usize], max: usize) -> Vec<usize> {
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
