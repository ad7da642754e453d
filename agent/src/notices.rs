//! What the agent must tell the operator after it started: a part that
//! stopped working (a signal the host took over, say).
//!
//! A notice is reported through `tracing` (target `lagscope`) when it is
//! said, and carried once by the next sample to the collector, which shows
//! it on the instance in the dashboard. At most [`MAX_PENDING`] wait for a
//! sample; later ones are only traced.

use std::sync::Mutex;

/// Notices waiting for the next sample.
pub(crate) const MAX_PENDING: usize = 16;

static PENDING: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Says `notice` once: traced now, sent with the next sample.
pub(crate) fn say(notice: String) {
    tracing::warn!(target: "lagscope", "{notice}");
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    if pending.len() < MAX_PENDING {
        pending.push(notice);
    }
}

/// The notices said since the last call.
pub(crate) fn take() -> Vec<String> {
    std::mem::take(&mut *PENDING.lock().unwrap_or_else(|p| p.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_taken_once_and_the_queue_is_bounded() {
        for i in 0..MAX_PENDING + 5 {
            say(format!("notice {i}"));
        }
        let taken = take();
        assert_eq!(taken.len(), MAX_PENDING);
        assert_eq!(taken[0], "notice 0");
        assert!(take().is_empty());
    }
}
