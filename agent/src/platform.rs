//! Everything the agent knows about the operating system, picked at this one
//! point: thread ids, `/proc`, the C allocator's figures and, on Linux,
//! another thread's stack by signal and per-thread CPU timers. Every `unsafe`
//! block of the agent lives under this module, except the allocator's
//! `GlobalAlloc` contract in [`crate::alloc`]; each carries a `// SAFETY:`
//! comment (`clippy::undocumented_unsafe_blocks` is denied).
//!
//! Linux is the platform implemented; elsewhere the functions that can
//! answer "unknown" do, and the stall watchdog and profiler do not exist.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod other;
pub(crate) mod procfs;
#[cfg(tokio_unstable)]
pub(crate) mod static_ref;

#[cfg(target_os = "linux")]
pub use linux::stack;
#[cfg(target_os = "linux")]
#[cfg(test)]
pub(crate) use linux::test_support;
pub(crate) use linux::{
    c_allocator_held_bytes, c_allocator_in_use_bytes, current_tid, release_free_heap, timer,
};
#[cfg(not(target_os = "linux"))]
pub(crate) use other::{
    c_allocator_held_bytes, c_allocator_in_use_bytes, current_tid, release_free_heap,
};
