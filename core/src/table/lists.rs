//! Intrusive lists through the slots: runnable (a FIFO per priority level), active (running,
//! paused, or waiting out a retry backoff), retained (terminal, oldest first: the next to go)
//! and free. They make submit, start, next-runnable,
//! complete and eviction O(1), with no scan of the table (R-SCHED). Which list a slot is on
//! follows from its phase, so it is not stored.

use super::Core;
use crate::record::{flag, Phase, Slot, NIL};

/// Head and tail of one list (slot index + 1, 0 = none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ends {
    pub(crate) head: u16,
    pub(crate) tail: u16,
}

impl Ends {
    pub(crate) const EMPTY: Ends = Ends {
        head: NIL,
        tail: NIL,
    };
}

/// Which list a slot is on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum List {
    /// Not on a list: a queued job waiting for dependencies, or a retired slot.
    None,
    /// Free slot (singly linked through `next`).
    Free,
    /// Runnable at this priority level.
    Runnable(u8),
    Active,
    Retained,
}

impl List {
    pub(crate) fn of(slot: &Slot) -> List {
        match slot.phase {
            Phase::Empty => List::Free,
            Phase::Queued if slot.has(flag::RUNNABLE) => List::Runnable(slot.level()),
            Phase::Queued if slot.has(flag::BACKOFF) => List::Active,
            Phase::Queued | Phase::Retired => List::None,
            Phase::Running | Phase::Paused => List::Active,
            Phase::Succeeded | Phase::Failed => List::Retained,
        }
    }
}

/// Slot index of a link, if any.
pub(crate) fn index(link: u16) -> Option<u16> {
    link.checked_sub(1)
}

/// The link of slot index `i`.
pub(crate) fn link(i: u16) -> u16 {
    i.saturating_add(1)
}

impl<S> Core<'_, S> {
    pub(crate) fn slot(&self, i: u16) -> Option<&Slot> {
        self.slots.get(usize::from(i))
    }

    pub(crate) fn slot_mut(&mut self, i: u16) -> Option<&mut Slot> {
        self.slots.get_mut(usize::from(i))
    }

    fn at_link(&mut self, l: u16) -> Option<&mut Slot> {
        let i = index(l)?;
        self.slot_mut(i)
    }

    fn ends_mut(&mut self, list: List) -> Option<&mut Ends> {
        match list {
            List::Runnable(level) => self.h.runnable.get_mut(usize::from(level)),
            List::Active => Some(&mut self.h.active),
            List::Retained => Some(&mut self.h.retained),
            List::None | List::Free => None,
        }
    }

    /// Append slot `i` to `list` (its phase must already say `list`).
    pub(crate) fn push_back(&mut self, list: List, i: u16) {
        let Some(ends) = self.ends_mut(list) else {
            return;
        };
        let tail = ends.tail;
        ends.tail = link(i);
        if ends.head == NIL {
            ends.head = link(i);
        }
        if let Some(t) = self.at_link(tail) {
            t.next = link(i);
        }
        if let Some(s) = self.slot_mut(i) {
            s.prev = tail;
            s.next = NIL;
        }
    }

    /// Put slot `i` on `list` right after the slot linked `after`, or at the head when `after`
    /// is [`NIL`].
    pub(crate) fn insert_after(&mut self, list: List, after: u16, i: u16) {
        let next = match self.at_link(after) {
            Some(a) => a.next,
            None => match self.ends_mut(list) {
                Some(ends) => ends.head,
                None => return,
            },
        };
        if let Some(s) = self.slot_mut(i) {
            s.prev = after;
            s.next = next;
        }
        match self.at_link(after) {
            Some(a) => a.next = link(i),
            None => {
                if let Some(ends) = self.ends_mut(list) {
                    ends.head = link(i);
                }
            }
        }
        match self.at_link(next) {
            Some(n) => n.prev = link(i),
            None => {
                if let Some(ends) = self.ends_mut(list) {
                    ends.tail = link(i);
                }
            }
        }
    }

    /// Take slot `i` off the list its phase puts it on (call before changing the phase).
    pub(crate) fn unlink(&mut self, i: u16) {
        let Some(s) = self.slot(i) else { return };
        let (list, prev, next) = (List::of(s), s.prev, s.next);
        if list == List::Free {
            // Only the free list's head is ever taken.
            if self.h.free == link(i) {
                self.h.free = next;
            }
        } else {
            match self.at_link(prev) {
                Some(p) => p.next = next,
                None => {
                    if let Some(ends) = self.ends_mut(list) {
                        ends.head = next;
                    }
                }
            }
            match self.at_link(next) {
                Some(n) => n.prev = prev,
                None => {
                    if let Some(ends) = self.ends_mut(list) {
                        ends.tail = prev;
                    }
                }
            }
        }
        if let Some(s) = self.slot_mut(i) {
            s.prev = NIL;
            s.next = NIL;
        }
    }

    /// Put the empty slot `i` on the free list.
    pub(crate) fn push_free(&mut self, i: u16) {
        let head = self.h.free;
        if let Some(s) = self.slot_mut(i) {
            s.prev = NIL;
            s.next = head;
        }
        self.h.free = link(i);
    }

    /// Reverse the free list in place (decoding pushes in stored order, head first).
    #[cfg(feature = "persist")]
    pub(crate) fn reverse_free(&mut self) {
        let mut prev = NIL;
        let mut l = self.h.free;
        while let Some(i) = index(l) {
            let Some(s) = self.slot_mut(i) else { break };
            let next = s.next;
            s.next = prev;
            prev = l;
            l = next;
        }
        self.h.free = prev;
    }
}
