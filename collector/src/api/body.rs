//! Reading a request body within a deadline and a size limit.
//!
//! A body is copied into one buffer as it arrives, sized by the declared
//! length up to the limit, so a client that sends it a byte at a time costs
//! the collector those bytes and no more (the transport's read buffers are
//! let go of chunk by chunk). The whole body must arrive by the deadline;
//! past it, or past the limit, the request is answered at once and the
//! connection closes. `Content-Encoding: gzip` is inflated under the same
//! limit; other encodings are refused by name.

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

/// What one body may cost.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Most bytes the body may hold, before and after decompression.
    pub max_bytes: usize,
    /// Time the whole body has to arrive.
    pub deadline: Duration,
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Declared or sent past the limit.
    #[error("the request body is over {limit} bytes, the most this route takes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Not all there by the deadline.
    #[error("the request body did not arrive within {0:?}; send it whole and promptly")]
    TooSlow(Duration),
    /// The connection failed mid-body.
    #[error("the request body broke off: {0}")]
    Broken(String),
    /// An encoding the collector does not read.
    #[error("Content-Encoding {0:?} is not accepted here: send identity or gzip")]
    Encoding(String),
    /// Said to be gzip, but is not.
    #[error("the body says Content-Encoding: gzip but does not inflate: {0}")]
    BadGzip(String),
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        let status = match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) | BodyError::BadGzip(_) => StatusCode::BAD_REQUEST,
            BodyError::Encoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        let mut response = (status, format!("{self}\n")).into_response();
        // The rest of a refused body is not worth reading.
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        response
    }
}

/// Reads `body` whole under `limits`, inflating gzip if `headers` say so.
pub async fn read(
    body: Body,
    headers: &HeaderMap,
    limits: BodyLimits,
) -> Result<Vec<u8>, BodyError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => return Err(BodyError::Encoding(other.to_string())),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(BodyError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    let raw = tokio::time::timeout(limits.deadline, collect(body, declared, limits.max_bytes))
        .await
        .map_err(|_| BodyError::TooSlow(limits.deadline))??;
    if gzip {
        inflate(&raw, limits.max_bytes)
    } else {
        Ok(raw)
    }
}

/// Copies the body's chunks into one buffer, at most `max` bytes.
async fn collect(mut body: Body, declared: Option<u64>, max: usize) -> Result<Vec<u8>, BodyError> {
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max));
    let mut out = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        if let Ok(chunk) = frame.into_data() {
            if out.len() + chunk.len() > max {
                return Err(BodyError::TooLarge { limit: max });
            }
            out.extend_from_slice(&chunk);
        }
    }
    Ok(out)
}

/// Inflates a gzip body, refusing one that grows past `max`.
fn inflate(gz: &[u8], max: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(gz)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadGzip(e.to_string()))?;
    if out.len() > max {
        return Err(BodyError::TooLarge { limit: max });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits(max_bytes: usize) -> BodyLimits {
        BodyLimits {
            max_bytes,
            deadline: Duration::from_secs(5),
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), v.parse().expect("header value"));
        }
        h
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(bytes).expect("compress");
        e.finish().expect("compress")
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_body_in_many_small_chunks_is_one_buffer_of_its_declared_size() {
        let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> =
            (0..1000u32).map(|i| Ok(vec![i as u8].into())).collect();
        let body = Body::from_stream(futures_stream(chunks));
        let got = run(read(
            body,
            &headers(&[(header::CONTENT_LENGTH, "1000")]),
            limits(4096),
        ))
        .expect("read");
        assert_eq!(got.len(), 1000);
        assert_eq!(got.capacity(), 1000);
    }

    #[test]
    fn a_declared_length_past_the_limit_is_refused_before_reading() {
        let got = run(read(
            Body::empty(),
            &headers(&[(header::CONTENT_LENGTH, "4000000")]),
            limits(1024),
        ));
        assert_eq!(got, Err(BodyError::TooLarge { limit: 1024 }));
    }

    #[test]
    fn a_body_sent_past_the_limit_is_refused() {
        let got = run(read(
            Body::from(vec![0u8; 2000]),
            &HeaderMap::new(),
            limits(1024),
        ));
        assert_eq!(got, Err(BodyError::TooLarge { limit: 1024 }));
    }

    #[test]
    fn a_body_that_never_ends_is_refused_at_the_deadline() {
        let body = Body::from_stream(tokio_stream::StreamExt::chain(
            tokio_stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from_static(
                b"x",
            ))]),
            tokio_stream::pending(),
        ));
        let got = run(read(body, &HeaderMap::new(), limits(1024)));
        assert_eq!(got, Err(BodyError::TooSlow(Duration::from_secs(5))));
    }

    #[test]
    fn gzip_is_inflated_and_a_bomb_is_refused() {
        let h = headers(&[(header::CONTENT_ENCODING, "gzip")]);
        let got = run(read(Body::from(gzip(b"hello")), &h, limits(1024))).expect("inflates");
        assert_eq!(got, b"hello");
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 2048);
        let got = run(read(Body::from(bomb), &h, limits(4096)));
        assert_eq!(got, Err(BodyError::TooLarge { limit: 4096 }));
        let got = run(read(Body::from(&b"not gzip"[..]), &h, limits(1024)));
        assert!(matches!(got, Err(BodyError::BadGzip(_))), "{got:?}");
    }

    #[test]
    fn other_encodings_are_refused_by_name() {
        let h = headers(&[(header::CONTENT_ENCODING, "br")]);
        let got = run(read(Body::from(&b"x"[..]), &h, limits(1024)));
        assert_eq!(got, Err(BodyError::Encoding("br".into())));
        let response = BodyError::Encoding("br".into()).into_response();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    fn futures_stream<T: Send + 'static>(
        items: Vec<T>,
    ) -> impl tokio_stream::Stream<Item = T> + Send + 'static {
        tokio_stream::iter(items)
    }
}
