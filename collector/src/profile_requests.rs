//! On-demand profiles in flight, one per instance: an agent profiles one
//! request at a time (a second would queue behind the first or replace it),
//! so the collector decides here whether a new request starts a profile,
//! shares the one running, or is told when to come back. Pure: callers pass
//! `now_ms`.

use std::collections::HashMap;

/// How long after a profile's end its answer may still arrive (it rides the
/// agent's next sample).
pub const ANSWER_GRACE_MS: u64 = 5_000;

/// A profile an instance is taking for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// The request id the agent will answer with.
    pub id: u64,
    /// Sampling rate.
    pub hz: u32,
    /// Length asked for.
    pub seconds: u64,
    /// When the profile ends, ms since the epoch.
    pub ends_ms: u64,
}

/// What to do with a new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nothing runs: send the agent this request id.
    Start(Running),
    /// A profile at the same rate and at least as long runs: wait for its answer.
    Join(Running),
    /// A different profile runs: come back when it ends.
    Busy(Running),
}

/// Profiles in flight by (service, instance).
#[derive(Debug, Default)]
pub struct ProfileRequests {
    running: HashMap<(String, String), Running>,
}

impl ProfileRequests {
    /// Decides for a request of `seconds` at `hz`; `id` is used if it starts.
    pub fn claim(
        &mut self,
        service: &str,
        instance: &str,
        hz: u32,
        seconds: u64,
        id: u64,
        now_ms: u64,
    ) -> Claim {
        let key = (service.to_string(), instance.to_string());
        if let Some(r) = self.running.get(&key) {
            if now_ms < r.ends_ms + ANSWER_GRACE_MS {
                return if r.hz == hz && r.seconds >= seconds {
                    Claim::Join(*r)
                } else {
                    Claim::Busy(*r)
                };
            }
        }
        let r = Running {
            id,
            hz,
            seconds,
            ends_ms: now_ms + seconds * 1000,
        };
        self.running.insert(key, r);
        Claim::Start(r)
    }

    /// The request `id` is answered, timed out or abandoned.
    pub fn release(&mut self, service: &str, instance: &str, id: u64) {
        let key = (service.to_string(), instance.to_string());
        if self.running.get(&key).is_some_and(|r| r.id == id) {
            self.running.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_profile_is_shared_and_a_different_one_waits_its_turn() {
        let mut p = ProfileRequests::default();
        let Claim::Start(first) = p.claim("s", "i", 199, 5, 1, 1_000) else {
            panic!("nothing ran")
        };
        assert_eq!(first.ends_ms, 6_000);
        assert_eq!(p.claim("s", "i", 199, 3, 2, 1_500), Claim::Join(first));
        assert_eq!(p.claim("s", "i", 199, 10, 3, 1_500), Claim::Busy(first));
        assert_eq!(p.claim("s", "i", 99, 5, 4, 1_500), Claim::Busy(first));
        assert!(matches!(
            p.claim("s", "other", 99, 5, 5, 1_500),
            Claim::Start(_)
        ));
        p.release("s", "i", 1);
        assert!(matches!(p.claim("s", "i", 99, 5, 6, 2_000), Claim::Start(r) if r.id == 6));
    }

    #[test]
    fn an_abandoned_claim_expires_after_the_answer_grace() {
        let mut p = ProfileRequests::default();
        assert!(matches!(p.claim("s", "i", 199, 1, 1, 0), Claim::Start(_)));
        assert!(matches!(
            p.claim("s", "i", 99, 1, 2, 1_000 + ANSWER_GRACE_MS - 1),
            Claim::Busy(_)
        ));
        assert!(matches!(
            p.claim("s", "i", 99, 1, 3, 1_000 + ANSWER_GRACE_MS),
            Claim::Start(_)
        ));
    }

    #[test]
    fn releasing_someone_elses_id_changes_nothing() {
        let mut p = ProfileRequests::default();
        let Claim::Start(first) = p.claim("s", "i", 199, 5, 1, 0) else {
            panic!("nothing ran")
        };
        p.release("s", "i", 99);
        assert_eq!(p.claim("s", "i", 199, 5, 2, 10), Claim::Join(first));
    }
}
