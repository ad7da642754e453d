//! A fixed allocation workload for instruction counting, which unlike timing
//! is repeatable on a noisy machine:
//!
//! ```sh
//! cargo bench -p lagscope --bench alloc_ops --no-run
//! for a in system counting; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/deps/alloc_ops-* $a 2>&1 | grep refs
//! done
//! ```
//!
//! The ratio of the two "I refs" totals (minus a run with `none`, the fixed
//! start-up cost) is the counting allocator's cost in instructions.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;

use lagscope::alloc::Counting;

static COUNTING: Counting<System> = Counting::new(System);

const SIZES: [usize; 8] = [16, 24, 32, 48, 64, 128, 512, 4096];
const OPS: usize = 1_000_000;

fn churn<A: GlobalAlloc>(alloc: &A) {
    let mut ptrs = [(std::ptr::null_mut::<u8>(), 0usize); 64];
    for _ in 0..OPS / ptrs.len() {
        for (i, slot) in ptrs.iter_mut().enumerate() {
            let size = SIZES[i % SIZES.len()];
            let layout = Layout::from_size_align(size, 8).expect("valid layout");
            // SAFETY: non-zero size and valid alignment; freed below with the same layout.
            #[allow(unsafe_code)]
            let p = unsafe { alloc.alloc(layout) };
            *slot = (black_box(p), size);
        }
        for &(p, size) in &ptrs {
            let layout = Layout::from_size_align(size, 8).expect("valid layout");
            // SAFETY: `p` came from `alloc.alloc` with this layout and is freed once.
            #[allow(unsafe_code)]
            unsafe {
                alloc.dealloc(p, layout)
            };
        }
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("system") => churn(&System),
        Some("counting") => churn(&COUNTING),
        Some("none") => {}
        // `cargo bench` runs every bench target with `--bench`: nothing to time here.
        _ => eprintln!("usage: alloc_ops system|counting|none (run under callgrind)"),
    }
}
