//! Screens of the dashboard, rendered with `TestBackend` and compared with the
//! snapshot files in `tests/snapshots/` (re-bless with `INSTA_UPDATE=always`).

use lagscope_tui::app::{apply, Event};
use lagscope_tui::state::App;
use lagscope_tui::theme::Theme;
use lagscope_tui::view;
use lagscope_wire::api::*;
use lagscope_wire::doctor::Category;
use lagscope_wire::metric::Metric;
use lagscope_wire::*;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::Terminal;

const T0: u64 = 1_800_000_000_000;

fn sample(service: &str, instance: &str, lag_max_us: u64, busy: f64) -> Sample {
    let mut s = Sample::synthetic(service, instance, 59, T0);
    let main = &mut s.runtimes[0];
    main.busy_ratio = busy;
    if let Some(lag) = &mut main.lag {
        lag.p99_us = lag_max_us / 2;
        lag.max_us = lag_max_us;
    }
    s
}

fn instance(
    service: &str,
    id: &str,
    health: Health,
    lag_max_us: u64,
    busy: f64,
) -> InstanceSummary {
    InstanceSummary {
        instance: id.into(),
        health,
        pid: 4242,
        host: "web-1".into(),
        agent_version: "0.1.0".into(),
        capabilities: vec!["tokio_unstable".into(), "heap".into()],
        config_warnings: vec![],
        notices: vec![],
        last_sample_ms: Some(T0),
        samples: 60,
        dropped_samples: 0,
        latest: Some(sample(service, id, lag_max_us, busy)),
    }
}

fn services() -> ServicesResponse {
    ServicesResponse {
        services: vec![
            ServiceSummary {
                service: "checkout".into(),
                instances: vec![
                    instance("checkout", "web-1:4242", Health::Live, 250_000, 0.62),
                    instance("checkout", "web-2:4243", Health::Stale, 900, 0.05),
                ],
                lag_p99_us_max: Some(125_000),
                busy_ratio_mean: Some(0.62),
                rss_bytes_total: Some(30 << 20),
            },
            ServiceSummary {
                service: "search".into(),
                instances: vec![instance("search", "web-3:77", Health::Gone, 500, 0.01)],
                lag_p99_us_max: None,
                busy_ratio_mean: None,
                rss_bytes_total: None,
            },
        ],
        collector: CollectorStatus {
            agents_connected: 2,
            samples_ingested: 180,
            streams_rejected: 0,
            samples_refused: 0,
            input_cut: 0,
            recording: None,
            history_bytes: 3 << 20,
            history_bytes_limit: 512 << 20,
        },
        next_cursor: None,
    }
}

/// One minute of series for checkout/web-1: a lag spike, a growing heap.
/// A minute of one point per second ending at `T0`, valued `f(second)`.
fn ramp(name: &str, f: &dyn Fn(u64) -> f64) -> Series {
    Series {
        name: name.into(),
        points: (0..60u64)
            .map(|i| {
                let v = f(i);
                Point {
                    t_ms: T0 - (59 - i) * 1000,
                    min: v,
                    max: v,
                    mean: v,
                }
            })
            .collect(),
    }
}

fn series() -> SeriesResponse {
    SeriesResponse {
        service: "checkout".into(),
        instance: "web-1:4242".into(),
        series: vec![
            ramp(Metric::LagP50.series(), &|_| 80.0),
            ramp(Metric::LagP99.series(), &|i| {
                if i % 20 == 10 {
                    125_000.0
                } else {
                    300.0
                }
            }),
            ramp(Metric::LagMax.series(), &|i| {
                if i % 20 == 10 {
                    250_000.0
                } else {
                    900.0
                }
            }),
            ramp(&Metric::WorkerBusyRatio.worker_series(0), &|i| {
                if i % 20 == 10 {
                    0.95
                } else {
                    0.3
                }
            }),
            ramp(&Metric::WorkerBusyRatio.worker_series(1), &|_| 0.2),
            ramp(Metric::CpuRatio.series(), &|i| {
                if i % 20 == 10 {
                    0.05
                } else {
                    0.45
                }
            }),
            ramp(Metric::GlobalQueueDepth.series(), &|i| (i % 7) as f64),
            ramp(Metric::BlockingThreads.series(), &|_| 1.0),
            ramp(Metric::BlockingWait.series(), &|i| {
                if i % 20 == 10 {
                    640_000.0
                } else {
                    300.0
                }
            }),
            ramp(Metric::HeapLive.series(), &|i| {
                (10 + i / 6) as f64 * 1048576.0
            }),
            ramp(Metric::Rss.series(), &|i| (20 + i / 6) as f64 * 1048576.0),
            ramp(Metric::External.series(), &|_| 6.0 * 1048576.0),
        ],
    }
}

fn app() -> App {
    let mut app = App::new("http://127.0.0.1:6671", Theme::new(false));
    apply(&mut app, Event::Services(Ok(services())));
    apply(&mut app, Event::Series(series()));
    app.zoom = 0; // 1 minute
    app
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|f| view::draw(f, app, T0)).expect("draw");
    terminal.backend().to_string()
}

fn key(app: &mut App, code: KeyCode) {
    apply(app, Event::Key(KeyEvent::from(code)));
}

#[test]
fn instance_view_at_80x24() {
    insta::assert_snapshot!(render(&app(), 80, 24));
}

#[test]
fn instance_view_at_120x40() {
    insta::assert_snapshot!(render(&app(), 120, 40));
}

fn stall(id: u64, ongoing: bool, started_ms: u64, duration_us: u64) -> StallRecord {
    let (service, instance) = app().selection().expect("an instance is selected");
    StallRecord {
        service,
        instance,
        stall: {
            let mut stall_event = StallEvent::default();
            stall_event.id = id;
            stall_event.runtime = "main".into();
            stall_event.detection = StallDetection::PollHooks;
            stall_event.tid = 4242;
            stall_event.started_ms = started_ms;
            stall_event.duration_us = duration_us;
            stall_event.ongoing = ongoing;
            stall_event.blocking_function = Some("checkout::handlers::price_cart".into());
            stall_event.stacks = vec![{
                let mut stall_stack = StallStack::default();
                stall_stack.frames = [
                    "clock_nanosleep",
                    "std::thread::sleep",
                    "checkout::handlers::price_cart",
                    "checkout::handlers::serve::{{closure}}",
                    "tokio::runtime::task::harness::poll_future",
                ]
                .map(String::from)
                .into();
                stall_stack.count = 7;
                stall_stack
            }];
            stall_event.task_id = Some(17);
            stall_event.spawned_at = Some("src/main.rs:40:9".into());
            stall_event.span = Some("request{path=/cart}".into());
            stall_event
        },
    }
}

#[test]
fn a_stall_in_progress_shows_its_stack_with_the_culprit_marked() {
    let mut app = app();
    let (service, instance) = app.selection().expect("selected");
    let stalls = vec![
        stall(3, true, T0 - 700, 700_000),
        stall(2, false, T0 - 20_000, 250_000),
    ];
    apply(
        &mut app,
        Event::Stalls(service.clone(), instance.clone(), stalls),
    );
    apply(
        &mut app,
        Event::Diagnosis(lagscope_wire::doctor::Diagnosis {
            service,
            instance,
            from_ms: T0 - 60_000,
            to_ms: T0,
            findings: vec![lagscope_wire::doctor::Finding {
                category: Category::EventLoopBlocking,
                severity: lagscope_wire::doctor::Severity::Critical,
                score: 80.0,
                summary: "Blocking code in async tasks stalls the runtime".into(),
                evidence: vec![],
                recommendation: "use tokio::time::sleep".into(),
                culprit: Some("checkout::handlers::price_cart".into()),
            }],
        }),
    );
    let screen = render(&app, 120, 40);
    assert!(
        screen.contains("doctor: event-loop-blocking in handlers::price_cart"),
        "{screen}"
    );
    assert!(
        screen.contains("▶ checkout::handlers::price_cart"),
        "{screen}"
    );
    assert!(screen.contains("STALLED 700.0ms"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn a_stall_in_an_async_block_of_a_build_without_line_tables_says_it_may_be_inlined() {
    let mut app = app();
    let (service, instance) = app.selection().expect("selected");
    let mut s = stall(3, false, T0 - 2_000, 150_000);
    s.stall.blocking_function = Some("checkout::main::{{closure}}::{{closure}}".into());
    s.stall.stacks[0].frames = [
        "checkout::main::{{closure}}::{{closure}}",
        "tokio::runtime::task::core::Core<T,S>::poll",
    ]
    .map(String::from)
    .into();
    apply(&mut app, Event::Stalls(service, instance, vec![s]));
    let screen = render(&app, 120, 40);
    assert!(screen.contains("may hold inlined code"), "{screen}");
}

#[test]
fn f_shows_where_the_cpu_went() {
    let mut app = app();
    let (service, instance) = app.selection().expect("selected");
    let profile = ProfileResponse {
        service,
        instances: vec![instance.clone()],
        start_ms: T0 - 60_000,
        end_ms: T0,
        hz: 19,
        samples: 400,
        dropped: 0,
        folded: String::new(),
        top: vec![
            TopFunction {
                name: "checkout::pricing::hash_cart".into(),
                self_samples: 220,
                total_samples: 260,
            },
            TopFunction {
                name: "serde_json::de::from_slice".into(),
                self_samples: 60,
                total_samples: 90,
            },
        ],
    };
    apply(&mut app, Event::Profile(instance, profile));
    key(&mut app, KeyCode::Char('f'));
    let screen = render(&app, 100, 30);
    assert!(screen.contains("55%"), "self share of hash_cart: {screen}");
    insta::assert_snapshot!(screen);
    key(&mut app, KeyCode::Char('f'));
    assert!(render(&app, 100, 30).contains("Queues"));
}

#[test]
fn m_shows_where_the_heap_was_allocated_and_what_grew() {
    let mut app = app();
    let (service, instance) = app.selection().expect("selected");
    let heap = |end_ms: u64, cache: u64| HeapResponse {
        service: service.clone(),
        instances: vec![instance.clone()],
        kind: HeapKind::Inuse,
        start_ms: end_ms,
        end_ms,
        sample_bytes: 512 * 1024,
        samples: 300,
        dropped: 0,
        total_bytes: cache + (6 << 20),
        folded: format!(
            "main;checkout::handler;checkout::cache::Cache::remember;\
             std::collections::hash::map::HashMap<K,V,S>::insert;\
             hashbrown::raw::RawTable<T,A>::reserve_rehash {cache}\n\
             main;checkout::config::load;alloc::vec::from_elem {}\n",
            6 << 20
        ),
        top: Vec::new(),
    };
    let sites = lagscope_tui::state::HeapSites::from_responses(
        &heap(T0 - 5_000, 40 << 20),
        Some(&heap(T0 - 65_000, 16 << 20)),
    );
    assert_eq!(sites.sites[0].function, "checkout::cache::Cache::remember");
    assert_eq!(sites.sites[0].grew_bytes, 24 << 20);
    assert_eq!(sites.sites[1].grew_bytes, 0);
    key(&mut app, KeyCode::Char('m'));
    assert!(
        render(&app, 100, 30).contains("no heap samples"),
        "before any arrive"
    );
    // A window whose samples were all freed again.
    let mut freed = heap(T0 - 5_000, 0);
    freed.folded.clear();
    let none_live = lagscope_tui::state::HeapSites::from_responses(&freed, None);
    apply(
        &mut app,
        Event::Heap(service.clone(), instance.clone(), none_live),
    );
    let screen = render(&app, 100, 30);
    assert!(
        screen.contains("nothing sampled is live") && screen.contains("every 512 KiB"),
        "{screen}"
    );
    apply(&mut app, Event::Heap(service, instance, sites));
    let screen = render(&app, 100, 30);
    assert!(screen.contains("+24.0"), "the cache's growth: {screen}");
    insta::assert_snapshot!(screen);
    key(&mut app, KeyCode::Char('f'));
    assert!(!render(&app, 100, 30).contains("Heap by allocation site"));
}

#[test]
fn t_shows_where_requests_wait() {
    let mut app = app();
    let (service, instance) = app.selection().expect("selected");
    // Counters growing by `per_s` a second.
    let ramp = |name: String, per_s: f64| ramp(&name, &|i| i as f64 * per_s);
    let mut series = series();
    for (name, scheduled, poll, idle, done) in [
        ("POST /checkout", 640_000.0, 300_000.0, 60_000.0, 40.0),
        ("GET /orders/:id", 10_000.0, 40_000.0, 950_000.0, 120.0),
    ] {
        series.series.extend([
            ramp(Metric::TaskScheduledTime.task_series(name), scheduled),
            ramp(Metric::TaskPollTime.task_series(name), poll),
            ramp(Metric::TaskIdleTime.task_series(name), idle),
            ramp(Metric::TaskCompleted.task_series(name), done),
            ramp(Metric::TaskScheduledP99.task_series(name), 200.0),
        ]);
    }
    assert_eq!(
        (series.service.as_str(), series.instance.as_str()),
        (service.as_str(), instance.as_str())
    );
    apply(&mut app, Event::Series(series));
    key(&mut app, KeyCode::Char('t'));
    let screen = render(&app, 110, 30);
    assert!(screen.contains("POST /checkout"), "{screen}");
    assert!(
        screen.contains("█████████████▓▓▓▓▓▓░"),
        "64/30/6 split: {screen}"
    );
    insta::assert_snapshot!(screen);
    // Where they wait, by await point, and the stuck ones.
    let share = |kind: &str, point: &str, share: f64| WaitShare {
        kind: kind.into(),
        await_point: point.into(),
        frames: vec![],
        wait_us: (share * 1e6) as u64,
        share,
        waits: 20,
    };
    let waits = WaitsResponse {
        service: service.clone(),
        instances: vec![instance.clone()],
        start_ms: T0,
        end_ms: T0 + 60_000,
        captures: 900,
        dropped: 0,
        tasks: vec![TaskWaits {
            task: "GET /orders/:id".into(),
            wait_us: 1_000_000,
            sites: vec![
                share(
                    "socket",
                    "orders::fetch_price → tokio::net::TcpStream::read",
                    0.58,
                ),
                share(
                    "lock",
                    "orders::acquire_slot → tokio::sync::Semaphore::acquire",
                    0.27,
                ),
                share("timer", "orders::backoff → tokio::time::sleep", 0.15),
            ],
        }],
        stuck: vec![StuckEntry {
            instance: instance.clone(),
            task: "POST /checkout".into(),
            pending_ms: 12_000,
            kind: "channel".into(),
            await_point: "checkout::await_confirmation".into(),
            frames: vec![],
        }],
        // More stuck than the agent listed.
        stuck_total: 7,
        folded: String::new(),
    };
    apply(
        &mut app,
        Event::Waits(service.clone(), instance.clone(), waits),
    );
    let screen = render(&app, 110, 30);
    assert!(
        screen.contains("58 % socket   orders::fetch_price → tokio::net"),
        "{screen}"
    );
    assert!(screen.contains("7 stuck"), "{screen}");
    assert!(
        screen.contains("channel at checkout::await_confirmation"),
        "{screen}"
    );
    insta::assert_snapshot!("t_shows_where_requests_wait_by_await_point", screen);
    key(&mut app, KeyCode::Char('t'));
    assert!(render(&app, 110, 30).contains("Queues"));
}

#[test]
fn help_overlay() {
    let mut app = app();
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn filter_narrows_the_list() {
    let mut app = app();
    for c in "/sea".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.selection(), Some(("search".into(), "web-3:77".into())));
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn a_failing_recording_is_said_on_the_status_line_until_it_resumes() {
    let mut app = app();
    let mut s = services();
    s.collector.recording = Some(lagscope_wire::api::RecordingStatus {
        dropped: 42,
        failing_since_ms: Some(1_800_000_000_000),
        resumed_ms: None,
        error: Some("No space left on device (os error 28)".into()),
    });
    apply(&mut app, Event::Services(Ok(s.clone())));
    let screen = render(&app, 160, 24);
    assert!(
        screen.contains("recording failing since 08:00:00: No space left on device"),
        "{screen}"
    );
    s.collector.recording = Some(lagscope_wire::api::RecordingStatus {
        dropped: 42,
        failing_since_ms: None,
        resumed_ms: Some(1_800_000_060_000),
        error: None,
    });
    apply(&mut app, Event::Services(Ok(s)));
    let screen = render(&app, 160, 24);
    assert!(
        screen.contains("rec resumed 08:01:00 (42 lost)"),
        "{screen}"
    );
}

#[test]
fn a_fleet_collector_that_does_not_answer_is_named_while_the_others_show() {
    let mut app = app();
    let services = app.services.clone().expect("a listing");
    apply(&mut app, Event::Services(Ok(services.clone())));
    apply(
        &mut app,
        Event::Unanswered(vec![
            "cannot reach the collector at http://127.0.0.1:6672: connection refused".into(),
        ]),
    );
    let screen = render(&app, 120, 24);
    assert!(screen.contains("checkout"), "{screen}");
    assert!(screen.contains("127.0.0.1:6672"), "{screen}");
    insta::assert_snapshot!(screen);
    // Once every collector answers again, the warning goes.
    apply(&mut app, Event::Services(Ok(services)));
    apply(&mut app, Event::Unanswered(vec![]));
    assert!(!render(&app, 120, 24).contains("6672"));
}

#[test]
fn collector_down_keeps_last_data_and_says_so() {
    let mut app = app();
    apply(
        &mut app,
        Event::Services(Err(
            "cannot reach the collector at http://127.0.0.1:6671: connection refused".into(),
        )),
    );
    let screen = render(&app, 80, 24);
    assert!(screen.contains("checkout"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn an_ignored_agent_setting_is_shown_on_the_instance() {
    let mut app = App::new("http://127.0.0.1:6671", Theme::new(false));
    let mut s = services();
    s.services[0].instances[0].config_warnings = vec![
        "ignoring LAGSCOPE_SAMPLE_INTERVAL=\"abc\": expected a duration such as 500us, 10ms, 1s or 2m; keeping the value from code or the default".into(),
    ];
    apply(&mut app, Event::Services(Ok(s)));
    apply(&mut app, Event::Series(series()));
    app.zoom = 0;
    let screen = render(&app, 160, 40);
    assert!(
        screen.contains("agent config: ignoring LAGSCOPE_SAMPLE_INTERVAL"),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn what_the_agent_said_after_start_is_shown_on_the_instance() {
    let mut app = App::new("http://127.0.0.1:6671", Theme::new(false));
    let mut s = services();
    s.services[0].instances[0].notices = vec![
        "the host installed its own handler on signal 39, lagscope's stack-capture signal: stalls are no longer captured (use another real-time signal in the host)".into(),
    ];
    apply(&mut app, Event::Services(Ok(s)));
    apply(&mut app, Event::Series(series()));
    app.zoom = 0;
    let screen = render(&app, 160, 40);
    assert!(
        screen.contains("agent: the host installed its own handler on signal 39"),
        "{screen}"
    );
}

#[test]
fn damage_in_a_replayed_recording_stays_on_the_status_line() {
    let mut app = app();
    app.notices =
        vec!["rec.lsr is damaged at bytes 100..160 (60 bytes): checksum mismatch; skipped".into()];
    let screen = render(&app, 160, 24);
    assert!(
        screen.contains("⚠ rec.lsr is damaged at bytes 100..160"),
        "{screen}"
    );
}

#[test]
fn no_agents_yet() {
    let mut app = App::new("http://127.0.0.1:6671", Theme::new(false));
    let mut empty = services();
    empty.services.clear();
    apply(&mut app, Event::Services(Ok(empty)));
    insta::assert_snapshot!(render(&app, 80, 24));
}

#[test]
fn keys_move_zoom_pan_and_quit() {
    let mut app = app();
    key(&mut app, KeyCode::Down);
    assert_eq!(
        app.selection(),
        Some(("checkout".into(), "web-2:4243".into()))
    );
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(
        app.selection(),
        Some(("checkout".into(), "web-1:4242".into())),
        "wraps around"
    );
    key(&mut app, KeyCode::Char('-'));
    assert_eq!(app.window().as_secs(), 300);
    key(&mut app, KeyCode::Char('+'));
    key(&mut app, KeyCode::Char('+'));
    assert_eq!(app.window().as_secs(), 60, "stops at the narrowest window");
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Char('h'));
    assert_eq!(app.pan_ms, 15_000);
    key(&mut app, KeyCode::Char('0'));
    assert_eq!(app.pan_ms, 0);
    assert!(!app.quit);
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}

#[test]
fn tiny_terminal_does_not_panic() {
    let app = app();
    for (w, h) in [(10, 3), (20, 5), (40, 10), (1, 1)] {
        render(&app, w, h);
    }
}
