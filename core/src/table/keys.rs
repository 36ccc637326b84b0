//! Idempotency keys (R-IDEMPOTENT): a submit may carry a key (OCI's `opc-retry-token`); the
//! same key within the job's retention answers the same job, the same key with a different
//! request is refused. Keys live in an open-addressed table of `I` entries (24 bytes each)
//! keyed by a 64-bit hash of the key; an entry belongs to one job (slot and generation) and
//! lapses when that job is removed, so no sweep is needed. Keys are persisted with the jobs.
//!
//! Two different keys with the same 64-bit hash count as the same key: with well-spread keys
//! (random retry tokens) the chance is about 2^-64 per pair.

use super::lists::index;
use super::lookup::id_of;
use super::Core;
use crate::id::JobId;

/// One key: its hash (0 = never used), the request's fingerprint, the job it names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyEntry {
    pub(crate) hash: [u32; 2],
    pub(crate) fingerprint: [u32; 2],
    pub(crate) generation: u32,
    /// Slot index + 1.
    pub(crate) slot: u16,
}

impl KeyEntry {
    pub(crate) const EMPTY: KeyEntry = KeyEntry {
        hash: [0; 2],
        fingerprint: [0; 2],
        generation: 0,
        slot: 0,
    };

    pub(crate) fn hash(&self) -> u64 {
        join(self.hash)
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        join(self.fingerprint)
    }
}

fn join([hi, lo]: [u32; 2]) -> u64 {
    (u64::from(hi) << 32) | u64::from(lo)
}

pub(crate) fn split(v: u64) -> [u32; 2] {
    [(v >> 32) as u32, v as u32]
}

/// FNV-1a, 64 bits; never 0 (0 marks an unused entry).
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// What [`crate::JobTable::submit_idempotent`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Idempotent {
    /// A new job was accepted under the key.
    New(JobId),
    /// The key already names this job, for the same request: nothing was added.
    Existing(JobId),
}

impl Idempotent {
    /// The job, new or existing.
    pub fn id(self) -> JobId {
        match self {
            Idempotent::New(id) | Idempotent::Existing(id) => id,
        }
    }
}

impl<S> Core<'_, S> {
    /// The slot of the job an entry names, if that job is still in the table.
    fn key_job(&self, e: &KeyEntry) -> Option<u16> {
        let i = index(e.slot)?;
        let s = self.slot(i)?;
        ((s.phase.is_live() || s.phase.is_terminal()) && s.generation == e.generation).then_some(i)
    }

    fn start_of(&self, hash: u64) -> usize {
        let cap = u64::try_from(self.keys.len()).unwrap_or(u64::MAX);
        usize::try_from(hash.checked_rem(cap).unwrap_or(0)).unwrap_or(0)
    }

    /// The entry position and job of `hash`, if a live entry holds it. Lapsed entries at the
    /// end of a probe chain are cleared on the way, so chains stay short.
    pub(crate) fn find_key(&mut self, hash: u64) -> Option<(usize, u16)> {
        let cap = self.keys.len();
        let start = self.start_of(hash);
        let mut last_lapsed: Option<usize> = None;
        for step in 0..cap {
            let pos = start.saturating_add(step).checked_rem(cap)?;
            let e = *self.keys.get(pos)?;
            if e.hash() == 0 {
                // End of the chain: entries lapsed just before it can end it instead.
                if let Some(p) = last_lapsed {
                    self.clear_tail(start, p);
                }
                return None;
            }
            match self.key_job(&e) {
                Some(i) if e.hash() == hash => return Some((pos, i)),
                Some(_) => last_lapsed = None,
                None => last_lapsed = last_lapsed.or(Some(pos)),
            }
        }
        None
    }

    /// Clear lapsed entries from `from` up to the chain's end (they precede an unused entry).
    fn clear_tail(&mut self, start: usize, from: usize) {
        let cap = self.keys.len();
        let mut pos = from;
        while let Some(e) = self.keys.get(pos).copied() {
            if e.hash() == 0 || self.key_job(&e).is_some() {
                break;
            }
            if let Some(x) = self.keys.get_mut(pos) {
                *x = KeyEntry::EMPTY;
            }
            pos = match pos.saturating_add(1).checked_rem(cap) {
                Some(p) if p != start => p,
                _ => break,
            };
        }
    }

    /// Where a new key would go: the first unused or lapsed entry of its chain.
    pub(crate) fn key_room(&self, hash: u64) -> Option<usize> {
        let cap = self.keys.len();
        let start = self.start_of(hash);
        (0..cap)
            .filter_map(|step| start.saturating_add(step).checked_rem(cap))
            .find(|pos| {
                self.keys
                    .get(*pos)
                    .is_some_and(|e| e.hash() == 0 || self.key_job(e).is_none())
            })
    }

    pub(crate) fn put_key(&mut self, pos: usize, hash: u64, fingerprint: u64, id: JobId) {
        if let Some(e) = self.keys.get_mut(pos) {
            *e = KeyEntry {
                hash: split(hash),
                fingerprint: split(fingerprint),
                generation: id.generation(),
                slot: id.index().saturating_add(1),
            };
        }
    }

    #[allow(clippy::result_large_err)]
    pub(crate) fn submit_idempotent<'a>(
        &mut self,
        job: crate::NewJob<'a, S>,
        hash: u64,
        fingerprint: u64,
        now: crate::Instant,
    ) -> Result<Idempotent, crate::Refused<'a, S>> {
        use crate::error::{Refused, SubmitError};
        if let Some((id, fp)) = self.key_target(hash) {
            return if fp == fingerprint {
                Ok(Idempotent::Existing(id))
            } else {
                Err(Refused {
                    job,
                    error: SubmitError::KeyConflict(id),
                })
            };
        }
        let Some(pos) = self.key_room(hash) else {
            return Err(Refused {
                job,
                error: SubmitError::KeysFull,
            });
        };
        let id = self.submit(job, now)?;
        self.put_key(pos, hash, fingerprint, id);
        Ok(Idempotent::New(id))
    }

    /// The job a key names, with its fingerprint.
    pub(crate) fn key_target(&mut self, hash: u64) -> Option<(JobId, u64)> {
        let (pos, i) = self.find_key(hash)?;
        let fp = self.keys.get(pos)?.fingerprint();
        let slot = self.slot(i)?;
        Some((id_of(self.h.epoch, i, slot), fp))
    }
}
