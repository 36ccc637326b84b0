//! Job ids, table epochs and revisions.

use core::fmt;

/// The identity of one job: which slot, which use of that slot, which table epoch.
///
/// * `index` names the slot in the table;
/// * `generation` grows every time the slot takes a new job, so an id of an earlier job in the
///   same slot can never read or touch the new one (no ABA, R-ID);
/// * `epoch` grows every time a table is restored from a persisted image (a new table is in
///   epoch 0), so an id handed out before a restart is recognised as stale instead of being
///   mistaken for a new job.
///
/// Ids are plain values: copy them, compare them, send them over the wire with
/// [`JobId::to_bytes`] / [`JobId::from_bytes`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct JobId {
    epoch: u32,
    generation: u32,
    index: u16,
}

impl JobId {
    /// Number of bytes of [`JobId::to_bytes`].
    pub const BYTES: usize = 10;

    pub(crate) const fn new(epoch: u32, index: u16, generation: u32) -> Self {
        Self {
            epoch,
            generation,
            index,
        }
    }

    /// The table epoch the id was issued in.
    pub const fn epoch(self) -> u32 {
        self.epoch
    }

    /// The slot index in the table.
    pub const fn index(self) -> u16 {
        self.index
    }

    /// The generation of the slot when the id was issued (starts at 1; an issued id never has
    /// generation 0).
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// Big-endian bytes: epoch, generation, index. Ordered like the id.
    pub fn to_bytes(self) -> [u8; Self::BYTES] {
        let mut out = [0u8; Self::BYTES];
        let (e, rest) = out.split_at_mut(4);
        let (g, i) = rest.split_at_mut(4);
        e.copy_from_slice(&self.epoch.to_be_bytes());
        g.copy_from_slice(&self.generation.to_be_bytes());
        i.copy_from_slice(&self.index.to_be_bytes());
        out
    }

    /// The inverse of [`JobId::to_bytes`]. Any bytes make an id; whether the table knows it is
    /// for [`crate::JobTable::get`] to say.
    pub fn from_bytes(bytes: [u8; Self::BYTES]) -> Self {
        let [e0, e1, e2, e3, g0, g1, g2, g3, i0, i1] = bytes;
        Self {
            epoch: u32::from_be_bytes([e0, e1, e2, e3]),
            generation: u32::from_be_bytes([g0, g1, g2, g3]),
            index: u16::from_be_bytes([i0, i1]),
        }
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "JobId({}.{}.{})",
            self.epoch, self.index, self.generation
        )
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.epoch, self.index, self.generation)
    }
}

/// The table's change counter (R-VERSION).
///
/// Every observable change takes the next revision: a job remembers the revision of its last
/// change, the journal stamps each event with one. Revisions are never reused and never go back,
/// not even across a persist/restore. A waiter that remembers the last revision it saw can never
/// miss an update, however close together two updates come.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Revision(u64);

impl Revision {
    /// The revision before any change.
    pub const ZERO: Revision = Revision(0);

    /// Wraps a raw value (for example one a client sent back).
    pub const fn new(value: u64) -> Self {
        Self(value)
    }

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The highest revision a table takes: 2^48 - 1 (a job stores its revision in 6 bytes).
    /// A table changing 100 000 times a second reaches it after 89 years.
    pub const MAX: Revision = Revision((1 << 48) - 1);

    /// The revision after this one, saturating at [`Revision::MAX`].
    pub(crate) const fn next(self) -> Self {
        if self.0 >= Self::MAX.0 {
            Self::MAX
        } else {
            Self(self.0.saturating_add(1))
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
