//! Everything the agent knows about the operating system, picked at this one
//! point: thread ids, `/proc`, the C allocator's figures and, on Linux,
//! another thread's stack by signal and per-thread CPU timers. Every `unsafe`
//! block of the agent lives under this module (with the one `RawWaker` vtable,
//! [`waker`]), except the allocator's
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
pub(crate) mod slots;
#[cfg(tokio_unstable)]
pub(crate) mod static_ref;
pub(crate) mod waker;

#[cfg(target_os = "linux")]
pub use linux::stack;
#[cfg(target_os = "linux")]
#[cfg(test)]
pub(crate) use linux::test_support;
#[cfg(target_os = "linux")]
pub(crate) use linux::{
    build_keeps_frame_pointers, c_allocator, current_tid, executable_has_line_tables,
    release_free_heap, sched, signal_thread, timer,
};
#[cfg(not(target_os = "linux"))]
pub(crate) use other::{
    build_keeps_frame_pointers, c_allocator, current_tid, executable_has_line_tables,
    release_free_heap,
};

/// One reading of the C allocator's figures (glibc malloc's `mallinfo2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CAllocator {
    /// Bytes it holds from the OS: the main arena plus mmapped blocks.
    pub(crate) held: u64,
    /// Bytes in blocks it handed out and did not get back: arena chunks in
    /// use plus mmapped blocks.
    pub(crate) in_use: u64,
}

/// Bytes the C allocator holds from the OS; `None` off glibc.
pub(crate) fn c_allocator_held_bytes() -> Option<u64> {
    c_allocator().map(|c| c.held)
}

/// Bytes the C allocator handed out and did not get back; `None` off glibc.
pub(crate) fn c_allocator_in_use_bytes() -> Option<u64> {
    c_allocator().map(|c| c.in_use)
}
