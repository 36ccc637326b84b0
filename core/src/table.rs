//! The job table: fixed-size storage, the state machine, dependencies, retention.

use core::fmt::Write as _;

use heapless::{String, Vec};

use crate::error::{Compacted, JobError, LookupError, SubmitError};
use crate::id::{JobId, Revision};
use crate::job::{Deps, Job, NewJob, Text};
use crate::journal::{Event, EventKind, Journal};
use crate::links::{Edge, Ends, Links, List, NIL, NIL_EDGE, UNLINKED};
use crate::retain::{Tombstone, Tombstones};
use crate::state::{Directive, FailReason, Outcome, Request, Severity, State};
use crate::time::{self, Duration, Instant, Stamp};
use crate::wait::Condition;

/// Table-wide settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// How long a terminal job stays readable before it may be removed (R-RETAIN). ONTAP keeps
    /// jobs for 300 s, the default.
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ticks"))]
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
    /// Jobs failed with `TimedOut` (deadline or lease), not counting their dependents.
    pub timed_out: usize,
    /// Terminal jobs removed because their retention passed.
    pub removed: usize,
}

pub(crate) struct Slot<S, const T: usize, const D: usize> {
    pub(crate) generation: u32,
    pub(crate) job: Option<Job<S, T, D>>,
    pub(crate) links: Links<D>,
}

impl<S, const T: usize, const D: usize> Slot<S, T, D> {
    const EMPTY: Self = Slot {
        generation: 0,
        job: None,
        links: Links::EMPTY,
    };
}

/// A fixed-size table of jobs.
///
/// * `S` — the caller's spec type: what a job is to do;
/// * `N` — capacity in jobs (at most 65 534);
/// * `T` — text capacity in bytes of the description, the message and a log line (default 64,
///   at most 65 535);
/// * `D` — the most dependencies a job may have (default 4, at most 255);
/// * `J` — journal capacity in events (default 64).
///
/// All memory is inside the value: put it in a `static` (through a mutex) on firmware, in an
/// `Arc<Mutex<_>>` on a host. Every operation takes `now`; the table never reads a clock. Time
/// never goes back inside the table: a `now` older than one seen before counts as the newest seen.
///
/// ```
/// use jobstate::{Config, Directive, Instant, JobTable, NewJob, Severity, State};
///
/// let mut table: JobTable<&str, 8> = JobTable::new(Config::DEFAULT);
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
pub struct JobTable<S, const N: usize, const T: usize = 64, const D: usize = 4, const J: usize = 64>
{
    pub(crate) slots: [Slot<S, T, D>; N],
    /// Slots `fresh..N` have never been used.
    pub(crate) fresh: u16,
    pub(crate) free: u16,
    pub(crate) runnable: Ends,
    pub(crate) active: Ends,
    pub(crate) retained: Ends,
    pub(crate) len: u16,
    pub(crate) revision: Revision,
    pub(crate) epoch: u32,
    pub(crate) now: Instant,
    pub(crate) config: Config,
    pub(crate) journal: Journal<T, J>,
    pub(crate) tombstones: Tombstones<N>,
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> JobTable<S, N, T, D, J> {
    const LIMITS: () = assert!(
        N < NIL as usize
            && D <= u8::MAX as usize
            && T <= u16::MAX as usize
            && N.saturating_mul(D) < UNLINKED as usize,
        "jobstate: capacity must be below 65535, text at most 65535 bytes, dependencies at most 255"
    );

    /// An empty table in epoch 1.
    pub const fn new(config: Config) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::LIMITS;
        Self {
            slots: [Slot::EMPTY; N],
            fresh: 0,
            free: NIL,
            runnable: Ends::EMPTY,
            active: Ends::EMPTY,
            retained: Ends::EMPTY,
            len: 0,
            revision: Revision::ZERO,
            epoch: 1,
            now: Instant::from_ticks(0),
            config,
            journal: Journal::new(),
            tombstones: Tombstones::new(),
        }
    }

    // ----- reading -------------------------------------------------------------------------

    /// The table's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Capacity in jobs (`N`).
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Jobs in the table, terminal ones included.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// No job in the table.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The revision of the latest change (R-VERSION).
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The table epoch: 1 for a new table, +1 on every restore (R-ID).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The newest `now` the table has seen.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The job with this id, or why there is none (R-ID). O(1).
    pub fn get(&self, id: JobId) -> Result<&Job<S, T, D>, LookupError> {
        let i = self.locate(id)?;
        self.job(i).ok_or(LookupError::NotFound)
    }

    /// The job, if `condition` holds for it now; `Ok(None)` if it does not yet (R-WAIT).
    pub fn check(
        &self,
        id: JobId,
        condition: Condition,
    ) -> Result<Option<&Job<S, T, D>>, LookupError> {
        let job = self.get(id)?;
        Ok(condition.holds(job).then_some(job))
    }

    /// All jobs, in slot order. O(capacity).
    pub fn iter(&self) -> impl Iterator<Item = &Job<S, T, D>> {
        self.slots.iter().filter_map(|s| s.job.as_ref())
    }

    /// The tombstones still kept, oldest first.
    pub fn tombstones(&self) -> impl Iterator<Item = &Tombstone> {
        self.tombstones.iter()
    }

    /// The job [`JobTable::start_next`] would start. O(1).
    pub fn peek_runnable(&self) -> Option<JobId> {
        self.job(self.runnable.head).map(|j| j.id)
    }

    /// Journal events after revision `after`, oldest first (R-JOURNAL). An adapter that saw
    /// revision `r` learns from `journal(r)` exactly which jobs changed since, to wake their
    /// waiters; `Err(Compacted)` means "too far behind: treat everything as changed".
    pub fn journal(&self, after: Revision) -> Result<impl Iterator<Item = &Event<T>>, Compacted> {
        self.journal.since(after, self.revision)
    }

    /// The earliest instant at which [`JobTable::expire`] has something to do: a deadline or
    /// lease running out, or a terminal job's retention passing. O(running jobs). A timer
    /// sleeps until then.
    pub fn next_timer(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut keep = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        let mut i = self.active.head;
        while let Some(slot) = self.slot(i) {
            if let Some(job) = &slot.job {
                keep(job.deadline.get());
                if job.state == State::Running {
                    keep(job.lease_until.get());
                }
            }
            i = slot.links.next;
        }
        keep(
            self.job(self.retained.head)
                .and_then(|j| self.retention_end(j)),
        );
        next
    }

    // ----- submitting ----------------------------------------------------------------------

    /// Accept a job (R-DEPS, R-FULL, R-INPUT).
    ///
    /// The job is `Queued`; it becomes runnable once every dependency has succeeded. A
    /// dependency that already failed fails the new job at once with `DependencyFailed`. When
    /// the table is full, the oldest terminal job whose retention has passed is removed to make
    /// room; if there is none, [`SubmitError::TableFull`]. On any error nothing changes.
    pub fn submit(&mut self, new: NewJob<'_, S>, now: Instant) -> Result<JobId, SubmitError> {
        let description =
            Text::<T>::try_from(new.description).map_err(|_| SubmitError::TextTooLong)?;
        let depends_on =
            Deps::<D>::from_slice(new.depends_on).map_err(|_| SubmitError::TooManyDependencies)?;
        let mut unmet: u8 = 0;
        let mut failed_dep: Option<JobId> = None;
        for (k, dep) in depends_on.iter().enumerate() {
            if depends_on.iter().take(k).any(|d| d == dep) {
                return Err(SubmitError::DuplicateDependency(*dep));
            }
            let job = self
                .get(*dep)
                .map_err(|error| SubmitError::UnknownDependency { id: *dep, error })?;
            match job.state {
                State::Succeeded => {}
                State::Failed => failed_dep = failed_dep.or(Some(*dep)),
                _ => unmet = unmet.saturating_add(1),
            }
        }
        let before = self.now;
        let now = self.clock(now);
        let Some(i) = self.allocate() else {
            // Refused: not even the clock moves.
            self.now = before;
            return Err(SubmitError::TableFull);
        };
        let epoch = self.epoch;
        let slot = self.slot_mut(i).ok_or(SubmitError::TableFull)?;
        let generation = match slot.generation.wrapping_add(1) {
            0 => 1,
            g => g,
        };
        slot.generation = generation;
        let id = JobId::new(epoch, i, generation);
        slot.links = Links::EMPTY;
        slot.job = Some(Job {
            id,
            spec: new.spec,
            description,
            state: State::Queued,
            progress: 0,
            message: Text::new(),
            created: now,
            started: Stamp::NEVER,
            ended: Stamp::NEVER,
            modified: now,
            revision: Revision::ZERO,
            state_revision: Revision::ZERO,
            version: 0,
            outcome: None,
            depends_on,
            options: new.options,
            pause_requested: false,
            cancel_requested: false,
            deadline: Stamp::NEVER,
            lease_until: Stamp::NEVER,
        });
        self.len = self.len.saturating_add(1);
        self.change(i, EventKind::Submitted, true);
        self.link_dependencies(i);
        if let Some(dep) = failed_dep {
            let mut msg = Text::<T>::new();
            let _ = write!(msg, "dependency {dep} failed");
            self.finish(
                i,
                Outcome::Failed {
                    reason: FailReason::DependencyFailed,
                    code: FailReason::DependencyFailed.default_code(),
                },
                msg,
            );
        } else if unmet == 0 {
            self.push_back(List::Runnable, i);
        }
        Ok(id)
    }

    // ----- worker side ---------------------------------------------------------------------

    /// Start the oldest runnable job (R-SCHED): the one that became runnable first. O(1).
    pub fn start_next(&mut self, now: Instant) -> Option<JobId> {
        let id = self.peek_runnable()?;
        self.start(id, now).ok().map(|()| id)
    }

    /// Start this queued job (`Queued → Running`). Its dependencies must all have succeeded.
    pub fn start(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, list) = self.state_and_list(i)?;
        if state != State::Queued {
            return Err(JobError::Transition {
                from: state,
                to: State::Running,
            });
        }
        if list != List::Runnable {
            return Err(JobError::DependenciesPending);
        }
        let now = self.clock(now);
        self.unlink(i);
        self.push_back(List::Active, i);
        if let Some(job) = self.job_mut(i) {
            job.state = State::Running;
            job.started = Stamp::at(job.started.get().unwrap_or(now));
            job.deadline = Stamp::new(job.options.run_timeout.map(|d| time::add(now, d)));
            job.lease_until = Stamp::new(job.options.lease.map(|d| time::add(now, d)));
        }
        self.change(
            i,
            EventKind::StateChanged {
                from: State::Queued,
                to: State::Running,
            },
            true,
        );
        Ok(())
    }

    /// Report progress of a running job: percent (0–100) and a short message. Renews the lease.
    pub fn progress(
        &mut self,
        id: JobId,
        percent: u8,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        Self::live(state)?;
        if state != State::Running {
            return Err(JobError::NotRunning);
        }
        if percent > 100 {
            return Err(JobError::ProgressOutOfRange(percent));
        }
        let message = Text::<T>::try_from(message).map_err(|_| JobError::TextTooLong)?;
        let now = self.clock(now);
        if let Some(job) = self.job_mut(i) {
            job.progress = percent;
            job.message = message;
            job.lease_until = Stamp::new(job.options.lease.map(|d| time::add(now, d)));
        }
        self.change(i, EventKind::Progress { percent }, false);
        Ok(())
    }

    /// Append a log line for a live job to the journal (Oracle's work-request logs). The job's
    /// own fields do not change, so its version does not either.
    pub fn log(&mut self, id: JobId, line: &str, now: Instant) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        Self::live(state)?;
        let line = String::<T>::try_from(line).map_err(|_| JobError::TextTooLong)?;
        self.clock(now);
        self.record(id, EventKind::Log(line));
        Ok(())
    }

    /// Renew the heartbeat lease of a running job (R-DEADLINE). Not an observable change.
    pub fn heartbeat(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        Self::live(state)?;
        if state != State::Running {
            return Err(JobError::NotRunning);
        }
        let now = self.clock(now);
        if let Some(job) = self.job_mut(i) {
            job.lease_until = Stamp::new(job.options.lease.map(|d| time::add(now, d)));
        }
        Ok(())
    }

    /// The worker's checkpoint (R-CONTROL): applies pending requests and says what to do.
    ///
    /// * running, cancel requested → `Failed(Canceled)`, answers [`Directive::Canceled`];
    /// * running, pause requested → `Paused`, answers [`Directive::Pause`];
    /// * paused → [`Directive::Pause`] until resumed, [`Directive::Canceled`] once canceled;
    /// * otherwise [`Directive::Continue`]. Renews the lease of a running job.
    pub fn checkpoint(&mut self, id: JobId, now: Instant) -> Result<Directive, JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        Self::live(state)?;
        if state == State::Queued {
            return Err(JobError::NotRunning);
        }
        let now = self.clock(now);
        let (cancel, pause) = match self.job_mut(i) {
            Some(job) => {
                if state == State::Running {
                    job.lease_until = Stamp::new(job.options.lease.map(|d| time::add(now, d)));
                }
                (job.cancel_requested, job.pause_requested)
            }
            None => return Err(JobError::Lookup(LookupError::NotFound)),
        };
        match state {
            State::Queued => Err(JobError::NotRunning),
            _ if cancel => {
                let mut msg = Text::<T>::new();
                let _ = msg.push_str("canceled");
                self.finish(i, Self::failure(FailReason::Canceled), msg);
                Ok(Directive::Canceled)
            }
            State::Running if pause => {
                if let Some(job) = self.job_mut(i) {
                    job.pause_requested = false;
                    job.state = State::Paused;
                }
                self.change(
                    i,
                    EventKind::StateChanged {
                        from: State::Running,
                        to: State::Paused,
                    },
                    true,
                );
                Ok(Directive::Pause)
            }
            State::Paused => Ok(Directive::Pause),
            _ => Ok(Directive::Continue),
        }
    }

    /// The worker finished well (`Running → Succeeded`). Dependents whose last dependency this
    /// was become runnable, in the order of their dependency lists' completion.
    pub fn succeed(
        &mut self,
        id: JobId,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        if state != State::Running {
            return Err(JobError::Transition {
                from: state,
                to: State::Succeeded,
            });
        }
        let message = Text::<T>::try_from(message).map_err(|_| JobError::TextTooLong)?;
        self.clock(now);
        self.finish(i, Outcome::Succeeded { severity }, message);
        Ok(())
    }

    /// The job failed with the worker's error `code` (`Queued | Running | Paused → Failed`,
    /// reason `Error`). Its dependents fail with `DependencyFailed`, transitively.
    pub fn fail(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        if state.is_terminal() {
            return Err(JobError::Transition {
                from: state,
                to: State::Failed,
            });
        }
        let message = Text::<T>::try_from(message).map_err(|_| JobError::TextTooLong)?;
        self.clock(now);
        let outcome = Outcome::Failed {
            reason: FailReason::Error,
            code,
        };
        self.finish(i, outcome, message);
        Ok(())
    }

    // ----- client requests -----------------------------------------------------------------

    /// Ask a running job to pause at its next checkpoint (R-CONTROL). Asking again is a no-op.
    pub fn request_pause(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        Self::live(state)?;
        let job = self.job(i).ok_or(JobError::Lookup(LookupError::NotFound))?;
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
        if let Some(job) = self.job_mut(i) {
            job.pause_requested = true;
        }
        self.change(i, EventKind::Requested(Request::Pause), false);
        Ok(())
    }

    /// Resume a paused job (`Paused → Running`), or withdraw a pause request the worker has not
    /// seen yet. Renews the lease.
    pub fn request_resume(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        Self::live(state)?;
        let pending = self.job(i).is_some_and(|j| j.pause_requested);
        if state != State::Paused && !pending {
            return Err(JobError::NotPaused);
        }
        let now = self.clock(now);
        match state {
            State::Paused => {
                if let Some(job) = self.job_mut(i) {
                    job.state = State::Running;
                    job.lease_until = Stamp::new(job.options.lease.map(|d| time::add(now, d)));
                }
                self.change(
                    i,
                    EventKind::StateChanged {
                        from: State::Paused,
                        to: State::Running,
                    },
                    true,
                );
                Ok(())
            }
            State::Running if pending => {
                if let Some(job) = self.job_mut(i) {
                    job.pause_requested = false;
                }
                self.change(i, EventKind::Requested(Request::Resume), false);
                Ok(())
            }
            _ => Err(JobError::NotPaused),
        }
    }

    /// Cancel a job (R-CONTROL): a queued job fails at once with `Canceled` (and its dependents
    /// with `DependencyFailed`); a running or paused one gets a flag its worker sees at the next
    /// checkpoint. Asking again is a no-op.
    pub fn request_cancel(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.locate(id)?;
        let (state, _) = self.state_and_list(i)?;
        Self::live(state)?;
        let job = self.job(i).ok_or(JobError::Lookup(LookupError::NotFound))?;
        if !job.options.cancelable {
            return Err(JobError::NotCancelable);
        }
        if job.cancel_requested {
            return Ok(());
        }
        self.clock(now);
        if state == State::Queued {
            let mut msg = Text::<T>::new();
            let _ = msg.push_str("canceled");
            self.finish(i, Self::failure(FailReason::Canceled), msg);
        } else {
            if let Some(job) = self.job_mut(i) {
                job.cancel_requested = true;
            }
            self.change(i, EventKind::Requested(Request::Cancel), false);
        }
        Ok(())
    }

    // ----- time ----------------------------------------------------------------------------

    /// The timer sweep (R-DEADLINE, R-RETAIN): fail running or paused jobs whose deadline
    /// passed and running jobs whose lease ran out (`TimedOut`), then remove terminal jobs whose
    /// retention passed, leaving tombstones. O(running + removed).
    pub fn expire(&mut self, now: Instant) -> Expired {
        let now = self.clock(now);
        let mut report = Expired::default();
        let mut i = self.active.head;
        while let Some(slot) = self.slot(i) {
            let next = slot.links.next;
            if let Some(job) = &slot.job {
                let deadline = job.deadline.get().is_some_and(|d| d <= now);
                let lease =
                    job.state == State::Running && job.lease_until.get().is_some_and(|l| l <= now);
                if deadline || lease {
                    let mut msg = Text::<T>::new();
                    let _ = msg.push_str(if deadline {
                        "deadline passed"
                    } else {
                        "heartbeat lease expired"
                    });
                    self.finish(i, Self::failure(FailReason::TimedOut), msg);
                    report.timed_out = report.timed_out.saturating_add(1);
                }
            }
            i = next;
        }
        while self.evictable(self.retained.head) {
            self.remove(self.retained.head);
            report.removed = report.removed.saturating_add(1);
        }
        report
    }

    // ----- internals -----------------------------------------------------------------------

    /// Clamp `now` so time never goes back inside the table.
    pub(crate) fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    pub(crate) fn failure(reason: FailReason) -> Outcome {
        Outcome::Failed {
            reason,
            code: reason.default_code(),
        }
    }

    fn live(state: State) -> Result<(), JobError> {
        if state.is_terminal() {
            Err(JobError::AlreadyTerminal)
        } else {
            Ok(())
        }
    }

    pub(crate) fn slot(&self, i: u16) -> Option<&Slot<S, T, D>> {
        self.slots.get(usize::from(i))
    }

    pub(crate) fn slot_mut(&mut self, i: u16) -> Option<&mut Slot<S, T, D>> {
        self.slots.get_mut(usize::from(i))
    }

    pub(crate) fn job(&self, i: u16) -> Option<&Job<S, T, D>> {
        self.slot(i).and_then(|s| s.job.as_ref())
    }

    pub(crate) fn job_mut(&mut self, i: u16) -> Option<&mut Job<S, T, D>> {
        self.slot_mut(i).and_then(|s| s.job.as_mut())
    }

    fn state_and_list(&self, i: u16) -> Result<(State, List), JobError> {
        let slot = self
            .slot(i)
            .ok_or(JobError::Lookup(LookupError::NotFound))?;
        let job = slot
            .job
            .as_ref()
            .ok_or(JobError::Lookup(LookupError::NotFound))?;
        Ok((job.state, slot.links.list))
    }

    /// Id → slot index, or why not (R-ID).
    ///
    /// A job restored from a persisted image keeps the id it was given before the restart, so
    /// the caller that was told about it still finds it. Any other id from an earlier epoch is
    /// `Stale` (or `Expired` with its tombstone, when one is kept).
    pub(crate) fn locate(&self, id: JobId) -> Result<u16, LookupError> {
        if id.epoch() > self.epoch {
            return Err(LookupError::NotFound);
        }
        let slot = self.slot(id.index());
        if slot
            .and_then(|s| s.job.as_ref())
            .is_some_and(|j| j.id == id)
        {
            return Ok(id.index());
        }
        if id.epoch() < self.epoch {
            return Err(match self.tombstones.find(id) {
                Some(t) => LookupError::Expired(Some(t)),
                None => LookupError::Stale,
            });
        }
        let generation = slot.map_or(0, |s| s.generation);
        if id.generation() != 0 && id.generation() <= generation {
            Err(LookupError::Expired(self.tombstones.find(id)))
        } else {
            Err(LookupError::NotFound)
        }
    }

    fn retention_end(&self, job: &Job<S, T, D>) -> Option<Instant> {
        job.ended.get().map(|e| time::add(e, self.config.retention))
    }

    fn evictable(&self, i: u16) -> bool {
        self.job(i)
            .and_then(|j| self.retention_end(j))
            .is_some_and(|end| end <= self.now)
    }

    /// A free slot: a released one, a never-used one, or the oldest expired terminal job's.
    fn allocate(&mut self) -> Option<u16> {
        if self.free != NIL {
            let i = self.free;
            self.unlink(i);
            return Some(i);
        }
        if usize::from(self.fresh) < N {
            let i = self.fresh;
            self.fresh = self.fresh.saturating_add(1);
            return Some(i);
        }
        let head = self.retained.head;
        if self.evictable(head) {
            self.remove(head);
            self.unlink(head);
            return Some(head);
        }
        None
    }

    /// Take a revision for a change to the job in slot `i` and journal it.
    pub(crate) fn change(&mut self, i: u16, kind: EventKind<T>, state_change: bool) {
        let revision = self.revision.next();
        let now = self.now;
        let Some(job) = self.job_mut(i) else { return };
        job.revision = revision;
        if state_change {
            job.state_revision = revision;
        }
        job.version = job.version.saturating_add(1);
        job.modified = now;
        let id = job.id;
        self.revision = revision;
        self.journal.push(Event {
            revision,
            job: id,
            kind,
        });
    }

    /// Take a revision for an event that does not change a job's fields.
    fn record(&mut self, id: JobId, kind: EventKind<T>) {
        self.revision = self.revision.next();
        self.journal.push(Event {
            revision: self.revision,
            job: id,
            kind,
        });
    }

    /// Move the job in slot `i` to its terminal state, then release or fail its dependents.
    pub(crate) fn finish(&mut self, i: u16, outcome: Outcome, message: Text<T>) {
        self.end(i, outcome, message);
        if let Outcome::Succeeded { .. } = outcome {
            self.release_dependents(i);
        } else {
            self.cascade(i);
        }
    }

    fn end(&mut self, i: u16, outcome: Outcome, message: Text<T>) {
        let now = self.now;
        let Some(job) = self.job_mut(i) else { return };
        let from = job.state;
        let to = outcome.state();
        job.state = to;
        job.outcome = Some(outcome);
        job.ended = Stamp::at(now);
        job.message = message;
        job.pause_requested = false;
        job.cancel_requested = false;
        job.lease_until = Stamp::NEVER;
        if to == State::Succeeded {
            job.progress = 100;
        }
        self.unlink(i);
        self.push_back(List::Retained, i);
        self.unlink_dependencies(i);
        self.change(i, EventKind::StateChanged { from, to }, true);
    }

    /// `i` succeeded: each dependent has one dependency fewer to wait for.
    ///
    /// Dependents are listed newest first; each one released goes in front of those this call
    /// released before it, so jobs that become runnable together queue oldest first (R-SCHED).
    fn release_dependents(&mut self, i: u16) {
        let anchor = self.runnable.tail;
        loop {
            let e = match self.slot(i) {
                Some(s) if s.links.dependents != NIL_EDGE => s.links.dependents,
                _ => return,
            };
            self.unlink_edge(e);
            let Some(d) = self.edge_owner(e) else { return };
            let Some(slot) = self.slot_mut(d) else { return };
            slot.links.unmet = slot.links.unmet.saturating_sub(1);
            let ready = slot.links.unmet == 0
                && slot.links.list == List::None
                && slot.job.as_ref().is_some_and(|j| j.state == State::Queued);
            if ready {
                self.insert_after(List::Runnable, anchor, d);
            }
        }
    }

    /// `root` failed: fail its dependents with `DependencyFailed`, transitively. Iterative,
    /// with the stack threaded through the slots, so no recursion and no extra memory.
    fn cascade(&mut self, root: u16) {
        let mut stack = root;
        if let Some(s) = self.slot_mut(root) {
            s.links.cascade = NIL;
        }
        while let Some(failed) = self.slot(stack) {
            let x = stack;
            stack = failed.links.cascade;
            let failed_id = failed.job.as_ref().map(|j| j.id);
            loop {
                let e = match self.slot(x) {
                    Some(s) if s.links.dependents != NIL_EDGE => s.links.dependents,
                    _ => break,
                };
                let Some(d) = self.edge_owner(e) else {
                    self.unlink_edge(e);
                    continue;
                };
                let mut msg = Text::<T>::new();
                if let Some(id) = failed_id {
                    let _ = write!(msg, "dependency {id} failed");
                }
                // Ending `d` unlinks all of its edges, `e` among them.
                self.end(d, Self::failure(FailReason::DependencyFailed), msg);
                self.unlink_edge(e);
                if let Some(s) = self.slot_mut(d) {
                    s.links.cascade = stack;
                }
                stack = d;
            }
        }
    }

    /// Remove the terminal job in slot `i`, leaving a tombstone; the slot goes to the free list.
    pub(crate) fn remove(&mut self, i: u16) {
        let Some(slot) = self.slot_mut(i) else { return };
        let Some(job) = slot.job.take() else { return };
        self.len = self.len.saturating_sub(1);
        if let (Some(outcome), Some(ended)) = (job.outcome, job.ended.get()) {
            self.tombstones.push(Tombstone {
                id: job.id,
                outcome,
                ended,
            });
        }
        self.record(job.id, EventKind::Removed);
        self.unlink(i);
        self.push_front_free(i);
    }

    // ----- lists and edges -----------------------------------------------------------------

    fn ends_mut(&mut self, list: List) -> Option<&mut Ends> {
        match list {
            List::Runnable => Some(&mut self.runnable),
            List::Active => Some(&mut self.active),
            List::Retained => Some(&mut self.retained),
            List::None | List::Free => None,
        }
    }

    pub(crate) fn push_back(&mut self, list: List, i: u16) {
        let Some(ends) = self.ends_mut(list) else {
            return;
        };
        let tail = ends.tail;
        ends.tail = i;
        if ends.head == NIL {
            ends.head = i;
        }
        if let Some(t) = self.slot_mut(tail) {
            t.links.next = i;
        }
        if let Some(s) = self.slot_mut(i) {
            s.links.list = list;
            s.links.prev = tail;
            s.links.next = NIL;
        }
    }

    /// Put slot `i` on `list` right after slot `after`, or at the head when `after` is NIL.
    fn insert_after(&mut self, list: List, after: u16, i: u16) {
        let next = match self.slot(after) {
            Some(a) => a.links.next,
            None => match self.ends_mut(list) {
                Some(ends) => ends.head,
                None => return,
            },
        };
        if let Some(s) = self.slot_mut(i) {
            s.links.list = list;
            s.links.prev = after;
            s.links.next = next;
        }
        match self.slot_mut(after) {
            Some(a) => a.links.next = i,
            None => {
                if let Some(ends) = self.ends_mut(list) {
                    ends.head = i;
                }
            }
        }
        match self.slot_mut(next) {
            Some(n) => n.links.prev = i,
            None => {
                if let Some(ends) = self.ends_mut(list) {
                    ends.tail = i;
                }
            }
        }
    }

    fn push_front_free(&mut self, i: u16) {
        let head = self.free;
        if let Some(s) = self.slot_mut(i) {
            s.links.list = List::Free;
            s.links.prev = NIL;
            s.links.next = head;
        }
        if let Some(h) = self.slot_mut(head) {
            h.links.prev = i;
        }
        self.free = i;
    }

    /// Take slot `i` off whatever list it is on.
    pub(crate) fn unlink(&mut self, i: u16) {
        let Some(s) = self.slot(i) else { return };
        let (list, prev, next) = (s.links.list, s.links.prev, s.links.next);
        match self.slot_mut(prev) {
            Some(p) => p.links.next = next,
            None => match list {
                List::Free => self.free = next,
                other => {
                    if let Some(ends) = self.ends_mut(other) {
                        ends.head = next;
                    }
                }
            },
        }
        match self.slot_mut(next) {
            Some(n) => n.links.prev = prev,
            None => {
                if let Some(ends) = self.ends_mut(list) {
                    ends.tail = prev;
                }
            }
        }
        if let Some(s) = self.slot_mut(i) {
            s.links.list = List::None;
            s.links.prev = NIL;
            s.links.next = NIL;
        }
    }

    fn edge_ref(i: u16, k: usize) -> u32 {
        let d = u32::try_from(D).unwrap_or(u32::MAX);
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        u32::from(i).saturating_mul(d).saturating_add(k)
    }

    fn edge_owner(&self, e: u32) -> Option<u16> {
        let d = u32::try_from(D).ok()?;
        e.checked_div(d).and_then(|i| u16::try_from(i).ok())
    }

    /// The slot edge `e` points at: its owner's dependency `k`, which while the edge is linked
    /// is live and so sits at its id's index.
    fn edge_target(&self, e: u32) -> u16 {
        let Ok(d) = u32::try_from(D) else { return NIL };
        let owner = e.checked_div(d).and_then(|i| u16::try_from(i).ok());
        let k = e.checked_rem(d).and_then(|k| usize::try_from(k).ok());
        match (owner.and_then(|i| self.job(i)), k) {
            (Some(job), Some(k)) => job.depends_on.get(k).map_or(NIL, |id| id.index()),
            _ => NIL,
        }
    }

    fn edge_mut(&mut self, e: u32) -> Option<&mut Edge> {
        let d = u32::try_from(D).ok()?;
        let i = u16::try_from(e.checked_div(d)?).ok()?;
        let k = usize::try_from(e.checked_rem(d)?).ok()?;
        self.slot_mut(i)?.links.edges.get_mut(k)
    }

    /// Link slot `i`'s edges into the dependents lists of its live dependencies and count them.
    pub(crate) fn link_dependencies(&mut self, i: u16) {
        let mut targets: Vec<u16, D> = Vec::new();
        if let Some(job) = self.job(i) {
            for dep in &job.depends_on {
                let live = self
                    .locate(*dep)
                    .ok()
                    .filter(|t| self.job(*t).is_some_and(|j| !j.state.is_terminal()));
                let _ = targets.push(live.unwrap_or(NIL));
            }
        }
        let mut unmet: u8 = 0;
        for (k, target) in targets.into_iter().enumerate() {
            if target == NIL {
                continue;
            }
            let e = Self::edge_ref(i, k);
            let head = self.slot(target).map_or(NIL_EDGE, |s| s.links.dependents);
            if let Some(edge) = self.edge_mut(e) {
                *edge = Edge {
                    prev: NIL_EDGE,
                    next: head,
                };
            }
            if let Some(h) = self.edge_mut(head) {
                h.prev = e;
            }
            if let Some(t) = self.slot_mut(target) {
                t.links.dependents = e;
            }
            unmet = unmet.saturating_add(1);
        }
        if let Some(s) = self.slot_mut(i) {
            s.links.unmet = unmet;
        }
    }

    fn unlink_dependencies(&mut self, i: u16) {
        for k in 0..D {
            self.unlink_edge(Self::edge_ref(i, k));
        }
    }

    fn unlink_edge(&mut self, e: u32) {
        let Some(edge) = self.edge_mut(e) else { return };
        if !edge.linked() {
            return;
        }
        let Edge { prev, next } = *edge;
        *edge = Edge::EMPTY;
        let target = self.edge_target(e);
        match self.edge_mut(prev) {
            Some(p) => p.next = next,
            None => {
                if let Some(t) = self.slot_mut(target) {
                    t.links.dependents = next;
                }
            }
        }
        if let Some(n) = self.edge_mut(next) {
            n.prev = prev;
        }
    }
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> Default
    for JobTable<S, N, T, D, J>
{
    fn default() -> Self {
        Self::new(Config::DEFAULT)
    }
}
