//! Memory in three classes: the Rust heap (from [`crate::alloc::Counting`]),
//! the C heap (what malloc handed out to code other than Rust), and mapped /
//! other memory (RSS the C allocator does not hold: mmap, stacks, code); plus
//! RSS and what the C allocator holds from the OS.

use std::time::{Duration, Instant};

use crate::alloc::{self, AllocStats};
use crate::platform::{self, procfs, CAllocator};
use crate::sample::MemorySample;

/// The C allocator's figures are read at most this often.
const C_ALLOCATOR_EVERY: Duration = Duration::from_secs(1);
/// …and less often when reading them is slow: glibc's `mallinfo2` walks every
/// free chunk holding each arena's lock (the host's `malloc` waits on it),
/// which on a fragmented heap takes milliseconds. The gap is at least this
/// many times the last read's cost, so reading stays under 0.1 % of the time.
const C_ALLOCATOR_COST_FACTOR: u32 = 1000;

pub(crate) struct MemorySampler {
    previous: Option<AllocStats>,
    peak: u64,
    /// The last reading of the C allocator, and when the next is due.
    c_allocator: Option<CAllocator>,
    next_c_read: Instant,
}

impl MemorySampler {
    pub(crate) fn new() -> Self {
        MemorySampler {
            previous: alloc::stats(),
            peak: 0,
            c_allocator: None,
            next_c_read: Instant::now(),
        }
    }

    /// The C allocator's figures: read anew when due, else the last reading.
    fn c_allocator(&mut self) -> Option<CAllocator> {
        let now = Instant::now();
        if now >= self.next_c_read {
            self.c_allocator = platform::c_allocator();
            let took = now.elapsed();
            self.next_c_read = now + C_ALLOCATOR_EVERY.max(took * C_ALLOCATOR_COST_FACTOR);
        }
        self.c_allocator
    }

    pub(crate) fn sample(&mut self, interval: Duration) -> MemorySample {
        let heap = alloc::stats();
        if heap.is_some() {
            alloc::reclaim_exited_threads();
        }
        let delta = heap.map(|cur| {
            let prev = self.previous.unwrap_or(AllocStats {
                live_bytes: 0,
                allocations: 0,
                allocated_bytes: 0,
                freed_bytes: 0,
            });
            (
                cur.allocations.saturating_sub(prev.allocations),
                cur.allocated_bytes.saturating_sub(prev.allocated_bytes),
            )
        });
        if let Some(h) = heap {
            self.peak = self.peak.max(h.live_bytes);
        }
        self.previous = heap;
        let rss = procfs::rss_bytes();
        let c = self.c_allocator();
        let held = c.map(|c| c.held);
        {
            let mut memory_sample = MemorySample::default();
            memory_sample.heap_live_bytes = heap.map(|h| h.live_bytes);
            memory_sample.heap_peak_bytes = heap.map(|_| self.peak);
            memory_sample.allocations = delta.map(|d| d.0);
            memory_sample.allocated_bytes = delta.map(|d| d.1);
            memory_sample.alloc_rate = delta.map(|d| d.1 as f64 / interval.as_secs_f64().max(1e-9));
            memory_sample.rss_bytes = rss;
            memory_sample.allocator_held_bytes = held;
            memory_sample.c_heap_bytes = heap
                .zip(c)
                .map(|(h, c)| alloc::c_heap_bytes_of(c.in_use, h.live_bytes));
            memory_sample.external_bytes = external_bytes(rss, held);
            memory_sample
        }
    }
}

/// RSS not accounted for by the C allocator (through which the Rust allocator
/// gets its memory by default).
pub(crate) fn external_bytes(rss: Option<u64>, allocator_held: Option<u64>) -> Option<u64> {
    Some(rss?.saturating_sub(allocator_held?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_is_rss_minus_allocator_held() {
        assert_eq!(external_bytes(Some(100), Some(30)), Some(70));
        assert_eq!(external_bytes(Some(10), Some(30)), Some(0));
        assert_eq!(external_bytes(None, Some(30)), None);
        assert_eq!(external_bytes(Some(10), None), None);
    }

    #[test]
    fn heap_growth_shows_in_live_bytes_and_rate() {
        let mut m = MemorySampler::new();
        let keep = vec![1u8; 8 << 20];
        let s = m.sample(Duration::from_secs(1));
        assert!(s.heap_live_bytes.expect("counting allocator in tests") >= 8 << 20);
        assert!(s.allocated_bytes.expect("counted") >= 8 << 20);
        assert!(s.alloc_rate.expect("rate") >= (8 << 20) as f64);
        assert!(s.rss_bytes.expect("linux") >= 8 << 20);
        drop(keep);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn malloc_from_c_shows_in_the_c_heap_not_the_rust_heap() {
        let mut m = MemorySampler::new();
        let before = m.sample(Duration::from_secs(1));
        // What a C library does: malloc outside the Rust allocator.
        let c = crate::platform::test_support::c_malloc_touched(16 << 20);
        // Within a second the last reading of malloc's figures stands.
        let cached = m.sample(Duration::from_secs(1));
        assert_eq!(cached.allocator_held_bytes, before.allocator_held_bytes);
        m.next_c_read = Instant::now();
        let after = m.sample(Duration::from_secs(1));
        let grew = |f: fn(&MemorySample) -> Option<u64>| {
            f(&after).unwrap_or(0) as i64 - f(&before).unwrap_or(0) as i64
        };
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(
                grew(|s| s.c_heap_bytes) >= 15 << 20,
                "{before:?} → {after:?}"
            );
            assert!(
                grew(|s| s.heap_live_bytes) < 4 << 20,
                "{before:?} → {after:?}"
            );
        }
        drop(c);
    }
}
