//! lagscope's data model and wire protocol.
//!
//! - [`sample`]: the plain per-interval [`Sample`] struct the agent produces and
//!   the collector stores; serde-serializable (JSON lines, HTTP API).
//! - `pb`: the versioned protobuf schema `lagscope.v1` and its gRPC service
//!   (cargo feature `grpc`).
//! - `convert`: lossless conversion between the two (feature `grpc`).
//! - [`api`]: the collector's HTTP JSON API types.
//! - [`metric`]: the one metric table — series, Prometheus and OTLP names,
//!   units and docs of every metric, and the sample field each comes from.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod api;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod convert;
pub mod doctor;
pub mod duration;
pub mod frames;
pub mod metric;
pub mod sample;
pub mod tasks;
pub mod waits;

pub use sample::*;

/// Version of the protocol spoken in `Hello` and `Welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest message either side accepts, in bytes; larger frames are rejected.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Generated from `proto/lagscope/v1/lagscope.proto`.
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod pb {
    tonic::include_proto!("lagscope.v1");
}
