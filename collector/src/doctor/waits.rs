//! Where requests wait, by await point, for a healthy runtime whose requests
//! are slow; and requests that never finish (`stuck-requests`).

use lagscope_wire::api::TaskWaits;
use lagscope_wire::waits::{await_point, WaitKind};
use lagscope_wire::StuckRequest;

use super::*;

/// "58 % socket I/O in `orders::fetch_price`, 27 % a lock or semaphore in
/// `orders::acquire_slot`": the await points of `task` with at least
/// [`WAIT_POINT_SHARE`] of its waiting, most first (at most 4), and the
/// kinds among them.
pub(super) fn wait_points(w: &Window, task: &str) -> Option<(String, Vec<WaitKind>)> {
    let waits: &TaskWaits = w.waits.iter().find(|t| t.task == task)?;
    let mut parts = Vec::new();
    let mut kinds = Vec::new();
    for site in waits
        .sites
        .iter()
        .filter(|s| s.share >= WAIT_POINT_SHARE)
        .take(4)
    {
        let kind = WaitKind::from_name(&site.kind);
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
        let at = await_point(&site.frames);
        let place = match (&at.function, &at.call) {
            (Some(f), _) => format!(" in {f}"),
            (None, Some(c)) => format!(" at {c}"),
            (None, None) => String::new(),
        };
        parts.push(format!(
            "{:.0} % {}{place}",
            site.share * 100.0,
            kind.describe()
        ));
    }
    (!parts.is_empty()).then(|| (parts.join(", "), kinds))
}

/// What to do about waiting of these kinds.
pub(super) fn advice_for(kinds: &[WaitKind]) -> String {
    let advice: Vec<&str> = kinds
        .iter()
        .map(|k| match k {
            WaitKind::Socket => {
                "for socket waits, bound each downstream call with tokio::time::timeout, reuse \
                 connections (a pooled client) and look at the downstream's own latency"
            }
            WaitKind::Timer => {
                "for timers, check sleeps and retry back-offs on the request path (bounded \
                 retries, shorter back-off)"
            }
            WaitKind::Lock => {
                "for locks and semaphores, size the pool or permits to the load and do not hold \
                 a guard across an .await"
            }
            WaitKind::Channel => {
                "for channels, look at the task on the other end: it answers slowly or its \
                 queue is full"
            }
            WaitKind::Join => {
                "for other tasks, look at what the joined task (or spawn_blocking job) waits on"
            }
            WaitKind::Yield => "yields are the request's own choice",
            WaitKind::Other => {
                "for other waits, the await point's frames name the future that waited"
            }
        })
        .collect();
    advice.join("; ")
}

/// `stuck-requests`: futures pending without a wake past the agent's
/// threshold, by name, with where they wait and what usually causes it.
pub(super) fn stuck_requests(w: &Window) -> Option<Finding> {
    if w.stuck.is_empty() {
        return None;
    }
    let oldest = w.stuck.iter().map(|s| s.pending_ms).max().unwrap_or(0);
    // The name with the most stuck, and its most common await point.
    let mut by_name: BTreeMap<&str, Vec<&StuckRequest>> = BTreeMap::new();
    for s in &w.stuck {
        by_name.entry(&s.task).or_default().push(s);
    }
    let (name, stuck) = by_name
        .iter()
        .max_by_key(|(_, v)| v.len())
        .map(|(n, v)| (*n, v.clone()))?;
    let mut points: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in &stuck {
        if !s.frames.is_empty() {
            *points
                .entry((s.kind.clone(), await_point(&s.frames).label()))
                .or_default() += 1;
        }
    }
    let top_point = points.iter().max_by_key(|(_, n)| **n);
    let at = match top_point {
        Some(((kind, label), _)) => format!(
            ", awaiting {} at {label}",
            WaitKind::from_name(kind).describe()
        ),
        None => String::new(),
    };
    let kind = top_point.map(|((k, _), _)| WaitKind::from_name(k));
    let culprit = top_point
        .and_then(|_| stuck.iter().find(|s| !s.frames.is_empty()))
        .and_then(|s| await_point(&s.frames).function);
    let mut evidence: Vec<String> = by_name
        .iter()
        .map(|(n, v)| {
            format!(
                "{} request(s) to {n} pending without a wake, the oldest for {}",
                v.len(),
                seconds(v.iter().map(|s| s.pending_ms).max().unwrap_or(0))
            )
        })
        .collect();
    for ((kind, label), n) in &points {
        evidence.push(format!("{n} awaiting {kind} at {label}"));
    }
    let cause = match kind {
        Some(WaitKind::Channel) => {
            "a channel whose sender is kept but never used (held in a map, a struct or another \
             task that ended without sending), so the receiver is never woken. Send on every \
             path or drop the sender so the receiver sees the channel closed, and bound the \
             wait with tokio::time::timeout"
        }
        Some(WaitKind::Lock) => {
            "two tasks waiting on each other (locks taken in different orders), or a guard or \
             permit held by a task that is itself stuck. Take locks in one order, never hold a \
             guard across an .await on another lock, and bound the wait with tokio::time::timeout"
        }
        Some(WaitKind::Socket) => {
            "a downstream that accepted the request and never answers. Bound every call with \
             tokio::time::timeout and set the client's read timeout"
        }
        Some(WaitKind::Join) => {
            "the task it joins is itself stuck or never ends. Look at that task's await point"
        }
        Some(WaitKind::Timer) => "a sleep or deadline far longer than intended",
        _ => {
            "a lost wakeup (a hand-written future that returned Pending without registering its \
             waker), or a wait on something that never happens. Bound the wait with \
             tokio::time::timeout"
        }
    };
    Some(Finding {
        category: Category::StuckRequests,
        severity: if w.stuck.len() >= STUCK_CRITICAL {
            Severity::Critical
        } else {
            Severity::Warning
        },
        // Below a blocked or saturated runtime of the same severity: a
        // runtime that does not poll also leaves futures pending.
        score: w.stuck.len() as f64 / 1000.0,
        summary: format!(
            "{} request(s) to {name} never finish: pending without a wake for up to {}{at}",
            stuck.len(),
            seconds(oldest)
        ),
        evidence,
        recommendation: format!("The usual cause is {cause}."),
        culprit,
    })
}

/// "12.3 s".
fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lagscope_wire::api::WaitShare;

    fn share(kind: WaitKind, frames: &[&str], share: f64) -> WaitShare {
        WaitShare {
            kind: kind.name().into(),
            await_point: String::new(),
            frames: frames.iter().map(|f| f.to_string()).collect(),
            wait_us: (share * 1e6) as u64,
            share,
            waits: 10,
        }
    }

    #[test]
    fn await_points_are_named_with_their_shares_and_kinds() {
        let w = Window {
            waits: vec![TaskWaits {
                task: "GET /orders/{id}".into(),
                wait_us: 1_000_000,
                sites: vec![
                    share(
                        WaitKind::Socket,
                        &["tokio::net::x", "orders::fetch_price"],
                        0.58,
                    ),
                    share(
                        WaitKind::Lock,
                        &["tokio::sync::semaphore::x", "orders::acquire_slot"],
                        0.27,
                    ),
                    share(
                        WaitKind::Timer,
                        &["tokio::time::x", "orders::backoff"],
                        0.13,
                    ),
                    share(WaitKind::Other, &["orders::rare"], 0.02),
                ],
            }],
            ..Window::default()
        };
        let (text, kinds) = wait_points(&w, "GET /orders/{id}").expect("points");
        assert_eq!(
            text,
            "58 % socket I/O in orders::fetch_price, 27 % a lock or semaphore in \
             orders::acquire_slot, 13 % a timer in orders::backoff"
        );
        assert_eq!(kinds, [WaitKind::Socket, WaitKind::Lock, WaitKind::Timer]);
        assert!(advice_for(&kinds).contains("tokio::time::timeout"));
        assert_eq!(wait_points(&w, "GET /other"), None);
    }

    #[test]
    fn stuck_requests_name_where_they_wait_and_the_usual_cause() {
        let mut w = Window::default();
        assert!(stuck_requests(&w).is_none());
        w.stuck = (0..3)
            .map(|i| {
                let mut s = StuckRequest::default();
                s.task = "GET /pay".into();
                s.pending_ms = 12_000 + i;
                s.kind = "channel".into();
                s.frames = vec![
                    "tokio::sync::oneshot::Receiver<T>::poll".into(),
                    "pay::await_confirmation::{{closure}}".into(),
                ];
                s
            })
            .collect();
        let f = stuck_requests(&w).expect("a finding");
        assert_eq!(f.category, Category::StuckRequests);
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.summary.contains("3 request(s) to GET /pay never finish"),
            "{}",
            f.summary
        );
        assert!(
            f.summary.contains("a channel at pay::await_confirmation"),
            "{}",
            f.summary
        );
        assert!(f.recommendation.contains("sender"), "{}", f.recommendation);
        assert_eq!(f.culprit.as_deref(), Some("pay::await_confirmation"));
    }
}
