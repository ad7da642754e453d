//! `lagscope demo`: fixture services (as child processes of this binary), an
//! in-process collector and the dashboard, in one command.

use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lagscope_collector::shared::now_ms;
use lagscope_collector::{summary, CollectorConfig};
use lagscope_fixtures::scenario::Scenario;

/// The demo's services: (fixture, service name).
const DEMO: [(Scenario, &str); 5] = [
    (Scenario::Healthy, "demo-api"),
    (Scenario::Healthy, "demo-api"),
    (Scenario::SleepInAsync, "demo-blocking"),
    (Scenario::HeapLeak, "demo-leaky"),
    (Scenario::StuckRequests, "demo-checkout"),
];

/// Fixture processes, killed when dropped.
struct Fixtures(Vec<Child>);

impl Drop for Fixtures {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the demo: the dashboard until the user quits, or with `headless` a
/// summary after `duration`.
pub fn run(headless: bool, duration: Duration) -> Result<()> {
    let rt = crate::collector::runtime(1)?;
    let collector = rt.block_on(lagscope_collector::start(CollectorConfig::embedded()))?;
    let exe = std::env::current_exe().context("locating the lagscope binary")?;
    let mut fixtures = Fixtures(Vec::new());
    for (scenario, service) in DEMO {
        let child = Process::new(&exe)
            .args([
                "fixture",
                scenario.name(),
                "--service",
                service,
                "--exit-on-stdin-close",
            ])
            .env("LAGSCOPE_COLLECTOR", collector.grpc_url())
            .env_remove("LAGSCOPE_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // The dashboard owns the terminal; a headless run shows fixture errors.
            .stderr(if headless {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .with_context(|| format!("starting fixture {}", scenario.name()))?;
        fixtures.0.push(child);
    }
    if !headless {
        let client = lagscope_client::Client::new(&collector.http_url(), None)?;
        return lagscope_tui::run(client).context("running the dashboard");
    }
    println!(
        "lagscope demo: collector on {} (API {}), {} fixture processes, running {:?}",
        collector.grpc_addr,
        collector.http_url(),
        fixtures.0.len(),
        duration
    );
    let started = now_ms();
    std::thread::sleep(duration);
    let reports = summary::report(&collector.shared.store(), started, now_ms());
    drop(fixtures);
    print!("{}", summary::render(&reports));
    for (_, service) in DEMO {
        if !reports.iter().any(|r| r.service == service) {
            bail!("no samples arrived from {service}; is something blocking loopback connections?");
        }
    }
    Ok(())
}
