//! Types of `lagscope doctor`'s findings (`GET /api/v1/doctor`), shared by the
//! collector that computes them and the clients that show them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{TaskWaits, TopFunction};
use crate::sample::{StallEvent, StuckRequest};

/// Everything the rules look at: one instance over a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance: String,
    /// Window start, ms since the epoch.
    pub from_ms: u64,
    /// Window end, ms since the epoch.
    pub to_ms: u64,
    /// Series by name: (time ms, mean, max) per point.
    pub series: BTreeMap<String, Vec<(u64, f64, f64)>>,
    /// Worker threads of the main runtime.
    pub workers: usize,
    /// Cores the host has.
    pub host_cores: usize,
    /// Stalls in the window (final reports where they ended).
    pub stalls: Vec<StallEvent>,
    /// CPU samples over the window.
    pub profile_samples: u64,
    /// Functions with the most CPU samples.
    pub top: Vec<TopFunction>,
    /// User functions with the most CPU samples, each charged with its own
    /// time and that of the library code it called (a sample counts for the
    /// innermost user frame of its stack): what to make cheaper.
    #[serde(default)]
    pub top_user: Vec<TopFunction>,
    /// What the agent said it can do (`frame-pointers`, `line-tables`,
    /// `tokio_unstable`, …): what its build gives stack names.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Live heap bytes by allocation site at the first and last heap
    /// windows in the window (heap sampling on, two windows or more).
    #[serde(default)]
    pub heap: Option<HeapGrowth>,
    /// Where instrumented requests waited over the window, by name and
    /// await point (wait capture on).
    #[serde(default)]
    pub waits: Vec<TaskWaits>,
    /// Futures pending without a poll for longer than the agent's stuck
    /// threshold, as its latest sample in the window listed them.
    #[serde(default)]
    pub stuck: Vec<StuckRequest>,
}

/// Live heap bytes by allocation site at two moments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeapGrowth {
    /// When the first reading was taken, ms since the epoch.
    pub from_ms: u64,
    /// When the last was.
    pub to_ms: u64,
    /// Every site in either reading.
    pub sites: Vec<SiteGrowth>,
}

/// One allocation site's live bytes at both readings of a [`HeapGrowth`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteGrowth {
    /// The stack, innermost first, from the code that called the allocator.
    pub frames: Vec<String>,
    /// Live bytes at the first reading.
    pub before_bytes: u64,
    /// Live bytes at the last.
    pub after_bytes: u64,
}

impl SiteGrowth {
    /// Bytes it grew by (negative: shrank).
    pub fn grew(&self) -> i64 {
        i64::try_from(self.after_bytes).unwrap_or(i64::MAX)
            - i64::try_from(self.before_bytes).unwrap_or(i64::MAX)
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to do.
    Info,
    /// Worth fixing.
    Warning,
    /// Hurting users now.
    Critical,
}

/// What a finding is about: the doctor's vocabulary, written in kebab case
/// (`event-loop-blocking`) in JSON, text and the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// A poll ran long enough to delay everything else on its worker.
    EventLoopBlocking,
    /// Workers waited on a lock held across work.
    LockContention,
    /// Every worker busy, CPU at its limit.
    CpuSaturation,
    /// Saturated workers on fewer workers than cores.
    UnderusedCores,
    /// Work waiting for a thread of the blocking pool.
    BlockingPoolSaturation,
    /// The Rust heap grows steadily.
    HeapLeak,
    /// Memory outside the Rust heap grows.
    ExternalMemory,
    /// Tasks pile up without bound.
    UnboundedConcurrency,
    /// Requests pending without a wake for longer than the stuck threshold.
    StuckRequests,
    /// Nothing found.
    None,
}

impl Category {
    /// Every category, most specific first.
    pub const ALL: [Category; 10] = [
        Category::EventLoopBlocking,
        Category::LockContention,
        Category::CpuSaturation,
        Category::UnderusedCores,
        Category::BlockingPoolSaturation,
        Category::HeapLeak,
        Category::ExternalMemory,
        Category::UnboundedConcurrency,
        Category::StuckRequests,
        Category::None,
    ];

    /// The kebab-case name, as in JSON.
    ///
    /// ```
    /// use lagscope_wire::doctor::Category;
    /// assert_eq!(Category::HeapLeak.name(), "heap-leak");
    /// assert_eq!("heap-leak".parse::<Category>(), Ok(Category::HeapLeak));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Category::EventLoopBlocking => "event-loop-blocking",
            Category::LockContention => "lock-contention",
            Category::CpuSaturation => "cpu-saturation",
            Category::UnderusedCores => "underused-cores",
            Category::BlockingPoolSaturation => "blocking-pool-saturation",
            Category::HeapLeak => "heap-leak",
            Category::ExternalMemory => "external-memory",
            Category::UnboundedConcurrency => "unbounded-concurrency",
            Category::StuckRequests => "stuck-requests",
            Category::None => "none",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Category {
    type Err = String;

    fn from_str(s: &str) -> Result<Category, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("{s:?} is not a doctor category"))
    }
}

/// One thing found, with the numbers behind it and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What it is about.
    pub category: Category,
    /// How bad.
    pub severity: Severity,
    /// Orders findings of one severity; higher first (critical findings
    /// come before warnings whatever their scores).
    pub score: f64,
    /// One line.
    pub summary: String,
    /// The numbers.
    pub evidence: Vec<String>,
    /// What to do, naming the culprit where known.
    pub recommendation: String,
    /// The function to look at, when one is known.
    pub culprit: Option<String>,
}

/// The findings for one instance, most important first (`none` alone if
/// nothing fired).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Service name.
    pub service: String,
    /// Instance id.
    pub instance: String,
    /// Window start, ms since the epoch.
    pub from_ms: u64,
    /// Window end, ms since the epoch.
    pub to_ms: u64,
    /// Findings, most important first.
    pub findings: Vec<Finding>,
}

/// `GET /api/v1/doctor`: one diagnosis per instance, and the windows they
/// were made from when asked (`&windows=true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoctorResponse {
    /// Diagnoses, one per instance.
    pub diagnoses: Vec<Diagnosis>,
    /// The windows, in the same order (empty unless asked for).
    pub windows: Vec<Window>,
}

impl Diagnosis {
    /// The most important finding's category.
    pub fn top_category(&self) -> Category {
        self.findings.first().map_or(Category::None, |f| f.category)
    }
}
