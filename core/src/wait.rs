//! Wait conditions: the change-detection rule every waiter shares (R-WAIT).
//!
//! The core does not wait; it answers "does this condition hold for this job now?". The
//! firmware wait (`embassy` feature) and `jobstate-std`'s blocking and async waits all
//! re-evaluate [`Condition::holds`] after each wake-up, so the rule lives in one place.

use crate::id::Revision;
use crate::time::{Duration, Instant};
use crate::view::{Job, JobRef};

/// The longest a long-poll waits, whatever it asks: 120 s, the top of ONTAP Select Deploy's
/// `poll_timeout` range (R-LONGPOLL). Every adapter clamps to it unless configured lower.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// `timeout` clamped to `max` (R-LONGPOLL).
pub fn clamp_wait(timeout: Duration, max: Duration) -> Duration {
    if timeout > max {
        max
    } else {
        timeout
    }
}

/// What a submit that waits for the job's end answers (R-RETURN): HTTP 200 or 202.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Submitted<J> {
    /// The job reached a terminal state within the return timeout (HTTP 200).
    Completed(J),
    /// The job is accepted and still live; poll it by its id (HTTP 202).
    Accepted(J),
    /// The job ended and was already removed (zero retention) before the waiter saw it; the
    /// tombstone, when kept, says how it ended.
    Removed(crate::JobId, Option<crate::Tombstone>),
}

impl<J> Submitted<J> {
    /// The job, unless it was already removed.
    pub fn job(&self) -> Option<&J> {
        match self {
            Submitted::Completed(j) | Submitted::Accepted(j) => Some(j),
            Submitted::Removed(..) => None,
        }
    }

    /// `true` for [`Submitted::Completed`] (HTTP 200), `false` otherwise (202).
    pub fn is_completed(&self) -> bool {
        matches!(self, Submitted::Completed(_))
    }
}

/// What a wait answers: the job, and whether the wait ended by timeout (R-WAIT).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Waited<J> {
    /// The job as it is when the wait ends.
    pub job: J,
    /// The timeout ended the wait and the condition still does not hold.
    pub timed_out: bool,
}

/// What a [`Condition`] looks at: implemented by the borrowed and the owned job.
pub trait Watched {
    /// Revision of the last observable change.
    fn revision(&self) -> Revision;
    /// Revision of the last state change.
    fn state_revision(&self) -> Revision;
    /// Terminal?
    fn is_terminal(&self) -> bool;
    /// Last change, by the clock.
    fn modified(&self) -> Instant;
}

impl<S> Watched for JobRef<'_, S> {
    fn revision(&self) -> Revision {
        JobRef::revision(self)
    }
    fn state_revision(&self) -> Revision {
        JobRef::state_revision(self)
    }
    fn is_terminal(&self) -> bool {
        JobRef::is_terminal(self)
    }
    fn modified(&self) -> Instant {
        JobRef::modified(self)
    }
}

impl<S, const T: usize> Watched for Job<S, T> {
    fn revision(&self) -> Revision {
        Job::revision(self)
    }
    fn state_revision(&self) -> Revision {
        Job::state_revision(self)
    }
    fn is_terminal(&self) -> bool {
        Job::is_terminal(self)
    }
    fn modified(&self) -> Instant {
        Job::modified(self)
    }
}

/// What a waiter waits for.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Condition {
    /// Any observable change after this revision (progress, message, request flags, state).
    ChangedSince(Revision),
    /// A state change after this revision.
    StateChangedSince(Revision),
    /// Any terminal state, success or failure.
    Terminal,
    /// Modified after this instant: the timestamp-based `last_modified` long-poll of ONTAP
    /// Select Deploy. Prefer [`Condition::ChangedSince`]: two changes within one clock tick are
    /// told apart only by revision.
    ModifiedAfter(#[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms"))] Instant),
}

impl Condition {
    /// Whether the condition holds for this job now.
    pub fn holds(&self, job: &impl Watched) -> bool {
        match *self {
            Condition::ChangedSince(r) => job.revision() > r,
            Condition::StateChangedSince(r) => job.state_revision() > r,
            Condition::Terminal => job.is_terminal(),
            Condition::ModifiedAfter(t) => job.modified() > t,
        }
    }
}
