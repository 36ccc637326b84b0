//! Submit and the state machine (R-TRANS, R-CONTROL, R-OUTCOME, R-FULL, R-INPUT).
//!
//! Every operation first checks everything that could refuse it, so a refused call changes
//! nothing — not even the table's clock. The one exception is time itself: an operation on a
//! running or paused job whose deadline or lease has passed fails that job `TimedOut` first
//! (R-DEADLINE), then answers [`JobError::AlreadyTerminal`].

use super::lists::{index, List};
use super::lookup::{id_of, Text};
use super::Core;
use crate::error::{JobError, LookupError, Refused, SubmitError, TextField};
use crate::id::{JobId, Revision};
use crate::job::{NewJob, MAX_DEPENDENCIES};
use crate::journal::{line_limit, EventKind, Ev};
use crate::record::{flag, outcome_byte, Detail, Phase, Slot, Tomb, NIL};
use crate::state::{Directive, FailReason, Outcome, Request, Severity, State};
use crate::time::{self, Instant, Ms};

fn limit(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

impl<S> Core<'_, S> {
    // ----- time and revisions --------------------------------------------------------------

    /// Clamp `now` so time never goes back inside the table.
    pub(crate) fn clock(&mut self, now: Instant) -> Instant {
        self.h.now = self.h.now.max(now.as_ticks());
        Instant::from_ticks(self.h.now)
    }

    pub(crate) fn now_ms(&self) -> Ms {
        Ms::at(Instant::from_ticks(self.h.now))
    }

    /// Take a revision for a change to the job in slot `i` and journal it.
    pub(crate) fn change(&mut self, i: u16, kind: EventKind, state_change: bool) {
        let revision = Revision::new(self.h.revision).next();
        let now = self.now_ms();
        let epoch = self.h.epoch;
        let Some(slot) = self.slot_mut(i) else { return };
        let state_revision = if state_change {
            revision.get()
        } else {
            slot.state_revision()
        };
        slot.state_lag = u32::try_from(revision.get().saturating_sub(state_revision))
            .unwrap_or(u32::MAX);
        slot.revision = Ms::from_ms(revision.get());
        slot.modified = now;
        let id = id_of(epoch, i, slot);
        self.h.revision = revision.get();
        self.journal().push(revision, Ev::new(id, kind, 0));
    }

    /// Take a revision for an event that does not change a job's fields.
    pub(crate) fn record(&mut self, id: JobId, kind: EventKind, log_pos: u32) {
        let revision = Revision::new(self.h.revision).next();
        self.h.revision = revision.get();
        self.journal().push(revision, Ev::new(id, kind, log_pos));
    }

    // ----- texts and specs -----------------------------------------------------------------

    pub(crate) fn check_text(&self, s: &str, field: TextField) -> Result<(), (TextField, u16)> {
        if s.len() > self.t {
            Err((field, limit(self.t)))
        } else {
            Ok(())
        }
    }

    pub(crate) fn write_text(&mut self, i: u16, which: Text, s: &str) {
        let t = self.t;
        let len = s.len().min(t);
        let start = usize::from(i).saturating_mul(t);
        let buf = match which {
            Text::Description => &mut *self.desc,
            Text::Message => &mut *self.msg,
        };
        if let (Some(dst), Some(src)) = (
            buf.get_mut(start..start.saturating_add(len)),
            s.as_bytes().get(..len),
        ) {
            for (d, b) in dst.iter_mut().zip(src) {
                *d = *b;
            }
        }
        if let Some(l) = self
            .lens
            .get_mut(usize::from(i))
            .and_then(|l| l.get_mut(which as usize))
        {
            *l = limit(len);
        }
    }

    // ----- submitting ----------------------------------------------------------------------

    /// Everything that could refuse `job`; answers the position + 1 of the first dependency
    /// that already failed (0: none).
    fn admit(&self, job: &NewJob<'_, S>) -> Result<u8, SubmitError> {
        self.check_text(job.description, TextField::Description)
            .map_err(|(field, limit)| SubmitError::TextTooLong { field, limit })?;
        if job.depends_on.len() > MAX_DEPENDENCIES {
            return Err(SubmitError::TooManyDependencies);
        }
        if time::duration_ms(job.options.run_timeout).is_none()
            || time::duration_ms(job.options.lease).is_none()
        {
            return Err(SubmitError::DurationTooLong);
        }
        let mut failed: u8 = 0;
        for (k, dep) in job.depends_on.iter().enumerate() {
            if job.depends_on.iter().take(k).any(|d| d == dep) {
                return Err(SubmitError::DuplicateDependency(*dep));
            }
            let found = self
                .ro()
                .get(*dep)
                .map_err(|error| SubmitError::UnknownDependency { id: *dep, error })?;
            if found.state() == State::Failed && failed == 0 {
                failed = u8::try_from(k.saturating_add(1)).unwrap_or(u8::MAX);
            }
        }
        if job.depends_on.len() > self.edges_free() {
            return Err(SubmitError::DependenciesFull);
        }
        Ok(failed)
    }

    pub(crate) fn submit<'a>(
        &mut self,
        job: NewJob<'a, S>,
        now: Instant,
    ) -> Result<JobId, Refused<'a, S>> {
        let failed = match self.admit(&job) {
            Ok(f) => f,
            Err(error) => return Err(Refused { job, error }),
        };
        let before = self.h.now;
        self.clock(now);
        let Some(i) = self.allocate() else {
            // Refused: not even the clock moves.
            self.h.now = before;
            return Err(Refused {
                job,
                error: SubmitError::TableFull,
            });
        };
        let NewJob {
            spec,
            description,
            depends_on,
            options,
        } = job;
        let pos = self.specs.len();
        if let Err((_, spec)) = self.specs.push((i, spec)) {
            // Cannot happen (one spec per job, at most N jobs); hand it back all the same.
            self.push_free(i);
            self.h.now = before;
            return Err(Refused {
                job: NewJob {
                    spec,
                    description,
                    depends_on,
                    options,
                },
                error: SubmitError::TableFull,
            });
        }
        let now = self.now_ms();
        let mut flags = 0;
        for (on, f) in [
            (options.pausable, flag::PAUSABLE),
            (options.cancelable, flag::CANCELABLE),
            (options.restartable, flag::RESTARTABLE),
        ] {
            if on {
                flags |= f;
            }
        }
        let Some(slot) = self.slot_mut(i) else {
            return Ok(JobId::default());
        };
        let generation = slot.generation.saturating_add(1);
        *slot = Slot {
            generation,
            run_timeout: time::duration_ms(options.run_timeout).unwrap_or(0),
            word: time::duration_ms(options.lease).unwrap_or(0),
            created: now,
            modified: now,
            started: Ms::NONE,
            expiry: Ms::NONE,
            spec: u16::try_from(pos.saturating_add(1)).unwrap_or(0),
            phase: Phase::Queued,
            flags,
            ..Slot::EMPTY
        };
        let id = JobId::new(self.h.epoch, i, generation);
        self.write_text(i, Text::Description, description);
        self.write_text(i, Text::Message, "");
        self.h.len = self.h.len.saturating_add(1);
        self.change(i, EventKind::Submitted, true);
        self.link_dependencies(i, depends_on);
        if failed != 0 {
            self.finish(
                i,
                Self::failure(FailReason::DependencyFailed),
                Some(Detail::Dependency(JobId::default())),
                None,
            );
            if let Some(s) = self.slot_mut(i) {
                s.cause = failed;
            }
        } else if self.slot(i).is_some_and(|s| s.unmet == 0) {
            if let Some(s) = self.slot_mut(i) {
                s.set(flag::RUNNABLE, true);
            }
            self.push_back(List::Runnable, i);
        }
        Ok(id)
    }

    /// A free slot: a released one, a never-used one, or the oldest expired terminal job's.
    fn allocate(&mut self) -> Option<u16> {
        loop {
            if let Some(i) = index(self.h.free) {
                self.h.free = self.slot(i).map_or(NIL, |s| s.next);
                if let Some(s) = self.slot_mut(i) {
                    s.next = NIL;
                }
                return Some(i);
            }
            if usize::from(self.h.fresh) < self.slots.len() {
                let i = self.h.fresh;
                self.h.fresh = self.h.fresh.saturating_add(1);
                return Some(i);
            }
            let head = index(self.h.retained.head)?;
            if !self.evictable(head) {
                return None;
            }
            // Removing puts the slot on the free list, unless it retires.
            self.remove(head);
        }
    }

    // ----- the worker side -----------------------------------------------------------------

    /// Id → slot of a live job, settling its deadline first (see the module docs).
    fn enter(&mut self, id: JobId, now: Instant) -> Result<u16, JobError> {
        let i = self.ro().locate(id)?;
        let phase = self.slot(i).map_or(Phase::Empty, |s| s.phase);
        if phase.is_terminal() {
            return Err(JobError::AlreadyTerminal);
        }
        let at = now.as_ticks().max(self.h.now);
        if self.slot(i).and_then(|s| Self::due(s, at)).is_some() {
            self.clock(now);
            self.settle(i);
            return Err(JobError::AlreadyTerminal);
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
        let id = self.ro().peek_runnable()?;
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
        if !slot.has(flag::RUNNABLE) {
            return Err(JobError::DependenciesPending);
        }
        let now = self.clock(now);
        self.unlink(i);
        let now_ms = self.now_ms();
        if let Some(s) = self.slot_mut(i) {
            s.phase = Phase::Running;
            s.set(flag::RUNNABLE, false);
            if s.started.is_none() {
                s.started = now_ms;
            }
        }
        self.renew(i, now);
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
        let now = self.clock(now);
        self.write_text(i, Text::Message, message);
        if let Some(s) = self.slot_mut(i) {
            s.progress = percent;
        }
        self.renew(i, now);
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
        let now = self.clock(now);
        if self.phase(i) == Phase::Running {
            self.renew(i, now);
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
        let now = self.clock(now);
        self.renew(i, now);
        Ok(())
    }

    pub(crate) fn checkpoint(&mut self, id: JobId, now: Instant) -> Result<Directive, JobError> {
        let i = self.enter(id, now)?;
        let phase = self.phase(i);
        if phase == Phase::Queued {
            return Err(JobError::NotRunning);
        }
        let now = self.clock(now);
        if phase == Phase::Running {
            self.renew(i, now);
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
                self.renew(i, now);
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

    /// A running or paused restartable job goes back to the queue (it was interrupted).
    pub(crate) fn requeue(&mut self, i: u16) {
        let from = self.state(i);
        self.unlink(i);
        if let Some(s) = self.slot_mut(i) {
            s.phase = Phase::Queued;
            s.set(flag::PAUSE_REQUESTED, false);
            s.set(flag::CANCEL_REQUESTED, false);
            s.set(flag::RUNNABLE, true);
            s.expiry = Ms::NONE;
            s.progress = 0;
        }
        self.push_back(List::Runnable, i);
        self.change(
            i,
            EventKind::StateChanged {
                from,
                to: State::Queued,
            },
            true,
        );
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
                let now = self.clock(now);
                if let Some(s) = self.slot_mut(i) {
                    s.phase = Phase::Running;
                }
                self.renew(i, now);
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
        s.word = u32::from_ne_bytes(outcome.code().to_ne_bytes());
        s.cause = 0;
        s.expiry = Ms::NONE;
        for f in [flag::PAUSE_REQUESTED, flag::CANCEL_REQUESTED, flag::RUNNABLE] {
            s.set(f, false);
        }
        if to == State::Succeeded {
            s.progress = 100;
        }
        self.write_text(i, Text::Message, message.unwrap_or(""));
        self.push_back(List::Retained, i);
        self.change(i, EventKind::StateChanged { from, to }, true);
    }

    /// Remove the terminal job in slot `i`, leaving a tombstone; the slot goes to the free
    /// list, or retires when its generation is used up (R-ID).
    pub(crate) fn remove(&mut self, i: u16) {
        let epoch = self.h.epoch;
        let Some(slot) = self.slot(i).copied() else {
            return;
        };
        if !slot.phase.is_terminal() {
            return;
        }
        let id = id_of(epoch, i, &slot);
        let tomb = Tomb {
            id,
            ended: slot.modified,
            outcome: slot.outcome & 0xF,
            succeeded: slot.phase == Phase::Succeeded,
            code: i32::from_ne_bytes(slot.word.to_ne_bytes()),
        };
        if self.tombs.is_full() {
            let _ = self.tombs.pop_front();
        }
        let _ = self.tombs.push_back(tomb);
        self.record(id, EventKind::Removed, 0);
        self.unlink(i);
        self.free_edges(i);
        if let Some(pos) = usize::from(slot.spec).checked_sub(1) {
            if pos < self.specs.len() {
                let _ = self.specs.swap_remove(pos);
                if let Some(&(moved, _)) = self.specs.get(pos) {
                    if let Some(m) = self.slot_mut(moved) {
                        m.spec = u16::try_from(pos.saturating_add(1)).unwrap_or(0);
                    }
                }
            }
        }
        self.h.len = self.h.len.saturating_sub(1);
        let retire = slot.generation == u32::MAX;
        if let Some(s) = self.slot_mut(i) {
            *s = Slot {
                generation: slot.generation,
                phase: if retire { Phase::Retired } else { Phase::Empty },
                ..Slot::EMPTY
            };
        }
        if retire {
            self.h.retired = self.h.retired.saturating_add(1);
        } else {
            self.push_free(i);
        }
    }
}
