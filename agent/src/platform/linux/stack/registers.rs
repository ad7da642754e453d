//! Registers: the interrupted code's, from a signal handler's context, and
//! the calling thread's own, read at one instruction.

/// The calling thread's instruction, stack and frame pointers, read at one
/// instruction: where an unwind of its own stack starts.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnRegisters {
    pub(crate) pc: usize,
    pub(crate) sp: usize,
    pub(crate) fp: usize,
}

/// Reads [`OwnRegisters`] where it is called: always inlined, so the
/// instruction and stack pointer are the caller's own.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn own_registers() -> OwnRegisters {
    let (pc, sp, fp): (usize, usize, usize);
    // SAFETY: reads three registers at one instruction into locals; touches
    // no memory, the stack or the flags.
    unsafe {
        std::arch::asm!(
            "lea {pc}, [rip]",
            "mov {sp}, rsp",
            "mov {fp}, rbp",
            pc = out(reg) pc,
            sp = out(reg) sp,
            fp = out(reg) fp,
            options(nomem, nostack, preserves_flags),
        );
    }
    OwnRegisters { pc, sp, fp }
}

/// (program counter, frame pointer, stack pointer) of the interrupted code.
#[allow(unused_variables)]
pub(super) fn registers(context: *mut libc::c_void) -> Option<(usize, usize, usize)> {
    if context.is_null() {
        return None;
    }
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        // SAFETY: with SA_SIGINFO the kernel passes a valid ucontext_t.
        let uc = unsafe { &*(context as *const libc::ucontext_t) };
        let g = &uc.uc_mcontext.gregs;
        Some((
            g[libc::REG_RIP as usize] as usize,
            g[libc::REG_RBP as usize] as usize,
            g[libc::REG_RSP as usize] as usize,
        ))
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        // SAFETY: with SA_SIGINFO the kernel passes a valid ucontext_t.
        let uc = unsafe { &*(context as *const libc::ucontext_t) };
        let m = &uc.uc_mcontext;
        Some((m.pc as usize, m.regs[29] as usize, m.sp as usize))
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        None
    }
}
