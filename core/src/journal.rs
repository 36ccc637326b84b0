//! The journal: a bounded ring of events, each stamped with its revision (R-JOURNAL).

use heapless::{Deque, String};

use crate::error::Compacted;
use crate::id::{JobId, Revision};
use crate::state::{Request, State};

/// What happened.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EventKind<const T: usize> {
    /// The job was accepted.
    Submitted,
    /// The job moved from one state to another.
    StateChanged {
        /// Before.
        from: State,
        /// After.
        to: State,
    },
    /// The worker reported progress (the message is on the job).
    Progress {
        /// Percent done.
        percent: u8,
    },
    /// A client request was recorded.
    Requested(Request),
    /// The worker logged a line (Oracle's work-request logs).
    Log(String<T>),
    /// The job was removed from the table (retention passed, or evicted for room).
    Removed,
}

/// One journal entry.
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Event<const T: usize> {
    /// The revision this event took. Every revision has exactly one event.
    pub revision: Revision,
    /// The job it is about.
    pub job: JobId,
    /// What happened.
    pub kind: EventKind<T>,
}

/// The ring. Revisions of kept events are contiguous, so a reader's position is found in O(1).
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Journal<const T: usize, const J: usize> {
    ring: Deque<Event<T>, J>,
    /// The highest revision whose event was dropped (ZERO when none was).
    pub(crate) dropped: Revision,
}

impl<const T: usize, const J: usize> Journal<T, J> {
    pub(crate) const fn new() -> Self {
        Self {
            ring: Deque::new(),
            dropped: Revision::ZERO,
        }
    }

    pub(crate) fn push(&mut self, event: Event<T>) {
        if self.ring.is_full() {
            if let Some(old) = self.ring.pop_front() {
                self.dropped = old.revision;
            }
        }
        match self.ring.push_back(event) {
            Ok(()) => {}
            // Only with J == 0: nothing is kept, so the event counts as dropped at once.
            Err(e) => self.dropped = e.revision,
        }
    }

    /// Events with a revision greater than `after`, oldest first.
    pub(crate) fn since(
        &self,
        after: Revision,
        current: Revision,
    ) -> Result<impl Iterator<Item = &Event<T>>, Compacted> {
        if after < self.dropped {
            let oldest = self
                .ring
                .front()
                .map_or(current.next(), |e: &Event<T>| e.revision);
            return Err(Compacted { oldest });
        }
        let first = self.ring.front().map_or(0, |e| e.revision.get());
        let skip = after.get().saturating_add(1).saturating_sub(first);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        Ok(self.ring.iter().skip(skip))
    }
}
