//! `lagscope`: the collector, the dashboard, the demo and replay in one binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use lagscope_collector::{server, store::StoreConfig, CollectorConfig};

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
    /// Append every stored sample to FILE (replay it with `lagscope replay FILE`).
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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Collector(args) => run_collector(args),
    }
}

fn run_collector(args: CollectorArgs) -> Result<()> {
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
    };
    let rt = tokio::runtime::Runtime::new().context("starting the collector runtime")?;
    rt.block_on(async {
        let collector = lagscope_collector::start(config).await?;
        println!(
            "lagscope collector: agents -> {} (LAGSCOPE_COLLECTOR={}), API -> {}",
            collector.grpc_addr,
            collector.grpc_url(),
            collector.http_url()
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                eprintln!("lagscope collector: shutting down");
                collector.shutdown().await;
            }
        }
        Ok(())
    })
}
