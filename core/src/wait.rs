//! Wait conditions: the change-detection rule every waiter shares (R-WAIT).
//!
//! The core does not wait; it answers "does this condition hold for this job now?". The
//! firmware wait (`embassy` feature) and `jobstate-std`'s blocking and async waits all
//! re-evaluate [`Condition::holds`] after each wake-up, so the rule lives in one place.

use crate::id::Revision;
use crate::job::Job;
use crate::time::Instant;

/// What a waiter waits for.
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
    ModifiedAfter(#[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ticks"))] Instant),
}

impl Condition {
    /// Whether the condition holds for this job now.
    pub fn holds<S, const T: usize, const D: usize>(&self, job: &Job<S, T, D>) -> bool {
        match *self {
            Condition::ChangedSince(r) => job.revision() > r,
            Condition::StateChangedSince(r) => job.state_revision() > r,
            Condition::Terminal => job.is_terminal(),
            Condition::ModifiedAfter(t) => job.modified() > t,
        }
    }
}
