//! What an instrumented future waits on, read from the frames of the call
//! that registered its waker: the kind of wait, the service function that
//! awaited it, and the call it made. Shared by the agent (which labels its
//! captures) and the collector (which names them in a diagnosis).

use crate::frames::{frame_crate, function_name, is_user_frame};

/// What a future waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WaitKind {
    /// Reading or writing a socket (`tokio::net`, `tokio::io`).
    Socket,
    /// A timer (`tokio::time::sleep`, `interval`, `timeout`).
    Timer,
    /// A lock or a semaphore (`tokio::sync::{Mutex, RwLock, Semaphore}`).
    Lock,
    /// A channel or a notification (`mpsc`, `oneshot`, `watch`,
    /// `broadcast`, `Notify`).
    Channel,
    /// Another task (`JoinHandle`, `JoinSet`) or the blocking pool
    /// (`spawn_blocking`, `tokio::fs`).
    Join,
    /// A voluntary yield (`tokio::task::yield_now`, the coop budget).
    Yield,
    /// Anything else.
    Other,
}

/// Frame substrings of each kind, most specific first: a bounded channel's
/// `send` waits on a semaphore inside the channel, so the channel is
/// checked from the caller's side first (see [`classify`]).
const KINDS: [(WaitKind, &[&str]); 6] = [
    (
        WaitKind::Join,
        &[
            "tokio::runtime::task::join",
            "JoinHandle",
            "JoinSet",
            "tokio::fs::",
            "spawn_blocking",
        ],
    ),
    (
        WaitKind::Channel,
        &[
            "tokio::sync::mpsc",
            "tokio::sync::oneshot",
            "tokio::sync::watch",
            "tokio::sync::broadcast",
            "tokio::sync::notify",
            "futures_channel::",
            "async_channel::",
            "flume::",
        ],
    ),
    (
        WaitKind::Lock,
        &[
            "tokio::sync::batch_semaphore",
            "tokio::sync::semaphore",
            "tokio::sync::mutex",
            "tokio::sync::rwlock",
            "Semaphore",
        ],
    ),
    (
        WaitKind::Timer,
        &["tokio::time::", "tokio::runtime::time::", "TimerEntry"],
    ),
    (
        WaitKind::Socket,
        &[
            "tokio::net::",
            "tokio::io::",
            "tokio::runtime::io::",
            "ScheduledIo",
            "PollEvented",
        ],
    ),
    (
        WaitKind::Yield,
        &["yield_now", "consume_budget", "tokio::task::coop"],
    ),
];

impl WaitKind {
    /// Every kind, in [`WaitKind::name`] order of the API.
    pub const ALL: [WaitKind; 7] = [
        WaitKind::Socket,
        WaitKind::Timer,
        WaitKind::Lock,
        WaitKind::Channel,
        WaitKind::Join,
        WaitKind::Yield,
        WaitKind::Other,
    ];

    /// The kind's name on the wire and in the API.
    pub fn name(self) -> &'static str {
        match self {
            WaitKind::Socket => "socket",
            WaitKind::Timer => "timer",
            WaitKind::Lock => "lock",
            WaitKind::Channel => "channel",
            WaitKind::Join => "join",
            WaitKind::Yield => "yield",
            WaitKind::Other => "other",
        }
    }

    /// The kind of a name on the wire (`Other` for one not known).
    pub fn from_name(name: &str) -> WaitKind {
        WaitKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .unwrap_or(WaitKind::Other)
    }

    /// What the kind means, for a sentence: "a socket read or write".
    pub fn describe(self) -> &'static str {
        match self {
            WaitKind::Socket => "socket I/O",
            WaitKind::Timer => "a timer",
            WaitKind::Lock => "a lock or semaphore",
            WaitKind::Channel => "a channel",
            WaitKind::Join => "another task",
            WaitKind::Yield => "a yield",
            WaitKind::Other => "something else",
        }
    }
}

/// Where a capture waited: the service function that awaited, and the call
/// it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitPoint {
    /// The innermost frame of the service's own crate (the crate of the
    /// outermost user frame, the instrumented future's), without
    /// `{{closure}}` suffixes; `None` if no user frame is named.
    pub function: Option<String>,
    /// The call that function made, the next frame inward, if any.
    pub call: Option<String>,
}

impl AwaitPoint {
    /// "`orders::fetch_price` → `reqwest::Client::send`", or the parts
    /// known.
    pub fn label(&self) -> String {
        match (&self.function, &self.call) {
            (Some(f), Some(c)) => format!("{f} → {c}"),
            (Some(f), None) => f.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => "an unnamed await".to_string(),
        }
    }
}

/// The kind of wait frames (innermost first, from the call that registered
/// the waker out to the instrumented future) show: the first frame, from
/// the await point inward, that names a known kind. Looking from the
/// caller's side names what the service called (a bounded channel's `send`
/// is a channel, though it waits on the channel's semaphore).
///
/// ```
/// use lagscope_wire::waits::{classify, WaitKind};
/// let frames = [
///     "tokio::sync::batch_semaphore::Semaphore::poll_acquire",
///     "tokio::sync::mpsc::bounded::Sender<T>::send::{{closure}}",
///     "orders::enqueue::{{closure}}",
/// ];
/// assert_eq!(classify(&frames), WaitKind::Channel);
/// assert_eq!(classify(&["tokio::time::sleep::Sleep::poll_elapsed", "orders::backoff::{{closure}}"]), WaitKind::Timer);
/// assert_eq!(classify(&["orders::custom_future"]), WaitKind::Other);
/// ```
pub fn classify(frames: &[impl AsRef<str>]) -> WaitKind {
    let end = await_index(frames).unwrap_or(frames.len());
    frames[..end]
        .iter()
        .rev()
        .find_map(|f| kind_of(f.as_ref()))
        .or_else(|| frames.iter().find_map(|f| kind_of(f.as_ref())))
        .unwrap_or(WaitKind::Other)
}

fn kind_of(frame: &str) -> Option<WaitKind> {
    KINDS
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| frame.contains(n)))
        .map(|(kind, _)| *kind)
}

/// Crates that call a service's handlers: their frames sit between the
/// instrumented future and the service's own code (a tower layer wraps the
/// router), so they do not say whose code the await is in.
const FRAMEWORK_CRATES: [&str; 14] = [
    "axum",
    "axum_core",
    "tower",
    "tower_http",
    "tower_service",
    "hyper",
    "hyper_util",
    "tonic",
    "futures_util",
    "futures_core",
    "tracing",
    "warp",
    "actix_web",
    "poem",
];

/// The index of the await point in `frames` (innermost first): the
/// innermost frame of the crate of the outermost user frame, frameworks'
/// frames passed over where the service's own are inside them.
fn await_index(frames: &[impl AsRef<str>]) -> Option<usize> {
    let own = |f: &str| {
        is_user_frame(f) && frame_crate(f).is_some_and(|k| !FRAMEWORK_CRATES.contains(&k))
    };
    let outermost = frames
        .iter()
        .rposition(|f| own(f.as_ref()))
        .or_else(|| frames.iter().rposition(|f| is_user_frame(f.as_ref())))?;
    let krate = frame_crate(frames[outermost].as_ref())?;
    frames
        .iter()
        .position(|f| frame_crate(f.as_ref()) == Some(krate))
}

/// The await point of frames (innermost first, see [`classify`]).
///
/// ```
/// use lagscope_wire::waits::await_point;
/// let frames = [
///     "tokio::net::tcp::stream::TcpStream::poll_read_priv",
///     "<tokio::io::util::read::Read<R> as core::future::future::Future>::poll",
///     "orders::fetch_price::{{closure}}",
///     "orders::handle::{{closure}}",
/// ];
/// let at = await_point(&frames);
/// assert_eq!(at.function.as_deref(), Some("orders::fetch_price"));
/// assert_eq!(at.call.as_deref(), Some("<tokio::io::util::read::Read<R> as core::future::future::Future>::poll"));
/// assert_eq!(at.label(), "orders::fetch_price → <tokio::io::util::read::Read<R> as core::future::future::Future>::poll");
/// ```
pub fn await_point(frames: &[impl AsRef<str>]) -> AwaitPoint {
    match await_index(frames) {
        Some(i) => AwaitPoint {
            function: Some(plain(frames[i].as_ref())),
            call: i.checked_sub(1).map(|c| plain(frames[c].as_ref())),
        },
        None => AwaitPoint {
            function: None,
            call: frames.last().map(|f| plain(f.as_ref())),
        },
    }
}

/// A frame's function without its location and `{{closure}}` suffixes: an
/// `async fn`'s poll is named after the function. A name the line tables
/// could not give in full (`checkout::…`, an inlined async block) keeps its
/// `(file:line)`, which is then what locates it.
fn plain(frame: &str) -> String {
    let function = function_name(frame);
    let mut name = function;
    while let Some(outer) = name.strip_suffix("::{{closure}}") {
        name = outer;
    }
    match frame.strip_prefix(function) {
        Some(location) if name.contains('…') && !location.is_empty() => {
            format!("{name}{location}")
        }
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_real_frame_names() {
        let cases: [(&[&str], WaitKind); 6] = [
            (
                &[
                    "tokio::runtime::io::scheduled_io::ScheduledIo::poll_readiness",
                    "tokio::runtime::io::registration::Registration::poll_ready",
                    "tokio::net::tcp::stream::TcpStream::poll_read_priv",
                    "svc::fetch::{{closure}}",
                ],
                WaitKind::Socket,
            ),
            (
                &[
                    "tokio::runtime::time::entry::TimerEntry::poll_elapsed",
                    "<tokio::time::sleep::Sleep as core::future::future::Future>::poll",
                    "svc::backoff::{{closure}}",
                ],
                WaitKind::Timer,
            ),
            (
                &[
                    "<tokio::sync::batch_semaphore::Acquire as core::future::future::Future>::poll",
                    "tokio::sync::semaphore::Semaphore::acquire::{{closure}}",
                    "svc::slot::{{closure}}",
                ],
                WaitKind::Lock,
            ),
            (
                &[
                    "tokio::sync::task::atomic_waker::AtomicWaker::register_by_ref",
                    "tokio::sync::oneshot::Receiver<T>::poll",
                    "svc::reply::{{closure}}",
                ],
                WaitKind::Channel,
            ),
            (
                &[
                    "tokio::runtime::task::raw::RawTask::try_read_output",
                    "<tokio::runtime::task::join::JoinHandle<T> as core::future::future::Future>::poll",
                    "svc::fan_out::{{closure}}",
                ],
                WaitKind::Join,
            ),
            (
                &[
                    "tokio::runtime::context::defer",
                    "tokio::task::yield_now::yield_now::{{closure}}",
                ],
                WaitKind::Yield,
            ),
        ];
        for (frames, kind) in cases {
            assert_eq!(classify(frames), kind, "{frames:?}");
        }
        assert_eq!(WaitKind::from_name("lock"), WaitKind::Lock);
        assert_eq!(WaitKind::from_name("?"), WaitKind::Other);
    }

    #[test]
    fn the_await_point_is_the_services_own_innermost_frame() {
        // A library the service called (hyper) is not the await point; the
        // service's function that called it is, and the call is hyper's.
        let frames = [
            "tokio::net::tcp::stream::TcpStream::poll_read_priv",
            "hyper::client::conn::SendRequest::send_request::{{closure}}",
            "checkout::fetch_price::{{closure}} (src/main.rs:40)",
            "checkout::handle::{{closure}}",
        ];
        let at = await_point(&frames);
        assert_eq!(at.function.as_deref(), Some("checkout::fetch_price"));
        assert_eq!(
            at.call.as_deref(),
            Some("hyper::client::conn::SendRequest::send_request")
        );
        assert_eq!(classify(&frames), WaitKind::Socket);
        // An inlined async block the line tables name only by place.
        let inlined = [
            "<tokio::sync::oneshot::Receiver<T> as core::future::future::Future>::poll",
            "checkout::…::{{closure}} (src/main.rs:88)",
            "checkout::serve::{{closure}}",
        ];
        assert_eq!(
            await_point(&inlined).function.as_deref(),
            Some("checkout::… (src/main.rs:88)")
        );
        // No user frame: named by the outermost frame there is.
        let bare = ["tokio::time::sleep::Sleep::poll_elapsed"];
        assert_eq!(await_point(&bare).function, None);
        assert_eq!(
            await_point(&bare).label(),
            "tokio::time::sleep::Sleep::poll_elapsed"
        );
        assert_eq!(classify(&bare), WaitKind::Timer);
    }

    #[test]
    fn a_framework_around_the_services_code_is_passed_over() {
        // An axum route behind lagscope's layer: the router's frames are
        // outermost, the handler's inside them.
        let frames = [
            "<tokio::sync::batch_semaphore::Acquire as core::future::future::Future>::poll",
            "orders::…::{{closure}} (src/main.rs:52)",
            "orders::…::{{closure}} (src/main.rs:41)",
            "<F as axum::handler::Handler<(M,T1),S>>::call::{{closure}}",
            "<futures_util::future::future::map::Map<Fut,F> as core::future::future::Future>::poll",
            "<axum::routing::route::RouteFuture<E> as core::future::future::Future>::poll",
        ];
        assert_eq!(
            await_point(&frames).function.as_deref(),
            Some("orders::… (src/main.rs:52)")
        );
        assert_eq!(classify(&frames), WaitKind::Lock);
        // Only the framework's own frames: they are what there is.
        let framework = [
            "tokio::net::tcp::stream::TcpStream::poll_read_priv",
            "hyper::proto::h1::dispatch::Dispatcher::poll_catch",
        ];
        assert_eq!(
            await_point(&framework).function.as_deref(),
            Some("hyper::proto::h1::dispatch::Dispatcher::poll_catch")
        );
    }
}
