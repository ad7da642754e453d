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
        .prop_map(|(probes, pending_us, v)| {
            let mut lag_stats = LagStats::default();
            lag_stats.probes = probes;
            lag_stats.pending_us = pending_us;
            lag_stats.min_us = v[0];
            lag_stats.mean_us = v[1];
            lag_stats.p50_us = v[2];
            lag_stats.p90_us = v[3];
            lag_stats.p99_us = v[4];
            lag_stats.p999_us = v[5];
            lag_stats.max_us = v[6];
            lag_stats
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
        .prop_map(|(busy_ratio, park_count, parked, lq, o)| {
            let mut worker_sample = WorkerSample::default();
            worker_sample.busy_ratio = busy_ratio;
            worker_sample.park_count = park_count;
            worker_sample.parked = parked;
            worker_sample.local_queue_depth = lq.map(|v| v as usize);
            worker_sample.polls = o[0];
            worker_sample.steals = o[1];
            worker_sample.long_polls = o[2];
            worker_sample.max_poll_us = o[3];
            worker_sample
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
                let mut runtime_sample = RuntimeSample::default();
                runtime_sample.name = name;
                runtime_sample.lag = lag;
                runtime_sample.workers = n[0] as usize;
                runtime_sample.alive_tasks = n[1] as usize;
                runtime_sample.global_queue_depth = n[2] as usize;
                runtime_sample.busy_ratio = busy_ratio;
                runtime_sample.worker = worker;
                runtime_sample.blocking_threads = b[0].map(|v| v as usize);
                runtime_sample.idle_blocking_threads = b[1].map(|v| v as usize);
                runtime_sample.blocking_queue_depth = b[2].map(|v| v as usize);
                runtime_sample.poll = poll.map(|p| {
                    let mut poll_stats = PollStats::default();
                    poll_stats.polls = p[0];
                    poll_stats.long_polls = p[1];
                    poll_stats.long_poll_threshold_us = p[2];
                    poll_stats.p50_us = p[3];
                    poll_stats.p99_us = p[4];
                    poll_stats.max_us = p[5];
                    poll_stats
                });
                runtime_sample.schedule_latency = schedule_latency;
                runtime_sample.blocking_wait_us = blocking_wait_us;
                runtime_sample
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
                let mut stall_event = StallEvent::default();
                stall_event.id = t[2];
                stall_event.runtime = runtime;
                stall_event.detection = detection;
                stall_event.tid = tid;
                stall_event.started_ms = t[0];
                stall_event.duration_us = t[1];
                stall_event.ongoing = ongoing;
                stall_event.blocking_function = blocking_function;
                stall_event.stacks = stacks
                    .into_iter()
                    .map(|(frames, count)| {
                        let mut stall_stack = StallStack::default();
                        stall_stack.frames = frames;
                        stall_stack.count = count;
                        stall_stack
                    })
                    .collect();
                stall_event.task_id = extra.0;
                stall_event.spawned_at = extra.1;
                stall_event.span = extra.2;
                stall_event.trace_parent = extra.3;
                stall_event
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
        .prop_map(|(request_id, t, hz, stacks)| {
            let mut profile = Profile::default();
            profile.request_id = request_id;
            profile.start_ms = t[0];
            profile.end_ms = t[1];
            profile.hz = hz;
            profile.samples = t[2];
            profile.dropped = t[3];
            profile.stacks = stacks
                .into_iter()
                .map(|(frames, count)| {
                    let mut profile_stack = ProfileStack::default();
                    profile_stack.frames = frames;
                    profile_stack.count = count;
                    profile_stack
                })
                .collect();
            profile
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
        .prop_map(|(v, sites)| {
            let mut heap_profile = HeapProfile::default();
            heap_profile.start_ms = v[0];
            heap_profile.end_ms = v[1];
            heap_profile.sample_bytes = v[2];
            heap_profile.samples = v[3];
            heap_profile.dropped = v[4];
            heap_profile.sites = sites
                .into_iter()
                .map(|(frames, live_bytes, allocated_bytes)| {
                    let mut heap_site = HeapSite::default();
                    heap_site.frames = frames;
                    heap_site.live_bytes = live_bytes;
                    heap_site.allocated_bytes = allocated_bytes;
                    heap_site
                })
                .collect();
            heap_profile
        })
}

fn waits() -> impl Strategy<Value = WaitProfile> {
    (
        prop::array::uniform4(any::<u64>()),
        prop::collection::vec(
            (
                ("[ -~]{1,16}", "[a-z ]{0,8}"),
                prop::collection::vec("[ -~]{1,16}", 0..4),
                any::<(u64, u64)>(),
            ),
            0..3,
        ),
    )
        .prop_map(|(v, sites)| {
            let mut waits = WaitProfile::default();
            waits.start_ms = v[0];
            waits.end_ms = v[1];
            waits.captures = v[2];
            waits.dropped = v[3];
            waits.sites = sites
                .into_iter()
                .map(|((task, kind), frames, (wait_us, n))| {
                    let mut site = WaitSite::default();
                    site.task = task;
                    site.kind = kind;
                    site.frames = frames;
                    site.wait_us = wait_us;
                    site.waits = n;
                    site
                })
                .collect();
            waits
        })
}

fn stuck() -> impl Strategy<Value = StuckRequest> {
    (
        ("[ -~]{1,16}", "[a-z ]{0,8}"),
        any::<u64>(),
        prop::collection::vec("[ -~]{1,16}", 0..4),
    )
        .prop_map(|((task, kind), pending_ms, frames)| {
            let mut stuck = StuckRequest::default();
            stuck.task = task;
            stuck.kind = kind;
            stuck.pending_ms = pending_ms;
            stuck.frames = frames;
            stuck
        })
}

fn task() -> impl Strategy<Value = TaskSample> {
    let times = || prop::option::of(any::<(u64, u64)>());
    (
        "[ -~]{1,16}",
        prop::array::uniform8(any::<u64>()),
        (times(), times(), times(), times()),
    )
        .prop_map(|(name, v, (s, p, i, f))| {
            let t = |x: Option<(u64, u64)>| {
                x.map(|(mean_us, p99_us)| {
                    let mut task_times = TaskTimes::default();
                    task_times.mean_us = mean_us;
                    task_times.p99_us = p99_us;
                    task_times
                })
            };
            {
                let mut task_sample = TaskSample::default();
                task_sample.name = name;
                task_sample.instrumented = v[0];
                task_sample.completed = v[1];
                task_sample.slow_polls = v[2];
                task_sample.scheduled_us = v[3];
                task_sample.poll_us = v[4];
                task_sample.idle_us = v[5];
                task_sample.requests = v[6];
                task_sample.stuck = v[7];
                task_sample.scheduled = t(s);
                task_sample.poll = t(p);
                task_sample.idle = t(i);
                task_sample.first_poll_delay = t(f);
                task_sample
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
            prop::option::of(waits()),
            prop::collection::vec(stuck(), 0..3),
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
                (heap, notices, waits, stuck),
            )| {
                {
                    let mut sample = Sample::default();
                    sample.service = "svc".into();
                    sample.instance = "host:1".into();
                    sample.seq = ids[0];
                    sample.timestamp_ms = ids[1];
                    sample.interval_us = ids[2];
                    sample.runtimes = runtimes;
                    sample.memory = {
                        let mut memory_sample = MemorySample::default();
                        memory_sample.heap_live_bytes = m[0];
                        memory_sample.heap_peak_bytes = m[1];
                        memory_sample.allocations = m[2];
                        memory_sample.allocated_bytes = m[3];
                        memory_sample.alloc_rate = alloc_rate;
                        memory_sample.rss_bytes = m[4];
                        memory_sample.allocator_held_bytes = m[5];
                        memory_sample.c_heap_bytes = c_heap;
                        memory_sample.external_bytes = m[6];
                        memory_sample
                    };
                    sample.process = {
                        let mut process_sample = ProcessSample::default();
                        process_sample.cpu_user_us = p[0];
                        process_sample.cpu_system_us = p[1];
                        process_sample.cpu_ratio = cpu_ratio;
                        process_sample.threads = p[2];
                        process_sample.open_fds = p[3];
                        process_sample.host_cores = cores as usize;
                        process_sample
                    };
                    sample.gauges = gauges
                        .into_iter()
                        .map(|(name, value)| {
                            let mut gauge_value = GaugeValue::default();
                            gauge_value.name = name;
                            gauge_value.value = value;
                            gauge_value
                        })
                        .collect();
                    sample.dropped_samples = dropped;
                    sample.stalls = stalls;
                    sample.profiles = profiles;
                    sample.tasks = tasks;
                    sample.task_names_folded = task_names_folded;
                    sample.heap = heap;
                    sample.notices = notices;
                    sample.waits = waits;
                    sample.stuck = stuck;
                    sample
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
