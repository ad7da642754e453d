//! Where instrumented futures wait: sampled captures of their await points.
//!
//! The instrumented wrapper owns the `Context` its future is polled with.
//! On a sampled poll (about [`DEFAULT_CAPTURES_PER_SECOND`] a second, shared
//! among the names, spread at random over each name's polls) it hands the
//! future a waker of its own over the real one. A leaf future that goes
//! `Pending` clones the waker to be woken later: at that moment the whole
//! async call chain, from the wrapper down to tokio's socket, timer or
//! semaphore, is on this thread's stack. The clone copies the registers and
//! the top of the stack into static memory (no allocation, no signal) and
//! returns a plain clone of the real waker, so nothing of lagscope stays
//! registered.
//!
//! A poll may clone the waker more than once: a timer registers before it
//! looks whether it has fired, so a poll that finishes a `sleep` and then
//! waits on a channel clones it in the sleep first; `timeout` registers its
//! future's wait, then its timer. The first clone and the last are both
//! copied, and the wait is the first unless that is a timer's and the last
//! is not ([`choose`]): a timer beside another wait is a deadline on it.
//!
//! If the poll returns `Pending`, the copy is handed to the agent, which
//! unwinds it with the binaries' call-frame information (no frame pointers
//! needed) and names it. The time from that `Pending` to the future's next
//! poll is charged to the site, weighted by the sampling interval, so the
//! totals estimate every wait and the shares stay unbiased.
//!
//! Bounded: captures per second adapt to the poll rate, stack copies and
//! outstanding captures are fixed pools (what does not fit is counted in
//! [`WaitProfile::dropped`]), sites are capped ([`MAX_SITES`], and
//! [`WINDOW_SITES`] per name in a window).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lagscope_wire::waits::{classify, WaitKind};
use lagscope_wire::{WaitProfile, WaitSite, OTHER_SITES};

/// Captures a second the sampling aims at by default, whatever the poll
/// rate.
pub(crate) const DEFAULT_CAPTURES_PER_SECOND: u32 = 32;
/// Most captures a second that can be asked for.
pub(crate) const MAX_CAPTURES_PER_SECOND: u32 = 1000;
/// Distinct sites kept; waits at further new stacks count under
/// [`OTHER_SITES`].
pub(crate) const MAX_SITES: usize = 1024;
/// Sites a window lists per name; the rest are summed into one.
pub(crate) const WINDOW_SITES: usize = 16;
/// Captures handed to the agent whose wait has not ended yet, kept at most
/// (the oldest are forgotten first, and counted as dropped).
const OUTSTANDING: usize = 4096;
/// Ended waits waiting for the agent at most.
const ENDED: usize = 4096;
/// Frames kept per capture.
const DEPTH: usize = 64;

/// Whether polls are sampled: an agent that reads the captures runs.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// Held by the one [`Waits`] of the process (it drains the static pools).
static CLAIMED: AtomicBool = AtomicBool::new(false);
/// The sampling interval of each group of names: each name (its order
/// modulo [`GROUPS`]) has its own interval, aimed at
/// its part of the captures a second: a name with few polls (a slow
/// endpoint) is not left without captures by a busy one, and its shares,
/// weighted by its own interval, stay unbiased.
static RATES: [Rate; GROUPS] = [const { Rate::new() }; GROUPS];
/// Names sampled apart; more share a group (and its interval).
const GROUPS: usize = 256;

/// One group's sampling interval and its polls.
struct Rate {
    /// Mean polls between two sampled ones.
    every: AtomicU32,
    /// A poll is sampled when its draw is at most this: `u32::MAX / every`.
    below: AtomicU32,
    /// Polls the sampled ones stood for, since the start.
    polls: AtomicU64,
}

impl Rate {
    const fn new() -> Rate {
        Rate {
            every: AtomicU32::new(1),
            below: AtomicU32::new(u32::MAX),
            polls: AtomicU64::new(0),
        }
    }
}

/// Captures handed to the agent, and those lost, since the start.
static CAPTURES: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Capture ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Waits that ended: (capture id, nanoseconds).
static ENDED_WAITS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

thread_local! {
    /// xorshift state for the draw of sampled polls.
    static SEED: Cell<u32> = const { Cell::new(0) };
}

/// Turns sampling on (an agent reads the captures) or off.
pub(crate) fn enable(on: bool) {
    ENABLED.store(on, Relaxed);
}

/// A sampled `Pending`: the capture the agent names, and when it began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting {
    id: u64,
    since: Instant,
}

impl Waiting {
    /// The capture's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// On every poll of an instrumented future of name `task`: whether to
/// sample this one, and if so its weight, the inverse of the chance it had.
/// Each poll is drawn on its own (one step of a thread-local xorshift), so
/// which polls are sampled owes nothing to the order polls come in.
#[inline]
pub(crate) fn sample_this_poll(task: usize) -> Option<u32> {
    if !ENABLED.load(Relaxed) {
        return None;
    }
    let rate = &RATES[task % GROUPS];
    let below = rate.below.load(Relaxed);
    let x = SEED
        .try_with(|s| {
            let mut x = s.get();
            if x == 0 {
                x = (crate::platform::current_tid() as u32) | 1;
            }
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            s.set(x);
            x
        })
        .ok()?;
    (x <= below).then(|| {
        let every = rate.every.load(Relaxed).max(1);
        rate.polls.fetch_add(u64::from(every), Relaxed);
        every
    })
}

/// Sets a group's mean polls between sampled ones, and the draw's bound.
fn set_every(group: usize, every: u32) {
    let every = every.max(1);
    RATES[group].every.store(every, Relaxed);
    RATES[group].below.store(u32::MAX / every, Relaxed);
}

/// Shares `budget` captures a second among groups polled at `rates` (polls
/// a second): the least polled first, each its equal part of what is left
/// or all its polls if fewer, so what a quiet group cannot use goes to the
/// busy ones. Returns each group's polls between captures.
fn intervals(rates: &[f64], budget: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..rates.len()).filter(|&g| rates[g] > 0.0).collect();
    order.sort_by(|&a, &b| rates[a].total_cmp(&rates[b]));
    let mut every = vec![1.0; rates.len()];
    let mut left = budget;
    for (i, &g) in order.iter().enumerate() {
        let part = left / (order.len() - i) as f64;
        let take = rates[g].min(part);
        every[g] = (rates[g] / take.max(f64::MIN_POSITIVE)).ceil().max(1.0);
        left -= take;
    }
    every
}

/// Charges a sampled `Pending` with the wait that ends now (the future is
/// polled again). Never blocks: if the agent holds the list, the wait is
/// dropped and counted.
pub(crate) fn ended(waiting: Waiting, now: Instant) {
    let ns =
        u64::try_from(now.saturating_duration_since(waiting.since).as_nanos()).unwrap_or(u64::MAX);
    match ENDED_WAITS.try_lock() {
        Ok(mut ended) if ended.len() < ENDED => ended.push((waiting.id, ns)),
        _ => {
            DROPPED.fetch_add(1, Relaxed);
        }
    }
}

/// Polls `poll` with a capturing waker over `cx`'s: a `Pending` with a
/// captured await point gives the [`Waiting`] to charge at the next poll.
pub(crate) fn poll_capturing<T>(
    cx: &mut Context<'_>,
    weight: u32,
    task: usize,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> (Poll<T>, Option<Waiting>) {
    // The first clone and the last (see the module's text on which is the
    // wait). A clone while another is being copied (a context lent to
    // another thread) is not taken.
    let taken: Mutex<Clones> = Mutex::new(Clones {
        first: None,
        last: None,
    });
    let on_clone = || {
        if let Ok(mut clones) = taken.try_lock() {
            if clones.first.is_none() {
                clones.first = capture::take();
            } else {
                // The previous last comes free before the next is taken.
                clones.last = None;
                clones.last = capture::take();
            }
        }
    };
    let out = crate::platform::waker::poll_with_clone_hook(cx, &on_clone, poll);
    let clones = taken.into_inner().unwrap_or_else(|p| p.into_inner());
    if out.is_ready() {
        return (out, None);
    }
    let Some(first) = clones.first else {
        return (out, None);
    };
    let id = NEXT_ID.fetch_add(1, Relaxed);
    if !capture::publish(first, id, weight, task, false) {
        DROPPED.fetch_add(1, Relaxed);
        return (out, None);
    }
    // Published after the first, so the agent never sees it before.
    if let Some(last) = clones.last {
        capture::publish(last, id, weight, task, true);
    }
    CAPTURES.fetch_add(1, Relaxed);
    let waiting = Waiting {
        id,
        since: Instant::now(),
    };
    (out, Some(waiting))
}

/// The copies of a sampled poll's first and last waker clones.
struct Clones {
    first: Option<capture::Taken>,
    last: Option<capture::Taken>,
}

/// Whether a poll's last waker clone (if it cloned more than once), not
/// its first, is the wait, from their kinds: the first is, unless it is a
/// timer's and the last is not.
fn choose(first: WaitKind, last: Option<WaitKind>) -> bool {
    first == WaitKind::Timer && last.is_some_and(|k| k != WaitKind::Timer)
}

/// Taking and handing over the stack copies: static memory, no allocation.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
mod capture;

/// Where stacks cannot be copied, nothing is captured.
#[cfg(not(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu")))]
mod capture {
    pub(crate) const SLOTS: usize = 64;

    pub(crate) struct Taken;

    pub(crate) fn take() -> Option<Taken> {
        None
    }

    pub(crate) fn publish(_: Taken, _: u64, _: u32, _: usize, _: bool) -> bool {
        false
    }

    pub(crate) fn drain(_: usize) -> Vec<super::Drained> {
        Vec::new()
    }

    pub(crate) fn names(_: &[usize]) -> Vec<String> {
        Vec::new()
    }
}

/// A published capture as the agent reads it.
pub(crate) struct Drained {
    id: u64,
    weight: u32,
    task: usize,
    /// The poll's last clone, beside the first of the same id.
    last: bool,
    addresses: Vec<usize>,
}

/// The frames of a capture that belong to the wait: from the call that
/// cloned the waker (lagscope's own clone and capture dropped) out to the
/// future the wrapper polls (the wrapper and the runtime above it dropped).
fn wait_frames(mut names: Vec<String>) -> Vec<String> {
    if let Some(i) = names.iter().position(|n| n.contains("waker::clone_waker")) {
        names.drain(..=i);
    }
    // The waker's own `clone`, inlined or not, is not the await point.
    while names
        .first()
        .is_some_and(|n| n.contains("core::task::wake::Waker") || n.starts_with("<&T as "))
    {
        names.remove(0);
    }
    // The wrapper's own frames (lagscope's, and the tokio-metrics timing it
    // wraps futures in) and the runtime above them are not the wait's.
    if let Some(end) = names.iter().position(|n| {
        matches!(
            lagscope_wire::frames::frame_crate(n),
            Some("lagscope" | "tokio_metrics")
        )
    }) {
        names.truncate(end);
    }
    names
}

/// The kind of `site` among `sites`.
fn kind_of(sites: &[Site], site: u32) -> WaitKind {
    sites.get(site as usize).map_or(WaitKind::Other, |s| s.kind)
}

/// One interned site: the wait's frames and kind.
struct Site {
    kind: WaitKind,
    frames: Arc<[String]>,
}

/// The agent's side: names the captures and charges the waits that ended.
/// One per process at a time (it drains the static pools).
pub(crate) struct Waits {
    sites: Vec<Site>,
    by_frames: HashMap<Arc<[String]>, u32>,
    /// Captures whose wait has not ended: id → (task, site, weight).
    outstanding: BTreeMap<u64, (usize, u32, u32)>,
    /// Last clones read before their first: id → site.
    lasts: HashMap<u64, u32>,
    /// This window: (task, site) → (weighted ns, waits).
    window: HashMap<(usize, u32), (u128, u64)>,
    window_start_ms: u64,
    /// Captures a second aimed at.
    per_second: u32,
    /// For the sampling intervals' adjustment: each group's polls then.
    polls_then: Vec<u64>,
    adjusted_at: Instant,
}

/// The site index of [`OTHER_SITES`].
const OTHER_SITE: u32 = u32::MAX;

impl Waits {
    /// Starts sampling polls, aiming at `per_second` captures a second;
    /// sampling stops when this is dropped. `None` while another agent of
    /// this process samples them.
    pub(crate) fn start(per_second: u32) -> Option<Waits> {
        if CLAIMED.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        for group in 0..GROUPS {
            set_every(group, 1);
        }
        enable(true);
        Some(Waits {
            sites: Vec::new(),
            by_frames: HashMap::new(),
            outstanding: BTreeMap::new(),
            lasts: HashMap::new(),
            window: HashMap::new(),
            window_start_ms: now_ms(),
            per_second: per_second.clamp(1, MAX_CAPTURES_PER_SECOND),
            polls_then: RATES.iter().map(|r| r.polls.load(Relaxed)).collect(),
            adjusted_at: Instant::now(),
        })
    }

    /// Names the captures published so far and charges the waits that
    /// ended; then sets the sampling interval for the next stretch.
    pub(crate) fn drain(&mut self) {
        let mut drained = capture::drain(DEPTH);
        // A poll's first clone before its last.
        drained.sort_by_key(|d| d.last);
        for d in drained {
            let site = self.site_of(&d.addresses);
            if d.last {
                match self.outstanding.get_mut(&d.id) {
                    Some(entry) => {
                        if choose(
                            kind_of(&self.sites, entry.1),
                            Some(kind_of(&self.sites, site)),
                        ) {
                            entry.1 = site;
                        }
                    }
                    // Its first was published, but not yet when the pool
                    // was read: it comes with the next drain.
                    None => {
                        if self.lasts.len() >= OUTSTANDING {
                            self.lasts.clear();
                        }
                        self.lasts.insert(d.id, site);
                    }
                }
                continue;
            }
            let mut site = site;
            if let Some(last) = self.lasts.remove(&d.id) {
                if choose(kind_of(&self.sites, site), Some(kind_of(&self.sites, last))) {
                    site = last;
                }
            }
            if self.outstanding.len() >= OUTSTANDING {
                self.outstanding.pop_first();
                DROPPED.fetch_add(1, Relaxed);
            }
            self.outstanding.insert(d.id, (d.task, site, d.weight));
        }
        let ended = std::mem::take(&mut *ENDED_WAITS.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, ns) in ended {
            let Some((task, site, weight)) = self.outstanding.remove(&id) else {
                continue;
            };
            if weight == 0 {
                continue; // A stuck future's probe: no sampled wait.
            }

            let slot = self.window.entry((task, site)).or_default();
            slot.0 += u128::from(ns) * u128::from(weight);
            slot.1 += 1;
        }
        self.adjust();
    }

    /// How often [`Waits::drain`] must run for the stack copies to come
    /// free: an eighth of the pool at the aimed rate.
    pub(crate) fn drain_every(&self) -> Duration {
        // Two copies a capture at most (a poll's first clone and last).
        let quarter = (capture::SLOTS / 8) as f64;
        Duration::from_secs_f64(quarter / f64::from(self.per_second))
            .min(Duration::from_millis(250))
    }

    /// Aims the sampled polls at the rate asked for, from the polls of the
    /// last stretch.
    fn adjust(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.adjusted_at);
        if elapsed < Duration::from_millis(200) {
            return;
        }
        let polls: Vec<u64> = RATES.iter().map(|r| r.polls.load(Relaxed)).collect();
        let rates: Vec<f64> = polls
            .iter()
            .zip(&self.polls_then)
            .map(|(now, then)| now.saturating_sub(*then) as f64 / elapsed.as_secs_f64())
            .collect();
        for (group, next) in intervals(&rates, f64::from(self.per_second))
            .into_iter()
            .enumerate()
        {
            let every = f64::from(RATES[group].every.load(Relaxed).max(1));
            // Halve at most per stretch while the rate falls, so a pause
            // does not make the next burst sample every poll.
            let next = next.max(every / 2.0).min(f64::from(u32::MAX / 4)) as u32;
            set_every(group, next);
        }
        self.polls_then = polls;
        self.adjusted_at = now;
    }

    /// The kind and frames of capture `id`, if it is outstanding (its
    /// future is still pending there).
    pub(crate) fn point_of(&self, id: u64) -> Option<(WaitKind, Vec<String>)> {
        let &(_, site, _) = self.outstanding.get(&id)?;
        match self.sites.get(site as usize) {
            Some(s) => Some((s.kind, s.frames.to_vec())),
            None => Some((WaitKind::Other, vec![OTHER_SITES.to_string()])),
        }
    }

    fn site_of(&mut self, addresses: &[usize]) -> u32 {
        self.intern(wait_frames(capture::names(addresses)))
    }

    /// The site of a wait's frames, new ones numbered until [`MAX_SITES`];
    /// beyond it, [`OTHER_SITE`].
    fn intern(&mut self, frames: Vec<String>) -> u32 {
        let frames: Arc<[String]> = frames.into();
        if let Some(&site) = self.by_frames.get(&frames) {
            return site;
        }
        if self.sites.len() >= MAX_SITES {
            return OTHER_SITE;
        }
        let site = self.sites.len() as u32;
        self.sites.push(Site {
            kind: classify(&frames),
            frames: frames.clone(),
        });
        self.by_frames.insert(frames, site);
        site
    }

    /// The waits that ended since the last window, by name and site, with
    /// `name` giving each task's name; `None` when none ended.
    pub(crate) fn window(&mut self, name: impl Fn(usize) -> Option<String>) -> Option<WaitProfile> {
        self.drain();
        let end_ms = now_ms();
        let start_ms = std::mem::replace(&mut self.window_start_ms, end_ms);
        if self.window.is_empty() {
            return None;
        }
        let mut by_task: BTreeMap<usize, Vec<(u32, u128, u64)>> = BTreeMap::new();
        for ((task, site), (ns, n)) in self.window.drain() {
            by_task.entry(task).or_default().push((site, ns, n));
        }
        let mut profile = WaitProfile::default();
        profile.start_ms = start_ms;
        profile.end_ms = end_ms;
        profile.captures = CAPTURES.load(Relaxed);
        profile.dropped = DROPPED.load(Relaxed);
        for (task, mut sites) in by_task {
            let Some(task_name) = name(task) else {
                continue;
            };
            sites.sort_by_key(|&(_, ns, _)| std::cmp::Reverse(ns));
            let rest = sites.split_off(sites.len().min(WINDOW_SITES));
            let mut listed: Vec<(u32, u128, u64)> = sites;
            if !rest.is_empty() {
                let (ns, n) = rest
                    .iter()
                    .fold((0u128, 0u64), |(a, b), &(_, ns, n)| (a + ns, b + n));
                listed.push((OTHER_SITE, ns, n));
            }
            for (site, ns, n) in listed {
                let mut s = WaitSite::default();
                s.task = task_name.clone();
                match self.sites.get(site as usize) {
                    Some(known) => {
                        s.kind = known.kind.name().to_string();
                        s.frames = known.frames.to_vec();
                    }
                    None => {
                        s.kind = WaitKind::Other.name().to_string();
                        s.frames = vec![OTHER_SITES.to_string()];
                    }
                }
                s.wait_us = u64::try_from(ns / 1000).unwrap_or(u64::MAX);
                s.waits = n;
                profile.sites.push(s);
            }
        }
        Some(profile)
    }
}

impl Drop for Waits {
    fn drop(&mut self) {
        enable(false);
        // What is still published is the next reader's to drain.
        CLAIMED.store(false, std::sync::atomic::Ordering::Release);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_the_first_clone_unless_a_timer_came_first_beside_another_wait() {
        // One clone: that is the wait.
        assert!(!choose(WaitKind::Timer, None));
        assert!(!choose(WaitKind::Socket, None));
        // `timeout(read)`: the read, then its deadline.
        assert!(!choose(WaitKind::Socket, Some(WaitKind::Timer)));
        // A sleep that ended, then a channel: the channel.
        assert!(choose(WaitKind::Timer, Some(WaitKind::Channel)));
        // Two timers, two channels: the first.
        assert!(!choose(WaitKind::Timer, Some(WaitKind::Timer)));
        assert!(!choose(WaitKind::Channel, Some(WaitKind::Lock)));
    }

    #[test]
    fn a_quiet_name_gets_its_part_of_the_captures_beside_a_busy_one() {
        // 1000 polls a second of one name, 100 of another, 2 of a third,
        // none of the rest; 32 captures a second.
        let mut rates = vec![0.0; 8];
        rates[0] = 1000.0;
        rates[1] = 100.0;
        rates[2] = 2.0;
        let every = intervals(&rates, 32.0);
        // The third takes all its 2, the other two 15 each.
        assert_eq!(every[2], 1.0);
        assert_eq!(every[1], (100.0f64 / 15.0).ceil());
        assert_eq!(every[0], (1000.0f64 / 15.0).ceil());
        assert!(every[3..].iter().all(|&e| e == 1.0));
        let captures: f64 = rates.iter().zip(&every).map(|(r, e)| r / e).sum();
        assert!((28.0..=32.0).contains(&captures), "{captures}");
        // Fewer polls than the budget: every poll.
        assert!(intervals(&[3.0, 4.0], 32.0).iter().all(|&e| e == 1.0));
    }

    #[test]
    fn about_one_poll_in_every_is_sampled_with_that_weight() {
        enable(true);
        set_every(3, 16);
        let sampled: Vec<u32> = (0..64_000).filter_map(|_| sample_this_poll(3)).collect();
        enable(false);
        assert!((3_400..4_600).contains(&sampled.len()), "{}", sampled.len());
        assert!(sampled.iter().all(|&w| w == 16));
    }

    #[test]
    fn sites_are_capped_and_waits_beyond_the_cap_are_summed() {
        // Built by hand, not started: no sampling is switched on.
        let mut w = Waits {
            sites: Vec::new(),
            by_frames: HashMap::new(),
            outstanding: BTreeMap::new(),
            lasts: HashMap::new(),
            window: HashMap::new(),
            window_start_ms: 0,
            per_second: DEFAULT_CAPTURES_PER_SECOND,
            polls_then: vec![0; GROUPS],
            adjusted_at: Instant::now(),
        };
        // 10,000 distinct await paths (ids in a function name, say).
        let sites: Vec<u32> = (0..10_000)
            .map(|i| w.intern(vec!["tokio::time::x".into(), format!("svc::path_{i}")]))
            .collect();
        assert_eq!(w.sites.len(), MAX_SITES);
        assert_eq!(
            sites.iter().filter(|&&s| s == OTHER_SITE).count(),
            10_000 - MAX_SITES
        );
        assert_eq!(
            w.intern(vec!["tokio::time::x".into(), "svc::path_7".into()]),
            7
        );
        // A window lists at most WINDOW_SITES per name, the rest summed.
        for (i, &site) in sites.iter().enumerate().take(100) {
            w.window.insert((0, site), (1_000_000 * (i as u128 + 1), 1));
        }
        let profile = w.window(|_| Some("GET /".into())).expect("waits");
        assert_eq!(profile.sites.len(), WINDOW_SITES + 1);
        let rest = profile.sites.last().expect("the rest");
        assert_eq!(rest.frames, [OTHER_SITES]);
        assert_eq!(rest.waits, 100 - WINDOW_SITES as u64);
        // Never started: dropping it would switch sampling off for the
        // other tests of this binary.
        std::mem::forget(w);
    }

    #[test]
    fn wait_frames_drop_the_capture_and_the_runtime() {
        let names = [
            "lagscope::tasks::wait::capture::take",
            "lagscope::platform::waker::clone_waker",
            "<core::task::wake::Waker as core::clone::Clone>::clone",
            "tokio::runtime::time::entry::TimerEntry::poll_elapsed",
            "svc::backoff::{{closure}}",
            "lagscope::tasks::wait::poll_capturing",
            "<lagscope::tasks::Timed<F> as core::future::future::Future>::poll",
            "tokio::runtime::task::harness::poll_future",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            wait_frames(names),
            vec![
                "tokio::runtime::time::entry::TimerEntry::poll_elapsed".to_string(),
                "svc::backoff::{{closure}}".to_string(),
            ]
        );
    }
}
