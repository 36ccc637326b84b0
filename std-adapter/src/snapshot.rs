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
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot<S, const T: usize = 64> {
    /// The job.
    pub job: Job<S, T>,
    clock: Clock,
}

impl<S, const T: usize> Snapshot<S, T> {
    /// A snapshot of `job` whose instants read on `clock` (for stores other than the engine).
    pub fn new(job: Job<S, T>, clock: Clock) -> Self {
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
    pub fn into_job(self) -> Job<S, T> {
        self.job
    }
}

impl<S, const T: usize> Deref for Snapshot<S, T> {
    type Target = Job<S, T>;
    fn deref(&self) -> &Job<S, T> {
        &self.job
    }
}
