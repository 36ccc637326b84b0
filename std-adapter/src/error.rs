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

/// Why a submit-and-wait did not answer with a snapshot (R-RETURN).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SubmitWaitError {
    /// The submit was refused; nothing was added.
    Submit(SubmitError),
    /// `return_timeout` is over [`crate::MAX_RETURN_TIMEOUT`] (120 s); nothing was added.
    ReturnTimeoutOutOfRange,
    /// The job was accepted, but removed (retention shorter than the wait) before its
    /// snapshot could be read. Rare: only with a retention near zero.
    Lookup(LookupError),
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
            SubmitWaitError::ReturnTimeoutOutOfRange => {
                f.write_str("return_timeout must be between 0 and 120 seconds")
            }
            SubmitWaitError::Lookup(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SubmitWaitError {}
