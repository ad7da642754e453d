//! The reserved address range that sampled allocations are served from, so
//! that a free tells a sampled block by its address alone: one subtract and
//! one compare against a link-time address, no load, for every block freed.
//!
//! The range is a zero-initialised static, so it lives in `.bss`: reserved
//! address space that costs no memory until a slot is first used. Slots come
//! in two sizes, each taken lowest first from a bitmap, so only as many
//! pages become resident as samples were ever live at once. A block larger
//! than a slot, or over-aligned, or sampled while every slot of its size is
//! taken, is served by the wrapped allocator as any other block, and its
//! free is found through the heap profiler's filter instead.

use std::cell::UnsafeCell;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Slot size of the small class, and the largest size and alignment it takes.
pub(super) const SMALL: usize = 256;
const SMALL_SLOTS: usize = 16 * 1024;
/// Slot size of the large class: the largest block (and alignment) served here.
pub(super) const LARGE: usize = 4096;
const LARGE_SLOTS: usize = 2 * 1024;
const SMALL_BYTES: usize = SMALL * SMALL_SLOTS;
/// The whole range: 4 MiB of small slots, then 8 MiB of large ones.
const BYTES: usize = SMALL_BYTES + LARGE * LARGE_SLOTS;

#[repr(C, align(4096))]
struct Range(UnsafeCell<[u8; BYTES]>);

// SAFETY: the bytes are only reached through the pointers `take` hands out,
// each slot to one owner at a time (its bit in the bitmap stays set until
// `release`), exactly as an allocator hands out blocks. Nothing here reads or
// writes them.
unsafe impl Sync for Range {}

static RANGE: Range = Range(UnsafeCell::new([0; BYTES]));
/// One bit per slot, set while the slot is handed out.
static SMALL_USED: [AtomicU64; SMALL_SLOTS / 64] = [const { AtomicU64::new(0) }; SMALL_SLOTS / 64];
static LARGE_USED: [AtomicU64; LARGE_SLOTS / 64] = [const { AtomicU64::new(0) }; LARGE_SLOTS / 64];

#[inline(always)]
fn start() -> *mut u8 {
    RANGE.0.get().cast::<u8>()
}

/// Whether `ptr` points into the range: a block [`take`] handed out.
#[inline(always)]
pub(super) fn contains(ptr: *mut u8) -> bool {
    (ptr as usize).wrapping_sub(start() as usize) < BYTES
}

/// A free slot for a block of `size` bytes aligned to `align`, or `None` if
/// the block is too large or over-aligned for a slot, or every slot of its
/// class is taken.
pub(super) fn take(size: usize, align: usize) -> Option<*mut u8> {
    let (used, slot_bytes, offset): (&[AtomicU64], usize, usize) =
        if size <= SMALL && align <= SMALL {
            (&SMALL_USED, SMALL, 0)
        } else if size <= LARGE && align <= LARGE {
            (&LARGE_USED, LARGE, SMALL_BYTES)
        } else {
            return None;
        };
    for (w, word) in used.iter().enumerate() {
        let mut bits = word.load(Relaxed);
        while bits != u64::MAX {
            let bit = (!bits).trailing_zeros() as usize;
            // Acquire: the last owner's writes, made before its release,
            // come before this owner's.
            match word.compare_exchange_weak(bits, bits | 1 << bit, Acquire, Relaxed) {
                Ok(_) => {
                    let index = w * 64 + bit;
                    return Some(start().wrapping_add(offset + index * slot_bytes));
                }
                Err(now) => bits = now,
            }
        }
    }
    None
}

/// Hands the slot of `ptr` (a pointer [`take`] returned) back.
pub(super) fn release(ptr: *mut u8) {
    let offset = (ptr as usize).wrapping_sub(start() as usize);
    let (used, index): (&[AtomicU64], usize) = if offset < SMALL_BYTES {
        (&SMALL_USED, offset / SMALL)
    } else {
        (&LARGE_USED, (offset - SMALL_BYTES) / LARGE)
    };
    if let Some(word) = used.get(index / 64) {
        word.fetch_and(!(1u64 << (index % 64)), Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_lowest_first_by_size_and_alignment_and_given_back() {
        let a = take(24, 8).expect("a small slot");
        let b = take(200, 16).expect("another small slot");
        assert!(contains(a) && contains(b));
        assert_ne!(a, b);
        assert_eq!(a as usize % SMALL, 0);
        assert_eq!(b as usize % SMALL, 0);
        assert!((a as usize) < start() as usize + SMALL_BYTES);

        let big = take(3000, 64).expect("a large slot");
        assert!(contains(big));
        assert!(big as usize >= start() as usize + SMALL_BYTES);
        assert_eq!(big as usize % LARGE, 0);
        // A small block needing a large alignment goes to a large slot.
        let aligned = take(8, 1024).expect("a large slot");
        assert!(aligned as usize >= start() as usize + SMALL_BYTES);

        assert!(take(LARGE + 1, 8).is_none(), "too large for any slot");
        assert!(take(8, 2 * LARGE).is_none(), "over-aligned for any slot");

        release(a);
        // Lowest first: `a`'s slot, or one freed below it meanwhile (this
        // test binary samples its own allocations too).
        let again = take(16, 8).expect("a small slot");
        assert!(again as usize <= b as usize);
        for p in [again, b, big, aligned] {
            release(p);
        }
    }

    #[test]
    fn pointers_outside_the_range_are_not_in_it() {
        let local = 0u8;
        assert!(!contains(&local as *const u8 as *mut u8));
        assert!(!contains(std::ptr::null_mut()));
        assert!(!contains(start().wrapping_add(BYTES)));
        assert!(contains(start().wrapping_add(BYTES - 1)));
        let boxed = Box::new(0u64);
        assert!(!contains(&*boxed as *const u64 as *mut u8));
    }

    #[test]
    fn a_full_class_hands_out_nothing_until_a_slot_comes_back() {
        // The large class, all of it (tests of this module take few at once).
        let mut taken = Vec::new();
        while let Some(p) = take(LARGE, 8) {
            taken.push(p);
        }
        assert!(taken.len() <= LARGE_SLOTS);
        assert!(taken.len() >= LARGE_SLOTS - 8);
        assert!(take(LARGE, 8).is_none());
        // Small blocks still have their own class.
        let small = take(8, 8).expect("small slots are apart");
        release(small);
        let back = taken.pop().expect("one");
        release(back);
        let again = take(LARGE, 8).expect("the slot given back");
        release(again);
        for p in taken {
            release(p);
        }
    }
}
