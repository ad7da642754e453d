//! `lagscope replay FILE`: a recording made with `lagscope collector --record`,
//! in the dashboard (served by a frozen in-process collector) or as a summary.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use lagscope_collector::shared::Shared;
use lagscope_collector::store::StoreConfig;
use lagscope_collector::{record, server, summary, CollectorConfig};

/// Opens `file`; with `headless`, prints a summary instead of the dashboard.
pub fn run(file: &Path, headless: bool) -> Result<()> {
    let recording = record::read(file)?;
    let notices: Vec<String> = recording
        .damage
        .iter()
        .map(|d| format!("{} is damaged at {d}; skipped", file.display()))
        .collect();
    for n in &notices {
        eprintln!("lagscope replay: warning: {n}");
    }
    if recording.samples.is_empty() {
        bail!("{} holds no samples", file.display());
    }
    let (store, end_ms) = record::into_store(&recording, StoreConfig::default());
    if headless {
        let reports = summary::report(&store, 0, end_ms);
        print!("{}", summary::render(&reports));
        return Ok(());
    }
    let rt = crate::collector::runtime(1)?;
    let shared = Arc::new(Shared::frozen(store, end_ms));
    let collector = rt.block_on(server::start_with(CollectorConfig::embedded(), shared))?;
    let client = lagscope_client::Client::new(&collector.http_url(), None)?;
    lagscope_tui::run_with_notices(client, notices).context("running the dashboard")
}
