//! The one protocol by which a writer that may not wait — a signal handler,
//! or a thread inside the allocator — hands data to one reader through
//! static memory, without a lock.
//!
//! Each slot of data carries a [`Slot`]: a state word that says who may
//! touch the data now. Every hand-over is one atomic operation on it:
//!
//! ```text
//!            claim (writer, CAS)            publish (writer, Release)
//!   FREE ─────────────────────────▶ WRITING ─────────────────────────▶ READY
//!    ▲ │                             │ ▲ │                               │
//!    │ │ arm (reader)       abandon  │ │ │ give back (re-armed for another)
//!    │ ▼                  (writer)   │ │ ▼                               │
//!    │ ARMED ─ answer_if (its writer, CAS) ┘ ARMED                       │
//!    │   │                           │                                   │
//!    │   └ disarm (reader, CAS) ─────┤                                   │
//!    └───────────────────────────────┴──── release (reader, Release) ◀───┘
//! ```
//!
//! Invariants, which the model test at the bottom checks over every
//! interleaving of two writers and a reader:
//! 1. Only the writer whose claim or answer won the state moves it out of
//!    `WRITING`, and only that writer touches the data meanwhile.
//! 2. The reader touches the data only while the slot is `READY`, and only
//!    it moves the slot out of `READY`; a writer never claims a `READY`
//!    slot, so a publication is never overwritten before it is read.
//! 3. A reader that armed a slot and gives up ([`Slot::disarm`]) either
//!    finds it still `ARMED` and frees it, or learns that a writer answered:
//!    it then waits for `READY` and releases it; a slot is never left
//!    `ARMED` or `READY` for nobody.
//!
//! Ordering: claiming and answering acquire, publishing and releasing
//! release, so everything a writer wrote is visible to the reader that sees
//! `READY`, and everything the reader read happened before the next writer
//! claims the slot. The data itself is atomics (or an `UnsafeCell` whose
//! owner cites this protocol in its `// SAFETY:` comments).
//!
//! Used by the CPU profiler's sample ring, the heap sampler's raw stacks,
//! the pools of stack copies and the stall watchdog's one capture. Every
//! operation is async-signal-safe: plain atomics on memory the caller owns.

use std::sync::atomic::{AtomicU8, Ordering};

const FREE: u8 = 0;
const ARMED: u8 = 1;
const WRITING: u8 = 2;
const READY: u8 = 3;

/// The state word of one slot of handed-over data (see the module doc).
#[derive(Debug)]
pub(crate) struct Slot {
    state: AtomicU8,
}

/// A writer's hold on a slot: the data is its alone until it publishes
/// (the reader may then read) or drops the hold (the slot goes back to
/// where the writer found it, unwritten).
#[must_use = "dropping the hold gives the slot back unwritten"]
pub(crate) struct Writing<'a> {
    slot: &'a Slot,
    /// The state the writer took the slot from, and gives it back to.
    from: u8,
}

/// The reader's hold on a published slot: the data is its alone until the
/// hold is dropped, which frees the slot for the next writer.
#[must_use = "dropping the hold frees the slot"]
pub(crate) struct Ready<'a> {
    slot: &'a Slot,
}

/// What became of an armed slot the reader gave up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disarmed {
    /// No writer had answered: the slot is free again.
    Freed,
    /// A writer is answering: wait for [`Slot::ready`], then drop that.
    Answering,
}

impl Slot {
    /// A free slot.
    pub(crate) const fn new() -> Self {
        Slot {
            state: AtomicU8::new(FREE),
        }
    }

    /// Writer: takes a free slot. `None` if it is not free.
    pub(crate) fn claim(&self) -> Option<Writing<'_>> {
        self.take(FREE)
    }

    /// Reader: asks for one write (the answer to a signal it is about to
    /// send); false if the slot is not free.
    pub(crate) fn arm(&self) -> bool {
        self.state
            .compare_exchange(FREE, ARMED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Writer: takes a slot a reader armed for it: `mine` says whether the
    /// request (which the reader wrote before arming) is this writer's. A
    /// writer it is not for leaves the slot alone, so it never holds the
    /// slot while the one it is for comes to answer. `mine` is asked again
    /// once the slot is taken (the reader may have re-armed it for another
    /// in between); if the answer changed, the slot is given back armed.
    pub(crate) fn answer_if(&self, mine: impl Fn() -> bool) -> Option<Writing<'_>> {
        if self.state.load(Ordering::Acquire) != ARMED || !mine() {
            return None;
        }
        let hold = self.take(ARMED)?;
        mine().then_some(hold)
    }

    /// Reader: withdraws an armed slot no writer answered yet.
    pub(crate) fn disarm(&self) -> Disarmed {
        match self
            .state
            .compare_exchange(ARMED, FREE, Ordering::AcqRel, Ordering::Relaxed)
        {
            Ok(_) => Disarmed::Freed,
            Err(_) => Disarmed::Answering,
        }
    }

    /// Reader: the published data, if the slot is ready. Only one thread
    /// may read a given slot.
    pub(crate) fn ready(&self) -> Option<Ready<'_>> {
        // `then`, not `then_some`: a hold made and dropped would free it.
        (self.state.load(Ordering::Acquire) == READY).then(|| Ready { slot: self })
    }

    /// Whether the slot is free (for reports and tests).
    pub(crate) fn is_free(&self) -> bool {
        self.state.load(Ordering::Relaxed) == FREE
    }

    fn take(&self, from: u8) -> Option<Writing<'_>> {
        self.state
            .compare_exchange(from, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Writing { slot: self, from })
    }

    /// A slot in a given state, for the model test.
    #[cfg(test)]
    fn with_state(state: u8) -> Self {
        Slot {
            state: AtomicU8::new(state),
        }
    }

    #[cfg(test)]
    fn state(&self) -> u8 {
        self.state.load(Ordering::Relaxed)
    }
}

impl Default for Slot {
    fn default() -> Self {
        Slot::new()
    }
}

impl Writing<'_> {
    /// Hands the data written to the reader.
    pub(crate) fn publish(self) {
        self.slot.state.store(READY, Ordering::Release);
        std::mem::forget(self);
    }
}

impl Drop for Writing<'_> {
    /// Gives the slot back unwritten: free again, or armed again for the
    /// writer it was meant for (an answer the writer declined).
    fn drop(&mut self) {
        self.slot.state.store(self.from, Ordering::Release);
    }
}

impl Drop for Ready<'_> {
    /// Frees the slot once the reader is done with its data.
    fn drop(&mut self) {
        self.slot.state.store(FREE, Ordering::Release);
    }
}

/// Writer: claims the first free slot of `items` (each carrying the `Slot`
/// that `slot` picks out), lowest first, so at low rates only the first few
/// are ever touched (resident). A plain loop: it runs in signal handlers,
/// on small stacks, in debug builds too.
pub(crate) fn claim_first<'a, T>(
    items: &'a [T],
    slot: fn(&'a T) -> &'a Slot,
) -> Option<(usize, Writing<'a>)> {
    let mut i = 0;
    while i < items.len() {
        if let Some(hold) = slot(&items[i]).claim() {
            return Some((i, hold));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_claimed_slot_is_the_writers_until_published_then_the_readers_until_dropped() {
        let slot = Slot::new();
        assert!(slot.ready().is_none());
        let w = slot.claim().expect("a free slot can be claimed");
        assert!(slot.claim().is_none(), "a second writer is refused");
        assert!(
            slot.ready().is_none(),
            "nothing to read while it is written"
        );
        w.publish();
        assert!(slot.claim().is_none(), "a publication is not overwritten");
        let r = slot.ready().expect("published");
        drop(r);
        assert!(slot.is_free());
    }

    #[test]
    fn a_dropped_hold_gives_the_slot_back_where_it_was() {
        let slot = Slot::new();
        drop(slot.claim());
        assert!(slot.is_free());
        assert!(slot.arm());
        assert!(slot.claim().is_none(), "an armed slot waits for its answer");
        assert!(slot.answer_if(|| false).is_none(), "not for this writer");
        let looks = std::cell::Cell::new(0);
        let changed = || {
            looks.set(looks.get() + 1);
            looks.get() == 1
        };
        assert!(slot.answer_if(changed).is_none(), "re-armed for another");
        assert_eq!(slot.disarm(), Disarmed::Freed, "given back: still armed");
    }

    #[test]
    fn claim_first_takes_the_lowest_free_slot() {
        let slots = [Slot::new(), Slot::new(), Slot::new()];
        let itself = |s| s;
        let (i, a) = claim_first(&slots, itself).expect("free");
        let (j, b) = claim_first(&slots, itself).expect("free");
        assert_eq!((i, j), (0, 1));
        drop(a);
        let (k, _c) = claim_first(&slots, itself).expect("free");
        assert_eq!(k, 0);
        b.publish();
        let (_, _d) = claim_first(&slots, itself).expect("slot 2 is free");
        assert!(claim_first(&slots, itself).is_none());
    }

    #[test]
    fn slots_hand_over_whole_writes_between_threads() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        struct Cell {
            slot: Slot,
            a: AtomicUsize,
            b: AtomicUsize,
        }
        let cells: Arc<Vec<Cell>> = Arc::new(
            (0..8)
                .map(|_| Cell {
                    slot: Slot::new(),
                    a: AtomicUsize::new(0),
                    b: AtomicUsize::new(0),
                })
                .collect(),
        );
        let writers: Vec<_> = (1..=3usize)
            .map(|w| {
                let cells = cells.clone();
                std::thread::spawn(move || {
                    let mut written = 0;
                    for n in 0..20_000usize {
                        let v = w << 32 | n;
                        if let Some((i, hold)) = claim_first(&cells, |c| &c.slot) {
                            cells[i].a.store(v, Ordering::Relaxed);
                            cells[i].b.store(v, Ordering::Relaxed);
                            hold.publish();
                            written += 1;
                        }
                    }
                    written
                })
            })
            .collect();
        let mut read = 0;
        let mut done = false;
        while !done {
            done = writers.iter().all(|w| w.is_finished());
            for c in cells.iter() {
                if let Some(_hold) = c.slot.ready() {
                    let (a, b) = (c.a.load(Ordering::Relaxed), c.b.load(Ordering::Relaxed));
                    assert_eq!(a, b, "a torn write was read");
                    read += 1;
                }
            }
        }
        let written: usize = writers.into_iter().map(|w| w.join().expect("writer")).sum();
        for c in cells.iter() {
            if c.slot.ready().is_some() {
                read += 1;
            }
        }
        assert_eq!(read, written, "every publication is read exactly once");
    }

    // The model test: every interleaving of the protocol's steps, each step
    // run on the real `Slot`, for one reader and two writers, checking the
    // invariants of the module doc.

    /// What each actor does next. Writers of the pool kind claim; writers of
    /// the request kind answer if the request is theirs at the first look
    /// and at the second (after taking the slot).
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    enum Step {
        Start,
        Writing,
        Publish,
        Reading,
        Release,
        /// The request reader waits for READY, or gives up.
        Waiting,
        /// It gave up and a writer was answering: wait for READY.
        Draining,
        Done,
    }

    #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    struct World {
        state: u8,
        actors: Vec<Step>,
        /// Who touches the data: `Some(actor)`.
        owner: Option<usize>,
        /// Publications made and read.
        published: u8,
        /// Of which by answering writers.
        answers: u8,
        read: u8,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        PoolWriter,
        AnsweringWriter { first: bool, second: bool },
        PoolReader,
        RequestReader,
    }

    /// Runs one step of `actor`; `None` if it cannot move now.
    fn step(w: &World, kinds: &[Kind], actor: usize) -> Vec<World> {
        let slot = Slot::with_state(w.state);
        let mut out = Vec::new();
        let mut next = |f: &dyn Fn(&mut World, &Slot)| {
            let mut n = w.clone();
            let s = Slot::with_state(w.state);
            f(&mut n, &s);
            n.state = s.state();
            out.push(n);
        };
        match (kinds[actor], w.actors[actor]) {
            (_, Step::Done) => {}
            (Kind::PoolWriter, Step::Start) => next(&|n, s| match s.claim() {
                Some(hold) => {
                    std::mem::forget(hold);
                    n.actors[actor] = Step::Writing;
                }
                None => n.actors[actor] = Step::Done,
            }),
            (Kind::AnsweringWriter { first, second }, Step::Start) => next(&|n, s| {
                let looks = std::cell::Cell::new(0);
                let mine = || {
                    looks.set(looks.get() + 1);
                    if looks.get() == 1 {
                        first
                    } else {
                        second
                    }
                };
                match s.answer_if(mine) {
                    Some(hold) => {
                        std::mem::forget(hold);
                        n.actors[actor] = Step::Writing;
                    }
                    None => n.actors[actor] = Step::Done,
                }
            }),
            (Kind::PoolWriter | Kind::AnsweringWriter { .. }, Step::Writing) => next(&|n, _| {
                assert!(
                    n.owner.is_none(),
                    "{actor} writes while {:?} holds the data",
                    n.owner
                );
                n.owner = Some(actor);
                n.actors[actor] = Step::Publish;
            }),
            (Kind::PoolWriter | Kind::AnsweringWriter { .. }, Step::Publish) => next(&|n, s| {
                assert_eq!(n.owner, Some(actor));
                n.owner = None;
                assert_eq!(s.state(), WRITING, "a writer's hold was taken from it");
                Writing {
                    slot: s,
                    from: FREE,
                }
                .publish();
                n.published += 1;
                assert!(
                    n.published - n.read <= 1,
                    "an unread publication was overwritten"
                );
                if matches!(kinds[actor], Kind::AnsweringWriter { .. }) {
                    n.answers += 1;
                }
                n.actors[actor] = Step::Done;
            }),
            (Kind::PoolReader, Step::Start) => next(&|n, s| match s.ready() {
                Some(hold) => {
                    std::mem::forget(hold);
                    n.actors[actor] = Step::Reading;
                }
                None => n.actors[actor] = Step::Done,
            }),
            (Kind::RequestReader, Step::Start) => next(&|n, s| {
                n.actors[actor] = if s.arm() { Step::Waiting } else { Step::Done };
            }),
            (Kind::RequestReader, Step::Waiting) => {
                // Either it finds the answer or its deadline passes.
                if slot.state() == READY {
                    next(&|n, s| {
                        std::mem::forget(s.ready().expect("ready"));
                        n.actors[actor] = Step::Reading;
                    });
                }
                next(&|n, s| {
                    n.actors[actor] = match s.disarm() {
                        Disarmed::Freed => Step::Done,
                        Disarmed::Answering => Step::Draining,
                    };
                });
            }
            (Kind::RequestReader, Step::Draining) => {
                if slot.state() == READY {
                    next(&|n, s| {
                        std::mem::forget(s.ready().expect("ready"));
                        n.actors[actor] = Step::Reading;
                    });
                } else if slot.state() == ARMED {
                    // The answer was declined: the slot is armed again.
                    next(&|n, _| n.actors[actor] = Step::Waiting);
                }
            }
            (Kind::PoolReader | Kind::RequestReader, Step::Reading) => next(&|n, s| {
                assert!(
                    n.owner.is_none(),
                    "the reader reads while {:?} writes",
                    n.owner
                );
                assert_eq!(s.state(), READY, "read a slot that is not ready");
                n.read += 1;
                n.actors[actor] = Step::Release;
            }),
            (Kind::PoolReader | Kind::RequestReader, Step::Release) => next(&|n, s| {
                drop(Ready { slot: s });
                n.actors[actor] = Step::Done;
            }),
            (kind, step) => unreachable!(
                "no step {step:?} for {}",
                match kind {
                    Kind::PoolWriter => "a pool writer",
                    Kind::AnsweringWriter { .. } => "an answering writer",
                    Kind::PoolReader => "a pool reader",
                    Kind::RequestReader => "a request reader",
                }
            ),
        }
        out
    }

    /// Explores every interleaving of `kinds` from a free slot; returns the
    /// end states (no actor can move).
    fn explore(kinds: &[Kind]) -> Vec<World> {
        let start = World {
            state: FREE,
            actors: vec![Step::Start; kinds.len()],
            owner: None,
            published: 0,
            answers: 0,
            read: 0,
        };
        let mut seen = HashSet::new();
        let mut todo = vec![start];
        let mut ends = Vec::new();
        while let Some(w) = todo.pop() {
            if !seen.insert(w.clone()) {
                continue;
            }
            let moves: Vec<World> = (0..kinds.len()).flat_map(|a| step(&w, kinds, a)).collect();
            if moves.is_empty() {
                ends.push(w);
            }
            todo.extend(moves);
        }
        ends
    }

    #[test]
    fn model_two_pool_writers_and_a_reader_never_share_the_data() {
        let ends = explore(&[Kind::PoolWriter, Kind::PoolWriter, Kind::PoolReader]);
        assert!(!ends.is_empty());
        for end in ends {
            assert!(
                end.actors.iter().all(|s| *s == Step::Done),
                "stuck: {end:?}"
            );
            // Every publication is read, but for one still waiting.
            match end.state {
                FREE => assert_eq!(end.published, end.read, "{end:?}"),
                READY => assert_eq!(end.published, end.read + 1, "{end:?}"),
                other => panic!("left in state {other}: {end:?}"),
            }
        }
    }

    #[test]
    fn model_a_request_is_answered_once_and_never_left_armed() {
        for (first, second) in [(true, true), (false, false), (true, false)] {
            let kinds = [
                Kind::RequestReader,
                Kind::AnsweringWriter { first, second },
                Kind::AnsweringWriter {
                    first: true,
                    second: true,
                },
                Kind::PoolWriter,
            ];
            let ends = explore(&kinds);
            assert!(!ends.is_empty());
            for end in ends {
                assert!(
                    end.actors.iter().all(|s| *s == Step::Done),
                    "stuck: {end:?}"
                );
                assert!(end.answers <= 1, "answered twice: {end:?}");
                assert_eq!(end.answers, end.read, "an answer was lost: {end:?}");
                // Only the pool writer, claiming the slot once the request
                // is over, may leave a publication behind.
                match end.state {
                    FREE => {}
                    READY => assert_eq!(end.published - end.answers, 1, "{end:?}"),
                    other => panic!("left in state {other}: {end:?}"),
                }
            }
        }
    }
}
