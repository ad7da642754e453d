//! Exporters: where samples go after the sampler made them. Each runs on its
//! own thread behind a [`queue::BoundedQueue`], so a slow destination costs
//! bounded memory and counted drops, never a blocked sampler or host.

pub(crate) mod collector;
pub(crate) mod file;
#[cfg(feature = "otel")]
pub(crate) mod otel;
pub(crate) mod queue;
