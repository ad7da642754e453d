//! The host owns the signals lagscope would use: lagscope must leave its
//! handlers alone, keep sampling, and run without the parts that need them.
#![allow(unsafe_code)]
#![cfg(target_os = "linux")]

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

#[test]
fn handlers_the_host_installed_are_never_replaced() {
    let host = hosts_handler as extern "C" fn(libc::c_int) as usize;
    let signals = [libc::SIGRTMIN() + 3, libc::SIGRTMIN() + 4, libc::SIGPROF];
    for s in signals {
        // SAFETY: installing a handler that does nothing.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = host;
            libc::sigaction(s, &action, std::ptr::null_mut());
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let agent = lagscope::Agent::builder()
        .sample_interval(Duration::from_millis(50))
        .start(rt.handle().clone())
        .expect("the agent starts without its signals");
    rt.spawn(async { std::thread::sleep(Duration::from_millis(200)) });
    let end = Instant::now() + Duration::from_secs(5);
    while agent.snapshot().is_none_or(|s| s.seq < 8) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        agent.snapshot().is_some_and(|s| s.seq >= 8),
        "samples keep coming"
    );
    let err = lagscope::stack::capture(lagscope::stack::current_tid(), Duration::from_secs(1))
        .expect_err("the capture signal belongs to the host");
    assert!(err.to_string().contains("will not replace"), "{err}");
    agent.shutdown();
    for s in signals {
        assert_eq!(handler_of(s), host, "signal {s} was replaced");
    }
}
