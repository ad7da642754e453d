//! Heap accounting: a counting wrapper for any global allocator, and what the
//! C allocator holds from the OS.
//!
//! [`Counting`] keeps its counters in cache-line-padded shards. A thread claims
//! a shard of its own on its first allocation and then updates it with plain
//! loads and stores: no locked instruction and no contention on the hot path.
//! The sampler sums the shards once per interval and hands the shards of
//! exited threads back for reuse ([`reclaim_exited_threads`]). Should every
//! shard be taken, further threads spread over a few shared overflow shards
//! updated with atomic adds (correct, a little slower).
//!
//! ```
//! use lagscope::alloc::Counting;
//! use std::alloc::System;
//!
//! #[global_allocator]
//! static GLOBAL: Counting<System> = Counting::new(System);
//!
//! let v = vec![0u8; 1 << 20];
//! let stats = lagscope::alloc::stats().expect("Counting is the global allocator");
//! assert!(stats.live_bytes >= 1 << 20);
//! drop(v);
//! ```
#![allow(unsafe_code)]

pub mod heap;
mod region;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

/// Shards owned by one thread each.
const SHARDS: usize = 256;
/// Shared shards, used once every owned shard is taken (indices `SHARDS..`).
const OVERFLOW_SHARDS: usize = 16;

/// One thread's counters, padded to its own cache lines (128 bytes covers
/// adjacent-line prefetching on x86_64).
#[repr(align(128))]
struct Shard {
    /// OS thread id of the owner, 0 while free.
    owner: AtomicU32,
    allocations: AtomicU64,
    allocated_bytes: AtomicU64,
    freed_bytes: AtomicU64,
}

impl Shard {
    const fn new() -> Self {
        Shard {
            owner: AtomicU32::new(0),
            allocations: AtomicU64::new(0),
            allocated_bytes: AtomicU64::new(0),
            freed_bytes: AtomicU64::new(0),
        }
    }

    fn totals(&self) -> [u64; 3] {
        [
            self.allocations.load(Relaxed),
            self.allocated_bytes.load(Relaxed),
            self.freed_bytes.load(Relaxed),
        ]
    }
}

static TABLE: [Shard; SHARDS + OVERFLOW_SHARDS] =
    [const { Shard::new() }; SHARDS + OVERFLOW_SHARDS];
/// Counts of shards whose threads exited, folded in by `reclaim_exited_threads`.
static RETIRED: Shard = Shard::new();
/// Odd while a reclaim moves counts from a shard to `RETIRED`, so `stats`
/// (a seqlock reader) never sums a half-moved shard.
static MOVE_EPOCH: AtomicU64 = AtomicU64::new(0);
/// Held by the one reclaim allowed at a time (two would move a shard twice).
static RECLAIMING: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// Whether the allocator `Counting` wraps is `std::alloc::System` (C malloc),
/// so Rust's heap is part of what malloc reports in use.
static INNER_IS_SYSTEM: AtomicBool = AtomicBool::new(false);

thread_local! {
    // `const` and without a destructor: reading it never allocates (which would
    // recurse into the allocator) and works during thread teardown.
    /// The address of this thread's shard, with [`SHARED`] set if it is an
    /// overflow shard; 0 until the thread's first allocation claims one. An
    /// address rather than an index: no bounds check and no load of the
    /// table's address on every operation.
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Tag of an overflow shard's address (shards are 128-byte aligned).
const SHARED: usize = 1;

/// The tagged address of `TABLE[index]` (the last shard if out of range).
fn tagged(index: usize) -> usize {
    let last = SHARDS + OVERFLOW_SHARDS - 1;
    let address = &TABLE[index.min(last)] as *const Shard as usize;
    if index < SHARDS {
        address
    } else {
        address | SHARED
    }
}

/// Cold path, once per thread: take a free shard, or a shared one.
#[cold]
fn claim<A>() -> usize {
    INSTALLED.store(true, Relaxed);
    INNER_IS_SYSTEM.store(
        std::any::type_name::<A>() == std::any::type_name::<System>(),
        Relaxed,
    );
    let Some(tid) = current_tid() else {
        return SHARDS;
    };
    TABLE[..SHARDS]
        .iter()
        .position(|s| s.owner.compare_exchange(0, tid, Acquire, Relaxed).is_ok())
        .unwrap_or(SHARDS + tid as usize % OVERFLOW_SHARDS)
}

fn current_tid() -> Option<u32> {
    u32::try_from(crate::platform::current_tid())
        .ok()
        .filter(|&t| t != 0)
}

/// The calling thread's shard, and whether it owns it (or shares an overflow one).
#[inline]
fn my_shard<A>() -> (&'static Shard, bool) {
    let tagged_address = SHARD
        .try_with(|cell| {
            let current = cell.get();
            if current != 0 {
                return current;
            }
            let claimed = tagged(claim::<A>());
            cell.set(claimed);
            claimed
        })
        .unwrap_or_else(|_| tagged(SHARDS));
    let shard = (tagged_address & !SHARED) as *const Shard;
    // SAFETY: every value `SHARD` holds comes from `tagged`, the address of
    // an element of the static `TABLE` with at most the tag bit set (the
    // shards' 128-byte alignment leaves it free): untagged, a `&'static Shard`.
    (unsafe { &*shard }, tagged_address & SHARED == 0)
}

#[inline]
fn add(counter: &AtomicU64, owned: bool, n: u64) {
    if owned {
        // Only the owning thread writes an owned shard: a plain load + store
        // cannot lose an update and compiles to ordinary moves.
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    } else {
        counter.fetch_add(n, Relaxed);
    }
}

/// Hands the shards of threads that have exited back for reuse, keeping their
/// counts. The agent's sampler calls this once per interval; threads that come
/// and go (a blocking pool, say) then never run out of owned shards.
///
/// Linux only (a thread is gone when `/proc/self/task/<tid>` is); elsewhere, and
/// when `/proc` is not mounted, it does nothing.
pub fn reclaim_exited_threads() {
    let alive = |tid: u32| std::path::Path::new(&format!("/proc/self/task/{tid}")).exists();
    match current_tid() {
        Some(me) if alive(me) => {}
        _ => return,
    }
    if RECLAIMING.swap(true, Acquire) {
        return;
    }
    for shard in &TABLE[..SHARDS] {
        let owner = shard.owner.load(Acquire);
        if owner == 0 || alive(owner) {
            continue;
        }
        // The owner has exited, so nothing writes this shard any more.
        MOVE_EPOCH.fetch_add(1, AcqRel);
        let [allocations, allocated, freed] = shard.totals();
        RETIRED.allocations.fetch_add(allocations, Relaxed);
        RETIRED.allocated_bytes.fetch_add(allocated, Relaxed);
        RETIRED.freed_bytes.fetch_add(freed, Relaxed);
        shard.allocations.store(0, Relaxed);
        shard.allocated_bytes.store(0, Relaxed);
        shard.freed_bytes.store(0, Relaxed);
        MOVE_EPOCH.fetch_add(1, Release);
        shard.owner.store(0, Release);
    }
    RECLAIMING.store(false, Release);
}

/// A global allocator that counts allocations and live bytes, then delegates to `A`.
///
/// Install it with `#[global_allocator]` (see the [module docs](self)). Without
/// it, the heap fields of [`crate::MemorySample`] are `None`.
#[derive(Debug, Default)]
pub struct Counting<A> {
    inner: A,
}

impl<A> Counting<A> {
    /// Wraps `inner`.
    pub const fn new(inner: A) -> Self {
        Counting { inner }
    }
}

impl<A: GlobalAlloc> Counting<A> {
    /// An allocation that crossed its thread's sampling interval: sampled
    /// (served from the reserved range where it fits), or only counted.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`] (or `alloc_zeroed` if `zeroed`).
    #[cold]
    #[inline(never)]
    unsafe fn alloc_sampled(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        let sample = heap::Sample::begin(layout.size());
        let slot = match sample {
            Some(_) => region::take(layout.size(), layout.align()),
            None => None,
        };
        let ptr = match slot {
            Some(ptr) => {
                if zeroed {
                    // SAFETY: `take` handed out a slot of at least `size`
                    // bytes, aligned to `align`, owned by this block alone.
                    unsafe { ptr.write_bytes(0, layout.size()) };
                }
                ptr
            }
            // SAFETY: forwarded unchanged; the caller upholds the contract.
            None if zeroed => unsafe { self.inner.alloc_zeroed(layout) },
            // SAFETY: as above.
            None => unsafe { self.inner.alloc(layout) },
        };
        if !ptr.is_null() {
            record_alloc::<A>(layout.size());
            if let Some(sample) = sample {
                sample.record(ptr, layout.size(), slot.is_some());
            }
        }
        ptr
    }

    /// A block of the reserved range going back.
    #[cold]
    #[inline(never)]
    fn dealloc_sampled(&self, ptr: *mut u8) {
        // Out of the live samples before the slot can be handed out again.
        heap::freed_sampled(ptr);
        region::release(ptr);
    }

    /// A `realloc` of a block of the reserved range, or one that crossed its
    /// thread's sampling interval (`due`): a new block, the bytes copied, the
    /// old block freed.
    ///
    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    #[cold]
    #[inline(never)]
    unsafe fn realloc_moved(
        &self,
        ptr: *mut u8,
        layout: Layout,
        new_size: usize,
        due: bool,
    ) -> *mut u8 {
        // SAFETY: `realloc`'s contract: `new_size` is non-zero and, rounded up
        // to `layout.align()`, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = if due {
            // SAFETY: `new_layout` is a valid non-zero layout (above).
            unsafe { self.alloc_sampled(new_layout, false) }
        } else {
            // SAFETY: as above.
            let new = unsafe { self.inner.alloc(new_layout) };
            if !new.is_null() {
                record_alloc::<A>(new_size);
            }
            new
        };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` is live, allocated by this allocator with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

// SAFETY: every block comes from `inner`, forwarded with the caller's
// arguments unchanged, or from a slot of the reserved range (`region`) that
// fits its size and alignment and is owned by it alone until freed; frees
// and reallocs of a range block never reach `inner`. The counting only
// touches static atomics and `const` thread-locals, none of which allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if heap::due(layout.size()) {
            // SAFETY: the caller upholds `alloc`'s contract.
            return unsafe { self.alloc_sampled(layout, false) };
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            record_alloc::<A>(layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if heap::due(layout.size()) {
            // SAFETY: the caller upholds `alloc_zeroed`'s contract.
            return unsafe { self.alloc_sampled(layout, true) };
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record_alloc::<A>(layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if region::contains(ptr) {
            self.dealloc_sampled(ptr);
        } else {
            // Before the block goes back: once it has, another thread may be
            // handed the same address and sample it.
            if heap::filtered(layout.size()) {
                heap::freed(ptr);
            }
            // SAFETY: forwarded unchanged; `ptr` was allocated by `inner`.
            unsafe { self.inner.dealloc(ptr, layout) };
        }
        record_free::<A>(layout.size());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let due = heap::due(new_size);
        if due || region::contains(ptr) {
            // SAFETY: the caller upholds `realloc`'s contract.
            return unsafe { self.realloc_moved(ptr, layout, new_size, due) };
        }
        if heap::filtered(layout.size()) {
            heap::freed(ptr);
        }
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // A move to a new block: the old size is freed, the new one allocated.
            let (shard, owned) = my_shard::<A>();
            add(&shard.allocations, owned, 1);
            add(&shard.allocated_bytes, owned, new_size as u64);
            add(&shard.freed_bytes, owned, layout.size() as u64);
        }
        new
    }
}

#[inline]
fn record_alloc<A>(size: usize) {
    let (shard, owned) = my_shard::<A>();
    add(&shard.allocations, owned, 1);
    add(&shard.allocated_bytes, owned, size as u64);
}

#[inline]
fn record_free<A>(size: usize) {
    let (shard, owned) = my_shard::<A>();
    add(&shard.freed_bytes, owned, size as u64);
}

/// Totals of the counting allocator since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocStats {
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// Allocations made (a `realloc` counts as one).
    pub allocations: u64,
    /// Bytes allocated in total.
    pub allocated_bytes: u64,
    /// Bytes freed in total.
    pub freed_bytes: u64,
}

/// Sums the shards. `None` if [`Counting`] is not the global allocator (it has
/// never counted an allocation).
///
/// The sum is not an atomic snapshot: under concurrent allocation it can be off
/// by the allocations in flight while it is read. Counts being moved by
/// [`reclaim_exited_threads`] are never missed or counted twice.
pub fn stats() -> Option<AllocStats> {
    if !INSTALLED.load(Relaxed) {
        return None;
    }
    let mut total = AllocStats {
        live_bytes: 0,
        allocations: 0,
        allocated_bytes: 0,
        freed_bytes: 0,
    };
    // Seqlock read: retry if a reclaim moved counts while we were summing.
    loop {
        let epoch = MOVE_EPOCH.load(Acquire);
        if epoch % 2 == 1 {
            std::hint::spin_loop();
            continue;
        }
        total.allocations = 0;
        total.allocated_bytes = 0;
        total.freed_bytes = 0;
        for shard in TABLE.iter().chain(std::iter::once(&RETIRED)) {
            let [allocations, allocated, freed] = shard.totals();
            total.allocations += allocations;
            total.allocated_bytes += allocated;
            total.freed_bytes += freed;
        }
        std::sync::atomic::fence(Acquire);
        if MOVE_EPOCH.load(Relaxed) == epoch {
            break;
        }
    }
    total.live_bytes = total.allocated_bytes.saturating_sub(total.freed_bytes);
    Some(total)
}

/// Bytes the C allocator (glibc malloc) holds from the OS: its main arena plus
/// its mmapped blocks. `None` where `mallinfo2` is unavailable.
pub fn c_allocator_held_bytes() -> Option<u64> {
    crate::platform::c_allocator_held_bytes()
}

/// Bytes the C allocator (glibc malloc) has handed out and not had back,
/// Rust's included when [`Counting`] wraps `System`. `None` where
/// `mallinfo2` is unavailable.
pub fn c_allocator_in_use_bytes() -> Option<u64> {
    crate::platform::c_allocator_in_use_bytes()
}

/// Bytes C code holds through malloc: what malloc has handed out, less the
/// Rust heap when the Rust allocator is malloc too (`Counting<System>`).
/// `None` without [`Counting`] (Rust's and C's allocations cannot be told
/// apart) or off glibc.
///
/// Malloc's per-block overhead for Rust's allocations (8–16 bytes a block)
/// counts here too, so a Rust heap of many small blocks adds to it.
pub fn c_heap_bytes() -> Option<u64> {
    c_heap_bytes_beside(stats()?.live_bytes)
}

/// [`c_heap_bytes`] for a Rust heap of `rust_live` bytes already read.
pub(crate) fn c_heap_bytes_beside(rust_live: u64) -> Option<u64> {
    Some(c_heap_bytes_of(c_allocator_in_use_bytes()?, rust_live))
}

/// The C heap from malloc's in-use bytes and the Rust heap, both read.
pub(crate) fn c_heap_bytes_of(malloc_in_use: u64, rust_live: u64) -> u64 {
    if INNER_IS_SYSTEM.load(Relaxed) {
        malloc_in_use.saturating_sub(rust_live)
    } else {
        malloc_in_use
    }
}

/// Gives memory the C allocator holds but no longer uses back to the OS
/// (glibc `malloc_trim`; a no-op elsewhere). A long-running server calls it
/// now and then so that a burst of allocations (a connection flood) does not
/// stay in its RSS.
///
/// ```
/// lagscope::alloc::release_free_heap();
/// ```
pub fn release_free_heap() {
    crate::platform::release_free_heap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    // Unit tests of this crate run with the counting allocator installed.
    #[global_allocator]
    static GLOBAL: Counting<System> = Counting::new(System);

    #[test]
    fn counts_allocations_made_on_many_threads() {
        let before = stats().expect("installed");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for i in 0..1000 {
                        std::hint::black_box(vec![0u8; 100 + i % 7]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("allocating thread");
        }
        let after = stats().expect("installed");
        assert!(after.allocations - before.allocations >= 8 * 1000);
        assert!(after.allocated_bytes - before.allocated_bytes >= 8 * 1000 * 100);
    }

    #[test]
    fn realloc_moves_the_live_size() {
        let before = stats().expect("installed");
        let mut v: Vec<u8> = Vec::with_capacity(16);
        v.reserve_exact(1 << 20);
        let grown = stats().expect("installed");
        assert!(grown.allocated_bytes - before.allocated_bytes >= 1 << 20);
        drop(v);
        let after = stats().expect("installed");
        assert!(after.freed_bytes - before.freed_bytes >= 1 << 20);
    }

    #[test]
    fn zeroed_allocations_are_zero_and_counted() {
        let before = stats().expect("installed");
        let v = vec![0u64; 4096];
        assert!(v.iter().all(|&x| x == 0));
        let after = stats().expect("installed");
        assert!(after.allocated_bytes - before.allocated_bytes >= 4096 * 8);
    }

    #[test]
    fn shards_of_exited_threads_are_reused_and_their_counts_kept() {
        let spawn_and_count = || {
            std::thread::spawn(|| {
                std::hint::black_box(vec![0u8; 1000]);
                let address = SHARD.with(Cell::get) & !SHARED;
                let index = (address - TABLE.as_ptr() as usize) / std::mem::size_of::<Shard>();
                (index, current_tid())
            })
            .join()
            .expect("thread")
        };
        let (first, tid) = spawn_and_count();
        assert!(first < SHARDS, "an owned shard, not the overflow one");
        let before = stats().expect("installed");
        // A joined thread can linger in /proc/self/task for a moment after
        // `join` returns; the sampler simply reclaims it on a later interval.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            reclaim_exited_threads();
            if Some(TABLE[first].owner.load(Relaxed)) != tid {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "shard never freed for reuse"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let after = stats().expect("installed");
        // Folding into RETIRED keeps the totals (other tests may allocate meanwhile).
        assert!(after.allocated_bytes >= before.allocated_bytes);
        // Thread churn far beyond the shard count never exhausts the table.
        for _ in 0..SHARDS + 10 {
            spawn_and_count();
            reclaim_exited_threads();
        }
        assert!(spawn_and_count().0 < SHARDS);
    }

    #[test]
    fn c_allocator_held_bytes_is_reported_on_glibc() {
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(c_allocator_held_bytes().expect("glibc") > 0);
        }
    }
}
