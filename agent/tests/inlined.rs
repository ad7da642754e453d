//! A function inlined into its caller has no symbol of its own; with DWARF
//! (test builds have full debuginfo) the stack names it, with its line,
//! before the function it was inlined into.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::sync::mpsc;
use std::time::Duration;

#[inline(always)]
fn waits_inlined(d: Duration) {
    std::thread::sleep(d);
    std::hint::black_box(());
}

#[inline(never)]
fn calls_an_inlined_function(d: Duration) {
    waits_inlined(d);
    std::hint::black_box(());
}

/// The symbolized stack of a thread 100 ms into `sleeps` for 400 ms.
fn frames_while(sleeps: fn(Duration)) -> Vec<lagscope::low_level::stack::Frame> {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(lagscope::low_level::stack::current_tid());
        sleeps(Duration::from_millis(400));
    });
    let tid = rx.recv().expect("tid");
    std::thread::sleep(Duration::from_millis(100));
    let addresses =
        lagscope::low_level::stack::capture(tid, Duration::from_secs(2)).expect("captured");
    let frames = lagscope::low_level::stack::symbolize(&addresses);
    t.join().expect("thread");
    frames
}

#[test]
fn an_inlined_function_is_named_with_its_line_before_its_caller() {
    let frames = frames_while(calls_an_inlined_function);
    let names: Vec<String> = frames.iter().filter_map(|f| f.function.clone()).collect();
    let inlined = frames
        .iter()
        .position(|f| {
            f.inlined
                && f.function
                    .as_deref()
                    .is_some_and(|n| n.starts_with("inlined::waits_inlined (inlined.rs:"))
        })
        .unwrap_or_else(|| panic!("no inlined frame: {names:#?}"));
    let caller = names
        .iter()
        .position(|n| n == "inlined::calls_an_inlined_function")
        .unwrap_or_else(|| panic!("no caller: {names:#?}"));
    assert!(inlined < caller, "{names:#?}");
}

mod shop {
    pub struct Cart;

    impl Cart {
        #[inline(always)]
        pub fn waits_inlined(d: std::time::Duration) {
            std::thread::sleep(d);
            std::hint::black_box(());
        }
    }
}

#[inline(never)]
fn calls_an_inlined_method(d: Duration) {
    shop::Cart::waits_inlined(d);
    std::hint::black_box(());
}

#[test]
fn an_inlined_method_is_named_by_its_module_and_type() {
    let frames = frames_while(calls_an_inlined_method);
    let names: Vec<String> = frames.iter().filter_map(|f| f.function.clone()).collect();
    assert!(
        frames.iter().any(|f| f.inlined
            && f.function
                .as_deref()
                .is_some_and(|n| n.starts_with("inlined::shop::Cart::waits_inlined (inlined.rs:"))),
        "no inlined method with its path: {names:#?}"
    );
}
