//! Task names stay bounded: 10,000 distinct raw paths through the tower
//! layer end in at most the cap of names plus `other`, and the fold is
//! counted in the samples.

use std::time::Duration;

use tower::{service_fn, Layer, Service};

/// A path segment of letters only, so it is not collapsed as an id.
fn word(mut i: usize) -> String {
    let mut w = String::new();
    loop {
        w.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return w;
        }
    }
}

#[test]
fn ten_thousand_raw_paths_stay_within_the_name_cap() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let agent = lagscope::Agent::builder()
        .service("task-names")
        .sample_interval(Duration::from_millis(50))
        .max_task_names(16)
        .start(rt.handle().clone())
        .expect("agent");
    let handler = service_fn(|_req: http::Request<()>| async {
        tokio::task::yield_now().await;
        Ok::<_, std::convert::Infallible>(())
    });
    let mut svc = lagscope::route::TaskMonitorLayer::new().layer(handler);
    rt.block_on(async {
        for i in 0..10_000usize {
            // Half carry ids (one name each per shape), half are distinct words.
            let path = if i % 2 == 0 {
                format!("/orders/{i}/items")
            } else {
                format!("/search/{}", word(i))
            };
            let req = http::Request::get(path).body(()).expect("request");
            svc.call(req).await.expect("infallible");
        }
    });
    let (names, bytes) = lagscope::tasks::registry_footprint();
    assert!(names <= 16 + 1, "{names} names");
    assert!(bytes < 17 * 64 * 1024, "{bytes} bytes for {names} names");
    let ids = lagscope::TaskMonitor::named("GET /orders/:id/items");
    assert_eq!(ids.completed(), 5_000, "ids collapse into one name");

    // A sample taken after the last request (the sampler ran meanwhile).
    let folded = 5_000 - 15;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let sample = loop {
        let s = agent.snapshot();
        if let Some(s) =
            s.filter(|s| s.task_names_folded == folded || std::time::Instant::now() > deadline)
        {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline + Duration::from_secs(5),
            "no sample"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        sample.tasks.len() <= 17,
        "{} names sampled",
        sample.tasks.len()
    );
    // 15 words got names of their own (the id route took the 16th).
    assert_eq!(sample.task_names_folded, folded);
    let other = sample
        .tasks
        .iter()
        .find(|t| t.name == "other")
        .expect("folded requests count under `other`");
    assert_eq!(other.completed, folded);
    agent.shutdown();
}
