//! The collector's memory: services → instances → bounded series, plus each
//! instance's latest full sample. Pure data structure: no I/O, no clocks (the
//! caller passes `now_ms`), so it is tested and benchmarked directly.

pub mod bounds;
pub mod gorilla;
pub mod heap;
pub mod names;
pub mod profiles;
pub mod series;
pub mod waits;
pub mod windows;

mod accounting;
mod queries;
mod stalls;

use accounting::*;
pub use queries::decode_cursor;
use stalls::*;
pub use stalls::{STALLS_PER_INSTANCE, STALL_BYTES_PER_INSTANCE};

use std::collections::{BTreeMap, VecDeque};

use lagscope_wire::api::{
    CollectorStatus, Health, InstanceSummary, Series as ApiSeries, SeriesResponse, ServiceSummary,
    ServicesResponse, StallRecord,
};
use lagscope_wire::{Sample, StallEvent};

use self::heap::{HeapKind, HeapMerged, HeapProfiles};
use self::profiles::{Merged, Profiles};
use self::series::{Series, SeriesLimits};
use self::waits::{WaitProfiles, WaitsMerged};

/// Bounds of the store. Every limit has a default and a collector flag.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// Full-resolution points kept per series (1 h at 1 Hz by default).
    pub raw_points: usize,
    /// Width of downsampled buckets beyond that.
    pub bucket_ms: u64,
    /// Downsampled buckets kept per series (24 h of 1-minute buckets by default).
    pub buckets: usize,
    /// Cap on estimated history bytes; new instances are refused beyond it once
    /// no gone instance is left to evict.
    pub max_history_bytes: u64,
    /// Series per instance; further names are ignored (and counted).
    pub max_series_per_instance: usize,
    /// Instances held at once (agents and OTLP resources alike); new ones
    /// are refused beyond it once no gone instance is left to evict.
    pub max_instances: usize,
    /// A disconnected instance turns from stale to gone after this long.
    pub gone_after_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            raw_points: 3600,
            bucket_ms: 60_000,
            buckets: 1440,
            max_history_bytes: 512 * 1024 * 1024,
            max_series_per_instance: 768,
            max_instances: 20_000,
            gone_after_ms: 60_000,
        }
    }
}

/// What an agent said about itself in its hello.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentInfo {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Agent version.
    pub agent_version: String,
    /// What the agent's build can measure.
    pub capabilities: Vec<String>,
    /// Settings the agent ignored, and why.
    pub config_warnings: Vec<String>,
    /// An OpenTelemetry resource exporting OTLP, not a lagscope agent with a
    /// session: it is not counted among the agents connected.
    pub via_otlp: bool,
    /// What the agent said after its hello (a part that stopped working),
    /// oldest first, at most [`lagscope_wire::api::MAX_NOTICES`]; kept
    /// across reconnects.
    pub notices: Vec<String>,
}

#[derive(Debug)]
struct Instance {
    info: AgentInfo,
    connected: bool,
    /// When the instance connected or disconnected last, ms since the epoch.
    changed_ms: u64,
    last_seq: Option<u64>,
    latest: Option<Sample>,
    samples: u64,
    series: BTreeMap<String, Series>,
    bytes: u64,
    stalls: Stalls,
    profiles: Profiles,
    heap: HeapProfiles,
    waits: WaitProfiles,
}

/// How far ahead of the collector's clock a sample may be dated: a sender's
/// clock may run a little fast, but a point from the future would freeze
/// its series (points older than a series' newest are not stored).
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

/// An instance's stall counters (for `/metrics`).
#[derive(Debug, Clone, PartialEq)]
pub struct StallTotals<'a> {
    /// Service name.
    pub service: &'a str,
    /// Instance id.
    pub instance: &'a str,
    /// Stalls seen since the instance connected first.
    pub total: u64,
    /// Seconds spent in finished stalls.
    pub finished_seconds: f64,
    /// Stalls going on now.
    pub ongoing: u64,
}

/// Why an agent or sample was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The history cap is reached and nothing can be evicted.
    #[error("history is full ({used} of {limit} bytes); raise --max-history-mib or wait for gone instances to expire")]
    Full {
        /// Bytes in use.
        used: u64,
        /// The cap.
        limit: u64,
    },
    /// A service or instance name longer than [`bounds::MAX_NAME_BYTES`].
    #[error("a {what} name of {len} bytes is longer than the {max} bytes the collector takes")]
    NameTooLong {
        /// "service" or "instance".
        what: &'static str,
        /// The name's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A sample dated too far ahead of the collector's clock, or before
    /// the history it could land in.
    #[error("sample dated {timestamp_ms} ms since the epoch is outside the collector's window ({earliest_ms}..={latest_ms}); check the sender's clock")]
    Clock {
        /// The sample's time.
        timestamp_ms: u64,
        /// The earliest time accepted now.
        earliest_ms: u64,
        /// The latest time accepted now (now plus [`MAX_CLOCK_SKEW_MS`]).
        latest_ms: u64,
    },
    /// The instance cap is reached and nothing can be evicted.
    #[error("the collector holds its limit of {limit} instances; raise --max-instances or wait for gone instances to expire")]
    TooManyInstances {
        /// The cap.
        limit: usize,
    },
    /// Samples arrived for an instance that never said hello.
    #[error("unknown instance {service}/{instance}")]
    UnknownInstance {
        /// Service name.
        service: String,
        /// Instance id.
        instance: String,
    },
}

/// Services → instances → series.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    /// Instances are boxed: a map node holds room for eleven entries, and a
    /// service with one instance (an OTLP resource, say) would otherwise
    /// pay for eleven whole instances.
    services: BTreeMap<String, BTreeMap<String, Box<Instance>>>,
    bytes: u64,
    /// Instances held.
    instances: usize,
    samples_ingested: u64,
    streams_rejected: u64,
    series_dropped: u64,
    samples_refused: u64,
    input_cut: u64,
}

impl Store {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        Store {
            config,
            services: BTreeMap::new(),
            bytes: 0,
            instances: 0,
            samples_ingested: 0,
            streams_rejected: 0,
            series_dropped: 0,
            samples_refused: 0,
            input_cut: 0,
        }
    }

    /// Registers (or re-registers, after a reconnect) an instance. History of a
    /// returning instance is kept, so a reconnect leaves no gap. Returns the
    /// last sequence number stored for it.
    pub fn connect(
        &mut self,
        service: &str,
        instance: &str,
        info: AgentInfo,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        if let Some(existing) = self
            .services
            .get_mut(service)
            .and_then(|s| s.get_mut(instance))
        {
            let notices = std::mem::take(&mut existing.info.notices);
            existing.info = AgentInfo { notices, ..info };
            existing.connected = true;
            existing.changed_ms = now_ms;
            return Ok(existing.last_seq);
        }
        for (what, name) in [("service", service), ("instance", instance)] {
            if !bounds::name_fits(name) {
                return Err(StoreError::NameTooLong {
                    what,
                    len: name.len(),
                    max: bounds::MAX_NAME_BYTES,
                });
            }
        }
        self.evict_gone(now_ms);
        if self.bytes >= self.config.max_history_bytes {
            return Err(StoreError::Full {
                used: self.bytes,
                limit: self.config.max_history_bytes,
            });
        }
        if self.instances >= self.config.max_instances {
            return Err(StoreError::TooManyInstances {
                limit: self.config.max_instances,
            });
        }
        let overhead = instance_overhead(service, instance, &info);
        self.bytes += overhead;
        self.instances += 1;
        self.services
            .entry(service.to_string())
            .or_default()
            .insert(
                instance.to_string(),
                Box::new(Instance {
                    info,
                    connected: true,
                    changed_ms: now_ms,
                    last_seq: None,
                    latest: None,
                    samples: 0,
                    series: BTreeMap::new(),
                    bytes: overhead,
                    stalls: Stalls::default(),
                    profiles: Profiles::default(),
                    heap: HeapProfiles::default(),
                    waits: WaitProfiles::default(),
                }),
            );
        Ok(None)
    }

    /// Marks an instance disconnected; its history stays until it is gone and
    /// room is needed.
    pub fn disconnect(&mut self, service: &str, instance: &str, now_ms: u64) {
        if let Some(i) = self
            .services
            .get_mut(service)
            .and_then(|s| s.get_mut(instance))
        {
            i.connected = false;
            i.changed_ms = now_ms;
        }
    }

    /// Stores a sample. Samples with a sequence number already stored (resent
    /// after a reconnect) are skipped; returns whether it was new.
    pub fn ingest(&mut self, mut sample: Sample) -> Result<bool, StoreError> {
        let config = self.config;
        self.input_cut += bounds::bound_sample(&mut sample);
        let limits = SeriesLimits::from(&self.config);
        let Some(inst) = self
            .services
            .get_mut(&sample.service)
            .and_then(|s| s.get_mut(&sample.instance))
        else {
            return Err(StoreError::UnknownInstance {
                service: sample.service.clone(),
                instance: sample.instance.clone(),
            });
        };
        if inst.last_seq.is_some_and(|last| sample.seq <= last) {
            return Ok(false);
        }
        let before = inst.bytes;
        // The memory of a process shutting down is its teardown's: kept
        // out of the series (see `Sample::last`), kept in the sample.
        let memory = sample.last.then(|| std::mem::take(&mut sample.memory));
        for (name, value) in lagscope_wire::metric::series_of(&sample) {
            let len = inst.series.len();
            match inst.series.get_mut(&name) {
                Some(s) => s.push(&limits, sample.timestamp_ms, value),
                None if len < config.max_series_per_instance => {
                    let mut s = Series::new();
                    s.push(&limits, sample.timestamp_ms, value);
                    inst.series.insert(name, s);
                }
                None => self.series_dropped += 1,
            }
        }
        for event in &sample.stalls {
            inst.stalls.record(event);
        }
        for profile in &sample.profiles {
            inst.profiles.record(profile);
        }
        if let Some(memory) = memory {
            sample.memory = memory;
        }
        if let Some(heap) = &sample.heap {
            inst.heap.record(heap, sample.last);
        }
        if let Some(waits) = &sample.waits {
            inst.waits.record(waits);
        }
        inst.waits.set_stuck(
            &sample.stuck,
            sample.tasks.iter().map(|t| (t.name.as_str(), t.stuck)),
            sample.timestamp_ms,
        );
        for notice in &sample.notices {
            let notices = &mut inst.info.notices;
            if notices.len() < lagscope_wire::api::MAX_NOTICES && !notices.contains(notice) {
                notices.push(notice.clone());
            }
        }
        inst.bytes = instance_overhead(&sample.service, &sample.instance, &inst.info)
            + inst
                .series
                .iter()
                .map(|(name, s)| name.len() as u64 + SERIES_ENTRY_BYTES + s.bytes())
                .sum::<u64>()
            + inst.stalls.bytes
            + inst.profiles.bytes()
            + inst.heap.bytes()
            + inst.waits.bytes()
            + sample_bytes(&sample);
        self.bytes = self.bytes - before + inst.bytes;
        let over = self.bytes.saturating_sub(config.max_history_bytes);
        if over > 0 {
            let freed = inst.stalls.shed(over);
            inst.bytes -= freed;
            self.bytes -= freed;
        }
        inst.last_seq = Some(sample.seq);
        inst.samples += 1;
        inst.latest = Some(sample);
        self.samples_ingested += 1;
        Ok(true)
    }

    /// Refuses (and counts) a sample dated outside what the store can hold
    /// at `now_ms`: later than [`MAX_CLOCK_SKEW_MS`] ahead, or earlier than
    /// the oldest downsampled bucket kept. Live ingest checks every sample
    /// with this; a replayed recording keeps its own times.
    pub fn check_clock(&mut self, timestamp_ms: u64, now_ms: u64) -> Result<(), StoreError> {
        let retention = self
            .config
            .bucket_ms
            .saturating_mul(self.config.buckets as u64);
        let earliest_ms = now_ms.saturating_sub(retention);
        let latest_ms = now_ms.saturating_add(MAX_CLOCK_SKEW_MS);
        if (earliest_ms..=latest_ms).contains(&timestamp_ms) {
            return Ok(());
        }
        self.samples_refused += 1;
        Err(StoreError::Clock {
            timestamp_ms,
            earliest_ms,
            latest_ms,
        })
    }

    /// Counts a stream the collector refused (bad token, malformed, a limit).
    pub fn count_rejected_stream(&mut self) {
        self.streams_rejected += 1;
    }

    fn evict_gone(&mut self, now_ms: u64) {
        while self.bytes >= self.config.max_history_bytes
            || self.instances >= self.config.max_instances
        {
            let oldest = self
                .services
                .iter()
                .flat_map(|(s, insts)| insts.iter().map(move |(i, inst)| (s, i, inst)))
                .filter(|(_, _, inst)| self.health_of(inst, now_ms) == Health::Gone)
                .min_by_key(|(_, _, inst)| inst.changed_ms)
                .map(|(s, i, _)| (s.clone(), i.clone()));
            let Some((service, instance)) = oldest else {
                return;
            };
            if let Some(insts) = self.services.get_mut(&service) {
                if let Some(removed) = insts.remove(&instance) {
                    self.bytes -= removed.bytes;
                    self.instances -= 1;
                }
                if insts.is_empty() {
                    self.services.remove(&service);
                }
            }
        }
    }

    fn health_of(&self, inst: &Instance, now_ms: u64) -> Health {
        if inst.connected {
            let interval_ms = inst
                .latest
                .as_ref()
                .map_or(1000, |s| (s.interval_us / 1000).max(1000));
            let last = inst
                .latest
                .as_ref()
                .map_or(inst.changed_ms, |s| s.timestamp_ms.max(inst.changed_ms));
            if now_ms.saturating_sub(last) <= 3 * interval_ms {
                Health::Live
            } else {
                Health::Stale
            }
        } else if now_ms.saturating_sub(inst.changed_ms) < self.config.gone_after_ms {
            Health::Stale
        } else {
            Health::Gone
        }
    }

    /// (service, instance) of every instance, sorted.
    pub fn instance_ids(&self) -> Vec<(String, String)> {
        self.services
            .iter()
            .flat_map(|(s, insts)| insts.keys().map(move |i| (s.clone(), i.clone())))
            .collect()
    }

    /// Agents connected now: open agent sessions, not the OTLP resources
    /// that export to the collector (they hold no session to count).
    pub fn agents_connected(&self) -> u64 {
        self.services
            .values()
            .flat_map(|s| s.values())
            .filter(|i| i.connected && !i.info.via_otlp)
            .count() as u64
    }

    /// Collector-wide counters.
    pub fn status(&self) -> CollectorStatus {
        CollectorStatus {
            agents_connected: self.agents_connected(),
            samples_ingested: self.samples_ingested,
            streams_rejected: self.streams_rejected,
            samples_refused: self.samples_refused,
            input_cut: self.input_cut,
            recording: None,
            history_bytes: self.bytes,
            history_bytes_limit: self.config.max_history_bytes,
        }
    }

    /// Points of the named series (all series when `names` is empty) of one
    /// instance over `[from_ms, to_ms]`.
    pub fn series(
        &self,
        service: &str,
        instance: &str,
        names: &[String],
        from_ms: u64,
        to_ms: u64,
        max_points: Option<usize>,
    ) -> Option<SeriesResponse> {
        let inst = self.services.get(service)?.get(instance)?;
        let limits = SeriesLimits::from(&self.config);
        let series = inst
            .series
            .iter()
            .filter(|(name, _)| names.is_empty() || names.iter().any(|n| n == *name))
            .map(|(name, s)| ApiSeries {
                name: name.clone(),
                points: s.query(&limits, from_ms, to_ms, max_points),
            })
            .collect();
        Some(SeriesResponse {
            service: service.to_string(),
            instance: instance.to_string(),
            series,
        })
    }

    /// The latest sample of one instance.
    pub fn latest(&self, service: &str, instance: &str) -> Option<&Sample> {
        self.services.get(service)?.get(instance)?.latest.as_ref()
    }

    /// Adds stalls that arrived on their own (OTLP `tokio.stall` spans) to an
    /// instance's log; `false` if the instance is unknown.
    pub fn record_stalls(&mut self, service: &str, instance: &str, stalls: &[StallEvent]) -> bool {
        let Some(inst) = self
            .services
            .get_mut(service)
            .and_then(|s| s.get_mut(instance))
        else {
            return false;
        };
        let before = inst.stalls.bytes;
        for e in stalls {
            let mut e = e.clone();
            self.input_cut += bounds::bound_stall(&mut e);
            inst.stalls.record(&e);
        }
        inst.bytes = inst.bytes - before + inst.stalls.bytes;
        self.bytes = self.bytes - before + inst.stalls.bytes;
        let over = self.bytes.saturating_sub(self.config.max_history_bytes);
        if over > 0 {
            let freed = inst.stalls.shed(over);
            inst.bytes -= freed;
            self.bytes -= freed;
        }
        true
    }

    /// Stalls, newest first, optionally of one service or instance, at most `limit`.
    pub fn stalls(
        &self,
        service: Option<&str>,
        instance: Option<&str>,
        limit: usize,
    ) -> Vec<StallRecord> {
        let mut out: Vec<StallRecord> = self
            .services
            .iter()
            .filter(|(s, _)| service.is_none_or(|want| want == *s))
            .flat_map(|(s, insts)| insts.iter().map(move |(i, inst)| (s, i, inst)))
            .filter(|(_, i, _)| instance.is_none_or(|want| want == *i))
            .flat_map(|(s, i, inst)| {
                inst.stalls.recent.iter().map(move |e| StallRecord {
                    service: s.clone(),
                    instance: i.clone(),
                    stall: e.clone(),
                })
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse((r.stall.started_ms, r.stall.id)));
        out.truncate(limit);
        out
    }

    /// CPU samples of `service` (one instance, or all) over `[from_ms, to_ms]`,
    /// merged; `None` if the service (or instance) is unknown.
    pub fn profile(
        &self,
        service: &str,
        instance: Option<&str>,
        from_ms: u64,
        to_ms: u64,
    ) -> Option<(Vec<String>, Merged)> {
        let insts = self.services.get(service)?;
        let mut names = Vec::new();
        let mut merged = Merged::default();
        for (id, inst) in insts {
            if instance.is_some_and(|want| want != id) {
                continue;
            }
            names.push(id.clone());
            merged.absorb(inst.profiles.merged(from_ms, to_ms));
        }
        (!names.is_empty()).then_some((names, merged))
    }

    /// Heap bytes of `service` (one instance, or all) by stack over
    /// `[from_ms, to_ms]` (see [`HeapProfiles::merged`]), summed over
    /// instances; `None` if the service (or instance) is unknown.
    pub fn heap_profile(
        &self,
        service: &str,
        instance: Option<&str>,
        kind: HeapKind,
        from_ms: u64,
        to_ms: u64,
    ) -> Option<(Vec<String>, HeapMerged)> {
        let insts = self.services.get(service)?;
        let mut names = Vec::new();
        let mut merged = HeapMerged::default();
        for (id, inst) in insts {
            if instance.is_some_and(|want| want != id) {
                continue;
            }
            names.push(id.clone());
            merged.absorb(inst.heap.merged(kind, from_ms, to_ms));
        }
        (!names.is_empty()).then_some((names, merged))
    }

    /// Where the instrumented futures of `service` (one instance, or all)
    /// waited over `[from_ms, to_ms]`, and the stuck ones (see
    /// [`WaitProfiles::merged`]), summed over instances; `None` if the
    /// service (or instance) is unknown.
    pub fn waits(
        &self,
        service: &str,
        instance: Option<&str>,
        from_ms: u64,
        to_ms: u64,
    ) -> Option<(Vec<String>, WaitsMerged)> {
        let insts = self.services.get(service)?;
        let mut names = Vec::new();
        let mut merged = WaitsMerged::default();
        for (id, inst) in insts {
            if instance.is_some_and(|want| want != id) {
                continue;
            }
            names.push(id.clone());
            merged.absorb(inst.waits.merged(id, from_ms, to_ms));
        }
        (!names.is_empty()).then_some((names, merged))
    }

    /// What the doctor looks at for one instance over `[from_ms, to_ms]`:
    /// its main-runtime series, stalls and CPU profile.
    pub fn doctor_window(
        &self,
        service: &str,
        instance: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Option<lagscope_wire::doctor::Window> {
        let inst = self.services.get(service)?.get(instance)?;
        let limits = SeriesLimits::from(&self.config);
        let series = inst
            .series
            .iter()
            .filter(|(name, _)| !name.starts_with("rt."))
            .map(|(name, s)| {
                let points = s
                    .query(&limits, from_ms, to_ms, None)
                    .into_iter()
                    .map(|p| (p.t_ms, p.mean, p.max))
                    .collect();
                (name.clone(), points)
            })
            .collect();
        let latest = inst.latest.as_ref();
        let workers = latest
            .and_then(|s| s.runtime(lagscope_wire::metric::MAIN_RUNTIME))
            .map_or(0, |r| r.workers);
        let stalls = inst
            .stalls
            .recent
            .iter()
            .filter(|e| e.started_ms <= to_ms && e.started_ms + e.duration_us / 1000 >= from_ms)
            .cloned()
            .collect();
        let merged = inst.profiles.merged(from_ms, to_ms);
        let waits = inst.waits.merged(instance, from_ms, to_ms);
        Some(lagscope_wire::doctor::Window {
            service: service.to_string(),
            instance: instance.to_string(),
            from_ms,
            to_ms,
            series,
            workers,
            host_cores: latest.map_or(0, |s| s.process.host_cores),
            stalls,
            profile_samples: merged.samples,
            top: merged.folded.top_functions(10),
            top_user: merged.folded.top_user_functions(10),
            capabilities: inst.info.capabilities.clone(),
            heap: inst.heap.growth(from_ms, to_ms),
            waits: crate::waits::response(service, Vec::new(), &waits, None, false).tasks,
            stuck: waits.stuck.into_iter().map(|(_, s)| s).collect(),
        })
    }

    /// The answer to profile request `id` from one instance, once it arrived.
    pub fn requested_profile(
        &self,
        service: &str,
        instance: &str,
        id: u64,
    ) -> Option<&lagscope_wire::Profile> {
        self.services
            .get(service)?
            .get(instance)?
            .profiles
            .requested(id)
    }

    /// Stall counters of every instance.
    pub fn stall_totals(&self) -> Vec<StallTotals<'_>> {
        self.services
            .iter()
            .flat_map(|(s, insts)| insts.iter().map(move |(i, inst)| (s, i, inst)))
            .map(|(s, i, inst)| StallTotals {
                service: s,
                instance: i,
                total: inst.stalls.total,
                finished_seconds: inst.stalls.finished_us as f64 / 1e6,
                ongoing: inst.stalls.recent.iter().filter(|e| e.ongoing).count() as u64,
            })
            .collect()
    }

    /// Latest samples of every instance with its health (for `/metrics`).
    pub fn latest_all(&self, now_ms: u64) -> Vec<(&Sample, Health)> {
        self.services
            .values()
            .flat_map(|s| s.values())
            .filter_map(|i| Some((i.latest.as_ref()?, self.health_of(i, now_ms))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample;
    use super::*;
    use lagscope_wire::metric::Metric;
    use lagscope_wire::StallDetection;

    fn stall(id: u64, ongoing: bool, duration_us: u64) -> StallEvent {
        {
            let mut stall_event = StallEvent::default();
            stall_event.id = id;
            stall_event.runtime = "main".into();
            stall_event.detection = StallDetection::PollHooks;
            stall_event.tid = 7;
            stall_event.started_ms = 1000 + id;
            stall_event.duration_us = duration_us;
            stall_event.ongoing = ongoing;
            stall_event.blocking_function = Some("svc::handler".into());
            stall_event.stacks = vec![{
                let mut stall_stack = lagscope_wire::StallStack::default();
                stall_stack.frames = vec!["std::thread::sleep".into(), "svc::handler".into()];
                stall_stack.count = 1;
                stall_stack
            }];
            stall_event
        }
    }

    #[test]
    fn a_stall_is_counted_once_and_updated_until_it_ends() {
        let mut store = Store::new(StoreConfig::default());
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        let mut s0 = sample("svc", "a", 0, 1000);
        s0.stalls = vec![stall(1, true, 30_000)];
        let mut s1 = sample("svc", "a", 1, 2000);
        s1.stalls = vec![stall(1, false, 250_000), stall(2, true, 20_000)];
        store.ingest(s0).expect("known");
        store.ingest(s1).expect("known");
        let all = store.stalls(None, None, 10);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].stall.id, 2, "newest first");
        assert!(!all[1].stall.ongoing);
        assert_eq!(all[1].stall.duration_us, 250_000);
        let totals = &store.stall_totals()[0];
        assert_eq!((totals.total, totals.ongoing), (2, 1));
        assert!((totals.finished_seconds - 0.25).abs() < 1e-9);
        assert!(store.stalls(Some("other"), None, 10).is_empty());
        assert_eq!(store.stalls(Some("svc"), Some("a"), 1).len(), 1);
    }

    #[test]
    fn the_stall_log_is_bounded() {
        let mut store = Store::new(StoreConfig::default());
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        for seq in 0..(STALLS_PER_INSTANCE as u64 * 2) {
            let mut s = sample("svc", "a", seq, 1000 + seq);
            s.stalls = vec![stall(seq + 1, false, 25_000)];
            store.ingest(s).expect("known");
        }
        assert_eq!(
            store.stalls(None, None, usize::MAX).len(),
            STALLS_PER_INSTANCE
        );
        assert_eq!(
            store.stall_totals()[0].total,
            STALLS_PER_INSTANCE as u64 * 2
        );
    }

    #[test]
    fn resent_samples_are_stored_once() {
        let mut store = Store::new(StoreConfig::default());
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        assert_eq!(store.ingest(sample("svc", "a", 0, 1000)), Ok(true));
        assert_eq!(store.ingest(sample("svc", "a", 1, 2000)), Ok(true));
        assert_eq!(store.ingest(sample("svc", "a", 1, 2000)), Ok(false));
        let last = store
            .connect("svc", "a", AgentInfo::default(), 3000)
            .expect("room");
        assert_eq!(last, Some(1));
        let r = store
            .series(
                "svc",
                "a",
                &[Metric::BusyRatio.series().into()],
                0,
                u64::MAX,
                None,
            )
            .expect("instance");
        assert_eq!(r.series[0].points.len(), 2);
    }

    #[test]
    fn the_last_samples_memory_stays_out_of_the_series() {
        let mut store = Store::new(StoreConfig::default());
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        let mut sample_ = sample("svc", "a", 0, 1000);
        sample_.memory.heap_live_bytes = Some(64 << 20);
        assert_eq!(store.ingest(sample_), Ok(true));
        // The process freed its heap as it shut down.
        let mut last = sample("svc", "a", 1, 2000);
        last.memory.heap_live_bytes = Some(1 << 20);
        last.last = true;
        assert_eq!(store.ingest(last), Ok(true));
        let series = |metric: Metric| {
            let r = store
                .series("svc", "a", &[metric.series().into()], 0, u64::MAX, None)
                .expect("instance");
            r.series[0].points.len()
        };
        assert_eq!(
            series(Metric::HeapLive),
            1,
            "the teardown's heap is left out"
        );
        assert_eq!(series(Metric::BusyRatio), 2, "the rest is kept");
    }

    #[test]
    fn health_follows_reporting_and_connection() {
        let mut store = Store::new(StoreConfig::default());
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        store.ingest(sample("svc", "a", 0, 1000)).expect("known");
        let health = |store: &Store, now| store.services(now).services[0].instances[0].health;
        assert_eq!(health(&store, 2000), Health::Live);
        assert_eq!(health(&store, 10_000), Health::Stale);
        store.disconnect("svc", "a", 10_000);
        assert_eq!(health(&store, 20_000), Health::Stale);
        assert_eq!(health(&store, 80_000), Health::Gone);
    }

    #[test]
    fn full_store_evicts_gone_instances_then_refuses() {
        let config = StoreConfig {
            max_history_bytes: 1,
            ..StoreConfig::default()
        };
        let mut store = Store::new(config);
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        store.ingest(sample("svc", "a", 0, 1000)).expect("known");
        let err = store.connect("svc", "b", AgentInfo::default(), 1000);
        assert!(matches!(err, Err(StoreError::Full { .. })));
        store.disconnect("svc", "a", 1000);
        store
            .connect("svc", "b", AgentInfo::default(), 100_000)
            .expect("a is gone and was evicted");
        assert_eq!(store.services(100_000).services[0].instances.len(), 1);
    }

    #[test]
    fn the_instance_cap_refuses_new_instances_naming_its_flag_and_evicts_gone_ones() {
        let mut store = Store::new(StoreConfig {
            max_instances: 2,
            ..StoreConfig::default()
        });
        for id in ["a", "b"] {
            store
                .connect("svc", id, AgentInfo::default(), 0)
                .expect("room");
        }
        let err = store
            .connect("svc", "c", AgentInfo::default(), 0)
            .expect_err("full");
        assert!(err.to_string().contains("--max-instances"), "{err}");
        store.disconnect("svc", "a", 0);
        store
            .connect("svc", "c", AgentInfo::default(), 100_000)
            .expect("a is gone and was evicted");
        assert!(store.status().history_bytes > 0);
    }

    #[test]
    fn samples_dated_far_ahead_or_before_the_history_are_refused_and_counted() {
        let mut store = Store::new(StoreConfig::default());
        let now = 1_800_000_000_000;
        assert!(store.check_clock(now, now).is_ok());
        assert!(store.check_clock(now + MAX_CLOCK_SKEW_MS, now).is_ok());
        assert!(matches!(
            store.check_clock(now + MAX_CLOCK_SKEW_MS + 1, now),
            Err(StoreError::Clock { .. })
        ));
        assert!(store.check_clock(u64::MAX, now).is_err());
        assert!(store.check_clock(0, now).is_err());
        assert_eq!(store.status().samples_refused, 3);
    }

    #[test]
    fn names_past_the_bound_are_refused_at_connect() {
        let mut store = Store::new(StoreConfig::default());
        let long = "s".repeat(bounds::MAX_NAME_BYTES + 1);
        let e = store.connect(&long, "i", AgentInfo::default(), 0);
        assert!(
            matches!(
                e,
                Err(StoreError::NameTooLong {
                    what: "service",
                    ..
                })
            ),
            "{e:?}"
        );
        let e = store.connect("s", &long, AgentInfo::default(), 0);
        assert!(
            matches!(
                e,
                Err(StoreError::NameTooLong {
                    what: "instance",
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(store.status().history_bytes, 0);
    }

    #[test]
    fn stalls_from_any_port_are_charged_to_the_cap_and_cut_to_bounds() {
        let cap = 4 * 1024 * 1024;
        let mut store = Store::new(StoreConfig {
            max_history_bytes: cap,
            ..StoreConfig::default()
        });
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        for id in 0..40 {
            let mut s = stall(id, false, 1);
            s.stacks = vec![
                {
                    let mut stall_stack = lagscope_wire::StallStack::default();
                    stall_stack.frames = vec!["f".repeat(10_000); 40];
                    stall_stack.count = 1;
                    stall_stack
                };
                40
            ];
            assert!(store.record_stalls("svc", "a", &[s]));
            assert!(store.status().history_bytes <= cap, "stall {id}");
        }
        let kept = store.stalls(None, None, 1000);
        assert!(!kept.is_empty());
        let biggest = kept
            .iter()
            .map(|r| stall_bytes(&r.stall))
            .max()
            .unwrap_or(0);
        assert!(biggest < 1024 * 1024, "{biggest}");
        assert!(store.status().input_cut > 0);
        let held: u64 = kept.iter().map(|r| stall_bytes(&r.stall)).sum();
        assert!(held <= STALL_BYTES_PER_INSTANCE, "{held}");
    }

    #[test]
    fn what_an_agent_says_after_start_stays_on_the_instance_across_reconnects() {
        let mut store = Store::new(StoreConfig::default());
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        let mut s = sample("svc", "a", 0, 1000);
        s.notices = vec!["signal taken over".into(); 3];
        store.ingest(s).expect("known");
        for seq in 1..40 {
            let mut s = sample("svc", "a", seq, 1000 + seq);
            s.notices = vec![format!("notice {seq}")];
            store.ingest(s).expect("known");
        }
        store.disconnect("svc", "a", 2000);
        store
            .connect("svc", "a", AgentInfo::default(), 3000)
            .expect("back");
        let page = store.services(3000);
        let notices = &page.services[0].instances[0].notices;
        assert_eq!(notices.len(), lagscope_wire::api::MAX_NOTICES);
        assert_eq!(notices[0], "signal taken over");
        assert_eq!(notices[1], "notice 1");
    }

    #[test]
    fn otlp_resources_are_not_counted_as_connected_agents() {
        let mut store = Store::new(StoreConfig::default());
        store
            .connect("svc", "agent", AgentInfo::default(), 0)
            .expect("room");
        for i in 0..3 {
            let info = AgentInfo {
                via_otlp: true,
                ..AgentInfo::default()
            };
            store
                .connect("node", &i.to_string(), info, 0)
                .expect("room");
        }
        assert_eq!(store.agents_connected(), 1);
        store.disconnect("svc", "agent", 1);
        assert_eq!(store.agents_connected(), 0);
    }

    #[test]
    fn every_instance_costs_history_bytes_even_before_its_first_sample() {
        let mut store = Store::new(StoreConfig::default());
        store
            .connect("svc", "a", AgentInfo::default(), 0)
            .expect("room");
        let empty = store.status().history_bytes;
        assert!(empty >= std::mem::size_of::<Instance>() as u64, "{empty}");
        store.ingest(sample("svc", "a", 0, 1000)).expect("known");
        assert!(store.status().history_bytes > empty + 1000);
    }

    #[test]
    fn the_services_listing_comes_in_pages() {
        let mut store = Store::new(StoreConfig::default());
        for (svc, id) in [("a", "1"), ("a", "2"), ("b", "1"), ("c", "1"), ("c", "2")] {
            store
                .connect(svc, id, AgentInfo::default(), 0)
                .expect("room");
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.services_page(
                0,
                None,
                2,
                cursor.as_deref().and_then(decode_cursor).as_ref(),
            );
            let n: usize = page.services.iter().map(|s| s.instances.len()).sum();
            assert!(n <= 2);
            for s in &page.services {
                for i in &s.instances {
                    seen.push(format!("{}/{}", s.service, i.instance));
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ["a/1", "a/2", "b/1", "c/1", "c/2"]);
        let only_c = store.services_page(0, Some("c"), 10, None);
        assert_eq!(only_c.services.len(), 1);
        assert_eq!(only_c.services[0].instances.len(), 2);
    }

    #[test]
    fn samples_of_unknown_instances_are_refused() {
        let mut store = Store::new(StoreConfig::default());
        assert!(store.ingest(sample("svc", "x", 0, 0)).is_err());
    }

    #[test]
    fn services_aggregate_their_live_instances() {
        let mut store = Store::new(StoreConfig::default());
        for id in ["a", "b"] {
            store
                .connect("svc", id, AgentInfo::default(), 0)
                .expect("room");
            store.ingest(sample("svc", id, 0, 1000)).expect("known");
        }
        let s = &store.services(1500).services[0];
        assert_eq!(s.instances.len(), 2);
        let one = sample("svc", "a", 0, 1000);
        assert_eq!(s.rss_bytes_total, one.memory.rss_bytes.map(|b| 2 * b));
        assert_eq!(s.busy_ratio_mean, Some(one.runtimes[0].busy_ratio));
    }
}

/// Sample builders for tests of this crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use lagscope_wire::Sample;

    /// A plausible sample (see [`Sample::synthetic`]).
    pub(crate) fn sample(service: &str, instance: &str, seq: u64, t_ms: u64) -> Sample {
        Sample::synthetic(service, instance, seq, t_ms)
    }
}
