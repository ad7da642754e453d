//! End-to-end: the real `lagscope` binary as collector, fixture services with
//! the agent as real processes, everything on loopback and bounded in time.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lagscope_collector::shared::now_ms;
use lagscope_fixtures::proc_usage::rss_bytes;
use lagscope_wire::doctor::Category;
use lagscope_wire::metric::Metric;
use lagscope_wire::pb::{self, agent_message, collector_client::CollectorClient, AgentMessage};
use lagscope_wire::{Sample, StallDetection, PROTOCOL_VERSION};
use support::*;

#[test]
fn samples_from_a_real_agent_reach_the_api_and_metrics() {
    let collector = Collector::start(&[]);
    let _svc = fixture("healthy", "e2e-data", &collector.grpc_url(), &[]);
    let inst = collector.wait_for("e2e-data", 3, Duration::from_secs(20));
    let latest = inst.latest.expect("latest sample");
    let main = latest.runtime("main").expect("main runtime");
    assert_eq!(main.workers, 2);
    assert!(main.lag.is_some());
    assert!(
        latest.memory.heap_live_bytes.is_some(),
        "the lagscope binary counts its heap"
    );
    assert!(inst.capabilities.contains(&"heap".to_string()));

    let client = collector.client(None);
    let metrics = client.get_text("/metrics").expect("metrics");
    assert!(
        metrics.contains("tokio_eventloop_delay_p99_seconds{service=\"e2e-data\""),
        "{metrics}"
    );
    assert!(metrics.contains("process_memory_rss_bytes{service=\"e2e-data\""));
    let series = client
        .series("e2e-data", &inst.instance, 0, u64::MAX, Some(100))
        .expect("series");
    let busy = series
        .series
        .iter()
        .find(|s| s.name == Metric::BusyRatio.series())
        .expect("busy_ratio series");
    assert!(busy.points.len() >= 3);
}

#[test]
fn agents_reconnect_after_a_collector_restart_and_resend_the_gap() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let collector = Collector::start_on(&addr, &[]);
    let url = collector.grpc_url();
    let _svc = fixture("healthy", "e2e-restart", &url, &[]);
    collector.wait_for("e2e-restart", 3, Duration::from_secs(20));

    drop(collector); // SIGKILL
    let down_at = now_ms();
    std::thread::sleep(Duration::from_secs(2));
    let restarted_at = Instant::now();
    let collector = Collector::start_on(&addr, &[]);
    let inst = collector.wait_for("e2e-restart", 1, Duration::from_secs(10));
    assert!(
        restarted_at.elapsed() < Duration::from_secs(5),
        "reconnected after {:?}",
        restarted_at.elapsed()
    );
    // Wait until samples from after the restart are in too.
    std::thread::sleep(Duration::from_secs(1));
    let series = collector
        .client(None)
        .series("e2e-restart", &inst.instance, 0, u64::MAX, None)
        .expect("series");
    let times: Vec<u64> = series
        .series
        .iter()
        .find(|s| s.name == Metric::BusyRatio.series())
        .expect("busy_ratio")
        .points
        .iter()
        .map(|p| p.t_ms)
        .collect();
    assert!(
        times.first().is_some_and(|&t| t <= down_at + 400),
        "samples from the downtime were resent: first {:?}, down at {down_at}",
        times.first()
    );
    let widest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(widest <= 500, "a gap of {widest} ms in 200 ms samples");
}

#[test]
fn a_stopped_collector_costs_the_host_no_lag_and_bounded_memory() {
    let collector = Collector::start(&[]);
    let file = temp_path("stopped.jsonl");
    let svc = fixture(
        "healthy",
        "e2e-stopped",
        &collector.grpc_url(),
        &[
            ("LAGSCOPE_SAMPLE_INTERVAL", "100ms"),
            ("LAGSCOPE_BUFFER_CAPACITY", "20"),
            ("LAGSCOPE_FILE", file.to_str().expect("utf-8 path")),
        ],
    );
    collector.wait_for("e2e-stopped", 5, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = rss_bytes(svc.pid()).expect("fixture alive");
    let stopped_at = now_ms();
    collector.proc.signal("STOP");
    std::thread::sleep(Duration::from_secs(10));
    let rss_after = rss_bytes(svc.pid()).expect("fixture alive");
    collector.proc.signal("CONT");

    let samples: Vec<Sample> = std::fs::read_to_string(&file)
        .expect("the fixture's own sample file")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let p99 = |s: &Sample| {
        s.runtime("main")
            .and_then(|r| r.lag.as_ref())
            .map_or(0, |l| l.p99_us)
    };
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let before: Vec<u64> = samples
        .iter()
        .filter(|s| s.timestamp_ms < stopped_at)
        .map(p99)
        .collect();
    let during: Vec<u64> = samples
        .iter()
        .filter(|s| s.timestamp_ms > stopped_at + 500 && s.timestamp_ms < stopped_at + 9_500)
        .map(p99)
        .collect();
    assert!(
        before.len() >= 10 && during.len() >= 50,
        "{} / {}",
        before.len(),
        during.len()
    );
    // Unchanged within noise: the exporter's trouble never reaches the runtime.
    assert!(
        median(during.clone()) <= median(before.clone()) * 3 + 1_000,
        "lag p99 before {} µs, during {} µs",
        median(before),
        median(during)
    );
    let dropped = samples.last().map_or(0, |s| s.dropped_samples);
    assert!(
        dropped > 0,
        "drops are counted while the collector is stopped"
    );
    assert!(
        rss_after < rss_before + 8 * 1024 * 1024,
        "agent memory grew from {rss_before} to {rss_after}"
    );
}

#[test]
fn five_hundred_agents_connect_at_once() {
    let collector = Collector::start(&[]);
    let url = collector.grpc_url();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let accepted = rt.block_on(async {
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let mut client = CollectorClient::connect(url)
                        .await
                        .map_err(|e| format!("connect: {e:?}"))?;
                    let (tx, rx) = tokio::sync::mpsc::channel(4);
                    let sent = "the session's sender closed".to_string();
                    tx.send(hello("e2e-many", &format!("sim-{i}")))
                        .await
                        .map_err(|_| sent.clone())?;
                    tx.send(batch(0)).await.map_err(|_| sent)?;
                    let mut responses = client
                        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
                        .await
                        .map_err(|e| format!("session: {e}"))?
                        .into_inner();
                    // Welcome, then the ack of the batch.
                    for what in ["welcome", "ack"] {
                        responses
                            .message()
                            .await
                            .map_err(|e| format!("{what}: {e}"))?
                            .ok_or(format!("{what}: the stream ended"))?;
                    }
                    // Keep the stream open until every agent is in.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    drop(tx);
                    Ok::<(), String>(())
                })
            })
            .collect();
        let mut ok = 0;
        let mut failures = std::collections::BTreeMap::<String, usize>::new();
        for t in tasks {
            match t.await {
                Ok(Ok(())) => ok += 1,
                Ok(Err(why)) => *failures.entry(why).or_default() += 1,
                Err(e) => *failures.entry(format!("task: {e}")).or_default() += 1,
            }
        }
        (ok, failures)
    });
    let (accepted, failures) = accepted;
    assert_eq!(accepted, 500, "agents that failed, by why: {failures:#?}");
    let services = collector.services().expect("services");
    let many = services
        .services
        .iter()
        .find(|s| s.service == "e2e-many")
        .expect("service");
    assert_eq!(many.instances.len(), 500);
}

#[test]
fn garbage_and_oversized_frames_are_refused_without_hurting_other_agents() {
    let collector = Collector::start(&[]);
    let _svc = fixture("healthy", "e2e-garbage", &collector.grpc_url(), &[]);
    let before = collector
        .wait_for("e2e-garbage", 2, Duration::from_secs(20))
        .samples;

    // Random bytes on the gRPC port.
    for seed in 0..20u64 {
        if let Ok(mut s) = TcpStream::connect(collector.grpc) {
            let junk: Vec<u8> = (0..4096u64)
                .map(|i| (i.wrapping_mul(6364136223846793005).wrapping_add(seed) >> 33) as u8)
                .collect();
            let _ = s.write_all(&junk);
            let mut sink = [0u8; 256];
            s.set_read_timeout(Some(Duration::from_millis(200))).ok();
            let _ = s.read(&mut sink);
        }
    }
    // An oversized message on a real gRPC stream.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let status = rt.block_on(async {
        let mut client = CollectorClient::connect(collector.grpc_url())
            .await
            .expect("connect")
            .max_encoding_message_size(64 * 1024 * 1024);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(hello("e2e-huge", "huge-1")).await.expect("send");
        let mut huge = batch(0);
        if let Some(agent_message::Msg::Samples(b)) = &mut huge.msg {
            b.samples[0].gauges = (0..200_000)
                .map(|i| pb::GaugeValue {
                    name: format!("gauge-{i:032}"),
                    value: Some(1.0),
                })
                .collect();
        }
        tx.send(huge).await.expect("send");
        let mut responses = client
            .session(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("session opens")
            .into_inner();
        loop {
            match responses.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => break None,
                Err(status) => break Some(status),
            }
        }
    });
    let status = status.expect("the oversized stream is closed with an error");
    assert!(
        matches!(
            status.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted | tonic::Code::Internal
        ),
        "{status:?}"
    );
    // The well-behaved agent keeps streaming; the collector counted the refusals.
    let later = collector.wait_for("e2e-garbage", before + 5, Duration::from_secs(10));
    assert!(later.samples >= before + 5);
    let services = collector.services().expect("services");
    assert!(services.collector.streams_rejected >= 1);
}

#[test]
fn a_wrong_token_is_refused_clearly_on_both_sides() {
    let collector = Collector::start(&["--token", "s3cret"]);
    let mut wrong = fixture(
        "healthy",
        "e2e-token",
        &collector.grpc_url(),
        &[("LAGSCOPE_TOKEN", "wrong")],
    );
    let _right = fixture(
        "healthy",
        "e2e-token-ok",
        &collector.grpc_url(),
        &[("LAGSCOPE_TOKEN", "s3cret")],
    );
    // The API needs the token too.
    let err = collector.client(None).services().expect_err("no token");
    assert!(err.to_string().contains("401"), "{err}");
    let authed = collector.client(Some("s3cret"));
    // Both agents start at once: wait for the right one streaming and the
    // wrong one refused, in whichever order they happen.
    let seen = wait_until(Duration::from_secs(20), || {
        let s = authed.services().ok()?;
        let streaming = s.services.iter().any(|s| s.service == "e2e-token-ok");
        (streaming && s.collector.streams_rejected >= 1).then_some(s)
    })
    .expect("the right token streams and the wrong one is refused");
    assert!(!seen.services.iter().any(|s| s.service == "e2e-token"));

    // The agent with the wrong token says why on its stderr.
    std::thread::sleep(Duration::from_millis(500));
    let _ = wrong.child.kill();
    let mut stderr = String::new();
    if let Some(mut e) = wrong.child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(stderr.contains("LAGSCOPE_TOKEN"), "agent said: {stderr}");
}

#[test]
fn the_api_answers_odd_requests_clearly() {
    let collector = Collector::start(&["--token", "s3cret"]);
    let auth = "authorization: bearer s3cret";
    // The scheme is case-insensitive.
    let (status, _) = http_get(collector.http, "/api/v1/services", &[auth]);
    assert_eq!(status, 200);
    let (status, _) = http_get(
        collector.http,
        "/api/v1/services",
        &["authorization: Bearer nope"],
    );
    assert_eq!(status, 401);
    let series = "/api/v1/services/s/instances/i/series";
    let (status, body) = http_get(collector.http, &format!("{series}?max_points=0"), &[auth]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_points"), "{body}");
    let (status, body) = http_get(
        collector.http,
        &format!("{series}?from_ms=20&to_ms=10"),
        &[auth],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("from_ms"), "{body}");
    let (status, body) = http_get(collector.http, "/api/v1/stalls?limit=lots", &[auth]);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("limit must be a whole number, got \"lots\""),
        "{body}"
    );
    let (status, body) = http_get(collector.http, "/api/v1/services?cursor=zz", &[auth]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("next_cursor"), "{body}");
    let big = format!("x-pad: {}", "y".repeat(40_000));
    let (status, body) = http_get(collector.http, "/api/v1/services", &[auth, &big]);
    assert_eq!(status, 431, "{body}");
    assert!(body.contains("at most"), "431 says why: {body:?}");
    let long = format!("/api/v1/services?pad={}", "x".repeat(20_000));
    let (status, body) = http_get(collector.http, &long, &[auth]);
    assert_eq!(status, 414);
    assert!(body.contains("at most"), "414 says why: {body:?}");

    // A blank token is refused at start, not accepted.
    let out = Command::new(LAGSCOPE)
        .args([
            "collector",
            "--grpc",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .args(["--token", " "])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));
}

#[test]
fn silent_slow_and_excess_connections_are_closed_or_refused_cleanly() {
    let collector = Collector::start(&["--max-connections", "4", "--connection-timeout", "1s"]);
    // Silent connections to both ports, and one dripping its headers.
    let silent_grpc = TcpStream::connect(collector.grpc).expect("connect");
    let mut slow = TcpStream::connect(collector.http).expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        .expect("start headers");
    let closed = |mut s: &TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(0) | Err(_))
    };
    assert!(
        closed(&silent_grpc),
        "a silent agents'-port connection is closed"
    );
    let _ = slow.write_all(b"x");
    assert!(closed(&slow), "headers that never end close the connection");

    // The HTTP/2 preface and settings, but never a request.
    let mut preface_only = TcpStream::connect(collector.grpc).expect("connect");
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .expect("preface");
    let started = Instant::now();
    let mut sink = Vec::new();
    preface_only
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = preface_only.read_to_end(&mut sink);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a connection without a request is closed at the connection timeout, not held by keep-alive ({:?})",
        started.elapsed()
    );

    // A body that trickles is answered at the deadline and closed.
    let mut trickle = TcpStream::connect(collector.http).expect("connect");
    trickle
        .write_all(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 5000000\r\n\r\nab")
        .expect("start a body");
    trickle
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    let _ = trickle.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let mut trickle = TcpStream::connect(collector.http).expect("connect");
    trickle
        .write_all(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nab")
        .expect("start a body");
    trickle
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    let _ = trickle.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive within"), "{answer}");

    // Past the cap: a clean 503 that says why, and the port recovers.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(collector.http).expect("connect");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .expect("half a request");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = http_get(collector.http, "/api/v1/services", &[]);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("--max-connections"), "{body}");
    // Health is still answered: a full collector is not a dead one.
    let (status, body) = http_get(collector.http, "/healthz", &[]);
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    drop(held);
    let healthy = wait_until(Duration::from_secs(5), || {
        (http_get(collector.http, "/healthz", &[]).0 == 200).then_some(())
    });
    assert!(healthy.is_some(), "the port serves again once they close");
    let metrics = collector
        .client(None)
        .get_text("/metrics")
        .expect("metrics");
    let refused: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("lagscope_collector_connections_refused_total{port=\"http\"} ")
        })
        .and_then(|v| v.parse().ok())
        .expect("refusals counted");
    assert!(refused >= 1.0, "{metrics}");
    let reserved: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lagscope_collector_health_reserved_total{port=\"http\"} "))
        .and_then(|v| v.parse().ok())
        .expect("health answers counted");
    assert!(reserved >= 1.0, "{metrics}");
    assert_promtool_clean(&metrics);
}

/// `tests/data/format1-before-compression.lsr` was recorded by a collector
/// from before history was kept in compressed chunks (two fixtures, 14 s:
/// a heap leak and a 250 ms sleep in async code). It must replay as it did
/// then: the recording holds samples, not the store's layout.
#[test]
fn a_recording_made_before_compressed_history_still_replays() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/format1-before-compression.lsr"
    );
    let out = Command::new(LAGSCOPE)
        .args(["replay", "--headless", file])
        .output()
        .expect("replay runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("damaged"), "{stderr}");
    // What the collector of the time printed for it, column for column.
    let row = |service: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(service))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{service} is listed: {stdout}"))
    };
    let leak = row("old-heap-leak");
    assert_eq!(
        leak[2..],
        [
            "29",
            "0.1ms",
            "0.1ms",
            "0%",
            "20.0MiB",
            "+78.34MiB",
            "32.3MiB"
        ]
    );
    let sleep = row("old-sleep-in-async");
    assert_eq!(
        sleep[2..],
        ["33", "252.9ms", "252.9ms", "12%", "2.6MiB", "+3.36MiB", "14.9MiB"]
    );
}

#[test]
fn a_recording_survives_kill_9_and_replays_with_its_torn_tail_skipped() {
    let file = temp_path("rec.lsr");
    let collector = Collector::start(&["--record", file.to_str().expect("utf-8 path")]);
    let _svc = fixture("heap-leak", "e2e-rec", &collector.grpc_url(), &[]);
    collector.wait_for("e2e-rec", 6, Duration::from_secs(20));
    drop(collector); // SIGKILL
                     // Tear the last record as a crash mid-write would.
    let len = std::fs::metadata(&file).expect("recording exists").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_len(len - 5))
        .expect("truncate");
    let out = Command::new(LAGSCOPE)
        .args(["replay", "--headless"])
        .arg(&file)
        .output()
        .expect("replay runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("damaged"), "{stderr}");
    assert!(stdout.contains("e2e-rec"), "{stdout}");

    // Recording onto the torn file again: the new samples are readable.
    let collector = Collector::start(&["--record", file.to_str().expect("utf-8 path")]);
    let _svc = fixture("healthy", "e2e-rec-again", &collector.grpc_url(), &[]);
    collector.wait_for("e2e-rec-again", 3, Duration::from_secs(20));
    drop(collector);
    let out = Command::new(LAGSCOPE)
        .args(["replay", "--headless"])
        .arg(&file)
        .output()
        .expect("replay runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("e2e-rec") && stdout.contains("e2e-rec-again"),
        "{stdout}"
    );
}

#[test]
fn headless_demo_summarises_every_service() {
    let out = Command::new(LAGSCOPE)
        .args(["demo", "--headless", "--duration", "4s"])
        .stdin(Stdio::null())
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for service in ["demo-api", "demo-blocking", "demo-leaky", "demo-checkout"] {
        assert!(stdout.contains(service), "{stdout}");
    }
}

#[test]
fn bad_input_on_the_command_line_gets_a_clear_error() {
    let run = |args: &[&str]| {
        let out = Command::new(LAGSCOPE).args(args).output().expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["collector", "--grpc", "0.0.0.0:0", "--http", "127.0.0.1:0"]);
    assert!(!ok && err.contains("without a token"), "{err}");
    let (ok, err) = run(&["collector", "--bogus"]);
    assert!(!ok && err.contains("--bogus"), "{err}");
    let (ok, err) = run(&["demo", "--headless", "--duration", "soon"]);
    assert!(!ok && err.contains("not a duration"), "{err}");
    let missing = temp_path("missing.lsr");
    let (ok, err) = run(&["replay", "--headless", missing.to_str().expect("utf-8")]);
    assert!(!ok && err.contains("cannot read recording"), "{err}");
    let (ok, err) = run(&["fixture", "no-such-thing"]);
    assert!(!ok && err.contains("unknown fixture"), "{err}");
}

#[test]
fn an_unreachable_collector_never_stops_the_service() {
    // Nothing listens on this port; the fixture still serves and samples.
    let port = free_port();
    let file = temp_path("unreachable.jsonl");
    let svc = fixture(
        "healthy",
        "e2e-unreachable",
        &format!("http://127.0.0.1:{port}"),
        &[("LAGSCOPE_FILE", file.to_str().expect("utf-8"))],
    );
    let lines = wait_until(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&file).ok()?;
        (text.lines().count() >= 5).then_some(text)
    })
    .expect("the agent keeps sampling");
    assert!(lines
        .lines()
        .all(|l| serde_json::from_str::<Sample>(l).is_ok()));
    drop(svc);
}

#[test]
fn invalid_environment_values_are_warned_about_and_the_service_keeps_running() {
    let collector = Collector::start(&[]);
    let bad = [
        ("LAGSCOPE_SAMPLE_INTERVAL", "abc"),
        ("LAGSCOPE_PROFILE_HZ", "100000"),
        ("LAGSCOPE_BUFFER_CAPACITY", "0"),
        ("LAGSCOPE_STALL_THRESHOLD", "soon"),
        // Files the process cannot use are the operator's mistake too.
        ("LAGSCOPE_FILE", "/nonexistent/dir/x.jsonl"),
        ("LAGSCOPE_CA_FILE", "/nonexistent"),
    ];
    let svc = fixture("healthy", "e2e-badenv", &collector.grpc_url(), &bad);
    let inst = collector.wait_for("e2e-badenv", 3, Duration::from_secs(20));
    for (var, _) in bad {
        assert!(
            inst.config_warnings.iter().any(|w| w.contains(var)),
            "{var} not in {:?}",
            inst.config_warnings
        );
    }
    // The defaults stand in: one sample a second, not the fixture's 200 ms.
    let interval = inst.latest.as_ref().map(|s| s.interval_us).unwrap_or(0);
    assert!((800_000..1_300_000).contains(&interval), "{interval} µs");
    drop(collector);
    let stderr = svc.stop_and_read_stderr();
    for (var, _) in bad {
        assert_eq!(stderr.matches(var).count(), 1, "{var} once in {stderr}");
    }

    // A collector URL that is not one: the service runs without exporting.
    let port = free_port();
    let svc = Command::new(LAGSCOPE)
        .args(["fixture", "healthy", "--port", &port.to_string()])
        .env("LAGSCOPE_COLLECTOR", "not-a-url")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(|child| Proc { child })
        .expect("fixture starts");
    let served = wait_until(Duration::from_secs(10), || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        body.starts_with("HTTP/1.1 200").then_some(())
    });
    assert!(served.is_some(), "the service answers");
    let stderr = svc.stop_and_read_stderr();
    assert!(stderr.contains("LAGSCOPE_COLLECTOR"), "{stderr}");
}

fn hello(service: &str, instance: &str) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Hello(pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            service: service.into(),
            instance: instance.into(),
            pid: 1,
            host: "sim".into(),
            agent_version: "test".into(),
            runtimes: vec![],
            capabilities: vec![],
            config_warnings: vec![],
            sample_interval_us: 1_000_000,
            max_unacked: 0,
        })),
    }
}

fn batch(seq: u64) -> AgentMessage {
    AgentMessage {
        msg: Some(agent_message::Msg::Samples(pb::SampleBatch {
            samples: vec![pb::Sample {
                seq,
                timestamp_ms: now_ms(),
                interval_us: 1_000_000,
                runtimes: vec![pb::RuntimeSample {
                    name: "main".into(),
                    workers: 1,
                    busy_ratio: 0.1,
                    ..Default::default()
                }],
                memory: Some(pb::MemorySample::default()),
                process: Some(pb::ProcessSample::default()),
                gauges: vec![],
                dropped_samples: 0,
                stalls: vec![],
                profiles: vec![],
                tasks: vec![],
                task_names_folded: 0,
                notices: vec![],
                heap: None,
                last: false,
                waits: None,
                stuck: vec![],
            }],
            flush: false,
        })),
    }
}

#[test]
fn the_collector_can_change_an_agents_sample_interval() {
    let collector = Collector::start(&[]);
    let _svc = fixture(
        "healthy",
        "e2e-interval",
        &collector.grpc_url(),
        &[("LAGSCOPE_SAMPLE_INTERVAL", "1s")],
    );
    let inst = collector.wait_for("e2e-interval", 1, Duration::from_secs(20));
    let client = collector.client(None);
    client
        .set_sample_interval("e2e-interval", &inst.instance, 100)
        .expect("command accepted");
    let fast = wait_until(Duration::from_secs(10), || {
        let s = collector.services()?;
        let latest = s
            .services
            .iter()
            .flat_map(|s| &s.instances)
            .find(|i| i.instance == inst.instance)?
            .latest
            .clone()?;
        (latest.interval_us < 200_000).then_some(latest.interval_us)
    });
    assert!(fast.is_some(), "the agent now samples every ~100 ms");
    let err = client
        .set_sample_interval("e2e-interval", "no-such-instance", 100)
        .expect_err("not connected");
    assert!(err.to_string().contains("404"), "{err}");
    let err = client
        .set_sample_interval("e2e-interval", &inst.instance, 1)
        .expect_err("out of range");
    assert!(err.to_string().contains("400"), "{err}");
}

/// The dashboard's push: `GET /api/v1/updates` sends an event when an agent
/// connects and as its samples arrive, no faster than asked; a bad interval
/// or a wrong token is a clear error.
#[test]
fn updates_are_pushed_as_samples_arrive() {
    let collector = Collector::start(&["--token", "s3cret"]);
    let client = collector.client(Some("s3cret"));
    let mut updates = client.updates(100).expect("subscribed");
    let first = updates
        .next_update()
        .expect("the current generation at once");
    let _svc = fixture(
        "healthy",
        "e2e-push",
        &collector.grpc_url(),
        &[("LAGSCOPE_TOKEN", "s3cret")],
    );
    let start = Instant::now();
    let mut generations = vec![first];
    let mut seen = None;
    while start.elapsed() < Duration::from_secs(20) && generations.len() < 12 {
        generations.push(updates.next_update().expect("an update"));
        let listed = client.services().expect("services");
        seen = seen.or_else(|| {
            listed
                .services
                .iter()
                .find(|s| s.service == "e2e-push")
                .map(|_| generations.len())
        });
    }
    assert!(
        seen.is_some(),
        "the agent's arrival was pushed: {generations:?}"
    );
    assert!(
        generations.windows(2).all(|w| w[1] > w[0]),
        "each event is a newer generation: {generations:?}"
    );
    // 200 ms samples with a 100 ms interval: about one event a sample.
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        generations.len() as f64 <= elapsed / 0.1 + 2.0,
        "at most one event per 100 ms: {} in {elapsed:.1} s",
        generations.len()
    );
    let err = client.updates(1).expect_err("interval too short");
    assert!(err.to_string().contains("400"), "{err}");
    let err = collector
        .client(Some("wrong"))
        .updates(100)
        .expect_err("bad token");
    assert!(err.to_string().contains("401"), "{err}");
}

/// A fleet sharded over two collectors in one dashboard: `lagscope tui
/// --collector A --collector B` lists both shards' services, and an
/// instance's panes come from the collector that holds it.
#[test]
fn one_dashboard_shows_two_collectors() {
    let (a, b) = (Collector::start(&[]), Collector::start(&[]));
    let _orders = fixture("healthy", "shard-a-orders", &a.grpc_url(), &[]);
    let _billing = fixture("sleep-in-async", "shard-b-billing", &b.grpc_url(), &[]);
    a.wait_for("shard-a-orders", 2, Duration::from_secs(20));
    b.wait_for("shard-b-billing", 2, Duration::from_secs(20));
    let (url_a, url_b) = (format!("http://{}", a.http), format!("http://{}", b.http));
    let screen = Tmux::start(
        "fleet",
        160,
        30,
        &[
            LAGSCOPE,
            "tui",
            "--collector",
            &url_a,
            "--collector",
            &url_b,
        ],
    );
    let both = wait_until(Duration::from_secs(20), || {
        let s = screen.capture();
        (s.contains("shard-a-orders") && s.contains("shard-b-billing") && s.contains("2 svc"))
            .then_some(s)
    });
    // The second shard's instance: its diagnosis comes from collector B.
    screen.keys("Down");
    let from_b = wait_until(Duration::from_secs(20), || {
        let s = screen.capture();
        (s.contains("shard-b-billing /") && s.contains("event-loop-blocking")).then_some(s)
    });
    let last = screen.capture();
    assert!(both.is_some(), "both collectors' services listed:\n{last}");
    assert!(
        from_b.is_some(),
        "the B instance's panes came from B:\n{last}"
    );
}

/// The way past one collector, as Prometheus users run it: a real
/// Prometheus scrapes two collectors (each holding one shard of the fleet)
/// and answers one PromQL query over both.
#[test]
fn prometheus_scrapes_two_collectors_and_answers_across_both() {
    require("prometheus", "apt-get install prometheus");
    let (a, b) = (Collector::start(&[]), Collector::start(&[]));
    let _orders = fixture("healthy", "shard-a-orders", &a.grpc_url(), &[]);
    let _billing = fixture("healthy", "shard-b-billing", &b.grpc_url(), &[]);
    a.wait_for("shard-a-orders", 2, Duration::from_secs(20));
    b.wait_for("shard-b-billing", 2, Duration::from_secs(20));
    let dir = temp_path("prometheus-fleet");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lagscope\n    static_configs:\n      - targets: ['{}', '{}']\n",
            a.http, b.http
        ),
    )
    .expect("config written");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _prometheus = Proc {
        child: Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    };
    let addr: std::net::SocketAddr = listen.parse().expect("address");
    let query = |promql: &str| -> Option<serde_json::Value> {
        let encoded: String = promql
            .bytes()
            .map(|c| match c {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (c as char).to_string(),
                _ => format!("%{c:02X}"),
            })
            .collect();
        // Not listening yet: nothing to ask.
        TcpStream::connect(addr).ok()?;
        let (status, body) = http_get(addr, &format!("/api/v1/query?query={encoded}"), &[]);
        (status == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    };
    // One series per service, from two collectors, in one answer.
    let by_service = wait_until(Duration::from_secs(30), || {
        let answer = query("count by (service) (tokio_workers)")?;
        let services: Vec<String> = answer["data"]["result"]
            .as_array()?
            .iter()
            .filter_map(|r| r["metric"]["service"].as_str().map(String::from))
            .collect();
        (services.len() == 2).then_some(services)
    });
    let agents = wait_until(Duration::from_secs(10), || {
        let answer = query("sum(lagscope_collector_agents_connected)")?;
        let value = answer["data"]["result"][0]["value"][1]
            .as_str()?
            .to_string();
        (value == "2").then_some(value)
    });
    let mut services = by_service.expect("both shards' services in one PromQL answer");
    services.sort();
    assert_eq!(services, ["shard-a-orders", "shard-b-billing"]);
    assert_eq!(
        agents.as_deref(),
        Some("2"),
        "agents summed over both collectors"
    );
}

/// One request a Pyroscope-like receiver kept: request line, head, body.
struct Kept {
    line: String,
    head: String,
    body: Vec<u8>,
}

/// A receiver for Pyroscope's ingest API that keeps what arrives and
/// refuses the first push with 503, as a busy server would.
fn pyroscope_receiver() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<Kept>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { break };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut data = Vec::new();
            let mut buf = [0u8; 65536];
            let (head_end, length) = loop {
                let Ok(k) = conn.read(&mut buf) else {
                    break (0, 0);
                };
                if k == 0 {
                    break (0, 0);
                }
                data.extend_from_slice(&buf[..k]);
                if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (end + 4, length);
                }
            };
            if head_end == 0 {
                continue;
            }
            while data.len() < head_end + length {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => data.extend_from_slice(&buf[..k]),
                }
            }
            let status = if n == 0 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = conn.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
            let kept = Kept {
                line: head.lines().next().unwrap_or_default().to_string(),
                head,
                body: data[head_end..].to_vec(),
            };
            if tx.send(kept).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// The bytes of form field `name` in a multipart body.
fn form_field<'a>(body: &'a [u8], boundary: &str, name: &str) -> Option<&'a [u8]> {
    let marker = format!("name=\"{name}\"");
    let at = body
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())?;
    let start = at + body[at..].windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let end_marker = format!("\r\n--{boundary}");
    let len = body[start..]
        .windows(end_marker.len())
        .position(|w| w == end_marker.as_bytes())?;
    Some(&body[start..start + len])
}

/// Profiles out to where fleets keep them: with `--pyroscope URL` the
/// collector pushes each CPU window to Pyroscope's ingest API as its docs
/// give it (`POST /ingest?name=&from=&until=&format=pprof`, multipart
/// `profile` + `sample_type_config`), retries a refused push, and what
/// arrives reads back in `go tool pprof` with the user's function named.
#[test]
fn profiles_are_pushed_to_pyroscope_and_read_back_by_go_tool_pprof() {
    require("go", "apt-get install golang-go");
    let (addr, kept) = pyroscope_receiver();
    let collector = Collector::start(&["--pyroscope", &format!("http://{addr}")]);
    let svc = fixture("cpu-in-async", "e2e-pyro", &collector.grpc_url(), &[]);
    let mut requests = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let cpu = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(k) = kept.recv_timeout(left) else {
            panic!(
                "no CPU window pushed within 60 s; got {:?}",
                requests.iter().map(|k: &Kept| &k.line).collect::<Vec<_>>()
            );
        };
        let is_cpu = String::from_utf8_lossy(&k.body).contains("\"display-name\":\"cpu\"");
        requests.push(k);
        if is_cpu && requests.len() >= 2 {
            break requests.len() - 1;
        }
    };
    // The refused first push came again.
    assert_eq!(requests[0].line, requests[1].line, "the 503 was retried");
    let k = &requests[cpu];
    assert!(
        k.line
            .starts_with("POST /ingest?name=e2e-pyro%7Bservice_name%3De2e-pyro%2Cinstance%3D"),
        "{}",
        k.line
    );
    assert!(k.line.contains("&format=pprof"), "{}", k.line);
    let param = |name: &str| -> u64 {
        k.line
            .split(&format!("{name}="))
            .nth(1)
            .and_then(|r| r.split('&').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {}", k.line))
    };
    let (from, until) = (param("from"), param("until"));
    assert!(
        from < until && until <= now_ms() / 1000 + 1,
        "{from}..{until}"
    );
    // What a push carries, as `go tool pprof -raw` reads it back.
    let read_back = |k: &Kept| {
        let boundary = k
            .head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .contains("content-type: multipart/form-data")
                    .then(|| l.split("boundary=").nth(1).map(|b| b.trim().to_string()))
            })
            .flatten()
            .expect("a multipart body");
        let profile = form_field(&k.body, &boundary, "profile").expect("a profile field");
        let file = temp_path("pushed.pb.gz");
        std::fs::write(&file, profile).expect("written");
        let raw = Command::new("go")
            .args(["tool", "pprof", "-raw"])
            .arg(&file)
            .output()
            .expect("go tool pprof runs");
        let text = String::from_utf8_lossy(&raw.stdout).into_owned();
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        assert!(text.contains("samples/count cpu/nanoseconds"), "{text}");
        text
    };
    // The hashing blocks end by the clock, and the profile samples CPU
    // time: a window in which the starved worker (every e2e test runs at
    // once) got no sample in a block is followed by the next ones. A
    // failure says how much CPU the worker had in all, to tell starvation
    // from a worker the profiler's timer never signalled (seen under load).
    let mut text = read_back(k);
    let mut windows = 1;
    let more = Instant::now() + Duration::from_secs(60);
    while !text.contains("hash_in_handler") {
        let left = more.saturating_duration_since(Instant::now());
        let worker =
            lagscope_fixtures::proc_usage::named_threads_cpu_time(svc.pid(), "tokio-rt-worker");
        let Ok(next) = kept.recv_timeout(left) else {
            panic!("the user function is named in none of {windows} CPU windows (the worker has run {worker:?} in all); the last:\n{text}");
        };
        if String::from_utf8_lossy(&next.body).contains("\"display-name\":\"cpu\"") {
            text = read_back(&next);
            windows += 1;
        }
    }
    let metrics = collector
        .client(None)
        .get_text("/metrics")
        .expect("metrics");
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    assert!(
        value("lagscope_collector_pyroscope_pushed_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        value("lagscope_collector_pyroscope_failures_total") >= 1.0,
        "{metrics}"
    );
}

/// The dashboard as a person meets it: `lagscope demo` in a real terminal
/// (tmux), read back with capture-pane, driven with send-keys.
#[test]
fn the_demo_dashboard_runs_in_a_terminal_and_quits_cleanly() {
    let screen = Tmux::start("demo", 100, 30, &[LAGSCOPE, "demo"]);
    let shown = wait_until(Duration::from_secs(30), || {
        let s = screen.capture();
        (s.contains("demo-blocking") && s.contains("demo-leaky") && s.contains("lag p99"))
            .then_some(s)
    });
    let Some(shown) = shown else {
        panic!(
            "the dashboard never showed the demo services:\n{}",
            screen.capture()
        );
    };
    assert!(shown.contains("? help"), "{shown}");
    screen.keys("?");
    let help = wait_until(Duration::from_secs(5), || {
        screen.capture().contains("select instance").then_some(())
    });
    screen.keys("Escape");
    screen.keys("q");
    let ended = wait_until(Duration::from_secs(10), || (!screen.alive()).then_some(()));
    assert!(help.is_some(), "the help overlay opened");
    assert!(ended.is_some(), "q quit the dashboard");
}

#[test]
fn agents_stream_over_tls_to_a_collector_with_a_certificate() {
    let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/tls");
    let (cert, key) = (format!("{tls}/cert.pem"), format!("{tls}/key.pem"));
    let collector = Collector::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("https://localhost:{}", collector.grpc.port());
    let _svc = fixture("healthy", "e2e-tls", &url, &[("LAGSCOPE_CA_FILE", &cert)]);
    collector.wait_for("e2e-tls", 2, Duration::from_secs(20));

    // Without the CA the agent refuses the self-signed certificate and says so.
    let mut untrusting = fixture("healthy", "e2e-tls-untrusted", &url, &[]);
    std::thread::sleep(Duration::from_secs(2));
    let services = collector.services().expect("services");
    assert!(!services
        .services
        .iter()
        .any(|s| s.service == "e2e-tls-untrusted"));
    let _ = untrusting.child.kill();
    let mut stderr = String::new();
    if let Some(mut e) = untrusting.child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(stderr.contains("certificate"), "agent said: {stderr}");
}

#[test]
fn a_stall_in_a_real_service_is_named_in_the_api_and_counted_in_metrics() {
    let collector = Collector::start(&[]);
    let _svc = fixture("cpu-in-async", "e2e-stall", &collector.grpc_url(), &[]);
    let client = collector.client(None);
    // The fixture hashes for 200 ms every 2 s inside `hash_in_handler`.
    let stall = wait_until(Duration::from_secs(20), || {
        client
            .stalls(
                "e2e-stall",
                &collector
                    .wait_for("e2e-stall", 1, Duration::from_secs(20))
                    .instance,
                10,
            )
            .ok()?
            .stalls
            .into_iter()
            .map(|r| r.stall)
            .find(|s| !s.ongoing)
    })
    .expect("a finished stall reached /api/v1/stalls");
    assert!(
        stall
            .blocking_function
            .as_deref()
            .is_some_and(|f| f.contains("hash_in_handler")),
        "{stall:#?}"
    );
    assert!(
        (150_000..400_000).contains(&stall.duration_us),
        "a 200 ms block reported as {} µs",
        stall.duration_us
    );
    let expected = if cfg!(tokio_unstable) {
        StallDetection::PollHooks
    } else {
        StallDetection::WorkerMetrics
    };
    assert_eq!(stall.detection, expected);
    let metrics = client.get_text("/metrics").expect("metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tokio_stalls_total{service=\"e2e-stall\""))
        .unwrap_or_else(|| panic!("no stall counter in {metrics}"));
    let count: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(count >= 1.0, "{line}");
    // The whole exposition, stall and worker families included, lints clean.
    assert_promtool_clean(&metrics);
}

#[test]
fn simultaneous_profile_requests_share_one_profile_or_get_a_clear_409() {
    let collector = Collector::start(&[]);
    let _svc = fixture("cpu-in-async", "e2e-profiles", &collector.grpc_url(), &[]);
    let inst = collector.wait_for("e2e-profiles", 1, Duration::from_secs(20));
    let client = collector.client(None);
    // Four alike (they share one profile) and two at another rate (they
    // must wait for it), all at once.
    let asks: Vec<u32> = vec![99, 99, 99, 99, 199, 199];
    let started = Instant::now();
    let answers: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = asks
            .iter()
            .enumerate()
            .map(|(i, &hz)| {
                let (client, instance) = (&client, &inst.instance);
                scope.spawn(move || {
                    // The first goes out alone so it is the one that starts.
                    std::thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 100 }));
                    let r = client.request_profile("e2e-profiles", instance, 1, hz);
                    (hz, r, started.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    let mut ok = 0;
    for (hz, answer, took) in &answers {
        // Timing is the reliability harness's to measure; printed here.
        eprintln!(
            "{hz} Hz: {} after {took:?}",
            if answer.is_ok() { "200" } else { "409" }
        );
        match answer {
            Ok(p) => {
                assert_eq!(p.hz, 99, "only the 99 Hz profile ran");
                ok += 1;
            }
            Err(e) => {
                let text = e.to_string();
                assert!(*hz == 199 && text.contains("409"), "{text}");
                assert!(text.contains("ends in") && text.contains("99 Hz"), "{text}");
            }
        }
    }
    assert_eq!(ok, 4, "{answers:?}");
}

#[test]
fn profile_and_flamegraph_commands_write_svg_folded_and_pprof() {
    let collector = Collector::start(&[]);
    let svc = fixture(
        "cpu-in-async",
        "e2e-profile",
        &collector.grpc_url(),
        &[("LAGSCOPE_PROFILE_HZ", "99")],
    );
    let inst = collector.wait_for("e2e-profile", 1, Duration::from_secs(20));
    assert!(inst.capabilities.contains(&"profiler".to_string()));
    let api = collector.client(None).url().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(LAGSCOPE)
            .args(args)
            .args(["--collector", &api, "--service", "e2e-profile"])
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // On demand: 5 s at 199 Hz covers two 200 ms hashing blocks (one every
    // 2 s). The profile samples CPU time, not wall time, and the blocks end
    // by the clock: on the CI machine, with every e2e test running at once,
    // a fixture's worker has had ~65 ms of CPU in 5 s (13 samples, none in
    // the blocks). So a try whose worker had too little CPU to be sure of
    // a sample in the blocks is not a miss: the fixture is profiled again,
    // for longer. A miss is a try whose worker had CPU enough for 20
    // samples and none of them in the hot function.
    let svg = temp_path("profile.svg");
    let worker_cpu = || {
        lagscope_fixtures::proc_usage::named_threads_cpu_time(svc.pid(), "tokio-rt-worker")
            .unwrap_or_default()
    };
    let mut tries = Vec::new();
    let text = loop {
        let duration = format!("{}s", 5 * (tries.len() + 1).min(3));
        let before = worker_cpu();
        let (ok, err) = run(&[
            "profile",
            "--duration",
            &duration,
            "--hz",
            "199",
            "-o",
            svg.to_str().expect("utf-8"),
        ]);
        let worker = worker_cpu().saturating_sub(before);
        assert!(ok, "{err}");
        let text = std::fs::read_to_string(&svg).expect("svg written");
        assert!(
            text.starts_with("<?xml") && text.contains("e2e-profile / "),
            "title"
        );
        if text.contains("hash_in_handler") {
            break text;
        }
        let drawn: Vec<&str> = text
            .split("<title>")
            .filter_map(|t| t.split("</title>").next())
            .filter(|t| t.contains("lagscope_fixtures"))
            .take(20)
            .collect();
        // The widest frames, to tell unsampled threads from unnamed frames.
        let mut widest: Vec<(u64, &str)> = text
            .split("<title>")
            .filter_map(|t| t.split("</title>").next())
            .filter_map(|t| {
                let (_, rest) = t.rsplit_once(" (")?;
                Some((rest.split(' ').next()?.replace(',', "").parse().ok()?, t))
            })
            .collect();
        widest.sort_by_key(|w| std::cmp::Reverse(w.0));
        widest.truncate(8);
        tries.push(format!(
            "{} the worker ran {worker:?}; fixture frames drawn: {drawn:?}; widest: {widest:?}",
            err.trim()
        ));
        let enough_cpu = worker >= Duration::from_millis(100);
        assert!(
            !enough_cpu && tries.len() < 6,
            "the hot function is drawn in no profile: {tries:#?}"
        );
    };
    assert!(text.contains("199 Hz"));

    let pprof = temp_path("profile.pb.gz");
    let (ok, err) = run(&[
        "profile",
        "--duration",
        "1s",
        "-o",
        pprof.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let gz = std::fs::read(&pprof).expect("pprof written");
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip");

    // Continuous windows arrive every 10 s; wait for one.
    let folded = temp_path("cpu.folded");
    let written = wait_until(Duration::from_secs(30), || {
        let (ok, _) = run(&["flamegraph", "--window", "5m", "-o", folded.to_str()?]);
        ok.then_some(())
    });
    assert!(
        written.is_some(),
        "a continuous window reached the collector"
    );
    let text = std::fs::read_to_string(&folded).expect("folded written");
    let line = text.lines().next().expect("a stack");
    let (stack, count) = line.rsplit_once(' ').expect("stack count");
    assert!(
        stack.contains(';') && count.parse::<u64>().is_ok(),
        "{line}"
    );

    let blocking = temp_path("blocking.svg");
    let (ok, err) = run(&[
        "flamegraph",
        "--blocking",
        "-o",
        blocking.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&blocking).expect("svg written");
    assert!(text.contains("hash_in_handler") && text.contains("blocking"));

    let (ok, err) = run(&["flamegraph", "-o", "out.png"]);
    assert!(!ok && err.contains("cannot tell the format"), "{err}");
    let (ok, err) = run(&["profile", "--hz", "5000", "-o", "x.svg"]);
    assert!(!ok && err.contains("5000"), "{err}");
    for f in [svg, pprof, folded, blocking] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn wait_profiles_and_stuck_requests_reach_the_api_flamegraph_and_pprof() {
    require("go", "apt-get install golang-go");
    let collector = Collector::start(&[]);
    // Nothing turns wait capture on: it is the agent's default. A short
    // stuck threshold, so the test need not wait 10 s.
    let _svc = fixture(
        "stuck-requests",
        "e2e-waits",
        &collector.grpc_url(),
        &[("LAGSCOPE_STUCK_AFTER", "2s")],
    );
    collector.wait_for("e2e-waits", 1, Duration::from_secs(20));
    let client = collector.client(None);
    let api = client.url().to_string();
    // Checkouts that never finish are listed with their await point within
    // a few seconds of becoming stuck.
    let waits = wait_until(Duration::from_secs(30), || {
        let w = client
            .waits("e2e-waits", None, None, 0, u64::MAX / 2, false)
            .ok()?;
        (w.stuck.iter().any(|s| !s.frames.is_empty()) && !w.tasks.is_empty()).then_some(w)
    })
    .expect("stuck checkouts listed with their await point");
    let checkout = waits
        .tasks
        .iter()
        .find(|t| t.task == "POST /checkout")
        .expect("checkout waits");
    assert_eq!(checkout.sites[0].kind, "socket", "{checkout:#?}");
    for s in waits.stuck.iter().filter(|s| !s.frames.is_empty()) {
        assert_eq!(
            (s.task.as_str(), s.kind.as_str()),
            ("POST /checkout", "channel"),
            "{s:#?}"
        );
        assert!(s.await_point.starts_with("lagscope_fixtures::"), "{s:#?}");
    }
    let run = |args: &[&str]| {
        let out = Command::new(LAGSCOPE)
            .arg("flamegraph")
            .args(args)
            .args(["--collector", &api, "--service", "e2e-waits"])
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let svg = temp_path("waits.svg");
    let (ok, err) = run(&["--wait", "-o", svg.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(
        text.contains("where requests wait") && text.contains("POST /checkout"),
        "{text:.400}"
    );
    let pprof = temp_path("waits.pb.gz");
    let (ok, err) = run(&[
        "--wait",
        "--task",
        "POST /checkout",
        "-o",
        pprof.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{err}");
    let top = Command::new("go")
        .args(["tool", "pprof", "-sample_index=wait_time", "-top"])
        .arg(&pprof)
        .output()
        .expect("go tool pprof runs");
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    assert!(
        text.contains("Type: wait_time") && text.contains("[socket]"),
        "{text}"
    );
    let (ok, err) = run(&["--wait", "--task", "nobody", "-o", "x.svg"]);
    assert!(
        !ok && err.contains("no waits of instrumented requests named"),
        "{err}"
    );
    let (ok, err) = run(&["--task", "x", "-o", "x.svg"]);
    assert!(!ok && err.contains("--wait"), "{err}");
    for f in [svg, pprof] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn heap_flamegraphs_show_where_the_leaking_cache_allocates() {
    use prost::Message;
    use std::io::Read;
    let collector = Collector::start(&[]);
    // Nothing turns heap sampling on: the agent's default samples the
    // heap where Counting is the global allocator, as in the fixtures.
    let _svc = fixture("cache-leak", "e2e-heap", &collector.grpc_url(), &[]);
    let inst = collector.wait_for("e2e-heap", 1, Duration::from_secs(20));
    assert!(inst.capabilities.contains(&"heap-sampling".to_string()));
    let api = collector.client(None).url().to_string();
    let run = |args: &[&str]| {
        let out = Command::new(LAGSCOPE)
            .arg("flamegraph")
            .args(args)
            .args(["--collector", &api, "--service", "e2e-heap"])
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let remember = "lagscope_fixtures::cache::ResponseCache::remember";

    // The first heap window arrives 5 s after the agent starts (ten
    // samples, at least 5 s).
    let folded = temp_path("heap.folded");
    let written = wait_until(Duration::from_secs(30), || {
        let (ok, _) = run(&["--heap", "inuse", "-o", folded.to_str()?]);
        ok.then_some(())
    });
    assert!(written.is_some(), "a heap window reached the collector");
    let text = std::fs::read_to_string(&folded).expect("folded written");
    let cache_bytes: u64 = text
        .lines()
        .filter(|l| l.contains(remember))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    // ~2.5 MiB/s for 5 s or more; slower on a loaded machine.
    assert!(
        cache_bytes > 4 << 20,
        "{cache_bytes} bytes under remember:\n{text}"
    );

    let svg = temp_path("heap.svg");
    let (ok, err) = run(&["--heap", "alloc", "-o", svg.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.contains("heap allocated") && text.contains("remember"));
    assert!(text.contains(" bytes"), "counts are bytes");

    // pprof: both sample types per stack, the asked-for one first.
    let pprof = temp_path("heap.pb.gz");
    let (ok, err) = run(&["--heap", "inuse", "-o", pprof.to_str().expect("utf-8")]);
    assert!(ok, "{err}");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&std::fs::read(&pprof).expect("written")[..])
        .read_to_end(&mut raw)
        .expect("gzip");
    let p = lagscope_collector::flame::pprof::Profile::decode(&raw[..]).expect("pprof");
    let text_of = |i: i64| p.string_table[i as usize].as_str();
    let types: Vec<&str> = p.sample_type.iter().map(|t| text_of(t.r#type)).collect();
    assert_eq!(types, ["alloc_space", "inuse_space"]);
    assert_eq!(text_of(p.default_sample_type), "inuse_space");
    let under_remember = p.sample.iter().filter(|s| {
        s.location_id
            .iter()
            .any(|&l| text_of(p.function[(l - 1) as usize].name) == remember)
    });
    let (alloc, inuse) = under_remember.fold((0, 0), |(a, i), s| (a + s.value[0], i + s.value[1]));
    assert!(
        inuse > 4 << 20 && alloc >= inuse / 2,
        "alloc {alloc}, inuse {inuse}"
    );

    // Growth: in use now against the previous window's end.
    let growth = temp_path("growth.svg");
    let drawn = wait_until(Duration::from_secs(30), || {
        let (ok, _) = run(&[
            "--window",
            "10s",
            "--heap",
            "inuse",
            "--compare-previous",
            "-o",
            growth.to_str()?,
        ]);
        ok.then_some(())
    });
    assert!(drawn.is_some(), "two heap windows to compare");
    let text = std::fs::read_to_string(&growth).expect("svg written");
    assert!(text.contains("what changed") && text.contains("remember"));

    let (ok, err) = run(&["--heap", "alloc", "--compare-previous", "-o", "x.pb.gz"]);
    assert!(!ok && err.contains("as SVG"), "{err}");
    let (ok, err) = run(&["--heap", "live", "-o", "x.svg"]);
    assert!(!ok && err.contains("live"), "{err}");
    for f in [folded, svg, pprof, growth] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn doctor_diagnoses_every_fixture_under_load() {
    use lagscope_fixtures::scenario::Scenario;
    let mut wrong = Vec::new();
    let mut checked = 0;
    // Two known gaps of stable tokio's worker-metrics detector on a loaded
    // machine get a second run there: two workers stalled at once are paired
    // with their threads by guess, and the swap back is sometimes missed;
    // and a saturated worker descheduled by the OS for over the threshold
    // (this 2-core machine runs the load generator beside it) reads as one
    // stall in whatever poll it was in (seen once: 136 ms in
    // `TokioIo::poll_read`, 1 % of the window).
    let runs = |s: Scenario| {
        let flaky = matches!(s, Scenario::ConcurrentStalls | Scenario::CpuSaturation);
        if cfg!(not(tokio_unstable)) && flaky {
            2
        } else {
            1
        }
    };
    let plan = Scenario::ALL
        .into_iter()
        .flat_map(|s| std::iter::repeat_n(s, runs(s)));
    let mut last = None;
    for scenario in plan {
        if last == Some(scenario) {
            // The first run of a repeated scenario passed or failed as a
            // whole: keep the second run's verdict only.
            let name = scenario.name();
            let before = wrong.len();
            wrong.retain(|w: &String| !w.starts_with(&format!("{name}:")));
            if wrong.len() == before {
                continue;
            }
            checked -= 1;
        }
        last = Some(scenario);
        let (name, expected) = (scenario.name(), scenario.expected_diagnosis());
        let port = free_port().to_string();
        let url = format!("http://127.0.0.1:{port}/");
        let report = temp_path(&format!("doctor-{name}.html"));
        let duration = format!("{}s", scenario.doctor_duration().as_secs());
        let out = Command::new(LAGSCOPE)
            .args(["doctor", "--duration", &duration, "--format", "json"])
            .args(["--load", &url, "--connections", "4", "--rate", "100"])
            .args(["--report", report.to_str().expect("utf-8"), "--", LAGSCOPE])
            .args(["fixture", name, "--port", &port])
            .output()
            .expect("doctor runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let response: lagscope_wire::doctor::DoctorResponse =
            serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        let got = response.diagnoses[0].top_category();
        // The per-name split of request time that supports the verdict.
        let evidence = response.diagnoses[0]
            .findings
            .first()
            .map(|f| f.evidence.clone())
            .unwrap_or_default();
        for says in scenario.expected_evidence() {
            if !evidence.iter().any(|e| Scenario::says(e, says)) {
                wrong.push(format!("{name}: evidence lacks {says:?}: {evidence:#?}"));
            }
        }
        if got != expected {
            wrong.push(format!(
                "{name}: expected {expected}, got {:?}",
                response.diagnoses[0]
                    .findings
                    .iter()
                    .map(|f| (&f.category, f.score, &f.summary))
                    .collect::<Vec<_>>()
            ));
        }
        let html = std::fs::read_to_string(&report).expect("report written");
        assert!(
            html.contains(got.name()) && html.contains("<polyline"),
            "{name}"
        );
        assert!(
            !html.contains("<script src") && !html.contains("<link"),
            "offline"
        );
        if expected == lagscope_wire::doctor::Category::HeapLeak {
            assert!(html.contains("Heap growth flamegraph"), "{name}");
        }
        let _ = std::fs::remove_file(report);
        checked += 1;
    }
    // Every fixture, on stable tokio as on tokio_unstable.
    assert_eq!(checked, Scenario::ALL.len());
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `lagscope doctor --format json -- …` until the command ends by itself
/// or is interrupted: the JSON and the doctor's exit status.
fn doctor_json(output: std::process::Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "doctor failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON on stdout ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn doctor_diagnoses_what_it_saw_when_the_command_exits_early() {
    // No --duration: doctor watches until the command exits, as clinic does.
    let out = Command::new(LAGSCOPE)
        .args(["doctor", "--format", "json", "--no-report", "--", LAGSCOPE])
        .args(["fixture", "healthy", "--duration", "3s"])
        .output()
        .expect("doctor runs");
    let json = doctor_json(out);
    let run = &json["run"];
    assert_eq!(run["ended_by"], "command-exited", "{run}");
    assert_eq!(run["command_status"], "exit status: 0", "{run}");
    assert_eq!(
        run["too_short"], true,
        "3 s is below the 5 s doctor needs: {run}"
    );
    let window = json["window_ms"].as_u64().expect("window_ms");
    assert!((2_000..20_000).contains(&window), "{window}");
    // What was seen is still diagnosed.
    assert_eq!(json["diagnoses"][0]["service"], "fixture-healthy");
    assert!(json["diagnoses"][0]["findings"]
        .as_array()
        .is_some_and(|f| !f.is_empty()));

    // In words: the exit status, and plainly that the window is too short.
    let out = Command::new(LAGSCOPE)
        .args(["doctor", "--no-report", "--", LAGSCOPE])
        .args(["fixture", "healthy", "--duration", "2s"])
        .output()
        .expect("doctor runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("the command exited (exit status: 0) after"),
        "{text}"
    );
    assert!(text.contains("too short to judge"), "{text}");
    assert!(text.contains("fixture-healthy /"), "{text}");
}

#[test]
fn ctrl_c_stops_the_command_and_diagnoses_the_window() {
    let port = free_port().to_string();
    let doctor = Command::new(LAGSCOPE)
        .args([
            "doctor",
            "--format",
            "json",
            "--no-report",
            "--grace",
            "10s",
            "--",
            LAGSCOPE,
        ])
        .args(["fixture", "healthy", "--port", &port])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("doctor starts");
    let mut doctor = Proc { child: doctor };
    // Drained while doctor runs: its JSON (the windows' series) can be
    // larger than a pipe holds, and doctor would block writing it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut out);
            }
            out
        })
    };
    let stdout = drain(doctor.child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(doctor.child.stderr.take().map(|p| Box::new(p) as _));
    // Past the 5 s doctor needs to judge, with the agent reporting.
    let url = format!("127.0.0.1:{port}");
    let end = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&url).is_err() {
        assert!(Instant::now() < end, "the fixture never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(7));
    // What a terminal's Ctrl-C sends doctor (the child gets it from doctor).
    doctor.signal("INT");
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = doctor.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < end, "doctor did not finish after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let json = doctor_json(std::process::Output {
        status,
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    });
    let run = &json["run"];
    assert_eq!(run["ended_by"], "interrupted", "{run}");
    assert_eq!(
        run["stopped_with"], "SIGINT",
        "the fixture exits on SIGINT: {run}"
    );
    // It ends the way a well-behaved service does: the agent stops and
    // sends its last sample, and the process exits cleanly.
    assert_eq!(run["command_status"], "exit status: 0", "{run}");
    assert_eq!(run["too_short"], false, "{run}");
    assert!(
        json["window_ms"].as_u64().is_some_and(|w| w >= 7_000),
        "{json}"
    );
    assert_eq!(json["diagnoses"][0]["findings"][0]["category"], "none");
    // The command is gone: its port no longer answers.
    assert!(TcpStream::connect(&url).is_err(), "the fixture still runs");
}

#[test]
fn doctor_explains_bad_invocations() {
    let run = |args: &[&str]| {
        let out = Command::new(LAGSCOPE).args(args).output().expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["doctor"]);
    assert!(!ok && err.contains("give a command"), "{err}");
    let (ok, err) = run(&["doctor", "--load", "http://10.0.0.1:80/", "--", "true"]);
    assert!(!ok && err.contains("loopback"), "{err}");
    let (ok, err) = run(&["doctor", "--duration", "2s", "--", "true"]);
    assert!(
        !ok && (err.contains("exited") || err.contains("no lagscope agent")),
        "{err}"
    );
    let (ok, err) = run(&["doctor", "--", "/no/such/program"]);
    assert!(!ok && err.contains("starting"), "{err}");
}

/// Installs the Node.js test service's npm packages once (lockfile pinned).
fn node_service() -> std::path::PathBuf {
    require("node", "apt-get install nodejs npm");
    require("npm", "apt-get install npm");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/node");
    if !dir.join("node_modules/@opentelemetry/sdk-metrics").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .expect("npm is installed (Node.js ships it)");
        assert!(status.success(), "npm ci in {dir:?}");
    }
    dir.join("service.js")
}

#[test]
fn a_node_service_over_otlp_shows_up_and_gets_diagnosed() {
    let collector = Collector::start(&[]);
    let api = collector.client(None).url().to_string();
    let mut node = Command::new("node")
        .arg(node_service())
        .env("OTLP_URL", format!("{api}/v1/metrics"))
        .env("SERVICE", "e2e-node")
        .env("BLOCK", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    let inst = collector.wait_for("e2e-node", 6, Duration::from_secs(30));
    assert!(
        inst.capabilities.contains(&"nodejs".to_string()),
        "{inst:?}"
    );
    let latest = inst.latest.expect("a sample");
    assert!(latest.memory.heap_live_bytes.is_some_and(|b| b > 1_000_000));
    let lag_max = wait_until(Duration::from_secs(15), || {
        let s = collector
            .client(None)
            .latest("e2e-node", &inst.instance)
            .ok()?;
        let max = s.runtime("main")?.lag.as_ref()?.max_us;
        (max >= 200_000).then_some(max)
    });
    assert!(lag_max.is_some(), "a 300 ms block shows as lag");
    let out = Command::new(LAGSCOPE)
        .args(["doctor", "--collector", &api, "--service", "e2e-node"])
        .args(["--window", "20s", "--format", "json", "--no-report"])
        .output()
        .expect("doctor runs");
    let _ = node.kill();
    let _ = node.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: lagscope_wire::doctor::DoctorResponse =
        serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        d.diagnoses[0].top_category(),
        Category::EventLoopBlocking,
        "{d:#?}"
    );
}

#[test]
fn a_collector_forwards_metrics_and_stalls_to_an_otlp_endpoint() {
    // The receiving end is a second collector: its OTLP/gRPC receiver is
    // built on opentelemetry-proto's server stubs.
    let upstream = Collector::start(&[]);
    let url = upstream.grpc_url();
    let collector = Collector::start(&["--otlp-export", &url]);
    let _svc = fixture("cpu-in-async", "e2e-forward", &collector.grpc_url(), &[]);
    let inst = upstream.wait_for("e2e-forward", 3, Duration::from_secs(30));
    assert!(inst.capabilities.contains(&"tokio".to_string()), "{inst:?}");
    let latest = inst.latest.expect("a forwarded sample");
    let main = latest.runtime("main").expect("main runtime");
    assert_eq!(main.workers, 1, "tokio.workers");
    assert!(main.lag.is_some(), "tokio.eventloop.delay.*");
    assert!(
        latest.memory.rss_bytes.is_some_and(|b| b > 0),
        "process.memory.usage"
    );
    // Stalls arrive as tokio.stall spans and land in the upstream's log.
    let stall = wait_until(Duration::from_secs(20), || {
        upstream
            .client(None)
            .stalls("e2e-forward", &inst.instance, 10)
            .ok()?
            .stalls
            .into_iter()
            .next()
    })
    .expect("a forwarded stall");
    assert!(
        stall
            .stall
            .blocking_function
            .as_deref()
            .is_some_and(|f| f.contains("hash_in_handler")),
        "{stall:?}"
    );
    let metrics = collector
        .client(None)
        .get_text("/metrics")
        .expect("metrics");
    assert!(
        metrics.contains("lagscope_collector_otlp_exported_total"),
        "{metrics}"
    );
}

#[test]
fn an_agent_exports_otlp_http_and_a_dead_otlp_endpoint_costs_it_nothing() {
    let collector = Collector::start(&[]);
    let api = collector.client(None).url().to_string();
    // Agent metrics over OTLP/HTTP (the OpenTelemetry SDK inside the agent)
    // into the collector's /v1/metrics.
    let _exporting = fixture(
        "healthy",
        "e2e-otel-agent",
        &collector.grpc_url(),
        &[
            ("LAGSCOPE_OTEL", "http"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &api),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300"),
            ("OTEL_SERVICE_NAME", "e2e-otlp-http"),
        ],
    );
    let via_otlp = collector.wait_for("e2e-otlp-http", 3, Duration::from_secs(30));
    assert!(
        via_otlp.capabilities.contains(&"tokio".to_string()),
        "{via_otlp:?}"
    );
    let latest = via_otlp.latest.expect("a sample");
    let main = latest.runtime("main").expect("main");
    assert_eq!(main.workers, 2, "tokio.workers came through");
    assert!(main.lag.is_some(), "tokio.eventloop.delay.* came through");

    // The same agent with its OTLP endpoint dead keeps reporting on time.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let _dead = fixture(
        "healthy",
        "e2e-otel-dead",
        &collector.grpc_url(),
        &[
            ("LAGSCOPE_OTEL", "http"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &dead),
        ],
    );
    let inst = collector.wait_for("e2e-otel-dead", 10, Duration::from_secs(30));
    let lag = inst
        .latest
        .and_then(|s| s.runtime("main").and_then(|r| r.lag.clone()))
        .expect("lag");
    assert!(lag.p99_us < 50_000, "the host's lag is unaffected: {lag:?}");
}

/// One OTLP/HTTP export of a sample dated `timestamp_ms`, as a service's
/// exporter would send it.
fn otlp_export(service: &str, timestamp_ms: u64, busy: f64) -> Vec<u8> {
    use prost::Message;
    let sample = Sample::from_pb(
        pb::Sample {
            seq: 0,
            timestamp_ms,
            interval_us: 1_000_000,
            runtimes: vec![pb::RuntimeSample {
                name: "main".into(),
                workers: 1,
                busy_ratio: busy,
                ..Default::default()
            }],
            memory: Some(pb::MemorySample::default()),
            process: Some(pb::ProcessSample::default()),
            ..Default::default()
        },
        service,
        "one",
    );
    lagscope_collector::otlp::map::request_from_samples(&[&sample]).encode_to_vec()
}

/// POSTs `body` to `/v1/metrics` with extra `headers`; the status and body.
fn post_otlp(addr: std::net::SocketAddr, body: &[u8], headers: &[&str]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = format!(
        "POST /v1/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-protobuf\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let at = text.find("\r\n\r\n").map_or(response.len(), |i| i + 4);
    (status, response[at..].to_vec())
}

#[test]
fn otlp_over_http_takes_gzip_and_a_point_from_the_future_never_freezes_a_series() {
    use std::io::Write as _;
    let collector = Collector::start(&[]);
    let service = "e2e-otlp-clock";
    let now = now_ms();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&otlp_export(service, now, 0.25))
        .expect("compress");
    let gz = gz.finish().expect("compress");
    let (status, body) = post_otlp(collector.http, &gz, &["Content-Encoding: gzip"]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    collector.wait_for(service, 1, Duration::from_secs(10));

    // Dated in the year 2300: refused, said in the partial success, counted.
    let future = 10_500_000_000_000;
    let (status, body) = post_otlp(collector.http, &otlp_export(service, future, 0.5), &[]);
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("check the sender's clock"), "{text}");

    // Correct points after it still reach the series.
    let later = now + 1000;
    let (status, _) = post_otlp(collector.http, &otlp_export(service, later, 0.75), &[]);
    assert_eq!(status, 200);
    let client = collector.client(None);
    let series = client
        .series(service, "one", 0, u64::MAX, None)
        .expect("series");
    let busy = series
        .series
        .iter()
        .find(|s| s.name == "busy_ratio")
        .expect("a busy_ratio series");
    let times: Vec<u64> = busy.points.iter().map(|p| p.t_ms).collect();
    assert_eq!(times, [now, later], "{busy:?}");

    let metrics = client.get_text("/metrics").expect("metrics");
    assert!(
        metrics.contains("lagscope_collector_samples_refused_total 1"),
        "{metrics}"
    );

    // An encoding the collector does not read is named, not misparsed.
    let (status, body) = post_otlp(collector.http, b"x", &["Content-Encoding: br"]);
    assert_eq!(status, 415);
    assert!(String::from_utf8_lossy(&body).contains("gzip"));
}
