//! A tower layer that instruments every request under its route's name
//! (cargo feature `tower`).
//!
//! The name is the method and axum's `MatchedPath` (the route template,
//! `GET /orders/{id}`) when the router set one (cargo feature `axum`);
//! otherwise the method and the request's path with id-like segments
//! collapsed to `:id` (`GET /orders/:id`). Names are bounded like every task
//! name: past the cap, requests count under `other`.
//!
//! ```
//! use lagscope::route::route_name;
//! let req = http::Request::get("/orders/8421/items?page=2").body(()).unwrap();
//! assert_eq!(route_name(&req), "GET /orders/:id/items");
//! ```

use std::task::{Context, Poll};

use http::{Method, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::{instrument, Instrumented};

/// Instruments each request's response future under its route name.
///
/// ```
/// use tower::{service_fn, Layer, Service};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let handler = service_fn(|_req: http::Request<()>| async { Ok::<_, ()>("hi") });
/// let mut svc = lagscope::route::TaskMonitorLayer::new().layer(handler);
/// let req = http::Request::get("/doc-layer/77").body(()).unwrap();
/// assert_eq!(svc.call(req).await, Ok("hi"));
/// assert_eq!(lagscope::TaskMonitor::named("GET /doc-layer/:id").completed(), 1);
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskMonitorLayer {
    _private: (),
}

impl TaskMonitorLayer {
    /// The layer.
    pub fn new() -> Self {
        TaskMonitorLayer::default()
    }
}

impl<S> Layer<S> for TaskMonitorLayer {
    type Service = TaskMonitorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TaskMonitorService { inner }
    }
}

/// The service [`TaskMonitorLayer`] wraps around yours.
#[derive(Debug, Clone)]
pub struct TaskMonitorService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for TaskMonitorService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let name = route_name(&req);
        instrument(&name, self.inner.call(req))
    }
}

/// The task name of a request: method and route template, or method and
/// path with id-like segments collapsed.
pub fn route_name<B>(req: &Request<B>) -> String {
    let method = method_name(req.method());
    #[cfg(feature = "axum")]
    if let Some(matched) = req.extensions().get::<axum::extract::MatchedPath>() {
        return format!("{method} {}", matched.as_str());
    }
    format!("{method} {}", collapse_path(req.uri().path()))
}

/// Standard methods by name; anything else is `OTHER`, so a client cannot
/// mint names with made-up methods.
fn method_name(m: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|k| *k == m)
        .map_or("OTHER", |k| match *k {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::PATCH => "PATCH",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            Method::CONNECT => "CONNECT",
            _ => "TRACE",
        })
}

/// `path` with every id-like segment replaced by `:id`: numbers, UUIDs,
/// hex digests, and long tokens that mix letters and digits.
///
/// ```
/// use lagscope::route::collapse_path;
/// assert_eq!(collapse_path("/users/42/avatar"), "/users/:id/avatar");
/// assert_eq!(
///     collapse_path("/o/3f2b8c1e-9d4a-4c6b-8e2f-1a2b3c4d5e6f"),
///     "/o/:id"
/// );
/// assert_eq!(collapse_path("/blob/9f86d081884c7d65"), "/blob/:id");
/// assert_eq!(collapse_path("/api/v2/health"), "/api/v2/health");
/// ```
pub fn collapse_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_id(segment) {
            out.push_str(":id");
        } else {
            out.push_str(segment);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn is_id(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    if digits == segment.len() {
        return true;
    }
    if digits == 0 {
        return false;
    }
    let hex_or_dash = segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let alnum = segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (hex_or_dash && segment.len() >= 8) || (alnum && segment.len() >= 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_collapse_and_words_stay() {
        for (raw, name) in [
            ("/", "/"),
            ("", "/"),
            ("/checkout", "/checkout"),
            ("/orders/123", "/orders/:id"),
            ("/orders/123/", "/orders/:id/"),
            ("/v1/users/42/orders/7", "/v1/users/:id/orders/:id"),
            ("/files/deadbeef00", "/files/:id"),
            ("/sessions/aZ3kP9qL0mN7xY2w", "/sessions/:id"),
            ("/api/v2", "/api/v2"),
            ("/static/app.js", "/static/app.js"),
            ("/cafe", "/cafe"),
        ] {
            assert_eq!(collapse_path(raw), name, "{raw}");
        }
    }

    #[test]
    fn made_up_methods_are_other() {
        let req = Request::builder()
            .method(Method::from_bytes(b"BREW").expect("a token"))
            .uri("/pot")
            .body(())
            .expect("request");
        assert_eq!(route_name(&req), "OTHER /pot");
    }
}
