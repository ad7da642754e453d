//! The lagscope collector: agents stream samples to it over gRPC; it keeps a
//! bounded history per instance and serves it over HTTP (JSON, Prometheus), and
//! can record everything it stores to a file for later replay.

pub mod api;
pub mod auth;
pub mod doctor;
pub mod flame;
pub mod ingest;
pub mod listener;
pub mod otlp;
pub mod profile_requests;
pub mod record;
pub mod report;
pub mod server;
pub mod shared;
pub mod store;
pub mod summary;

pub use server::{start, start_with, CollectorConfig, RunningCollector, StartError, TlsFiles};
