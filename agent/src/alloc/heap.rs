//! Heap profiling by allocation site: which code allocated the memory that is
//! still live, and which allocates the most.
//!
//! [`Counting`](super::Counting) samples allocations by bytes, as tcmalloc,
//! jemalloc and async-profiler do: each thread counts down a random number
//! of bytes (exponentially distributed around the mean interval, so every
//! byte allocated has the same chance of being the one sampled), and the
//! allocation that crosses zero is sampled. Unsampled, an allocation costs a
//! thread-local decrement and a branch.
//!
//! A sampled block of up to 4 KiB is served from a reserved address range
//! (`super::region`), so a free recognises it by its address: unsampled, a
//! free of up to 4 KiB costs a subtract and a compare, and a larger one a
//! look at one byte of a small filter of the sampled addresses.
//!
//! A sampled allocation copies the registers and the top of its own stack
//! into preallocated memory (the same copy the CPU profiler takes, unwound
//! later with the binaries' `.eh_frame`, so builds without frame pointers
//! are covered) and enters a fixed-size table of live samples keyed by
//! address, weighted by the bytes it stands for (`size / (1 - e^(-size /
//! mean))`). Its free removes it. What does not fit — a full table, no free
//! stack copy — is counted, never grown. An agent thread unwinds the copies,
//! interns the stacks, and reads the table for [`HeapProfile`]s: live bytes
//! by site (estimated), and bytes allocated by site since the last profile.
//!
//! Linux on x86_64 with glibc only; elsewhere sampling stays off.
//!
//! No `unsafe` here: reading the registers, copying the stack and handing
//! each raw stack to the agent live with the platform code.
#![deny(unsafe_code)]

use crate::platform::slots::{Ready, Slot, Writing};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};

/// Default mean sampling interval in bytes (tcmalloc's and jemalloc's).
pub const DEFAULT_HEAP_SAMPLE_BYTES: u64 = 512 * 1024;

/// Mean interval in bytes; 0 while sampling is off.
static MEAN: AtomicU64 = AtomicU64::new(0);
/// Frees of blocks larger than this look in [`FILTER`]: no free does until
/// a sampled block is served outside the reserved range; then those larger
/// than a range slot do, and every free does once a block small enough for
/// a slot had to be served outside (its class was full, or it was aligned
/// to more than a slot).
static FILTER_ABOVE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Bytes a thread allocates between two looks at [`MEAN`] while sampling is
/// off, so that turning it on reaches every thread.
const RECHECK_BYTES: i64 = 64 << 10;

thread_local! {
    // All `const` and without destructors: reading them never allocates and
    // works during thread teardown.
    /// Bytes this thread may still allocate before the next sample.
    static UNTIL_SAMPLE: Cell<i64> = const { Cell::new(0) };
    /// This thread's random state (xorshift64*), 0 until seeded.
    static RANDOM: Cell<u64> = const { Cell::new(0) };
    /// Set while this thread takes a sample: allocations meanwhile are not
    /// sampled.
    static SAMPLING: Cell<bool> = const { Cell::new(false) };
}

/// Live samples kept; a power of two.
const TABLE_SIZE: usize = 1 << 14;
/// Slots looked at per insert or lookup.
const PROBES: usize = 32;
const EMPTY: usize = 0;
const GONE: usize = 1;

/// One live sampled allocation.
struct Live {
    /// Its address; [`EMPTY`] or [`GONE`] (a removed one, skipped by lookups).
    address: AtomicUsize,
    /// The bytes it stands for.
    weight: AtomicU64,
    /// [`PENDING`] | the [`RAW`] slot of its stack until that is unwound;
    /// then the interned site, or [`NO_SITE`].
    site: AtomicU32,
}

static TABLE: [Live; TABLE_SIZE] = [const {
    Live {
        address: AtomicUsize::new(EMPTY),
        weight: AtomicU64::new(0),
        site: AtomicU32::new(NO_SITE),
    }
}; TABLE_SIZE];

const PENDING: u32 = 1 << 31;
/// A sample whose stack could not be kept.
pub(crate) const NO_SITE: u32 = u32::MAX;

/// Filter of the addresses in [`TABLE`]: a count per hash bucket, so a free
/// looks at the table only when its bucket holds a sample. Saturated counts
/// stay (a free in that bucket then always looks).
const FILTER_SIZE: usize = 1 << 13;
static FILTER: [AtomicU8; FILTER_SIZE] = [const { AtomicU8::new(0) }; FILTER_SIZE];

/// A sampled stack before it is unwound, handed from the allocating thread
/// to the agent by its [`Slot`].
struct Raw {
    slot: Slot,
    weight: AtomicU64,
    /// The interrupted instruction: the copy's own unwinding starts there.
    pc: AtomicUsize,
    /// 1 + its [`COPIES`] slot.
    copy: AtomicUsize,
    /// 1 + the [`TABLE`] entry of its allocation; 0 if the table was full.
    entry: AtomicUsize,
    /// The frame-pointer chain's return addresses, where the build keeps
    /// frame pointers: frames beyond the copy's end come from here.
    chain: [AtomicUsize; CHAIN],
    chain_len: AtomicUsize,
}

/// Return addresses of the frame-pointer chain kept per sample.
const CHAIN: usize = 64;

const RAW_SLOTS: usize = 256;

static RAW: [Raw; RAW_SLOTS] = [const {
    Raw {
        slot: Slot::new(),
        weight: AtomicU64::new(0),
        pc: AtomicUsize::new(0),
        copy: AtomicUsize::new(0),
        entry: AtomicUsize::new(0),
        chain: [const { AtomicUsize::new(0) }; CHAIN],
        chain_len: AtomicUsize::new(0),
    }
}; RAW_SLOTS];

/// Stack bytes copied per sample: an allocation site sits within a few KiB
/// of the allocator (frames beyond the copy are lost on builds without
/// frame pointers).
const COPY_BYTES: usize = 8 * 1024;
/// Stack copies waiting to be unwound. The agent unwinds them every 100 ms:
/// a burst of more samples than this in between loses the excess stacks
/// (counted in [`HeapProfile::dropped`]). Taken lowest first, so only as
/// many are resident as bursts need.
const COPY_SLOTS: usize = 128;
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
static COPIES: crate::platform::stack::CopyPool<COPY_SLOTS, { COPY_BYTES / 8 }> =
    crate::platform::stack::CopyPool::new();

/// Samples taken, and those lost because the table or the stack slots were
/// full.
static SAMPLES: AtomicU64 = AtomicU64::new(0);
static TABLE_FULL: AtomicU64 = AtomicU64::new(0);
static NO_STACK: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated in samples whose stack was lost (for the profile's
/// "unknown" site).
static UNSITED_ALLOCATED: AtomicU64 = AtomicU64::new(0);

/// Whether heap sampling can run on this platform.
pub fn supported() -> bool {
    cfg!(all(
        target_os = "linux",
        target_arch = "x86_64",
        target_env = "gnu"
    ))
}

/// Sets the mean sampling interval in bytes (0: off); see
/// [`crate::low_level::set_heap_sample_bytes`].
pub(crate) fn set_mean(bytes: u64) {
    if bytes > 0 && supported() {
        #[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
        crate::platform::stack::decide_frame_walk();
        MEAN.store(bytes, Relaxed);
    } else {
        MEAN.store(0, Relaxed);
    }
}

/// The mean sampling interval now (0: off).
pub(crate) fn mean() -> u64 {
    MEAN.load(Relaxed)
}

/// Counts `size` bytes about to be allocated against this thread's interval:
/// whether this allocation crosses it (then [`Sample::begin`] decides).
#[inline]
pub(super) fn due(size: usize) -> bool {
    UNTIL_SAMPLE
        .try_with(|until| {
            let left = until.get().wrapping_sub(size as i64);
            until.set(left);
            left < 0
        })
        .unwrap_or(false)
}

/// Whether the free of a block of `size` bytes must look for it in the
/// live samples with [`freed`] (blocks from the reserved range are found by
/// their address instead).
#[inline]
pub(super) fn filtered(size: usize) -> bool {
    size > FILTER_ABOVE.load(Relaxed)
}

/// Removes the allocation at `address`, just freed and served outside the
/// reserved range, from the live samples if it is one.
pub(super) fn freed(address: *mut u8) {
    let address = address as usize;
    if FILTER[filter_bucket(address)].load(Relaxed) == 0 {
        return;
    }
    remove(address, true);
}

/// Removes a block of the reserved range, just freed, from the live samples.
pub(super) fn freed_sampled(address: *mut u8) {
    remove(address as usize, false);
}

fn filter_bucket(address: usize) -> usize {
    ((address >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - 13)) & (FILTER_SIZE - 1)
}

fn table_slot(address: usize) -> usize {
    ((address >> 4).wrapping_mul(0xD6E8_FEB8_6659_FD93) >> (64 - 14)) & (TABLE_SIZE - 1)
}

/// A sample being taken: allocations the thread makes meanwhile are only
/// counted, until it is recorded or dropped.
pub(super) struct Sample {
    weight: u64,
}

impl Sample {
    /// Called for an allocation of `size` bytes that was [`due`]: draws the
    /// next interval, and says whether to sample this allocation.
    #[cold]
    #[inline(never)]
    pub(super) fn begin(size: usize) -> Option<Sample> {
        // Not re-entrant: an allocation made while sampling is only counted.
        let entered = SAMPLING.try_with(|s| !s.replace(true)).unwrap_or(false);
        let mean = MEAN.load(Relaxed);
        if !entered {
            // The agent's own work, or a sample in progress: skipped, and the
            // countdown drawn afresh (a fixed one would leave the bytes after
            // it unsampled).
            let next = if mean == 0 {
                RECHECK_BYTES
            } else {
                next_interval(mean)
            };
            let _ = UNTIL_SAMPLE.try_with(|u| u.set(next));
            return None;
        }
        // From here on, dropping `taking` ends the sample.
        let mut taking = Sample { weight: 0 };
        if mean == 0 {
            let _ = UNTIL_SAMPLE.try_with(|u| u.set(RECHECK_BYTES));
            return None;
        }
        // The first countdown of a thread (and the first after sampling is
        // turned on) was not drawn from the distribution: it draws an interval
        // and takes no sample.
        let first = RANDOM.try_with(|r| r.get() == 0).unwrap_or(true);
        let next = next_interval(mean);
        let _ = UNTIL_SAMPLE.try_with(|u| u.set(next));
        if first || size == 0 {
            return None;
        }
        taking.weight = weight(size as u64, mean);
        Some(taking)
    }

    /// Enters the block of `size` bytes allocated at `address`, served from
    /// the reserved range or not, into the live samples with its stack.
    pub(super) fn record(self, address: *mut u8, size: usize, in_range: bool) {
        if !in_range {
            // Its free must look in the filter: from now on, frees of its
            // size do. Ordered before the block reaches another thread by
            // whatever hands it over.
            let above = if size > super::region::LARGE {
                super::region::LARGE
            } else {
                0
            };
            if FILTER_ABOVE.load(Relaxed) > above {
                FILTER_ABOVE.fetch_min(above, Relaxed);
            }
        }
        record(address as usize, self.weight, !in_range);
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        let _ = SAMPLING.try_with(|s| s.set(false));
    }
}

/// The bytes a sampled allocation of `size` stands for when sampling every
/// `mean` bytes: the inverse of its chance of being sampled.
pub(crate) fn weight(size: u64, mean: u64) -> u64 {
    let (s, m) = (size as f64, mean as f64);
    let p = 1.0 - (-s / m).exp();
    if p <= 0.0 {
        return mean;
    }
    (s / p).round() as u64
}

/// The next interval: exponential with mean `mean`, at least 1 byte.
fn next_interval(mean: u64) -> i64 {
    let bits = RANDOM
        .try_with(|r| {
            let mut x = r.get();
            if x == 0 {
                // Seed from the thread's stack address and the clock-free
                // counter of samples: distinct per thread, no system call.
                let here = &x as *const u64 as u64;
                x = here ^ SAMPLES.load(Relaxed).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
            }
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            r.set(x);
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
        .unwrap_or(0x5555_5555_5555_5555);
    // A uniform in (0, 1]: 53 random bits, never zero.
    let u = ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let interval = -u.ln() * mean as f64;
    interval.clamp(1.0, i64::MAX as f64 / 2.0) as i64
}

/// Enters a sampled allocation: its stack into a raw slot, itself into the
/// table (and, if `filtered`, into the filter its free looks in).
fn record(address: usize, weight: u64, filtered: bool) {
    SAMPLES.fetch_add(1, Relaxed);
    let raw = capture(weight);
    let site = raw.as_ref().map_or(NO_SITE, |(i, _)| PENDING | *i as u32);
    if raw.is_none() {
        NO_STACK.fetch_add(1, Relaxed);
        UNSITED_ALLOCATED.fetch_add(weight, Relaxed);
    }
    let entry = insert(address, weight, site, filtered);
    if entry.is_none() {
        TABLE_FULL.fetch_add(1, Relaxed);
    }
    if let Some((i, hold)) = raw {
        // Published after the insert: the thread that unwinds it then finds
        // the table entry to give its site to (or none: the table was full,
        // and the sample still counts as allocated).
        RAW[i].entry.store(entry.map_or(0, |e| e + 1), Relaxed);
        hold.publish();
    }
}

/// Copies this thread's registers and stack top into a free raw slot, held
/// until [`record`] publishes it.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
#[inline(never)]
fn capture(weight: u64) -> Option<(usize, Writing<'static>)> {
    use crate::platform::stack;
    let top = stack::own_stack_top()?;
    let (i, hold) = crate::platform::slots::claim_first(&RAW, |r| &r.slot)?;
    let raw = &RAW[i];
    raw.weight.store(weight, Relaxed);
    let at = stack::own_registers();
    raw.pc.store(at.pc, Relaxed);
    let chain = stack::walk_own(at.fp, at.sp, top, &raw.chain);
    raw.chain_len.store(chain, Relaxed);
    // Without a copy the slot goes back free as `hold` drops.
    let copy = COPIES.fill_own(at.pc, at.sp, at.fp, top)? + 1;
    raw.copy.store(copy, Relaxed);
    Some((i, hold))
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu")))]
fn capture(_weight: u64) -> Option<(usize, Writing<'static>)> {
    None
}

/// Enters `address` into the table; the entry it took, or `None` if the
/// probed entries were all taken.
fn insert(address: usize, weight: u64, site: u32, filtered: bool) -> Option<usize> {
    let start = table_slot(address);
    for k in 0..PROBES {
        let index = (start + k) & (TABLE_SIZE - 1);
        let slot = &TABLE[index];
        let current = slot.address.load(Relaxed);
        if current != EMPTY && current != GONE {
            continue;
        }
        if slot
            .address
            .compare_exchange(current, address, AcqRel, Relaxed)
            .is_ok()
        {
            slot.weight.store(weight, Relaxed);
            slot.site.store(site, Release);
            if filtered {
                let bucket = &FILTER[filter_bucket(address)];
                let _ = bucket.fetch_update(Relaxed, Relaxed, |c| (c < u8::MAX).then_some(c + 1));
            }
            return Some(index);
        }
    }
    None
}

fn remove(address: usize, filtered: bool) {
    let start = table_slot(address);
    for k in 0..PROBES {
        let slot = &TABLE[(start + k) & (TABLE_SIZE - 1)];
        let current = slot.address.load(Acquire);
        if current == EMPTY {
            return;
        }
        if current != address {
            continue;
        }
        if slot
            .address
            .compare_exchange(address, GONE, AcqRel, Relaxed)
            .is_ok()
            && filtered
        {
            let bucket = &FILTER[filter_bucket(address)];
            let _ =
                bucket.fetch_update(Relaxed, Relaxed, |c| (c > 0 && c < u8::MAX).then(|| c - 1));
        }
        return;
    }
}

pub use lagscope_wire::{HeapProfile, HeapSite};
pub use sites::NOT_KEPT;
pub(crate) use sites::{Sites, Windows};

mod sites;

/// Leaves the calling thread's allocations out of the samples from now on:
/// the agent's own threads call it, so the profile shows the service's heap.
pub(crate) fn leave_out_this_thread() {
    let _ = SAMPLING.try_with(|s| s.set(true));
}

#[cfg(test)]
mod tests {
    use super::sites::*;
    use super::*;

    fn site(name: &str, live_bytes: u64, allocated_bytes: u64) -> HeapSite {
        {
            let mut heap_site = HeapSite::default();
            heap_site.frames = vec![name.to_string()];
            heap_site.live_bytes = live_bytes;
            heap_site.allocated_bytes = allocated_bytes;
            heap_site
        }
    }

    #[test]
    fn a_window_keeps_the_most_live_and_most_allocated_sites_and_sums_the_rest() {
        // 200 sites: live falling, allocated rising.
        let sites: Vec<HeapSite> = (0..200u64)
            .map(|i| site(&format!("s{i}"), 1000 - i, i))
            .collect();
        let live: u64 = sites.iter().map(|s| s.live_bytes).sum();
        let allocated: u64 = sites.iter().map(|s| s.allocated_bytes).sum();
        let kept = capped(sites, WINDOW_SITES);
        assert_eq!(kept.len(), WINDOW_SITES);
        let by_live = WINDOW_SITES - 1 - WINDOW_SITES_BY_ALLOCATED;
        assert!(kept
            .iter()
            .any(|s| s.frames[0] == format!("s{}", by_live - 1)));
        assert!(
            kept.iter().any(|s| s.frames[0] == "s199"),
            "most allocated kept"
        );
        let other = kept.last().expect("a summed site");
        assert_eq!(other.frames, [lagscope_wire::OTHER_SITES]);
        assert_eq!(kept.iter().map(|s| s.live_bytes).sum::<u64>(), live);
        assert_eq!(
            kept.iter().map(|s| s.allocated_bytes).sum::<u64>(),
            allocated
        );
        // Capped again, it stays one summed site with the same totals.
        let again = capped(kept.clone(), 10);
        assert_eq!(again.len(), 10);
        assert_eq!(
            again
                .iter()
                .filter(|s| s.frames[0] == lagscope_wire::OTHER_SITES)
                .count(),
            1
        );
        assert_eq!(again.iter().map(|s| s.live_bytes).sum::<u64>(), live);
    }

    #[test]
    fn a_window_not_taken_is_merged_into_the_next() {
        let windows = Windows::default();
        windows.put({
            let mut heap_profile = HeapProfile::default();
            heap_profile.start_ms = 10;
            heap_profile.end_ms = 20;
            heap_profile.sites = vec![site("kept", 100, 100), site("gone", 0, 50)];
            heap_profile
        });
        windows.put({
            let mut heap_profile = HeapProfile::default();
            heap_profile.start_ms = 20;
            heap_profile.end_ms = 30;
            heap_profile.sites = vec![site("kept", 300, 200)];
            heap_profile
        });
        let w = windows.take().expect("a window");
        assert_eq!((w.start_ms, w.end_ms), (10, 30));
        assert_eq!(w.sites, [site("kept", 300, 300), site("gone", 0, 50)]);
        assert!(windows.take().is_none());
    }

    #[test]
    fn a_sample_stands_for_the_bytes_it_had_the_chance_to_be_picked_from() {
        // Small allocations stand for about one interval; large ones for
        // themselves.
        let mean = 512 * 1024;
        let small = weight(64, mean);
        assert!((mean..mean + 64).contains(&small), "{small}");
        let huge = weight(64 * mean, mean);
        assert_eq!(huge, 64 * mean);
    }

    #[test]
    fn the_allocators_own_frames_are_dropped() {
        let frames = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            without_the_allocator(frames(&[
                "lagscope::alloc::heap::capture",
                "<lagscope::alloc::Counting<A> as core::alloc::global::GlobalAlloc>::alloc",
                "__rustc::__rust_alloc",
                "alloc::vec::from_elem",
                "svc::cache::remember",
            ])),
            frames(&["alloc::vec::from_elem", "svc::cache::remember"])
        );
        assert_eq!(
            without_the_allocator(frames(&["svc::main"])),
            frames(&["svc::main"])
        );
    }

    #[test]
    fn drains_come_as_often_as_the_stack_copies_need() {
        use std::time::Duration;
        let (short, long) = (Duration::from_millis(10), Duration::from_millis(100));
        let ms = |d: Duration| d.as_millis();
        assert_eq!(Sites::next_drain(long, 0, short, long), long);
        // 1100 samples a second fill half of 128 copies in 58 ms.
        assert_eq!(ms(Sites::next_drain(long, 110, short, long)), 58);
        assert_eq!(Sites::next_drain(long, 10_000, short, long), short);
        assert_eq!(Sites::next_drain(long, 3, short, long), long);
    }

    #[test]
    fn intervals_average_the_mean() {
        let mean = 1000u64;
        let n = 20_000;
        let total: i64 = (0..n).map(|_| next_interval(mean)).sum();
        let average = total as f64 / n as f64;
        assert!((900.0..1100.0).contains(&average), "{average}");
    }

    #[test]
    fn a_removed_address_leaves_the_table() {
        let address = 0x7000_0000_1230usize;
        assert!(insert(address, 100, NO_SITE, true).is_some());
        assert_ne!(FILTER[filter_bucket(address)].load(Relaxed), 0);
        remove(address, true);
        let start = table_slot(address);
        assert!((0..PROBES)
            .all(|k| TABLE[(start + k) & (TABLE_SIZE - 1)].address.load(Relaxed) != address));
    }
}
