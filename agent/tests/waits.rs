//! Where instrumented requests wait: a service whose requests wait 60 ms on
//! a socket, 30 ms on a channel and 10 ms on a timer, each in its own
//! function. The wait profile must name each function with its kind and
//! give it its share of the waiting, within 5 points.

use std::collections::HashMap;
use std::time::{Duration, Instant};

mod common;

use common::{next_sample, runtime};
use lagscope::Agent;
use lagscope_wire::waits::{await_point, WaitKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads the reply of a server that answers after 60 ms.
async fn fetch_slow_reply(addr: std::net::SocketAddr) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"?").await.expect("ask");
    let mut reply = [0u8; 1];
    stream.read_exact(&mut reply).await.expect("reply");
}

/// Waits for another task's answer, sent 30 ms later.
async fn await_worker_reply() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _ = tx.send(());
    });
    rx.await.expect("answer");
}

/// Backs off for 10 ms.
async fn back_off() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Whether await point `point` is in `function` of this file: by its name,
/// or, inlined on a build with line tables only, by its `(file:line)`
/// within the function's lines.
fn is_in(point: &str, function: &str) -> bool {
    if point.ends_with(&format!("::{function}")) {
        return true;
    }
    // The file as the line tables have it: `waits.rs` or `tests/waits.rs`.
    let Some(line) = point
        .rsplit_once("waits.rs:")
        .filter(|(before, _)| before.ends_with('(') || before.ends_with("tests/"))
        .and_then(|(_, l)| l.trim_end_matches(')').parse::<usize>().ok())
    else {
        return false;
    };
    let source: Vec<&str> = include_str!("waits.rs").lines().collect();
    let Some(start) = source
        .iter()
        .position(|l| l.starts_with(&format!("async fn {function}(")))
    else {
        return false;
    };
    let end = start + source[start..].iter().position(|l| *l == "}").unwrap_or(0);
    (start + 1..=end + 1).contains(&line)
}

#[test]
fn await_points_are_placed_by_name_or_by_line_in_their_function() {
    assert!(is_in("waits::back_off", "back_off"));
    assert!(!is_in("waits::back_off", "off"));
    let line = include_str!("waits.rs")
        .lines()
        .position(|l| l.starts_with("async fn back_off("))
        .expect("back_off is in this file")
        + 2;
    assert!(is_in(
        &format!("waits::… (tests/waits.rs:{line})"),
        "back_off"
    ));
    assert!(!is_in(
        &format!("waits::… (tests/waits.rs:{line})"),
        "fetch_slow_reply"
    ));
    assert!(is_in(
        &format!("waits::…::{{{{closure}}}} (waits.rs:{line})"),
        "back_off"
    ));
    assert!(!is_in(
        &format!("waits::… (other_waits.rs:{line})"),
        "back_off"
    ));
}

/// One agent of the process captures await points: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The time each await really took, µs: socket, channel, timer.
static TRUTH: [std::sync::atomic::AtomicU64; 3] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 3];

fn took(i: usize, since: Instant) {
    TRUTH[i].fetch_add(
        since.elapsed().as_micros() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
}

async fn handle(addr: std::net::SocketAddr) {
    let t = Instant::now();
    fetch_slow_reply(addr).await;
    took(0, t);
    let t = Instant::now();
    await_worker_reply().await;
    took(1, t);
    let t = Instant::now();
    back_off().await;
    took(2, t);
}

#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
#[test]
fn waits_are_charged_to_their_await_points_in_proportion() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let rt = runtime(2);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(200))
        .wait_captures_per_second(200)
        .start(rt.handle().clone())
        .expect("start");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ask = [0u8; 1];
                if stream.read_exact(&mut ask).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(60)).await;
                    let _ = stream.write_all(b"!").await;
                }
            });
        }
    });
    let until = Instant::now() + Duration::from_secs(6);
    for _ in 0..16 {
        rt.spawn(async move {
            while Instant::now() < until {
                lagscope::instrument("waits: three awaits", handle(addr)).await;
            }
        });
    }
    // Estimated µs by await-point function and kind, over every window.
    let mut by_point: HashMap<(String, String), u64> = HashMap::new();
    let mut captures = 0;
    let mut dropped = 0;
    let mut waits_seen = 0;
    let mut seq = None;
    while Instant::now() < until + Duration::from_millis(500) {
        let s = next_sample(&agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        let Some(waits) = s.waits else { continue };
        captures = waits.captures;
        dropped = waits.dropped;
        for site in waits.sites {
            if site.task != "waits: three awaits" {
                continue;
            }
            let point = await_point(&site.frames)
                .function
                .unwrap_or_else(|| format!("{:?}", site.frames));
            *by_point.entry((point, site.kind)).or_default() += site.wait_us;
            waits_seen += site.waits;
        }
    }
    // The truth: what each await took, timed around it.
    let truth: Vec<f64> = TRUTH
        .iter()
        .map(|t| t.load(std::sync::atomic::Ordering::Relaxed) as f64)
        .collect();
    let truth_total: f64 = truth.iter().sum();
    let total: u64 = by_point.values().sum();
    assert!(total > 0, "no waits charged ({captures} captures)");
    // The weights make the sampled waits an estimate of all of them.
    assert!(
        (total as f64 / truth_total - 1.0).abs() <= 0.25,
        "estimated {total} µs of waiting, timed {truth_total} µs; {by_point:#?}"
    );
    let share = |function: &str, kind: WaitKind| {
        let us: u64 = by_point
            .iter()
            .filter(|((f, k), _)| is_in(f, function) && k == kind.name())
            .map(|(_, us)| us)
            .sum();
        us as f64 / total as f64
    };
    let shares = [
        ("fetch_slow_reply", WaitKind::Socket, truth[0] / truth_total),
        (
            "await_worker_reply",
            WaitKind::Channel,
            truth[1] / truth_total,
        ),
        ("back_off", WaitKind::Timer, truth[2] / truth_total),
    ];
    for (function, kind, truth) in shares {
        let got = share(function, kind);
        // The figures, for `--nocapture`.
        println!(
            "{function} ({}): {:.1} % estimated, {:.1} % timed",
            kind.name(),
            got * 100.0,
            truth * 100.0
        );
        assert!(
            (got - truth).abs() <= 0.05,
            "{function} ({}) has {:.1} % of the waiting, not {:.1} % ± 5; \
             all: {by_point:#?} ({captures} captures, {dropped} lost, {waits_seen} waits)",
            kind.name(),
            got * 100.0,
            truth * 100.0,
        );
    }
}

/// Senders kept so their receivers wait forever.
static NEVER_SENT: std::sync::Mutex<Vec<tokio::sync::oneshot::Sender<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Awaits an answer nobody will send.
async fn await_an_answer_never_sent() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    NEVER_SENT.lock().expect("senders").push(tx);
    let _ = rx.await;
}

#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
#[test]
fn stuck_requests_are_listed_with_their_await_point_and_streams_are_not() {
    const STUCK_AFTER: Duration = Duration::from_secs(1);
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let rt = runtime(2);
    let agent = Agent::builder()
        .sample_interval(Duration::from_millis(200))
        .stuck_after(STUCK_AFTER)
        // Every poll sampled: the one that ends the back-off and goes on to
        // the answer is, too.
        .wait_captures_per_second(1000)
        .start(rt.handle().clone())
        .expect("start");
    // Long-lived streams, woken every 200 ms: never stuck.
    for _ in 0..4 {
        rt.spawn(lagscope::instrument("waits: stream", async {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
            }
        }));
    }
    // 100 requests over a second; 1 in 10 waits forever.
    rt.spawn(async {
        for i in 0..100u32 {
            tokio::spawn(lagscope::instrument("waits: sometimes stuck", async move {
                // A poll that ends a timer clones the waker in the timer
                // first: the wait is where the poll ends.
                back_off().await;
                if i % 10 == 3 {
                    await_an_answer_never_sent().await;
                }
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let until = Instant::now() + Duration::from_secs(4);
    let mut seq = None;
    let mut last = None;
    let mut unnamed_late = Vec::new();
    while Instant::now() < until {
        let s = next_sample(&agent, seq, Duration::from_secs(5));
        seq = Some(s.seq);
        assert!(
            s.stuck.iter().all(|r| r.task != "waits: stream"),
            "a stream that keeps being woken is listed as stuck: {:#?}",
            s.stuck
        );
        // Named within one threshold of becoming stuck.
        unnamed_late.extend(
            s.stuck
                .iter()
                .filter(|r| {
                    r.frames.is_empty() && r.pending_ms >= 2 * STUCK_AFTER.as_millis() as u64
                })
                .cloned(),
        );
        last = Some(s);
    }
    let last = last.expect("samples");
    assert!(
        unnamed_late.is_empty(),
        "stuck without an await point: {unnamed_late:#?}"
    );
    let stuck: Vec<_> = last
        .stuck
        .iter()
        .filter(|r| r.task == "waits: sometimes stuck")
        .collect();
    assert_eq!(stuck.len(), 10, "{:#?}", last.stuck);
    for r in &stuck {
        assert_eq!(r.kind, WaitKind::Channel.name(), "{r:#?}");
        let point = await_point(&r.frames).function.unwrap_or_default();
        assert!(is_in(&point, "await_an_answer_never_sent"), "{r:#?}");
    }
    let counted = last
        .tasks
        .iter()
        .find(|t| t.name == "waits: sometimes stuck")
        .map(|t| t.stuck);
    assert_eq!(counted, Some(10));
}
