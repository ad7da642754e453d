//! An instance's heap profiles: one window per 10 s from the agent, each the
//! live bytes by allocation site at its end and the bytes allocated over
//! it, frames interned like the CPU windows'.

use std::collections::HashMap;

pub use lagscope_wire::api::HeapKind;
use lagscope_wire::doctor::{HeapGrowth, SiteGrowth};
use lagscope_wire::HeapProfile;

use super::windows::{Measured, WindowRing};
use crate::flame::Folded;

/// Windows kept per instance (15 min of 10 s windows).
pub const WINDOWS: usize = 90;

#[derive(Debug)]
struct Window {
    start_ms: u64,
    end_ms: u64,
    sample_bytes: u64,
    samples: u64,
    dropped: u64,
    /// (frames innermost first, live bytes, allocated bytes).
    sites: Vec<(Vec<u32>, u64, u64)>,
    /// Shipped as the agent stopped: its live bytes are the teardown's
    /// (see [`lagscope_wire::Sample::last`]).
    last: bool,
}

/// Heap bytes by stack, from one or more windows (and instances).
#[derive(Debug, Default)]
pub struct HeapMerged {
    /// Start of the span covered: for in-use bytes, the moment they were read.
    pub start_ms: u64,
    /// End of the span covered.
    pub end_ms: u64,
    /// Mean sampling interval in bytes (the largest, if they differ).
    pub sample_bytes: u64,
    /// Allocations sampled, as of the latest window read (summed over
    /// instances).
    pub samples: u64,
    /// Samples the agents lost, likewise.
    pub dropped: u64,
    /// Bytes by stack, root first.
    pub folded: Folded,
}

impl HeapMerged {
    /// Adds another instance's bytes into these.
    pub fn absorb(&mut self, other: HeapMerged) {
        if self.folded.is_empty() && self.end_ms == 0 {
            self.start_ms = other.start_ms;
        } else if other.end_ms != 0 {
            self.start_ms = self.start_ms.min(other.start_ms);
        }
        self.end_ms = self.end_ms.max(other.end_ms);
        self.sample_bytes = self.sample_bytes.max(other.sample_bytes);
        self.samples += other.samples;
        self.dropped += other.dropped;
        self.folded.merge(&other.folded);
    }
}

/// Heap windows of one instance.
#[derive(Debug, Default)]
pub struct HeapProfiles {
    windows: WindowRing<Window, WINDOWS>,
}

impl HeapProfiles {
    /// Stores a window from an agent.
    /// Keeps window `p`; `last` if it came in the agent's last sample.
    pub fn record(&mut self, p: &HeapProfile, last: bool) {
        let sites = p
            .sites
            .iter()
            .map(|s| {
                (
                    self.windows.intern(&s.frames),
                    s.live_bytes,
                    s.allocated_bytes,
                )
            })
            .collect();
        self.windows.push(Window {
            start_ms: p.start_ms,
            end_ms: p.end_ms,
            sample_bytes: p.sample_bytes,
            samples: p.samples,
            dropped: p.dropped,
            sites,
            last,
        });
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> u64 {
        self.windows.bytes()
    }

    /// `kind` bytes by stack over `[from_ms, to_ms]`: in use at the last
    /// window ending in it (before the teardown where another window is
    /// there), or allocated over the windows ending in it. Empty if no
    /// window ends in it.
    pub fn merged(&self, kind: HeapKind, from_ms: u64, to_ms: u64) -> HeapMerged {
        let in_span = |w: &&Window| w.end_ms >= from_ms && w.end_ms <= to_ms;
        let mut m = HeapMerged::default();
        let windows: Vec<&Window> = match kind {
            HeapKind::Inuse => self
                .windows
                .iter()
                .rev()
                .filter(in_span)
                .fold(None, |kept: Option<&Window>, w| match kept {
                    Some(k) if !k.last => Some(k),
                    _ => Some(w),
                })
                .into_iter()
                .collect(),
            HeapKind::Alloc => self.windows.iter().filter(in_span).collect(),
        };
        let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
            return m;
        };
        m.start_ms = match kind {
            HeapKind::Inuse => last.end_ms,
            HeapKind::Alloc => first.start_ms,
        };
        m.end_ms = last.end_ms;
        m.samples = last.samples;
        m.dropped = last.dropped;
        for w in windows {
            m.sample_bytes = m.sample_bytes.max(w.sample_bytes);
            for (frames, live, allocated) in &w.sites {
                let bytes = match kind {
                    HeapKind::Inuse => *live,
                    HeapKind::Alloc => *allocated,
                };
                if bytes > 0 {
                    m.folded.add(self.windows.root_first(frames), bytes);
                }
            }
        }
        m
    }

    /// Live bytes by site at the first and the last window ending in
    /// `[from_ms, to_ms]`, leaving out the teardown's; `None` without two
    /// such windows.
    pub fn growth(&self, from_ms: u64, to_ms: u64) -> Option<HeapGrowth> {
        let mut in_span = self
            .windows
            .iter()
            .filter(|w| !w.last && w.end_ms >= from_ms && w.end_ms <= to_ms);
        let first = in_span.next()?;
        let last = in_span.next_back()?;
        let mut sites: Vec<SiteGrowth> = Vec::new();
        let mut index: HashMap<&[u32], usize> = HashMap::new();
        for (w, after) in [(first, false), (last, true)] {
            for (frames, live, _) in &w.sites {
                let i = *index.entry(frames.as_slice()).or_insert_with(|| {
                    sites.push(SiteGrowth {
                        frames: frames
                            .iter()
                            .map(|&i| self.windows.name(i).to_string())
                            .collect(),
                        ..SiteGrowth::default()
                    });
                    sites.len() - 1
                });
                if after {
                    sites[i].after_bytes += live;
                } else {
                    sites[i].before_bytes += live;
                }
            }
        }
        Some(HeapGrowth {
            from_ms: first.end_ms,
            to_ms: last.end_ms,
            sites,
        })
    }
}

impl Measured for Window {
    fn bytes(&self) -> u64 {
        let sites: usize = self.sites.iter().map(|(f, _, _)| f.len() * 4 + 48).sum();
        (std::mem::size_of::<Window>() + sites) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagscope_wire::HeapSite;

    fn window(end_ms: u64, cache_live: u64) -> HeapProfile {
        {
            let mut heap_profile = HeapProfile::default();
            heap_profile.start_ms = end_ms - 10_000;
            heap_profile.end_ms = end_ms;
            heap_profile.sample_bytes = 512 * 1024;
            heap_profile.samples = end_ms / 1000;
            heap_profile.sites = vec![
                {
                    let mut heap_site = HeapSite::default();
                    heap_site.frames = ["svc::cache::remember", "svc::handler", "main"]
                        .map(String::from)
                        .into();
                    heap_site.live_bytes = cache_live;
                    heap_site.allocated_bytes = 1 << 20;
                    heap_site
                },
                {
                    let mut heap_site = HeapSite::default();
                    heap_site.frames = ["svc::parse", "svc::handler", "main"]
                        .map(String::from)
                        .into();
                    heap_site.allocated_bytes = 4 << 20;
                    heap_site
                },
            ];
            heap_profile
        }
    }

    #[test]
    fn in_use_is_the_last_window_and_allocated_sums_the_span() {
        let mut h = HeapProfiles::default();
        for i in 1..=3u64 {
            h.record(&window(i * 10_000, i << 20), false);
        }
        let inuse = h.merged(HeapKind::Inuse, 0, u64::MAX);
        assert_eq!(
            inuse.folded.to_text(),
            "main;svc::handler;svc::cache::remember 3145728\n"
        );
        assert_eq!(
            (inuse.start_ms, inuse.end_ms, inuse.samples),
            (30_000, 30_000, 30)
        );
        let at_20 = h.merged(HeapKind::Inuse, 0, 25_000);
        assert_eq!(at_20.folded.total(), 2 << 20);
        let alloc = h.merged(HeapKind::Alloc, 15_000, 30_000);
        assert_eq!((alloc.start_ms, alloc.end_ms), (10_000, 30_000));
        assert_eq!(alloc.folded.total(), 2 * (5 << 20));
        assert!(h.merged(HeapKind::Alloc, 31_000, 40_000).folded.is_empty());
    }

    #[test]
    fn growth_reads_the_first_and_last_windows_and_memory_is_bounded() {
        let mut h = HeapProfiles::default();
        assert!(h.growth(0, u64::MAX).is_none());
        for i in 1..=(WINDOWS as u64 + 5) {
            h.record(&window(i * 10_000, i << 20), false);
        }
        let g = h.growth(0, u64::MAX).expect("two windows");
        assert_eq!(g.from_ms, 60_000, "the oldest five were evicted");
        let cache = &g.sites[0];
        assert_eq!(cache.frames[0], "svc::cache::remember");
        assert_eq!(cache.before_bytes, 6 << 20);
        assert_eq!(cache.after_bytes, (WINDOWS as u64 + 5) << 20);
        assert_eq!(cache.grew(), (WINDOWS as i64 - 1) << 20);
        assert_eq!(g.sites[1].grew(), 0);
        let before = h.bytes();
        h.record(&window(10_000_000, 1), false);
        assert_eq!(h.bytes(), before, "same shape in, same shape out");
    }

    #[test]
    fn the_teardown_window_is_left_out_of_in_use_and_growth() {
        let mut h = HeapProfiles::default();
        h.record(&window(10_000, 1 << 20), false);
        h.record(&window(20_000, 2 << 20), false);
        // The process freed its cache as it shut down.
        h.record(&window(21_000, 0), true);
        let g = h.growth(0, u64::MAX).expect("two windows");
        assert_eq!((g.from_ms, g.to_ms), (10_000, 20_000));
        assert_eq!(g.sites[0].grew(), 1 << 20);
        let inuse = h.merged(HeapKind::Inuse, 0, u64::MAX);
        assert_eq!(inuse.end_ms, 20_000);
        assert_eq!(inuse.folded.total(), 2 << 20);
        // Allocated over the span still counts the last window.
        assert_eq!(h.merged(HeapKind::Alloc, 0, u64::MAX).end_ms, 21_000);
        // A last window alone is what there is.
        let mut only = HeapProfiles::default();
        only.record(&window(15_000, 3), true);
        assert_eq!(only.merged(HeapKind::Inuse, 0, u64::MAX).end_ms, 15_000);
        assert!(only.growth(0, u64::MAX).is_none());
    }
}
