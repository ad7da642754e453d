//! `lagscope`: the collector, the dashboard, the doctor, profiles, the demo
//! and replay in one binary. Each subcommand lives in a module of
//! `lagscope_cli`; this file only parses the command line.

use std::alloc::System;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use lagscope::alloc::Counting;
use lagscope_cli::{collector, demo, doctor, profile, replay};
use lagscope_fixtures::cli::FixtureArgs;

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
    Collector(collector::CollectorArgs),
    /// Live dashboard of running collectors.
    Tui {
        /// A collector's HTTP address; repeat it to see several collectors'
        /// services in one dashboard (e.g. one collector per shard of the fleet).
        #[arg(
            long,
            env = "LAGSCOPE_API",
            default_value = lagscope_client::DEFAULT_URL,
            value_delimiter = ','
        )]
        collector: Vec<String>,
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
        #[arg(long, default_value = "10s", value_parser = lagscope_wire::duration::parse_arg)]
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
    Doctor(doctor::DoctorArgs),
    /// Profile one instance now, at a high rate, and write a flamegraph.
    Profile(profile::ProfileArgs),
    /// Flamegraph of the continuous CPU profile (or, with --blocking, of the
    /// stalls) over a recent window; differential with --compare-previous/--base.
    Flamegraph(profile::FlamegraphArgs),
    /// Every metric lagscope measures: series, unit, Prometheus and OTLP
    /// names, meaning (Markdown).
    Metrics,
    /// Run one fixture service, as `lagscope-fixture` does (used by `demo`
    /// and the tests).
    #[command(hide = true)]
    Fixture(FixtureArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Collector(args) => collector::run(args),
        Command::Tui { collector, token } => {
            let clients = collector
                .iter()
                .map(|url| lagscope_client::Client::new(url, token.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            lagscope_tui::run_fleet(lagscope_tui::fleet::Fleet::new(clients))
                .context("running the dashboard")
        }
        Command::Demo { headless, duration } => demo::run(headless, duration),
        Command::Profile(args) => profile::profile(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Flamegraph(args) => profile::flamegraph(args),
        Command::Replay { file, headless } => replay::run(&file, headless),
        Command::Metrics => {
            print!("{}", lagscope_wire::metric::markdown());
            Ok(())
        }
        Command::Fixture(args) => lagscope_fixtures::cli::run(args),
    }
}
