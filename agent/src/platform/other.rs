//! Platforms other than Linux: what can be answered "unknown" is; the stall
//! watchdog and the CPU profiler do not exist there.

/// No portable thread id: 0 ("unknown").
pub fn current_tid() -> i32 {
    0
}

/// No portable way to ask the C allocator to give memory back.
pub(crate) fn release_free_heap() {}

/// No portable way to ask the C allocator: not measured off glibc.
pub(crate) fn c_allocator() -> Option<super::CAllocator> {
    None
}

/// Unknown off Linux.
pub(crate) fn build_keeps_frame_pointers() -> bool {
    false
}

/// Unknown off Linux.
pub(crate) fn executable_has_line_tables() -> bool {
    false
}
