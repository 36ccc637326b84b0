//! Retention: tombstones of removed jobs (R-RETAIN).

use heapless::Deque;

use crate::id::JobId;
use crate::state::{Outcome, State};
use crate::time::Instant;

/// What is left of a removed job: enough to tell a late poller how it ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Tombstone {
    /// The removed job.
    pub id: JobId,
    /// How it ended.
    pub outcome: Outcome,
    /// When it ended.
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ticks"))]
    pub ended: Instant,
}

impl Tombstone {
    /// The final state (`Succeeded` or `Failed`).
    pub fn state(&self) -> State {
        self.outcome.state()
    }
}

/// A ring of the most recent `N` tombstones.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct Tombstones<const N: usize> {
    ring: Deque<Tombstone, N>,
}

impl<const N: usize> Tombstones<N> {
    pub(crate) const fn new() -> Self {
        Self { ring: Deque::new() }
    }

    pub(crate) fn push(&mut self, t: Tombstone) {
        if self.ring.is_full() {
            let _ = self.ring.pop_front();
        }
        // Cannot fail: there is room now (or N == 0, where nothing is kept).
        let _ = self.ring.push_back(t);
    }

    /// Linear in the ring size; only asked on the `Expired` path.
    pub(crate) fn find(&self, id: JobId) -> Option<Tombstone> {
        self.ring.iter().rev().find(|t| t.id == id).copied()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Tombstone> {
        self.ring.iter()
    }
}
