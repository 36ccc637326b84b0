//! The job: what a caller submits ([`NewJob`]) and what it reads back ([`Job`]).

use heapless::{String, Vec};

use crate::id::{JobId, Revision};

/// A job's text (description, message): `T` bytes with a 16-bit length, so the table's text
/// capacity is at most 65 535 bytes.
pub(crate) type Text<const T: usize> = String<T, u16>;

/// A job's dependencies: at most `D` ≤ 255 of them, with an 8-bit length.
pub(crate) type Deps<const D: usize> = Vec<JobId, D, u8>;
use crate::state::{Outcome, State};
use crate::time::{Duration, Instant, Stamp};

/// Per-job rules, chosen at submit time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JobOptions {
    /// A pause request is accepted (default `true`); otherwise it is refused with
    /// [`crate::JobError::NotPausable`].
    pub pausable: bool,
    /// A cancel request is accepted (default `true`); otherwise it is refused with
    /// [`crate::JobError::NotCancelable`].
    pub cancelable: bool,
    /// After a restart a job that was running goes back to `Queued` instead of failing with
    /// `Interrupted` (default `false`).
    pub restartable: bool,
    /// The job fails with `TimedOut` when it is still running or paused this long after it
    /// started (R-DEADLINE).
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ticks::option"))]
    pub run_timeout: Option<Duration>,
    /// Heartbeat lease: a running job whose worker has not called
    /// [`crate::JobTable::heartbeat`] (or another worker-side update) for this long fails with
    /// `TimedOut`, so a job never stays running after its worker died (R-DEADLINE).
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ticks::option"))]
    pub lease: Option<Duration>,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl JobOptions {
    /// Pausable, cancelable, not restartable, no deadline, no lease.
    pub const DEFAULT: JobOptions = JobOptions {
        pausable: true,
        cancelable: true,
        restartable: false,
        run_timeout: None,
        lease: None,
    };
}

/// A job to submit: the caller's spec plus description, dependencies and options.
///
/// ```
/// use jobstate::{JobOptions, NewJob};
/// let job = NewJob::new("create backend set")
///     .description("create backend set bs1")
///     .options(JobOptions { pausable: false, ..JobOptions::DEFAULT });
/// # let _ = job;
/// ```
#[derive(Clone, Debug)]
pub struct NewJob<'a, S> {
    pub(crate) spec: S,
    pub(crate) description: &'a str,
    pub(crate) depends_on: &'a [crate::JobId],
    pub(crate) options: JobOptions,
}

impl<'a, S> NewJob<'a, S> {
    /// A job with this spec, no description, no dependencies, default options.
    pub const fn new(spec: S) -> Self {
        Self {
            spec,
            description: "",
            depends_on: &[],
            options: JobOptions::DEFAULT,
        }
    }

    /// A human-readable description (must fit the table's text capacity).
    pub const fn description(mut self, description: &'a str) -> Self {
        self.description = description;
        self
    }

    /// Jobs that must succeed before this one may start (R-DEPS).
    pub const fn depends_on(mut self, ids: &'a [crate::JobId]) -> Self {
        self.depends_on = ids;
        self
    }

    /// Per-job rules.
    pub const fn options(mut self, options: JobOptions) -> Self {
        self.options = options;
        self
    }
}

/// A job as the table holds it; `Clone` it for a snapshot.
///
/// `T` is the text capacity (description, message) in bytes, `D` the most dependencies a job
/// may have. Both are set by the table type ([`crate::JobTable`]).
///
/// Its optional instants ([`Job::started`], [`Job::ended`], [`Job::deadline`],
/// [`Job::lease_until`]) are kept compactly: the one instant they cannot hold, the very end of
/// time (`u64::MAX` ticks), reads back one tick earlier.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Job<S, const T: usize, const D: usize> {
    pub(crate) id: JobId,
    pub(crate) spec: S,
    pub(crate) description: Text<T>,
    pub(crate) state: State,
    pub(crate) progress: u8,
    pub(crate) message: Text<T>,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ticks"))]
    pub(crate) created: Instant,
    pub(crate) started: Stamp,
    pub(crate) ended: Stamp,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ticks"))]
    pub(crate) modified: Instant,
    pub(crate) revision: Revision,
    pub(crate) state_revision: Revision,
    pub(crate) version: u32,
    pub(crate) outcome: Option<Outcome>,
    pub(crate) depends_on: Deps<D>,
    pub(crate) options: JobOptions,
    pub(crate) pause_requested: bool,
    pub(crate) cancel_requested: bool,
    pub(crate) deadline: Stamp,
    pub(crate) lease_until: Stamp,
}

impl<S, const T: usize, const D: usize> Job<S, T, D> {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }
    /// The caller's spec: what to do.
    pub fn spec(&self) -> &S {
        &self.spec
    }
    /// The description given at submit.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// Progress in percent, 0–100.
    pub fn progress(&self) -> u8 {
        self.progress
    }
    /// The last progress message, or the success/failure message once terminal.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// When it was submitted.
    pub fn created(&self) -> Instant {
        self.created
    }
    /// When a worker first started it.
    pub fn started(&self) -> Option<Instant> {
        self.started.get()
    }
    /// When it reached a terminal state.
    pub fn ended(&self) -> Option<Instant> {
        self.ended.get()
    }
    /// When it last changed observably.
    pub fn modified(&self) -> Instant {
        self.modified
    }
    /// The table revision of its last observable change (R-VERSION).
    pub fn revision(&self) -> Revision {
        self.revision
    }
    /// The table revision of its last state change.
    pub fn state_revision(&self) -> Revision {
        self.state_revision
    }
    /// Per-job version: 1 at submit, +1 on every observable change.
    pub fn version(&self) -> u32 {
        self.version
    }
    /// The outcome, once terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
    /// The jobs it depends on.
    pub fn depends_on(&self) -> &[JobId] {
        &self.depends_on
    }
    /// Its options.
    pub fn options(&self) -> &JobOptions {
        &self.options
    }
    /// A pause was requested and the worker has not acknowledged it yet.
    pub fn pause_requested(&self) -> bool {
        self.pause_requested
    }
    /// A cancel was requested and the worker has not acknowledged it yet.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }
    /// When it times out (run timeout), if it has one and has started.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get()
    }
    /// When its heartbeat lease runs out, while running.
    pub fn lease_until(&self) -> Option<Instant> {
        self.lease_until.get()
    }
    /// `true` once `Succeeded` or `Failed`.
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}
