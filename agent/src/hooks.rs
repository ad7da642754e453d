//! Exact poll durations from tokio's task poll hooks (`--cfg tokio_unstable`).
//!
//! tokio's builder holds one callback per hook, so installing ours must not
//! silently replace the user's: [`PollHooks::install_with`] installs both, and
//! [`PollHooks::before_poll`] / [`PollHooks::after_poll`] let users who build
//! their own hook closures call ours from inside them.
//!
//! The hot path is two clock reads and a few relaxed stores into a slot that
//! only the polling thread writes.
//!
//! ```
//! let hooks = lagscope::PollHooks::new();
//! let mut builder = tokio::runtime::Builder::new_multi_thread();
//! builder.worker_threads(2).enable_all();
//! hooks.install_with(
//!     &mut builder,
//!     |_meta| { /* the user's own before-poll hook */ },
//!     |_meta| { /* the user's own after-poll hook */ },
//! );
//! let rt = builder.build().unwrap();
//! let agent = lagscope::Agent::builder()
//!     .poll_hooks(lagscope::MAIN_RUNTIME, &hooks)
//!     .start(rt.handle().clone())
//!     .unwrap();
//! rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
//! agent.shutdown();
//! ```

use std::cell::Cell;
use std::panic::Location;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use tokio::runtime::TaskMeta;

use crate::platform::static_ref::AtomicStaticRef;

/// Default duration from which a poll counts as long.
pub const DEFAULT_LONG_POLL_THRESHOLD: Duration = Duration::from_millis(10);

/// Threads tracked per runtime; polls on threads beyond it are not counted
/// (workers are few; `block_in_place` can add more).
const SLOTS: usize = 256;
/// Power-of-two microsecond buckets: bucket `b` holds durations < 2^b µs.
pub(crate) const BUCKETS: usize = 40;
const NO_SLOT: (usize, usize) = (0, usize::MAX);

static NEXT_HOOKS_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    // (hooks id, slot index) of this thread; `const` so the hook never allocates.
    static THREAD_SLOT: Cell<(usize, usize)> = const { Cell::new(NO_SLOT) };
}

/// Task poll hooks that time every poll. Cheap to clone (shared state).
#[derive(Clone)]
pub struct PollHooks {
    state: Arc<State>,
}

impl std::fmt::Debug for PollHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollHooks")
            .field("long_poll_threshold", &self.long_poll_threshold())
            .finish_non_exhaustive()
    }
}

pub(crate) struct State {
    id: usize,
    epoch: Instant,
    long_poll_threshold_ns: u64,
    slots: Box<[Slot]>,
    next_slot: AtomicUsize,
}

/// One thread's counters. Written only by that thread; read by the sampler.
#[repr(align(128))]
pub(crate) struct Slot {
    pub(crate) thread: OnceLock<ThreadId>,
    /// OS thread id of the polling thread (for signalling it), 0 until known.
    pub(crate) os_tid: AtomicI32,
    /// Start and duration of the last long poll (≥ the long-poll threshold),
    /// so a stall's duration is exact even after shorter polls followed it.
    pub(crate) last_long_started_ns: AtomicU64,
    pub(crate) last_long_took_ns: AtomicU64,
    /// Nanoseconds since `epoch` when the current poll started, 0 when not polling.
    pub(crate) poll_started_ns: AtomicU64,
    /// The task being polled (0 before the first poll) and where it was spawned.
    pub(crate) task_id: AtomicU64,
    pub(crate) spawned_at: AtomicStaticRef<Location<'static>>,
    pub(crate) polls: AtomicU64,
    pub(crate) long_polls: AtomicU64,
    /// Longest poll since the sampler last took it (the sampler swaps in 0).
    pub(crate) max_poll_ns: AtomicU64,
    pub(crate) buckets: [AtomicU64; BUCKETS],
}

impl Default for PollHooks {
    fn default() -> Self {
        Self::new()
    }
}

impl PollHooks {
    /// Hooks counting polls of at least [`DEFAULT_LONG_POLL_THRESHOLD`] as long.
    pub fn new() -> Self {
        Self::with_long_poll_threshold(DEFAULT_LONG_POLL_THRESHOLD)
    }

    /// Hooks counting polls of at least `threshold` as long.
    pub fn with_long_poll_threshold(threshold: Duration) -> Self {
        let slots = (0..SLOTS)
            .map(|_| Slot {
                thread: OnceLock::new(),
                os_tid: AtomicI32::new(0),
                last_long_started_ns: AtomicU64::new(0),
                last_long_took_ns: AtomicU64::new(0),
                poll_started_ns: AtomicU64::new(0),
                task_id: AtomicU64::new(0),
                spawned_at: AtomicStaticRef::none(),
                polls: AtomicU64::new(0),
                long_polls: AtomicU64::new(0),
                max_poll_ns: AtomicU64::new(0),
                buckets: [const { AtomicU64::new(0) }; BUCKETS],
            })
            .collect();
        PollHooks {
            state: Arc::new(State {
                id: NEXT_HOOKS_ID.fetch_add(1, Relaxed),
                epoch: Instant::now(),
                long_poll_threshold_ns: u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX),
                slots,
                next_slot: AtomicUsize::new(0),
            }),
        }
    }

    /// The duration from which a poll counts as long.
    pub fn long_poll_threshold(&self) -> Duration {
        Duration::from_nanos(self.state.long_poll_threshold_ns)
    }

    /// Installs the hooks on `builder`, replacing any poll hooks set before.
    /// Use [`install_with`](Self::install_with) to keep your own.
    pub fn install<'b>(
        &self,
        builder: &'b mut tokio::runtime::Builder,
    ) -> &'b mut tokio::runtime::Builder {
        self.install_with(builder, |_| {}, |_| {})
    }

    /// Installs the hooks on `builder` together with the user's own
    /// `before` and `after` poll hooks, which run right after ours start timing
    /// and right before ours stop, so their cost counts as part of the poll.
    pub fn install_with<'b>(
        &self,
        builder: &'b mut tokio::runtime::Builder,
        before: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
        after: impl Fn(&TaskMeta<'_>) + Send + Sync + 'static,
    ) -> &'b mut tokio::runtime::Builder {
        let on_before = self.clone();
        let on_after = self.clone();
        builder
            .on_before_task_poll(move |meta| {
                on_before.before_poll(meta);
                before(meta);
            })
            .on_after_task_poll(move |meta| {
                after(meta);
                on_after.after_poll();
            })
    }

    /// Marks the start of a poll on the current thread. Call it first thing in
    /// your own `on_before_task_poll` hook if you compose hooks by hand.
    #[inline]
    pub fn before_poll(&self, meta: &TaskMeta<'_>) {
        if let Some(slot) = self.slot() {
            slot.task_id.store(task_id(meta), Relaxed);
            slot.spawned_at.store(meta.spawned_at(), Relaxed);
            slot.poll_started_ns.store(self.now_ns(), Relaxed);
        }
    }

    /// Marks the end of a poll on the current thread. Call it last thing in your
    /// own `on_after_task_poll` hook if you compose hooks by hand.
    #[inline]
    pub fn after_poll(&self) {
        let Some(slot) = self.slot() else { return };
        let started = slot.poll_started_ns.swap(0, Relaxed);
        if started == 0 {
            return;
        }
        let took = self.now_ns().saturating_sub(started);
        // Single writer: plain load + store is enough and avoids locked instructions.
        bump(&slot.polls);
        if took >= self.state.long_poll_threshold_ns {
            bump(&slot.long_polls);
            slot.last_long_took_ns.store(took, Relaxed);
            slot.last_long_started_ns.store(started, Relaxed);
        }
        if took > slot.max_poll_ns.load(Relaxed) {
            slot.max_poll_ns.store(took, Relaxed);
        }
        bump(&slot.buckets[bucket_of(took / 1_000)]);
    }

    #[inline]
    fn now_ns(&self) -> u64 {
        // +1 so that 0 keeps meaning "not polling" even at the epoch itself.
        u64::try_from(self.state.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) | 1
    }

    #[inline]
    fn slot(&self) -> Option<&Slot> {
        let (id, index) = THREAD_SLOT.try_with(Cell::get).unwrap_or(NO_SLOT);
        if id == self.state.id {
            return self.state.slots.get(index);
        }
        // Cold path: first poll of this thread under these hooks.
        let index = self.state.next_slot.fetch_add(1, Relaxed);
        let slot = self.state.slots.get(index)?;
        let _ = slot.thread.set(std::thread::current().id());
        #[cfg(target_os = "linux")]
        slot.os_tid.store(crate::platform::current_tid(), Relaxed);
        let _ = THREAD_SLOT.try_with(|s| s.set((self.state.id, index)));
        Some(slot)
    }

    pub(crate) fn state(&self) -> &State {
        &self.state
    }
}

impl State {
    /// Slots that have a thread, in allocation order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &Slot> {
        let used = self.next_slot.load(Relaxed).min(self.slots.len());
        self.slots[..used]
            .iter()
            .filter(|s| s.thread.get().is_some())
    }

    pub(crate) fn long_poll_threshold_ns(&self) -> u64 {
        self.long_poll_threshold_ns
    }

    /// Now on the clock `poll_started_ns` uses.
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The task id's number. `tokio::task::Id` shows it only through `Display`
/// and `Hash`; hashing it into a hasher that keeps the last word written
/// reads it without formatting or allocating.
#[inline]
fn task_id(meta: &TaskMeta<'_>) -> u64 {
    #[derive(Default)]
    struct LastWord(u64);
    impl std::hash::Hasher for LastWord {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            let mut word = [0u8; 8];
            let n = bytes.len().min(8);
            word[..n].copy_from_slice(&bytes[..n]);
            self.0 = u64::from_ne_bytes(word);
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n;
        }
    }
    let mut h = LastWord::default();
    std::hash::Hash::hash(&meta.id(), &mut h);
    h.0
}

impl Slot {
    /// Where the task being polled was spawned, if a poll has started.
    pub(crate) fn spawned_at(&self) -> Option<&'static Location<'static>> {
        self.spawned_at.load(Relaxed)
    }
}

#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
}

/// Bucket index for a duration in µs: 0 for < 1 µs, `b` for [2^(b-1), 2^b).
#[inline]
pub(crate) fn bucket_of(us: u64) -> usize {
    ((u64::BITS - us.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// Upper bound in µs of bucket `b`.
pub(crate) fn bucket_upper_us(b: usize) -> u64 {
    1u64 << b.min(63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(1024), 11);
        assert!(bucket_upper_us(bucket_of(1000)) >= 1000);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn times_polls_and_counts_long_ones() {
        let hooks = PollHooks::with_long_poll_threshold(Duration::from_millis(5));
        let mut builder = tokio::runtime::Builder::new_current_thread();
        hooks.install(&mut builder);
        let rt = builder.build().expect("runtime");
        rt.block_on(async {
            tokio::spawn(async { std::thread::sleep(Duration::from_millis(20)) })
                .await
                .expect("task");
            tokio::spawn(async {}).await.expect("task");
        });
        let slots: Vec<_> = hooks.state().slots().collect();
        assert_eq!(slots.len(), 1);
        let slot = slots[0];
        assert!(slot.polls.load(Relaxed) >= 2);
        assert_eq!(slot.long_polls.load(Relaxed), 1);
        let max = Duration::from_nanos(slot.max_poll_ns.load(Relaxed));
        assert!(
            max >= Duration::from_millis(20) && max < Duration::from_millis(200),
            "{max:?}"
        );
    }

    #[test]
    fn user_hooks_still_run_when_composed() {
        use std::sync::atomic::AtomicU64;
        let seen = Arc::new(AtomicU64::new(0));
        let (b, a) = (seen.clone(), seen.clone());
        let hooks = PollHooks::new();
        let mut builder = tokio::runtime::Builder::new_current_thread();
        hooks.install_with(
            &mut builder,
            move |_| {
                b.fetch_add(1, Relaxed);
            },
            move |_| {
                a.fetch_add(100, Relaxed);
            },
        );
        let rt = builder.build().expect("runtime");
        rt.block_on(async { tokio::spawn(async {}).await.expect("task") });
        assert_eq!(seen.load(Relaxed), 101);
        assert!(hooks.state().slots().next().is_some());
    }
}
