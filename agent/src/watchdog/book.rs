//! The stall book: stalls in progress and finished, between the watchdog,
//! which writes them, and the sampler, which ships them.

use super::*;

/// Stalls between the watchdog and the sampler.
#[derive(Default)]
pub(crate) struct StallBook {
    pub(super) ongoing: HashMap<u64, StallEvent>,
    pub(super) finished: VecDeque<StallEvent>,
    /// Stalls seen since start (for tests and the sample's counters).
    pub(super) total: u64,
}

/// Shared handle to the book.
pub(crate) type Book = Arc<Shelf>;

/// The book, and a flag the sampler polls: a stall began or ended, so the
/// news should go out now rather than at the next regular sample.
#[derive(Default)]
pub(crate) struct Shelf {
    pub(super) book: Mutex<StallBook>,
    pub(super) news: AtomicBool,
}

impl Shelf {
    /// Whether a stall began or ended since the last call.
    pub(crate) fn take_news(&self) -> bool {
        self.news.swap(false, Relaxed)
    }
}

pub(super) fn lock(book: &Book) -> MutexGuard<'_, StallBook> {
    book.book.lock().unwrap_or_else(|p| p.into_inner())
}

/// Finished stalls since the last call, then the ongoing ones.
pub(crate) fn take(book: &Book) -> Vec<StallEvent> {
    let mut b = lock(book);
    let mut out: Vec<StallEvent> = b.finished.drain(..).collect();
    let mut ongoing: Vec<StallEvent> = b.ongoing.values().cloned().collect();
    ongoing.sort_by_key(|e| e.id);
    out.extend(ongoing);
    out
}
