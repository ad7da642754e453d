//! Which runtime's lag probe each thread last ran: how the watchdog tells
//! the threads of several watched runtimes apart on stable tokio, where
//! every worker has the same name.

use super::*;

/// Slots of [`PROBE_RAN`], keyed by thread id.
pub(super) const PROBE_SLOTS: usize = 256;

/// Where lag probes last ran: a thread id, when (ns since [`probe_epoch`])
/// and for which watched runtime (its [`new_runtime_token`](crate::sampler::lag::new_runtime_token)).
pub(super) struct ProbeRan {
    tid: AtomicI32,
    runtime: AtomicU64,
    at_ns: AtomicU64,
}

/// Written by the lag probe on whatever worker polls it, read by the stable
/// detector: a worker thread that ran a probe after its counters froze is
/// going through many short polls, not stuck in one.
pub(super) static PROBE_RAN: [ProbeRan; PROBE_SLOTS] = [const {
    ProbeRan {
        tid: AtomicI32::new(0),
        runtime: AtomicU64::new(0),
        at_ns: AtomicU64::new(0),
    }
}; PROBE_SLOTS];

pub(super) fn probe_epoch() -> Instant {
    pub(super) static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub(super) fn since_epoch_ns(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(probe_epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// Called by the lag probe task of the runtime `runtime` (its
/// [`new_runtime_token`](crate::sampler::lag::new_runtime_token)) when a worker polls it.
pub(crate) fn probe_ran_here(runtime: u64) {
    let tid = crate::platform::current_tid();
    let slot = &PROBE_RAN[tid.unsigned_abs() as usize % PROBE_SLOTS];
    slot.tid.store(tid, Ordering::Relaxed);
    slot.runtime.store(runtime, Ordering::Relaxed);
    slot.at_ns
        .store(since_epoch_ns(Instant::now()), Ordering::Release);
}

/// Whether thread `tid` ran a lag probe at or after `since`.
pub(super) fn probe_ran_since(tid: i32, since: Instant) -> bool {
    let slot = &PROBE_RAN[tid.unsigned_abs() as usize % PROBE_SLOTS];
    let at = slot.at_ns.load(Ordering::Acquire);
    slot.tid.load(Ordering::Relaxed) == tid && at >= since_epoch_ns(since)
}

/// The watched runtime thread `tid` last ran a lag probe for, if it ran one
/// (and no other thread took its slot since). Tokio names the workers of
/// every runtime alike; this tells another runtime's workers apart.
pub(super) fn probe_runtime(tid: i32) -> Option<u64> {
    let slot = &PROBE_RAN[tid.unsigned_abs() as usize % PROBE_SLOTS];
    let runtime = slot.runtime.load(Ordering::Relaxed);
    (slot.tid.load(Ordering::Relaxed) == tid && runtime != 0).then_some(runtime)
}
