//! The agent's side of heap sampling: unwinds the sampled stacks, interns
//! them as sites, and reads the live table for windows of live and
//! allocated bytes by site.

use super::*;

/// The agent side: unwinds sampled stacks and reads the live table. One per
/// process at a time (it frees the raw slots).
pub(crate) struct Sites {
    /// Interned stacks (addresses), by site number.
    stacks: Vec<std::sync::Arc<[usize]>>,
    /// The same stacks (shared, not copied), to find a stack's site.
    by_stack: HashMap<std::sync::Arc<[usize]>, u32>,
    /// Bytes allocated per site since sampling started ([`NO_SITE`]: by
    /// stacks not kept).
    allocated: HashMap<u32, u64>,
    /// When sampling started, ms since the Unix epoch.
    started_ms: u64,
    /// The end of the last window and the allocated bytes per site then.
    window: (u64, HashMap<u32, u64>),
}

/// Sites a window carries at most: the most live bytes, then the most
/// allocated; the rest are summed into one site.
pub(super) const WINDOW_SITES: usize = 128;
/// Of which at least this many are the most allocated.
pub(super) const WINDOW_SITES_BY_ALLOCATED: usize = 32;

/// Held by the one [`Sites`] of the process.
pub(super) static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Distinct sites kept; samples of further new stacks have no site.
pub(super) const MAX_SITES: usize = 4096;
/// Frames kept per site.
pub(super) const DEPTH: usize = 64;

impl Sites {
    /// The process's one reader of the samples; `None` while another
    /// exists (another agent in this process profiles the heap).
    pub(crate) fn claim() -> Option<Self> {
        if CLAIMED.swap(true, AcqRel) {
            return None;
        }
        Some(Sites {
            stacks: Vec::new(),
            by_stack: HashMap::new(),
            allocated: HashMap::new(),
            started_ms: now_ms(),
            window: (now_ms(), HashMap::new()),
        })
    }

    /// Unwinds every sampled stack published so far and gives its table
    /// entry the site; returns how many. Called often (every 100 ms, more
    /// often in bursts: see [`Sites::busy`]) so raw slots come free.
    pub(crate) fn drain(&mut self) -> usize {
        // The agent's own allocations meanwhile (unwinding, naming) are not
        // sampled: they would fill the slots this frees.
        unsampled(|| self.drain_now())
    }

    /// The wait before the next drain, after one that unwound `drained`
    /// stacks sampled over `since_last`: as long as samples at that rate
    /// take to fill half the stack copies, between `shortest` and
    /// `longest`. Every wake-up of the draining thread takes a CPU from the
    /// service (and its caches), so it comes no more often than the copies
    /// need.
    pub(crate) fn next_drain(
        since_last: std::time::Duration,
        drained: usize,
        shortest: std::time::Duration,
        longest: std::time::Duration,
    ) -> std::time::Duration {
        if drained == 0 {
            return longest;
        }
        let per_second = drained as f64 / since_last.as_secs_f64().max(1e-3);
        std::time::Duration::from_secs_f64(COPY_SLOTS as f64 / 2.0 / per_second)
            .clamp(shortest, longest)
    }

    fn drain_now(&mut self) -> usize {
        // The site each ready raw slot's stack was given; the slots stay
        // taken until the table has been told, so none is reused meanwhile.
        let mut sited: Vec<(usize, u32, Ready<'static>)> = Vec::new();
        for (i, raw) in RAW.iter().enumerate() {
            let Some(hold) = raw.slot.ready() else {
                continue;
            };
            let frames = self.unwind(raw);
            let weight = raw.weight.load(Relaxed);
            let site = match self.by_stack.get(frames.as_slice()) {
                Some(&s) => s,
                None if self.stacks.len() < MAX_SITES => {
                    let s = self.stacks.len() as u32;
                    let frames: std::sync::Arc<[usize]> = frames.into();
                    self.stacks.push(frames.clone());
                    self.by_stack.insert(frames, s);
                    s
                }
                None => NO_SITE,
            };
            *self.allocated.entry(site).or_default() += weight;
            sited.push((i, site, hold));
        }
        // Each sample's table entry learns its site. The entry may have
        // been freed and taken again since; then it no longer holds this raw
        // slot's mark (the slot stays taken until `sited` drops, so no other
        // sample can hold it) and is left alone.
        for &(i, site, _) in &sited {
            let Some(entry) = RAW[i].entry.load(Relaxed).checked_sub(1) else {
                continue;
            };
            if let Some(slot) = TABLE.get(entry) {
                let _ = slot
                    .site
                    .compare_exchange(PENDING | i as u32, site, AcqRel, Relaxed);
            }
        }
        // Dropping the holds frees the raw slots.
        let drained = sited.len();
        drop(sited);
        drained
    }

    #[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
    fn unwind(&self, raw: &Raw) -> Vec<usize> {
        // The frame-pointer walk, shaped as the unwinder takes it: the
        // instruction, then return addresses.
        let chain = raw.chain_len.load(Relaxed).min(CHAIN);
        let fp_frames: Vec<usize> = std::iter::once(raw.pc.load(Relaxed))
            .chain(raw.chain[..chain].iter().map(|a| a.load(Relaxed)))
            .collect();
        match raw.copy.load(Relaxed).checked_sub(1) {
            Some(c) => COPIES.unwind(c, &fp_frames, DEPTH),
            None => fp_frames,
        }
    }

    #[cfg(not(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu")))]
    fn unwind(&self, raw: &Raw) -> Vec<usize> {
        vec![raw.pc.load(Relaxed)]
    }

    /// Live bytes by site now, and bytes allocated since sampling started.
    pub(crate) fn profile(&mut self) -> HeapProfile {
        unsampled(|| {
            let (live, end_ms) = self.live_now();
            let allocated = self.allocated.clone();
            let sites = self.named(live, allocated);
            self.profile_of(self.started_ms, end_ms, sites)
        })
    }

    /// Live bytes by site now, and bytes allocated since the last window:
    /// what the agent ships, the sites beyond [`WINDOW_SITES`] summed into
    /// one.
    pub(crate) fn window(&mut self) -> HeapProfile {
        unsampled(|| {
            let (live, end_ms) = self.live_now();
            let (start_ms, before) =
                std::mem::replace(&mut self.window, (end_ms, self.allocated.clone()));
            let allocated = self
                .allocated
                .iter()
                .map(|(&site, &now)| (site, now - before.get(&site).copied().unwrap_or(0)))
                .filter(|&(_, bytes)| bytes > 0)
                .collect();
            let sites = capped(self.named(live, allocated), WINDOW_SITES);
            self.profile_of(start_ms, end_ms, sites)
        })
    }

    /// Live bytes by site, and when they were read.
    fn live_now(&mut self) -> (HashMap<u32, u64>, u64) {
        self.drain_now();
        let unsited = UNSITED_ALLOCATED.swap(0, Relaxed);
        if unsited > 0 {
            *self.allocated.entry(NO_SITE).or_default() += unsited;
        }
        let mut live: HashMap<u32, u64> = HashMap::new();
        for slot in &TABLE {
            let address = slot.address.load(Acquire);
            if address == EMPTY || address == GONE {
                continue;
            }
            let site = slot.site.load(Acquire);
            if site & PENDING != 0 && site != NO_SITE {
                continue; // Not unwound yet: in the next profile.
            }
            *live.entry(site).or_default() += slot.weight.load(Relaxed);
        }
        (live, now_ms())
    }

    /// The sites with live or allocated bytes, named, most live first.
    fn named(&self, live: HashMap<u32, u64>, allocated: HashMap<u32, u64>) -> Vec<HeapSite> {
        let mut seen: Vec<u32> = live.keys().chain(allocated.keys()).copied().collect();
        seen.sort_unstable();
        seen.dedup();
        let mut sites: Vec<HeapSite> = seen
            .into_iter()
            .map(|site| {
                let mut heap_site = HeapSite::default();
                heap_site.frames = match self.stacks.get(site as usize) {
                    Some(addresses) => without_the_allocator(
                        crate::platform::stack::symbolize(addresses)
                            .into_iter()
                            .map(|f| f.function.unwrap_or_else(|| format!("{:#x}", f.address)))
                            .collect(),
                    ),
                    None => vec![NOT_KEPT.to_string()],
                };
                heap_site.live_bytes = live.get(&site).copied().unwrap_or(0);
                heap_site.allocated_bytes = allocated.get(&site).copied().unwrap_or(0);
                heap_site
            })
            .collect();
        sites.sort_by_key(|s| std::cmp::Reverse((s.live_bytes, s.allocated_bytes)));
        sites
    }

    fn profile_of(&self, start_ms: u64, end_ms: u64, sites: Vec<HeapSite>) -> HeapProfile {
        {
            let mut heap_profile = HeapProfile::default();
            heap_profile.start_ms = start_ms;
            heap_profile.end_ms = end_ms;
            heap_profile.sample_bytes = mean();
            heap_profile.sites = sites;
            heap_profile.samples = SAMPLES.load(Relaxed);
            heap_profile.dropped = TABLE_FULL.load(Relaxed) + NO_STACK.load(Relaxed);
            heap_profile
        }
    }
}

/// Heap windows on their way from the heap thread to the sampler: the
/// newest one, with the allocations of any not taken merged in.
#[derive(Debug, Default)]
pub(crate) struct Windows(std::sync::Mutex<Option<HeapProfile>>);

impl Windows {
    /// Hands a window over.
    pub(crate) fn put(&self, window: HeapProfile) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let window = match slot.take() {
            Some(older) => merged(older, window),
            None => window,
        };
        *slot = Some(window);
    }

    /// The window handed over since the last call, if any.
    pub(crate) fn take(&self) -> Option<HeapProfile> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// `newer` covering `older`'s window too: its live bytes, and both
/// windows' allocations.
pub(super) fn merged(older: HeapProfile, mut newer: HeapProfile) -> HeapProfile {
    newer.start_ms = older.start_ms;
    for site in older.sites {
        match newer.sites.iter_mut().find(|s| s.frames == site.frames) {
            Some(s) => s.allocated_bytes += site.allocated_bytes,
            None if site.allocated_bytes > 0 => newer.sites.push({
                let mut heap_site = site;
                heap_site.live_bytes = 0;
                heap_site
            }),
            None => {}
        }
    }
    newer
        .sites
        .sort_by_key(|s| std::cmp::Reverse((s.live_bytes, s.allocated_bytes)));
    newer.sites = capped(newer.sites, WINDOW_SITES);
    newer
}

/// The site of samples whose stacks were not kept (beyond the 4,096 distinct
/// sites kept).
pub const NOT_KEPT: &str = "[stack not kept]";

/// `sites` (most live first) cut to `max`: the most live, and at least
/// [`WINDOW_SITES_BY_ALLOCATED`] of the most allocated among the others; the
/// rest summed into one [`lagscope_wire::OTHER_SITES`] site (with the one
/// `sites` may already have).
pub(super) fn capped(mut sites: Vec<HeapSite>, max: usize) -> Vec<HeapSite> {
    let max = max.max(2);
    let mut other = sites
        .iter()
        .position(|s| s.frames.len() == 1 && s.frames[0] == lagscope_wire::OTHER_SITES)
        .map(|i| sites.remove(i));
    if sites.len() + usize::from(other.is_some()) <= max {
        sites.extend(other);
        return sites;
    }
    let by_live = max - 1 - WINDOW_SITES_BY_ALLOCATED.min(max - 1);
    let mut rest = sites.split_off(by_live);
    rest.sort_by_key(|s| std::cmp::Reverse(s.allocated_bytes));
    let cut = rest.split_off((max - 1 - by_live).min(rest.len()));
    sites.extend(rest);
    sites.sort_by_key(|s| std::cmp::Reverse((s.live_bytes, s.allocated_bytes)));
    let summed = other.get_or_insert_with(|| {
        let mut heap_site = HeapSite::default();
        heap_site.frames = vec![lagscope_wire::OTHER_SITES.to_string()];
        heap_site
    });
    summed.live_bytes += cut.iter().map(|s| s.live_bytes).sum::<u64>();
    summed.allocated_bytes += cut.iter().map(|s| s.allocated_bytes).sum::<u64>();
    sites.extend(other);
    sites
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `f` with this thread's allocations left out of the samples.
pub(super) fn unsampled<R>(f: impl FnOnce() -> R) -> R {
    let was = SAMPLING.try_with(|s| s.replace(true)).unwrap_or(true);
    let result = f();
    let _ = SAMPLING.try_with(|s| s.set(was));
    result
}

/// A sampled stack from the code that allocated on: the sampler's and the
/// global allocator's own frames dropped.
pub(super) fn without_the_allocator(mut frames: Vec<String>) -> Vec<String> {
    let allocator = |f: &String| {
        f.starts_with("__rustc::__rust_")
            || f.starts_with("__rust_")
            || f.starts_with("lagscope::alloc::")
            || f.contains("as core::alloc::global::GlobalAlloc>::")
    };
    if let Some(last) = frames.iter().take(16).rposition(allocator) {
        frames.drain(..=last);
    }
    frames
}

impl Drop for Sites {
    fn drop(&mut self) {
        CLAIMED.store(false, Release);
    }
}
