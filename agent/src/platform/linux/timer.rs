//! Per-thread CPU-time timers (`timer_create` on a thread's CPU clock with
//! `SIGEV_THREAD_ID`): each fires a signal at its own thread every `1/hz`
//! seconds of the CPU time that thread uses; and whether a signal is still
//! pending for a thread, for the direct signals that stand in for a timer
//! that stays silent.

/// A timer on one thread's CPU clock; deleted when dropped.
#[derive(Debug)]
pub(crate) struct CpuTimer(libc::timer_t);

// SAFETY: a timer id is a plain handle the kernel checks on every call; any
// thread may arm or delete it.
unsafe impl Send for CpuTimer {}

impl CpuTimer {
    /// A timer on thread `tid`'s CPU-time clock that signals that thread with
    /// `signal`; `None` if the thread is gone or timers are unavailable.
    pub(crate) fn new(tid: i32, signal: i32) -> Option<CpuTimer> {
        // The kernel's encoding of a thread's CPU clock (glibc's
        // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)).
        let clock: libc::clockid_t = (!tid << 3) | 6;
        // SAFETY: a zeroed sigevent is valid; the fields used are set below.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = signal;
        event.sigev_notify_thread_id = tid;
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: `event` and `timer` are valid for the call; a thread that is
        // gone makes it fail, which is handled.
        let ok = unsafe { libc::timer_create(clock, &mut event, &mut timer) } == 0;
        ok.then_some(CpuTimer(timer))
    }

    /// Fires every `1/hz` seconds of the thread's CPU time; `hz == 0` disarms.
    pub(crate) fn arm(&self, hz: u32) {
        let period = if hz == 0 {
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }
        } else {
            let ns = 1_000_000_000 / i64::from(hz);
            libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            }
        };
        let spec = libc::itimerspec {
            it_interval: period,
            it_value: period,
        };
        // SAFETY: `self.0` is a live timer id (deleted only in drop) and
        // `spec` is valid for the call.
        unsafe { libc::timer_settime(self.0, 0, &spec, std::ptr::null_mut()) };
    }
}

impl Drop for CpuTimer {
    fn drop(&mut self) {
        // SAFETY: the id came from timer_create and is deleted once, here.
        unsafe { libc::timer_delete(self.0) };
    }
}

/// Whether `signal` is pending for thread `tid` (its own or the process's
/// pending set, `/proc/self/task/<tid>/status`); `None` if that cannot be
/// read.
pub(crate) fn signal_pending(tid: i32, signal: i32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).ok()?;
    pending_in(&status, signal)
}

/// Whether `signal` is in the `SigPnd` or `ShdPnd` mask of a status file.
fn pending_in(status: &str, signal: i32) -> Option<bool> {
    let bit = 1u64.checked_shl(u32::try_from(signal).ok()?.checked_sub(1)?)?;
    let mut found = false;
    let mut pending = false;
    for line in status.lines() {
        let Some(mask) = line
            .strip_prefix("SigPnd:")
            .or_else(|| line.strip_prefix("ShdPnd:"))
        else {
            continue;
        };
        let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
        found = true;
        pending |= mask & bit != 0;
    }
    found.then_some(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_on_this_thread_arms_disarms_and_drops() {
        let tid = super::super::current_tid();
        // Signal 0 would be refused; an ignored real-time signal is harmless
        // because the timer is disarmed before it can fire.
        let timer = CpuTimer::new(tid, libc::SIGRTMAX()).expect("timer_create works here");
        timer.arm(0);
        drop(timer);
        assert!(
            CpuTimer::new(i32::MAX, libc::SIGRTMAX()).is_none(),
            "no such thread"
        );
    }

    #[test]
    fn pending_signals_are_read_from_both_masks() {
        let status = "Name:\tx\nSigPnd:\t0000000000000000\nShdPnd:\t0000000800000000\nSigBlk:\t0\n";
        assert_eq!(pending_in(status, 36), Some(true));
        assert_eq!(pending_in(status, 35), Some(false));
        let own = "SigPnd:\t0000000000000001\nShdPnd:\t0000000000000000\n";
        assert_eq!(pending_in(own, 1), Some(true));
        assert_eq!(pending_in("Name:\tx\n", 1), None);
        assert_eq!(pending_in(own, 0), None);
        let me = super::super::current_tid();
        assert_eq!(signal_pending(me, libc::SIGRTMAX()), Some(false));
        assert!(
            !super::super::signal_thread(i32::MAX, libc::SIGRTMAX()),
            "no such thread"
        );
    }
}
