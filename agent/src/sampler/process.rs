//! Process-wide CPU, threads and descriptors.

use std::time::Duration;

use crate::platform::procfs::{self, Stat};
use crate::sample::ProcessSample;

pub(crate) struct ProcessSampler {
    previous: Option<Stat>,
    host_cores: usize,
}

impl ProcessSampler {
    pub(crate) fn new() -> Self {
        ProcessSampler {
            previous: procfs::stat(),
            host_cores: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    pub(crate) fn sample(&mut self, interval: Duration) -> ProcessSample {
        let current = procfs::stat();
        let delta = current.zip(self.previous).map(|(cur, prev)| {
            (
                cur.user.saturating_sub(prev.user),
                cur.system.saturating_sub(prev.system),
            )
        });
        self.previous = current;
        {
            let mut process_sample = ProcessSample::default();
            process_sample.cpu_user_us = delta.map(|d| d.0.as_micros() as u64);
            process_sample.cpu_system_us = delta.map(|d| d.1.as_micros() as u64);
            process_sample.cpu_ratio =
                delta.map(|(u, s)| (u + s).as_secs_f64() / interval.as_secs_f64().max(1e-9));
            process_sample.threads = current.map(|c| c.threads);
            process_sample.open_fds = procfs::open_fds();
            process_sample.host_cores = self.host_cores;
            process_sample
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_spinning_thread_shows_as_cpu() {
        if !cfg!(target_os = "linux") {
            return;
        }
        let mut p = ProcessSampler::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(300) {
            std::hint::spin_loop();
        }
        let s = p.sample(start.elapsed());
        // USER_HZ granularity is 10 ms; other tests may run alongside.
        assert!(s.cpu_ratio.expect("linux") > 0.5, "{s:?}");
        assert!(s.threads.expect("linux") >= 1);
        assert!(s.host_cores >= 1);
    }
}
