//! Revisions and texts: every change takes the next revision and a journal event
//! (R-VERSION, R-JOURNAL); texts are written into the table's buffers.

use super::lookup::{id_of, Text};
use super::Core;
use crate::error::TextField;
use crate::id::{JobId, Revision};
use crate::journal::{Ev, EventKind};
use crate::time::{Instant, Ms};

pub(crate) fn limit(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

impl<S> Core<'_, S> {
    // ----- time and revisions --------------------------------------------------------------

    /// Clamp `now` so time never goes back inside the table.
    pub(crate) fn clock(&mut self, now: Instant) -> Instant {
        if now.as_ticks() > self.h.now {
            self.h.now = now.as_ticks();
            self.h.now_ms = Ms::at(now).ms();
        }
        Instant::from_ticks(self.h.now)
    }

    pub(crate) fn now_ms(&self) -> Ms {
        Ms::from_ms(self.h.now_ms)
    }

    /// Take a revision for a change to the job in slot `i` and journal it.
    pub(crate) fn change(&mut self, i: u16, kind: EventKind, state_change: bool) {
        let now = self.now_ms();
        self.stamp(i, kind, state_change, Some(now));
    }

    /// A new revision for slot `i` with `modified` left as it is (a restore: the job did not
    /// change, but waiters from before it must hear of it).
    #[cfg(feature = "persist")]
    pub(crate) fn touch(&mut self, i: u16, kind: EventKind) {
        self.stamp(i, kind, false, None);
    }

    fn stamp(&mut self, i: u16, kind: EventKind, state_change: bool, modified: Option<Ms>) {
        let revision = Revision::new(self.h.revision).next();
        let epoch = self.h.epoch;
        let Some(slot) = self.slot_mut(i) else { return };
        let state_revision = if state_change {
            revision.get()
        } else {
            slot.state_revision()
        };
        slot.state_lag =
            u32::try_from(revision.get().saturating_sub(state_revision)).unwrap_or(u32::MAX);
        slot.revision = Ms::from_ms(revision.get());
        if let Some(now) = modified {
            slot.modified = now;
        }
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
}
