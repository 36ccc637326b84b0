//! Hooks for metrics: what the binding tells an [`ApiObserver`].

use std::time::Duration;

use super::error::ApiError;

/// How a long-poll ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum PollEnd {
    /// The job changed (or ended, or went away): `latency` runs from the change, as the table
    /// recorded it (to the millisecond, so a figure may read up to 1 ms high), to the moment
    /// the poll had its answer.
    Woken {
        /// From the change to the answer.
        latency: Duration,
    },
    /// `poll_timeout` passed without a change.
    TimedOut,
    /// [`super::JobsApi::close_polls`] ended it (shutdown).
    Closed,
}

/// What the binding reports, for metrics; every hook has an empty default. Install one with
/// [`super::JobsApi::with_observer`]. Hooks run on the request's task: keep them short (an
/// atomic add, a histogram observation).
pub trait ApiObserver: Send + Sync + 'static {
    /// A job was accepted through [`super::JobsApi::submit`] or answered for with
    /// [`super::JobsApi::respond`].
    fn submitted(&self) {}

    /// A request's idempotency key named a job an earlier request submitted, and the answer
    /// is that job ([`super::JobsApi::respond_again`], [`super::oci::accepted_again`]): no job
    /// was added.
    fn replayed(&self) {}

    /// A submit was refused ([`super::JobsApi::refused`]): `error` is the answer (503 when the
    /// table is full, 400 otherwise).
    fn refused(&self, error: &ApiError) {
        let _ = error;
    }

    /// A long-poll (`GET …/{uuid}?poll_timeout=…` that had to wait) ended.
    fn long_poll_ended(&self, end: PollEnd) {
        let _ = end;
    }
}
