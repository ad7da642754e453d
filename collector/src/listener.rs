//! Accepting connections without letting clients hold the collector hostage.
//!
//! Both ports cap how many connections are open at once; one past the cap is
//! refused at once (the HTTP port answers `503` with `Retry-After` first), so
//! a flood costs the collector a counter, not memory or file descriptors —
//! except `GET /healthz`, which a few reserved places answer even then, so a
//! health check tells a full collector from a dead one. A new connection must
//! say something within the handshake timeout (a TLS hello, or on the agents'
//! port the HTTP/2 preface and its first request; a request line on the HTTP
//! port); on the HTTP port every request's headers must arrive within the
//! header timeout, which also closes keep-alive connections left idle, and
//! headers are read into a bounded buffer. A peer that stops reading what
//! the collector writes is closed once a write has waited the write timeout.

use std::future::Future;
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
/// The HTTP/2 connection preface a cleartext gRPC client starts with.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Places past the HTTP port's cap kept for `GET /healthz`, answered by the
/// listener itself and closed.
const HEALTH_RESERVE: usize = 16;

/// The limits of one port.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; more are refused.
    pub max_connections: usize,
    /// Time a new connection has to start talking.
    pub handshake_timeout: Duration,
    /// Time a request's headers have to arrive (HTTP port).
    pub header_timeout: Duration,
    /// Time one write may wait for the peer to read before the connection
    /// is closed.
    pub write_timeout: Duration,
}

/// What the listeners saw, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections refused because the cap was reached.
    pub refused: AtomicU64,
    /// Connections closed because they stayed silent, sent headers too
    /// slowly or stopped reading what the collector wrote.
    pub timed_out: AtomicU64,
    /// `GET /healthz` answered from the reserve while the port was full.
    pub health_reserved: AtomicU64,
}

/// A connection holding a place under its port's cap until it is dropped.
#[derive(Debug)]
pub struct Admitted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    stats: Arc<ConnectionStats>,
    write_timeout: Duration,
    /// Armed while a write waits for the peer to read.
    write_wait: Option<Pin<Box<tokio::time::Sleep>>>,
    /// On the agents' port until a first request begins: the frames seen
    /// and the deadline for it.
    first_request: Option<(FirstRequest, Pin<Box<tokio::time::Sleep>>)>,
}

impl Admitted {
    /// Passes on a write's outcome, failing it once the peer has not read
    /// for the write timeout.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.write_wait = None;
            return outcome;
        }
        let timeout = self.write_timeout;
        let wait = self
            .write_wait
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match wait.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.write_wait = None;
                self.stats.timed_out.fetch_add(1, Relaxed);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer read nothing for the write timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
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
        let before = buf.filled().len();
        let outcome = Pin::new(&mut self.stream).poll_read(cx, buf);
        let Some((frames, deadline)) = &mut self.first_request else {
            return outcome;
        };
        match outcome {
            Poll::Ready(Ok(())) => {
                if frames.feed(&buf.filled()[before..]) {
                    self.first_request = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.first_request = None;
                    self.stats.timed_out.fetch_add(1, Relaxed);
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the connection timeout",
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
            failed => failed,
        }
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let outcome = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.deadline(cx, outcome)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.stream).poll_flush(cx);
        self.deadline(cx, outcome)
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

/// Which port a listener serves: what a new connection must send before it
/// is served, and how one past the cap is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// The agents' port: the HTTP/2 preface and a first request, or TLS.
    Grpc,
    /// The HTTP API port: a request line; `503` past the cap, but for
    /// `GET /healthz`.
    Http,
}

/// Accepts from `listener` under `limits`, handing on connections that
/// spoke in time.
fn admit(
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    port: Port,
) -> mpsc::Receiver<Admitted> {
    let (tx, rx) = mpsc::channel(64);
    let places = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(match port {
        Port::Http => HEALTH_RESERVE,
        Port::Grpc => 0,
    }));
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
                let (reserve, stats) = (reserve.clone(), stats.clone());
                tokio::spawn(async move {
                    // A reserved place only for a request that is a health
                    // check, held while it is answered.
                    let asks = port == Port::Http && asks_for_health(&stream).await;
                    let reserved = asks.then(|| reserve.try_acquire_owned().ok()).flatten();
                    let health = reserved.is_some();
                    if health {
                        stats.health_reserved.fetch_add(1, Relaxed);
                    } else {
                        stats.refused.fetch_add(1, Relaxed);
                    }
                    let answer = match (port, health) {
                        (Port::Grpc, _) => &b""[..],
                        (Port::Http, true) => HEALTH_ANSWER,
                        (Port::Http, false) => HTTP_REFUSAL,
                    };
                    answer_and_close(stream, answer).await;
                    drop(reserved);
                });
                continue;
            };
            stats.open.fetch_add(1, Relaxed);
            let admitted = Admitted {
                stream,
                _permit: permit,
                stats: stats.clone(),
                write_timeout: limits.write_timeout,
                write_wait: None,
                first_request: (port == Port::Grpc).then(|| {
                    let deadline = tokio::time::sleep(limits.handshake_timeout);
                    (FirstRequest::default(), Box::pin(deadline))
                }),
            };
            let (tx, stats) = (tx.clone(), stats.clone());
            tokio::spawn(async move {
                if spoke_in_time(
                    &admitted.stream,
                    first_bytes(port),
                    limits.handshake_timeout,
                )
                .await
                {
                    let _ = tx.send(admitted).await;
                } else {
                    stats.timed_out.fetch_add(1, Relaxed);
                }
            });
        }
    });
    rx
}

/// Writes `answer` to a connection the collector will not serve, then
/// closes it, all within a second.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer).await;
        let _ = stream.shutdown().await;
        // Read what the client sent before closing: closing with unread
        // bytes resets the connection, and the reset can reach the client
        // before the answer.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Whether a connection's first request is `GET /healthz` (peeked within a
/// second).
async fn asks_for_health(stream: &TcpStream) -> bool {
    const ASK: &[u8] = b"GET /healthz";
    let mut buf = [0u8; ASK.len() + 1];
    let peeked = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(got) if got >= buf.len() => return true,
                Ok(got) if !ASK.starts_with(&buf[..got.min(ASK.len())]) => return false,
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .unwrap_or(false);
    peeked && buf.starts_with(ASK) && matches!(buf[ASK.len()], b' ' | b'?')
}

/// Bytes a new connection to `port` must send before it is served: the
/// 24-byte HTTP/2 preface on the agents' port (a TLS hello is longer), a
/// first byte of a request line on the HTTP port.
fn first_bytes(port: Port) -> usize {
    match port {
        Port::Grpc => HTTP2_PREFACE.len(),
        Port::Http => 1,
    }
}

/// Whether `n` bytes arrive on `stream` within `timeout` (peeked, not read).
async fn spoke_in_time(stream: &TcpStream, n: usize, timeout: Duration) -> bool {
    let mut buf = [0u8; 32];
    let buf = &mut buf[..n.min(32)];
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

/// Follows the frames a cleartext HTTP/2 client sends, read by read, until
/// its first request (a HEADERS frame) begins: a client that sends the
/// preface and then nothing but settings or pings is holding a place, not
/// asking for anything.
#[derive(Debug, Clone, Default)]
struct FirstRequest {
    /// Bytes of the stream seen so far, up to the end of the frame head
    /// being read.
    seen: usize,
    /// Where the next frame head starts.
    next_frame: usize,
    /// The head of the frame being read.
    head: [u8; 9],
    /// Whether a request began (or the stream is not cleartext HTTP/2).
    begun: bool,
}

impl FirstRequest {
    /// Takes the next bytes read; returns whether a request has begun.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        const TLS_HANDSHAKE: u8 = 0x16;
        const HEADERS: u8 = 0x1;
        if self.seen == 0 && self.next_frame == 0 {
            if bytes.first() == Some(&TLS_HANDSHAKE) {
                // TLS: the frames are out of sight; the hello has spoken.
                self.begun = true;
            }
            self.next_frame = HTTP2_PREFACE.len();
        }
        for &byte in bytes {
            if self.begun {
                break;
            }
            let at = self.seen;
            self.seen += 1;
            if at < self.next_frame {
                continue;
            }
            let i = at - self.next_frame;
            self.head[i] = byte;
            if i + 1 == self.head.len() {
                if self.head[3] == HEADERS {
                    self.begun = true;
                }
                let len = usize::from(self.head[0]) << 16
                    | usize::from(self.head[1]) << 8
                    | usize::from(self.head[2]);
                self.next_frame = self.seen + len;
            }
        }
        self.begun
    }
}

/// Connections to the agents' (gRPC) port, for tonic's
/// `serve_with_incoming`.
pub fn grpc_incoming(
    listener: TcpListener,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
) -> impl tokio_stream::Stream<Item = io::Result<Admitted>> {
    let rx = admit(listener, limits, stats, Port::Grpc);
    tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}

const HTTP_REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Length: 75\r\n\r\n\
the collector has too many open connections (--max-connections); try again\n";

const HEALTH_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\
Content-Length: 3\r\n\r\nok\n";

/// Serves `router` on `listener` under `limits` until `stop` resolves.
pub async fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut admitted = admit(listener, limits, stats.clone(), Port::Http);
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

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_request_begins_with_the_first_headers_frame_however_the_bytes_are_split() {
        let mut stream = HTTP2_PREFACE.to_vec();
        stream.extend(frame(0x4, &[0; 18])); // SETTINGS
        stream.extend(frame(0x8, &[0, 0, 1, 0])); // WINDOW_UPDATE
        let before_request = stream.len();
        stream.extend(frame(0x1, &[0x82, 0x86])); // HEADERS
        for chunk in [1, 2, 7, 9, 64, stream.len()] {
            let mut scan = FirstRequest::default();
            let mut begun_at = None;
            for (i, piece) in stream.chunks(chunk).enumerate() {
                if scan.feed(piece) && begun_at.is_none() {
                    begun_at = Some((i + 1) * chunk);
                }
            }
            let at = begun_at.expect("the request is seen");
            assert!(at > before_request, "chunks of {chunk}: seen at {at}");
        }
    }

    #[test]
    fn a_preface_with_settings_and_pings_is_not_a_request() {
        let mut scan = FirstRequest::default();
        assert!(!scan.feed(HTTP2_PREFACE));
        assert!(!scan.feed(&frame(0x4, &[])));
        for _ in 0..100 {
            // A PING whose payload happens to hold a HEADERS type byte.
            assert!(!scan.feed(&frame(0x6, &[0, 0, 0, 1, 1, 1, 1, 1])));
        }
        assert!(scan.feed(&frame(0x1, &[0x82])));
    }

    #[test]
    fn tls_is_not_followed() {
        let mut scan = FirstRequest::default();
        assert!(scan.feed(&[0x16, 3, 1, 0, 200]));
    }

    #[test]
    fn the_health_answer_is_a_complete_http_response() {
        let text = std::str::from_utf8(HEALTH_ANSWER).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 200"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
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
