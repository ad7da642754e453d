//! `lagscope collector`: the collector as a long-running server, until Ctrl-C
//! or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use lagscope_collector::store::StoreConfig;
use lagscope_collector::{listener, server, CollectorConfig, TlsFiles};

/// `lagscope collector`.
#[derive(clap::Args)]
pub struct CollectorArgs {
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
    /// Most agents streaming at once (also the cap on connections to the
    /// agents' port).
    #[arg(long, default_value_t = server::DEFAULT_MAX_AGENTS)]
    max_agents: usize,
    /// Most connections open at once to the HTTP port; more are refused with 503.
    #[arg(long, default_value_t = listener::DEFAULT_MAX_HTTP_CONNECTIONS)]
    max_connections: usize,
    /// How long a new connection may stay silent, and an HTTP request's
    /// headers may take, before the connection is closed.
    #[arg(long, default_value = listener::DEFAULT_HANDSHAKE_TIMEOUT_FLAG, value_parser = lagscope_wire::duration::parse_arg)]
    connection_timeout: std::time::Duration,
    /// Cap on history held in memory, in MiB.
    #[arg(long, default_value_t = StoreConfig::default().max_history_bytes >> 20)]
    max_history_mib: u64,
    /// Instances held at once (agents and OTLP resources); new ones are
    /// refused beyond it once no gone instance is left to evict.
    #[arg(long, default_value_t = StoreConfig::default().max_instances)]
    max_instances: usize,
    /// Full-resolution points kept per series (older ones are downsampled to 1-minute buckets).
    #[arg(long, default_value_t = StoreConfig::default().raw_points)]
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
    /// Push every agent's CPU profile windows and heap windows to this
    /// Pyroscope (its HTTP ingest, pprof), e.g. http://127.0.0.1:4040.
    #[arg(long, value_name = "URL", env = "LAGSCOPE_PYROSCOPE")]
    pyroscope: Option<String>,
    /// Worker threads of the collector's runtime.
    #[arg(long, env = "LAGSCOPE_COLLECTOR_THREADS", default_value_t = 1)]
    threads: usize,
}

/// The collector's runtime. Its work is light and I/O-bound: one worker avoids
/// cross-thread wake-ups (measured: ~8 % vs ~10 % of a core for 1000 agents
/// at 1 Hz with two workers); `collector --threads` raises it.
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the collector runtime")
}

/// Runs the collector until Ctrl-C or SIGTERM.
pub fn run(args: CollectorArgs) -> Result<()> {
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        }),
        _ => None,
    };
    if let Some(token) = &args.token {
        lagscope_collector::auth::check_token(token)
            .map_err(|e| anyhow::anyhow!("--token / LAGSCOPE_TOKEN: {e}"))?;
    }
    let config = CollectorConfig {
        grpc_addr: args.grpc,
        http_addr: args.http,
        token: args.token,
        insecure: args.insecure,
        record: args.record,
        store: StoreConfig {
            max_history_bytes: args.max_history_mib * 1024 * 1024,
            raw_points: args.raw_points.max(1),
            max_instances: args.max_instances.max(1),
            ..StoreConfig::default()
        },
        max_agents: args.max_agents,
        quiet: false,
        tls,
        otlp_export: args.otlp_export,
        pyroscope: args.pyroscope,
        max_http_connections: args.max_connections,
        connection_timeout: args.connection_timeout,
    };
    runtime(args.threads)?.block_on(async {
        let record = config.record.clone();
        let collector = lagscope_collector::start(config).await?;
        if let Some(path) = &record {
            for d in &collector.record_damage {
                eprintln!(
                    "lagscope collector: warning: {} was damaged at {d}; appending after its last intact record (a torn tail is cut, earlier ranges are skipped on replay)",
                    path.display()
                );
            }
        }
        println!(
            "lagscope collector: agents -> {} (LAGSCOPE_COLLECTOR={}), API -> {}",
            collector.grpc_addr,
            collector.grpc_url(),
            collector.http_url()
        );
        // Give the heap a burst left behind (a connection flood, a big
        // scrape) back to the OS instead of keeping it in RSS.
        let trim = tokio::spawn(async {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(15));
            loop {
                every.tick().await;
                // Off the runtime: trimming walks the arenas under their locks.
                let _ = tokio::task::spawn_blocking(lagscope::alloc::release_free_heap).await;
            }
        });
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate() => {}
        }
        trim.abort();
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
