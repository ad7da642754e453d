//! The doctor's rules on windows recorded from the fixtures
//! (`lagscope doctor --format json` under load, one window each): every
//! fixture must get its expected diagnosis as the top finding.
//!
//! Re-record with a release build: for each fixture,
//! `lagscope doctor --duration 12s --format json --load http://127.0.0.1:PORT/ -- lagscope-fixture NAME --port PORT`
//! and keep `windows[0]` as `tests/windows/NAME.json`.

use lagscope_collector::doctor::{diagnose, Category, Window};

fn expected(name: &str) -> Category {
    match name {
        "healthy" => Category::None,
        "sleep-in-async" | "cpu-in-async" | "sync-fs" | "big-json" | "regex-backtracking"
        | "concurrent-stalls" => Category::EventLoopBlocking,
        "heap-leak" => Category::HeapLeak,
        "blocking-pool-saturation" => Category::BlockingPoolSaturation,
        "external-memory" | "c-heap-growth" => Category::ExternalMemory,
        "slow-downstream" => Category::None,
        "single-worker-cpu-bound" => Category::UnderusedCores,
        "cpu-saturation" => Category::CpuSaturation,
        "unbounded-concurrency" => Category::UnboundedConcurrency,
        "lock-contention" => Category::LockContention,
        other => panic!("no expectation for recorded window {other}"),
    }
}

#[test]
fn every_recorded_fixture_gets_its_diagnosis() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/windows");
    let mut seen = 0;
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the recorded windows") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a name")
            .to_string();
        let text = std::fs::read_to_string(&path).expect("readable");
        let window: Window = serde_json::from_str(&text).expect("a window");
        let d = diagnose(&window);
        if d.top_category() != expected(&name) {
            wrong.push(format!(
                "{name}: expected {}, got {:?}",
                expected(&name),
                d.findings
                    .iter()
                    .map(|f| (&f.category, f.score))
                    .collect::<Vec<_>>()
            ));
        }
        seen += 1;
    }
    assert_eq!(seen, 16, "one recorded window per fixture");
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn event_loop_blocking_names_the_function_from_the_stack() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/windows");
    for (name, function, advice) in [
        ("sleep-in-async", "sleep_in_handler", "tokio::time::sleep"),
        ("sync-fs", "read_file_in_handler", "tokio::fs"),
        ("big-json", "parse_json_in_handler", "spawn_blocking"),
        ("regex-backtracking", "match_in_handler", "regex"),
        ("cpu-in-async", "hash_in_handler", "spawn_blocking"),
        (
            "concurrent-stalls",
            "sleep_in_handler",
            "tokio::time::sleep",
        ),
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("recorded");
        let window: Window = serde_json::from_str(&text).expect("a window");
        let top = diagnose(&window).findings.remove(0);
        let culprit = top.culprit.clone().unwrap_or_default();
        assert!(
            culprit.contains(function) || top.recommendation.contains(function),
            "{name}: {top:#?}"
        );
        assert!(top.recommendation.contains(advice), "{name}: {top:#?}");
    }
}

#[test]
fn concurrent_stalls_keep_each_functions_own_length() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/windows");
    let text = std::fs::read_to_string(dir.join("concurrent-stalls.json")).expect("recorded");
    let window: Window = serde_json::from_str(&text).expect("a window");
    let top = diagnose(&window).findings.remove(0);
    // 300 ms sleeps and 100 ms hashing loops, two workers at once: each
    // function's typical stall is its own length, not the other's.
    let typical = |function: &str| {
        top.evidence
            .iter()
            .find(|e| e.contains(function) && e.contains("typically"))
            .and_then(|e| {
                e.split("typically ")
                    .nth(1)?
                    .split(" ms")
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no typical length for {function}: {top:#?}"))
    };
    let sleep = typical("sleep_in_handler");
    let hash = typical("hash_in_handler");
    assert!((290.0..330.0).contains(&sleep), "{sleep} ms: {top:#?}");
    assert!((95.0..130.0).contains(&hash), "{hash} ms: {top:#?}");
}
