//! What waits and reads hand back: a job snapshot that knows the wall clock.

use std::ops::Deref;
use std::time::SystemTime;

use jobstate::Job;

use crate::clock::Clock;

/// A copy of a job as it was at one revision, with wall-clock reporting.
///
/// Derefs to the core's [`Job`], so `snapshot.state()`, `snapshot.revision()` and the other
/// accessors work directly; `created_at()` and friends give `SystemTime`s for APIs that print
/// RFC 3339 times.
#[derive(Clone, Debug)]
pub struct Snapshot<S, const T: usize = 64, const D: usize = 4> {
    /// The job.
    pub job: Job<S, T, D>,
    clock: Clock,
}

impl<S, const T: usize, const D: usize> Snapshot<S, T, D> {
    pub(crate) fn new(job: Job<S, T, D>, clock: Clock) -> Self {
        Self { job, clock }
    }

    /// When it was submitted, by the wall clock.
    pub fn created_at(&self) -> SystemTime {
        self.clock.to_system_time(self.job.created())
    }

    /// When a worker first started it.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.job.started().map(|t| self.clock.to_system_time(t))
    }

    /// When it reached a terminal state.
    pub fn ended_at(&self) -> Option<SystemTime> {
        self.job.ended().map(|t| self.clock.to_system_time(t))
    }

    /// When it last changed observably.
    pub fn modified_at(&self) -> SystemTime {
        self.clock.to_system_time(self.job.modified())
    }

    /// The job, out of the snapshot.
    pub fn into_job(self) -> Job<S, T, D> {
        self.job
    }
}

impl<S, const T: usize, const D: usize> Deref for Snapshot<S, T, D> {
    type Target = Job<S, T, D>;
    fn deref(&self) -> &Job<S, T, D> {
        &self.job
    }
}

/// The answer of a wait (R-WAIT): the snapshot, and whether the timeout ended the wait before
/// the condition held. A timeout is never an error.
#[derive(Clone, Debug)]
pub struct Waited<S, const T: usize = 64, const D: usize = 4> {
    /// The job when the condition held, or when the timeout ended the wait.
    pub snapshot: Snapshot<S, T, D>,
    /// `true` when the condition did not hold within the timeout.
    pub timed_out: bool,
}

/// The answer of a submit-and-wait (R-RETURN).
#[derive(Clone, Debug)]
pub enum Submitted<S, const T: usize = 64, const D: usize = 4> {
    /// The job reached a terminal state (success or failure) within the return timeout
    /// (HTTP 200).
    Completed(Snapshot<S, T, D>),
    /// The job is accepted and still running or queued (HTTP 202); poll or wait for it.
    Accepted(Snapshot<S, T, D>),
}

impl<S, const T: usize, const D: usize> Submitted<S, T, D> {
    /// The snapshot, whichever the answer.
    pub fn snapshot(&self) -> &Snapshot<S, T, D> {
        match self {
            Submitted::Completed(s) | Submitted::Accepted(s) => s,
        }
    }

    /// `true` for [`Submitted::Completed`].
    pub fn is_completed(&self) -> bool {
        matches!(self, Submitted::Completed(_))
    }
}
