//! What the table stores, byte by byte: the slot record, the dependency edge, the tombstone.
//!
//! These are private: readers get a [`crate::JobRef`] view or an owned [`crate::Job`]. Every
//! type here is all-zero when empty, so an empty table is all-zero bytes and a `static` table
//! lands in `.bss`. Links are slot or edge indices plus one, with 0 meaning "none". Instants
//! are 48-bit milliseconds ([`Ms`]), durations 32-bit milliseconds (0 = none).

use crate::id::JobId;
use crate::state::{FailReason, Outcome, Severity, State};
use crate::time::Ms;

/// "No slot" / "no edge" in a link field.
pub(crate) const NIL: u16 = 0;

/// A slot's phase: empty, one of the five job states, or retired for good.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[repr(u8)]
pub(crate) enum Phase {
    /// No job (never used, or free).
    #[default]
    Empty = 0,
    Queued,
    Running,
    Paused,
    Succeeded,
    Failed,
    /// Its generation counter is used up: never used again (R-ID).
    Retired,
}

impl Phase {
    pub(crate) const fn state(self) -> Option<State> {
        match self {
            Phase::Queued => Some(State::Queued),
            Phase::Running => Some(State::Running),
            Phase::Paused => Some(State::Paused),
            Phase::Succeeded => Some(State::Succeeded),
            Phase::Failed => Some(State::Failed),
            Phase::Empty | Phase::Retired => None,
        }
    }

    pub(crate) const fn of(state: State) -> Phase {
        match state {
            State::Queued => Phase::Queued,
            State::Running => Phase::Running,
            State::Paused => Phase::Paused,
            State::Succeeded => Phase::Succeeded,
            State::Failed => Phase::Failed,
        }
    }

    pub(crate) const fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    pub(crate) const fn is_live(self) -> bool {
        matches!(self, Phase::Queued | Phase::Running | Phase::Paused)
    }
}

/// Bits of [`Slot::flags`].
pub(crate) mod flag {
    pub(crate) const PAUSABLE: u8 = 1;
    pub(crate) const CANCELABLE: u8 = 1 << 1;
    pub(crate) const RESTARTABLE: u8 = 1 << 2;
    pub(crate) const PAUSE_REQUESTED: u8 = 1 << 3;
    pub(crate) const CANCEL_REQUESTED: u8 = 1 << 4;
    /// Runnable: on the runnable list of its priority (all dependencies met).
    pub(crate) const RUNNABLE: u8 = 1 << 5;
    /// Queued again after a retryable failure, waiting out its backoff (on the active list,
    /// `expiry` = the backoff's end or the deadline, whichever comes first).
    pub(crate) const BACKOFF: u8 = 1 << 6;
}

/// Why the table itself ended a job, beyond its [`FailReason`]: the edge formats it.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Detail {
    /// The run timeout passed (`TimedOut`).
    Deadline,
    /// The heartbeat lease ran out (`TimedOut`).
    Lease,
    /// This dependency failed (`DependencyFailed`).
    Dependency(JobId),
    /// A client canceled it (`Canceled`).
    Canceled,
    /// It was running when the system restarted or shut down (`Interrupted`).
    Interrupted,
}

impl Detail {
    /// A short English text, for edges that print one (`"deadline passed"`, …). A dependency's
    /// id is not in it: print it the way the edge names jobs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Detail::Deadline => "deadline passed",
            Detail::Lease => "heartbeat lease expired",
            Detail::Dependency(_) => "dependency failed",
            Detail::Canceled => "canceled",
            Detail::Interrupted => "interrupted",
        }
    }
}

/// One job's record: 64 bytes on 32- and 64-bit targets (see docs/firmware.md for the budget).
///
/// Field use by phase:
/// * `started`: none while queued the first time; set from the first start on;
/// * `expiry`: running — the earlier of the deadline and the lease's end; paused — the
///   deadline; queued in a retry backoff — the backoff's end or the deadline; terminal — the
///   lease in ms (0 = none), kept for `options()`; otherwise none;
/// * `word`: terminal — the outcome code (`i32` bits); live — the lease in ms (0 = none);
/// * `cause`: bits 0–3, terminal with `DependencyFailed` — position+1 of the failed
///   dependency in the job's own edge list, 0 otherwise; bits 4–5, the priority level.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slot {
    pub(crate) generation: u32,
    /// `revision - state_revision`; `u32::MAX` means "at least that much" (see
    /// [`Slot::state_revision`]).
    pub(crate) state_lag: u32,
    /// Run timeout in ms (0 = none).
    pub(crate) run_timeout: u32,
    pub(crate) word: u32,
    pub(crate) revision: Ms,
    pub(crate) created: Ms,
    pub(crate) modified: Ms,
    pub(crate) started: Ms,
    pub(crate) expiry: Ms,
    /// List links (runnable, active, retained, free), slot index + 1.
    pub(crate) prev: u16,
    pub(crate) next: u16,
    /// This job's own dependency edges, edge index + 1.
    pub(crate) deps: u16,
    /// Head of the list of edges that point at this job (its dependents), edge index + 1.
    pub(crate) dependents: u16,
    /// Position + 1 of its spec in the table's spec store.
    pub(crate) spec: u16,
    /// How many epochs before the table's current one the job's id was issued (saturating).
    pub(crate) epoch_lag: u16,
    pub(crate) phase: Phase,
    pub(crate) flags: u8,
    pub(crate) progress: u8,
    /// Terminal: `Severity` or `FailReason` as a small number, plus [`Detail`] kind.
    pub(crate) outcome: u8,
    /// Dependencies not yet succeeded.
    pub(crate) unmet: u8,
    pub(crate) cause: u8,
    /// The retry policy and attempt count (feature `retry`: 16 more bytes).
    #[cfg(feature = "retry")]
    pub(crate) retry: crate::retry::RetryState,
}

/// `outcome` byte encoding: low nibble the severity/reason, high nibble the detail kind.
pub(crate) mod outcome_byte {
    use super::{Detail, FailReason, Outcome, Severity};

    pub(crate) const fn severity(s: Severity) -> u8 {
        match s {
            Severity::Normal => 0,
            Severity::Warning => 1,
            Severity::PartialFailure => 2,
        }
    }

    pub(crate) const fn reason(r: FailReason) -> u8 {
        match r {
            FailReason::Error => 0,
            FailReason::Canceled => 1,
            FailReason::TimedOut => 2,
            FailReason::DependencyFailed => 3,
            FailReason::Interrupted => 4,
        }
    }

    pub(crate) const fn severity_of(b: u8) -> Severity {
        match b & 0xF {
            1 => Severity::Warning,
            2 => Severity::PartialFailure,
            _ => Severity::Normal,
        }
    }

    pub(crate) const fn reason_of(b: u8) -> FailReason {
        match b & 0xF {
            1 => FailReason::Canceled,
            2 => FailReason::TimedOut,
            3 => FailReason::DependencyFailed,
            4 => FailReason::Interrupted,
            _ => FailReason::Error,
        }
    }

    /// Detail kinds (the dependency's id is found through `cause`).
    pub(crate) const NONE: u8 = 0;
    pub(crate) const DEADLINE: u8 = 1;
    pub(crate) const LEASE: u8 = 2;
    pub(crate) const DEPENDENCY: u8 = 3;
    pub(crate) const CANCELED: u8 = 4;
    pub(crate) const INTERRUPTED: u8 = 5;

    pub(crate) const fn detail_kind(d: Option<Detail>) -> u8 {
        match d {
            None => NONE,
            Some(Detail::Deadline) => DEADLINE,
            Some(Detail::Lease) => LEASE,
            Some(Detail::Dependency(_)) => DEPENDENCY,
            Some(Detail::Canceled) => CANCELED,
            Some(Detail::Interrupted) => INTERRUPTED,
        }
    }

    pub(crate) const fn encode(outcome: Outcome, detail: Option<Detail>) -> u8 {
        let low = match outcome {
            Outcome::Succeeded { severity } => severity_byte(severity),
            Outcome::Failed { reason: r, .. } => reason(r),
        };
        low | (detail_kind(detail) << 4)
    }

    const fn severity_byte(s: Severity) -> u8 {
        severity(s)
    }
}

impl Slot {
    pub(crate) const EMPTY: Slot = Slot {
        generation: 0,
        state_lag: 0,
        run_timeout: 0,
        word: 0,
        revision: Ms::ZERO,
        created: Ms::ZERO,
        modified: Ms::ZERO,
        started: Ms::ZERO,
        expiry: Ms::ZERO,
        prev: NIL,
        next: NIL,
        deps: NIL,
        dependents: NIL,
        spec: 0,
        epoch_lag: 0,
        phase: Phase::Empty,
        flags: 0,
        progress: 0,
        outcome: 0,
        unmet: 0,
        cause: 0,
        #[cfg(feature = "retry")]
        retry: crate::retry::RetryState::EMPTY,
    };

    /// The priority level (0–3).
    pub(crate) const fn level(&self) -> u8 {
        (self.cause >> 4) & 3
    }

    pub(crate) fn set_level(&mut self, level: u8) {
        self.cause = (self.cause & 0x0F) | ((level & 3) << 4);
    }

    /// Position + 1 of the failed dependency (0: none).
    pub(crate) const fn failed_dep(&self) -> u8 {
        self.cause & 0x0F
    }

    pub(crate) fn set_failed_dep(&mut self, k: u8) {
        self.cause = (self.cause & 0xF0) | (k.min(15));
    }

    /// The attempt under way or last made (1 for the first).
    pub(crate) fn attempt(&self) -> u8 {
        #[cfg(feature = "retry")]
        {
            self.retry.retries.saturating_add(1)
        }
        #[cfg(not(feature = "retry"))]
        {
            1
        }
    }

    pub(crate) const fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    pub(crate) fn set(&mut self, f: u8, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    /// The revision of its last state change. When more than `u32::MAX - 1` revisions passed
    /// since, it reads as the newest value it can be (an upper bound): a waiter that holds a
    /// revision that old gets one early answer, never a missed one.
    pub(crate) fn state_revision(&self) -> u64 {
        self.revision.ms().saturating_sub(u64::from(self.state_lag))
    }

    /// The outcome of a terminal job.
    pub(crate) fn outcome(&self) -> Option<Outcome> {
        match self.phase {
            Phase::Succeeded => Some(Outcome::Succeeded {
                severity: outcome_byte::severity_of(self.outcome),
            }),
            Phase::Failed => Some(Outcome::Failed {
                reason: outcome_byte::reason_of(self.outcome),
                code: i32::from_ne_bytes(self.word.to_ne_bytes()),
            }),
            _ => None,
        }
    }

    /// The lease in ms (live jobs; 0 = none).
    pub(crate) fn lease(&self) -> u32 {
        if self.phase.is_live() {
            self.word
        } else if self.phase.is_terminal() {
            // Ended: the word holds the code, and the lease moved to `expiry`.
            u32::try_from(self.expiry.ms()).unwrap_or(0)
        } else {
            0
        }
    }
}

/// One dependency: the edge from a job (its owner) to a job it depends on (the target). 20
/// bytes, from a pool of `E` shared by the table.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Edge {
    /// The dependency, as named at submit.
    pub(crate) target: JobId,
    /// The owner's slot index + 1 (0: the edge is free).
    pub(crate) owner: u16,
    /// The owner's next edge, or the next free edge.
    pub(crate) next_own: u16,
    /// The target's dependents list: previous ([`Edge::UNLINKED`] when not on it, 0 at the
    /// head) and next edge.
    pub(crate) prev_dep: u16,
    pub(crate) next_dep: u16,
}

impl Edge {
    pub(crate) const EMPTY: Edge = Edge {
        target: JobId::new(0, 0, 0),
        owner: 0,
        next_own: 0,
        prev_dep: 0,
        next_dep: 0,
    };

    /// `prev_dep` of an edge that is not on a dependents list.
    pub(crate) const UNLINKED: u16 = u16::MAX;
}

/// What is left of a removed job (R-RETAIN): 24 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tomb {
    pub(crate) id: JobId,
    pub(crate) ended: Ms,
    pub(crate) outcome: u8,
    pub(crate) succeeded: bool,
    pub(crate) code: i32,
}

impl Tomb {
    pub(crate) fn outcome(&self) -> Outcome {
        if self.succeeded {
            Outcome::Succeeded {
                severity: outcome_byte::severity_of(self.outcome),
            }
        } else {
            Outcome::Failed {
                reason: outcome_byte::reason_of(self.outcome),
                code: self.code,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Edge, Slot, Tomb};

    #[test]
    fn records_keep_their_budget() {
        let retry = if cfg!(feature = "retry") { 16 } else { 0 };
        assert_eq!(core::mem::size_of::<Slot>(), 64 + retry);
        assert_eq!(core::mem::size_of::<Edge>(), 20);
        assert_eq!(core::mem::size_of::<Tomb>(), 24);
    }
}
