//! States, outcomes and the worker's checkpoint answer.

use core::fmt;

/// Where a job is in its life (SPEC §3).
///
/// ```text
///            start (deps met)          checkpoint (pause requested)
///   Queued ───────────────────► Running ◄──────────────────────► Paused
///     │                          │   │          resume              │
///     │                  succeed │   │ fail / cancel / timeout      │ cancel / timeout
///     │                          ▼   ▼                              │
///     │                     Succeeded  Failed ◄─────────────────────┘
///     └── cancel / dependency failed ──┘
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum State {
    /// Accepted, waiting for a worker (and for its dependencies).
    Queued,
    /// A worker is on it.
    Running,
    /// The worker acknowledged a pause request and is parked.
    Paused,
    /// Finished well (terminal). See [`Severity`].
    Succeeded,
    /// Finished badly (terminal). See [`FailReason`].
    Failed,
}

impl State {
    /// `Succeeded` or `Failed`.
    pub const fn is_terminal(self) -> bool {
        matches!(self, State::Succeeded | State::Failed)
    }

    /// Lower-case name, as ONTAP-style APIs print it (`queued`, `running`, `paused`, `success`,
    /// `failure`).
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Paused => "paused",
            State::Succeeded => "success",
            State::Failed => "failure",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How well a successful job went (Unified Manager's NORMAL / WARNING / PARTIAL_FAILURES).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Severity {
    /// Everything went as asked.
    #[default]
    Normal,
    /// Done, with something the caller should read.
    Warning,
    /// Done, but part of the work failed.
    PartialFailure,
}

/// Why a job failed (R-OUTCOME).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FailReason {
    /// The worker reported an error.
    Error,
    /// A client canceled it.
    Canceled,
    /// Its deadline or heartbeat lease passed.
    TimedOut,
    /// A job it depends on failed.
    DependencyFailed,
    /// It was running when the table was persisted and the system restarted.
    Interrupted,
}

impl FailReason {
    /// Lower-case name (`error`, `canceled`, `timed_out`, `dependency_failed`, `interrupted`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FailReason::Error => "error",
            FailReason::Canceled => "canceled",
            FailReason::TimedOut => "timed_out",
            FailReason::DependencyFailed => "dependency_failed",
            FailReason::Interrupted => "interrupted",
        }
    }

    /// The numeric code the table uses when it fails a job itself (the worker's own failures
    /// carry the worker's code). Codes are stable; HTTP bindings print them.
    pub const fn default_code(self) -> i32 {
        match self {
            FailReason::Error => 1,
            FailReason::Canceled => 2,
            FailReason::TimedOut => 3,
            FailReason::DependencyFailed => 4,
            FailReason::Interrupted => 5,
        }
    }
}

/// The result of a terminal job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Outcome {
    /// The job succeeded.
    Succeeded {
        /// How well.
        severity: Severity,
    },
    /// The job failed.
    Failed {
        /// Why.
        reason: FailReason,
        /// A numeric code: the worker's, or [`FailReason::default_code`].
        code: i32,
    },
}

impl Outcome {
    /// The terminal state this outcome belongs to.
    pub const fn state(self) -> State {
        match self {
            Outcome::Succeeded { .. } => State::Succeeded,
            Outcome::Failed { .. } => State::Failed,
        }
    }

    /// `0` for success, the failure code otherwise.
    pub const fn code(self) -> i32 {
        match self {
            Outcome::Succeeded { .. } => 0,
            Outcome::Failed { code, .. } => code,
        }
    }
}

/// What a worker's checkpoint tells it to do (R-CONTROL).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Directive {
    /// Go on working.
    Continue,
    /// The job is `Paused` now: park until its state changes, then ask again.
    Pause,
    /// The job was canceled and is `Failed(Canceled)` now: stop and clean up.
    Canceled,
}

/// A client's request on a job, as recorded in the journal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Request {
    /// Pause at the next checkpoint.
    Pause,
    /// A pending pause request was withdrawn by a resume before the worker saw it.
    Resume,
    /// Cancel at the next checkpoint.
    Cancel,
}
