//! How another thread of this process spends its time: its CPU clock and its
//! scheduler state. The stall watchdog uses them to tell a thread that blocks
//! the runtime (on the CPU, or asleep in a call) from one the machine has no
//! CPU for (runnable, waiting for its turn): a worker preempted in the middle
//! of a short poll is not a poll that blocks.

use std::time::{Duration, Instant};

/// One look at a thread's CPU clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuReading {
    pub(crate) at: Instant,
    pub(crate) cpu: Duration,
}

/// CPU time thread `tid` has used so far; `None` if it is gone.
pub(crate) fn thread_cpu(tid: i32) -> Option<CpuReading> {
    // The kernel's encoding of a thread's CPU clock (glibc's
    // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)), as for the profiler's timers.
    let clock: libc::clockid_t = (!tid << 3) | 6;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for the write; a clock of a thread that is gone
    // makes the call fail, which is handled.
    let ok = unsafe { libc::clock_gettime(clock, &mut ts) } == 0;
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    ok.then(|| CpuReading {
        at: Instant::now(),
        cpu: Duration::new(secs, nanos),
    })
}

/// What the scheduler says a thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadState {
    /// On a CPU or waiting for one (`R`).
    Runnable,
    /// Asleep in a call: a sleep, a lock, I/O (`S`, `D`).
    Waiting,
    /// Anything else (stopped, traced, a zombie).
    Other,
}

/// Thread `tid`'s state from `/proc/self/task/<tid>/stat`; `None` if it is gone.
pub(crate) fn thread_state(tid: i32) -> Option<ThreadState> {
    let line = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    parse_state(&line)
}

/// The state field of a `/proc/<pid>/stat` line (the one after the command
/// name, which may itself hold spaces and parentheses).
fn parse_state(line: &str) -> Option<ThreadState> {
    let rest = &line[line.rfind(')')? + 1..];
    Some(match rest.split_whitespace().next()? {
        "R" => ThreadState::Runnable,
        "S" | "D" => ThreadState::Waiting,
        _ => ThreadState::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_read_after_the_command_name() {
        let line = "1758 (a (b) c) S 1753 1753 1113 0 -1";
        assert_eq!(parse_state(line), Some(ThreadState::Waiting));
        assert_eq!(parse_state("9 (x) R 1"), Some(ThreadState::Runnable));
        assert_eq!(parse_state("9 (x) t 1"), Some(ThreadState::Other));
        assert_eq!(parse_state("garbage"), None);
    }

    #[test]
    fn a_sleeping_thread_waits_and_uses_no_cpu_while_a_spinning_one_does() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sleeper = std::thread::spawn(move || {
            tx.send(crate::platform::current_tid()).expect("send");
            std::thread::sleep(Duration::from_millis(300));
        });
        let tid = rx.recv().expect("tid");
        std::thread::sleep(Duration::from_millis(50));
        let first = thread_cpu(tid).expect("cpu");
        assert_eq!(thread_state(tid), Some(ThreadState::Waiting));
        std::thread::sleep(Duration::from_millis(100));
        let second = thread_cpu(tid).expect("cpu");
        assert!(second.cpu - first.cpu < Duration::from_millis(20));
        sleeper.join().expect("join");

        let me = crate::platform::current_tid();
        let start = thread_cpu(me).expect("cpu");
        let mut x = 0u64;
        while thread_cpu(me).expect("cpu").cpu - start.cpu < Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert_eq!(thread_state(me), Some(ThreadState::Runnable));
    }
}
