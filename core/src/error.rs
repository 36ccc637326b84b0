//! Typed errors, one enum per concern. Every error leaves the table exactly as it was.

use core::fmt;

use crate::id::{JobId, Revision};
use crate::retain::Tombstone;
use crate::state::State;

/// Why an id does not lead to a job (R-ID).
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LookupError {
    /// This table never issued the id.
    NotFound,
    /// The job existed and was removed (retention or eviction). The tombstone, when still
    /// kept, tells how it ended (R-RETAIN).
    Expired(Option<Tombstone>),
    /// The id was issued in an earlier epoch, before the table was restored from a persisted
    /// image: that job is not this table's to answer for.
    Stale,
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotFound => f.write_str("no such job"),
            LookupError::Expired(_) => f.write_str("job expired"),
            LookupError::Stale => f.write_str("job id is from before a restart"),
        }
    }
}

impl core::error::Error for LookupError {}

/// Which text a [`SubmitError::TextTooLong`] or [`JobError::TextTooLong`] is about.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TextField {
    /// The job's description (given at submit).
    Description,
    /// The progress or outcome message.
    Message,
    /// A log line ([`crate::JobTable::log`]).
    LogLine,
}

impl TextField {
    /// Lower-case name (`description`, `message`, `log_line`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TextField::Description => "description",
            TextField::Message => "message",
            TextField::LogLine => "log_line",
        }
    }
}

/// Why a submit was refused. Nothing was added, and the table is as it was.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SubmitError {
    /// Every slot holds a live job or a terminal job still within its retention (R-FULL).
    /// [`crate::JobTable::next_free_at`] says when a slot frees.
    TableFull,
    /// The description does not fit the table's text capacity.
    TextTooLong {
        /// Which text.
        field: TextField,
        /// The most bytes it may have.
        limit: u16,
    },
    /// More dependencies than one job may have ([`crate::MAX_DEPENDENCIES`]).
    TooManyDependencies,
    /// The table's dependency pool (`E` edges) has no room for this job's dependencies. Room
    /// comes back as jobs with dependencies are removed.
    DependenciesFull,
    /// The same dependency was named twice.
    DuplicateDependency(JobId),
    /// A dependency is unknown, expired or stale (R-DEPS).
    UnknownDependency {
        /// The dependency.
        id: JobId,
        /// What looking it up answered.
        error: LookupError,
    },
    /// A run timeout or lease longer than the table keeps ([`crate::JobOptions::MAX_DURATION`]).
    DurationTooLong,
    /// A retry policy with no attempts, a zero multiplier, jitter over 100 % or a backoff over
    /// 49.7 days.
    InvalidRetryPolicy,
    /// The idempotency key already names this job, for a different request (R-IDEMPOTENT).
    KeyConflict(JobId),
    /// Every idempotency key entry (`I`) names a job still in the table.
    KeysFull,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::TableFull => f.write_str("job table is full"),
            SubmitError::TextTooLong { field, limit } => {
                write!(f, "{} longer than {limit} bytes", field.as_str())
            }
            SubmitError::TooManyDependencies => f.write_str("too many dependencies"),
            SubmitError::DependenciesFull => f.write_str("dependency pool is full"),
            SubmitError::DuplicateDependency(id) => write!(f, "dependency {id} named twice"),
            SubmitError::UnknownDependency { id, error } => {
                write!(f, "dependency {id}: {error}")
            }
            SubmitError::DurationTooLong => f.write_str("run timeout or lease too long"),
            SubmitError::InvalidRetryPolicy => f.write_str("invalid retry policy"),
            SubmitError::KeyConflict(id) => {
                write!(
                    f,
                    "idempotency key already used by job {id} for another request"
                )
            }
            SubmitError::KeysFull => f.write_str("no room for another idempotency key"),
        }
    }
}

impl core::error::Error for SubmitError {}

/// A refused submit: the caller's job comes back whole, spec included, with the reason (R-FULL).
/// Nothing is lost: retry it later, or answer the client.
#[derive(Clone, Debug)]
pub struct Refused<'a, S> {
    /// The job that was not added.
    pub job: crate::NewJob<'a, S>,
    /// Why.
    pub error: SubmitError,
}

impl<S> Refused<'_, S> {
    /// The spec back, dropping the rest.
    pub fn into_spec(self) -> S {
        self.job.spec
    }
}

impl<S> From<Refused<'_, S>> for SubmitError {
    fn from(r: Refused<'_, S>) -> Self {
        r.error
    }
}

impl<S> fmt::Display for Refused<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<S: fmt::Debug> core::error::Error for Refused<'_, S> {}

/// Why an operation on an existing job was refused. The job, its version and the table
/// revision are unchanged (R-TRANS, R-INPUT) — except that a job whose deadline or lease had
/// already passed is failed `TimedOut` first (R-DEADLINE), and the call answers
/// [`JobError::AlreadyTerminal`].
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum JobError {
    /// The id does not lead to a job.
    Lookup(LookupError),
    /// The state machine has no such edge.
    Transition {
        /// The job's state.
        from: State,
        /// The state the operation would have moved it to.
        to: State,
    },
    /// The job is terminal (succeeded, failed, or timed out just now): no action applies any
    /// more, whichever it was.
    AlreadyTerminal,
    /// The operation needs a running job (pause request, progress, checkpoint).
    NotRunning,
    /// Resume of a job that is neither paused nor asked to pause.
    NotPaused,
    /// The job declared it cannot be paused.
    NotPausable,
    /// The job declared it cannot be canceled.
    NotCancelable,
    /// Start of a queued job whose dependencies have not all succeeded.
    DependenciesPending,
    /// Start of a queued job still waiting out its retry backoff (R-RETRY).
    BackingOff,
    /// Progress over 100 percent.
    ProgressOutOfRange(u8),
    /// A message or log line does not fit.
    TextTooLong {
        /// Which text.
        field: TextField,
        /// The most bytes it may have.
        limit: u16,
    },
}

impl From<LookupError> for JobError {
    fn from(e: LookupError) -> Self {
        JobError::Lookup(e)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Lookup(e) => e.fmt(f),
            JobError::Transition { from, to } => write!(f, "illegal transition {from} -> {to}"),
            JobError::AlreadyTerminal => f.write_str("job already ended"),
            JobError::NotRunning => f.write_str("job is not running"),
            JobError::NotPaused => f.write_str("job is not paused"),
            JobError::NotPausable => f.write_str("job cannot be paused"),
            JobError::NotCancelable => f.write_str("job cannot be canceled"),
            JobError::DependenciesPending => f.write_str("dependencies have not succeeded"),
            JobError::BackingOff => f.write_str("job is waiting out its retry backoff"),
            JobError::ProgressOutOfRange(p) => write!(f, "progress {p} is over 100"),
            JobError::TextTooLong { field, limit } => {
                write!(f, "{} longer than {limit} bytes", field.as_str())
            }
        }
    }
}

impl core::error::Error for JobError {}

/// A journal reader asked for events older than the oldest kept one (R-JOURNAL): re-list the
/// jobs, then resume reading from [`Compacted::oldest`] (Kubernetes' 410 Gone).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Compacted {
    /// The revision of the oldest event still kept (the current revision + 1 when the journal
    /// is empty).
    pub oldest: Revision,
}

impl fmt::Display for Compacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "journal compacted; oldest kept revision is {}",
            self.oldest
        )
    }
}

impl core::error::Error for Compacted {}
