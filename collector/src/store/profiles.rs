//! An instance's CPU profiles: continuous windows (frames interned, so a
//! window costs a few bytes per frame) and the answers to profile requests.

use std::collections::VecDeque;

use lagscope_wire::Profile;

use super::windows::{Measured, WindowRing};
use crate::flame::Folded;

/// Continuous windows kept per instance (15 min of 10 s windows).
pub const WINDOWS: usize = 90;
/// Answers to requests kept per instance until fetched.
const REQUESTED: usize = 4;

/// One continuous window, frames as indexes into the instance's names.
#[derive(Debug)]
struct Window {
    start_ms: u64,
    end_ms: u64,
    hz: u32,
    samples: u64,
    dropped: u64,
    stacks: Vec<(Vec<u32>, u32)>,
}

/// Merged samples of some windows.
#[derive(Debug, Default)]
pub struct Merged {
    /// Earliest window start.
    pub start_ms: u64,
    /// Latest window end.
    pub end_ms: u64,
    /// Highest rate seen.
    pub hz: u32,
    /// Samples merged.
    pub samples: u64,
    /// Samples lost by the agent.
    pub dropped: u64,
    /// The stacks.
    pub folded: Folded,
}

impl Merged {
    /// Adds another merge (another instance) into this one.
    pub fn absorb(&mut self, other: Merged) {
        if self.samples == 0 && self.folded.is_empty() {
            self.start_ms = other.start_ms;
        } else if other.start_ms != 0 {
            self.start_ms = self.start_ms.min(other.start_ms);
        }
        self.end_ms = self.end_ms.max(other.end_ms);
        self.hz = self.hz.max(other.hz);
        self.samples += other.samples;
        self.dropped += other.dropped;
        self.folded.merge(&other.folded);
    }
}

/// Profiles of one instance.
#[derive(Debug, Default)]
pub struct Profiles {
    windows: WindowRing<Window, WINDOWS>,
    requested: VecDeque<Profile>,
}

impl Profiles {
    /// Stores a profile from an agent.
    pub fn record(&mut self, p: &Profile) {
        if p.request_id.is_some() {
            if self.requested.len() >= REQUESTED {
                self.requested.pop_front();
            }
            self.requested.push_back(p.clone());
            return;
        }
        let stacks: Vec<(Vec<u32>, u32)> = p
            .stacks
            .iter()
            .map(|s| (self.windows.intern(&s.frames), s.count))
            .collect();
        self.windows.push(Window {
            start_ms: p.start_ms,
            end_ms: p.end_ms,
            hz: p.hz,
            samples: p.samples,
            dropped: p.dropped,
            stacks,
        });
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> u64 {
        self.windows.bytes()
    }

    /// Windows overlapping `[from_ms, to_ms]`, merged.
    pub fn merged(&self, from_ms: u64, to_ms: u64) -> Merged {
        let mut m = Merged::default();
        for w in self
            .windows
            .iter()
            .filter(|w| w.end_ms > from_ms && w.start_ms < to_ms)
        {
            if m.samples == 0 && m.folded.is_empty() {
                m.start_ms = w.start_ms;
            }
            m.start_ms = m.start_ms.min(w.start_ms);
            m.end_ms = m.end_ms.max(w.end_ms);
            m.hz = m.hz.max(w.hz);
            m.samples += w.samples;
            m.dropped += w.dropped;
            for (frames, count) in &w.stacks {
                m.folded
                    .add(self.windows.root_first(frames), u64::from(*count));
            }
        }
        m
    }

    /// The answer to request `id`, if it arrived (it stays until evicted).
    pub fn requested(&self, id: u64) -> Option<&Profile> {
        self.requested.iter().find(|p| p.request_id == Some(id))
    }
}

impl Measured for Window {
    fn bytes(&self) -> u64 {
        let frames: usize = self.stacks.iter().map(|(f, _)| f.len() * 4 + 32).sum();
        (std::mem::size_of::<Window>() + frames) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagscope_wire::ProfileStack;

    fn window(start_ms: u64, hot: u32) -> Profile {
        {
            let mut profile = Profile::default();
            profile.start_ms = start_ms;
            profile.end_ms = start_ms + 10_000;
            profile.hz = 19;
            profile.samples = u64::from(hot) + 1;
            profile.stacks = vec![
                {
                    let mut profile_stack = ProfileStack::default();
                    profile_stack.frames = ["hash", "handler", "worker"].map(String::from).into();
                    profile_stack.count = hot;
                    profile_stack
                },
                {
                    let mut profile_stack = ProfileStack::default();
                    profile_stack.frames = ["epoll_wait", "worker"].map(String::from).into();
                    profile_stack.count = 1;
                    profile_stack
                },
            ];
            profile
        }
    }

    #[test]
    fn windows_merge_by_time_and_are_bounded() {
        let mut p = Profiles::default();
        for i in 0..(WINDOWS as u64 + 5) {
            p.record(&window(i * 10_000, 3));
        }
        let all = p.merged(0, u64::MAX);
        assert_eq!(all.samples, WINDOWS as u64 * 4);
        assert_eq!(all.start_ms, 50_000, "the oldest five were evicted");
        let two = p.merged(100_000, 120_000);
        assert_eq!(two.samples, 8);
        assert!(two.folded.to_text().contains("worker;handler;hash 6\n"));
        let before = p.bytes();
        p.record(&window(10_000_000, 3));
        assert_eq!(p.bytes(), before, "same shape in, same shape out");
    }

    #[test]
    fn requested_profiles_are_kept_apart() {
        let mut p = Profiles::default();
        let mut r = window(0, 50);
        r.request_id = Some(9);
        p.record(&r);
        assert_eq!(p.merged(0, u64::MAX).samples, 0);
        assert_eq!(p.requested(9).map(|r| r.samples), Some(51));
        assert!(p.requested(10).is_none());
    }
}
