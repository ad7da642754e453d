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
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/shipped");
    let binary = Build::AS_USERS_SHIP
        .build(&target)
        .unwrap_or_else(|e| panic!("{e:#}"));
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
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/shipped");
    let build = Build {
        frame_pointers: false,
        tokio_unstable: true,
        debuginfo: Debuginfo::Limited,
    };
    let binary = build.build(&target).unwrap_or_else(|e| panic!("{e:#}"));
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
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/shipped");
    let binary = Build::AS_USERS_SHIP
        .build(&target)
        .unwrap_or_else(|e| panic!("{e:#}"));
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
            "25s",
            "--format",
            "json",
            "--no-report",
        ])
        .arg("--")
        .arg(&binary)
        .args(["leak", "120"])
        .output()
        .expect("doctor runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let response: lagscope_wire::doctor::DoctorResponse =
        serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let findings = &response.diagnoses[0].findings;
    let leak = findings
        .iter()
        .find(|f| f.category == lagscope_wire::doctor::Category::HeapLeak)
        .unwrap_or_else(|| panic!("no heap-leak finding: {findings:#?}\n{stderr}"));
    assert_eq!(
        leak.culprit.as_deref(),
        Some("shipped::remember_session"),
        "{leak:#?}"
    );
}
