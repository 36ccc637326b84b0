//! The job table: fixed-size storage and the rules of a job's life.
//!
//! [`JobTable`] owns arrays sized by its const parameters; every rule is written once, over
//! slices, in [`Core`] (changes) and [`Ro`] (reads), which know nothing of the capacities. So
//! a program with two tables of different capacities (and the same spec type) carries one copy
//! of the code. The concerns live in their own files: `submit` (admission, allocation,
//! removal), `lifecycle` (the state machine), `revision` (revisions, journal events, texts),
//! `deps` (dependency edges and the cascade), `lists` (runnable, active, retained and free
//! lists), `lookup` (ids, reading), `timers` (deadlines, leases, retention).

mod capacity;
mod deps;
mod keys;
mod lifecycle;
mod lists;
mod lookup;
mod parts;
mod revision;
mod submit;
mod timers;

use heapless::{Deque, Vec};

use crate::error::{Compacted, JobError, LookupError, Refused};
use crate::id::{JobId, Revision};
use crate::job::NewJob;
use crate::journal::{Ev, Event, JournalRef};
use crate::record::{Edge, Slot, Tomb};
use crate::retain::Tombstone;
use crate::state::{Directive, FailReason, Severity};
use crate::time::{Duration, Instant};
use crate::view::{Job, JobRef};
use crate::wait::Condition;

pub use capacity::Table;
use keys::KeyEntry;
pub(crate) use keys::KeyEntry as KeyRecord;
pub use keys::{key_hash, Idempotent};
#[cfg(feature = "persist")]
pub(crate) use lifecycle::{Gone, Released};
#[cfg(feature = "persist")]
pub(crate) use lists::List;
#[cfg(feature = "embassy")]
pub(crate) use lookup::changed_jobs;
#[cfg(feature = "persist")]
pub(crate) use lookup::Text;
use parts::Limits;
pub(crate) use parts::{Core, Header, Ro};

/// Table-wide settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// How long a terminal job stays readable before it may be removed (R-RETAIN). ONTAP keeps
    /// jobs for 300 s, the default. Kept to the millisecond.
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms"))]
    pub retention: Duration,
}

impl Config {
    /// Retention 300 s.
    pub const DEFAULT: Config = Config {
        retention: Duration::from_secs(300),
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one [`JobTable::expire`] sweep did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Expired {
    /// Jobs whose deadline or lease passed, not counting their dependents: failed with
    /// `TimedOut`, or — a lost lease with retry attempts left (feature `retry`) — queued again
    /// for their next attempt.
    pub timed_out: usize,
    /// Terminal jobs removed because their retention passed.
    pub removed: usize,
}

/// A fixed-size table of jobs.
///
/// * `S` — the caller's spec type: what a job is to do;
/// * `N` — capacity in jobs (at most 65 534);
/// * `T` — text capacity in bytes of the description and of the message (default 64, at most
///   65 535);
/// * `J` — journal capacity in events (default 64; 16 bytes each);
/// * `L` — log-line ring in bytes (default 256; a line takes its length + 2);
/// * `E` — dependency edges shared by all jobs (default `N`; 20 bytes each);
/// * `K` — tombstones kept for removed jobs (default `N`; 24 bytes each);
/// * `I` — idempotency keys (default 0: none; 24 bytes each; give it about `2 × N` when
///   clients send keys, see [`JobTable::submit_idempotent`]).
///
/// Name the capacities once, in a type alias, and use it everywhere:
/// `type Jobs = JobTable<Op, 16>;`.
///
/// All memory is inside the value, and a new table with the default [`Config`] is all-zero
/// bytes: put it in a `static` (through a mutex) and it lands in `.bss`. Every operation takes
/// `now`; the table never reads a clock. Time never goes back inside the table: a `now` older
/// than one seen before counts as the newest seen.
///
/// ```
/// use jobstate::{Config, Directive, Instant, JobTable, NewJob, Severity, State};
///
/// type Jobs = JobTable<&'static str, 8>;
/// let mut table = Jobs::new(Config::DEFAULT);
/// let t0 = Instant::from_secs(0);
/// let set = table.submit(NewJob::new("create backend set"), t0).unwrap();
/// let server = table
///     .submit(NewJob::new("add backend server").depends_on(&[set]), t0)
///     .unwrap();
///
/// // Only the first is runnable; the second waits for it.
/// assert_eq!(table.start_next(t0), Some(set));
/// assert_eq!(table.start_next(t0), None);
/// table.progress(set, 50, "allocating", t0).unwrap();
/// assert_eq!(table.checkpoint(set, t0).unwrap(), Directive::Continue);
/// table.succeed(set, Severity::Normal, "created", t0).unwrap();
///
/// assert_eq!(table.start_next(t0), Some(server));
/// assert_eq!(table.get(server).unwrap().state(), State::Running);
/// ```
pub struct JobTable<
    S,
    const N: usize,
    const T: usize = 64,
    const J: usize = 64,
    const L: usize = 256,
    const E: usize = N,
    const K: usize = N,
    const I: usize = 0,
> {
    pub(crate) head: Header,
    pub(crate) slots: [Slot; N],
    pub(crate) specs: Vec<(u16, S), N, u16>,
    pub(crate) desc: [[u8; T]; N],
    pub(crate) msg: [[u8; T]; N],
    pub(crate) lens: [[u16; 2]; N],
    pub(crate) edges: [Edge; E],
    pub(crate) tombs: Deque<Tomb, K>,
    pub(crate) events: Deque<Ev, J>,
    pub(crate) logs: [u8; L],
    pub(crate) keys: [KeyEntry; I],
}

impl<
        S,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    > JobTable<S, N, T, J, L, E, K, I>
{
    /// An empty table in epoch 0. With [`Config::DEFAULT`] it is all-zero bytes, so a
    /// `static` holding it costs no flash (`.bss`).
    ///
    /// Capacities are checked at compile time: `N = 0`, `N ≥ 65 535`, `T > 65 535` or
    /// `E ≥ 65 535` fail to build with a message naming the parameter. `J = 0` (no journal),
    /// `L = 0` (no log lines kept), `E = 0` (no dependencies) and `K = 0` (no tombstones) are
    /// allowed.
    pub const fn new(config: Config) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Limits::<N, T, J, E>::OK;
        Self {
            head: Header::of(config),
            slots: [Slot::EMPTY; N],
            specs: Vec::new(),
            desc: [[0; T]; N],
            msg: [[0; T]; N],
            lens: [[0; 2]; N],
            edges: [Edge::EMPTY; E],
            tombs: Deque::new(),
            events: Deque::new(),
            logs: [0; L],
            keys: [KeyEntry::EMPTY; I],
        }
    }

    // Not inlined: one copy per table type instead of one per operation (the views are a dozen
    // words each); the rules behind them are shared by every capacity already.
    #[inline(never)]
    pub(crate) fn core(&mut self) -> Core<'_, S> {
        Core {
            h: &mut self.head,
            slots: &mut self.slots,
            specs: self.specs.as_mut_view(),
            desc: self.desc.as_flattened_mut(),
            msg: self.msg.as_flattened_mut(),
            lens: &mut self.lens,
            t: T,
            edges: &mut self.edges,
            tombs: self.tombs.as_mut_view(),
            events: self.events.as_mut_view(),
            logs: &mut self.logs,
            keys: &mut self.keys,
        }
    }

    #[inline(never)]
    pub(crate) fn ro(&self) -> Ro<'_, S> {
        Ro {
            h: &self.head,
            slots: &self.slots,
            specs: self.specs.as_view(),
            desc: self.desc.as_flattened(),
            msg: self.msg.as_flattened(),
            lens: &self.lens,
            t: T,
            edges: &self.edges,
            tombs: self.tombs.as_view(),
            journal: JournalRef {
                events: self.events.as_view(),
                logs: &self.logs,
                pos: self.head.log,
                dropped: self.head.dropped,
            },
        }
    }

    // ----- reading -------------------------------------------------------------------------

    /// The table's settings.
    pub fn config(&self) -> Config {
        Config {
            retention: self.head.retention(),
        }
    }

    /// Change the settings (retention) at run time: a firmware keeps its `static` table
    /// all-zero (`new(Config::DEFAULT)`, `.bss`) and sets its own retention at start-up.
    pub fn set_config(&mut self, config: Config) {
        self.head.retention = Header::of(config).retention;
    }

    /// Capacity in jobs (`N`), retired slots included.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Jobs in the table, terminal ones included.
    pub fn len(&self) -> usize {
        usize::from(self.head.len)
    }

    /// No job in the table.
    pub fn is_empty(&self) -> bool {
        self.head.len == 0
    }

    /// Slots retired for good because their generation counter was used up (R-ID).
    pub fn retired(&self) -> usize {
        usize::from(self.head.retired)
    }

    /// The revision of the latest change (R-VERSION).
    pub fn revision(&self) -> Revision {
        Revision::new(self.head.revision)
    }

    /// The table epoch: 0 for a new table, +1 on every restore (R-ID).
    pub fn epoch(&self) -> u32 {
        self.head.epoch
    }

    /// The newest `now` the table has seen.
    pub fn now(&self) -> Instant {
        Instant::from_ticks(self.head.now)
    }

    /// The job with this id, or why there is none (R-ID). O(1).
    pub fn get(&self, id: JobId) -> Result<JobRef<'_, S>, LookupError> {
        self.ro().get(id)
    }

    /// An owned copy of the job (R-WAIT answers, messages to other tasks).
    pub fn snapshot(&self, id: JobId) -> Result<Job<S, T>, LookupError>
    where
        S: Clone,
    {
        self.get(id).map(|j| j.snapshot())
    }

    /// The job, if `condition` holds for it now; `Ok(None)` if it does not yet (R-WAIT).
    pub fn check(
        &self,
        id: JobId,
        condition: Condition,
    ) -> Result<Option<JobRef<'_, S>>, LookupError> {
        let job = self.get(id)?;
        Ok(condition.holds(&job).then_some(job))
    }

    /// All jobs, in slot order. O(capacity).
    pub fn iter(&self) -> impl Iterator<Item = JobRef<'_, S>> {
        let ro = self.ro();
        (0..N).filter_map(move |i| ro.job_at(u16::try_from(i).ok()?))
    }

    /// The tombstones still kept, oldest first.
    pub fn tombstones(&self) -> impl Iterator<Item = Tombstone> + '_ {
        self.tombs.iter().map(Tombstone::of)
    }

    /// The job [`JobTable::start_next`] would start. O(1).
    pub fn peek_runnable(&self) -> Option<JobId> {
        self.ro().peek_runnable()
    }

    /// Journal events after revision `after`, oldest first (R-JOURNAL). An adapter that saw
    /// revision `r` learns from `journal(r)` exactly which jobs changed since, to wake their
    /// waiters; `Err(Compacted)` means "too far behind: treat everything as changed".
    pub fn journal(&self, after: Revision) -> Result<impl Iterator<Item = Event<'_>>, Compacted> {
        self.ro().journal(after)
    }

    /// The jobs that changed after revision `after`, in journal order (a job may come more than
    /// once): what a waker registry walks to wake exactly those jobs' waiters (R-LONGPOLL).
    /// `Err(Compacted)`: too far behind, wake every waiter.
    pub fn changed_since(
        &self,
        after: Revision,
    ) -> Result<impl Iterator<Item = JobId> + '_, Compacted> {
        lookup::changed_jobs(self.ro().journal, after, self.revision())
    }

    /// The earliest instant at which [`JobTable::expire`] has something to do: a deadline or
    /// lease running out, or a terminal job's retention passing. O(running jobs). A timer
    /// sleeps until then.
    pub fn next_timer(&self) -> Option<Instant> {
        self.ro().next_timer()
    }

    /// When a submit can next find a slot (R-FULL): now if one is free, the end of the oldest
    /// terminal job's retention otherwise, `None` while every slot holds a live job. O(1). An
    /// HTTP binding's `Retry-After`.
    pub fn next_free_at(&self) -> Option<Instant> {
        self.ro().next_free_at()
    }

    /// Test support, not part of the API: set the generation counter of an empty slot (one
    /// with no job), to reach generation exhaustion without 2^32 submits. Answers whether it
    /// did.
    #[doc(hidden)]
    pub fn set_slot_generation_for_tests(&mut self, index: u16, generation: u32) -> bool {
        match self.slots.get_mut(usize::from(index)) {
            Some(s) if s.phase == crate::record::Phase::Empty => {
                s.generation = generation;
                true
            }
            _ => false,
        }
    }

    // ----- changing ------------------------------------------------------------------------

    /// Accept a job (R-DEPS, R-FULL, R-INPUT).
    ///
    /// The job is `Queued`; it becomes runnable once every dependency has succeeded. A
    /// dependency that already failed fails the new job at once with `DependencyFailed`. When
    /// the table is full, the oldest terminal job whose retention has passed is removed to make
    /// room. A refusal hands the job back, spec included, with the reason ([`Refused`]); the
    /// table is then exactly as it was.
    #[allow(clippy::result_large_err)] // the caller's job comes back whole (R-FULL)
    pub fn submit<'a>(
        &mut self,
        job: NewJob<'a, S>,
        now: Instant,
    ) -> Result<JobId, Refused<'a, S>> {
        self.core().submit(job, now)
    }

    /// Accept a job under an idempotency key (R-IDEMPOTENT; OCI's `opc-retry-token`).
    ///
    /// `fingerprint` identifies the request (a hash of what the client sent, the caller's
    /// choice). While the job the key names is in the table (live, or terminal within its
    /// retention), the same key with the same fingerprint answers [`Idempotent::Existing`] and
    /// changes nothing; with another fingerprint it is refused with
    /// [`SubmitError::KeyConflict`](crate::SubmitError::KeyConflict). Otherwise the job is
    /// submitted as [`JobTable::submit`] does and the key recorded ([`Idempotent::New`]);
    /// [`SubmitError::KeysFull`](crate::SubmitError::KeysFull) when all `I` key entries name
    /// jobs still in the table. Keys are persisted with the table.
    #[allow(clippy::result_large_err)] // the caller's job comes back whole (R-FULL)
    pub fn submit_idempotent<'a>(
        &mut self,
        job: NewJob<'a, S>,
        key: &[u8],
        fingerprint: u64,
        now: Instant,
    ) -> Result<Idempotent, Refused<'a, S>> {
        self.core()
            .submit_idempotent(job, key_hash(key), fingerprint, now)
    }

    /// The job an idempotency key names, while it is in the table.
    pub fn key_job(&mut self, key: &[u8]) -> Option<JobId> {
        self.core().key_target(key_hash(key)).map(|(id, _)| id)
    }

    /// Start the oldest runnable job (R-SCHED). O(1).
    pub fn start_next(&mut self, now: Instant) -> Option<JobId> {
        self.core().start_next(now)
    }

    /// Start this queued job (`Queued → Running`). Its dependencies must all have succeeded.
    pub fn start(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        self.core().start(id, now)
    }

    /// Report progress of a running job: percent (0–100) and a short message. Renews the lease.
    pub fn progress(
        &mut self,
        id: JobId,
        percent: u8,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.core().progress(id, percent, message, now)
    }

    /// Append a log line of a live job to the journal (Oracle's work-request logs). The job's
    /// own fields do not change, so its revision does not either. Renews a running job's
    /// lease.
    pub fn log(&mut self, id: JobId, line: &str, now: Instant) -> Result<(), JobError> {
        self.core().log(id, line, now)
    }

    /// Renew the heartbeat lease of a running job (R-DEADLINE). Not an observable change.
    pub fn heartbeat(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        self.core().heartbeat(id, now)
    }

    /// The worker's checkpoint (R-CONTROL): applies pending requests and says what to do.
    ///
    /// * running, cancel requested → `Failed(Canceled)`, answers [`Directive::Canceled`];
    /// * running, pause requested → `Paused`, answers [`Directive::Pause`];
    /// * paused → [`Directive::Pause`] until resumed, [`Directive::Canceled`] once canceled;
    /// * otherwise [`Directive::Continue`]. Renews the lease of a running job.
    pub fn checkpoint(&mut self, id: JobId, now: Instant) -> Result<Directive, JobError> {
        self.core().checkpoint(id, now)
    }

    /// The worker finished well (`Running → Succeeded`). Dependents whose last dependency this
    /// was become runnable.
    pub fn succeed(
        &mut self,
        id: JobId,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.core().succeed(id, severity, message, now)
    }

    /// The job failed with the worker's error `code` (`Queued | Running | Paused → Failed`,
    /// reason `Error`). Its dependents fail with `DependencyFailed`, transitively.
    ///
    /// With a retry policy (feature `retry`) and attempts left, a running or paused job goes
    /// back to `Queued` instead, startable again once its backoff ends (R-RETRY); the message
    /// stays readable on it. [`JobTable::fail_final`] fails it for good.
    pub fn fail(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.core().fail_retrying(id, code, message, now)
    }

    /// The job failed with an error no retry will mend: `Failed(Error)` at once, whatever its
    /// retry policy.
    pub fn fail_final(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.core()
            .fail_with(id, FailReason::Error, Some(code), message, now)
    }

    /// Fail a live job with a given reason (an adapter's own failures: `Interrupted` when a
    /// worker pool shuts down, `TimedOut` when it gives up on a handler). `code` `None` takes
    /// [`FailReason::default_code`]. A restartable job interrupted this way is queued again
    /// instead (as a restart would), answering `Ok`.
    pub fn fail_with(
        &mut self,
        id: JobId,
        reason: FailReason,
        code: Option<i32>,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.core().fail_with(id, reason, code, message, now)
    }

    /// The worker holding a running or paused job is gone — its lease in a store shared by
    /// several processes ended (R-CLUSTER): a pending cancel is honoured (`Canceled`), a
    /// restartable job goes back to the queue, one with a retry left is retried, any other
    /// fails `TimedOut` with [`Detail::Lease`](crate::Detail::Lease). `NotRunning` for a
    /// queued job; a terminal one is `AlreadyTerminal`.
    pub fn worker_lost(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        self.core().worker_lost(id, now)
    }

    /// Ask a running job to pause at its next checkpoint (R-CONTROL). Asking again is a no-op.
    pub fn request_pause(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        self.core().request_pause(id, now)
    }

    /// Resume a paused job (`Paused → Running`), or withdraw a pause request the worker has not
    /// seen yet. Renews the lease.
    pub fn request_resume(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        self.core().request_resume(id, now)
    }

    /// Cancel a job (R-CONTROL): a queued job fails at once with `Canceled` (and its dependents
    /// with `DependencyFailed`); a running or paused one gets a flag its worker sees at the next
    /// checkpoint. Asking again is a no-op.
    pub fn request_cancel(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        self.core().request_cancel(id, now)
    }

    /// The timer sweep (R-DEADLINE, R-RETAIN): fail running or paused jobs whose deadline
    /// passed and running jobs whose lease ran out (`TimedOut`), then remove terminal jobs whose
    /// retention passed, leaving tombstones. O(running + removed).
    pub fn expire(&mut self, now: Instant) -> Expired {
        self.core().expire(now)
    }
}

impl<
        S,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    > Default for JobTable<S, N, T, J, L, E, K, I>
{
    fn default() -> Self {
        Self::new(Config::DEFAULT)
    }
}

impl<
        S,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    > core::fmt::Debug for JobTable<S, N, T, J, L, E, K, I>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JobTable")
            .field("len", &self.head.len)
            .field("capacity", &N)
            .field("revision", &self.head.revision)
            .field("epoch", &self.head.epoch)
            .finish_non_exhaustive()
    }
}
