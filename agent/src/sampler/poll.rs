//! Reading [`crate::PollHooks`] slots into per-interval poll statistics.

use std::sync::atomic::Ordering::Relaxed;
use std::thread::ThreadId;

use crate::hooks::{bucket_upper_us, PollHooks, BUCKETS};
use crate::sample::PollStats;

/// Cumulative counters of one thread's slot (except `max_poll_ns`, per interval).
#[derive(Clone, Copy)]
pub(crate) struct SlotTotals {
    pub(crate) polls: u64,
    pub(crate) long_polls: u64,
    pub(crate) max_poll_ns: u64,
    pub(crate) buckets: [u64; BUCKETS],
}

/// Reads every used slot, taking (and resetting) each one's interval maximum.
pub(crate) fn read_slots(hooks: &PollHooks) -> Vec<(ThreadId, SlotTotals)> {
    hooks
        .state()
        .slots()
        .filter_map(|slot| {
            let thread = *slot.thread.get()?;
            let mut buckets = [0; BUCKETS];
            for (b, counter) in buckets.iter_mut().zip(&slot.buckets) {
                *b = counter.load(Relaxed);
            }
            Some((
                thread,
                SlotTotals {
                    polls: slot.polls.load(Relaxed),
                    long_polls: slot.long_polls.load(Relaxed),
                    max_poll_ns: slot.max_poll_ns.swap(0, Relaxed),
                    buckets,
                },
            ))
        })
        .collect()
}

/// Per-thread change from `previous` to `current`.
pub(crate) fn deltas(
    previous: &[(ThreadId, SlotTotals)],
    current: &[(ThreadId, SlotTotals)],
) -> Vec<(ThreadId, SlotTotals)> {
    current
        .iter()
        .map(|(thread, cur)| {
            let prev = previous.iter().find(|(t, _)| t == thread).map(|(_, p)| p);
            let mut d = *cur;
            if let Some(prev) = prev {
                d.polls = cur.polls.wrapping_sub(prev.polls);
                d.long_polls = cur.long_polls.wrapping_sub(prev.long_polls);
                for (b, p) in d.buckets.iter_mut().zip(&prev.buckets) {
                    *b = b.wrapping_sub(*p);
                }
            }
            (*thread, d)
        })
        .collect()
}

/// Sums per-thread deltas into one runtime-wide summary.
pub(crate) fn summarize<'a>(
    deltas: impl Iterator<Item = &'a SlotTotals>,
    long_poll_threshold_ns: u64,
) -> PollStats {
    let mut buckets = [0u64; BUCKETS];
    let (mut polls, mut long_polls, mut max_ns) = (0, 0, 0);
    for d in deltas {
        polls += d.polls;
        long_polls += d.long_polls;
        max_ns = max_ns.max(d.max_poll_ns);
        for (b, x) in buckets.iter_mut().zip(&d.buckets) {
            *b += x;
        }
    }
    {
        let mut poll_stats = PollStats::default();
        poll_stats.polls = polls;
        poll_stats.long_polls = long_polls;
        poll_stats.long_poll_threshold_us = long_poll_threshold_ns / 1_000;
        poll_stats.p50_us = quantile(&buckets, 0.5);
        poll_stats.p99_us = quantile(&buckets, 0.99);
        poll_stats.max_us = max_ns / 1_000;
        poll_stats
    }
}

fn quantile(buckets: &[u64; BUCKETS], q: f64) -> u64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (b, &count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return bucket_upper_us(b);
        }
    }
    bucket_upper_us(BUCKETS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_bucket_upper_bound() {
        let mut b = [0u64; BUCKETS];
        b[3] = 98; // < 8 µs
        b[12] = 2; // < 4096 µs
        assert_eq!(quantile(&b, 0.5), 8);
        assert_eq!(quantile(&b, 0.99), 4096);
        assert_eq!(quantile(&[0; BUCKETS], 0.5), 0);
    }
}
