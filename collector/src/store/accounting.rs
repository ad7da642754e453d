//! What history costs: the bytes each sample, series and instance is
//! charged against the history cap.

use super::*;

/// What one series costs besides its points: its share of the map's nodes
/// (room for eleven entries each, partly filled) and its name's allocation.
/// Calibrated by `collector-bench` ("memory per new instance").
pub(super) const SERIES_ENTRY_BYTES: u64 = 128;

/// What an instance's entries cost besides the instance itself: its share of
/// the service map's nodes and, for a service of one instance (an OTLP
/// resource, say), the node of its own instance map.
pub(super) const INSTANCE_ENTRY_BYTES: u64 = 512;

/// What an instance costs besides its series, stalls and profiles: its
/// entry, names and what its agent said about itself.
pub(super) fn instance_overhead(service: &str, instance: &str, info: &AgentInfo) -> u64 {
    let strings = |v: &[String]| v.iter().map(|s| s.len() as u64 + 24).sum::<u64>();
    std::mem::size_of::<Instance>() as u64
        + INSTANCE_ENTRY_BYTES
        + service.len() as u64
        + instance.len() as u64
        + info.host.len() as u64
        + info.agent_version.len() as u64
        + strings(&info.capabilities)
        + strings(&info.config_warnings)
        + strings(&info.notices)
}

/// What keeping `sample` as an instance's latest costs.
pub(super) fn sample_bytes(sample: &Sample) -> u64 {
    use std::mem::size_of;
    let frames = |frames: &[String]| frames.iter().map(|f| f.len() as u64 + 24).sum::<u64>();
    size_of::<Sample>() as u64
        + sample.service.len() as u64
        + sample.instance.len() as u64
        + sample
            .runtimes
            .iter()
            .map(|r| {
                size_of::<lagscope_wire::RuntimeSample>() as u64
                    + r.name.len() as u64
                    + (r.worker.len() * size_of::<lagscope_wire::WorkerSample>()) as u64
            })
            .sum::<u64>()
        + sample
            .gauges
            .iter()
            .map(|g| g.name.len() as u64 + 40)
            .sum::<u64>()
        + sample.stalls.iter().map(stall_bytes).sum::<u64>()
        + sample
            .profiles
            .iter()
            .flat_map(|p| &p.stacks)
            .map(|s| frames(&s.frames) + 32)
            .sum::<u64>()
        + sample
            .heap
            .iter()
            .flat_map(|h| &h.sites)
            .map(|s| frames(&s.frames) + 40)
            .sum::<u64>()
}
