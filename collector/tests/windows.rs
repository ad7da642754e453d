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
        "sleep-in-async" | "cpu-in-async" | "sync-fs" | "big-json" | "regex-backtracking" => {
            Category::EventLoopBlocking
        }
        "heap-leak" => Category::HeapLeak,
        "blocking-pool-saturation" => Category::BlockingPoolSaturation,
        "external-memory" => Category::ExternalMemory,
        "single-worker-cpu-bound" => Category::UnderusedCores,
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
    assert_eq!(seen, 12, "one recorded window per fixture");
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
