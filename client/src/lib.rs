//! A small blocking HTTP/1.1 client for the lagscope collector's JSON API
//! (plain HTTP; the collector listens on loopback or behind a proxy), shared
//! by the dashboard and the `doctor`, `profile` and `flamegraph` commands.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use lagscope_wire::api::query::{
    route, DoctorQuery, HeapQuery, ProfileQuery, ProfileRequestQuery, SampleIntervalQuery,
    SeriesQuery, StallsQuery, WaitsQuery,
};
use lagscope_wire::api::{ProfileResponse, SeriesResponse, ServicesResponse, StallsResponse};
use lagscope_wire::doctor::DoctorResponse;
use serde::de::DeserializeOwned;

mod updates;
pub use updates::{Updates, SILENCE};

/// Where a collector's HTTP API listens unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:6671";

/// Why a request to the collector failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port`.
    #[error("collector URL {0:?} must look like http://127.0.0.1:6671")]
    BadUrl(String),
    /// Connecting or talking to the collector failed.
    #[error("cannot reach the collector at {url}: {source}")]
    Io {
        /// The collector's URL.
        url: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The collector answered with an error status.
    #[error("collector answered {status}: {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The response body.
        body: String,
    },
    /// The response was not what the API promises.
    #[error("unexpected response from the collector: {0}")]
    Protocol(String),
}

/// Talks to one collector.
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    host_port: String,
    token: Option<String>,
    timeout: Duration,
}

impl Client {
    /// A client for the collector's HTTP API at `url` (e.g. `http://127.0.0.1:6671`).
    pub fn new(url: &str, token: Option<String>) -> Result<Client, ClientError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| ClientError::BadUrl(url.to_string()))?;
        let host_port = rest.trim_end_matches('/').to_string();
        if host_port.is_empty() || host_port.contains('/') {
            return Err(ClientError::BadUrl(url.to_string()));
        }
        Ok(Client {
            url: url.trim_end_matches('/').to_string(),
            host_port,
            token,
            timeout: Duration::from_secs(2),
        })
    }

    /// The collector's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /api/v1/services`.
    pub fn services(&self) -> Result<ServicesResponse, ClientError> {
        self.get_json(route::SERVICES)
    }

    /// `GET .../series` of one instance over `[from_ms, to_ms]`, at most
    /// `max_points` per series (`None`: every point).
    pub fn series(
        &self,
        service: &str,
        instance: &str,
        from_ms: u64,
        to_ms: u64,
        max_points: Option<usize>,
    ) -> Result<SeriesResponse, ClientError> {
        let q = SeriesQuery {
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            max_points,
            ..SeriesQuery::default()
        };
        let path = route::instance(route::INSTANCE_SERIES, service, instance);
        self.get_json(&route::with_query(&path, &q))
    }

    /// `GET /api/v1/stalls` of one instance, newest first.
    pub fn stalls(
        &self,
        service: &str,
        instance: &str,
        limit: usize,
    ) -> Result<StallsResponse, ClientError> {
        self.stalls_of(service, Some(instance), limit)
    }

    /// `GET /api/v1/doctor`: a diagnosis per instance of `service` (or just
    /// `instance`) over the last `window_ms`, with the data it used if asked.
    pub fn doctor(
        &self,
        service: &str,
        instance: Option<&str>,
        window_ms: u64,
        with_windows: bool,
    ) -> Result<DoctorResponse, ClientError> {
        let q = DoctorQuery {
            service: Some(service.into()),
            instance: instance.map(String::from),
            window_ms: Some(window_ms),
            windows: Some(with_windows),
        };
        self.get_json(&route::with_query(route::DOCTOR, &q))
    }

    /// `GET …/latest`: the newest sample of one instance.
    pub fn latest(
        &self,
        service: &str,
        instance: &str,
    ) -> Result<lagscope_wire::Sample, ClientError> {
        self.get_json(&route::instance(route::INSTANCE_LATEST, service, instance))
    }

    /// `GET /api/v1/stalls` of a service (one instance or all), newest first.
    pub fn stalls_of(
        &self,
        service: &str,
        instance: Option<&str>,
        limit: usize,
    ) -> Result<StallsResponse, ClientError> {
        let q = StallsQuery {
            service: Some(service.into()),
            instance: instance.map(String::from),
            limit: Some(limit),
        };
        self.get_json(&route::with_query(route::STALLS, &q))
    }

    /// `GET /api/v1/profile`: continuous CPU samples of `service` (one
    /// instance, or all merged) over `[from_ms, to_ms]`.
    pub fn profile(
        &self,
        service: &str,
        instance: Option<&str>,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<ProfileResponse, ClientError> {
        let q = ProfileQuery {
            service: Some(service.into()),
            instance: instance.map(String::from),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            folded: None,
        };
        self.get_json(&route::with_query(route::PROFILE, &q))
    }

    /// Heap bytes of `kind` by allocation site over `[from_ms, to_ms]`
    /// (`GET /api/v1/heap`): in use at the last heap window in it, or
    /// allocated over it.
    pub fn heap(
        &self,
        service: &str,
        instance: Option<&str>,
        kind: lagscope_wire::api::HeapKind,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<lagscope_wire::api::HeapResponse, ClientError> {
        let q = HeapQuery {
            service: Some(service.into()),
            instance: instance.map(String::from),
            kind: Some(kind),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
        };
        self.get_json(&route::with_query(route::HEAP, &q))
    }

    /// Where the instrumented futures of `service` waited over
    /// `[from_ms, to_ms]`, by name and await point, and the stuck ones
    /// (`GET /api/v1/waits`); only name `task` if given; with folded stacks
    /// (counts in µs) if `folded`.
    pub fn waits(
        &self,
        service: &str,
        instance: Option<&str>,
        task: Option<&str>,
        from_ms: u64,
        to_ms: u64,
        folded: bool,
    ) -> Result<lagscope_wire::api::WaitsResponse, ClientError> {
        let q = WaitsQuery {
            service: Some(service.into()),
            instance: instance.map(String::from),
            task: task.map(String::from),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            folded: Some(folded),
        };
        self.get_json(&route::with_query(route::WAITS, &q))
    }

    /// Like [`profile`](Self::profile) but without the folded stacks: just
    /// the totals and the top functions.
    pub fn profile_top(
        &self,
        service: &str,
        instance: &str,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<ProfileResponse, ClientError> {
        let q = ProfileQuery {
            service: Some(service.into()),
            instance: Some(instance.into()),
            from_ms: Some(from_ms),
            to_ms: Some(to_ms),
            folded: Some(false),
        };
        self.get_json(&route::with_query(route::PROFILE, &q))
    }

    /// Asks one connected agent for a `seconds`-long profile at `hz` and
    /// waits for it (the wait is `seconds` plus a margin).
    pub fn request_profile(
        &self,
        service: &str,
        instance: &str,
        seconds: u64,
        hz: u32,
    ) -> Result<ProfileResponse, ClientError> {
        let q = ProfileRequestQuery {
            seconds: Some(seconds),
            hz: Some(hz),
        };
        let path = route::instance(route::INSTANCE_PROFILE, service, instance);
        let patient = Client {
            timeout: Duration::from_secs(seconds + 20),
            ..self.clone()
        };
        let body = patient.request("POST", &route::with_query(&path, &q))?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// `GET path` as text, e.g. `/metrics`.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let body = self.get(path)?;
        String::from_utf8(body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Tells a connected agent to sample every `ms` milliseconds.
    pub fn set_sample_interval(
        &self,
        service: &str,
        instance: &str,
        ms: u64,
    ) -> Result<(), ClientError> {
        let q = SampleIntervalQuery { ms: Some(ms) };
        let path = route::instance(route::INSTANCE_SAMPLE_INTERVAL, service, instance);
        self.request("POST", &route::with_query(&path, &q))
            .map(|_| ())
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.get(path)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    fn get(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        self.request("GET", path)
    }

    /// `GET /api/v1/updates`: follows the collector's changes as
    /// server-sent events, at most one per `min_interval_ms`. The
    /// subscription counts the collector as gone after [`SILENCE`] without
    /// a byte.
    pub fn updates(&self, min_interval_ms: u64) -> Result<Updates, ClientError> {
        let q = lagscope_wire::api::query::UpdatesQuery {
            min_interval_ms: Some(min_interval_ms),
        };
        let path = route::with_query(route::UPDATES, &q);
        let stream = self.send("GET", &path, "text/event-stream")?;
        stream
            .set_read_timeout(Some(SILENCE))
            .map_err(|source| self.io_error(source))?;
        Updates::start(stream)
    }

    fn io_error(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            url: self.url.clone(),
            source,
        }
    }

    /// Connects and sends a request without a body.
    fn send(&self, method: &str, path: &str, accept: &str) -> Result<TcpStream, ClientError> {
        let io = |source| self.io_error(source);
        let addr = self
            .host_port
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| ClientError::BadUrl(self.url.clone()))?;
        let mut stream = TcpStream::connect_timeout(&addr, self.timeout).map_err(io)?;
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\nContent-Length: 0\r\nAccept: {accept}\r\n\r\n",
            self.host_port
        );
        stream.write_all(request.as_bytes()).map_err(io)?;
        Ok(stream)
    }

    /// One request on a fresh connection, read to the end (`Connection: close`).
    fn request(&self, method: &str, path: &str) -> Result<Vec<u8>, ClientError> {
        let mut stream = self.send(method, path, "application/json")?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|source| self.io_error(source))?;
        parse_response(&response)
    }
}

/// Splits a `Connection: close` response into status and body; handles a
/// chunked body too.
fn parse_response(response: &[u8]) -> Result<Vec<u8>, ClientError> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| ClientError::Protocol("no end of headers".into()))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let body = &response[split + 4..];
    let status = status_of(&head)?;
    let chunked = is_chunked(&head);
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    if !(200..300).contains(&status) {
        return Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&body).trim().to_string(),
        });
    }
    Ok(body)
}

/// The status code of a response head.
fn status_of(head: &str) -> Result<u16, ClientError> {
    head.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Protocol("bad status line".into()))
}

/// Whether a response head says its body is chunked.
fn is_chunked(head: &str) -> bool {
    head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, ClientError> {
    let bad = || ClientError::Protocol("bad chunked body".into());
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err(bad());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).expect("ok"), b"{}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).expect("ok"), b"{}");
        let err = parse_response(b"HTTP/1.1 401 Unauthorized\r\n\r\nwrong token");
        assert!(matches!(err, Err(ClientError::Status { status: 401, .. })));
    }

    #[test]
    fn urls_must_be_plain_http_host_port() {
        assert!(Client::new("http://127.0.0.1:6671", None).is_ok());
        assert!(Client::new("http://127.0.0.1:6671/", None).is_ok());
        assert!(Client::new("127.0.0.1:6671", None).is_err());
        assert!(Client::new("https://x:1", None).is_err());
    }
}
