//! Stuck requests: instrumented futures pending without a poll for longer
//! than a threshold, with where they wait.
//!
//! A future that went `Pending` is registered (once, at its first
//! `Pending`) with the moment it went pending and the waker it was polled
//! with. A future woken is polled again soon on a runtime that keeps up (a
//! blocked runtime is the watchdog's to report), so "pending without a poll
//! for longer than the threshold" is "not woken": a channel nobody sends
//! on, a lost wakeup, two tasks waiting on each other, a downstream that
//! never answers. A long-lived stream that keeps being woken is polled and
//! never stuck.
//!
//! Where a stuck future waits is known if the `Pending` it is stuck in was
//! a sampled one (see [`super::wait`]). If not, the agent wakes it once, a
//! spurious wake the `Future` contract allows, the way tokio's own task
//! dumps re-poll idle tasks: the wrapper then polls it with the capturing
//! waker, it registers its waker at the same await point, and goes back to
//! sleep. That poll neither restarts its age nor counts as a wait.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

/// Shards of the registry: futures register and leave from every worker.
const SHARDS: usize = 16;

/// Agents with a stuck threshold running: futures register while any does.
static ENABLED: AtomicUsize = AtomicUsize::new(0);

/// What the registry knows of one pending future.
pub(crate) struct Tracked {
    /// The instrumented name's order.
    pub(super) task: usize,
    /// When it went pending, ns since [`epoch`]; 0 while it is polled or
    /// ready.
    since_ns: AtomicU64,
    /// The capture of the await point it is pending at; 0: not known.
    capture: AtomicU64,
    /// Asked to capture its await point at its next poll (a probe).
    probe: AtomicBool,
    /// Probes sent, so one that does not answer is not sent again.
    probed: AtomicU64,
    /// The waker of its last `Pending`, and that waker's data and vtable
    /// addresses, to tell without the lock that a `Pending` kept it.
    waker: Mutex<Option<Waker>>,
    waker_data: AtomicUsize,
    waker_vtable: AtomicUsize,
    /// Its slot in its shard.
    slot: AtomicUsize,
}

struct Registry {
    shards: [Mutex<Shard>; SHARDS],
    next: AtomicUsize,
}

/// One shard: the registered futures, and the free slots among them.
#[derive(Default)]
struct Shard {
    slots: Vec<Option<Arc<Tracked>>>,
    free: Vec<usize>,
}

impl Shard {
    fn insert(&mut self, tracked: Arc<Tracked>) {
        let slot = match self.free.pop() {
            Some(free) => free,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        tracked.slot.store(slot, Relaxed);
        self.slots[slot] = Some(tracked);
    }

    fn remove(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            if s.take().is_some() {
                self.free.push(slot);
            }
        }
        // Mostly free: packed again, so a burst does not keep its
        // high-water mark (slots are read and moved under the lock).
        if self.slots.len() >= 64 && self.free.len() * 2 > self.slots.len() {
            self.slots.retain(Option::is_some);
            for (i, t) in self.slots.iter().flatten().enumerate() {
                t.slot.store(i, Relaxed);
            }
            self.free.clear();
        }
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
        next: AtomicUsize::new(0),
    })
}

thread_local! {
    /// This thread's shard (taken in turn at its first registration), so
    /// registering touches no counter other threads write.
    static SHARD: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// The shard for a registration from this thread.
fn shard_of_this_thread(reg: &Registry) -> usize {
    SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(reg.next.fetch_add(1, Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or_else(|_| reg.next.fetch_add(1, Relaxed) % SHARDS)
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn ns_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// An agent starts (`true`) or stops watching for stuck futures.
pub(crate) fn enable(on: bool) {
    if on {
        epoch();
        ENABLED.fetch_add(1, Relaxed);
    } else {
        let _ = ENABLED.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }
}

/// A future's registration: taken at its first `Pending`, left on drop.
pub(crate) struct Registration {
    tracked: Arc<Tracked>,
    shard: usize,
}

impl Registration {
    /// Registers a future of name `task` that just went pending at `now`
    /// with `waker` (at await point `capture`, 0 if not captured), if
    /// registration is on.
    pub(crate) fn new(
        task: usize,
        now: Instant,
        waker: &Waker,
        capture: u64,
    ) -> Option<Registration> {
        if ENABLED.load(Relaxed) == 0 {
            return None;
        }
        let reg = registry();
        let shard = shard_of_this_thread(reg);
        // Built whole: nobody else sees it before it is in its shard.
        let tracked = Arc::new(Tracked {
            task,
            since_ns: AtomicU64::new(ns_since_epoch(now)),
            capture: AtomicU64::new(capture),
            probe: AtomicBool::new(false),
            probed: AtomicU64::new(0),
            waker_data: AtomicUsize::new(waker.data() as usize),
            waker_vtable: AtomicUsize::new(std::ptr::from_ref(waker.vtable()) as usize),
            waker: Mutex::new(Some(waker.clone())),
            slot: AtomicUsize::new(usize::MAX),
        });
        reg.shards[shard]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tracked.clone());
        Some(Registration { tracked, shard })
    }

    /// At the start of a poll: whether it is a probe's (then its age and
    /// capture stay). Otherwise the future is no longer pending.
    pub(crate) fn polled(&self) -> bool {
        if self.tracked.probe.swap(false, Relaxed) {
            return true;
        }
        self.tracked.since_ns.store(0, Relaxed);
        false
    }

    /// After a poll that returned `Pending` at `now` with `waker`, the
    /// await point captured on it if any (0: none).
    pub(crate) fn pending(&self, now: Instant, waker: &Waker, capture: u64, probe: bool) {
        if !probe {
            self.tracked.since_ns.store(ns_since_epoch(now), Relaxed);
            self.tracked.capture.store(capture, Relaxed);
        } else if capture != 0 {
            self.tracked.capture.store(capture, Relaxed);
        }
        // A task's waker is the same poll after poll: then nothing to do.
        let data = waker.data() as usize;
        let vtable = std::ptr::from_ref(waker.vtable()) as usize;
        if self.tracked.waker_data.load(Relaxed) == data
            && self.tracked.waker_vtable.load(Relaxed) == vtable
        {
            return;
        }
        let mut kept = self.tracked.waker.lock().unwrap_or_else(|p| p.into_inner());
        *kept = Some(waker.clone());
        self.tracked.waker_data.store(data, Relaxed);
        self.tracked.waker_vtable.store(vtable, Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut shard = registry().shards[self.shard]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Read under the lock: packing moves it.
        let slot = self.tracked.slot.load(Relaxed);
        shard.remove(slot);
    }
}

/// One stuck future as the agent sees it.
#[derive(Debug, Clone)]
pub(crate) struct Stuck {
    pub(crate) task: usize,
    pub(crate) pending: Duration,
    /// Its await point's capture, 0 if not known yet.
    pub(crate) capture: u64,
}

/// Every future pending without a poll for at least `after`, oldest
/// first. Those whose await point is not known are woken once (at most
/// once per `after`), so their next poll captures it.
pub(crate) fn scan(after: Duration) -> Vec<Stuck> {
    let now = ns_since_epoch(Instant::now());
    let after_ns = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX);
    let mut stuck = Vec::new();
    let mut to_wake = Vec::new();
    for shard in &registry().shards {
        let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        for tracked in shard.slots.iter().flatten() {
            let since = tracked.since_ns.load(Relaxed);
            if since == 0 || now.saturating_sub(since) < after_ns {
                continue;
            }
            let capture = tracked.capture.load(Relaxed);
            if capture == 0 && now.saturating_sub(tracked.probed.load(Relaxed)) >= after_ns {
                tracked.probed.store(now, Relaxed);
                to_wake.push(tracked.clone());
            }
            stuck.push(Stuck {
                task: tracked.task,
                pending: Duration::from_nanos(now - since),
                capture,
            });
        }
    }
    // Woken outside the shard locks: a waker may run anything.
    for tracked in to_wake {
        let waker = tracked
            .waker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(waker) = waker {
            tracked.probe.store(true, Relaxed);
            waker.wake();
        }
    }
    stuck.sort_by_key(|s| std::cmp::Reverse(s.pending));
    stuck
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(task: usize) -> Arc<Tracked> {
        Arc::new(Tracked {
            task,
            since_ns: AtomicU64::new(1),
            capture: AtomicU64::new(0),
            probe: AtomicBool::new(false),
            probed: AtomicU64::new(0),
            waker: Mutex::new(None),
            waker_data: AtomicUsize::new(0),
            waker_vtable: AtomicUsize::new(0),
            slot: AtomicUsize::new(usize::MAX),
        })
    }

    #[test]
    fn a_shard_reuses_free_slots_and_packs_itself_once_mostly_free() {
        let mut shard = Shard::default();
        let all: Vec<_> = (0..100).map(tracked).collect();
        for t in &all {
            shard.insert(t.clone());
        }
        assert_eq!(shard.slots.len(), 100);
        // A freed slot is taken again before the shard grows.
        let slot = all[10].slot.load(Relaxed);
        shard.remove(slot);
        let again = tracked(1000);
        shard.insert(again.clone());
        assert_eq!(again.slot.load(Relaxed), slot);
        assert_eq!(shard.slots.len(), 100);
        // Most leave: the rest are packed, each slot where it now is.
        for t in all.iter().take(60).filter(|t| t.task != 10) {
            shard.remove(t.slot.load(Relaxed));
        }
        assert!(shard.slots.len() < 64, "{}", shard.slots.len());
        let live: Vec<_> = all[60..].iter().chain([&again]).collect();
        assert_eq!(shard.slots.iter().flatten().count(), live.len());
        assert_eq!(shard.slots.len() - shard.free.len(), live.len());
        for t in live {
            let slot = t.slot.load(Relaxed);
            assert!(shard.slots[slot]
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, t)));
        }
    }
}
