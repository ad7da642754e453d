//! The HTTP side: JSON API, Prometheus `/metrics`, `/healthz`.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | `ok` (no token needed) |
//! | `GET /metrics?service=` | Prometheus text (at most 2000 instances; narrow with `service`) |
//! | `GET /api/v1/services?service=&limit=1000&cursor=` | services → instances with their latest sample, a page at a time (`next_cursor`) |
//! | `GET /api/v1/services/{service}/instances/{instance}/series?names=a,b&from_ms=&to_ms=&max_points=` | series points |
//! | `GET /api/v1/services/{service}/instances/{instance}/latest` | the latest sample |
//! | `POST /api/v1/services/{service}/instances/{instance}/sample-interval?ms=N` | tell a connected agent to sample every N ms |
//! | `GET /api/v1/stalls?service=&instance=&limit=` | recent stalls with their stacks, newest first |
//! | `GET /api/v1/updates?min_interval_ms=50` | server-sent events (`event: update`, `data: {"generation":N}`) each time the data changed, at most one per interval: a dashboard redraws on them instead of polling |
//! | `POST /v1/metrics` | OTLP/HTTP metrics (`application/x-protobuf`, plain or gzip) from other runtimes |
//! | `GET /api/v1/doctor?service=S&instance=&window_ms=60000&windows=true` | diagnosis per instance over the last window (and the data it used) |
//! | `GET /api/v1/profile?service=S&instance=&from_ms=&to_ms=&folded=false` | continuous CPU profile windows merged (folded stacks unless `folded=false`, and top functions) |
//! | `GET /api/v1/heap?service=S&instance=&kind=inuse\|alloc&from_ms=&to_ms=` | heap bytes by allocation site (folded stacks, counts in bytes): in use at the last heap window of the span, or allocated over it |
//! | `GET /api/v1/waits?service=S&instance=&task=&from_ms=&to_ms=&folded=` | where instrumented futures waited: each name's shares by await point and kind, the stuck futures of the latest samples, and (with `folded=true`) folded stacks in µs |
//! | `POST /api/v1/services/{service}/instances/{instance}/profile?seconds=10&hz=199` | profile a connected agent now; answers when the profile arrives |
//!
//! With a token configured, everything but `/healthz` needs
//! `Authorization: Bearer <token>`.
//!
//! The routes and each route's parameters are spelled once, in
//! [`lagscope_wire::api::query`], which the client uses too; a parameter
//! that does not parse is a 400 naming it and what it takes.

pub mod body;
pub mod prometheus;

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use lagscope_wire::pb::{self, collector_message, CollectorMessage};

use crate::profile_requests::{Claim, ANSWER_GRACE_MS};
use crate::record::Recorder;
use crate::shared::Shared;
use lagscope_wire::api::query::{
    route, ApiQuery, DoctorQuery, HeapQuery, MetricsQuery, ProfileQuery, ProfileRequestQuery,
    SampleIntervalQuery, SeriesQuery, ServicesQuery, StallsQuery, UpdatesQuery, WaitsQuery,
};
use lagscope_wire::api::HeapKind;

/// State of the HTTP handlers.
#[derive(Clone)]
pub struct Api {
    shared: Arc<Shared>,
    recorder: Option<Recorder>,
    body_deadline: std::time::Duration,
}

impl Api {
    /// Handlers over `shared`; a request body must arrive whole within
    /// `body_deadline`.
    pub fn new(
        shared: Arc<Shared>,
        recorder: Option<Recorder>,
        body_deadline: std::time::Duration,
    ) -> Self {
        Api {
            shared,
            recorder,
            body_deadline,
        }
    }

    /// The router with every route.
    pub fn router(self) -> Router {
        let protected = Router::new()
            .route(route::METRICS, get(metrics))
            .route(route::SERVICES, get(services))
            .route(route::STALLS, get(stalls))
            .route(route::UPDATES, get(updates))
            .route(route::PROFILE, get(profile))
            .route(route::HEAP, get(heap))
            .route(route::WAITS, get(waits))
            .route(route::DOCTOR, get(doctor))
            .route(route::OTLP_METRICS, post(otlp_metrics))
            .route(route::INSTANCE_PROFILE, post(request_profile))
            .route(route::INSTANCE_SERIES, get(series))
            .route(route::INSTANCE_LATEST, get(latest))
            .route(route::INSTANCE_SAMPLE_INTERVAL, post(set_sample_interval))
            .route_layer(middleware::from_fn_with_state(self.clone(), authorize));
        Router::new()
            .route(route::HEALTHZ, get(|| async { "ok\n" }))
            .merge(protected)
            .layer(middleware::from_fn(refuse_oversized_heads))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    "no such route; see /api/v1/services\n",
                )
            })
            .with_state(self)
    }
}

/// Longest request target the API reads; every route fits in far less.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Most bytes of header fields one request may carry (names, values and
/// their separators).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// 414 or 431 with a body that says what the limit is. The listener's read
/// buffer stops heads well past these limits with hyper's own 431, which
/// has no body; heads that arrive in one read get here whole.
async fn refuse_oversized_heads(request: Request, next: Next) -> Response {
    let len = request.uri().to_string().len();
    if len > MAX_URI_BYTES {
        return (
            StatusCode::URI_TOO_LONG,
            format!("the request target is {len} bytes; the API takes at most {MAX_URI_BYTES}\n"),
        )
            .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers > MAX_HEADER_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            [(header::CONNECTION, "close")],
            format!("the request's headers are {headers} bytes; the API takes at most {MAX_HEADER_BYTES}\n"),
        )
            .into_response();
    }
    next.run(request).await
}

async fn authorize(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(token) = &api.shared.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !crate::auth::bearer_matches(given, token) {
            return (
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send Authorization: Bearer <token>\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn metrics(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query: MetricsQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let text = {
        let store = api.shared.store();
        let service = query.service.as_deref();
        let mut latest = store.latest_all(api.shared.now_ms());
        latest.retain(|(s, _)| service.is_none_or(|name| s.service == name));
        let omitted = latest.len().saturating_sub(MAX_METRICS_INSTANCES);
        latest.truncate(MAX_METRICS_INSTANCES);
        let mut text = prometheus::render(
            &latest,
            &store.stall_totals(),
            &store.status(),
            api.recorder.as_ref().map_or(0, Recorder::dropped),
            api.shared.forwarder(),
            api.shared.pyroscope(),
            &[
                ("http", &api.shared.http_connections),
                ("grpc", &api.shared.grpc_connections),
            ],
        );
        prometheus::omitted(&mut text, omitted, MAX_METRICS_INSTANCES);
        text
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Instances per `/api/v1/services` page unless `?limit=` says otherwise.
pub const DEFAULT_PAGE: usize = 1000;
/// Most instances one page may hold.
pub const MAX_PAGE: usize = 10_000;
/// Most instances one `/metrics` exposition covers; `?service=` narrows it.
pub const MAX_METRICS_INSTANCES: usize = 2000;

async fn services(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query: ServicesQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return (
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_PAGE}\n"),
        )
            .into_response();
    }
    let after = match query.cursor.as_deref().map(crate::store::decode_cursor) {
        None => None,
        Some(Some(after)) => Some(after),
        Some(None) => {
            return (
                StatusCode::BAD_REQUEST,
                "cursor is not one this collector gave out: pass next_cursor from the previous page, or no cursor for the first\n",
            )
                .into_response()
        }
    };
    let mut body = api.shared.store().services_page(
        api.shared.now_ms(),
        query.service.as_deref(),
        limit,
        after.as_ref(),
    );
    body.collector.recording = api.recorder.as_ref().map(Recorder::status);
    Json(body).into_response()
}

/// Least and most time between two update events, and the default.
const UPDATE_INTERVAL_MS: (u64, u64, u64) = (10, 10_000, 50);

/// Server-sent events, one each time the collector's data changed, at most
/// one per `min_interval_ms` (changes in between make one event): `event:
/// update`, `data: {"generation":N}`. A comment every 15 s keeps idle
/// connections (and proxies) open. A client redraws on each event instead
/// of polling.
async fn updates(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio_stream::StreamExt;
    let query: UpdatesQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let (least, most, default) = UPDATE_INTERVAL_MS;
    let interval = query.min_interval_ms.unwrap_or(default);
    if !(least..=most).contains(&interval) {
        return (
            StatusCode::BAD_REQUEST,
            format!("min_interval_ms must be between {least} and {most}\n"),
        )
            .into_response();
    }
    let events = tokio_stream::wrappers::WatchStream::new(api.shared.updates())
        .throttle(std::time::Duration::from_millis(interval))
        .map(|generation| {
            let data = serde_json::json!({ "generation": generation }).to_string();
            Ok::<_, std::convert::Infallible>(Event::default().event("update").data(data))
        });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
}

async fn stalls(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query: StallsQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let stalls = api.shared.store().stalls(
        query.service.as_deref(),
        query.instance.as_deref(),
        query.limit.unwrap_or(100),
    );
    Json(lagscope_wire::api::StallsResponse { stalls }).into_response()
}

/// Top functions returned with a profile.
const TOP_FUNCTIONS: usize = 20;

fn profile_response(
    service: String,
    instances: Vec<String>,
    merged: crate::store::profiles::Merged,
) -> lagscope_wire::api::ProfileResponse {
    lagscope_wire::api::ProfileResponse {
        service,
        instances,
        start_ms: merged.start_ms,
        end_ms: merged.end_ms,
        hz: merged.hz,
        samples: merged.samples,
        dropped: merged.dropped,
        top: merged.folded.top_functions(TOP_FUNCTIONS),
        folded: merged.folded.to_text(),
    }
}

async fn profile(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query: ProfileQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let (service, from, to) = match service_span(query.service.as_ref(), query.from_ms, query.to_ms)
    {
        Ok(found) => found,
        Err(bad) => return bad.into_response(),
    };
    let instance = query.instance.as_deref();
    let found = api.shared.store().profile(service, instance, from, to);
    match found {
        Some((instances, merged)) => {
            let mut response = profile_response(service.clone(), instances, merged);
            if query.folded == Some(false) {
                response.folded.clear();
            }
            Json(response).into_response()
        }
        None => unknown_service(service, instance),
    }
}

async fn heap(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query: HeapQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let (service, from, to) = match service_span(query.service.as_ref(), query.from_ms, query.to_ms)
    {
        Ok(found) => found,
        Err(bad) => return bad.into_response(),
    };
    let kind = query.kind.unwrap_or(HeapKind::Inuse);
    let instance = query.instance.as_deref();
    let found = api
        .shared
        .store()
        .heap_profile(service, instance, kind, from, to);
    match found {
        Some((instances, m)) => Json(lagscope_wire::api::HeapResponse {
            service: service.clone(),
            instances,
            kind,
            start_ms: m.start_ms,
            end_ms: m.end_ms,
            sample_bytes: m.sample_bytes,
            samples: m.samples,
            dropped: m.dropped,
            total_bytes: m.folded.total(),
            top: m.folded.top_functions(TOP_FUNCTIONS),
            folded: m.folded.to_text(),
        })
        .into_response(),
        None => unknown_service(service, instance),
    }
}

/// The service a span query names, and its span; the answer to give when
/// the service is missing or the span is bad.
fn service_span(
    service: Option<&String>,
    from_ms: Option<u64>,
    to_ms: Option<u64>,
) -> Result<(&String, u64, u64), (StatusCode, String)> {
    let Some(service) = service else {
        return Err((StatusCode::BAD_REQUEST, "give ?service=NAME\n".into()));
    };
    match window(from_ms, to_ms) {
        Ok((from, to)) => Ok((service, from, to)),
        Err(e) => Err((StatusCode::BAD_REQUEST, e)),
    }
}

fn unknown_service(service: &str, instance: Option<&str>) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no service {service:?} (or instance {instance:?}); see /api/v1/services\n"),
    )
        .into_response()
}

async fn waits(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query: WaitsQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let (service, from, to) = match service_span(query.service.as_ref(), query.from_ms, query.to_ms)
    {
        Ok(found) => found,
        Err(bad) => return bad.into_response(),
    };
    let instance = query.instance.as_deref();
    let found = api.shared.store().waits(service, instance, from, to);
    match found {
        Some((instances, m)) => Json(crate::waits::response(
            service,
            instances,
            &m,
            query.task.as_deref(),
            query.folded.unwrap_or(false),
        ))
        .into_response(),
        None => unknown_service(service, instance),
    }
}

async fn otlp_metrics(State(api): State<Api>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let limits = body::BodyLimits {
        max_bytes: lagscope_wire::MAX_MESSAGE_BYTES,
        deadline: api.body_deadline,
    };
    match body::read(body, &parts.headers, limits).await {
        Ok(bytes) => crate::otlp::http_metrics(&api.shared, &parts.headers, &bytes),
        Err(e) => {
            if matches!(e, body::BodyError::TooSlow(_)) {
                let stats = &api.shared.http_connections;
                stats
                    .timed_out
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            e.into_response()
        }
    }
}

async fn doctor(State(api): State<Api>, RawQuery(raw): RawQuery) -> Response {
    let query: DoctorQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let Some(service) = &query.service else {
        return (StatusCode::BAD_REQUEST, "give ?service=NAME\n").into_response();
    };
    let window_ms = query.window_ms.unwrap_or(60_000).max(1000);
    let with_windows = query.windows == Some(true);
    let to = api.shared.now_ms();
    let from = to.saturating_sub(window_ms);
    let store = api.shared.store();
    let instances: Vec<String> = store
        .instance_ids()
        .into_iter()
        .filter(|(s, i)| s == service && query.instance.as_ref().is_none_or(|want| want == i))
        .map(|(_, i)| i)
        .collect();
    if instances.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            format!("no service {service:?} (or no such instance); see /api/v1/services\n"),
        )
            .into_response();
    }
    let windows: Vec<_> = instances
        .iter()
        .filter_map(|i| store.doctor_window(service, i, from, to))
        .collect();
    drop(store);
    let diagnoses = windows.iter().map(crate::doctor::diagnose).collect();
    Json(lagscope_wire::doctor::DoctorResponse {
        diagnoses,
        windows: if with_windows { windows } else { Vec::new() },
    })
    .into_response()
}

async fn request_profile(
    State(api): State<Api>,
    Path((service, instance)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query: ProfileRequestQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let seconds = Some(query.seconds.unwrap_or(10)).filter(|s| (1..=600).contains(s));
    let hz = Some(query.hz.unwrap_or(199)).filter(|h| (1..=1000).contains(h));
    let (Some(seconds), Some(hz)) = (seconds, hz) else {
        return (
            StatusCode::BAD_REQUEST,
            "give ?seconds=N (1..600) and ?hz=N (1..1000)\n",
        )
            .into_response();
    };
    let claim = api.shared.claim_profile(&service, &instance, hz, seconds);
    let running = match claim {
        Claim::Start(r) => {
            let command = CollectorMessage {
                msg: Some(collector_message::Msg::StartProfile(pb::StartProfile {
                    request_id: r.id,
                    hz,
                    duration_ms: seconds * 1000,
                })),
            };
            if !api.shared.send_command(&service, &instance, command) {
                api.shared.release_profile(&service, &instance, r.id);
                return (
                    StatusCode::NOT_FOUND,
                    format!("{service}/{instance} is not connected\n"),
                )
                    .into_response();
            }
            r
        }
        Claim::Join(r) => r,
        Claim::Busy(r) => {
            let wait_s = r.ends_ms.saturating_sub(api.shared.now_ms()).div_ceil(1000);
            return (
                StatusCode::CONFLICT,
                [(header::RETRY_AFTER, wait_s.max(1).to_string())],
                format!(
                    "{service}/{instance} is taking another profile ({} s at {} Hz) that ends in {wait_s} s; \
                     retry then, or ask for at most {} s at {} Hz to share it\n",
                    r.seconds, r.hz, r.seconds, r.hz
                ),
            )
                .into_response();
        }
    };
    // The request that started the profile frees the instance when it ends,
    // even if its client goes away mid-wait (the handler's future is dropped);
    // those that joined leave the claim alone.
    let _release = matches!(claim, Claim::Start(_)).then(|| ReleaseOnDrop {
        shared: &api.shared,
        service: &service,
        instance: &instance,
        id: running.id,
    });
    // The agent answers with its next sample after the profile ends.
    let deadline_ms = running.ends_ms + ANSWER_GRACE_MS;
    loop {
        let answer = api
            .shared
            .store()
            .requested_profile(&service, &instance, running.id)
            .cloned();
        if let Some(p) = answer {
            let stacks = p.stacks.iter().map(|s| (&s.frames[..], u64::from(s.count)));
            let merged = crate::store::profiles::Merged {
                start_ms: p.start_ms,
                end_ms: p.end_ms,
                hz: p.hz,
                samples: p.samples,
                dropped: p.dropped,
                folded: crate::flame::Folded::from_stacks(stacks),
            };
            return Json(profile_response(
                service.clone(),
                vec![instance.clone()],
                merged,
            ))
            .into_response();
        }
        if api.shared.now_ms() >= deadline_ms {
            let connected = api.shared.is_connected(&service, &instance);
            let why = if connected {
                "it is still connected; its samples may be delayed (see lagscope_collector metrics and the agent's dropped samples)"
            } else {
                "it disconnected"
            };
            return (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "{service}/{instance} did not send the profile within {} s of its end: {why}\n",
                    ANSWER_GRACE_MS / 1000
                ),
            )
                .into_response();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Frees an instance's profile claim when the request that made it ends.
struct ReleaseOnDrop<'a> {
    shared: &'a Shared,
    service: &'a str,
    instance: &'a str,
    id: u64,
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.shared
            .release_profile(self.service, self.instance, self.id);
    }
}

async fn latest(
    State(api): State<Api>,
    Path((service, instance)): Path<(String, String)>,
) -> Response {
    match api.shared.store().latest(&service, &instance) {
        Some(s) => Json(s.clone()).into_response(),
        None => not_found(&service, &instance),
    }
}

async fn series(
    State(api): State<Api>,
    Path((service, instance)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let query: SeriesQuery = match params(raw) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let (from, to) = match window(query.from_ms, query.to_ms) {
        Ok(w) => w,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let max_points = query.max_points;
    if max_points == Some(0) {
        return (
            StatusCode::BAD_REQUEST,
            "max_points must be at least 1 (leave it out for every point)\n",
        )
            .into_response();
    }
    let names: Vec<String> = query
        .names
        .as_deref()
        .map(|n| {
            n.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let store = api.shared.store();
    match store.series(&service, &instance, &names, from, to, max_points) {
        Some(r) => Json(r).into_response(),
        None => not_found(&service, &instance),
    }
}

async fn set_sample_interval(
    State(api): State<Api>,
    Path((service, instance)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(ms) = SampleIntervalQuery::from_query(raw.as_deref().unwrap_or(""))
        .ok()
        .and_then(|q| q.ms)
        .filter(|ms| (10..=3_600_000).contains(ms))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "give the interval as ?ms=N, between 10 and 3600000\n",
        )
            .into_response();
    };
    let command = CollectorMessage {
        msg: Some(collector_message::Msg::SetSampleInterval(
            pb::SetSampleInterval {
                interval_us: ms * 1000,
            },
        )),
    };
    if api.shared.send_command(&service, &instance, command) {
        (
            StatusCode::ACCEPTED,
            format!("sent: sample every {ms} ms\n"),
        )
            .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            format!("{service}/{instance} is not connected\n"),
        )
            .into_response()
    }
}

/// The route's typed parameters, or a 400 that names the one it cannot use.
fn params<T: ApiQuery>(raw: Option<String>) -> Result<T, BadQuery> {
    T::from_query(raw.as_deref().unwrap_or("")).map_err(BadQuery)
}

/// A query parameter a route cannot use: answered 400 with what it takes.
struct BadQuery(lagscope_wire::api::query::QueryError);

impl IntoResponse for BadQuery {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, format!("{}\n", self.0)).into_response()
    }
}

/// `from_ms`/`to_ms` of a query (default: all time), checked: a window must
/// not end before it starts.
fn window(from_ms: Option<u64>, to_ms: Option<u64>) -> Result<(u64, u64), String> {
    let (from, to) = (from_ms.unwrap_or(0), to_ms.unwrap_or(u64::MAX));
    if from > to {
        return Err(format!(
            "from_ms ({from}) is after to_ms ({to}): the window would be empty\n"
        ));
    }
    Ok((from, to))
}

fn not_found(service: &str, instance: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no instance {instance:?} of service {service:?}; see /api/v1/services\n"),
    )
        .into_response()
}
