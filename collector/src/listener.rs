//! Accepting connections without letting clients hold the collector hostage.
//!
//! Both ports cap how many connections are open at once; one past the cap is
//! refused at once (the HTTP port answers `503` with `Retry-After` first), so
//! a flood costs the collector a counter, not memory or file descriptors. A
//! new connection must say something within the handshake timeout (the
//! HTTP/2 preface or a TLS hello on the agents' port, a request line on the
//! HTTP port); on the HTTP port every request's headers must arrive within
//! the header timeout, which also closes keep-alive connections left idle,
//! and headers are read into a bounded buffer.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Default cap on open connections to the HTTP API port.
pub const DEFAULT_MAX_HTTP_CONNECTIONS: usize = 1024;
/// How long a new connection may stay silent.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// [`DEFAULT_HANDSHAKE_TIMEOUT`] as a flag writes it.
pub const DEFAULT_HANDSHAKE_TIMEOUT_FLAG: &str = "10s";
/// How long a request's headers may take to arrive (and how long a
/// keep-alive connection may sit idle) on the HTTP port.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Buffer for one HTTP connection's request head (the URI limit is 8 KiB).
const MAX_HEADER_BUFFER: usize = 32 * 1024;
/// Header fields one HTTP request may carry.
const MAX_HEADERS: usize = 64;
/// Bytes that must arrive before a connection to the agents' port is served:
/// the 24-byte HTTP/2 preface (a TLS hello is longer).
const GRPC_FIRST_BYTES: usize = 24;

/// The limits of one port.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; more are refused.
    pub max_connections: usize,
    /// Time a new connection has to start talking.
    pub handshake_timeout: Duration,
    /// Time a request's headers have to arrive (HTTP port).
    pub header_timeout: Duration,
}

/// What the listeners saw, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections refused because the cap was reached.
    pub refused: AtomicU64,
    /// Connections closed because they stayed silent or sent headers too slowly.
    pub timed_out: AtomicU64,
}

/// A connection holding a place under its port's cap until it is dropped.
#[derive(Debug)]
pub struct Admitted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    stats: Arc<ConnectionStats>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Relaxed);
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Admitted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// Accepts from `listener` under `limits`, handing on connections that
/// spoke in time; a refused one gets `refuse` written to it first.
fn admit(
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    first_bytes: usize,
    refuse: &'static [u8],
) -> mpsc::Receiver<Admitted> {
    let (tx, rx) = mpsc::channel(64);
    let places = Arc::new(Semaphore::new(limits.max_connections));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                // The server stopped: let go of the port.
                () = tx.closed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                // Out of descriptors or similar: wait rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = places.clone().try_acquire_owned() else {
                stats.refused.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        let _ = stream.write_all(refuse).await;
                        let _ = stream.shutdown().await;
                        // Read what the client sent before closing: closing
                        // with unread bytes resets the connection, and the
                        // reset can reach the client before the answer.
                        let mut sink = [0u8; 1024];
                        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                    })
                    .await;
                });
                continue;
            };
            stats.open.fetch_add(1, Relaxed);
            let admitted = Admitted {
                stream,
                _permit: permit,
                stats: stats.clone(),
            };
            let (tx, stats) = (tx.clone(), stats.clone());
            tokio::spawn(async move {
                if spoke_in_time(&admitted.stream, first_bytes, limits.handshake_timeout).await {
                    let _ = tx.send(admitted).await;
                } else {
                    stats.timed_out.fetch_add(1, Relaxed);
                }
            });
        }
    });
    rx
}

/// Whether `n` bytes arrive on `stream` within `timeout` (peeked, not read).
async fn spoke_in_time(stream: &TcpStream, n: usize, timeout: Duration) -> bool {
    let mut buf = [0u8; GRPC_FIRST_BYTES];
    let buf = &mut buf[..n.min(GRPC_FIRST_BYTES)];
    let n = buf.len();
    tokio::time::timeout(timeout, async {
        loop {
            match stream.peek(buf).await {
                Ok(0) | Err(_) => return false,
                Ok(got) if got >= n => return true,
                // Part of it: wait for more without spinning.
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Connections to the agents' (gRPC) port, for tonic's
/// `serve_with_incoming`.
pub fn grpc_incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
) -> impl tokio_stream::Stream<Item = io::Result<Admitted>> {
    let rx = admit(listener, limits, stats, GRPC_FIRST_BYTES, b"");
    tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}

const HTTP_REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Length: 75\r\n\r\n\
the collector has too many open connections (--max-connections); try again\n";

/// Serves `router` on `listener` under `limits` until `stop` resolves.
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut admitted = admit(listener, limits, stats.clone(), 1, HTTP_REFUSAL);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BUFFER)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let conn = tokio::select! {
            () = &mut stop => return,
            conn = admitted.recv() => match conn {
                Some(conn) => conn,
                None => return,
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let serving = http.serve_connection(TokioIo::new(conn), service);
        let stats = stats.clone();
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                if e.is_timeout() {
                    stats.timed_out.fetch_add(1, Relaxed);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_default_is_the_library_default() {
        assert_eq!(
            lagscope_wire::duration::parse(DEFAULT_HANDSHAKE_TIMEOUT_FLAG),
            Some(DEFAULT_HANDSHAKE_TIMEOUT)
        );
    }

    #[test]
    fn the_refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(HTTP_REFUSAL).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let declared: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .expect("a length");
        assert_eq!(declared, body.len());
    }
}
