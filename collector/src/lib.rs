//! The lagscope collector: agents stream samples to it over gRPC; it keeps a
//! bounded history per instance and serves it over HTTP (JSON, Prometheus), and
//! can record everything it stores to a file for later replay.

// The HTTP handlers, the gRPC ingest and the profile-request book are the
// server's insides: the CLI starts the server and reads what it serves.
pub(crate) mod api;
pub mod auth;
pub mod doctor;
pub mod flame;
pub(crate) mod ingest;
pub mod listener;
pub mod otlp;
pub(crate) mod profile_requests;
pub mod pyroscope;
pub mod record;
pub mod report;
pub mod server;
pub mod shared;
pub mod store;
pub mod summary;
pub mod waits;

pub use server::{start, start_with, CollectorConfig, RunningCollector, StartError, TlsFiles};
