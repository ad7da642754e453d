//! The worker-metrics detector (stable tokio): a worker not parked whose
//! busy time and park count have not moved for a threshold is in one long
//! poll; its thread is found by its stack and, if runnable, by the CPU it
//! uses.

use super::*;

impl Watchdog {
    /// Whether thread `tid`, found inside what looks like one poll running
    /// since `since`, holds its worker by itself (asleep in a call, or
    /// computing) rather than waiting for a CPU the machine does not give
    /// it: short polls preempted on an overloaded machine look like a long
    /// one from outside. A runnable thread holds its worker once it used
    /// half a threshold of CPU since its first look in this poll: polls
    /// shorter than that, however preempted, end before (a computing stall
    /// opens that much later, with its true start). Threads that cannot be
    /// read are trusted.
    pub(super) fn blocks_by_itself(&mut self, tid: i32, since: Instant) -> bool {
        if sched::thread_state(tid) != Some(ThreadState::Runnable) {
            self.first_looks.remove(&tid);
            return true;
        }
        let Some(now) = sched::thread_cpu(tid) else {
            return true;
        };
        // A first look taken before this poll began says nothing of it.
        self.first_looks.retain(|_, r| r.at >= since);
        let first = *self.first_looks.entry(tid).or_insert(now);
        if now.cpu.saturating_sub(first.cpu) >= self.threshold / 2 {
            self.first_looks.remove(&tid);
            return true;
        }
        self.check_by(now.at + self.threshold / 4);
        false
    }

    /// Whether thread `tid`, whose stack (`frames`) has no user frame, is
    /// asleep in one call its task's poll made ([`poll_callee`]): asleep
    /// there at two looks a quarter threshold apart, both since `since`. A
    /// brief blocking call (a log line written to a file, say) is not
    /// caught twice.
    pub(super) fn asleep_in_one_call(
        &mut self,
        tid: i32,
        frames: &[String],
        since: Instant,
    ) -> bool {
        let Some(call) = poll_callee(frames).map(|i| &frames[i]) else {
            return false;
        };
        if sched::thread_state(tid) != Some(ThreadState::Waiting) {
            self.asleep_looks.remove(&tid);
            return false;
        }
        let now = Instant::now();
        self.asleep_looks.retain(|_, (at, _)| *at >= since);
        let window = self.threshold / 4;
        match self.asleep_looks.get(&tid) {
            Some((at, seen)) if seen == call => {
                if now.duration_since(*at) >= window {
                    self.asleep_looks.remove(&tid);
                    return true;
                }
            }
            _ => {
                self.asleep_looks.insert(tid, (now, call.clone()));
            }
        }
        self.check_by(now + window);
        false
    }

    /// The earliest moment thread `tid`, seen now as `polled` says (the task
    /// it polls, 0 if not known, and the mark on its poll), may be taken to
    /// have been in the poll it is in, given that its worker's counters
    /// froze at `since`; `None` while that is not known yet (its first looks
    /// since the freeze). Polls shorter than the threshold, many to a
    /// publication of the counters (a saturated runtime), look like one long
    /// poll from the counters; the looks at the thread tell them apart.
    ///
    /// With marks (stable tokio; see [`stack::PollMark`]) a thread is in
    /// one poll from the look before the first of the looks in a row that
    /// found its mark, or from the freeze: known once looks in one poll
    /// span half a threshold, so polls shorter than that are never taken
    /// for one long poll, even of a task that only yields and is polled
    /// again and again by itself.
    ///
    /// A thread found in no task is between polls where polls are marked
    /// (in none since now); without marks, nothing is known beyond the
    /// counters (in one poll since the freeze).
    ///
    /// Without marks, a thread seen in one task only since the freeze is
    /// taken to be in one poll since then; one seen in other tasks too went
    /// through polls: it is in one poll only since the first of the looks,
    /// in a row, that saw its current task.
    pub(super) fn in_its_poll_since(
        &mut self,
        tid: i32,
        polled: stack::Polled,
        since: Instant,
    ) -> Option<Instant> {
        self.in_its_poll_since_at(tid, polled, since, Instant::now())
    }

    /// [`Self::in_its_poll_since`] with the look taken at `now`.
    pub(super) fn in_its_poll_since_at(
        &mut self,
        tid: i32,
        polled: stack::Polled,
        since: Instant,
        now: Instant,
    ) -> Option<Instant> {
        self.task_looks
            .retain(|_, look| now.duration_since(look.at) < TASK_LOOK_MEMORY);
        let marked = polled.mark != stack::PollMark::Unknown;
        if polled.task == 0 && !marked {
            if cfg!(not(tokio_unstable)) {
                // Where polls are marked, a thread found in no task is
                // between polls (the runtime's own work between them): it
                // went through polls since the freeze, and is in none now.
                self.task_looks.remove(&tid);
                return Some(now);
            }
            return Some(since);
        }
        let look = match self.task_looks.get(&tid) {
            Some(look)
                if look.at >= since
                    && look.task == polled.task
                    && polled.mark != stack::PollMark::New =>
            {
                TaskLook { at: now, ..*look }
            }
            Some(look) if look.at >= since => TaskLook {
                task: polled.task,
                first_at: now,
                after: look.at,
                at: now,
                moved: look.moved || look.task != polled.task,
            },
            _ => TaskLook {
                task: polled.task,
                first_at: now,
                after: since,
                at: now,
                moved: false,
            },
        };
        self.task_looks.insert(tid, look);
        if marked {
            let known_at = look.first_at + self.threshold / 2;
            if now < known_at {
                self.check_by(known_at);
                // Went through polls since the freeze: in this one since now
                // at the earliest, as far as is known.
                return (look.after != since).then_some(now);
            }
            return Some(look.after);
        }
        Some(if look.moved { look.first_at } else { since })
    }

    /// How long a worker's counters stay frozen before its threads are
    /// looked at. Where polls are marked (stable tokio), a look cannot tell
    /// one poll until a later one half a threshold on: looking from half a
    /// threshold opens a stall at the threshold, as without marks.
    fn suspect_after(&self) -> Duration {
        if cfg!(tokio_unstable) {
            self.threshold
        } else {
            self.threshold / 2
        }
    }

    pub(super) fn check_metrics(&mut self, ri: usize, watch: &Watch) {
        let metrics = watch.handle.metrics();
        let now = Instant::now();
        let mut suspects = Vec::new();
        let suspect_after = self.suspect_after();
        for wi in 0..metrics.num_workers() {
            let key = (ri, wi);
            let park_unpark = metrics.worker_park_unpark_count(wi);
            let busy = metrics.worker_total_busy_duration(wi);
            let seen = self.workers.entry(key).or_insert(WorkerSeen {
                park_unpark,
                busy,
                changed_at: now,
                late: Duration::ZERO,
                checked_at: now,
            });
            let since_last_check = now - seen.checked_at;
            seen.checked_at = now;
            if seen.park_unpark != park_unpark || seen.busy != busy {
                let frozen_for = now - seen.changed_at;
                let busy_delta = busy.saturating_sub(seen.busy);
                let late = seen.late;
                // Awake, or woken for more than a moment since the last
                // check (a lag probe's wake-up is not work).
                if park_unpark.is_multiple_of(2) || busy_delta >= AWAKE_BUSY {
                    self.asked = true;
                }
                *seen = WorkerSeen {
                    park_unpark,
                    busy,
                    changed_at: now,
                    late: since_last_check,
                    checked_at: now,
                };
                if self.active.contains_key(&key) {
                    // Busy time covers the stall and the polls around it; the
                    // frozen span, plus how late its start was seen, bounds
                    // it from above.
                    let d = if busy_delta.is_zero() {
                        frozen_for
                    } else {
                        busy_delta.min(frozen_for + late.max(self.threshold / 2))
                    };
                    self.pair_with_the_thread_that_left(key);
                    self.close(key, Some(d));
                }
                continue;
            }
            let frozen_for = now - seen.changed_at;
            if let Some(a) = self.active.get(&key) {
                if a.tid == 0 && a.last_capture.elapsed() >= RECAPTURE {
                    self.adopt_a_thread(key, watch);
                }
                self.update(key, frozen_for);
                continue;
            }
            // Odd = parked: an idle worker's counters freeze too.
            if park_unpark.is_multiple_of(2) {
                if frozen_for >= suspect_after {
                    suspects.push((key, seen.changed_at));
                    // Looked at again soon if it is not taken for a stall
                    // now (its thread went through lag probes, say).
                    self.check_by(now + self.threshold / 2);
                } else {
                    // Check when its counters will have been frozen long
                    // enough to look at its threads.
                    let due = seen.changed_at + suspect_after;
                    self.check_by(due);
                }
            }
        }
        if suspects.is_empty() {
            if now.duration_since(self.last_classify) >= CLASSIFY_EVERY {
                self.last_classify = now;
                self.classify_one_thread(watch);
            }
            return;
        }
        // A thread that ran a lag probe since its worker's counters froze,
        // and within the last threshold, is going through other tasks: many
        // short polls between two publications of the counters, not one long
        // poll. (The second condition keeps a probe run just before a real
        // stall from hiding it: the stall is seen one threshold later, its
        // start and duration unchanged.)
        let recent = now.checked_sub(self.threshold).unwrap_or(now);
        let progressing = |tid: i32, since: Instant| probe_ran_since(tid, since.max(recent));
        let threads: Vec<i32> = runtime_threads(watch)
            .into_iter()
            .filter(|tid| !self.active.values().any(|a| a.tid == *tid))
            .filter(|tid| !self.pool_threads.contains(tid))
            .collect();
        suspects.retain(|&(_, since)| threads.iter().any(|&t| !progressing(t, since)));
        let Some(latest) = suspects.iter().map(|&(_, since)| since).max() else {
            return;
        };
        let (mut progressed, candidates): (Vec<i32>, Vec<i32>) = threads
            .into_iter()
            .partition(|&tid| progressing(tid, latest));
        // Find the stuck threads: the runtime's threads whose stack is in
        // user code rather than parked, and not already blamed for a stall.
        // A stack cut short (inside malloc, say) may be one too, behind them.
        // A brief capture tells a parked thread (the usual case: an idle
        // worker, looked at on every check while another runs short polls)
        // at a fraction of the cost; only the others are taken whole.
        let mut captured = Vec::new();
        // Threads that could not be looked at: each may be a stuck one.
        let mut unseen = 0;
        // Threads looked at since the freeze too briefly to tell one long
        // poll from many (see `in_its_poll_since`): each may be a stuck one,
        // known at a later check.
        let mut pending = 0;
        for tid in candidates {
            // Before the tables are read a brief look could not be named
            // until they are, and the whole capture taken after it would be
            // late: take the whole stack at once.
            if stack::is_warm() {
                let Some(brief) = take_brief_stack(tid) else {
                    unseen += 1;
                    continue;
                };
                if is_parked(&brief) {
                    continue;
                }
            }
            let ask = if self.entered.contains(&tid) {
                stack::Ask::TaskAndMark
            } else {
                stack::Ask::Stack
            };
            let Some((frames, polled)) = take_stack_and_task(tid, ask) else {
                unseen += 1;
                continue;
            };
            self.note_kind(tid, &frames);
            if is_parked(&frames) || is_blocking_pool_thread(&frames) {
                continue;
            }
            if cfg!(not(tokio_unstable)) && ask == stack::Ask::Stack && self.entered.contains(&tid)
            {
                // Found inside the runtime just now: its poll is marked
                // from the next look, soon.
                pending += 1;
                self.blocks_by_itself(tid, latest);
                self.check_by(Instant::now() + self.threshold / 4);
                continue;
            }
            // Not known to be in one poll yet (looked at again when it can
            // be), or seen in another poll since: not in one poll long
            // enough (yet); looked at again when it could be.
            let Some(began) = self.in_its_poll_since(tid, polled, latest) else {
                pending += 1;
                // Its CPU clock read now, so it is known by then whether it
                // holds its worker by itself.
                self.blocks_by_itself(tid, latest);
                continue;
            };
            if Instant::now().duration_since(began) < self.threshold {
                self.check_by(began + self.threshold);
                progressed.push(tid);
                continue;
            }
            captured.push((tid, frames));
        }
        if pending > 0 {
            // Paired only once every thread is known: a stall opened now
            // could take the wrong worker's place.
            return;
        }
        // Threads known to work for this runtime come before threads that
        // may be another, unwatched runtime's (tokio names them all alike).
        if captured
            .iter()
            .any(|&(tid, _)| probe_runtime(tid) == Some(watch.token))
        {
            captured.retain(|&(tid, _)| probe_runtime(tid) == Some(watch.token));
        }
        let before = captured.len();
        let (captured, waiting): (Vec<_>, Vec<_>) = captured
            .into_iter()
            .partition(|&(tid, _)| self.blocks_by_itself(tid, latest));
        let captured_len = captured.len();
        if captured.is_empty() && before > 0 {
            // Every thread in user code was waiting for a CPU (or is looked
            // at for the first time): nothing to blame on the code yet.
            return;
        }
        let (mut stuck, rest): (Vec<(i32, Vec<String>)>, Vec<_>) = captured
            .into_iter()
            .partition(|(_, frames)| blocking_function(frames).is_some());
        // A thread asleep in a call its task's poll made (a sleep, a lock,
        // file I/O) holds its worker whatever frames are above the call: the
        // code that made it may be inlined into tokio's poll.
        let (asleep, unsure): (Vec<(i32, Vec<String>)>, Vec<_>) = rest
            .into_iter()
            .partition(|(tid, frames)| self.asleep_in_one_call(*tid, frames, latest));
        stuck.extend(asleep);
        if stuck.is_empty() && !progressed.is_empty() {
            // No thread without a recent probe is in user code, and some
            // thread went through probes: the frozen counters are a busy
            // worker's between two publications.
            return;
        }
        stuck.extend(unsure);
        // A thread computing since before the suspects froze may have been
        // looked at for the first time just now: it counts once a later
        // look shows it on a CPU (a quarter threshold on). Opening the
        // stalls before then would pair the threads there are with the
        // wrong workers; the stalls keep their start either way. A thread
        // that never shows (preempted short polls) stops the wait after
        // one more threshold.
        let deferred = before - captured_len;
        let earliest = suspects
            .iter()
            .map(|&(_, since)| since)
            .min()
            .unwrap_or(now);
        if deferred > 0
            && stuck.len() < suspects.len()
            && now.duration_since(earliest) < 2 * self.threshold
        {
            return;
        }
        // Past the wait, a thread still in user code but short of CPU (a
        // loaded machine) is paired last: a stall opens either way, and its
        // stack names it better than no thread would.
        stuck.extend(waiting);
        if stuck.is_empty() && unseen == 0 {
            // Every thread was parked, a pool thread or went through polls:
            // none is stuck (a worker seen unparked by its counters as its
            // thread parks, say).
            return;
        }
        if !progressed.is_empty() && stuck.len() + unseen < suspects.len() {
            // Threads that went through polls account for the other
            // suspects: their counters are frozen between publications.
            // The ones frozen longest are the stuck ones.
            suspects.sort_by_key(|&(_, since)| since);
            suspects.truncate(stuck.len() + unseen);
        }
        for (key, since) in suspects {
            // With more stuck threads than suspects the pairing is a guess;
            // the stacks still say what each thread was doing.
            let (tid, frames) = if stuck.is_empty() {
                (0, None)
            } else {
                let (tid, frames) = stuck.remove(0);
                (tid, Some(frames))
            };
            // The metrics detector tells stalls apart by worker, not by poll.
            let marker = 0;
            self.open(
                key,
                &watch.runtime,
                StallDetection::WorkerMetrics,
                marker,
                since,
                tid,
                frames.or(Some(Vec::new())),
                (None, None),
            );
        }
    }
}
