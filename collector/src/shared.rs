//! State shared by the collector's gRPC and HTTP sides.

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::Store;

/// The store behind a short lock, and the collector's token.
#[derive(Debug)]
pub struct Shared {
    store: Mutex<Store>,
    /// Token agents and API clients must present, if any.
    pub token: Option<String>,
    /// Fixed "now" for a replayed recording (health and windows are judged at
    /// its end, not at wall-clock time).
    pub frozen_now_ms: Option<u64>,
}

impl Shared {
    /// Wraps `store`.
    pub fn new(store: Store, token: Option<String>) -> Self {
        Shared {
            store: Mutex::new(store),
            token,
            frozen_now_ms: None,
        }
    }

    /// Wraps a store replayed from a recording that ended at `end_ms`.
    pub fn frozen(store: Store, end_ms: u64) -> Self {
        Shared {
            store: Mutex::new(store),
            token: None,
            frozen_now_ms: Some(end_ms),
        }
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
