//! The threads the profiler samples, and how each is made to deliver its
//! samples.
//!
//! Each thread gets a timer on its own CPU-time clock ([`CpuTimer`]). On
//! Linux 6.18 under heavy load a thread's CPU timer has been seen to stay
//! silent while the thread runs (from its creation on, and a timer made
//! anew for the thread stayed as silent), which costs that thread its whole
//! profile. So the profiler judges every timer once its thread has used
//! [`JUDGE_AFTER`] periods of CPU: a timer that delivered less than
//! [`SILENT_SHARE`] of the samples its thread's CPU time calls for is
//! deleted and its thread *relayed*. The profiler thread then reads the
//! thread's CPU clock itself and, while the thread is running, signals it
//! with `tgkill`: one signal, weighted by the periods of CPU the thread
//! used since the last one. Relayed samples are coarser (taken when the
//! profiler thread looks) but keep each thread's share of the CPU.
//!
//! A relayed thread never has more than one of these signals pending: the
//! next is sent only once the last was answered, or found no longer
//! pending (its sample lost to a full ring), so a thread that blocks the
//! signal cannot fill the process's signal queue.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::platform::sched::{thread_cpu, thread_state, ThreadState};
use crate::platform::timer::{self, CpuTimer};

/// Periods of CPU a thread uses before its timer is judged.
const JUDGE_AFTER: f64 = 20.0;
/// A timer delivering less than this share of the samples its thread's CPU
/// time calls for is silent.
const SILENT_SHARE: f64 = 0.25;
/// Most periods one relayed sample stands for.
const MAX_WEIGHT: u32 = 16;
/// A relayed signal unanswered this long is looked for among the thread's
/// pending signals.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// Shortest wait between two relays.
const MIN_RELAY_WAIT: Duration = Duration::from_millis(2);

/// One sampled thread.
struct Sampled {
    /// Its CPU-time timer; `None` once the thread is relayed (or if the
    /// timer could not be made).
    timer: Option<CpuTimer>,
    /// The thread's CPU clock when the current judgement of its timer began.
    judged_from: Duration,
    /// Samples of the thread drained since then.
    seen: u64,
    /// Set once the timer was found silent.
    relay: Option<Relay>,
}

/// A relayed thread's account.
struct Relay {
    /// Its CPU clock when last read.
    last_cpu: Duration,
    /// CPU it used that no signal stands for yet.
    owed: Duration,
    /// The signal sent and not yet answered: when, and the periods its
    /// sample stands for.
    unanswered: Option<(Instant, u32)>,
}

/// Every thread of the process, with its timer or relay.
pub(super) struct Threads {
    signal: i32,
    hz: u32,
    by_tid: HashMap<i32, Sampled>,
    /// Samples were lost since the last judgement (a full ring).
    lost: bool,
}

impl Threads {
    /// No threads yet; [`Threads::rescan`] finds them.
    pub(super) fn new(signal: i32, hz: u32) -> Self {
        Threads {
            signal,
            hz,
            by_tid: HashMap::new(),
            lost: false,
        }
    }

    /// Samples every thread at `hz` (0: none); judgements start again.
    pub(super) fn set_rate(&mut self, hz: u32) {
        self.hz = hz;
        for (tid, s) in &mut self.by_tid {
            if let Some(t) = &s.timer {
                t.arm(armed_rate(*tid, hz));
            }
            s.judge_from_now(*tid);
            if let Some(r) = &mut s.relay {
                r.owed = Duration::ZERO;
            }
        }
    }

    /// Arms a timer on each new thread and drops gone threads' timers;
    /// whether any thread was new.
    pub(super) fn rescan(&mut self) -> bool {
        let mut alive = HashSet::new();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for entry in dir.flatten() {
                if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                    alive.insert(tid);
                }
            }
        }
        // Dropping a gone thread's timer deletes it.
        self.by_tid.retain(|tid, _| alive.contains(tid));
        let mut new = false;
        for tid in alive {
            if self.by_tid.contains_key(&tid) {
                continue;
            }
            new = true;
            let timer = CpuTimer::new(tid, self.signal);
            if let Some(t) = &timer {
                t.arm(armed_rate(tid, self.hz));
            }
            let mut s = Sampled {
                timer,
                judged_from: Duration::ZERO,
                seen: 0,
                relay: None,
            };
            s.judge_from_now(tid);
            self.by_tid.insert(tid, s);
        }
        new
    }

    /// A sample of thread `tid` was drained; the periods it stands for.
    pub(super) fn answered(&mut self, tid: i32) -> u32 {
        let Some(s) = self.by_tid.get_mut(&tid) else {
            return 1;
        };
        s.seen += 1;
        s.relay
            .as_mut()
            .and_then(|r| r.unanswered.take())
            .map_or(1, |(_, periods)| periods)
    }

    /// Samples were lost on the way (a full ring): no timer is judged on
    /// this stretch.
    pub(super) fn lost_samples(&mut self) {
        self.lost = true;
    }

    /// Judges the timers of threads that used [`JUDGE_AFTER`] periods of CPU
    /// since their judgement began: a silent one is deleted and its thread
    /// relayed.
    pub(super) fn judge(&mut self) {
        if self.hz == 0 {
            return;
        }
        if std::mem::take(&mut self.lost) {
            for (tid, s) in &mut self.by_tid {
                s.judge_from_now(*tid);
            }
            return;
        }
        for (tid, s) in &mut self.by_tid {
            if s.relay.is_some() || s.timer.is_none() {
                continue;
            }
            let Some(now) = thread_cpu(*tid) else {
                continue;
            };
            let used = now.cpu.saturating_sub(s.judged_from);
            let expected = used.as_secs_f64() * f64::from(self.hz);
            if expected < JUDGE_AFTER {
                continue;
            }
            if (s.seen as f64) < expected * SILENT_SHARE {
                tracing::debug!(
                    target: "lagscope",
                    tid = *tid,
                    cpu_ms = used.as_millis() as u64,
                    samples = s.seen,
                    "a thread's CPU timer is silent: the profiler signals the thread itself"
                );
                s.timer = None;
                s.relay = Some(Relay {
                    last_cpu: now.cpu,
                    owed: Duration::ZERO,
                    unanswered: None,
                });
            }
            s.judged_from = now.cpu;
            s.seen = 0;
        }
    }

    /// Signals each relayed thread that is running and used a period of CPU
    /// since its last signal; while one of them runs, the wait until the
    /// next relay.
    pub(super) fn relay(&mut self) -> Option<Duration> {
        if self.hz == 0 {
            return None;
        }
        let period = Duration::from_secs(1) / self.hz;
        let mut running = false;
        for (tid, s) in &mut self.by_tid {
            let Some(r) = &mut s.relay else {
                continue;
            };
            let Some(now) = thread_cpu(*tid) else {
                continue;
            };
            let used = now.cpu.saturating_sub(r.last_cpu);
            r.last_cpu = now.cpu;
            if used.is_zero() {
                continue;
            }
            running = true;
            r.owed = (r.owed + used).min(period * MAX_WEIGHT);
            if r.owed < period {
                continue;
            }
            if let Some((sent, _)) = r.unanswered {
                // One signal pending at most: wait for its answer, and send
                // again only once it is surely no longer pending.
                if sent.elapsed() < ANSWER_WITHIN
                    || timer::signal_pending(*tid, self.signal) != Some(false)
                {
                    continue;
                }
                r.unanswered = None;
            }
            if thread_state(*tid) != Some(ThreadState::Runnable) {
                // Asleep now: its sample would show where it waits, not
                // where it ran. What it owes goes to its next run.
                continue;
            }
            let periods = u32::try_from(r.owed.as_nanos() / period.as_nanos())
                .unwrap_or(MAX_WEIGHT)
                .clamp(1, MAX_WEIGHT);
            r.owed = r.owed.saturating_sub(period * periods);
            if crate::platform::signal_thread(*tid, self.signal) {
                r.unanswered = Some((Instant::now(), periods));
            }
        }
        running.then(|| period.max(MIN_RELAY_WAIT))
    }

    /// Deletes every timer and stops relaying.
    pub(super) fn stop(&mut self) {
        self.by_tid.clear();
    }
}

impl Sampled {
    /// Starts the judgement of the thread's timer from its CPU clock now.
    fn judge_from_now(&mut self, tid: i32) {
        self.judged_from = thread_cpu(tid).map_or(Duration::ZERO, |r| r.cpu);
        self.seen = 0;
    }
}

/// The rate a new thread's timer is armed at: `hz`, except for the thread a
/// test has made silent.
fn armed_rate(tid: i32, hz: u32) -> u32 {
    #[cfg(test)]
    if tid == tests::SILENT.load(std::sync::atomic::Ordering::Relaxed) {
        return 0;
    }
    let _ = tid;
    hz
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::AtomicI32;

    /// A thread whose timer the test arms at 0 Hz, standing for a timer the
    /// kernel keeps silent.
    pub(in crate::profiler) static SILENT: AtomicI32 = AtomicI32::new(-1);
}
