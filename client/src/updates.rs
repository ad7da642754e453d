//! Following `GET /api/v1/updates`: a long-lived response of server-sent
//! events, read as they come (chunked or not).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

use crate::ClientError;

/// How long a subscription waits for a byte before it counts the
/// collector as gone: three of its 15 s keep-alive comments.
pub const SILENCE: std::time::Duration = std::time::Duration::from_secs(45);

/// An open subscription to the collector's updates.
#[derive(Debug)]
pub struct Updates {
    body: Body,
    /// Bytes of the current event not yet parsed.
    pending: Vec<u8>,
}

#[derive(Debug)]
enum Body {
    /// `Transfer-Encoding: chunked`: bytes left in the current chunk.
    Chunked(BufReader<TcpStream>, usize),
    Plain(BufReader<TcpStream>),
}

impl Updates {
    /// Reads the response head from `stream`; fails on a status other than 200.
    pub(crate) fn start(stream: TcpStream) -> Result<Updates, ClientError> {
        let io = |e: std::io::Error| ClientError::Protocol(format!("reading updates: {e}"));
        let mut reader = BufReader::new(stream);
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
                return Err(ClientError::Protocol("updates: no end of headers".into()));
            }
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            head.extend_from_slice(&line);
            if head.len() > 64 * 1024 {
                return Err(ClientError::Protocol("updates: headers too long".into()));
            }
        }
        let head = String::from_utf8_lossy(&head);
        let status = crate::status_of(&head)?;
        if status != 200 {
            let mut body = Vec::new();
            let _ = reader.take(4096).read_to_end(&mut body);
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        let body = if crate::is_chunked(&head) {
            Body::Chunked(reader, 0)
        } else {
            Body::Plain(reader)
        };
        Ok(Updates {
            body,
            pending: Vec::new(),
        })
    }

    /// Blocks until the next update and returns its generation number
    /// (which grows with every change). Keep-alive comments are skipped.
    pub fn next_update(&mut self) -> Result<u64, ClientError> {
        loop {
            if let Some(end) = find_event_end(&self.pending) {
                let event: Vec<u8> = self.pending.drain(..end).collect();
                if let Some(generation) = parse_event(&event)? {
                    return Ok(generation);
                }
                continue;
            }
            if self.pending.len() > 64 * 1024 {
                return Err(ClientError::Protocol("updates: event too long".into()));
            }
            self.read_more()?;
        }
    }

    fn read_more(&mut self) -> Result<(), ClientError> {
        let io = |e: std::io::Error| ClientError::Protocol(format!("reading updates: {e}"));
        let gone = || ClientError::Protocol("the collector closed the updates stream".into());
        let mut buf = [0u8; 4096];
        match &mut self.body {
            Body::Plain(reader) => {
                let n = reader.read(&mut buf).map_err(io)?;
                if n == 0 {
                    return Err(gone());
                }
                self.pending.extend_from_slice(&buf[..n]);
            }
            Body::Chunked(reader, left) => {
                if *left == 0 {
                    let mut line = String::new();
                    // The CRLF ending the previous chunk, then the size line.
                    while line.trim().is_empty() {
                        line.clear();
                        if reader.read_line(&mut line).map_err(io)? == 0 {
                            return Err(gone());
                        }
                    }
                    let size =
                        usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                            .map_err(|_| ClientError::Protocol("updates: bad chunk size".into()))?;
                    if size == 0 {
                        return Err(gone());
                    }
                    *left = size;
                }
                let want = (*left).min(buf.len());
                let n = reader.read(&mut buf[..want]).map_err(io)?;
                if n == 0 {
                    return Err(gone());
                }
                *left -= n;
                self.pending.extend_from_slice(&buf[..n]);
            }
        }
        Ok(())
    }
}

/// Where the first event in `bytes` ends (after its blank line).
fn find_event_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// An `update` event's generation; `None` for comments and other events.
fn parse_event(event: &[u8]) -> Result<Option<u64>, ClientError> {
    let text = String::from_utf8_lossy(event);
    let mut name = "message";
    let mut data = String::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim());
        }
    }
    if name != "update" || data.is_empty() {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct Update {
        generation: u64,
    }
    let update: Update = serde_json::from_str(&data)
        .map_err(|e| ClientError::Protocol(format!("updates: bad event {data:?}: {e}")))?;
    Ok(Some(update.generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_and_line_endings() {
        let bytes = b": keep-alive\n\nevent: update\ndata: {\"generation\":7}\n\nevent: upd";
        let end = find_event_end(bytes).expect("an event");
        assert_eq!(parse_event(&bytes[..end]).expect("ok"), None);
        let rest = &bytes[end..];
        let end = find_event_end(rest).expect("an event");
        assert_eq!(parse_event(&rest[..end]).expect("ok"), Some(7));
        assert_eq!(find_event_end(&rest[end..]), None);
        let crlf = b"event: update\r\ndata: {\"generation\":8}\r\n\r\n";
        assert_eq!(find_event_end(crlf), Some(crlf.len()));
        assert_eq!(parse_event(crlf).expect("ok"), Some(8));
        assert!(parse_event(b"event: update\ndata: nope\n\n").is_err());
    }
}
