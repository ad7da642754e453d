//! A service built the way users ship theirs — outside this workspace, so
//! without its frame pointers or tokio_unstable, cargo's default release
//! profile, stable tokio — still has the function that blocked named in
//! every stall's stack: a CPU loop, a serde_json parse (whose own code keeps
//! no frame pointers), `std::thread::sleep` and a `std::sync::Mutex` wait.
//!
//! The first run builds the service (a few minutes); later runs reuse it
//! from `target/shipped/`.

use std::path::Path;
use std::time::Duration;

use lagscope_fixtures::shipped::{self, Build, Kind};

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn a_build_without_frame_pointers_names_the_user_function() {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/shipped");
    let binary = Build::AS_USERS_SHIP
        .build(&target)
        .unwrap_or_else(|e| panic!("{e:#}"));
    for kind in [Kind::Cpu, Kind::Json, Kind::Sleep, Kind::Mutex] {
        let rounds = 3;
        let stalls = shipped::run(&binary, kind, rounds, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            stalls.len() >= rounds as usize,
            "{kind:?}: {} stalls for {rounds} blocks: {stalls:#?}",
            stalls.len()
        );
        let unnamed: Vec<_> = stalls
            .iter()
            .filter(|s| !shipped::names(s, kind.function()))
            .collect();
        assert!(
            unnamed.is_empty(),
            "{kind:?}: stacks without {}: {unnamed:#?}",
            kind.function()
        );
    }
}
