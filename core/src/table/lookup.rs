//! Ids to slots, and reading a job in place (R-ID).

use heapless::deque::DequeView;

use super::lists::index;
use super::{Core, Header, Ro};
use crate::error::{Compacted, LookupError};
use crate::id::{JobId, Revision};
use crate::journal::{Ev, Event, JournalRef};
use crate::record::{Slot, Tomb};
use crate::retain::Tombstone;
use crate::view::JobRef;

/// Which of a slot's two texts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Text {
    Description = 0,
    Message = 1,
}

/// The id of the job in slot `i` of a table in `epoch`.
pub(crate) fn id_of(epoch: u32, i: u16, slot: &Slot) -> JobId {
    JobId::new(
        epoch.saturating_sub(u32::from(slot.epoch_lag)),
        i,
        slot.generation,
    )
}

/// Does `id` name the job in `slot` (a slot of a table in `epoch`)? An id issued
/// `u16::MAX` or more epochs ago matches on slot and generation alone.
pub(crate) fn names(epoch: u32, i: u16, slot: &Slot, id: JobId) -> bool {
    if !(slot.phase.is_live() || slot.phase.is_terminal()) || id.generation() != slot.generation {
        return false;
    }
    let issued = epoch.saturating_sub(u32::from(slot.epoch_lag));
    id.index() == i
        && (id.epoch() == issued || (slot.epoch_lag == u16::MAX && id.epoch() <= issued))
}

/// Id → slot index, or why not (R-ID). Over the parts it needs, so that changes and reads of
/// every spec type share it, and a change finds its job without building a read view.
///
/// A job restored from a persisted image keeps the id it was given before the restart, so
/// the caller that was told about it still finds it. Any other id from an earlier epoch is
/// `Stale` (or `Expired` with its tombstone, when one is kept).
pub(crate) fn locate(
    h: &Header,
    slots: &[Slot],
    tombs: &DequeView<Tomb>,
    id: JobId,
) -> Result<u16, LookupError> {
    let epoch = h.epoch;
    if id.epoch() > epoch || id.generation() == 0 {
        return Err(LookupError::NotFound);
    }
    let i = id.index();
    let slot = slots.get(usize::from(i));
    if slot.is_some_and(|s| names(epoch, i, s, id)) {
        return Ok(i);
    }
    if let Some(t) = tombstone(tombs, id) {
        return Err(LookupError::Expired(Some(t)));
    }
    if id.epoch() < epoch {
        return Err(LookupError::Stale);
    }
    // This epoch: issued here if the slot's generation has passed it.
    match slot {
        Some(s) if id.generation() <= s.generation => Err(LookupError::Expired(None)),
        _ => Err(LookupError::NotFound),
    }
}

/// The tombstone kept for `id`, if any. Linear in the tombstones kept; only asked on the
/// `Expired` path.
fn tombstone(tombs: &DequeView<Tomb>, id: JobId) -> Option<Tombstone> {
    tombs.iter().rev().find(|t| t.id == id).map(Tombstone::of)
}

/// The jobs of the journal's events after `after`, oldest first, without decoding the events:
/// what [`crate::JobTable::changed_since`] and the shared table's wake-up walk need. The first
/// is found in O(1).
pub(crate) fn changed_jobs<'a>(
    journal: JournalRef<'a>,
    after: Revision,
    current: Revision,
) -> Result<impl Iterator<Item = JobId> + 'a, Compacted> {
    let dropped = journal.dropped;
    if after.get() < dropped {
        let oldest = if journal.events.is_empty() {
            current.next()
        } else {
            Revision::new(dropped.saturating_add(1))
        };
        return Err(Compacted { oldest });
    }
    let skip = usize::try_from(after.get().saturating_sub(dropped)).unwrap_or(usize::MAX);
    Ok(journal.kept_from(skip).map(Ev::job))
}

/// The job `start_next` would start: the head of the highest non-empty runnable list.
pub(crate) fn peek_runnable(h: &Header, slots: &[Slot]) -> Option<JobId> {
    let i = h.runnable.iter().rev().find_map(|l| index(l.head))?;
    slots.get(usize::from(i)).map(|s| id_of(h.epoch, i, s))
}

impl<'a, S> Ro<'a, S> {
    pub(crate) fn slot(&self, i: u16) -> Option<&'a Slot> {
        self.slots.get(usize::from(i))
    }

    /// A text's bytes as stored (checked as UTF-8 only when read as text).
    pub(crate) fn text_bytes(&self, i: u16, which: Text) -> &'a [u8] {
        let t = self.t;
        let buf = match which {
            Text::Description => self.desc,
            Text::Message => self.msg,
        };
        let len = self
            .lens
            .get(usize::from(i))
            .and_then(|l| l.get(which as usize))
            .map_or(0, |l| usize::from(*l));
        let start = usize::from(i).saturating_mul(t);
        buf.get(start..start.saturating_add(len.min(t)))
            .unwrap_or(&[])
    }

    pub(crate) fn spec(&self, slot: &Slot) -> Option<&'a S> {
        let pos = usize::from(slot.spec.checked_sub(1)?);
        self.specs.get(pos).map(|(_, s)| s)
    }

    /// The job in slot `i`, if it holds one.
    pub(crate) fn job_at(&self, i: u16) -> Option<JobRef<'a, S>> {
        let slot = self.slot(i)?;
        if !(slot.phase.is_live() || slot.phase.is_terminal()) {
            return None;
        }
        Some(JobRef {
            id: id_of(self.h.epoch, i, slot),
            slot,
            spec: self.spec(slot)?,
            description: self.text_bytes(i, Text::Description),
            message: self.text_bytes(i, Text::Message),
            edges: self.edges,
        })
    }

    /// Id → slot index, or why not (R-ID): [`locate`].
    pub(crate) fn locate(&self, id: JobId) -> Result<u16, LookupError> {
        locate(self.h, self.slots, self.tombs, id)
    }

    pub(crate) fn get(&self, id: JobId) -> Result<JobRef<'a, S>, LookupError> {
        let i = self.locate(id)?;
        self.job_at(i).ok_or(LookupError::NotFound)
    }

    pub(crate) fn peek_runnable(&self) -> Option<JobId> {
        peek_runnable(self.h, self.slots)
    }

    pub(crate) fn journal(
        self,
        after: Revision,
    ) -> Result<impl Iterator<Item = Event<'a>> + 'a, Compacted> {
        self.journal.since(after, Revision::new(self.h.revision))
    }
}

impl<S> Core<'_, S> {
    /// Id → slot index, or why not (R-ID): [`locate`].
    pub(crate) fn locate(&self, id: JobId) -> Result<u16, LookupError> {
        locate(self.h, self.slots, self.tombs, id)
    }
}

impl Tombstone {
    pub(crate) fn of(t: &Tomb) -> Tombstone {
        Tombstone {
            id: t.id,
            outcome: t.outcome(),
            ended: t.ended.instant(),
        }
    }
}
