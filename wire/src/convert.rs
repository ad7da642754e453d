//! Conversion between the plain [`crate::Sample`] and its protobuf form.
//!
//! Every field maps one to one; `Option` fields use proto3 `optional`, so "not
//! measured" survives the trip and is never turned into zero.

use crate::pb;
use crate::sample::*;

impl Sample {
    /// The protobuf form of this sample (service and instance travel in `Hello`).
    pub fn to_pb(&self) -> pb::Sample {
        pb::Sample {
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            interval_us: self.interval_us,
            runtimes: self.runtimes.iter().map(runtime_to_pb).collect(),
            memory: Some(memory_to_pb(&self.memory)),
            process: Some(process_to_pb(&self.process)),
            gauges: self
                .gauges
                .iter()
                .map(|g| pb::GaugeValue {
                    name: g.name.clone(),
                    value: g.value,
                })
                .collect(),
            dropped_samples: self.dropped_samples,
            stalls: self
                .stalls
                .iter()
                .map(|e| pb::StallEvent {
                    id: e.id,
                    runtime: e.runtime.clone(),
                    detection: e.detection.name().to_string(),
                    tid: e.tid,
                    started_ms: e.started_ms,
                    duration_us: e.duration_us,
                    ongoing: e.ongoing,
                    blocking_function: e.blocking_function.clone(),
                    stacks: e
                        .stacks
                        .iter()
                        .map(|s| pb::StallStack {
                            frames: s.frames.clone(),
                            count: s.count,
                        })
                        .collect(),
                    task_id: e.task_id,
                    spawned_at: e.spawned_at.clone(),
                    span: e.span.clone(),
                    trace_parent: e.trace_parent.clone(),
                })
                .collect(),
            profiles: self
                .profiles
                .iter()
                .map(|p| pb::Profile {
                    request_id: p.request_id,
                    start_ms: p.start_ms,
                    end_ms: p.end_ms,
                    hz: p.hz,
                    samples: p.samples,
                    dropped: p.dropped,
                    stacks: p
                        .stacks
                        .iter()
                        .map(|s| pb::ProfileStack {
                            frames: s.frames.clone(),
                            count: s.count,
                        })
                        .collect(),
                })
                .collect(),
            tasks: self.tasks.iter().map(task_to_pb).collect(),
            task_names_folded: self.task_names_folded,
            notices: self.notices.clone(),
            last: self.last,
            heap: self.heap.as_ref().map(|h| pb::HeapProfile {
                start_ms: h.start_ms,
                end_ms: h.end_ms,
                sample_bytes: h.sample_bytes,
                samples: h.samples,
                dropped: h.dropped,
                sites: h
                    .sites
                    .iter()
                    .map(|s| pb::HeapSite {
                        frames: s.frames.clone(),
                        live_bytes: s.live_bytes,
                        allocated_bytes: s.allocated_bytes,
                    })
                    .collect(),
            }),
            waits: self.waits.as_ref().map(|w| pb::WaitProfile {
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                captures: w.captures,
                dropped: w.dropped,
                sites: w
                    .sites
                    .iter()
                    .map(|s| pb::WaitSite {
                        task: s.task.clone(),
                        kind: s.kind.clone(),
                        frames: s.frames.clone(),
                        wait_us: s.wait_us,
                        waits: s.waits,
                    })
                    .collect(),
            }),
            stuck: self
                .stuck
                .iter()
                .map(|s| pb::StuckRequest {
                    task: s.task.clone(),
                    pending_ms: s.pending_ms,
                    kind: s.kind.clone(),
                    frames: s.frames.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a sample from its protobuf form and the stream's identity.
    pub fn from_pb(p: pb::Sample, service: &str, instance: &str) -> Sample {
        Sample {
            service: service.to_string(),
            instance: instance.to_string(),
            seq: p.seq,
            timestamp_ms: p.timestamp_ms,
            interval_us: p.interval_us,
            runtimes: p.runtimes.into_iter().map(runtime_from_pb).collect(),
            memory: memory_from_pb(p.memory.unwrap_or_default()),
            process: process_from_pb(p.process.unwrap_or_default()),
            gauges: p
                .gauges
                .into_iter()
                .map(|g| GaugeValue {
                    name: g.name,
                    value: g.value,
                })
                .collect(),
            dropped_samples: p.dropped_samples,
            stalls: p
                .stalls
                .into_iter()
                .map(|e| StallEvent {
                    id: e.id,
                    runtime: e.runtime,
                    detection: StallDetection::from_name(&e.detection),
                    tid: e.tid,
                    started_ms: e.started_ms,
                    duration_us: e.duration_us,
                    ongoing: e.ongoing,
                    blocking_function: e.blocking_function,
                    stacks: e
                        .stacks
                        .into_iter()
                        .map(|s| StallStack {
                            frames: s.frames,
                            count: s.count,
                        })
                        .collect(),
                    task_id: e.task_id,
                    spawned_at: e.spawned_at,
                    span: e.span,
                    trace_parent: e.trace_parent,
                })
                .collect(),
            profiles: p
                .profiles
                .into_iter()
                .map(|p| Profile {
                    request_id: p.request_id,
                    start_ms: p.start_ms,
                    end_ms: p.end_ms,
                    hz: p.hz,
                    samples: p.samples,
                    dropped: p.dropped,
                    stacks: p
                        .stacks
                        .into_iter()
                        .map(|s| ProfileStack {
                            frames: s.frames,
                            count: s.count,
                        })
                        .collect(),
                })
                .collect(),
            tasks: p.tasks.into_iter().map(task_from_pb).collect(),
            task_names_folded: p.task_names_folded,
            notices: p.notices,
            last: p.last,
            heap: p.heap.map(|h| HeapProfile {
                start_ms: h.start_ms,
                end_ms: h.end_ms,
                sample_bytes: h.sample_bytes,
                samples: h.samples,
                dropped: h.dropped,
                sites: h
                    .sites
                    .into_iter()
                    .map(|s| HeapSite {
                        frames: s.frames,
                        live_bytes: s.live_bytes,
                        allocated_bytes: s.allocated_bytes,
                    })
                    .collect(),
            }),
            waits: p.waits.map(|w| WaitProfile {
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                captures: w.captures,
                dropped: w.dropped,
                sites: w
                    .sites
                    .into_iter()
                    .map(|s| WaitSite {
                        task: s.task,
                        kind: s.kind,
                        frames: s.frames,
                        wait_us: s.wait_us,
                        waits: s.waits,
                    })
                    .collect(),
            }),
            stuck: p
                .stuck
                .into_iter()
                .map(|s| StuckRequest {
                    task: s.task,
                    pending_ms: s.pending_ms,
                    kind: s.kind,
                    frames: s.frames,
                })
                .collect(),
        }
    }
}

fn task_to_pb(t: &TaskSample) -> pb::TaskSample {
    let times = |t: &Option<TaskTimes>| {
        t.map(|t| pb::TaskTimes {
            mean_us: t.mean_us,
            p99_us: t.p99_us,
        })
    };
    pb::TaskSample {
        name: t.name.clone(),
        instrumented: t.instrumented,
        completed: t.completed,
        slow_polls: t.slow_polls,
        scheduled_us: t.scheduled_us,
        poll_us: t.poll_us,
        idle_us: t.idle_us,
        requests: t.requests,
        scheduled: times(&t.scheduled),
        poll: times(&t.poll),
        idle: times(&t.idle),
        first_poll_delay: times(&t.first_poll_delay),
        stuck: t.stuck,
    }
}

fn task_from_pb(t: pb::TaskSample) -> TaskSample {
    let times = |t: Option<pb::TaskTimes>| {
        t.map(|t| TaskTimes {
            mean_us: t.mean_us,
            p99_us: t.p99_us,
        })
    };
    TaskSample {
        name: t.name,
        instrumented: t.instrumented,
        completed: t.completed,
        slow_polls: t.slow_polls,
        scheduled_us: t.scheduled_us,
        poll_us: t.poll_us,
        idle_us: t.idle_us,
        requests: t.requests,
        scheduled: times(t.scheduled),
        poll: times(t.poll),
        idle: times(t.idle),
        first_poll_delay: times(t.first_poll_delay),
        stuck: t.stuck,
    }
}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn lag_to_pb(l: &LagStats) -> pb::LagStats {
    pb::LagStats {
        probes: l.probes,
        pending_us: l.pending_us,
        min_us: l.min_us,
        mean_us: l.mean_us,
        p50_us: l.p50_us,
        p90_us: l.p90_us,
        p99_us: l.p99_us,
        p999_us: l.p999_us,
        max_us: l.max_us,
    }
}

fn lag_from_pb(l: pb::LagStats) -> LagStats {
    LagStats {
        probes: l.probes,
        pending_us: l.pending_us,
        min_us: l.min_us,
        mean_us: l.mean_us,
        p50_us: l.p50_us,
        p90_us: l.p90_us,
        p99_us: l.p99_us,
        p999_us: l.p999_us,
        max_us: l.max_us,
    }
}

fn runtime_to_pb(r: &RuntimeSample) -> pb::RuntimeSample {
    pb::RuntimeSample {
        name: r.name.clone(),
        lag: r.lag.as_ref().map(lag_to_pb),
        schedule_latency: r.schedule_latency.as_ref().map(lag_to_pb),
        blocking_wait_us: r.blocking_wait_us,
        workers: r.workers as u64,
        alive_tasks: r.alive_tasks as u64,
        global_queue_depth: r.global_queue_depth as u64,
        busy_ratio: r.busy_ratio,
        worker: r
            .worker
            .iter()
            .map(|w| pb::WorkerSample {
                busy_ratio: w.busy_ratio,
                park_count: w.park_count,
                parked: w.parked,
                local_queue_depth: w.local_queue_depth.map(|v| v as u64),
                polls: w.polls,
                steals: w.steals,
                long_polls: w.long_polls,
                max_poll_us: w.max_poll_us,
            })
            .collect(),
        blocking_threads: r.blocking_threads.map(|v| v as u64),
        idle_blocking_threads: r.idle_blocking_threads.map(|v| v as u64),
        blocking_queue_depth: r.blocking_queue_depth.map(|v| v as u64),
        poll: r.poll.as_ref().map(|p| pb::PollStats {
            polls: p.polls,
            long_polls: p.long_polls,
            long_poll_threshold_us: p.long_poll_threshold_us,
            p50_us: p.p50_us,
            p99_us: p.p99_us,
            max_us: p.max_us,
        }),
    }
}

fn runtime_from_pb(r: pb::RuntimeSample) -> RuntimeSample {
    RuntimeSample {
        name: r.name,
        lag: r.lag.map(lag_from_pb),
        schedule_latency: r.schedule_latency.map(lag_from_pb),
        blocking_wait_us: r.blocking_wait_us,
        workers: usize_of(r.workers),
        alive_tasks: usize_of(r.alive_tasks),
        global_queue_depth: usize_of(r.global_queue_depth),
        busy_ratio: r.busy_ratio,
        worker: r
            .worker
            .into_iter()
            .map(|w| WorkerSample {
                busy_ratio: w.busy_ratio,
                park_count: w.park_count,
                parked: w.parked,
                local_queue_depth: w.local_queue_depth.map(usize_of),
                polls: w.polls,
                steals: w.steals,
                long_polls: w.long_polls,
                max_poll_us: w.max_poll_us,
            })
            .collect(),
        blocking_threads: r.blocking_threads.map(usize_of),
        idle_blocking_threads: r.idle_blocking_threads.map(usize_of),
        blocking_queue_depth: r.blocking_queue_depth.map(usize_of),
        poll: r.poll.map(|p| PollStats {
            polls: p.polls,
            long_polls: p.long_polls,
            long_poll_threshold_us: p.long_poll_threshold_us,
            p50_us: p.p50_us,
            p99_us: p.p99_us,
            max_us: p.max_us,
        }),
    }
}

fn memory_to_pb(m: &MemorySample) -> pb::MemorySample {
    pb::MemorySample {
        heap_live_bytes: m.heap_live_bytes,
        heap_peak_bytes: m.heap_peak_bytes,
        allocations: m.allocations,
        allocated_bytes: m.allocated_bytes,
        alloc_rate: m.alloc_rate,
        rss_bytes: m.rss_bytes,
        allocator_held_bytes: m.allocator_held_bytes,
        c_heap_bytes: m.c_heap_bytes,
        external_bytes: m.external_bytes,
    }
}

fn memory_from_pb(m: pb::MemorySample) -> MemorySample {
    MemorySample {
        heap_live_bytes: m.heap_live_bytes,
        heap_peak_bytes: m.heap_peak_bytes,
        allocations: m.allocations,
        allocated_bytes: m.allocated_bytes,
        alloc_rate: m.alloc_rate,
        rss_bytes: m.rss_bytes,
        allocator_held_bytes: m.allocator_held_bytes,
        c_heap_bytes: m.c_heap_bytes,
        external_bytes: m.external_bytes,
    }
}

fn process_to_pb(p: &ProcessSample) -> pb::ProcessSample {
    pb::ProcessSample {
        cpu_user_us: p.cpu_user_us,
        cpu_system_us: p.cpu_system_us,
        cpu_ratio: p.cpu_ratio,
        threads: p.threads,
        open_fds: p.open_fds,
        host_cores: p.host_cores as u64,
    }
}

fn process_from_pb(p: pb::ProcessSample) -> ProcessSample {
    ProcessSample {
        cpu_user_us: p.cpu_user_us,
        cpu_system_us: p.cpu_system_us,
        cpu_ratio: p.cpu_ratio,
        threads: p.threads,
        open_fds: p.open_fds,
        host_cores: usize_of(p.host_cores),
    }
}
