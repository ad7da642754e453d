//! Which tokio task a thread is polling, and whether it is still in the
//! poll an earlier capture saw: read by the capture's signal handler on the
//! thread itself.

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

/// Whether a capture found its thread still in the poll an earlier capture
/// marked: the mark is the poll's coop budget, spent to nothing.
///
/// tokio gives every poll of a task a fresh budget (128 units) and takes
/// one for each operation on a tokio resource; a poll whose budget is spent
/// has its next such operation return `Pending`. A thread found with budget
/// left is in a poll no capture marked yet (`New`): the capture spends it.
/// One found with none is still in the poll marked then (`Same`), or in a
/// poll that spent its budget by itself, which is as near its end as a poll
/// gets. Between two polls of one task, even one that only yields, the
/// budget is fresh again: this is what tells a task polled again and again
/// from one long poll on stable tokio, whose worker counters move only
/// every ~61 polls.
///
/// Spending the budget is what a poll with 128 resource operations does;
/// the poll's next operation yields, as tokio's cooperative scheduling
/// makes it do anyway. Only threads suspected of a stall are marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PollMark {
    /// Not asked, or not knowable: an unconstrained budget (a poll inside
    /// `tokio::task::unconstrained`), or a tokio_unstable build (there,
    /// spending the budget's last unit counts a forced yield in tokio's
    /// metrics through a `RefCell` a signal handler must not touch).
    Unknown,
    /// A poll no capture had marked; marked now.
    New,
    /// The poll an earlier capture marked (or one out of budget).
    Same,
}

impl PollMark {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            PollMark::Unknown => 0,
            PollMark::New => 1,
            PollMark::Same => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> PollMark {
        match v {
            1 => PollMark::New,
            2 => PollMark::Same,
            _ => PollMark::Unknown,
        }
    }
}

/// Marks the poll this thread is in by spending its coop budget (see
/// [`PollMark`]). Signal-safe on a thread that has entered a runtime: it
/// reads and writes one `Cell` in tokio's thread-local context, and never
/// asks for budget that is not there (which would defer a waker, and
/// allocate).
#[cfg(not(tokio_unstable))]
pub(super) fn mark_poll() -> PollMark {
    use std::task::{Context, Poll, Waker};
    use tokio::task::coop;
    if !coop::has_budget_remaining() {
        return PollMark::Same;
    }
    let mut cx = Context::from_waker(Waker::noop());
    // A budget is at most 255 units; an unconstrained one never runs out.
    for _ in 0..=u8::MAX {
        if !coop::has_budget_remaining() {
            return PollMark::New;
        }
        match coop::poll_proceed(&mut cx) {
            Poll::Ready(spent) => spent.made_progress(),
            // Unreachable: there was budget just above, and nothing else
            // runs on this thread while its signal handler does.
            Poll::Pending => return PollMark::New,
        }
    }
    PollMark::Unknown
}

/// See [`PollMark::Unknown`]: a tokio_unstable build does not mark.
#[cfg(tokio_unstable)]
pub(super) fn mark_poll() -> PollMark {
    PollMark::Unknown
}
