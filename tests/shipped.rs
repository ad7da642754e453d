//! A service built the way users ship theirs — outside this workspace, so
//! without its frame pointers or tokio_unstable, cargo's default release
//! profile, stable tokio — still has the function that blocked named in
//! every stall's stack: a CPU loop, a serde_json parse (whose own code keeps
//! no frame pointers), `std::thread::sleep` and a `std::sync::Mutex` wait.
//! Written straight in a spawned async block (inlined into tokio's poll), a
//! sleep or a `Mutex` wait is still a stall, named by the call it made.
//!
//! With `debug = "limited"`, an ordinary `async fn` the compiler inlined
//! into the task's future is named by its path — also on `tokio_unstable`,
//! whose builds take inlined code's names from other compilation units.
//!
//! The first run builds the service (a few minutes per build); later runs
//! reuse it from `target/shipped/`.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use lagscope_fixtures::shipped::{self, Build, Debuginfo, Kind};

/// One build or run at a time: two would share the machine's cores with
/// each other's stalls.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn a_build_without_frame_pointers_names_the_user_function() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let binary = built(Build::AS_USERS_SHIP);
    for kind in [
        Kind::Cpu,
        Kind::Json,
        Kind::Sleep,
        Kind::Mutex,
        Kind::BareSleep,
        Kind::BareMutex,
    ] {
        let rounds = 3;
        let stalls = shipped::run(&binary, kind, rounds, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            stalls.len() >= rounds as usize,
            "{kind:?}: {} stalls for {rounds} blocks: {stalls:#?}",
            stalls.len()
        );
        let unnamed: Vec<_> = stalls.iter().filter(|s| !kind.is_named_by(s)).collect();
        assert!(
            unnamed.is_empty(),
            "{kind:?}: stacks without {}: {unnamed:#?}",
            kind.function()
        );
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn an_inlined_async_fn_is_named_from_debuginfo_on_tokio_unstable() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let build = Build {
        frame_pointers: false,
        tokio_unstable: true,
        debuginfo: Debuginfo::Limited,
    };
    let binary = built(build);
    let rounds = 3;
    let stalls = shipped::run(&binary, Kind::Inlined, rounds, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        stalls.len() >= rounds as usize,
        "{} stalls for {rounds} blocks: {stalls:#?}",
        stalls.len()
    );
    let unnamed: Vec<_> = stalls
        .iter()
        .filter(|s| {
            !s.stacks.first().is_some_and(|top| {
                top.frames
                    .iter()
                    .any(|f| f.starts_with("shipped::digest_request::{{closure}} (src/main.rs:"))
            })
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "stacks without the inlined async fn: {unnamed:#?}"
    );
}

/// With no `LAGSCOPE_*` settings, `lagscope doctor --duration 25s` on a
/// leaking service built as users ship it names the function whose
/// allocations are kept: heap sampling is on by default where `Counting`
/// is the global allocator.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
#[test]
fn doctor_names_the_leaking_function_of_a_shipped_build_with_no_settings() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let binary = built(Build::AS_USERS_SHIP);
    let response = doctor(&binary, &["leak", "120"], "25s");
    let findings = &response.diagnoses[0].findings;
    let leak = findings
        .iter()
        .find(|f| f.category == lagscope_wire::doctor::Category::HeapLeak)
        .unwrap_or_else(|| panic!("no heap-leak finding: {findings:#?}"));
    assert_eq!(
        leak.culprit.as_deref(),
        Some("shipped::remember_session"),
        "{leak:#?}"
    );
}

/// On a build as users ship it, with no `LAGSCOPE_*` settings, `lagscope
/// doctor` says where requests wait, by kind (a semaphore's permits, a
/// socket, a timer), and lists those that never finish with the channel
/// they await.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn doctor_names_where_requests_of_a_shipped_build_wait_and_those_that_never_finish() {
    use lagscope_wire::doctor::Category;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let binary = built(Build::AS_USERS_SHIP);

    let response = doctor(&binary, &["waits", "120"], "15s");
    let findings = &response.diagnoses[0].findings;
    let healthy = findings
        .iter()
        .find(|f| f.category == Category::None)
        .unwrap_or_else(|| panic!("the runtime is fine, yet: {findings:#?}"));
    let line = healthy
        .evidence
        .iter()
        .find(|l| l.starts_with("requests to GET /orders spend their waiting on "))
        .unwrap_or_else(|| panic!("no await points: {healthy:#?}"));
    // Each named by the service's function that awaited, without debuginfo.
    for kind in [
        "% socket I/O in shipped::",
        "% a lock or semaphore in shipped::",
        "% a timer in shipped::",
    ] {
        assert!(line.contains(kind), "{kind} missing from {line}");
    }

    let response = doctor(&binary, &["stuck", "120"], "15s");
    let findings = &response.diagnoses[0].findings;
    let stuck = findings
        .iter()
        .find(|f| f.category == Category::StuckRequests)
        .unwrap_or_else(|| panic!("no stuck-requests finding: {findings:#?}"));
    assert!(
        stuck
            .summary
            .contains("request(s) to POST /checkout never finish")
            && stuck.summary.contains("awaiting a channel at shipped::"),
        "{stuck:#?}"
    );
    // Every one of them where it waits: none charged to the back-off its
    // last poll ended.
    let points: Vec<_> = stuck
        .evidence
        .iter()
        .filter(|l| l.contains(" awaiting "))
        .collect();
    assert!(
        !points.is_empty() && points.iter().all(|l| l.contains(" awaiting channel at ")),
        "{stuck:#?}"
    );
}

/// The service built as `build` (once; later runs reuse it from
/// `target/shipped/`).
fn built(build: Build) -> std::path::PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/shipped");
    build.build(&target).unwrap_or_else(|e| panic!("{e:#}"))
}

/// `lagscope doctor --duration <duration> --format json -- <binary> <args>`
/// with no `LAGSCOPE_*` settings.
fn doctor(binary: &Path, args: &[&str], duration: &str) -> lagscope_wire::doctor::DoctorResponse {
    let mut doctor = std::process::Command::new(env!("CARGO_BIN_EXE_lagscope"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LAGSCOPE_") {
            doctor.env_remove(name);
        }
    }
    let out = doctor
        .args([
            "doctor",
            "--duration",
            duration,
            "--format",
            "json",
            "--no-report",
        ])
        .arg("--")
        .arg(binary)
        .args(args)
        .output()
        .expect("doctor runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("JSON on stdout ({e}): {stderr}"))
}
