//! Captures and the culprit: a stalled thread's stack taken and named, and
//! which of its frames blocks (the innermost user frame, else the call its
//! task's poll made).

use super::*;

/// Adds one capture to a stall, keeping distinct stacks most frequent first.
pub(super) fn add_stack(event: &mut StallEvent, frames: Vec<String>) {
    if frames.is_empty() {
        return;
    }
    let full = event.stacks.len() >= DISTINCT_STACKS;
    match event.stacks.iter_mut().find(|s| s.frames == frames) {
        Some(s) => s.count += 1,
        // Too many distinct stacks: count the capture on the rarest one.
        None if full => {
            if let Some(last) = event.stacks.last_mut() {
                last.count += 1;
            }
        }
        None => event.stacks.push({
            let mut stall_stack = StallStack::default();
            stall_stack.frames = frames;
            stall_stack.count = 1;
            stall_stack
        }),
    }
    event.stacks.sort_by_key(|s| std::cmp::Reverse(s.count));
    event.blocking_function = culprit_or_callee(&event.stacks);
}

/// The blocking function of a stall's captures (most frequent first): the
/// innermost user frame of the most frequent stack that has one — unless
/// another capture shows a deeper user frame on top of the same chain. A
/// capture that stops inside a leaf without a frame pointer (the vDSO's
/// `clock_gettime`, a libc routine) loses that leaf's caller; a capture
/// that did not stop there names it.
pub(super) fn culprit(stacks: &[StallStack]) -> Option<String> {
    let chain = stacks.iter().find_map(|s| {
        let user = s.frames.iter().position(|f| is_user_frame(f))?;
        Some(&s.frames[user..])
    })?;
    stacks
        .iter()
        .filter(|s| s.frames.len() > chain.len() && s.frames.ends_with(chain))
        .find_map(|s| blocking_function(&s.frames[..s.frames.len() - chain.len()]))
        .or_else(|| blocking_function(chain))
}

/// The call a task's poll made, for a stack with no user frame: the
/// outermost frame of std, libc or another library inside tokio's task
/// poll (`std::thread::sleep`, a `Mutex`'s wait, a file read). A small
/// async block is inlined into tokio's poll, so the code that called it
/// has no frame of its own. `None` outside a task's poll, or when the poll
/// is the innermost frame (the task's own code is running).
pub(super) fn poll_callee(stack: &[String]) -> Option<usize> {
    let poll = stack
        .iter()
        .position(|f| f.starts_with("tokio::runtime::task::"))?;
    stack[..poll].iter().rposition(|f| {
        lagscope_wire::frames::frame_crate(f)
            .is_some_and(|k| !matches!(k, "tokio" | "lagscope" | "core" | "tracing"))
    })
}

/// What names a stall's stack: its innermost user frame, else the call
/// its task's poll made ([`poll_callee`]).
pub(super) fn culprit_or_callee(stacks: &[StallStack]) -> Option<String> {
    culprit(stacks).or_else(|| {
        stacks
            .iter()
            .find_map(|s| poll_callee(&s.frames).map(|i| s.frames[i].clone()))
    })
}

/// The user frames a thread still in this stall would show: those of its
/// captures below each capture's outermost user frame ("deep"), and those
/// outermost frames — the task's own future, which other polls of the same
/// kind of task share ("outer"). A capture with one user frame has it in
/// both.
pub(super) fn stall_frames(stacks: &[StallStack]) -> (Vec<&str>, Vec<&str>) {
    pub(super) fn add<'a>(to: &mut Vec<&'a str>, f: &'a str) {
        if !to.contains(&f) {
            to.push(f);
        }
    }
    let (mut deep, mut outer): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for s in stacks {
        let user: Vec<&str> = s
            .frames
            .iter()
            .map(String::as_str)
            .filter(|f| is_user_frame(f))
            .collect();
        let Some((&last, inner)) = user.split_last() else {
            if let Some(i) = poll_callee(&s.frames) {
                add(&mut deep, &s.frames[i]);
            }
            continue;
        };
        add(&mut outer, last);
        let inner = if inner.is_empty() { &user[..] } else { inner };
        for &f in inner {
            add(&mut deep, f);
        }
    }
    (deep, outer)
}

/// The symbolized stack of thread `tid`, innermost first.
///
/// The capture is unwound with the binaries' call-frame information, so it
/// goes through code built without frame pointers; a capture that still
/// stops short (code without CFI, such as the vDSO, or a stack deeper than
/// the copy where frame pointers are missing too) is retried a few times,
/// and the best one kept.
pub(super) fn take_stack(tid: i32) -> Option<Vec<String>> {
    take_stack_and_task(tid, stack::Ask::Stack).map(|(frames, _)| frames)
}

/// Like [`take_stack`], with what `ask` asks of the poll the thread was in
/// (see [`stack::capture_with_task`](crate::platform::stack) for when it
/// may be asked). Only the first attempt marks the poll: a later one would
/// find its own mark.
pub(super) fn take_stack_and_task(
    tid: i32,
    ask: stack::Ask,
) -> Option<(Vec<String>, stack::Polled)> {
    if tid == 0 {
        return None;
    }
    // While the tables are read, naming one capture waits for them: a second
    // attempt would show what the thread does after the wait (parked, once
    // a short stall ended), not what it did when first captured.
    let attempts = if stack::is_warm() {
        CAPTURE_ATTEMPTS
    } else {
        1
    };
    let mut best: Option<(u8, Vec<String>, stack::Polled)> = None;
    let mut first: Option<stack::Polled> = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let ask = match ask {
            stack::Ask::TaskAndMark if attempt > 0 => stack::Ask::Task,
            ask => ask,
        };
        let Ok((addresses, polled)) =
            stack::capture_with_task(tid, CAPTURE_TIMEOUT, stack::CAPTURE_COPY_BYTES, ask)
        else {
            break;
        };
        let first = *first.get_or_insert(polled);
        // A later attempt in another task was taken in another poll than
        // the one the first attempt marked.
        let polled = stack::Polled {
            mark: if polled.task == first.task {
                first.mark
            } else {
                stack::PollMark::New
            },
            ..polled
        };
        let frames = frame_names(&addresses);
        let quality = capture_quality(&frames);
        if best.as_ref().is_none_or(|(q, _, _)| quality > *q) {
            best = Some((quality, frames, polled));
        }
        if quality == GOOD_CAPTURE {
            break;
        }
    }
    best.map(|(_, frames, polled)| (frames, polled))
}

/// Stack bytes of a brief capture: the innermost frames, where a parked
/// thread's `park` calls are.
pub(super) const BRIEF_COPY: usize = 16 * 1024;

/// The innermost frames of thread `tid`: enough to tell whether it is parked.
pub(super) fn take_brief_stack(tid: i32) -> Option<Vec<String>> {
    let addresses = stack::capture_up_to(tid, CAPTURE_TIMEOUT, BRIEF_COPY).ok()?;
    Some(frame_names(&addresses))
}

/// The names of a captured stack's frames, at most [`STACK_DEPTH`].
pub(super) fn frame_names(addresses: &[usize]) -> Vec<String> {
    stack::symbolize(addresses)
        .into_iter()
        .take(STACK_DEPTH)
        .map(|f| f.function.unwrap_or_else(|| format!("{:#x}", f.address)))
        .collect()
}

/// A capture that shows where the thread is: parked, or in user code with
/// the caller of its innermost frame kept.
pub(super) const GOOD_CAPTURE: u8 = 3;
/// A capture in user code that stopped in an unnamed library routine: the
/// routine's caller is probably missing.
pub(super) const LOST_CALLER: u8 = 1;

/// How much a capture can be trusted to name what the thread runs: 0 (no
/// user frame, not parked), [`LOST_CALLER`], or [`GOOD_CAPTURE`].
pub(super) fn capture_quality(frames: &[String]) -> u8 {
    // Caught inside the CPU profiler's signal handler, the capture has lost
    // the interrupted function.
    if frames.iter().any(|f| f.starts_with("lagscope::profiler::")) {
        return 0;
    }
    if is_parked(frames) {
        return GOOD_CAPTURE;
    }
    if blocking_function(frames).is_none() && poll_callee(frames).is_none() {
        return 0;
    }
    // Stopped in an unnamed library routine (`libc.so.6+0x…`) or at a bare
    // address: the frame that called it may be lost.
    match frames.first() {
        Some(leaf) if lagscope_wire::frames::is_unnamed(leaf) => LOST_CALLER,
        _ => GOOD_CAPTURE,
    }
}

/// The innermost frame that belongs to user code (see
/// [`lagscope_wire::frames::is_user_frame`]).
pub(crate) fn blocking_function(stack: &[String]) -> Option<String> {
    stack.iter().find(|name| is_user_frame(name)).cloned()
}

/// Whether a stack is a thread of tokio's blocking pool (idle, or running
/// `spawn_blocking` work), not a worker: tokio names both `tokio-rt-worker`
/// and starts workers through the pool too, but only a worker's stack has
/// the scheduler in it.
pub(super) fn is_blocking_pool_thread(stack: &[String]) -> bool {
    stack
        .iter()
        .any(|f| f.starts_with("tokio::runtime::blocking::pool"))
        && !stack
            .iter()
            .any(|f| f.starts_with("tokio::runtime::scheduler::"))
}

/// Whether a stack is a worker waiting for work (in tokio's park).
pub(super) fn is_parked(stack: &[String]) -> bool {
    stack
        .iter()
        .any(|f| f.starts_with("tokio::runtime::") && f.contains("::park"))
}
