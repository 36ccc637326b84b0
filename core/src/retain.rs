//! Retention: tombstones of removed jobs (R-RETAIN).

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
    /// When it ended (to the millisecond).
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms"))]
    pub ended: Instant,
}

impl Tombstone {
    /// The final state (`Succeeded` or `Failed`).
    pub fn state(&self) -> State {
        self.outcome.state()
    }
}
