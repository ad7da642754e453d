//! The poll-hook detector (`tokio_unstable` with [`crate::PollHooks`]):
//! each worker's poll start, so a stall is seen exactly, with its thread,
//! task and spawn location.

use super::*;

impl Watchdog {
    #[cfg(tokio_unstable)]
    pub(super) fn check_hooks(&mut self, ri: usize, watch: &Watch, hooks: &PollHooks) {
        let state = hooks.state();
        let threshold_ns = u64::try_from(self.threshold.as_nanos()).unwrap_or(u64::MAX);
        for (si, slot) in state.slots().enumerate() {
            let key = (ri, si);
            let started = slot.poll_started_ns.load(Relaxed);
            let now_ns = state.now_ns();
            // More than a lag probe's one poll since the last check: working.
            let polls = slot.polls.load(Relaxed);
            let before = self.slot_polls.insert(key, polls).unwrap_or(polls);
            if started != 0 || polls.saturating_sub(before) > 1 {
                self.asked = true;
            }
            if let Some(a) = self.active.get(&key) {
                if a.marker == started {
                    self.update(key, Duration::from_nanos(now_ns.saturating_sub(started)));
                    continue;
                }
                // The stalled poll ended: its exact length is in the hooks.
                let exact = (slot.last_long_started_ns.load(Relaxed) == a.marker)
                    .then(|| Duration::from_nanos(slot.last_long_took_ns.load(Relaxed)));
                self.close(key, exact);
            }
            if started != 0 && now_ns.saturating_sub(started) < threshold_ns {
                // A poll is running: check when it reaches the threshold.
                let left = threshold_ns - now_ns.saturating_sub(started);
                self.check_by(Instant::now() + Duration::from_nanos(left));
            }
            if started != 0 && now_ns.saturating_sub(started) >= threshold_ns {
                let elapsed = Duration::from_nanos(now_ns.saturating_sub(started));
                let began = Instant::now()
                    .checked_sub(elapsed)
                    .unwrap_or_else(Instant::now);
                let task = (
                    Some(slot.task_id.load(Relaxed)).filter(|&t| t != 0),
                    slot.spawned_at().map(|l| l.to_string()),
                );
                let tid = slot.os_tid.load(Relaxed);
                if !self.blocks_by_itself(tid, began) {
                    continue;
                }
                self.open(
                    key,
                    &watch.runtime,
                    StallDetection::PollHooks,
                    started,
                    began,
                    tid,
                    None,
                    task,
                );
            }
        }
    }
}
