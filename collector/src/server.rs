//! Starting the collector: the gRPC ingest port and the HTTP API port, both on
//! real sockets, in the current tokio runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use lagscope_wire::pb::collector_server::CollectorServer;
use lagscope_wire::MAX_MESSAGE_BYTES;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Api;
use crate::ingest::Ingest;
use crate::listener::{ConnectionLimits, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_HTTP_CONNECTIONS};
use crate::record::Recorder;
use crate::shared::Shared;
use crate::store::{Store, StoreConfig};

/// Default gRPC (agent) address.
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:6670";
/// Default HTTP (API, metrics) address.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:6671";
/// Default cap on concurrent agent streams (and connections to their port).
pub const DEFAULT_MAX_AGENTS: usize = 10_000;
/// HTTP/2 streams one connection to the agents' port may have open (an
/// agent uses one; OTLP exporters a few).
const GRPC_STREAMS_PER_CONNECTION: u32 = 16;

/// How to run a collector.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Address agents stream to (port 0 picks a free one).
    pub grpc_addr: SocketAddr,
    /// Address of the HTTP API (port 0 picks a free one).
    pub http_addr: SocketAddr,
    /// Token agents and API clients must present.
    pub token: Option<String>,
    /// Allow binding a non-loopback address without a token.
    pub insecure: bool,
    /// Append every stored sample to this recording.
    pub record: Option<PathBuf>,
    /// History bounds.
    pub store: StoreConfig,
    /// Cap on concurrent agent streams.
    pub max_agents: usize,
    /// Say nothing on stderr about agents coming and going (the demo's
    /// dashboard owns the terminal).
    pub quiet: bool,
    /// PEM certificate chain and private key: serve the gRPC port over TLS.
    pub tls: Option<TlsFiles>,
    /// OTLP/gRPC endpoint to forward agents' metrics and stalls to.
    pub otlp_export: Option<String>,
    /// Pyroscope to push agents' CPU and heap profile windows to.
    pub pyroscope: Option<String>,
    /// Cap on open connections to the HTTP port.
    pub max_http_connections: usize,
    /// Time a new connection (either port) has to start talking, and an
    /// HTTP request's headers to arrive.
    pub connection_timeout: std::time::Duration,
}

impl CollectorConfig {
    /// A quiet collector on ephemeral loopback ports with default limits, for
    /// running inside another command (`lagscope doctor`, harnesses).
    pub fn embedded() -> Self {
        CollectorConfig {
            grpc_addr: ([127, 0, 0, 1], 0).into(),
            http_addr: ([127, 0, 0, 1], 0).into(),
            token: None,
            insecure: false,
            record: None,
            store: StoreConfig::default(),
            max_agents: DEFAULT_MAX_AGENTS,
            quiet: true,
            tls: None,
            otlp_export: None,
            pyroscope: None,
            max_http_connections: DEFAULT_MAX_HTTP_CONNECTIONS,
            connection_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// PEM contents of the collector's TLS identity.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM.
    pub key_pem: Vec<u8>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 6670)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 6671)),
            token: None,
            insecure: false,
            record: None,
            store: StoreConfig::default(),
            max_agents: DEFAULT_MAX_AGENTS,
            quiet: false,
            tls: None,
            otlp_export: None,
            pyroscope: None,
            max_http_connections: DEFAULT_MAX_HTTP_CONNECTIONS,
            connection_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A non-loopback address without a token.
    #[error("refusing to listen on {0} without a token: anyone who can reach it could read and write data; set --token (or LAGSCOPE_TOKEN), or pass --insecure")]
    InsecureBind(SocketAddr),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TLS certificate or key was not usable.
    #[error("cannot use the TLS certificate and key: {0}")]
    Tls(String),
    /// The `--pyroscope` URL is not usable.
    #[error(transparent)]
    Pyroscope(#[from] crate::pyroscope::BadUrl),
    /// The recording file could not be opened.
    #[error("cannot record to {path}: {source}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A running collector. Dropping it stops both servers.
pub struct RunningCollector {
    /// Where agents connect.
    pub grpc_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The store and token, for in-process readers.
    pub shared: Arc<Shared>,
    /// Damage found in an existing `--record` file before appending to it
    /// (a torn tail is cut; ranges before it are left for replay to skip).
    pub record_damage: Vec<crate::record::Damage>,
    tls: bool,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningCollector {
    /// The agents' URL, e.g. `http://127.0.0.1:6670` (`https://` with TLS).
    pub fn grpc_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.grpc_addr)
    }

    /// The HTTP API's URL, e.g. `http://127.0.0.1:6671`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Stops accepting, closes streams and waits for both servers to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Waits until both servers have stopped (they run until shut down or
    /// until a fatal error, which is printed).
    pub async fn wait(mut self) {
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for RunningCollector {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds both ports and starts serving in the current runtime.
pub async fn start(config: CollectorConfig) -> Result<RunningCollector, StartError> {
    let shared = Arc::new(Shared::new(Store::new(config.store), config.token.clone()));
    start_with(config, shared).await
}

/// Like [`start`], serving an existing store (e.g. one replayed from a recording).
pub async fn start_with(
    config: CollectorConfig,
    shared: Arc<Shared>,
) -> Result<RunningCollector, StartError> {
    for addr in [config.grpc_addr, config.http_addr] {
        if !addr.ip().is_loopback() && config.token.is_none() && !config.insecure {
            return Err(StartError::InsecureBind(addr));
        }
    }
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let grpc = bind(config.grpc_addr).await?;
    let http = bind(config.http_addr).await?;
    let local = |l: &TcpListener, addr| {
        l.local_addr()
            .map_err(|source| StartError::Bind { addr, source })
    };
    let grpc_addr = local(&grpc, config.grpc_addr)?;
    let http_addr = local(&http, config.http_addr)?;
    let (recorder, record_damage) = match &config.record {
        Some(path) => {
            let (recorder, damage) =
                Recorder::create(path).map_err(|source| StartError::Record {
                    path: path.clone(),
                    source,
                })?;
            (Some(recorder), damage)
        }
        None => (None, Vec::new()),
    };

    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let ingest = Ingest::new(
        shared.clone(),
        recorder.clone(),
        config.max_agents,
        config.quiet,
    );
    let service = CollectorServer::new(ingest)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let grpc_stop = until_stopped(stopped.clone());
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| StartError::Tls(e.to_string()))?;
    }
    // OTLP metrics from other runtimes, on the same port, token and limits.
    let otlp =
        crate::otlp::pb::collector::metrics::v1::metrics_service_server::MetricsServiceServer::new(
            crate::otlp::OtlpMetrics::new(shared.clone()),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let otlp_traces =
        crate::otlp::pb::collector::trace::v1::trace_service_server::TraceServiceServer::new(
            crate::otlp::OtlpTraces::new(shared.clone()),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut tasks = Vec::new();
    if let Some(url) = &config.pyroscope {
        let pusher = Arc::new(crate::pyroscope::Pusher::new(url)?);
        shared.set_pyroscope(pusher.clone());
        let mut stop = stopped.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                () = pusher.run() => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }));
    }
    if let Some(url) = &config.otlp_export {
        let forwarder = Arc::new(crate::otlp::forward::Forwarder::default());
        shared.set_forwarder(forwarder.clone());
        let url = url.clone();
        let mut stop = stopped.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                () = forwarder.run(url) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }));
    }
    // Agents hold one connection each: the agent cap bounds the port's
    // connections too, and silent ones are dropped after the timeout.
    let grpc_incoming = crate::listener::grpc_incoming(
        grpc,
        ConnectionLimits {
            max_connections: config.max_agents.max(1),
            handshake_timeout: config.connection_timeout,
            header_timeout: config.connection_timeout,
            write_timeout: config.connection_timeout,
        },
        shared.grpc_connections.clone(),
    );
    let grpc_task = tokio::spawn(async move {
        let result = builder
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
            .max_concurrent_streams(Some(GRPC_STREAMS_PER_CONNECTION))
            .http2_max_header_list_size(Some(16 * 1024))
            .add_service(service)
            .add_service(otlp)
            .add_service(otlp_traces)
            .serve_with_incoming_shutdown(grpc_incoming, grpc_stop)
            .await;
        if let Err(e) = result {
            eprintln!("lagscope collector: gRPC server on {grpc_addr} stopped: {e}");
        }
    });

    let router = Api::new(shared.clone(), recorder, config.connection_timeout).router();
    let http_stop = until_stopped(stopped);
    let http_limits = ConnectionLimits {
        max_connections: config.max_http_connections.max(1),
        handshake_timeout: config.connection_timeout,
        header_timeout: config.connection_timeout,
        write_timeout: config.connection_timeout,
    };
    let http_stats = shared.http_connections.clone();
    let http_task = tokio::spawn(crate::listener::serve_http(
        http,
        router,
        http_limits,
        http_stats,
        http_stop,
    ));

    Ok(RunningCollector {
        grpc_addr,
        http_addr,
        shared,
        record_damage,
        tls: config.tls.is_some(),
        stop,
        tasks: {
            tasks.extend([grpc_task, http_task]);
            tasks
        },
    })
}
