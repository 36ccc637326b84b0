//! Submitting and removing (R-FULL, R-DEPS, R-INPUT, R-ID): admission checks, slot
//! allocation with eviction of expired terminal jobs, and removal with tombstones and slot
//! retirement.

use super::lists::{index, List};
use super::lookup::{id_of, Text};
use super::Core;
use crate::error::{Refused, SubmitError, TextField};
use crate::id::JobId;
use crate::job::{NewJob, MAX_DEPENDENCIES};
use crate::journal::EventKind;
use crate::record::{flag, Detail, Phase, Slot, Tomb, NIL};
use crate::state::FailReason;
use crate::time::{self, Instant, Ms};

impl<S> Core<'_, S> {
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
        #[cfg(feature = "retry")]
        if let Some(policy) = &job.retry {
            if crate::retry::RetryState::of(policy).is_none() {
                return Err(SubmitError::InvalidRetryPolicy);
            }
        }
        let mut failed: u8 = 0;
        for (k, dep) in job.depends_on.iter().enumerate() {
            if job.depends_on.iter().take(k).any(|d| d == dep) {
                return Err(SubmitError::DuplicateDependency(*dep));
            }
            let found = self
                .locate(*dep)
                .map_err(|error| SubmitError::UnknownDependency { id: *dep, error })?;
            if self.slot(found).is_some_and(|s| s.phase == Phase::Failed) && failed == 0 {
                failed = u8::try_from(k.saturating_add(1)).unwrap_or(u8::MAX);
            }
        }
        if job.depends_on.len() > self.edges_free() {
            return Err(SubmitError::DependenciesFull);
        }
        Ok(failed)
    }

    #[allow(clippy::result_large_err)] // the caller's job comes back whole (R-FULL)
    pub(crate) fn submit<'a>(
        &mut self,
        job: NewJob<'a, S>,
        now: Instant,
    ) -> Result<JobId, Refused<'a, S>> {
        let failed = match self.admit(&job) {
            Ok(f) => f,
            Err(error) => return Err(Refused { job, error }),
        };
        let before = (self.h.now, self.h.now_ms);
        self.clock(now);
        let Some(i) = self.allocate() else {
            // Refused: not even the clock moves.
            (self.h.now, self.h.now_ms) = before;
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
            priority,
            #[cfg(feature = "retry")]
            retry,
        } = job;
        let pos = self.specs.len();
        if let Err((_, spec)) = self.specs.push((i, spec)) {
            // Cannot happen (one spec per job, at most N jobs); hand it back all the same.
            self.push_free(i);
            (self.h.now, self.h.now_ms) = before;
            return Err(Refused {
                job: NewJob {
                    spec,
                    description,
                    depends_on,
                    options,
                    priority,
                    #[cfg(feature = "retry")]
                    retry,
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
            #[cfg(feature = "retry")]
            retry: retry
                .as_ref()
                .and_then(crate::retry::RetryState::of)
                .unwrap_or(crate::retry::RetryState::EMPTY),
            ..Slot::EMPTY
        };
        slot.set_level(priority.level());
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
                s.set_failed_dep(failed);
            }
        } else if self.slot(i).is_some_and(|s| s.unmet == 0) {
            if let Some(s) = self.slot_mut(i) {
                s.set(flag::RUNNABLE, true);
            }
            self.push_back(List::Runnable(priority.level()), i);
        }
        Ok(id)
    }

    /// A free slot: a released one, a never-used one, or the oldest expired terminal job's.
    fn allocate(&mut self) -> Option<u16> {
        if !self.can_allocate() {
            return None;
        }
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

    /// Whether [`Core::allocate`] will find a slot — checked first, so that a refused submit
    /// changes nothing: evicting expired terminal jobs whose slots would retire, and then
    /// finding no slot after all, would remove jobs for a submit that is refused. Walks the
    /// evictable jobs whose slots retire (rare: one per slot per 2^32 uses).
    fn can_allocate(&self) -> bool {
        if self.h.free != NIL || usize::from(self.h.fresh) < self.slots.len() {
            return true;
        }
        let mut l = self.h.retained.head;
        while let Some(i) = index(l) {
            if !self.evictable(i) {
                return false;
            }
            match self.slot(i) {
                Some(s) if s.generation != u32::MAX => return true,
                Some(s) => l = s.next,
                None => return false,
            }
        }
        false
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
        // The spec is dropped last, when the table is whole again: a `Drop` that panics cannot
        // leave it half-changed.
        let mut removed = None;
        if let Some(pos) = usize::from(slot.spec).checked_sub(1) {
            if pos < self.specs.len() {
                removed = Some(self.specs.swap_remove(pos));
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
        drop(removed);
    }
}
