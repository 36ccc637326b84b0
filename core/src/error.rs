//! Typed errors, one enum per concern. Every error leaves the table exactly as it was.

use core::fmt;

use crate::id::{JobId, Revision};
use crate::retain::Tombstone;
use crate::state::State;

/// Why an id does not lead to a job (R-ID).
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

/// Why a submit was refused. Nothing was added.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SubmitError {
    /// Every slot holds a live job or a terminal job still within its retention (R-FULL).
    /// Try again after the oldest terminal job's retention passes.
    TableFull,
    /// The description does not fit the table's text capacity.
    TextTooLong,
    /// More dependencies than the table's per-job limit.
    TooManyDependencies,
    /// The same dependency was named twice.
    DuplicateDependency(JobId),
    /// A dependency is unknown, expired or stale (R-DEPS).
    UnknownDependency {
        /// The dependency.
        id: JobId,
        /// What looking it up answered.
        error: LookupError,
    },
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::TableFull => f.write_str("job table is full"),
            SubmitError::TextTooLong => f.write_str("description too long"),
            SubmitError::TooManyDependencies => f.write_str("too many dependencies"),
            SubmitError::DuplicateDependency(id) => write!(f, "dependency {id} named twice"),
            SubmitError::UnknownDependency { id, error } => {
                write!(f, "dependency {id}: {error}")
            }
        }
    }
}

impl core::error::Error for SubmitError {}

/// Why an operation on an existing job was refused. The job, its version and the table
/// revision are unchanged (R-TRANS, R-INPUT).
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
    /// The job is terminal; no action applies any more.
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
    /// Progress over 100 percent.
    ProgressOutOfRange(u8),
    /// A message or log line does not fit the table's text capacity.
    TextTooLong,
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
            JobError::ProgressOutOfRange(p) => write!(f, "progress {p} is over 100"),
            JobError::TextTooLong => f.write_str("text too long"),
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
