//! Property tests: samples survive protobuf and JSON unchanged, and decoding
//! arbitrary bytes never panics.

use lagscope_wire::pb;
use lagscope_wire::*;
use proptest::prelude::*;
use prost::Message;

fn lag() -> impl Strategy<Value = LagStats> {
    (
        any::<u64>(),
        any::<Option<u64>>(),
        prop::array::uniform7(any::<u64>()),
    )
        .prop_map(|(probes, pending_us, v)| LagStats {
            probes,
            pending_us,
            min_us: v[0],
            mean_us: v[1],
            p50_us: v[2],
            p90_us: v[3],
            p99_us: v[4],
            p999_us: v[5],
            max_us: v[6],
        })
}

fn worker() -> impl Strategy<Value = WorkerSample> {
    (
        0.0..=1.0f64,
        any::<u64>(),
        any::<bool>(),
        any::<Option<u32>>(),
        prop::array::uniform4(any::<Option<u64>>()),
    )
        .prop_map(|(busy_ratio, park_count, parked, lq, o)| WorkerSample {
            busy_ratio,
            park_count,
            parked,
            local_queue_depth: lq.map(|v| v as usize),
            polls: o[0],
            steals: o[1],
            long_polls: o[2],
            max_poll_us: o[3],
        })
}

fn runtime() -> impl Strategy<Value = RuntimeSample> {
    (
        "[a-z]{1,8}",
        prop::option::of(lag()),
        prop::array::uniform3(any::<u32>()),
        0.0..=1.0f64,
        prop::collection::vec(worker(), 0..4),
        prop::array::uniform3(any::<Option<u32>>()),
        prop::option::of(prop::array::uniform6(any::<u64>())),
        (prop::option::of(lag()), any::<Option<u64>>()),
    )
        .prop_map(
            |(name, lag, n, busy_ratio, worker, b, poll, (schedule_latency, blocking_wait_us))| {
                RuntimeSample {
                    name,
                    lag,
                    workers: n[0] as usize,
                    alive_tasks: n[1] as usize,
                    global_queue_depth: n[2] as usize,
                    busy_ratio,
                    worker,
                    blocking_threads: b[0].map(|v| v as usize),
                    idle_blocking_threads: b[1].map(|v| v as usize),
                    blocking_queue_depth: b[2].map(|v| v as usize),
                    poll: poll.map(|p| PollStats {
                        polls: p[0],
                        long_polls: p[1],
                        long_poll_threshold_us: p[2],
                        p50_us: p[3],
                        p99_us: p[4],
                        max_us: p[5],
                    }),
                    schedule_latency,
                    blocking_wait_us,
                }
            },
        )
}

fn stall() -> impl Strategy<Value = StallEvent> {
    (
        (
            "[a-z]{1,6}",
            prop::sample::select(vec![
                StallDetection::PollHooks,
                StallDetection::WorkerMetrics,
                StallDetection::Unknown,
            ]),
            any::<i32>(),
        ),
        prop::array::uniform3(any::<u64>()),
        any::<bool>(),
        prop::option::of("[a-z_:]{1,20}"),
        prop::collection::vec(
            (prop::collection::vec("[a-z_:<>]{1,20}", 0..5), any::<u32>()),
            0..3,
        ),
        (
            prop::option::of(any::<u64>()),
            prop::option::of("[a-z/.:0-9]{1,20}"),
            prop::option::of("[a-z{}= ]{1,20}"),
            prop::option::of("00-[0-9a-f]{32}-[0-9a-f]{16}-01"),
        ),
    )
        .prop_map(
            |((runtime, detection, tid), t, ongoing, blocking_function, stacks, extra)| {
                StallEvent {
                    id: t[2],
                    runtime,
                    detection,
                    tid,
                    started_ms: t[0],
                    duration_us: t[1],
                    ongoing,
                    blocking_function,
                    stacks: stacks
                        .into_iter()
                        .map(|(frames, count)| StallStack { frames, count })
                        .collect(),
                    task_id: extra.0,
                    spawned_at: extra.1,
                    span: extra.2,
                    trace_parent: extra.3,
                }
            },
        )
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        prop::option::of(any::<u64>()),
        prop::array::uniform4(any::<u64>()),
        any::<u32>(),
        prop::collection::vec(
            (prop::collection::vec("[a-z_:<>]{1,20}", 0..5), any::<u32>()),
            0..4,
        ),
    )
        .prop_map(|(request_id, t, hz, stacks)| Profile {
            request_id,
            start_ms: t[0],
            end_ms: t[1],
            hz,
            samples: t[2],
            dropped: t[3],
            stacks: stacks
                .into_iter()
                .map(|(frames, count)| ProfileStack { frames, count })
                .collect(),
        })
}

fn heap() -> impl Strategy<Value = HeapProfile> {
    (
        prop::array::uniform5(any::<u64>()),
        prop::collection::vec(
            (
                prop::collection::vec("[ -~]{1,16}", 0..4),
                any::<u64>(),
                any::<u64>(),
            ),
            0..3,
        ),
    )
        .prop_map(|(v, sites)| HeapProfile {
            start_ms: v[0],
            end_ms: v[1],
            sample_bytes: v[2],
            samples: v[3],
            dropped: v[4],
            sites: sites
                .into_iter()
                .map(|(frames, live_bytes, allocated_bytes)| HeapSite {
                    frames,
                    live_bytes,
                    allocated_bytes,
                })
                .collect(),
        })
}

fn task() -> impl Strategy<Value = TaskSample> {
    let times = || prop::option::of(any::<(u64, u64)>());
    (
        "[ -~]{1,16}",
        prop::array::uniform7(any::<u64>()),
        (times(), times(), times(), times()),
    )
        .prop_map(|(name, v, (s, p, i, f))| {
            let t =
                |x: Option<(u64, u64)>| x.map(|(mean_us, p99_us)| TaskTimes { mean_us, p99_us });
            TaskSample {
                name,
                instrumented: v[0],
                completed: v[1],
                slow_polls: v[2],
                scheduled_us: v[3],
                poll_us: v[4],
                idle_us: v[5],
                requests: v[6],
                scheduled: t(s),
                poll: t(p),
                idle: t(i),
                first_poll_delay: t(f),
            }
        })
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        prop::array::uniform3(any::<u64>()),
        prop::collection::vec(runtime(), 0..3),
        prop::array::uniform7(any::<Option<u64>>()),
        prop::option::of(0.0..1e12f64),
        (
            prop::array::uniform4(any::<Option<u64>>()),
            prop::option::of(0.0..64.0f64),
            any::<u16>(),
        ),
        prop::collection::vec(("[a-z.]{1,12}", prop::option::of(-1e9..1e9f64)), 0..3),
        (
            any::<u64>(),
            prop::collection::vec(stall(), 0..3),
            prop::collection::vec(profile(), 0..2),
            prop::collection::vec(task(), 0..3),
            any::<u64>(),
            any::<Option<u64>>(),
        ),
        (
            prop::option::of(heap()),
            prop::collection::vec("[ -~]{0,40}", 0..3),
        ),
    )
        .prop_map(
            |(
                ids,
                runtimes,
                m,
                alloc_rate,
                (p, cpu_ratio, cores),
                gauges,
                (dropped, stalls, profiles, tasks, task_names_folded, c_heap),
                (heap, notices),
            )| {
                Sample {
                    service: "svc".into(),
                    instance: "host:1".into(),
                    seq: ids[0],
                    timestamp_ms: ids[1],
                    interval_us: ids[2],
                    runtimes,
                    memory: MemorySample {
                        heap_live_bytes: m[0],
                        heap_peak_bytes: m[1],
                        allocations: m[2],
                        allocated_bytes: m[3],
                        alloc_rate,
                        rss_bytes: m[4],
                        allocator_held_bytes: m[5],
                        c_heap_bytes: c_heap,
                        external_bytes: m[6],
                    },
                    process: ProcessSample {
                        cpu_user_us: p[0],
                        cpu_system_us: p[1],
                        cpu_ratio,
                        threads: p[2],
                        open_fds: p[3],
                        host_cores: cores as usize,
                    },
                    gauges: gauges
                        .into_iter()
                        .map(|(name, value)| GaugeValue { name, value })
                        .collect(),
                    dropped_samples: dropped,
                    stalls,
                    profiles,
                    tasks,
                    task_names_folded,
                    heap,
                    notices,
                }
            },
        )
}

proptest! {
    #[test]
    fn protobuf_round_trip_is_lossless(s in sample()) {
        let bytes = s.to_pb().encode_to_vec();
        let decoded = pb::Sample::decode(bytes.as_slice()).expect("decodes");
        prop_assert_eq!(Sample::from_pb(decoded, "svc", "host:1"), s);
    }

    #[test]
    fn json_round_trip_is_lossless(s in sample()) {
        let text = serde_json::to_string(&s).expect("serializes");
        let back: Sample = serde_json::from_str(&text).expect("parses");
        prop_assert_eq!(back, s);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = pb::AgentMessage::decode(bytes.as_slice());
        let _ = pb::CollectorMessage::decode(bytes.as_slice());
    }
}

#[test]
fn unmeasured_fields_stay_absent_not_zero() {
    let p = pb::MemorySample::default();
    let bytes = p.encode_to_vec();
    let back = pb::MemorySample::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(back.heap_live_bytes, None);
}
