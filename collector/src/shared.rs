//! State shared by the collector's gRPC and HTTP sides.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use lagscope_wire::pb::CollectorMessage;
use tokio::sync::mpsc;
use tonic::Status;

use crate::listener::ConnectionStats;
use crate::profile_requests::{Claim, ProfileRequests};
use crate::store::Store;

/// The sending half of one agent's response stream.
pub type SessionSender = mpsc::Sender<Result<CollectorMessage, Status>>;

/// The store behind a short lock, and the collector's token.
#[derive(Debug)]
pub struct Shared {
    store: Mutex<Store>,
    /// Token agents and API clients must present, if any.
    pub token: Option<String>,
    /// Fixed "now" for a replayed recording (health and windows are judged at
    /// its end, not at wall-clock time).
    pub frozen_now_ms: Option<u64>,
    /// Open sessions by (service, instance), for sending commands to agents.
    sessions: Mutex<HashMap<(String, String), (u64, SessionSender)>>,
    next_session: AtomicU64,
    next_request: AtomicU64,
    forwarder: std::sync::OnceLock<std::sync::Arc<crate::otlp::forward::Forwarder>>,
    pyroscope: std::sync::OnceLock<std::sync::Arc<crate::pyroscope::Pusher>>,
    /// On-demand profiles in flight.
    profile_requests: Mutex<ProfileRequests>,
    /// Connections to the HTTP port.
    pub http_connections: Arc<ConnectionStats>,
    /// Connections to the agents' (gRPC) port.
    pub grpc_connections: Arc<ConnectionStats>,
    /// Bumped each time the store's data changes, for `GET /api/v1/updates`.
    updates: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// Tells subscribers the store's data changed (cheap: waiters are woken,
    /// nothing is queued).
    pub fn note_update(&self) {
        self.updates.send_modify(|generation| *generation += 1);
    }

    /// Follows the store's changes: the value is a generation number.
    pub fn updates(&self) -> tokio::sync::watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Wraps `store`.
    pub fn new(store: Store, token: Option<String>) -> Self {
        Shared {
            store: Mutex::new(store),
            token,
            frozen_now_ms: None,
            sessions: Mutex::default(),
            next_session: AtomicU64::new(0),
            next_request: AtomicU64::new(1),
            forwarder: std::sync::OnceLock::new(),
            pyroscope: std::sync::OnceLock::new(),
            updates: tokio::sync::watch::channel(0).0,
            profile_requests: Mutex::default(),
            http_connections: Arc::default(),
            grpc_connections: Arc::default(),
        }
    }

    /// Wraps a store replayed from a recording that ended at `end_ms`.
    pub fn frozen(store: Store, end_ms: u64) -> Self {
        Shared {
            store: Mutex::new(store),
            token: None,
            frozen_now_ms: Some(end_ms),
            sessions: Mutex::default(),
            next_session: AtomicU64::new(0),
            next_request: AtomicU64::new(1),
            forwarder: std::sync::OnceLock::new(),
            pyroscope: std::sync::OnceLock::new(),
            updates: tokio::sync::watch::channel(0).0,
            profile_requests: Mutex::default(),
            http_connections: Arc::default(),
            grpc_connections: Arc::default(),
        }
    }

    /// Pushes every stored agent sample's profile windows through `pusher`
    /// (once).
    pub fn set_pyroscope(&self, pusher: std::sync::Arc<crate::pyroscope::Pusher>) {
        let _ = self.pyroscope.set(pusher);
    }

    /// The Pyroscope pusher, if `--pyroscope` is on.
    pub fn pyroscope(&self) -> Option<&crate::pyroscope::Pusher> {
        self.pyroscope.get().map(|p| &**p)
    }

    /// Forwards every stored agent sample through `forwarder` (once).
    pub fn set_forwarder(&self, forwarder: std::sync::Arc<crate::otlp::forward::Forwarder>) {
        let _ = self.forwarder.set(forwarder);
    }

    /// The OTLP forwarder, if `--otlp-export` is on.
    pub fn forwarder(&self) -> Option<&crate::otlp::forward::Forwarder> {
        self.forwarder.get().map(|f| &**f)
    }

    /// A fresh id for a command that expects an answer (a profile request).
    pub fn next_request_id(&self) -> u64 {
        self.next_request.fetch_add(1, Relaxed)
    }

    /// Decides whether a profile request for an instance starts a profile,
    /// shares the running one or must wait (see [`ProfileRequests`]).
    pub(crate) fn claim_profile(
        &self,
        service: &str,
        instance: &str,
        hz: u32,
        seconds: u64,
    ) -> Claim {
        let id = self.next_request_id();
        let now = self.now_ms();
        self.profile_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .claim(service, instance, hz, seconds, id, now)
    }

    /// The profile request `id` is over (answered, timed out or abandoned).
    pub(crate) fn release_profile(&self, service: &str, instance: &str, id: u64) {
        self.profile_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(service, instance, id);
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<(String, String), (u64, SessionSender)>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an agent's open session; a reconnect replaces the old one.
    /// Returns an id for [`close_session`](Self::close_session).
    pub fn open_session(&self, service: &str, instance: &str, tx: SessionSender) -> u64 {
        let id = self.next_session.fetch_add(1, Relaxed);
        self.sessions()
            .insert((service.to_string(), instance.to_string()), (id, tx));
        id
    }

    /// Forgets a session, unless a newer one of the same instance replaced it
    /// (an agent can reconnect before the collector notices its old stream
    /// died). Returns whether `id` was the instance's current session.
    pub fn close_session(&self, service: &str, instance: &str, id: u64) -> bool {
        let mut sessions = self.sessions();
        let key = (service.to_string(), instance.to_string());
        let current = sessions.get(&key).is_some_and(|(c, _)| *c == id);
        if current {
            sessions.remove(&key);
        }
        current
    }

    /// Whether the instance has an open session now.
    pub fn is_connected(&self, service: &str, instance: &str) -> bool {
        self.sessions()
            .contains_key(&(service.to_string(), instance.to_string()))
    }

    /// Queues a command for a connected agent; `false` if it is not connected
    /// or its stream is backed up.
    pub fn send_command(&self, service: &str, instance: &str, message: CollectorMessage) -> bool {
        let sessions = self.sessions();
        let Some((_, tx)) = sessions.get(&(service.to_string(), instance.to_string())) else {
            return false;
        };
        tx.try_send(Ok(message)).is_ok()
    }

    /// "Now" for health and windows: wall-clock time, or the end of a replay.
    pub fn now_ms(&self) -> u64 {
        self.frozen_now_ms.unwrap_or_else(now_ms)
    }

    /// Locks the store. Holders do only in-memory work, never I/O or awaits.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // Store operations leave it consistent even if a holder panicked.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wall-clock now, in ms since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    #[test]
    fn an_old_session_ending_after_a_reconnect_leaves_the_new_one_open() {
        let shared = Shared::new(Store::new(StoreConfig::default()), None);
        let (tx, _rx) = mpsc::channel(1);
        let old = shared.open_session("svc", "a", tx.clone());
        let new = shared.open_session("svc", "a", tx);
        assert!(
            !shared.close_session("svc", "a", old),
            "old stream noticed late"
        );
        assert!(shared.close_session("svc", "a", new));
        assert!(!shared.close_session("svc", "a", new), "already closed");
    }
}
