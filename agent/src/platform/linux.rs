//! Linux: thread ids, another thread's stack by signal, per-thread CPU
//! timers and glibc's allocator figures.

pub(crate) mod mapped;
pub(crate) mod sched;
pub mod stack;
pub(crate) mod timer;

/// The calling thread's OS thread id.
pub fn current_tid() -> i32 {
    // SAFETY: `gettid` has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// Sends `signal` to thread `tid` of this process (`tgkill`); whether it
/// was sent. The caller has a handler installed for `signal`.
pub(crate) fn signal_thread(tid: i32, signal: i32) -> bool {
    // SAFETY: tgkill only sends a signal, to a thread of this process.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::c_long::from(tid),
            libc::c_long::from(signal),
        )
    };
    sent == 0
}

/// Whether this crate was compiled keeping frame pointers (so the user's
/// crate most likely was too: both take the same `RUSTFLAGS`): on x86_64,
/// whether a function that needs no frame still opens with `push rbp;
/// mov rbp, rsp`.
pub(crate) fn build_keeps_frame_pointers() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let code = frameless as fn(u64) -> u64 as *const u8;
        let mut first = [0u8; 4];
        // SAFETY: `code` is the entry of a function of this binary, mapped
        // readable and executable for the life of the process; every
        // function is longer than 4 bytes of code (a return alone is 1
        // byte, but `frameless` computes before it returns).
        unsafe { std::ptr::copy_nonoverlapping(code, first.as_mut_ptr(), 4) };
        first == [0x55, 0x48, 0x89, 0xe5]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A leaf that needs no stack frame: compiled without frame pointers it
/// begins with its computation, with them with the frame setup.
#[inline(never)]
fn frameless(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

/// Whether the executable carries DWARF line tables (`debug =
/// "line-tables-only"` or more), which name inlined functions.
pub(crate) fn executable_has_line_tables() -> bool {
    stack::executable_has_line_tables()
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
        // Opaque to the optimizer: in a release build it may otherwise pair
        // this malloc with the free in `drop` and remove both.
        CMalloc {
            ptr: std::hint::black_box(ptr),
        }
    }

    impl Drop for CMalloc {
        fn drop(&mut self) {
            // SAFETY: `ptr` came from malloc and is freed once.
            unsafe { libc::free(self.ptr) };
        }
    }
}

#[cfg(test)]
mod build_tests {
    #[test]
    fn frame_pointers_are_seen_as_this_build_has_them() {
        // The workspace builds with `-C force-frame-pointers=yes`
        // (.cargo/config.toml, and CI's stable pass keeps it).
        #[cfg(target_arch = "x86_64")]
        assert!(super::build_keeps_frame_pointers());
        assert_eq!(super::frameless(0), 0);
    }

    #[test]
    fn test_binaries_have_line_tables() {
        // The default test profile has full debuginfo.
        assert!(super::executable_has_line_tables());
    }
}
