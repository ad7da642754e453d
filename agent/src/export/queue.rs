//! A bounded queue between the sampler and an exporter: when full, the oldest
//! entry is dropped and counted, so a slow or absent consumer costs bounded
//! memory and never blocks the producer for longer than a short lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

struct Inner<T> {
    items: VecDeque<T>,
    closed: bool,
}

/// Bounded, drop-oldest, multi-producer multi-consumer queue.
pub(crate) struct BoundedQueue<T> {
    inner: Mutex<Inner<T>>,
    ready: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    /// Wakes an async consumer (which cannot block on the condition variable).
    notify: tokio::sync::Notify,
}

impl<T> BoundedQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        BoundedQueue {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity.min(4096)),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock cannot leave the deque inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `item`, dropping the oldest entry if the queue is full.
    pub(crate) fn push(&self, item: T) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        if inner.items.len() >= self.capacity {
            inner.items.pop_front();
            self.dropped.fetch_add(1, Relaxed);
        }
        inner.items.push_back(item);
        drop(inner);
        self.ready.notify_one();
        self.notify.notify_one();
    }

    /// Takes up to `max` entries without waiting.
    pub(crate) fn drain(&self, max: usize) -> Vec<T> {
        let mut inner = self.lock();
        let n = inner.items.len().min(max);
        inner.items.drain(..n).collect()
    }

    /// Resolves once an entry may be available or the queue was closed. A push
    /// that happened before the call is not missed (`Notify` keeps a permit).
    pub(crate) async fn ready(&self) {
        self.notify.notified().await;
    }

    /// Takes the oldest entry, waiting up to `timeout`. `None` on timeout, or
    /// once the queue is closed and empty.
    pub(crate) fn pop(&self, timeout: Duration) -> Option<T> {
        let inner = self.lock();
        let (mut inner, _) = self
            .ready
            .wait_timeout_while(inner, timeout, |i| i.items.is_empty() && !i.closed)
            .unwrap_or_else(|p| p.into_inner());
        inner.items.pop_front()
    }

    /// Puts `items` back at the front, e.g. after a failed send; what does not
    /// fit is dropped from the oldest end and counted.
    pub(crate) fn requeue_front(&self, items: impl DoubleEndedIterator<Item = T>) {
        let mut inner = self.lock();
        for item in items.rev() {
            if inner.items.len() >= self.capacity {
                self.dropped.fetch_add(1, Relaxed);
                continue;
            }
            inner.items.push_front(item);
        }
    }

    /// Wakes consumers; they drain what is left, then `pop` returns `None`.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
        self.notify.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Entries dropped so far because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let q = BoundedQueue::new(3);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(Duration::ZERO), Some(2));
    }

    #[test]
    fn close_drains_then_ends() {
        let q = BoundedQueue::new(3);
        q.push(1);
        q.close();
        q.push(2);
        assert_eq!(q.pop(Duration::from_secs(5)), Some(1));
        assert_eq!(q.pop(Duration::from_secs(5)), None);
    }

    #[test]
    fn pop_wakes_when_an_item_arrives() {
        let q = Arc::new(BoundedQueue::new(3));
        let producer = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            producer.push(7);
        });
        assert_eq!(q.pop(Duration::from_secs(5)), Some(7));
        t.join().expect("producer");
    }

    #[test]
    fn requeue_keeps_order_and_respects_capacity() {
        let q = BoundedQueue::new(3);
        q.push(3);
        q.requeue_front(vec![1, 2].into_iter());
        assert_eq!(q.pop(Duration::ZERO), Some(1));
        q.requeue_front(vec![8, 9].into_iter());
        assert_eq!(q.dropped(), 1);
    }
}
