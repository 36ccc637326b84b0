//! The adapter's own errors; the core's ([`jobstate::JobError`], [`jobstate::SubmitError`],
//! [`jobstate::LookupError`]) pass through unchanged.

use std::fmt;

use jobstate::{LookupError, SubmitError};

/// Why a wait has no snapshot to answer with. A timeout is not an error (see
/// [`crate::Waited::timed_out`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WaitError {
    /// The id does not lead to a job — including a job removed while the wait was on
    /// ([`LookupError::Expired`], with its tombstone when kept).
    Lookup(LookupError),
}

impl From<LookupError> for WaitError {
    fn from(e: LookupError) -> Self {
        WaitError::Lookup(e)
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Lookup(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for WaitError {}

/// Why a submit-and-wait was refused (R-RETURN). Nothing was added either way. (A job that
/// was accepted and then removed before its waiter read it is not an error: it answers
/// [`jobstate::Submitted::Removed`].)
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SubmitWaitError {
    /// The submit was refused.
    Submit(SubmitError),
    /// `return_timeout` is over [`crate::MAX_RETURN_TIMEOUT`] ([`jobstate::MAX_WAIT`]).
    ReturnTimeoutOutOfRange,
}

impl From<SubmitError> for SubmitWaitError {
    fn from(e: SubmitError) -> Self {
        SubmitWaitError::Submit(e)
    }
}

impl fmt::Display for SubmitWaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitWaitError::Submit(e) => e.fmt(f),
            SubmitWaitError::ReturnTimeoutOutOfRange => write!(
                f,
                "return_timeout must be between 0 and {} seconds",
                crate::MAX_RETURN_TIMEOUT.as_secs()
            ),
        }
    }
}

impl std::error::Error for SubmitWaitError {}

/// A thread the engine or the worker pool needs could not be started (the operating system
/// refused: too many threads or processes for the user, out of memory). Nothing was left
/// running: threads already started for the same call were stopped and joined.
#[derive(Debug)]
pub struct StartError {
    what: &'static str,
    error: std::io::Error,
}

impl StartError {
    pub(crate) fn new(what: &'static str, error: std::io::Error) -> Self {
        Self { what, error }
    }

    /// Which thread: `"timer thread"`, `"table builder thread"` or `"worker thread"`.
    pub fn thread(&self) -> &'static str {
        self.what
    }

    /// The operating system's answer (typically `WouldBlock`: `EAGAIN`).
    pub fn io_error(&self) -> &std::io::Error {
        &self.error
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not start the {}: {}", self.what, self.error)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<StartError> for std::io::Error {
    fn from(e: StartError) -> Self {
        std::io::Error::new(e.error.kind(), e)
    }
}
