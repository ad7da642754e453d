//! An instance's wait profiles: where its instrumented futures waited, one
//! window per sample that carried one, each the estimated wait by name,
//! kind and await point, frames interned like the CPU windows'; and the
//! stuck futures its latest sample listed.

use std::collections::BTreeMap;

use lagscope_wire::waits::{await_point, WaitKind};
use lagscope_wire::{StuckRequest, WaitProfile};

use super::windows::{Measured, WindowRing};
use crate::flame::Folded;

/// Windows kept per instance (15 min of 1 s windows).
pub const WINDOWS: usize = 900;

#[derive(Debug)]
struct Window {
    end_ms: u64,
    start_ms: u64,
    captures: u64,
    dropped: u64,
    /// (name, kind, frames innermost first, µs, waits).
    sites: Vec<(u32, WaitKind, Vec<u32>, u64, u64)>,
}

impl Measured for Window {
    fn bytes(&self) -> u64 {
        48 + self
            .sites
            .iter()
            .map(|(_, _, f, _, _)| 40 + 4 * f.len() as u64)
            .sum::<u64>()
    }
}

/// Wait windows of one instance, and its stuck list.
#[derive(Debug, Default)]
pub struct WaitProfiles {
    windows: WindowRing<Window, WINDOWS>,
    stuck: Vec<StuckRequest>,
    /// Stuck futures per name, listed or not.
    stuck_counts: Vec<(String, u64)>,
    stuck_at_ms: u64,
}

/// One await point of one name over a span.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitPoint {
    /// The kind of wait.
    pub kind: WaitKind,
    /// Frames, innermost first.
    pub frames: Vec<String>,
    /// Estimated µs waited here.
    pub wait_us: u64,
    /// Sampled waits.
    pub waits: u64,
}

/// Waits by name over a span, from one or more windows (and instances).
#[derive(Debug, Default)]
pub struct WaitsMerged {
    /// Start of the span covered.
    pub start_ms: u64,
    /// End of the span covered.
    pub end_ms: u64,
    /// Captures, as of the latest window read (summed over instances).
    pub captures: u64,
    /// Captures lost, likewise.
    pub dropped: u64,
    /// By name: the await points, most wait first.
    pub by_task: BTreeMap<String, Vec<WaitPoint>>,
    /// Stuck futures the latest samples listed, with their instance.
    pub stuck: Vec<(String, StuckRequest)>,
    /// Stuck futures per name, listed or not, summed over instances.
    pub stuck_counts: BTreeMap<String, u64>,
}

impl WaitsMerged {
    /// Adds another instance's waits into these.
    pub fn absorb(&mut self, other: WaitsMerged) {
        if self.end_ms == 0 {
            self.start_ms = other.start_ms;
        } else if other.end_ms != 0 {
            self.start_ms = self.start_ms.min(other.start_ms);
        }
        self.end_ms = self.end_ms.max(other.end_ms);
        self.captures += other.captures;
        self.dropped += other.dropped;
        for (task, points) in other.by_task {
            let mine = self.by_task.entry(task).or_default();
            for p in points {
                match mine
                    .iter_mut()
                    .find(|m| m.kind == p.kind && m.frames == p.frames)
                {
                    Some(m) => {
                        m.wait_us += p.wait_us;
                        m.waits += p.waits;
                    }
                    None => mine.push(p),
                }
            }
            mine.sort_by_key(|p| std::cmp::Reverse(p.wait_us));
        }
        self.stuck.extend(other.stuck);
        for (task, n) in other.stuck_counts {
            *self.stuck_counts.entry(task).or_default() += n;
        }
        self.stuck
            .sort_by_key(|(_, s)| std::cmp::Reverse(s.pending_ms));
    }

    /// Total estimated µs waited by `task`.
    pub fn total_us(&self, task: &str) -> u64 {
        self.by_task
            .get(task)
            .map_or(0, |points| points.iter().map(|p| p.wait_us).sum())
    }

    /// The waits as folded stacks weighted in µs: the name at the root, then
    /// the kind, then the await point's frames outermost first.
    pub fn folded(&self, task: Option<&str>) -> Folded {
        let mut folded = Folded::default();
        for (name, points) in &self.by_task {
            if task.is_some_and(|t| t != name) {
                continue;
            }
            for p in points {
                let kind = format!("[{}]", p.kind.name());
                let root_first = std::iter::once(name.as_str())
                    .chain(p.frames.iter().rev().map(String::as_str))
                    .chain(std::iter::once(kind.as_str()));
                folded.add(root_first, p.wait_us.max(1));
            }
        }
        folded
    }
}

impl WaitProfiles {
    /// Keeps window `p`.
    pub fn record(&mut self, p: &WaitProfile) {
        let sites = p
            .sites
            .iter()
            .map(|s| {
                let task = self.windows.intern(std::iter::once(&s.task))[0];
                (
                    task,
                    WaitKind::from_name(&s.kind),
                    self.windows.intern(&s.frames),
                    s.wait_us,
                    s.waits,
                )
            })
            .collect();
        self.windows.push(Window {
            start_ms: p.start_ms,
            end_ms: p.end_ms,
            captures: p.captures,
            dropped: p.dropped,
            sites,
        });
    }

    /// Keeps the stuck list of the latest sample, taken at `at_ms`, and
    /// its per-name counts (`counts`: names with none are left out).
    pub fn set_stuck<'a>(
        &mut self,
        stuck: &[StuckRequest],
        counts: impl IntoIterator<Item = (&'a str, u64)>,
        at_ms: u64,
    ) {
        self.stuck = stuck.to_vec();
        self.stuck_counts = counts
            .into_iter()
            .filter(|&(_, n)| n > 0)
            .map(|(t, n)| (t.to_string(), n))
            .collect();
        self.stuck_at_ms = at_ms;
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> u64 {
        self.windows.bytes()
            + self
                .stuck
                .iter()
                .map(|s| {
                    64 + s.task.len() as u64 + s.frames.iter().map(|f| f.len() as u64).sum::<u64>()
                })
                .sum::<u64>()
    }

    /// The waits of the windows ending in `[from_ms, to_ms]`, and the stuck
    /// list if its sample is in the span, as instance `instance`.
    pub fn merged(&self, instance: &str, from_ms: u64, to_ms: u64) -> WaitsMerged {
        let mut m = WaitsMerged::default();
        let mut points: BTreeMap<(u32, WaitKind, &[u32]), (u64, u64)> = BTreeMap::new();
        for w in self
            .windows
            .iter()
            .filter(|w| w.end_ms >= from_ms && w.end_ms <= to_ms)
        {
            if m.end_ms == 0 {
                m.start_ms = w.start_ms;
            }
            m.end_ms = w.end_ms;
            m.captures = w.captures;
            m.dropped = w.dropped;
            for (task, kind, frames, us, n) in &w.sites {
                let p = points.entry((*task, *kind, frames)).or_default();
                p.0 += us;
                p.1 += n;
            }
        }
        for ((task, kind, frames), (wait_us, waits)) in points {
            m.by_task
                .entry(self.windows.name(task).to_string())
                .or_default()
                .push(WaitPoint {
                    kind,
                    frames: frames
                        .iter()
                        .map(|&f| self.windows.name(f).to_string())
                        .collect(),
                    wait_us,
                    waits,
                });
        }
        for points in m.by_task.values_mut() {
            points.sort_by_key(|p| std::cmp::Reverse(p.wait_us));
        }
        if self.stuck_at_ms >= from_ms && self.stuck_at_ms <= to_ms {
            m.stuck = self
                .stuck
                .iter()
                .map(|s| (instance.to_string(), s.clone()))
                .collect();
            m.stuck_counts = self.stuck_counts.iter().cloned().collect();
        }
        m
    }
}

/// "orders::fetch_price → reqwest::Client::send" for a point's frames.
pub fn label(frames: &[String]) -> String {
    await_point(frames).label()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagscope_wire::WaitSite;

    fn site(task: &str, kind: WaitKind, frames: &[&str], wait_us: u64) -> WaitSite {
        let mut s = WaitSite::default();
        s.task = task.into();
        s.kind = kind.name().into();
        s.frames = frames.iter().map(|f| f.to_string()).collect();
        s.wait_us = wait_us;
        s.waits = 1;
        s
    }

    #[test]
    fn windows_in_the_span_add_up_by_name_and_point() {
        let mut w = WaitProfiles::default();
        for (end, us) in [(1_000, 600), (2_000, 1_200), (9_000, 5_000)] {
            let mut p = WaitProfile::default();
            p.start_ms = end - 1_000;
            p.end_ms = end;
            p.captures = end;
            p.sites = vec![
                site(
                    "GET /a",
                    WaitKind::Socket,
                    &["tokio::net::x", "svc::fetch"],
                    us,
                ),
                site(
                    "GET /a",
                    WaitKind::Timer,
                    &["tokio::time::x", "svc::back_off"],
                    us / 6,
                ),
            ];
            w.record(&p);
        }
        let mut stuck = StuckRequest::default();
        stuck.task = "GET /a".into();
        stuck.pending_ms = 12_000;
        w.set_stuck(&[stuck], [("GET /a", 3), ("GET /b", 0)], 2_000);
        let m = w.merged("i-1", 0, 2_500);
        assert_eq!((m.start_ms, m.end_ms, m.captures), (0, 2_000, 2_000));
        let points = &m.by_task["GET /a"];
        assert_eq!(points[0].kind, WaitKind::Socket);
        assert_eq!(points[0].wait_us, 1_800);
        assert_eq!(points[1].wait_us, 300);
        assert_eq!(m.total_us("GET /a"), 2_100);
        assert_eq!(m.stuck.len(), 1);
        // Three stuck, one listed; names with none are not kept.
        assert_eq!(m.stuck_counts.get("GET /a"), Some(&3));
        assert!(!m.stuck_counts.contains_key("GET /b"));
        assert_eq!(label(&points[0].frames), "svc::fetch → tokio::net::x");
        let folded = m.folded(None).to_text();
        assert!(
            folded.contains("GET /a;svc::fetch;tokio::net::x;[socket] 1800"),
            "{folded}"
        );
        // Another instance's adds up; the stuck list is the sample's own.
        let mut all = WaitsMerged::default();
        all.absorb(m);
        all.absorb(w.merged("i-2", 0, 2_500));
        assert_eq!(all.total_us("GET /a"), 4_200);
        assert_eq!(all.stuck.len(), 2);
        assert_eq!(all.stuck_counts.get("GET /a"), Some(&6));
        assert!(w.merged("i-1", 3_000, 4_000).stuck.is_empty());
    }
}
