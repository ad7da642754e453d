//! OpenTelemetry in and out.
//!
//! In: OTLP metrics — gRPC `MetricsService/Export` on the agents' port and
//! `POST /v1/metrics` (`application/x-protobuf`) on the HTTP port, behind the
//! same token and size limits — from services in other runtimes (Node.js,
//! Go) or lagscope agents exporting OTLP; [`map`] turns them into samples, so
//! they show in the dashboard and the doctor next to tokio services.
//!
//! Out: with `--otlp-export URL` every sample an agent sends is forwarded as
//! OTLP metrics, and every finished stall as a `tokio.stall` span, to an
//! OTLP/gRPC endpoint (an OpenTelemetry Collector, say), from a bounded queue
//! that drops the oldest and counts what it drops when the endpoint is slow
//! or down.

pub mod forward;
pub mod map;
pub mod pb;

use std::sync::Arc;

use crate::otlp::pb::collector::metrics::v1::metrics_service_server::MetricsService;
use crate::otlp::pb::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use crate::otlp::pb::collector::trace::v1::trace_service_server::TraceService;
use crate::otlp::pb::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;

use crate::shared::Shared;
use crate::store::AgentInfo;

/// What one export came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Samples stored.
    pub stored: usize,
    /// Resources whose points were refused (dated outside the collector's
    /// window), with the first reason.
    pub refused: usize,
    /// Why the first refused resource was refused.
    pub reason: Option<String>,
}

impl Ingested {
    /// The OTLP partial-success answer: empty when nothing was refused.
    fn partial_success(&self) -> Option<ExportMetricsPartialSuccess> {
        self.reason
            .as_ref()
            .map(|reason| ExportMetricsPartialSuccess {
                rejected_data_points: self.refused as i64,
                error_message: reason.clone(),
            })
    }
}

/// Stores what an export carries.
pub fn ingest(shared: &Shared, request: &ExportMetricsServiceRequest) -> Result<Ingested, String> {
    let now = shared.now_ms();
    let mapped = map::samples_from_request(request, now);
    let mut store = shared.store();
    let mut outcome = Ingested::default();
    for mut m in mapped {
        if let Err(e) = store.check_clock(m.sample.timestamp_ms, now) {
            outcome.refused += 1;
            outcome.reason.get_or_insert_with(|| e.to_string());
            continue;
        }
        let (service, instance) = (m.sample.service.clone(), m.sample.instance.clone());
        let previous = store.latest(&service, &instance).map(|s| s.timestamp_ms);
        let info = AgentInfo {
            pid: m.pid,
            host: m.host.clone(),
            agent_version: format!("otlp ({})", m.runtime),
            capabilities: vec!["otlp".into(), m.runtime.clone()],
            config_warnings: Vec::new(),
            via_otlp: true,
            notices: Vec::new(),
        };
        let last = match store.connect(&service, &instance, info, now) {
            Ok(last) => last,
            Err(e @ crate::store::StoreError::NameTooLong { .. }) => {
                outcome.refused += 1;
                outcome.reason.get_or_insert_with(|| e.to_string());
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        m.sample.seq = last.map_or(0, |l| l + 1);
        // The exporter's period is the interval (health is judged by it).
        m.sample.interval_us = previous
            .map_or(0, |p| m.sample.timestamp_ms.saturating_sub(p))
            .saturating_mul(1000);
        if store.ingest(m.sample).map_err(|e| e.to_string())? {
            outcome.stored += 1;
        }
    }
    drop(store);
    if outcome.stored > 0 {
        shared.note_update();
    }
    Ok(outcome)
}

/// The gRPC `MetricsService`.
pub struct OtlpMetrics {
    shared: Arc<Shared>,
}

impl OtlpMetrics {
    /// The service over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        OtlpMetrics { shared }
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpMetrics {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        check_token(&self.shared, request.metadata())?;
        let outcome =
            ingest(&self.shared, request.get_ref()).map_err(tonic::Status::failed_precondition)?;
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: outcome.partial_success(),
        }))
    }
}

/// The gRPC `TraceService`: keeps `tokio.stall` spans as stalls of their
/// instance (other spans are accepted and dropped).
pub struct OtlpTraces {
    shared: Arc<Shared>,
}

impl OtlpTraces {
    /// The service over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        OtlpTraces { shared }
    }
}

#[tonic::async_trait]
impl TraceService for OtlpTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        check_token(&self.shared, request.metadata())?;
        let stalls = map::stalls_from_spans(request.get_ref());
        let mut store = self.shared.store();
        for (service, instance, stall) in stalls {
            store.record_stalls(&service, &instance, std::slice::from_ref(&stall));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn check_token(
    shared: &Shared,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<(), tonic::Status> {
    if let Some(token) = &shared.token {
        let given = metadata.get("authorization").and_then(|v| v.to_str().ok());
        if !crate::auth::bearer_matches(given, token) {
            return Err(tonic::Status::unauthenticated(
                "missing or wrong token: send authorization: Bearer <token> (OTEL_EXPORTER_OTLP_HEADERS)",
            ));
        }
    }
    Ok(())
}

/// `POST /v1/metrics` with an OTLP/HTTP protobuf body (already read and
/// inflated).
pub fn http_metrics(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-protobuf") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "OTLP/HTTP here takes application/x-protobuf, not {content_type:?} \
                 (set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)\n"
            ),
        )
            .into_response();
    }
    let request = match ExportMetricsServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not an OTLP ExportMetricsServiceRequest: {e}\n"),
            )
                .into_response()
        }
    };
    match ingest(shared, &request) {
        Ok(outcome) => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            ExportMetricsServiceResponse {
                partial_success: outcome.partial_success(),
            }
            .encode_to_vec(),
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
