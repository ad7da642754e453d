//! Every threshold the doctor's rules use, named, in one place; the
//! module table of [`crate::doctor`] and the README quote them.
//!
//! They start from clinic.js Doctor's (event-loop delay median ≥ 10 ms or
//! max ≥ 100 ms; CPU ≥ 95 %) and are adapted where lagscope sees more.

const MIB: f64 = 1024.0 * 1024.0;

// Stalls (`event-loop-blocking`, `lock-contention`).

/// Stalls that add up to this share of the window are a problem: ~10 ms per
/// second, clinic's lag median.
pub const STALL_SHARE: f64 = 0.01;
/// … as is one stall this long, in µs (clinic's max lag).
pub const STALL_LONGEST_US: f64 = 100_000.0;
/// Stalls adding up to this share (or one of [`STALL_LONGEST_US`]) are
/// critical.
pub const STALL_CRITICAL_SHARE: f64 = 0.05;
/// Waiting for a lock must be at least this share of the stalled time to
/// call it contention…
pub const LOCK_WAIT_FLOOR: f64 = 0.1;
/// …and waiting plus working under the lock this share.
pub const LOCK_STALL_SHARE: f64 = 0.5;
/// Waiting alone this share is contention whoever holds the lock.
pub const LOCK_WAIT_ALONE: f64 = 0.3;

// Lag without stall data (`event-loop-blocking`).

/// Median of the lag p99, in µs, that is a problem (clinic's).
pub const LAG_P99_MEDIAN_US: f64 = 10_000.0;
/// Largest lag, in µs, that is a problem (clinic's), and critical.
pub const LAG_MAX_US: f64 = 100_000.0;

// Saturated workers (`cpu-saturation`, `underused-cores`).

/// Median busy ratio of saturated workers: tokio's busy ratio includes the
/// polling overhead clinic's CPU figure lacks, so this warns…
pub const BUSY_SATURATED: f64 = 0.9;
/// …and this (clinic's CPU threshold) is critical.
pub const BUSY_CRITICAL: f64 = 0.95;

// The blocking pool (`blocking-pool-saturation`).

/// Median blocking-queue depth (tokio_unstable) of a saturated pool…
pub const BLOCKING_QUEUE_MEDIAN: f64 = 1.0;
/// …with the queue reaching this depth; a median this deep is critical.
pub const BLOCKING_QUEUE_MAX: f64 = 10.0;
/// A no-op blocking job that waits this long for a thread (median over the
/// window, µs) means the pool is saturated, whatever the build can count…
pub const BLOCKING_WAIT_MEDIAN_US: f64 = 100_000.0;
/// …with one wait this long.
pub const BLOCKING_WAIT_MAX_US: f64 = 500_000.0;
/// A median wait this long (µs) is critical.
pub const BLOCKING_WAIT_CRITICAL_US: f64 = 1_000_000.0;

// Memory (`heap-leak`, `external-memory`).

/// Growth of the Rust heap, bytes per minute, that is a leak…
pub const HEAP_GROWTH_PER_MIN: f64 = 5.0 * MIB;
/// …when it is this share of the heap at the window's start…
pub const HEAP_GROWTH_SHARE: f64 = 0.2;
/// …and the heap rose in this share of the samples: steady growth, not a
/// burst.
pub const HEAP_RISING_SHARE: f64 = 0.7;
/// Growth of memory outside the Rust heap (the C heap, or RSS − heap),
/// bytes per minute, that is a problem…
pub const NATIVE_GROWTH_PER_MIN: f64 = 5.0 * MIB;
/// …when it adds up to this many bytes over the window.
pub const NATIVE_GROWTH_MIN_BYTES: f64 = 10.0 * MIB;
/// The C heap must grow this many times faster than the Rust heap: malloc's
/// per-block overhead on Rust's own allocations lands in the C heap too.
pub const C_HEAP_OVER_RUST: f64 = 2.0;
/// The Rust heap is flat beside external growth below this many bytes per
/// minute…
pub const HEAP_FLAT_PER_MIN: f64 = MIB;
/// …or below this share of the external growth (the agent's own tables,
/// such as heap sampling's sites, add a little to a heap that does not
/// leak).
pub const HEAP_FLAT_SHARE: f64 = 0.1;
/// Memory growth, bytes per minute, that is critical.
pub const MEMORY_CRITICAL_PER_MIN: f64 = 50.0 * MIB;

// Tasks (`unbounded-concurrency`).

/// Growth of alive tasks per minute that is unbounded…
pub const TASKS_GROWTH_PER_MIN: f64 = 1000.0;
/// …once this many are alive…
pub const TASKS_MIN_ALIVE: f64 = 1000.0;
/// …and the count grew this many times over the window.
pub const TASKS_GROWTH_FACTOR: f64 = 2.0;

// Requests by name (evidence for the other rules).

/// Requests a task name needs in the window before the doctor speaks of
/// its split…
pub const TASK_MIN_REQUESTS: f64 = 10.0;
/// …and seconds of accounted time.
pub const TASK_MIN_SECONDS: f64 = 0.1;
/// A name whose requests wait this share of their time for a worker points
/// at the runtime (saturated or blocked).
pub const TASK_SCHEDULED_SHARE: f64 = 0.3;
/// A name whose requests are idle this share of their time waits on
/// something outside the runtime.
pub const TASK_IDLE_SHARE: f64 = 0.8;
/// A name taking this share of all requests' poll time is named as what
/// keeps the workers busy.
pub const TASK_POLL_SHARE: f64 = 0.5;
/// An await point with this share of a name's waiting is named.
pub const WAIT_POINT_SHARE: f64 = 0.05;
/// Stuck requests at least this many make the finding critical.
pub const STUCK_CRITICAL: usize = 10;
