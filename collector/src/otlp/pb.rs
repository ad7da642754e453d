//! The OTLP messages and the metrics and trace services, generated from the
//! vendored definitions in `collector/proto/` (OTLP 1.10.0): the collector
//! needs the wire format, not an OpenTelemetry SDK.

#![allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
// The definitions' comments are protobuf prose, not rustdoc.
#![allow(
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls,
    rustdoc::broken_intra_doc_links
)]

/// `opentelemetry.proto.*`, nested as the generated code refers to itself.
pub mod opentelemetry {
    /// `opentelemetry.proto`.
    pub mod proto {
        /// `opentelemetry.proto.common`.
        pub mod common {
            /// `opentelemetry.proto.common.v1`.
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.common.v1");
            }
        }
        /// `opentelemetry.proto.resource`.
        pub mod resource {
            /// `opentelemetry.proto.resource.v1`.
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.resource.v1");
            }
        }
        /// `opentelemetry.proto.metrics`.
        pub mod metrics {
            /// `opentelemetry.proto.metrics.v1`.
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.metrics.v1");
            }
        }
        /// `opentelemetry.proto.trace`.
        pub mod trace {
            /// `opentelemetry.proto.trace.v1`.
            pub mod v1 {
                tonic::include_proto!("opentelemetry.proto.trace.v1");
            }
        }
        /// `opentelemetry.proto.collector`.
        pub mod collector {
            /// `opentelemetry.proto.collector.metrics`.
            pub mod metrics {
                /// `opentelemetry.proto.collector.metrics.v1`.
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.collector.metrics.v1");
                }
            }
            /// `opentelemetry.proto.collector.trace`.
            pub mod trace {
                /// `opentelemetry.proto.collector.trace.v1`.
                pub mod v1 {
                    tonic::include_proto!("opentelemetry.proto.collector.trace.v1");
                }
            }
        }
    }
}

pub use opentelemetry::proto::*;
