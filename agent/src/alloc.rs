//! Heap accounting: a counting wrapper for any global allocator, and what the
//! C allocator holds from the OS.
//!
//! [`Counting`] keeps its counters in cache-line-padded shards, one per thread
//! slot, so the allocation hot path touches only memory its own thread owns:
//! no shared atomic read-modify-write, no contention between threads. The
//! sampler sums the shards once per interval.
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

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Number of counter shards; threads beyond this share shards (still correct,
/// only less contention-free).
const SHARDS: usize = 64;
const NO_SLOT: usize = usize::MAX;

/// One thread slot's counters, padded to its own cache lines (128 bytes covers
/// adjacent-line prefetching on x86_64).
#[repr(align(128))]
struct Shard {
    allocations: AtomicU64,
    allocated_bytes: AtomicU64,
    freed_bytes: AtomicU64,
}

impl Shard {
    const fn new() -> Self {
        Shard {
            allocations: AtomicU64::new(0),
            allocated_bytes: AtomicU64::new(0),
            freed_bytes: AtomicU64::new(0),
        }
    }
}

static TABLE: [Shard; SHARDS] = [const { Shard::new() }; SHARDS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    // `const` and without a destructor: reading it never allocates (which would
    // recurse into the allocator) and works during thread teardown.
    static SLOT: Cell<usize> = const { Cell::new(NO_SLOT) };
}

#[inline]
fn shard() -> &'static Shard {
    let index = SLOT
        .try_with(|slot| {
            let current = slot.get();
            if current != NO_SLOT {
                return current;
            }
            // Cold path, once per thread: the only shared read-modify-write.
            let assigned = NEXT_SLOT.fetch_add(1, Relaxed) % SHARDS;
            INSTALLED.store(true, Relaxed);
            slot.set(assigned);
            assigned
        })
        .unwrap_or(0);
    &TABLE[index]
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

// SAFETY: every method forwards to `inner` with the caller's arguments unchanged,
// so `inner`'s guarantees carry over; the counting only touches static atomics
// and a `const` thread-local, neither of which allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            record_alloc(layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            record_alloc(layout.size());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` was allocated by `inner` via `alloc`.
        unsafe { self.inner.dealloc(ptr, layout) };
        record_free(layout.size());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // A move to a new block: the old size is freed, the new one allocated.
            let shard = shard();
            add(&shard.allocations, 1);
            add(&shard.allocated_bytes, new_size as u64);
            add(&shard.freed_bytes, layout.size() as u64);
        }
        new
    }
}

#[inline]
fn record_alloc(size: usize) {
    let shard = shard();
    add(&shard.allocations, 1);
    add(&shard.allocated_bytes, size as u64);
}

#[inline]
fn record_free(size: usize) {
    add(&shard().freed_bytes, size as u64);
}

#[inline]
fn add(counter: &AtomicU64, n: u64) {
    // A relaxed fetch_add on a line this thread owns: no contention. Shards can be
    // shared once there are more threads than shards, so a plain load + store
    // would lose counts there.
    counter.fetch_add(n, Relaxed);
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
/// by the allocations in flight while it is read.
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
    for shard in &TABLE {
        total.allocations += shard.allocations.load(Relaxed);
        total.allocated_bytes += shard.allocated_bytes.load(Relaxed);
        total.freed_bytes += shard.freed_bytes.load(Relaxed);
    }
    total.live_bytes = total.allocated_bytes.saturating_sub(total.freed_bytes);
    Some(total)
}

/// Bytes the C allocator (glibc malloc) holds from the OS: its main arena plus
/// its mmapped blocks. `None` where `mallinfo2` is unavailable.
pub fn c_allocator_held_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` takes no arguments, returns a struct by value and is
        // thread-safe (it takes the arena locks itself). glibc ≥ 2.33 provides it.
        let info = unsafe { libc::mallinfo2() };
        Some((info.arena + info.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
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
    fn c_allocator_held_bytes_is_reported_on_glibc() {
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(c_allocator_held_bytes().expect("glibc") > 0);
        }
    }
}
