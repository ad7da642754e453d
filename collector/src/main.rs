//! `lagscope`: the collector, the dashboard, the demo and replay in one binary.

use std::alloc::System;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use lagscope::alloc::Counting;
use lagscope_collector::shared::{now_ms, Shared};
use lagscope_collector::{record, server, store::StoreConfig, summary, CollectorConfig};
use lagscope_fixtures::scenario::{self, Scenario};

mod doctor_cmd;
mod profile_cmd;

// Heap figures for the fixture processes this binary also runs (`demo`).
#[global_allocator]
static GLOBAL: Counting<System> = Counting::new(System);

#[derive(Parser)]
#[command(
    name = "lagscope",
    version,
    about = "Runtime diagnostics for tokio services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector: agents stream to --grpc, the API and /metrics are on --http.
    Collector(CollectorArgs),
    /// Live dashboard of a running collector.
    Tui {
        /// The collector's HTTP address.
        #[arg(long, env = "LAGSCOPE_API", default_value = "http://127.0.0.1:6671")]
        collector: String,
        /// Token, if the collector requires one.
        #[arg(long, env = "LAGSCOPE_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Misbehaving services, an in-process collector and the dashboard, in one command.
    Demo {
        /// Print a summary instead of opening the dashboard.
        #[arg(long)]
        headless: bool,
        /// How long the headless demo runs.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Open a recording made with `lagscope collector --record FILE`.
    Replay {
        /// The recording.
        file: PathBuf,
        /// Print a summary instead of opening the dashboard.
        #[arg(long)]
        headless: bool,
    },
    /// Diagnose a service: `lagscope doctor -- ./my-service` runs it under an
    /// embedded collector (with --load, under HTTP load); with --collector,
    /// look at one already reporting. Prints findings and writes an HTML report.
    Doctor(doctor_cmd::DoctorArgs),
    /// Profile one instance now, at a high rate, and write a flamegraph.
    Profile(profile_cmd::ProfileArgs),
    /// Flamegraph of the continuous CPU profile (or, with --blocking, of the
    /// stalls) over a recent window; differential with --compare-previous/--base.
    Flamegraph(profile_cmd::FlamegraphArgs),
    /// Run one fixture service (used by `demo` and the tests).
    #[command(hide = true)]
    Fixture {
        /// Which scenario: healthy, sleep-in-async, heap-leak.
        name: String,
        /// Service name to report.
        #[arg(long)]
        service: Option<String>,
        /// HTTP port on 127.0.0.1.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Stop after this long.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Exit when standard input closes.
        #[arg(long)]
        exit_on_stdin_close: bool,
    },
}

#[derive(clap::Args)]
struct CollectorArgs {
    /// Address agents connect to.
    #[arg(long, env = "LAGSCOPE_GRPC_ADDR", default_value = server::DEFAULT_GRPC_ADDR)]
    grpc: SocketAddr,
    /// Address of the HTTP API and Prometheus /metrics.
    #[arg(long, env = "LAGSCOPE_HTTP_ADDR", default_value = server::DEFAULT_HTTP_ADDR)]
    http: SocketAddr,
    /// Token agents and API clients must present (Authorization: Bearer).
    #[arg(long, env = "LAGSCOPE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Allow a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
    /// Append every stored sample to FILE (open it with `lagscope replay FILE`).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Most agents streaming at once.
    #[arg(long, default_value_t = server::DEFAULT_MAX_AGENTS)]
    max_agents: usize,
    /// Cap on history held in memory, in MiB.
    #[arg(long, default_value_t = 512)]
    max_history_mib: u64,
    /// Full-resolution points kept per series (older ones are downsampled to 1-minute buckets).
    #[arg(long, default_value_t = 3600)]
    raw_points: usize,
    /// PEM certificate chain for serving the agents' port over TLS (with --tls-key).
    #[arg(long, env = "LAGSCOPE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "LAGSCOPE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Forward every agent's metrics (and stalls, as spans) to this OTLP/gRPC
    /// endpoint, e.g. an OpenTelemetry Collector at http://127.0.0.1:4317.
    #[arg(long, value_name = "URL", env = "LAGSCOPE_OTLP_EXPORT")]
    otlp_export: Option<String>,
    /// Worker threads of the collector's runtime.
    #[arg(long, env = "LAGSCOPE_COLLECTOR_THREADS", default_value_t = 1)]
    threads: usize,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    lagscope_wire::duration::parse(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as 500ms, 10s or 2m"))
}

/// `10s`, `5m`, `250ms`: the inverse of [`parse_duration`] for messages.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Collector(args) => run_collector(args),
        Command::Tui { collector, token } => {
            let client = lagscope_tui::Client::new(&collector, token)?;
            lagscope_tui::run(client).context("running the dashboard")
        }
        Command::Demo { headless, duration } => demo(headless, duration),
        Command::Profile(args) => profile_cmd::profile(args),
        Command::Doctor(args) => doctor_cmd::run(args),
        Command::Flamegraph(args) => profile_cmd::flamegraph(args),
        Command::Replay { file, headless } => replay(&file, headless),
        Command::Fixture {
            name,
            service,
            port,
            duration,
            exit_on_stdin_close,
        } => scenario::run(
            Scenario::from_name(&name)?,
            scenario::Options {
                service,
                port,
                duration,
                exit_on_stdin_close,
            },
        ),
    }
}

/// The collector's runtime. Its work is light and I/O-bound: one worker avoids
/// cross-thread wake-ups (measured: ~8 % vs ~10 % of a core for 1000 agents
/// at 1 Hz with two workers); `collector --threads` raises it.
fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the collector runtime")
}

fn run_collector(args: CollectorArgs) -> Result<()> {
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(lagscope_collector::TlsFiles {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        }),
        _ => None,
    };
    let config = CollectorConfig {
        grpc_addr: args.grpc,
        http_addr: args.http,
        token: args.token.filter(|t| !t.is_empty()),
        insecure: args.insecure,
        record: args.record,
        store: StoreConfig {
            max_history_bytes: args.max_history_mib * 1024 * 1024,
            raw_points: args.raw_points.max(1),
            ..StoreConfig::default()
        },
        max_agents: args.max_agents,
        quiet: false,
        tls,
        otlp_export: args.otlp_export,
    };
    runtime(args.threads)?.block_on(async {
        let collector = lagscope_collector::start(config).await?;
        println!(
            "lagscope collector: agents -> {} (LAGSCOPE_COLLECTOR={}), API -> {}",
            collector.grpc_addr,
            collector.grpc_url(),
            collector.http_url()
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
        }
        eprintln!("lagscope collector: shutting down");
        collector.shutdown().await;
        Ok(())
    })
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// The demo's services: (fixture, service name).
const DEMO: [(Scenario, &str); 4] = [
    (Scenario::Healthy, "demo-api"),
    (Scenario::Healthy, "demo-api"),
    (Scenario::SleepInAsync, "demo-blocking"),
    (Scenario::HeapLeak, "demo-leaky"),
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

fn demo(headless: bool, duration: Duration) -> Result<()> {
    let rt = runtime(1)?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let collector = rt.block_on(lagscope_collector::start(CollectorConfig {
        grpc_addr: loopback,
        http_addr: loopback,
        quiet: true,
        ..CollectorConfig::default()
    }))?;
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
        let client = lagscope_tui::Client::new(&collector.http_url(), None)?;
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

fn replay(file: &std::path::Path, headless: bool) -> Result<()> {
    let recording = record::read(file)?;
    if let Some((offset, problem)) = &recording.damaged_tail {
        eprintln!(
            "lagscope replay: warning: {} is damaged at byte {offset} ({problem}); showing the {} samples before it",
            file.display(),
            recording.samples.len()
        );
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
    let rt = runtime(1)?;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let shared = Arc::new(Shared::frozen(store, end_ms));
    let collector = rt.block_on(server::start_with(
        CollectorConfig {
            grpc_addr: loopback,
            http_addr: loopback,
            quiet: true,
            ..CollectorConfig::default()
        },
        shared,
    ))?;
    let client = lagscope_tui::Client::new(&collector.http_url(), None)?;
    lagscope_tui::run(client).context("running the dashboard")
}
