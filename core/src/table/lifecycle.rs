//! Submit and the state machine (R-TRANS, R-CONTROL, R-OUTCOME, R-FULL, R-INPUT).
//!
//! Every operation first checks everything that could refuse it, so a refused call changes
//! nothing — not even the table's clock. The one exception is time itself: an operation on a
//! running or paused job whose deadline or lease has passed fails that job `TimedOut` first
//! (R-DEADLINE), then answers [`JobError::AlreadyTerminal`].

use super::lists::List;
use super::lookup::Text;
use super::revision::limit;
use super::Core;
use crate::error::{JobError, LookupError, TextField};
use crate::id::JobId;
use crate::journal::{line_limit, EventKind};
use crate::record::{flag, outcome_byte, Detail, Phase};
use crate::state::{Directive, FailReason, Outcome, Request, Severity, State};
use crate::time::{Instant, Ms};

/// Why a held job's worker is gone ([`Core::release_held`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Gone {
    /// The table was restored after a restart.
    #[cfg_attr(not(feature = "persist"), allow(dead_code))]
    Restart,
    /// The worker's lease in a shared store ended.
    Lease,
}

/// What [`Core::release_held`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Released {
    Canceled,
    Requeued,
    Failed,
}

impl<S> Core<'_, S> {
    // ----- the worker side -----------------------------------------------------------------

    /// Id → slot of a live job, settling its deadline first (see the module docs).
    fn enter(&mut self, id: JobId, now: Instant) -> Result<u16, JobError> {
        let i = self.locate(id)?;
        let phase = self.slot(i).map_or(Phase::Empty, |s| s.phase);
        if phase.is_terminal() {
            return Err(JobError::AlreadyTerminal);
        }
        let at = if now.as_ticks() > self.h.now {
            Ms::at(now).ms()
        } else {
            self.h.now_ms
        };
        if self.slot(i).and_then(|s| Self::due(s, at)).is_some() {
            self.clock(now);
            self.settle(i);
            // Timed out for good, or (a lease, with retries left) queued again: either way the
            // caller's worker no longer has the job.
            return Err(if self.phase(i).is_terminal() {
                JobError::AlreadyTerminal
            } else {
                JobError::NotRunning
            });
        }
        if self.slot(i).is_some_and(|s| Self::backoff_over(s, at)) {
            self.clock(now);
            self.promote(i);
        }
        Ok(i)
    }

    fn phase(&self, i: u16) -> Phase {
        self.slot(i).map_or(Phase::Empty, |s| s.phase)
    }

    fn state(&self, i: u16) -> State {
        self.phase(i).state().unwrap_or(State::Queued)
    }

    pub(crate) fn start_next(&mut self, now: Instant) -> Option<JobId> {
        let id = super::lookup::peek_runnable(self.h, self.slots)?;
        self.start(id, now).ok().map(|()| id)
    }

    pub(crate) fn start(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.enter(id, now)?;
        let slot = self.slot(i).ok_or(LookupError::NotFound)?;
        if slot.phase != Phase::Queued {
            return Err(JobError::Transition {
                from: self.state(i),
                to: State::Running,
            });
        }
        if slot.has(flag::BACKOFF) {
            return Err(JobError::BackingOff);
        }
        if !slot.has(flag::RUNNABLE) {
            return Err(JobError::DependenciesPending);
        }
        self.clock(now);
        self.unlink(i);
        let now_ms = self.now_ms();
        if let Some(s) = self.slot_mut(i) {
            s.phase = Phase::Running;
            s.set(flag::RUNNABLE, false);
            if s.started.is_none() {
                s.started = now_ms;
            }
        }
        self.renew(i);
        self.push_back(List::Active, i);
        self.change(
            i,
            EventKind::StateChanged {
                from: State::Queued,
                to: State::Running,
            },
            true,
        );
        Ok(())
    }

    pub(crate) fn progress(
        &mut self,
        id: JobId,
        percent: u8,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        if percent > 100 {
            return Err(JobError::ProgressOutOfRange(percent));
        }
        self.check_text(message, TextField::Message)
            .map_err(|(field, limit)| JobError::TextTooLong { field, limit })?;
        let i = self.enter(id, now)?;
        if self.phase(i) != Phase::Running {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        self.write_text(i, Text::Message, message);
        if let Some(s) = self.slot_mut(i) {
            s.progress = percent;
        }
        self.renew(i);
        self.change(i, EventKind::Progress { percent }, false);
        Ok(())
    }

    pub(crate) fn log(&mut self, id: JobId, line: &str, now: Instant) -> Result<(), JobError> {
        let most = self.t.min(line_limit(self.logs.len()));
        if line.len() > most {
            return Err(JobError::TextTooLong {
                field: TextField::LogLine,
                limit: limit(most),
            });
        }
        let i = self.enter(id, now)?;
        self.clock(now);
        if self.phase(i) == Phase::Running {
            self.renew(i);
        }
        let pos = self.journal().write_line(line);
        self.record(id, EventKind::Log, pos);
        Ok(())
    }

    pub(crate) fn heartbeat(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.enter(id, now)?;
        if self.phase(i) != Phase::Running {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        self.renew(i);
        Ok(())
    }

    pub(crate) fn checkpoint(&mut self, id: JobId, now: Instant) -> Result<Directive, JobError> {
        let i = self.enter(id, now)?;
        let phase = self.phase(i);
        if phase == Phase::Queued {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        if phase == Phase::Running {
            self.renew(i);
        }
        let (cancel, pause) = self.slot(i).map_or((false, false), |s| {
            (s.has(flag::CANCEL_REQUESTED), s.has(flag::PAUSE_REQUESTED))
        });
        if cancel {
            self.finish(
                i,
                Self::failure(FailReason::Canceled),
                Some(Detail::Canceled),
                None,
            );
            return Ok(Directive::Canceled);
        }
        match phase {
            Phase::Running if pause => {
                if let Some(s) = self.slot_mut(i) {
                    s.set(flag::PAUSE_REQUESTED, false);
                    s.phase = Phase::Paused;
                }
                self.renew(i);
                self.change(
                    i,
                    EventKind::StateChanged {
                        from: State::Running,
                        to: State::Paused,
                    },
                    true,
                );
                Ok(Directive::Pause)
            }
            Phase::Paused => Ok(Directive::Pause),
            _ => Ok(Directive::Continue),
        }
    }

    pub(crate) fn succeed(
        &mut self,
        id: JobId,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.check_text(message, TextField::Message)
            .map_err(|(field, limit)| JobError::TextTooLong { field, limit })?;
        let i = self.enter(id, now)?;
        if self.phase(i) != Phase::Running {
            return Err(JobError::Transition {
                from: self.state(i),
                to: State::Succeeded,
            });
        }
        self.clock(now);
        self.finish(i, Outcome::Succeeded { severity }, None, Some(message));
        Ok(())
    }

    pub(crate) fn fail_with(
        &mut self,
        id: JobId,
        reason: FailReason,
        code: Option<i32>,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.check_text(message, TextField::Message)
            .map_err(|(field, limit)| JobError::TextTooLong { field, limit })?;
        let i = self.enter(id, now)?;
        self.clock(now);
        let slot = self.slot(i).ok_or(LookupError::NotFound)?;
        let active = matches!(slot.phase, Phase::Running | Phase::Paused);
        if reason == FailReason::Interrupted && active && slot.has(flag::RESTARTABLE) {
            self.requeue(i);
            return Ok(());
        }
        let detail = match reason {
            FailReason::Interrupted => Some(Detail::Interrupted),
            FailReason::Canceled => Some(Detail::Canceled),
            _ => None,
        };
        let outcome = Outcome::Failed {
            reason,
            code: code.unwrap_or(reason.default_code()),
        };
        self.finish(i, outcome, detail, Some(message));
        Ok(())
    }

    /// The worker's failure (R-RETRY): queued again after its backoff while the job's retry
    /// policy allows another attempt, failed for good otherwise.
    pub(crate) fn fail_retrying(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        self.check_text(message, TextField::Message)
            .map_err(|(field, limit)| JobError::TextTooLong { field, limit })?;
        let i = self.enter(id, now)?;
        self.clock(now);
        if self.retry_allowed(i) {
            self.retry(i, message);
            return Ok(());
        }
        let outcome = Outcome::Failed {
            reason: FailReason::Error,
            code,
        };
        self.finish(i, outcome, None, Some(message));
        Ok(())
    }

    /// A running or paused job whose retry policy allows another attempt.
    pub(crate) fn retry_allowed(&self, i: u16) -> bool {
        #[cfg(feature = "retry")]
        {
            self.slot(i).is_some_and(|s| {
                matches!(s.phase, Phase::Running | Phase::Paused) && s.retry.can_retry()
            })
        }
        #[cfg(not(feature = "retry"))]
        {
            let _ = i;
            false
        }
    }

    /// Queue slot `i` again for its next attempt, not startable before its backoff ends (or at
    /// once with no backoff). The deadline keeps running.
    pub(crate) fn retry(&mut self, i: u16, message: &str) {
        let from = self.state(i);
        let now = self.now_ms().ms();
        self.unlink(i);
        let Some(s) = self.slot_mut(i) else { return };
        #[cfg(feature = "retry")]
        let backoff = {
            s.retry.retries = s.retry.retries.saturating_add(1);
            s.retry.backoff_ms(s.retry.retries)
        };
        #[cfg(not(feature = "retry"))]
        let backoff = 0u64;
        s.phase = Phase::Queued;
        s.set(flag::PAUSE_REQUESTED, false);
        s.set(flag::CANCEL_REQUESTED, false);
        s.progress = 0;
        let level = s.level();
        let list = if backoff == 0 {
            s.set(flag::RUNNABLE, true);
            s.expiry = Ms::NONE;
            List::Runnable(level)
        } else {
            s.set(flag::BACKOFF, true);
            let end = now.saturating_add(backoff);
            s.expiry = Ms::from_ms(Self::deadline_of(s).map_or(end, |d| d.min(end)));
            List::Active
        };
        self.push_back(list, i);
        self.write_text(i, Text::Message, message);
        self.change(
            i,
            EventKind::StateChanged {
                from,
                to: State::Queued,
            },
            true,
        );
    }

    /// A running or paused restartable job goes back to the queue (it was interrupted).
    pub(crate) fn requeue(&mut self, i: u16) {
        let from = self.state(i);
        self.unlink(i);
        let mut level = 0;
        if let Some(s) = self.slot_mut(i) {
            s.phase = Phase::Queued;
            s.set(flag::PAUSE_REQUESTED, false);
            s.set(flag::CANCEL_REQUESTED, false);
            s.set(flag::BACKOFF, false);
            s.set(flag::RUNNABLE, true);
            s.expiry = Ms::NONE;
            s.progress = 0;
            level = s.level();
        }
        self.push_back(List::Runnable(level), i);
        self.change(
            i,
            EventKind::StateChanged {
                from,
                to: State::Queued,
            },
            true,
        );
    }

    /// The worker holding a running or paused job is gone — its lease in a shared store ended
    /// (R-CLUSTER): [`Core::release_held`] with the lease as the cause.
    pub(crate) fn worker_lost(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.enter(id, now)?;
        if !matches!(self.phase(i), Phase::Running | Phase::Paused) {
            return Err(JobError::NotRunning);
        }
        self.clock(now);
        self.release_held(i, Gone::Lease);
        Ok(())
    }

    /// The one rule for a running or paused job whose worker is gone: a pending cancel is
    /// honoured (`Canceled`); a restartable job goes back to the queue; after a lost lease, a
    /// job whose retry policy allows another attempt is retried; any other fails —
    /// `Interrupted` after a restart (R-PERSIST), `TimedOut` with [`Detail::Lease`] after a lost
    /// lease (R-CLUSTER).
    pub(crate) fn release_held(&mut self, i: u16, gone: Gone) -> Released {
        let (cancel, restartable) = self.slot(i).map_or((false, false), |s| {
            (s.has(flag::CANCEL_REQUESTED), s.has(flag::RESTARTABLE))
        });
        if cancel {
            self.finish(
                i,
                Self::failure(FailReason::Canceled),
                Some(Detail::Canceled),
                None,
            );
            Released::Canceled
        } else if restartable {
            self.requeue(i);
            Released::Requeued
        } else if gone == Gone::Lease && self.retry_allowed(i) {
            self.retry(i, "");
            Released::Requeued
        } else {
            let (reason, detail) = match gone {
                Gone::Restart => (FailReason::Interrupted, Detail::Interrupted),
                Gone::Lease => (FailReason::TimedOut, Detail::Lease),
            };
            self.finish(i, Self::failure(reason), Some(detail), None);
            Released::Failed
        }
    }

    // ----- client requests -----------------------------------------------------------------

    pub(crate) fn request_pause(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.enter(id, now)?;
        let slot = self.slot(i).ok_or(LookupError::NotFound)?;
        if !slot.has(flag::PAUSABLE) {
            return Err(JobError::NotPausable);
        }
        if slot.phase != Phase::Running {
            return Err(JobError::NotRunning);
        }
        if slot.has(flag::PAUSE_REQUESTED) {
            return Ok(());
        }
        self.clock(now);
        if let Some(s) = self.slot_mut(i) {
            s.set(flag::PAUSE_REQUESTED, true);
        }
        self.change(i, EventKind::Requested(Request::Pause), false);
        Ok(())
    }

    pub(crate) fn request_resume(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.enter(id, now)?;
        let slot = self.slot(i).ok_or(LookupError::NotFound)?;
        let pending = slot.has(flag::PAUSE_REQUESTED);
        match slot.phase {
            Phase::Paused => {
                self.clock(now);
                if let Some(s) = self.slot_mut(i) {
                    s.phase = Phase::Running;
                }
                self.renew(i);
                self.change(
                    i,
                    EventKind::StateChanged {
                        from: State::Paused,
                        to: State::Running,
                    },
                    true,
                );
                Ok(())
            }
            Phase::Running if pending => {
                self.clock(now);
                if let Some(s) = self.slot_mut(i) {
                    s.set(flag::PAUSE_REQUESTED, false);
                }
                self.change(i, EventKind::Requested(Request::Resume), false);
                Ok(())
            }
            _ => Err(JobError::NotPaused),
        }
    }

    pub(crate) fn request_cancel(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        let i = self.enter(id, now)?;
        let slot = self.slot(i).ok_or(LookupError::NotFound)?;
        if !slot.has(flag::CANCELABLE) {
            return Err(JobError::NotCancelable);
        }
        if slot.has(flag::CANCEL_REQUESTED) {
            return Ok(());
        }
        let queued = slot.phase == Phase::Queued;
        self.clock(now);
        if queued {
            self.finish(
                i,
                Self::failure(FailReason::Canceled),
                Some(Detail::Canceled),
                None,
            );
        } else {
            if let Some(s) = self.slot_mut(i) {
                s.set(flag::CANCEL_REQUESTED, true);
            }
            self.change(i, EventKind::Requested(Request::Cancel), false);
        }
        Ok(())
    }

    // ----- ending and removing -------------------------------------------------------------

    pub(crate) fn failure(reason: FailReason) -> Outcome {
        Outcome::Failed {
            reason,
            code: reason.default_code(),
        }
    }

    /// Move the job in slot `i` to its terminal state, then release or fail its dependents.
    pub(crate) fn finish(
        &mut self,
        i: u16,
        outcome: Outcome,
        detail: Option<Detail>,
        message: Option<&str>,
    ) {
        self.end(i, outcome, detail, message);
        if let Outcome::Succeeded { .. } = outcome {
            self.release_dependents(i);
        } else {
            self.cascade(i);
        }
    }

    /// The terminal move itself. `message` `None`: the table ended it, the message is cleared
    /// (the edge tells from [`Detail`]).
    pub(crate) fn end(
        &mut self,
        i: u16,
        outcome: Outcome,
        detail: Option<Detail>,
        message: Option<&str>,
    ) {
        let from = self.state(i);
        self.unlink(i);
        self.unlink_own_edges(i);
        let Some(s) = self.slot_mut(i) else { return };
        let to = outcome.state();
        s.phase = Phase::of(to);
        s.outcome = outcome_byte::encode(outcome, detail);
        // The lease moves to `expiry` (free once ended) so that `options()` still reads it.
        s.expiry = Ms::from_ms(u64::from(s.word));
        s.word = u32::from_ne_bytes(outcome.code().to_ne_bytes());
        s.set_failed_dep(0);
        for f in [
            flag::PAUSE_REQUESTED,
            flag::CANCEL_REQUESTED,
            flag::RUNNABLE,
            flag::BACKOFF,
        ] {
            s.set(f, false);
        }
        if to == State::Succeeded {
            s.progress = 100;
        }
        self.write_text(i, Text::Message, message.unwrap_or(""));
        self.push_back(List::Retained, i);
        self.change(i, EventKind::StateChanged { from, to }, true);
    }
}
