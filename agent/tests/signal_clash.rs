//! The host owns the signals lagscope would use: lagscope must leave its
//! handlers alone, move to free signals, keep catching stalls, and stop
//! signalling as soon as the host takes one of its signals over.
#![allow(unsafe_code)]
#![cfg(target_os = "linux")]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

extern "C" fn hosts_handler(_: libc::c_int) {}

fn handler_of(signal: i32) -> usize {
    // SAFETY: querying with a null new action changes nothing.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

static HOST_SAW: AtomicUsize = AtomicUsize::new(0);

extern "C" fn counting_handler(_: libc::c_int) {
    HOST_SAW.fetch_add(1, Ordering::Relaxed);
}

fn install(signal: i32, handler: usize) {
    // SAFETY: installing a handler that does nothing (or counts).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}

/// Stall ids and notices in the agent's samples within `within`.
fn seen(agent: &lagscope::AgentHandle, within: Duration) -> (HashSet<u64>, Vec<String>) {
    let (mut stalls, mut notices) = (HashSet::new(), Vec::new());
    let mut last_seq = None;
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Some(s) = agent.snapshot() {
            if last_seq != Some(s.seq) {
                stalls.extend(s.stalls.iter().map(|e| e.id));
                notices.extend(s.notices);
                last_seq = Some(s.seq);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (stalls, notices)
}

// One test, in order: signal dispositions are per process.
#[test]
fn lagscope_moves_aside_from_the_hosts_signals_and_never_signals_a_host_handler() {
    let host = hosts_handler as extern "C" fn(libc::c_int) as usize;
    let signals = [libc::SIGRTMIN() + 3, libc::SIGRTMIN() + 4, libc::SIGPROF];
    for s in signals {
        install(s, host);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let agent = lagscope::Agent::builder()
        .sample_interval(Duration::from_millis(50))
        .stall_threshold(Duration::from_millis(50))
        .start(rt.handle().clone())
        .expect("the agent starts beside the host's signals");

    // Capture works on a free signal, and real stalls are caught.
    let frames = lagscope::low_level::stack::capture(
        lagscope::low_level::stack::current_tid(),
        Duration::from_secs(1),
    )
    .expect("capture on a signal the host does not use");
    assert!(!frames.is_empty());
    std::thread::sleep(Duration::from_millis(600));
    rt.spawn(async {
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(300));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let (stalls, _) = seen(&agent, Duration::from_secs(3));
    assert!(!stalls.is_empty(), "stalls are still detected");
    for s in signals {
        assert_eq!(handler_of(s), host, "signal {s} was replaced");
    }

    // The host takes lagscope's signal over: lagscope stops signalling.
    let ours = lagscope::low_level::stack::signal().expect("capture is installed");
    assert!(!signals.contains(&ours));
    install(
        ours,
        counting_handler as extern "C" fn(libc::c_int) as usize,
    );
    let err = lagscope::low_level::stack::capture(
        lagscope::low_level::stack::current_tid(),
        Duration::from_secs(1),
    )
    .expect_err("the capture signal now belongs to the host");
    assert!(err.to_string().contains("taken over"), "{err}");
    rt.spawn(async { std::thread::sleep(Duration::from_millis(300)) });
    // The takeover travels with the samples, said once.
    let (_, said) = seen(&agent, Duration::from_millis(800));
    assert_eq!(
        said.iter()
            .filter(|n| n.contains("stack-capture signal"))
            .count(),
        1,
        "the takeover is said in one sample: {said:?}"
    );
    assert_eq!(
        HOST_SAW.load(Ordering::Relaxed),
        0,
        "a lagscope signal reached the host's handler"
    );
    let end = Instant::now() + Duration::from_secs(5);
    while agent.snapshot().is_none_or(|s| s.seq < 8) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        agent.snapshot().is_some_and(|s| s.seq >= 8),
        "samples keep coming"
    );
    agent.shutdown();
}
