//! The reference model: the job table's rules written the plain way, with std collections.
//!
//! It knows nothing of the real table's internals (slot records, intrusive lists, the edge
//! pool, the log ring's bytes). It follows the contract (`docs/contract.md`), and where the
//! real table must make a choice the contract leaves open, the model writes the same choice
//! down explicitly:
//!
//! * **errors** — input that is wrong whatever the table holds first (progress over 100, a
//!   text too long), then the id (`Lookup`), then whether the job is live (`AlreadyTerminal`,
//!   after failing a job whose deadline or lease has passed at the given `now`: R-DEADLINE),
//!   then its state (`docs/core.md`, "Error precedence"). Submit checks the description, then
//!   the number of dependencies (at most [`MAX_DEPENDENCIES`]), then the durations, then each
//!   dependency in order, then room in the edge pool, then a slot;
//! * **slot reuse** — a new job takes the most recently freed slot, else the lowest slot never
//!   used, else the slot of the oldest terminal job whose retention has passed (which is
//!   removed, leaving a tombstone). The slot's generation grows by one; a slot whose generation
//!   reached `u32::MAX` retires when that job is removed;
//! * **runnable order** — the highest priority level first; within a level, first come,
//!   first served by the moment a job became runnable; jobs released together by one success
//!   queue in submit order;
//! * **cascade order** — breadth first: a failed job's queued dependents fail newest first,
//!   then the dependents of each of those, in the order they failed; each failure takes its
//!   own revision;
//! * **time** — a `now` older than one seen before counts as the newest seen; a refused
//!   operation does not move the clock. Every instant a job keeps is whole milliseconds
//!   (truncated); run timeouts and leases are kept as whole milliseconds (rounded up, at least
//!   one). A job's deadline is its first start plus its run timeout; its lease ends `lease`
//!   after the last start, progress, heartbeat, checkpoint, log line or resume while running,
//!   and a lease that would end after the deadline reads as the deadline;
//! * **texts the table ends a job with** are empty: the job's `detail` says why;
//! * **log lines** live in a ring of `L` bytes (a line takes its length + 2 and never wraps
//!   around the ring's end); a line reads back `None` once newer lines reached over it;
//! * **retries** (R-RETRY) — a policy is checked after the durations (`InvalidRetryPolicy`: no
//!   attempts, multiplier 0, jitter over 100 %, a backoff over `u32::MAX` ms); its backoffs are
//!   kept as whole milliseconds (truncated). The backoff before retry `n` is
//!   `min(cap, first × multiplierⁿ⁻¹)` with `cap = max(ceiling, first)`, less
//!   `lowbias32(seed ^ n·0x9E3779B9) mod (span + 1)` where `span = backoff × jitter / 100`. The
//!   worker's `fail` of a running or paused job with attempts left, and a lost lease with
//!   attempts left, queue the job again (message: the failure's, or empty for a lease; progress
//!   0; requests dropped); a backoff of 0 makes it runnable at once, else it waits, as a timer
//!   (`next_timer`, `retry_at`) at the earlier of the backoff's end and the deadline. Any
//!   operation that reaches the job once its backoff is over, and the sweep (in start order of
//!   the timer list), make it runnable: a change of its own (`Ready`, not a state change). A
//!   sweep's `timed_out` counts a lost lease that was retried too. A deadline passing during
//!   the backoff fails the job `TimedOut`;
//! * **idempotency keys** (R-IDEMPOTENT) — a key holds while its job is in the table; a keyed
//!   submit asks, in this order: the key names a job (same fingerprint: that job, nothing
//!   changes, not even the clock; another: `KeyConflict`), all `I` keys held (`KeysFull`), then
//!   the submit's own checks;
//! * **restore** (R-PERSIST) — epoch + 1, revision + `RESTORE_GAP`, the journal and the log
//!   ring start empty, the clock keeps whole milliseconds; every job takes a `Restored` event in
//!   slot order (its `modified` and state revision stay); then, in the timer list's order,
//!   running and paused jobs end `Canceled` (a cancel pending), are queued again
//!   (restartable) or end `Interrupted`; a job in a retry backoff keeps waiting.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jobstate::{
    Compacted, Condition, Detail, Directive, Duration, Expired, FailReason, Idempotent, Instant,
    JobError, JobId, JobOptions, LookupError, Outcome, Priority, Request, RetryPolicy, Revision,
    Severity, State, SubmitError, TextField, Tombstone, MAX_DEPENDENCIES,
};

use jobstate::persist::{Restored, RESTORE_GAP};

use crate::snapshot::{EventView, JobView, JournalRead, KindView, Snapshot};

/// An id from its parts (ids are plain values; this goes through their wire form).
pub fn make_id(epoch: u32, index: u16, generation: u32) -> JobId {
    let mut b = [0u8; JobId::BYTES];
    b[0..4].copy_from_slice(&epoch.to_be_bytes());
    b[4..8].copy_from_slice(&generation.to_be_bytes());
    b[8..10].copy_from_slice(&index.to_be_bytes());
    JobId::from_bytes(b)
}

/// The limits of the table being modelled: `JobTable<S, N, T, J, L, E, K>` and its retention.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Capacity in jobs (`N`).
    pub jobs: usize,
    /// Text capacity in bytes (`T`).
    pub text: usize,
    /// Journal capacity in events (`J`).
    pub journal: usize,
    /// Log-line ring in bytes (`L`).
    pub log_ring: usize,
    /// Dependency edges shared by all jobs (`E`).
    pub edges: usize,
    /// Tombstones kept (`K`).
    pub tombstones: usize,
    /// Idempotency keys (`I`).
    pub keys: usize,
    /// Retention of terminal jobs.
    pub retention: Duration,
}

/// Whole milliseconds of an instant (sub-millisecond parts dropped).
fn ms(at: Instant) -> u64 {
    at.as_millis()
}

/// The instant `ms` milliseconds after time zero.
fn instant(ms: u64) -> Instant {
    Instant::try_from_millis(ms).unwrap_or(Instant::MAX)
}

/// A run timeout or lease as the table keeps it: whole milliseconds rounded up, at least one;
/// 0 for none; `None` when it does not fit 32 bits of milliseconds.
fn duration_ms(d: Option<Duration>) -> Option<u64> {
    match d {
        None => Some(0),
        Some(d) => {
            let ms = d.as_micros().div_ceil(1000).max(1);
            (ms <= u64::from(u32::MAX)).then_some(ms)
        }
    }
}

fn duration_of(ms: u64) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(ms))
}

/// A retry policy as the table keeps it (backoffs in whole milliseconds, truncated), or `None`
/// when it is refused.
fn stored_policy(p: &RetryPolicy) -> Option<RetryPolicy> {
    let fits = |d: Duration| d.as_millis() <= u64::from(u32::MAX);
    let ok = p.max_attempts >= 1
        && p.multiplier >= 1
        && p.jitter_percent <= 100
        && fits(p.first_backoff)
        && fits(p.ceiling);
    ok.then(|| RetryPolicy {
        first_backoff: Duration::from_millis(p.first_backoff.as_millis()),
        ceiling: Duration::from_millis(p.ceiling.as_millis()),
        ..*p
    })
}

/// The 32-bit integer hash the jitter is drawn with (lowbias32).
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The backoff in ms before retry `n` (1 for the first retry) under a stored policy.
fn backoff_ms(p: &RetryPolicy, n: u8) -> u64 {
    let first = u128::from(p.first_backoff.as_millis());
    let cap = u128::from(p.ceiling.as_millis()).max(first);
    let mut b = first;
    for _ in 1..n {
        b = (b * u128::from(p.multiplier)).min(cap);
    }
    let b = u64::try_from(b.min(cap)).expect("model: backoff fits");
    let span = b * u64::from(p.jitter_percent) / 100;
    let draw = lowbias32(p.seed ^ u32::from(n).wrapping_mul(0x9E37_79B9));
    b - u64::from(draw) % (span + 1)
}

#[derive(Clone, Debug)]
struct Entry<S> {
    id: JobId,
    spec: S,
    description: String,
    state: State,
    progress: u8,
    message: String,
    created: u64,
    started: Option<u64>,
    modified: u64,
    revision: Revision,
    state_revision: Revision,
    outcome: Option<Outcome>,
    detail: Option<Detail>,
    depends_on: Vec<JobId>,
    options: JobOptions,
    priority: Priority,
    /// Run timeout and lease in ms (0: none).
    run_timeout: u64,
    lease: u64,
    pause_requested: bool,
    cancel_requested: bool,
    /// Running: the earlier of the deadline and the lease's end; paused: the deadline.
    expiry: Option<u64>,
    /// Submit order.
    seq: u64,
    /// Dependencies that were live at submit and have not succeeded yet.
    waiting: BTreeSet<JobId>,
    /// The retry policy as kept (`None`: no retries).
    retry: Option<RetryPolicy>,
    /// Failures retried so far: the attempt under way (or the last made) is `retries + 1`.
    retries: u8,
    /// Queued again after a retryable failure: when its backoff ends (ms).
    backoff_end: Option<u64>,
}

impl<S: Clone> Entry<S> {
    fn deadline(&self) -> Option<u64> {
        if self.run_timeout == 0 {
            return None;
        }
        self.started.map(|s| s + self.run_timeout)
    }

    fn view(&self) -> JobView<S> {
        let terminal = self.state.is_terminal();
        JobView {
            id: self.id,
            spec: self.spec.clone(),
            description: self.description.clone(),
            state: self.state,
            progress: self.progress,
            message: self.message.clone(),
            created: instant(self.created),
            started: self.started.map(instant),
            ended: terminal.then(|| instant(self.modified)),
            modified: instant(self.modified),
            revision: self.revision,
            state_revision: self.state_revision,
            outcome: self.outcome,
            detail: if terminal { self.detail } else { None },
            depends_on: self.depends_on.clone(),
            options: self.options,
            pause_requested: self.pause_requested,
            cancel_requested: self.cancel_requested,
            deadline: if terminal {
                None
            } else {
                self.deadline().map(instant)
            },
            lease_until: (self.state == State::Running && self.lease != 0)
                .then(|| self.expiry.map(instant))
                .flatten(),
            priority: self.priority,
            attempt: self.retries.saturating_add(1),
            retry_at: (self.state == State::Queued && self.backoff_end.is_some())
                .then(|| self.expiry.map(instant))
                .flatten(),
            retry_policy: Some(self.retry.unwrap_or(RetryPolicy::NONE)),
        }
    }
}

/// A journal event as the model keeps it: a log line with where it starts in the ring.
#[derive(Clone, Debug)]
enum Kept {
    Kind(KindView),
    /// `start` is `None` when the ring could not hold the line at all.
    Log {
        line: String,
        start: Option<u64>,
    },
}

#[derive(Clone, Debug)]
struct Event {
    revision: Revision,
    job: JobId,
    kind: Kept,
}

/// The reference model of a `JobTable`.
#[derive(Clone, Debug)]
pub struct Model<S> {
    limits: Limits,
    epoch: u32,
    now: Instant,
    revision: u64,
    generations: Vec<u32>,
    retired: usize,
    jobs: BTreeMap<u16, Entry<S>>,
    /// Freed slots, most recently freed last.
    free: Vec<u16>,
    /// Slots `fresh..` were never used.
    fresh: usize,
    /// Runnable jobs, a queue per priority level (lowest first).
    runnable: [VecDeque<JobId>; Priority::LEVELS],
    /// Running and paused jobs, in the order they started.
    active: Vec<JobId>,
    /// Terminal jobs, in the order they ended.
    retained: VecDeque<JobId>,
    journal: VecDeque<Event>,
    /// Highest revision dropped from the journal (0: none).
    dropped: u64,
    /// Bytes written to the log ring so far (skips to the ring's start included).
    log_written: u64,
    edges_used: usize,
    tombstones: VecDeque<Tombstone>,
    issued: BTreeSet<JobId>,
    seq: u64,
    /// Idempotency keys: key, fingerprint, job (held while the job is in the table).
    keys: Vec<(Vec<u8>, u64, JobId)>,
}

impl<S: Clone> Model<S> {
    /// An empty table in epoch 0 at time zero.
    pub fn new(limits: Limits) -> Self {
        Self::in_epoch(limits, 0)
    }

    /// An empty table at time zero restored `epoch` times from an empty table's image: each
    /// restore moves the revision [`RESTORE_GAP`] on, and the journal starts compacted there.
    pub fn in_epoch(limits: Limits, epoch: u32) -> Self {
        let revision = u64::from(epoch) * RESTORE_GAP;
        Self {
            limits,
            epoch,
            now: Instant::from_ticks(0),
            revision,
            generations: vec![0; limits.jobs],
            retired: 0,
            jobs: BTreeMap::new(),
            free: Vec::new(),
            fresh: 0,
            runnable: Default::default(),
            active: Vec::new(),
            retained: VecDeque::new(),
            journal: VecDeque::new(),
            dropped: revision,
            log_written: 0,
            edges_used: 0,
            tombstones: VecDeque::new(),
            issued: BTreeSet::new(),
            seq: 0,
            keys: Vec::new(),
        }
    }

    /// Every id this model has issued, ordered by epoch, generation, index.
    pub fn issued(&self) -> impl Iterator<Item = &JobId> {
        self.issued.iter()
    }

    // ----- reading --------------------------------------------------------------------------

    fn find(&self, id: JobId) -> Result<u16, LookupError> {
        if id.epoch() > self.epoch || id.generation() == 0 {
            return Err(LookupError::NotFound);
        }
        if self.jobs.get(&id.index()).is_some_and(|e| e.id == id) {
            return Ok(id.index());
        }
        if let Some(t) = self.tombstones.iter().rev().find(|t| t.id == id) {
            return Err(LookupError::Expired(Some(*t)));
        }
        if id.epoch() < self.epoch {
            return Err(LookupError::Stale);
        }
        if self.issued.contains(&id) {
            Err(LookupError::Expired(None))
        } else {
            Err(LookupError::NotFound)
        }
    }

    fn entry(&self, id: JobId) -> Result<&Entry<S>, LookupError> {
        let i = self.find(id)?;
        self.jobs.get(&i).ok_or(LookupError::NotFound)
    }

    fn at(&self, id: JobId) -> &Entry<S> {
        self.jobs.get(&id.index()).expect("model: job in the table")
    }

    fn at_mut(&mut self, id: JobId) -> &mut Entry<S> {
        self.jobs
            .get_mut(&id.index())
            .expect("model: job in the table")
    }

    /// `JobTable::get`.
    pub fn get(&self, id: JobId) -> Result<JobView<S>, LookupError> {
        self.entry(id).map(Entry::view)
    }

    /// `JobTable::check`.
    pub fn check(
        &self,
        id: JobId,
        condition: Condition,
    ) -> Result<Option<JobView<S>>, LookupError> {
        let job = self.entry(id)?.view();
        let holds = match condition {
            Condition::ChangedSince(r) => job.revision > r,
            Condition::StateChangedSince(r) => job.state_revision > r,
            Condition::Terminal => job.state.is_terminal(),
            Condition::ModifiedAfter(t) => job.modified > t,
            other => panic!("model: unknown condition {other:?}"),
        };
        Ok(holds.then_some(job))
    }

    /// `JobTable::peek_runnable`.
    pub fn peek_runnable(&self) -> Option<JobId> {
        self.runnable.iter().rev().find_map(|q| q.front().copied())
    }

    fn make_runnable(&mut self, id: JobId) {
        let level = usize::from(self.at(id).priority.level());
        self.runnable[level].push_back(id);
    }

    fn not_runnable(&mut self, id: JobId) {
        for q in &mut self.runnable {
            q.retain(|j| *j != id);
        }
    }

    /// `JobTable::revision`.
    pub fn revision(&self) -> Revision {
        Revision::new(self.revision)
    }

    /// `JobTable::epoch`.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// `JobTable::retired`.
    pub fn retired(&self) -> usize {
        self.retired
    }

    fn line_readable(&self, start: Option<u64>) -> bool {
        start.is_some_and(|s| self.log_written - s <= self.limits.log_ring as u64)
    }

    /// `JobTable::journal`, collected.
    pub fn journal(&self, after: Revision) -> JournalRead {
        if after.get() < self.dropped {
            let oldest = self
                .journal
                .front()
                .map_or(self.revision.saturating_add(1), |e| e.revision.get());
            return Err(Compacted {
                oldest: Revision::new(oldest),
            });
        }
        Ok(self
            .journal
            .iter()
            .filter(|e| e.revision > after)
            .map(|e| EventView {
                revision: e.revision,
                job: e.job,
                kind: match &e.kind {
                    Kept::Kind(k) => k.clone(),
                    Kept::Log { line, start } => {
                        KindView::Log(self.line_readable(*start).then(|| line.clone()))
                    }
                },
            })
            .collect())
    }

    fn retention_ms(&self) -> u64 {
        self.limits.retention.as_millis()
    }

    fn retention_end(&self, id: JobId) -> u64 {
        self.at(id).modified + self.retention_ms()
    }

    /// `JobTable::next_timer`.
    pub fn next_timer(&self) -> Option<Instant> {
        let mut times: Vec<u64> = self
            .active
            .iter()
            .filter_map(|id| self.at(*id).expiry)
            .collect();
        if let Some(id) = self.retained.front() {
            times.push(self.retention_end(*id));
        }
        times.into_iter().min().map(instant)
    }

    /// `JobTable::next_free_at`.
    pub fn next_free_at(&self) -> Option<Instant> {
        if !self.free.is_empty() || self.fresh < self.limits.jobs {
            return Some(self.now);
        }
        let id = self.retained.front()?;
        Some(instant(self.retention_end(*id)).max(self.now))
    }

    /// Everything observable, in the form [`Snapshot::of`] reads from a real table.
    pub fn snapshot(&self) -> Snapshot<S> {
        let journal_from_zero = self.journal(Revision::ZERO);
        let journal_kept = match journal_from_zero {
            Ok(ref e) => Ok(e.clone()),
            Err(Compacted { oldest }) => {
                self.journal(Revision::new(oldest.get().saturating_sub(1)))
            }
        };
        Snapshot {
            len: self.jobs.len(),
            retired: self.retired,
            revision: Revision::new(self.revision),
            epoch: self.epoch,
            now: self.now,
            jobs: self.jobs.values().map(Entry::view).collect(),
            tombstones: self.tombstones.iter().copied().collect(),
            runnable: self.peek_runnable(),
            next_timer: self.next_timer(),
            next_free_at: self.next_free_at(),
            journal_from_zero,
            journal_kept,
        }
    }

    // ----- helpers --------------------------------------------------------------------------

    fn text_limit(&self) -> u16 {
        u16::try_from(self.limits.text).unwrap_or(u16::MAX)
    }

    fn message_fits(&self, s: &str) -> Result<(), JobError> {
        if s.len() > self.limits.text {
            Err(JobError::TextTooLong {
                field: TextField::Message,
                limit: self.text_limit(),
            })
        } else {
            Ok(())
        }
    }

    fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn now_ms(&self) -> u64 {
        ms(self.now)
    }

    /// Take the next revision for an event.
    fn event(&mut self, job: JobId, kind: Kept) -> Revision {
        self.revision += 1;
        let revision = Revision::new(self.revision);
        if self.limits.journal == 0 {
            self.dropped = self.revision;
        } else {
            if self.journal.len() == self.limits.journal {
                let old = self.journal.pop_front().expect("model: full journal");
                self.dropped = old.revision.get();
            }
            self.journal.push_back(Event {
                revision,
                job,
                kind,
            });
        }
        revision
    }

    /// An observable change of a job: new revision (its version), modified now.
    fn change(&mut self, id: JobId, kind: KindView, state_change: bool) {
        let revision = self.event(id, Kept::Kind(kind));
        let now = self.now_ms();
        let job = self.at_mut(id);
        job.revision = revision;
        if state_change {
            job.state_revision = revision;
        }
        job.modified = now;
    }

    /// Re-arm the job's expiry (start, worker contact, pause, resume).
    fn renew(&mut self, id: JobId) {
        let now = self.now_ms();
        let job = self.at_mut(id);
        let lease = (job.state == State::Running && job.lease != 0).then(|| now + job.lease);
        job.expiry = match (job.deadline(), lease) {
            (Some(d), Some(l)) => Some(d.min(l)),
            (d, l) => d.or(l),
        };
    }

    /// Whether the job's deadline or lease has passed at `at` (ms), and which.
    fn due(&self, id: JobId, at: u64) -> Option<Detail> {
        let job = self.at(id);
        if job.state == State::Queued && job.backoff_end.is_some() {
            // Waiting out a backoff: only the deadline runs.
            return job
                .deadline()
                .filter(|d| *d <= at)
                .map(|_| Detail::Deadline);
        }
        if !matches!(job.state, State::Running | State::Paused) {
            return None;
        }
        let expiry = job.expiry?;
        if expiry > at {
            return None;
        }
        Some(match job.deadline() {
            Some(d) if d <= at => Detail::Deadline,
            _ => Detail::Lease,
        })
    }

    /// Id → live job (R-ID, then "whether the job is live"): a job whose deadline or lease has
    /// passed at `now` is failed `TimedOut` first and answers `AlreadyTerminal` (R-DEADLINE).
    fn enter(&mut self, id: JobId, now: Instant) -> Result<State, JobError> {
        let state = self.entry(id)?.state;
        if state.is_terminal() {
            return Err(JobError::AlreadyTerminal);
        }
        let at = ms(now.max(self.now));
        if self.due(id, at).is_some() {
            self.clock(now);
            self.settle(id, at);
            // Timed out, or (a lost lease with attempts left) queued again: the worker that
            // asked no longer has the job.
            return Err(if self.at(id).state.is_terminal() {
                JobError::AlreadyTerminal
            } else {
                JobError::NotRunning
            });
        }
        if self.backoff_over(id, at) {
            self.clock(now);
            self.promote(id);
        }
        Ok(state)
    }

    /// Fail the job `TimedOut` if its deadline or lease has passed at `at`, or queue it again
    /// when it lost its lease with attempts left; `true` if either happened.
    fn settle(&mut self, id: JobId, at: u64) -> bool {
        let Some(detail) = self.due(id, at) else {
            return false;
        };
        if detail == Detail::Lease && self.retry_allowed(id) {
            self.retry(id, "");
        } else {
            self.finish(id, Self::failure(FailReason::TimedOut), Some(detail), "");
        }
        true
    }

    /// A running or paused job whose policy allows another attempt.
    fn retry_allowed(&self, id: JobId) -> bool {
        let job = self.at(id);
        matches!(job.state, State::Running | State::Paused)
            && job
                .retry
                .is_some_and(|p| u16::from(job.retries) + 1 < u16::from(p.max_attempts))
    }

    /// Queue the job again for its next attempt (R-RETRY).
    fn retry(&mut self, id: JobId, message: &str) {
        let now = self.now_ms();
        let job = self.at_mut(id);
        let from = job.state;
        job.retries += 1;
        let backoff = backoff_ms(&job.retry.expect("model: a policy"), job.retries);
        job.state = State::Queued;
        job.pause_requested = false;
        job.cancel_requested = false;
        job.progress = 0;
        job.message = message.into();
        self.active.retain(|j| *j != id);
        if backoff == 0 {
            let job = self.at_mut(id);
            job.expiry = None;
            job.backoff_end = None;
            self.make_runnable(id);
        } else {
            let job = self.at_mut(id);
            let end = now + backoff;
            job.backoff_end = Some(end);
            job.expiry = Some(job.deadline().map_or(end, |d| d.min(end)));
            self.active.push(id);
        }
        self.change(
            id,
            KindView::StateChanged {
                from,
                to: State::Queued,
            },
            true,
        );
    }

    fn backoff_over(&self, id: JobId, at: u64) -> bool {
        let job = self.at(id);
        job.state == State::Queued && job.backoff_end.is_some_and(|end| end <= at)
    }

    /// The backoff is over: runnable, at the back of its level's queue.
    fn promote(&mut self, id: JobId) {
        let job = self.at_mut(id);
        job.backoff_end = None;
        job.expiry = None;
        self.active.retain(|j| *j != id);
        self.make_runnable(id);
        self.change(id, KindView::Ready, false);
    }

    fn end(&mut self, id: JobId, outcome: Outcome, detail: Option<Detail>, message: &str) {
        let entry = self.at_mut(id);
        entry.waiting.clear();
        let from = entry.state;
        let to = match outcome {
            Outcome::Succeeded { .. } => State::Succeeded,
            _ => State::Failed,
        };
        entry.state = to;
        entry.outcome = Some(outcome);
        entry.detail = detail;
        entry.message = message.into();
        entry.pause_requested = false;
        entry.cancel_requested = false;
        entry.expiry = None;
        entry.backoff_end = None;
        if to == State::Succeeded {
            entry.progress = 100;
        }
        self.not_runnable(id);
        self.active.retain(|j| *j != id);
        self.retained.push_back(id);
        self.change(id, KindView::StateChanged { from, to }, true);
    }

    fn finish(&mut self, id: JobId, outcome: Outcome, detail: Option<Detail>, message: &str) {
        self.end(id, outcome, detail, message);
        match outcome {
            Outcome::Succeeded { .. } => self.release(id),
            _ => self.cascade(id),
        }
    }

    /// Queued jobs still waiting for `id`, in submit order.
    fn dependents(&self, id: JobId) -> Vec<JobId> {
        let mut d: Vec<(u64, JobId)> = self
            .jobs
            .values()
            .filter(|e| e.waiting.contains(&id))
            .map(|e| (e.seq, e.id))
            .collect();
        d.sort();
        d.into_iter().map(|(_, id)| id).collect()
    }

    fn release(&mut self, id: JobId) {
        for d in self.dependents(id) {
            let entry = self.at_mut(d);
            entry.waiting.remove(&id);
            if entry.waiting.is_empty() && entry.state == State::Queued {
                self.make_runnable(d);
            }
        }
    }

    fn cascade(&mut self, root: JobId) {
        let mut failed = VecDeque::from([root]);
        while let Some(x) = failed.pop_front() {
            for d in self.dependents(x).into_iter().rev() {
                self.end(
                    d,
                    Self::failure(FailReason::DependencyFailed),
                    Some(Detail::Dependency(x)),
                    "",
                );
                failed.push_back(d);
            }
        }
    }

    fn failure(reason: FailReason) -> Outcome {
        Outcome::Failed {
            reason,
            code: reason.default_code(),
        }
    }

    fn evictable(&self, id: JobId) -> bool {
        self.retention_end(id) <= self.now_ms()
    }

    fn remove(&mut self, id: JobId) {
        let entry = self.jobs.remove(&id.index()).expect("model: removed job");
        if self.limits.tombstones > 0 {
            if self.tombstones.len() == self.limits.tombstones {
                self.tombstones.pop_front();
            }
            self.tombstones.push_back(Tombstone {
                id,
                outcome: entry.outcome.expect("model: terminal"),
                ended: instant(entry.modified),
            });
        }
        self.event(id, Kept::Kind(KindView::Removed));
        self.retained.retain(|j| *j != id);
        self.edges_used -= entry.depends_on.len();
        if self.generations[usize::from(id.index())] == u32::MAX {
            self.retired += 1;
        } else {
            self.free.push(id.index());
        }
    }

    /// A slot for a new job. Like the table, an eviction that retires its slot stays done
    /// even when no slot is found in the end (only reachable with a generation at `u32::MAX`).
    fn allocate(&mut self) -> Option<u16> {
        loop {
            if let Some(i) = self.free.pop() {
                return Some(i);
            }
            if self.fresh < self.limits.jobs {
                self.fresh += 1;
                return Some((self.fresh - 1) as u16);
            }
            let oldest = *self.retained.front()?;
            if !self.evictable(oldest) {
                return None;
            }
            self.remove(oldest);
        }
    }

    fn requeue(&mut self, id: JobId) {
        let job = self.at_mut(id);
        let from = job.state;
        job.state = State::Queued;
        job.pause_requested = false;
        job.cancel_requested = false;
        job.expiry = None;
        job.backoff_end = None;
        job.progress = 0;
        self.active.retain(|j| *j != id);
        self.make_runnable(id);
        self.change(
            id,
            KindView::StateChanged {
                from,
                to: State::Queued,
            },
            true,
        );
    }

    // ----- operations -----------------------------------------------------------------------

    /// `JobTable::submit` (the error of a refusal; the table hands the job back with it).
    pub fn submit(
        &mut self,
        spec: S,
        description: &str,
        depends_on: &[JobId],
        options: JobOptions,
        priority: Priority,
        now: Instant,
    ) -> Result<JobId, SubmitError> {
        self.submit_with(spec, description, depends_on, options, priority, None, now)
    }

    /// `JobTable::submit_idempotent` (R-IDEMPOTENT).
    pub fn submit_idempotent(
        &mut self,
        job: (S, &str, &[JobId], JobOptions, Priority, Option<RetryPolicy>),
        key: &[u8],
        fingerprint: u64,
        now: Instant,
    ) -> Result<Idempotent, SubmitError> {
        if let Some((_, fp, id)) = self.held_key(key) {
            return if fp == fingerprint {
                Ok(Idempotent::Existing(id))
            } else {
                Err(SubmitError::KeyConflict(id))
            };
        }
        self.keys
            .retain(|(_, _, id)| self.jobs.get(&id.index()).is_some_and(|e| e.id == *id));
        if self.keys.len() >= self.limits.keys {
            return Err(SubmitError::KeysFull);
        }
        let (spec, description, depends_on, options, priority, retry) = job;
        let id = self.submit_with(spec, description, depends_on, options, priority, retry, now)?;
        self.keys.push((key.to_vec(), fingerprint, id));
        Ok(Idempotent::New(id))
    }

    fn held_key(&self, key: &[u8]) -> Option<(Vec<u8>, u64, JobId)> {
        self.keys
            .iter()
            .find(|(k, _, id)| k == key && self.jobs.get(&id.index()).is_some_and(|e| e.id == *id))
            .cloned()
    }

    /// `JobTable::key_job`: the job a key names, while it is in the table.
    pub fn key_job(&self, key: &[u8]) -> Option<JobId> {
        self.held_key(key).map(|(_, _, id)| id)
    }

    /// `JobTable::submit` of a job with a retry policy (R-RETRY).
    #[allow(clippy::too_many_arguments)]
    pub fn submit_with(
        &mut self,
        spec: S,
        description: &str,
        depends_on: &[JobId],
        options: JobOptions,
        priority: Priority,
        retry: Option<RetryPolicy>,
        now: Instant,
    ) -> Result<JobId, SubmitError> {
        if description.len() > self.limits.text {
            return Err(SubmitError::TextTooLong {
                field: TextField::Description,
                limit: self.text_limit(),
            });
        }
        if depends_on.len() > MAX_DEPENDENCIES {
            return Err(SubmitError::TooManyDependencies);
        }
        let (Some(run_timeout), Some(lease)) =
            (duration_ms(options.run_timeout), duration_ms(options.lease))
        else {
            return Err(SubmitError::DurationTooLong);
        };
        let retry = match retry.map(|p| stored_policy(&p)) {
            Some(None) => return Err(SubmitError::InvalidRetryPolicy),
            Some(p) => p,
            None => None,
        };
        let mut waiting = BTreeSet::new();
        let mut failed_dep = None;
        for (k, dep) in depends_on.iter().enumerate() {
            if depends_on[..k].contains(dep) {
                return Err(SubmitError::DuplicateDependency(*dep));
            }
            let state = self
                .entry(*dep)
                .map_err(|error| SubmitError::UnknownDependency { id: *dep, error })?
                .state;
            match state {
                State::Succeeded => {}
                State::Failed => failed_dep = failed_dep.or(Some(*dep)),
                _ => {
                    waiting.insert(*dep);
                }
            }
        }
        if depends_on.len() > self.limits.edges - self.edges_used {
            return Err(SubmitError::DependenciesFull);
        }
        let before = self.now;
        self.clock(now);
        let Some(i) = self.allocate() else {
            self.now = before;
            return Err(SubmitError::TableFull);
        };
        let slot = usize::from(i);
        self.generations[slot] = self.generations[slot].saturating_add(1);
        let id = make_id(self.epoch, i, self.generations[slot]);
        assert!(self.issued.insert(id), "model: id {id} issued twice");
        self.seq += 1;
        self.edges_used += depends_on.len();
        let now = self.now_ms();
        let no_wait = waiting.is_empty();
        self.jobs.insert(
            i,
            Entry {
                id,
                spec,
                description: description.into(),
                state: State::Queued,
                progress: 0,
                message: String::new(),
                created: now,
                started: None,
                modified: now,
                revision: Revision::ZERO,
                state_revision: Revision::ZERO,
                outcome: None,
                detail: None,
                depends_on: depends_on.to_vec(),
                options: JobOptions {
                    run_timeout: duration_of(run_timeout),
                    lease: duration_of(lease),
                    ..options
                },
                priority,
                run_timeout,
                lease,
                pause_requested: false,
                cancel_requested: false,
                expiry: None,
                seq: self.seq,
                waiting,
                retry,
                retries: 0,
                backoff_end: None,
            },
        );
        self.change(id, KindView::Submitted, true);
        if let Some(dep) = failed_dep {
            self.finish(
                id,
                Self::failure(FailReason::DependencyFailed),
                Some(Detail::Dependency(dep)),
                "",
            );
        } else if no_wait {
            self.make_runnable(id);
        }
        Ok(id)
    }

    /// `JobTable::start`.
    pub fn start(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let state = self.enter(id, now)?;
        if state != State::Queued {
            return Err(JobError::Transition {
                from: state,
                to: State::Running,
            });
        }
        if self.at(id).backoff_end.is_some() {
            return Err(JobError::BackingOff);
        }
        if !self.at(id).waiting.is_empty() {
            return Err(JobError::DependenciesPending);
        }
        self.clock(now);
        let now = self.now_ms();
        self.not_runnable(id);
        self.active.push(id);
        let job = self.at_mut(id);
        job.state = State::Running;
        job.started = Some(job.started.unwrap_or(now));
        self.renew(id);
        self.change(
            id,
            KindView::StateChanged {
                from: State::Queued,
                to: State::Running,
            },
            true,
        );
        Ok(())
    }

    /// `JobTable::start_next`.
    pub fn start_next(&mut self, now: Instant) -> Option<JobId> {
        let id = self.peek_runnable()?;
        self.start(id, now).ok().map(|()| id)
    }

    /// `JobTable::progress`.
    pub fn progress(
        &mut self,
        id: JobId,
        percent: u8,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        if percent > 100 {
            return Err(JobError::ProgressOutOfRange(percent));
        }
        self.message_fits(message)?;
        if self.enter(id, now)? != State::Running {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        let job = self.at_mut(id);
        job.progress = percent;
        job.message = message.into();
        self.renew(id);
        self.change(id, KindView::Progress { percent }, false);
        Ok(())
    }

    /// `JobTable::log`.
    pub fn log(&mut self, id: JobId, line: &str, now: Instant) -> Result<(), JobError> {
        let ring = self.limits.log_ring;
        let most = self.limits.text.min(ring.saturating_sub(2).min(65_535));
        if line.len() > most {
            return Err(JobError::TextTooLong {
                field: TextField::LogLine,
                limit: u16::try_from(most).unwrap_or(u16::MAX),
            });
        }
        let state = self.enter(id, now)?;
        self.clock(now);
        if state == State::Running {
            self.renew(id);
        }
        let need = line.len() as u64 + 2;
        let ring = ring as u64;
        let start = if need > ring {
            None
        } else {
            let at = self.log_written % ring;
            if at + need > ring {
                self.log_written += ring - at;
            }
            let start = self.log_written;
            self.log_written += need;
            Some(start)
        };
        self.event(
            id,
            Kept::Log {
                line: line.into(),
                start,
            },
        );
        Ok(())
    }

    /// `JobTable::heartbeat`.
    pub fn heartbeat(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        if self.enter(id, now)? != State::Running {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        self.renew(id);
        Ok(())
    }

    /// `JobTable::checkpoint`.
    pub fn checkpoint(&mut self, id: JobId, now: Instant) -> Result<Directive, JobError> {
        let state = self.enter(id, now)?;
        if state == State::Queued {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        if state == State::Running {
            self.renew(id);
        }
        let job = self.at(id);
        let (cancel, pause) = (job.cancel_requested, job.pause_requested);
        if cancel {
            self.finish(
                id,
                Self::failure(FailReason::Canceled),
                Some(Detail::Canceled),
                "",
            );
            return Ok(Directive::Canceled);
        }
        if state == State::Running && pause {
            let job = self.at_mut(id);
            job.pause_requested = false;
            job.state = State::Paused;
            self.renew(id);
            self.change(
                id,
                KindView::StateChanged {
                    from: State::Running,
                    to: State::Paused,
                },
                true,
            );
            return Ok(Directive::Pause);
        }
        Ok(if state == State::Paused {
            Directive::Pause
        } else {
            Directive::Continue
        })
    }

    /// `JobTable::succeed`.
    pub fn succeed(
        &mut self,
        id: JobId,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.message_fits(message)?;
        let state = self.enter(id, now)?;
        if state != State::Running {
            return Err(JobError::Transition {
                from: state,
                to: State::Succeeded,
            });
        }
        self.clock(now);
        self.finish(id, Outcome::Succeeded { severity }, None, message);
        Ok(())
    }

    /// `JobTable::fail`: queued again while the retry policy allows another attempt.
    pub fn fail(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.message_fits(message)?;
        self.enter(id, now)?;
        self.clock(now);
        if self.retry_allowed(id) {
            self.retry(id, message);
            return Ok(());
        }
        let outcome = Outcome::Failed {
            reason: FailReason::Error,
            code,
        };
        self.finish(id, outcome, None, message);
        Ok(())
    }

    /// `JobTable::fail_final`: failed at once, whatever the policy.
    pub fn fail_final(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.fail_with(id, FailReason::Error, Some(code), message, now)
    }

    /// `JobTable::fail_with`: a restartable running or paused job interrupted this way goes
    /// back to the queue.
    pub fn fail_with(
        &mut self,
        id: JobId,
        reason: FailReason,
        code: Option<i32>,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.message_fits(message)?;
        let state = self.enter(id, now)?;
        self.clock(now);
        let active = matches!(state, State::Running | State::Paused);
        if reason == FailReason::Interrupted && active && self.at(id).options.restartable {
            self.requeue(id);
            return Ok(());
        }
        let detail = match reason {
            FailReason::Interrupted => Some(Detail::Interrupted),
            FailReason::Canceled => Some(Detail::Canceled),
            _ => None,
        };
        let outcome = Outcome::Failed {
            reason,
            code: code.unwrap_or(reason.default_code()),
        };
        self.finish(id, outcome, detail, message);
        Ok(())
    }

    /// `JobTable::worker_lost` (R-CLUSTER): the worker holding a running or paused job is
    /// gone. A pending cancel ends it `Canceled`; a restartable job is queued again; one with an
    /// attempt left is retried; any other fails `TimedOut` with the lease as the detail.
    pub fn worker_lost(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let state = self.enter(id, now)?;
        if !matches!(state, State::Running | State::Paused) {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        let job = self.at(id);
        if job.cancel_requested {
            self.finish(
                id,
                Self::failure(FailReason::Canceled),
                Some(Detail::Canceled),
                "",
            );
        } else if job.options.restartable {
            self.requeue(id);
        } else if self.retry_allowed(id) {
            self.retry(id, "");
        } else {
            self.finish(
                id,
                Self::failure(FailReason::TimedOut),
                Some(Detail::Lease),
                "",
            );
        }
        Ok(())
    }

    /// `JobTable::request_pause`.
    pub fn request_pause(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let state = self.enter(id, now)?;
        let job = self.at(id);
        if !job.options.pausable {
            return Err(JobError::NotPausable);
        }
        if state != State::Running {
            return Err(JobError::NotRunning);
        }
        if job.pause_requested {
            return Ok(());
        }
        self.clock(now);
        self.at_mut(id).pause_requested = true;
        self.change(id, KindView::Requested(Request::Pause), false);
        Ok(())
    }

    /// `JobTable::request_resume`.
    pub fn request_resume(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let state = self.enter(id, now)?;
        let pending = self.at(id).pause_requested;
        match state {
            State::Paused => {
                self.clock(now);
                self.at_mut(id).state = State::Running;
                self.renew(id);
                self.change(
                    id,
                    KindView::StateChanged {
                        from: State::Paused,
                        to: State::Running,
                    },
                    true,
                );
                Ok(())
            }
            State::Running if pending => {
                self.clock(now);
                self.at_mut(id).pause_requested = false;
                self.change(id, KindView::Requested(Request::Resume), false);
                Ok(())
            }
            _ => Err(JobError::NotPaused),
        }
    }

    /// `JobTable::request_cancel`.
    pub fn request_cancel(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let state = self.enter(id, now)?;
        let job = self.at(id);
        if !job.options.cancelable {
            return Err(JobError::NotCancelable);
        }
        if job.cancel_requested {
            return Ok(());
        }
        self.clock(now);
        if state == State::Queued {
            self.finish(
                id,
                Self::failure(FailReason::Canceled),
                Some(Detail::Canceled),
                "",
            );
        } else {
            self.at_mut(id).cancel_requested = true;
            self.change(id, KindView::Requested(Request::Cancel), false);
        }
        Ok(())
    }

    /// `JobTable::expire`.
    pub fn expire(&mut self, now: Instant) -> Expired {
        let now = ms(self.clock(now));
        let mut report = Expired::default();
        for id in self.active.clone() {
            if self.settle(id, now) {
                report.timed_out += 1;
            } else if self.backoff_over(id, now) {
                self.promote(id);
            }
        }
        while let Some(&oldest) = self.retained.front() {
            if !self.evictable(oldest) {
                break;
            }
            self.remove(oldest);
            report.removed += 1;
        }
        report
    }

    /// `JobTable::restore_in_place` of this table's own image (R-PERSIST).
    pub fn restore(&mut self, now: Instant) -> Restored {
        self.epoch += 1;
        self.revision += RESTORE_GAP;
        self.dropped = self.revision;
        self.journal.clear();
        self.log_written = 0;
        self.now = instant(ms(self.now));
        let ids: Vec<JobId> = self.jobs.values().map(|e| e.id).collect();
        for id in ids {
            let revision = self.event(id, Kept::Kind(KindView::Restored));
            self.at_mut(id).revision = revision;
        }
        self.clock(now);
        let mut report = Restored {
            jobs: self.jobs.len(),
            ..Restored::default()
        };
        for id in self.active.clone() {
            let job = self.at(id);
            if job.state == State::Queued {
                continue;
            }
            if job.cancel_requested {
                let outcome = Self::failure(FailReason::Canceled);
                self.finish(id, outcome, Some(Detail::Canceled), "");
                report.canceled += 1;
            } else if job.options.restartable {
                self.requeue(id);
                report.requeued += 1;
            } else {
                let outcome = Self::failure(FailReason::Interrupted);
                self.finish(id, outcome, Some(Detail::Interrupted), "");
                report.interrupted += 1;
            }
        }
        report
    }
}
