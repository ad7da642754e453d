//! Linux: thread ids, another thread's stack by signal, per-thread CPU
//! timers and glibc's allocator figures.

#[cfg(target_arch = "x86_64")]
pub(crate) mod mapped;
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

/// glibc malloc's figures, `None` on other C libraries. `mallinfo2` walks
/// every free chunk while it holds each arena's lock, so on a fragmented
/// heap it costs milliseconds; read it sparingly.
pub(crate) fn c_allocator() -> Option<super::CAllocator> {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: `mallinfo2` takes no arguments, returns a struct by value and is
        // thread-safe (it takes the arena locks itself). glibc ≥ 2.33 provides it.
        let info = unsafe { libc::mallinfo2() };
        Some(super::CAllocator {
            held: (info.arena + info.hblkhd) as u64,
            in_use: (info.uordblks + info.hblkhd) as u64,
        })
    }
    #[cfg(not(target_env = "gnu"))]
    {
        None
    }
}

/// What tests need of the C library, kept with the other unsafe code.
#[cfg(test)]
pub(crate) mod test_support {
    /// Bytes from C `malloc`, written to so they are resident, freed on drop:
    /// what a C library's allocations look like to lagscope.
    pub(crate) struct CMalloc {
        ptr: *mut libc::c_void,
    }

    /// `bytes` from `malloc`, touched.
    pub(crate) fn c_malloc_touched(bytes: usize) -> CMalloc {
        // SAFETY: malloc has no preconditions; null is checked below.
        let ptr = unsafe { libc::malloc(bytes) };
        assert!(!ptr.is_null(), "malloc({bytes}) failed");
        // SAFETY: `ptr` points to `bytes` writable bytes we own.
        unsafe { std::ptr::write_bytes(ptr.cast::<u8>(), 0x5a, bytes) };
        CMalloc { ptr }
    }

    impl Drop for CMalloc {
        fn drop(&mut self) {
            // SAFETY: `ptr` came from malloc and is freed once.
            unsafe { libc::free(self.ptr) };
        }
    }
}
