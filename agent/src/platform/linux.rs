//! Linux: thread ids, another thread's stack by signal, per-thread CPU
//! timers and glibc's allocator figures.

pub mod stack;
pub(crate) mod timer;

/// The calling thread's OS thread id.
pub fn current_tid() -> i32 {
    // SAFETY: `gettid` has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// Hands memory the C allocator holds but does not use back to the OS
/// (glibc `malloc_trim`); a no-op on other C libraries.
pub(crate) fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `malloc_trim` takes a padding size, has no other preconditions
    // and takes the arena locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Bytes the C allocator (glibc malloc) holds from the OS: its main arena
/// plus its mmapped blocks. `None` on other C libraries.
pub(crate) fn c_allocator_held_bytes() -> Option<u64> {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: `mallinfo2` takes no arguments, returns a struct by value and is
        // thread-safe (it takes the arena locks itself). glibc ≥ 2.33 provides it.
        let info = unsafe { libc::mallinfo2() };
        Some((info.arena + info.hblkhd) as u64)
    }
    #[cfg(not(target_env = "gnu"))]
    {
        None
    }
}
