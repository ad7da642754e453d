//! Types of the collector's HTTP JSON API (`/api/v1/...`), shared by the
//! collector that serves them and the clients (TUI, scripts) that read them.

pub mod query;

use serde::{Deserialize, Serialize};

use crate::sample::{Sample, StallEvent};

/// Health of an instance, from how recently it reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Connected and reporting on schedule.
    Live,
    /// Connected but late, or disconnected recently.
    Stale,
    /// Disconnected for a while; kept for its history.
    Gone,
}

/// `GET /api/v1/services`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicesResponse {
    /// Services, sorted by name.
    pub services: Vec<ServiceSummary>,
    /// Collector-wide counters.
    pub collector: CollectorStatus,
    /// Set when more instances follow: pass it as `?cursor=` for the next page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One service: its instances and their aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Service name.
    pub service: String,
    /// Instances, sorted by id.
    pub instances: Vec<InstanceSummary>,
    /// Worst lag p99 over live instances, in µs.
    pub lag_p99_us_max: Option<u64>,
    /// Mean busy ratio over live instances.
    pub busy_ratio_mean: Option<f64>,
    /// Summed RSS of live instances.
    pub rss_bytes_total: Option<u64>,
}

/// One instance and its latest figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSummary {
    /// Instance id.
    pub instance: String,
    /// Live, stale or gone.
    pub health: Health,
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Agent version.
    pub agent_version: String,
    /// What the agent's build can measure.
    pub capabilities: Vec<String>,
    /// `LAGSCOPE_*` settings the agent ignored, and why.
    #[serde(default)]
    pub config_warnings: Vec<String>,
    /// What the agent said since (a part that stopped working), oldest
    /// first, at most [`MAX_NOTICES`].
    #[serde(default)]
    pub notices: Vec<String>,
    /// Wall time of the latest sample, ms since the epoch.
    pub last_sample_ms: Option<u64>,
    /// Samples stored.
    pub samples: u64,
    /// Samples the agent dropped before sending (cumulative).
    pub dropped_samples: u64,
    /// The latest sample.
    pub latest: Option<Sample>,
}

/// Notices kept per instance; later ones are dropped.
pub const MAX_NOTICES: usize = 16;

/// Collector-wide counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorStatus {
    /// Agents connected now.
    pub agents_connected: u64,
    /// Samples stored since start.
    pub samples_ingested: u64,
    /// Streams rejected (bad token, malformed, over a limit) since start.
    pub streams_rejected: u64,
    /// Samples refused since start for being dated outside the collector's
    /// window (a sender's clock far ahead, or before the history kept).
    #[serde(default)]
    pub samples_refused: u64,
    /// Names, stacks and frames cut to the collector's bounds since start.
    #[serde(default)]
    pub input_cut: u64,
    /// Estimated bytes of history held.
    pub history_bytes: u64,
    /// Configured cap on history bytes.
    pub history_bytes_limit: u64,
    /// How the recording goes, when the collector records (`--record`).
    #[serde(default)]
    pub recording: Option<RecordingStatus>,
}

/// How a collector's recording goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    /// Records not written: the writer fell behind, or the disk refused them.
    pub dropped: u64,
    /// Since when writing fails (a full disk, say), ms since the epoch.
    pub failing_since_ms: Option<u64>,
    /// When writing last came back after failing, ms since the epoch.
    pub resumed_ms: Option<u64>,
    /// The error that stopped writing last.
    pub error: Option<String>,
}

/// `GET /api/v1/services/{service}/instances/{instance}/series`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesResponse {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance: String,
    /// One entry per requested series that exists.
    pub series: Vec<Series>,
}

/// Points of one numeric series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Series name, e.g. `lag_p99_us`, `busy_ratio`, `busy_ratio.worker.0`.
    pub name: String,
    /// Points, oldest first.
    pub points: Vec<Point>,
}

/// One point: a raw sample (min = max = mean) or a downsampled bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Bucket start (or sample time), ms since the epoch.
    pub t_ms: u64,
    /// Smallest value in the bucket.
    pub min: f64,
    /// Largest value in the bucket (spikes survive downsampling).
    pub max: f64,
    /// Mean value in the bucket.
    pub mean: f64,
}

impl Series {
    /// Points with `from_ms <= t_ms <= to_ms`.
    pub fn within(&self, from_ms: u64, to_ms: u64) -> impl Iterator<Item = &Point> {
        self.points
            .iter()
            .filter(move |p| p.t_ms >= from_ms && p.t_ms <= to_ms)
    }

    /// Least-squares slope of the means over `[from_ms, to_ms]`, in units per
    /// minute: the growth trend of a memory series. `None` with fewer than three
    /// points.
    ///
    /// ```
    /// use lagscope_wire::api::{Point, Series};
    /// let points = (0..10u64)
    ///     .map(|i| Point { t_ms: i * 60_000, min: 0.0, max: 0.0, mean: 5.0 * i as f64 })
    ///     .collect();
    /// let s = Series { name: "heap_live_bytes".into(), points };
    /// assert!((s.slope_per_min(0, u64::MAX).unwrap() - 5.0).abs() < 1e-9);
    /// ```
    pub fn slope_per_min(&self, from_ms: u64, to_ms: u64) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .within(from_ms, to_ms)
            .map(|p| (p.t_ms as f64 / 60_000.0, p.mean))
            .collect();
        slope(&pts)
    }
}

/// Least-squares slope of `(x, y)` points; `None` with fewer than three
/// points or no spread in `x`.
pub fn slope(pts: &[(f64, f64)]) -> Option<f64> {
    if pts.len() < 3 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let var: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if var == 0.0 {
        return None;
    }
    Some(pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / var)
}

/// `GET /api/v1/stalls`: stalls, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallsResponse {
    /// Stalls with the instance that reported them.
    pub stalls: Vec<StallRecord>,
}

/// One stall and where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StallRecord {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance: String,
    /// The stall as the agent reported it last (final once `ongoing` is false).
    pub stall: StallEvent,
}

/// `GET /api/v1/profile` and `POST …/profile`: CPU samples merged over a
/// window (or one requested profile), as folded stacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileResponse {
    /// Service name.
    pub service: String,
    /// Instances whose samples are merged.
    pub instances: Vec<String>,
    /// Window start, ms since the epoch.
    pub start_ms: u64,
    /// Window end, ms since the epoch.
    pub end_ms: u64,
    /// Sampling rate (the highest, if windows differ).
    pub hz: u32,
    /// Samples merged.
    pub samples: u64,
    /// Samples the agents could not keep.
    pub dropped: u64,
    /// `root;…;leaf count` lines.
    pub folded: String,
    /// Functions with the most samples on top of the stack.
    pub top: Vec<TopFunction>,
}

/// Which bytes of a heap profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeapKind {
    /// Allocated and not yet freed, at a moment (pprof's `inuse_space`).
    Inuse,
    /// Allocated over a window, freed or not (pprof's `alloc_space`).
    Alloc,
}

impl HeapKind {
    /// The kind named `name` (`inuse` or `alloc`).
    ///
    /// ```
    /// use lagscope_wire::api::HeapKind;
    /// assert_eq!(HeapKind::from_name("alloc"), Some(HeapKind::Alloc));
    /// assert_eq!(HeapKind::Inuse.name(), "inuse");
    /// assert_eq!(HeapKind::from_name("live"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<HeapKind> {
        match name {
            "inuse" => Some(HeapKind::Inuse),
            "alloc" => Some(HeapKind::Alloc),
            _ => None,
        }
    }

    /// Its name in the API and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            HeapKind::Inuse => "inuse",
            HeapKind::Alloc => "alloc",
        }
    }
}

/// `GET /api/v1/heap`: heap bytes by allocation site, as folded stacks
/// whose counts are bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeapResponse {
    /// Service name.
    pub service: String,
    /// Instances whose bytes are summed.
    pub instances: Vec<String>,
    /// In-use bytes (at `end_ms`) or allocated ones (over the span).
    pub kind: HeapKind,
    /// Start of the span: for in-use bytes, when they were read (per
    /// instance; the earliest).
    pub start_ms: u64,
    /// End of the span.
    pub end_ms: u64,
    /// Mean sampling interval in bytes.
    pub sample_bytes: u64,
    /// Allocations the agents sampled since they started.
    pub samples: u64,
    /// Samples they lost.
    pub dropped: u64,
    /// Estimated bytes in all (the sum of the folded counts).
    pub total_bytes: u64,
    /// `root;…;leaf bytes` lines.
    pub folded: String,
    /// Functions with the most bytes allocated directly (self) and below.
    pub top: Vec<TopFunction>,
}

/// `GET /api/v1/waits`: where the instrumented futures of a service
/// waited over a span, by name and await point, and the stuck ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitsResponse {
    /// Service name.
    pub service: String,
    /// Instances whose waits are summed.
    pub instances: Vec<String>,
    /// Start of the span covered by wait windows.
    pub start_ms: u64,
    /// End of the span.
    pub end_ms: u64,
    /// Await points the agents captured since they started.
    pub captures: u64,
    /// Captures they lost.
    pub dropped: u64,
    /// By name, most waiting first.
    pub tasks: Vec<TaskWaits>,
    /// Futures pending without a poll for longer than the agents' stuck
    /// threshold, oldest first: those the agents listed (at most
    /// `MAX_STUCK_LISTED` an instance).
    pub stuck: Vec<StuckEntry>,
    /// All of them, listed or not (the agents' per-name counts).
    #[serde(default)]
    pub stuck_total: u64,
    /// `name;frames…;[kind] µs` lines (empty unless asked for).
    pub folded: String,
}

/// Where the futures of one name waited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskWaits {
    /// The instrumented name.
    pub task: String,
    /// Estimated µs waited in all over the span.
    pub wait_us: u64,
    /// Await points, most waiting first.
    pub sites: Vec<WaitShare>,
}

/// One await point's share of a name's waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitShare {
    /// `socket`, `timer`, `lock`, `channel`, `join`, `yield` or `other`.
    pub kind: String,
    /// "`orders::fetch_price` → `reqwest::Client::send`".
    pub await_point: String,
    /// Frames, innermost first.
    pub frames: Vec<String>,
    /// Estimated µs waited here.
    pub wait_us: u64,
    /// Of the name's waiting, 0 to 1.
    pub share: f64,
    /// Sampled waits behind the estimate.
    pub waits: u64,
}

/// A stuck future, with its instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StuckEntry {
    /// The instance it is in.
    pub instance: String,
    /// The instrumented name.
    pub task: String,
    /// How long it has been pending, ms.
    pub pending_ms: u64,
    /// What it waits on (empty if not known yet).
    pub kind: String,
    /// Its await point (empty if not known yet).
    pub await_point: String,
    /// Frames, innermost first.
    pub frames: Vec<String>,
}

/// One line of a top-functions table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopFunction {
    /// Function name.
    pub name: String,
    /// Samples with it on top of the stack.
    pub self_samples: u64,
    /// Samples with it anywhere on the stack.
    pub total_samples: u64,
}
