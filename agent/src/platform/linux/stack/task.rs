//! Which tokio task a thread is polling, read by the capture's signal
//! handler on the thread itself.

/// The id of the tokio task this thread is polling, 0 for none: a read of
/// tokio's thread-local context (no lock, no allocation once the thread has
/// entered a runtime, which the caller of
/// [`capture_with_task`](super::capture_with_task) vouches for).
pub(super) fn polled_task() -> u64 {
    use std::hash::{Hash, Hasher};
    /// Keeps the one integer an id hashes as.
    struct Keep(u64);
    impl Hasher for Keep {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n;
        }
    }
    tokio::task::try_id().map_or(0, |id| {
        let mut keep = Keep(0);
        id.hash(&mut keep);
        // Ids start at 1; never 0, which means none.
        keep.finish().max(1)
    })
}
