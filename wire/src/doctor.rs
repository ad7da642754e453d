//! Types of `lagscope doctor`'s findings (`GET /api/v1/doctor`), shared by the
//! collector that computes them and the clients that show them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::TopFunction;
use crate::sample::StallEvent;

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

/// One thing found, with the numbers behind it and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `event-loop-blocking`, `heap-leak`, …, or `none`.
    pub category: String,
    /// How bad.
    pub severity: Severity,
    /// Orders findings; higher first.
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
    pub fn top_category(&self) -> &str {
        self.findings
            .first()
            .map_or("none", |f| f.category.as_str())
    }
}
