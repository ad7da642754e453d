//! An instance's stall log: the latest events by id, bounded in count and
//! bytes, oldest dropped first.

use super::*;

/// Stalls kept per instance; the oldest go first.
pub const STALLS_PER_INSTANCE: usize = 128;

/// Estimated bytes of stalls kept per instance; the oldest go first (at
/// least the newest stall is kept, and it is bounded by [`bounds`]).
pub const STALL_BYTES_PER_INSTANCE: u64 = 2 * 1024 * 1024;

/// An instance's recent stalls and its running totals.
#[derive(Debug, Default)]
pub(super) struct Stalls {
    pub(super) recent: VecDeque<StallEvent>,
    /// Stalls seen (each counted once, when first reported).
    pub(super) total: u64,
    /// Time in finished stalls, µs.
    pub(super) finished_us: u64,
    pub(super) bytes: u64,
}

impl Stalls {
    /// Adds a new stall or updates a known one (same id).
    pub(super) fn record(&mut self, event: &StallEvent) {
        match self.recent.iter_mut().find(|e| e.id == event.id) {
            Some(known) => {
                if known.ongoing && !event.ongoing {
                    self.finished_us += event.duration_us;
                }
                self.bytes = self.bytes - stall_bytes(known) + stall_bytes(event);
                *known = event.clone();
            }
            None => {
                self.total += 1;
                if !event.ongoing {
                    self.finished_us += event.duration_us;
                }
                if self.recent.len() >= STALLS_PER_INSTANCE {
                    self.drop_oldest();
                }
                self.bytes += stall_bytes(event);
                self.recent.push_back(event.clone());
            }
        }
        while self.bytes > STALL_BYTES_PER_INSTANCE && self.recent.len() > 1 {
            self.drop_oldest();
        }
    }

    /// Forgets the oldest stalls until `bytes` are freed or none is left;
    /// the bytes freed.
    pub(super) fn shed(&mut self, bytes: u64) -> u64 {
        let before = self.bytes;
        while before - self.bytes < bytes && !self.recent.is_empty() {
            self.drop_oldest();
        }
        before - self.bytes
    }

    /// Forgets the oldest stall kept (its totals stay).
    pub(super) fn drop_oldest(&mut self) {
        if let Some(old) = self.recent.pop_front() {
            self.bytes -= stall_bytes(&old);
        }
    }
}

/// Estimated heap bytes of a stall event.
pub(super) fn stall_bytes(e: &StallEvent) -> u64 {
    let frames: usize = e
        .stacks
        .iter()
        .flat_map(|s| &s.frames)
        .map(|f| f.len() + 24)
        .sum();
    (std::mem::size_of::<StallEvent>()
        + frames
        + e.blocking_function.as_ref().map_or(0, String::len)
        + e.span.as_ref().map_or(0, String::len)) as u64
}
