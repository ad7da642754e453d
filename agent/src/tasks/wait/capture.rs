//! Taking and handing over the stack copies of sampled polls' waker
//! clones: static memory, no allocation.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::Drained;
use crate::platform::slots::{self, Slot, Writing};
use crate::platform::stack;

/// Stack bytes copied per capture: an async call chain from a leaf's
/// waker registration up to the wrapper, a few KiB on release builds.
const COPY_BYTES: usize = 16 * 1024;
/// Captures waiting to be unwound (the agent unwinds them every sample;
/// drains them a quarter of the pool at a time).
pub(crate) const SLOTS: usize = 64;
/// Return addresses of the frame-pointer chain kept per capture.
const CHAIN: usize = 64;

static COPIES: stack::CopyPool<SLOTS, { COPY_BYTES / 8 }> = stack::CopyPool::new();

pub(crate) struct Raw {
    slot: Slot,
    pub(super) id: AtomicU64,
    pub(super) weight: AtomicU32,
    pub(super) task: AtomicUsize,
    /// A poll's last clone, beside its first of the same id.
    last: AtomicBool,
    pc: AtomicUsize,
    copy: AtomicUsize,
    chain: [AtomicUsize; CHAIN],
    chain_len: AtomicUsize,
}

pub(crate) static RAW: [Raw; SLOTS] = [const {
    Raw {
        slot: Slot::new(),
        id: AtomicU64::new(0),
        weight: AtomicU32::new(0),
        task: AtomicUsize::new(0),
        last: AtomicBool::new(false),
        pc: AtomicUsize::new(0),
        copy: AtomicUsize::new(0),
        chain: [const { AtomicUsize::new(0) }; CHAIN],
        chain_len: AtomicUsize::new(0),
    }
}; SLOTS];

/// A capture held by the thread that took it until it is published;
/// dropped unpublished (its future did not wait), its slots come free.
pub(crate) struct Taken {
    index: usize,
    hold: Option<Writing<'static>>,
}

impl Drop for Taken {
    fn drop(&mut self) {
        if self.hold.is_some() {
            if let Some(copy) = RAW[self.index].copy.load(Relaxed).checked_sub(1) {
                COPIES.discard(copy);
            }
        }
    }
}

/// Copies this thread's registers and stack top into a free slot.
#[inline(never)]
pub(crate) fn take() -> Option<Taken> {
    let top = stack::own_stack_top()?;
    let (index, hold) = slots::claim_first(&RAW, |r| &r.slot)?;
    let raw = &RAW[index];
    let at = stack::own_registers();
    raw.pc.store(at.pc, Relaxed);
    let chain = stack::walk_own(at.fp, at.sp, top, &raw.chain);
    raw.chain_len.store(chain, Relaxed);
    raw.copy.store(0, Relaxed);
    // Without a copy the slot goes back free as `hold` drops.
    let copy = COPIES.fill_own(at.pc, at.sp, at.fp, top)? + 1;
    raw.copy.store(copy, Relaxed);
    Some(Taken {
        index,
        hold: Some(hold),
    })
}

/// Hands a capture to the agent (`last`: a poll's last clone).
pub(crate) fn publish(mut taken: Taken, id: u64, weight: u32, task: usize, last: bool) -> bool {
    let raw = &RAW[taken.index];
    raw.id.store(id, Relaxed);
    raw.last.store(last, Relaxed);
    raw.weight.store(weight, Relaxed);
    raw.task.store(task, Relaxed);
    match taken.hold.take() {
        Some(hold) => {
            hold.publish();
            true
        }
        None => false,
    }
}

/// Every published capture, freed.
pub(crate) fn drain(depth: usize) -> Vec<Drained> {
    let mut out = Vec::new();
    for raw in &RAW {
        let Some(_read) = raw.slot.ready() else {
            continue;
        };
        let chain = raw.chain_len.load(Relaxed).min(CHAIN);
        let fp_frames: Vec<usize> = std::iter::once(raw.pc.load(Relaxed))
            .chain(raw.chain[..chain].iter().map(|a| a.load(Relaxed)))
            .collect();
        let addresses = match raw.copy.load(Relaxed).checked_sub(1) {
            Some(c) => COPIES.unwind(c, &fp_frames, depth),
            None => fp_frames,
        };
        out.push(Drained {
            id: raw.id.load(Relaxed),
            weight: raw.weight.load(Relaxed),
            task: raw.task.load(Relaxed),
            last: raw.last.load(Relaxed),
            addresses,
        });
    }
    out
}

/// Names for addresses, innermost first.
pub(crate) fn names(addresses: &[usize]) -> Vec<String> {
    stack::symbolize(addresses)
        .into_iter()
        .map(|f| f.function.unwrap_or_else(|| format!("{:#x}", f.address)))
        .collect()
}
