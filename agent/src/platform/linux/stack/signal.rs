//! Installing a signal handler beside the host's: on a free real-time
//! signal, never over a handler someone else installed, and checked later
//! for a takeover.

use super::decide_frame_walk;

/// Why lagscope could not put a handler on a signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// `sigaction` could not read the signal's disposition.
    #[error("cannot query signal {0}")]
    Query(i32),
    /// Someone else handles the signal; lagscope does not replace a handler.
    #[error("signal {signal} ({name}) already has a handler; lagscope will not replace it{hint}")]
    Taken {
        /// The signal.
        signal: i32,
        /// Its name (`SIGRTMIN+3`).
        name: String,
        /// What the user can do, ending the message.
        hint: &'static str,
    },
    /// Every real-time signal from the first lagscope may use is handled.
    #[error("every real-time signal from SIGRTMIN+{first} to SIGRTMAX already has a handler; lagscope will not replace one{hint}")]
    NoneFree {
        /// Offset from `SIGRTMIN` of the first signal tried.
        first: i32,
        /// What the user can do, ending the message.
        hint: &'static str,
    },
    /// `sigaction` refused to install the handler.
    #[error("cannot install a handler for signal {0}")]
    Install(i32),
    /// The host installed its own handler over lagscope's after it started.
    #[error("signal {0} was taken over by another handler after lagscope installed its own; stack capture is off")]
    TakenOver(i32),
}

/// A signal handler's signature, as `sigaction` stores it.
pub(crate) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// What `signal` is set to now: `SIG_DFL`, `SIG_IGN` or a handler's address.
pub(super) fn disposition(signal: i32) -> Result<usize, SignalError> {
    // SAFETY: a zeroed sigaction is a valid "query" argument; sigaction only
    // writes the current disposition into `old`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying with a null new action changes nothing.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } != 0 {
        return Err(SignalError::Query(signal));
    }
    Ok(old.sa_sigaction)
}

/// Whether `signal` still runs `handler` (a host may install its own over
/// it at any time).
pub(crate) fn is_ours(signal: i32, handler: Handler) -> bool {
    disposition(signal).is_ok_and(|d| d == handler as usize)
}

/// Installs `handler` on the first real-time signal from `SIGRTMIN + first`
/// up that nobody handles (or that already runs `handler`): a host that uses
/// lagscope's usual signal for itself keeps it, and lagscope moves aside.
/// `hint` ends the message when none is free.
pub(crate) fn install_free(
    first: i32,
    handler: Handler,
    hint: &'static str,
) -> Result<i32, SignalError> {
    let (low, high) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    for signal in low + first..=high {
        let current = disposition(signal)?;
        if current == libc::SIG_DFL || current == handler as usize {
            let name = format!("SIGRTMIN+{}", signal - low);
            return install_handler(signal, handler, &name, hint);
        }
    }
    Err(SignalError::NoneFree { first, hint })
}

/// Installs `handler` on `signal` (called `name` in messages), refusing to
/// replace a handler someone else installed; `hint` ends the refusal.
/// `handler` must be async-signal-safe.
pub(crate) fn install_handler(
    signal: i32,
    handler: Handler,
    name: &str,
    hint: &'static str,
) -> Result<i32, SignalError> {
    decide_frame_walk();
    let current = disposition(signal)?;
    if current != libc::SIG_DFL && current != handler as usize {
        return Err(SignalError::Taken {
            signal,
            name: name.into(),
            hint,
        });
    }
    // SAFETY: as above, zeroed is a valid starting point; every field we rely
    // on is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    // Real-time signals wait while the handler runs, so lagscope's handlers
    // (the stall capture's, the profiler's) never nest: each runs on the
    // thread's small alternate signal stack (8 KiB on Rust threads), which
    // has room for one.
    // SAFETY: `sa_mask` is a valid sigset_t to empty and add to.
    unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        for rt in libc::SIGRTMIN()..=libc::SIGRTMAX() {
            libc::sigaddset(&mut action.sa_mask, rt);
        }
    }
    // SAFETY: the caller passes an async-signal-safe handler; it is a plain
    // function, so it lives forever.
    if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
        return Err(SignalError::Install(signal));
    }
    Ok(signal)
}
