//! Which thread is which: runtime workers told from blocking-pool threads,
//! and, on stable tokio, stalled workers paired with stuck threads (by
//! guess, checked when one comes back).

use super::*;

impl Watchdog {
    /// Learns from a capture whether the thread has entered a runtime and,
    /// if it reached the thread's start, whether it is a worker or one of
    /// the blocking pool's.
    pub(super) fn note_kind(&mut self, tid: i32, frames: &[String]) {
        // Parked, or under the scheduler: the thread has entered a runtime
        // (see `stack::capture_with_task`).
        if is_parked(frames) || frames.iter().any(|f| f.contains("tokio::runtime::")) {
            self.entered.insert(tid);
        }
        if frames.iter().any(|f| f.contains("thread_start")) {
            self.classify_tries.insert(tid, CLASSIFY_TRIES);
            if is_blocking_pool_thread(frames) {
                self.pool_threads.insert(tid);
            } else {
                self.pool_threads.remove(&tid);
            }
        }
    }

    /// Takes the stack of one runtime thread not yet known as a worker or
    /// a pool thread (a few tries each), so that a pool thread is never
    /// taken for a stalled worker; forgets threads that are gone.
    pub(super) fn classify_one_thread(&mut self, watch: &Watch) {
        let threads = runtime_threads(watch);
        self.classify_tries.retain(|tid, _| threads.contains(tid));
        self.pool_threads.retain(|tid| threads.contains(tid));
        self.entered.retain(|tid| threads.contains(tid));
        let Some(&tid) = threads
            .iter()
            .find(|tid| self.classify_tries.get(tid).copied().unwrap_or(0) < CLASSIFY_TRIES)
        else {
            return;
        };
        *self.classify_tries.entry(tid).or_default() += 1;
        if let Some(frames) = take_stack(tid) {
            self.note_kind(tid, &frames);
        }
    }

    /// Stall `key` was opened without a thread (no stuck thread could be
    /// told when it was seen): adopt the one runtime thread, if there is
    /// exactly one, that no other stall holds and that is not parked.
    /// Called every [`RECAPTURE`] while the stall has no thread.
    pub(super) fn adopt_a_thread(&mut self, key: (usize, usize), watch: &Watch) {
        // Tried at the recapture pace, not at every check.
        if let Some(a) = self.active.get_mut(&key) {
            a.last_capture = Instant::now();
        }
        let loose: Vec<(i32, Vec<String>)> = runtime_threads(watch)
            .into_iter()
            .filter(|tid| !self.active.values().any(|a| a.tid == *tid))
            .filter_map(|tid| take_stack(tid).map(|frames| (tid, frames)))
            .filter(|(_, frames)| !is_parked(frames) && !is_blocking_pool_thread(frames))
            .collect();
        let [(tid, frames)] = &loose[..] else {
            return;
        };
        let Some(a) = self.active.get_mut(&key) else {
            return;
        };
        a.tid = *tid;
        a.last_capture = Instant::now();
        let mut b = lock(&self.book);
        if let Some(e) = b.ongoing.get_mut(&a.id) {
            e.tid = *tid;
            add_stack(e, frames.clone());
        }
    }

    /// Worker `key` came back from a stall while other workers of its
    /// runtime are still stalled. Stable tokio does not say which thread
    /// runs which worker, so the stalls were paired with the stuck threads
    /// by guess; now the thread whose stall ended is the one that left the
    /// function it was stuck in. If the thread paired with `key` is still
    /// there and another stall's thread has left, the two were swapped:
    /// each worker takes the other's thread and stacks, and keeps its start.
    pub(super) fn pair_with_the_thread_that_left(&mut self, key: (usize, usize)) {
        let others: Vec<(usize, usize)> = self
            .active
            .keys()
            .filter(|k| k.0 == key.0 && **k != key)
            .copied()
            .collect();
        if others.is_empty() {
            return;
        }
        let mine = self.left_its_stall(key);
        if mine == Some(true) {
            return;
        }
        // One that left; else, if this thread is surely still stuck, one
        // that cannot be told (its thread was never captured well): that
        // one is the thread that left.
        let left: Vec<((usize, usize), Option<bool>)> = others
            .into_iter()
            .map(|k| (k, self.left_its_stall(k)))
            .collect();
        let Some(other) = left
            .iter()
            .find(|(_, l)| *l == Some(true))
            .or_else(|| {
                left.iter()
                    .find(|(_, l)| mine == Some(false) && l.is_none())
            })
            .map(|(k, _)| *k)
        else {
            return;
        };
        let (Some(mine), Some(theirs)) = (self.active.remove(&key), self.active.remove(&other))
        else {
            return;
        };
        let mut b = lock(&self.book);
        let starts = (
            b.ongoing.get(&mine.id).map(|e| e.started_ms),
            b.ongoing.get(&theirs.id).map(|e| e.started_ms),
        );
        if let (Some(mine_started), Some(theirs_started)) = starts {
            if let Some(e) = b.ongoing.get_mut(&mine.id) {
                e.started_ms = theirs_started;
            }
            if let Some(e) = b.ongoing.get_mut(&theirs.id) {
                e.started_ms = mine_started;
            }
        }
        drop(b);
        self.active.insert(key, theirs);
        self.active.insert(other, mine);
    }

    /// Whether the thread of stall `key` has left the function its stall
    /// names (parked, or in other code): `None` when that cannot be told.
    pub(super) fn left_its_stall(&self, key: (usize, usize)) -> Option<bool> {
        let a = self.active.get(&key)?;
        let now = take_stack(a.tid)?;
        if is_parked(&now) {
            return Some(true);
        }
        // A stack cut short (the chain broke before the thread's start: not
        // one merely deeper than the frames kept), or one that lost the
        // caller of a library routine, tells nothing.
        let cut_short = now.len() < STACK_DEPTH && !now.iter().any(|f| f.contains("thread_start"));
        if cut_short || capture_quality(&now) == LOST_CALLER {
            return None;
        }
        let b = lock(&self.book);
        let stall = b.ongoing.get(&a.id)?;
        let (deep, outer) = stall_frames(&stall.stacks);
        let has = |frames: &[&str]| now.iter().any(|f| frames.contains(&f.as_str()));
        if has(&deep) {
            Some(false)
        } else if has(&outer) {
            // In the same kind of task, with none of the stall's own frames
            // seen: another poll of it, or a capture that lost them.
            None
        } else {
            Some(true)
        }
    }
}

/// Threads that may run `watch`'s tasks: its driver, and the threads named
/// like tokio's workers except those known, by the lag probes they ran, to
/// work for another watched runtime.
pub(super) fn runtime_threads(watch: &Watch) -> Vec<i32> {
    let mut tids: Vec<i32> = watch.driver_tid.into_iter().collect();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let another = probe_runtime(tid).is_some_and(|r| r != watch.token);
            if comm.trim_end() == WORKER_THREAD_NAME && !another && !tids.contains(&tid) {
                tids.push(tid);
            }
        }
    }
    tids
}
