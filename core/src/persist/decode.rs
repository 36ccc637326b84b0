//! Decoding an image into a table, in place: every rule checked, lists and edges rebuilt,
//! then (for a restore) the restart policy applied through the table's own transitions.

use serde::de::DeserializeOwned;

use super::{
    bad, take, verify_image, DecodeError, Inconsistency, JobImage, Meta, Restored, TombImage,
};
use crate::record::{flag, Phase, Slot, Tomb};
use crate::table::{Core, Gone, Header, JobTable, Released};
use crate::time::{self, Instant, Ms};

impl<
        S: DeserializeOwned,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    > JobTable<S, N, T, J, L, E, K, I>
{
    /// Load an image exactly as it was written, in place: same epoch, same states (a running
    /// job is still running). The journal starts empty and compacted at the stored revision.
    /// For tools and tests; after a restart use [`JobTable::restore_in_place`]. On an error in
    /// the header or CRC nothing changes; on an error in the body the table is left empty,
    /// never half-loaded.
    pub fn decode_in_place(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let body = verify_image(bytes)?;
        let keep = self.head;
        let result = self.load_body(body);
        if result.is_err() {
            self.reset(Header {
                retention: keep.retention,
                ..Header::default()
            });
        }
        result
    }

    /// Load an image after a restart (R-PERSIST), in place — for a table in a `static` or a
    /// `Box`, with no table-sized temporary: decode, then advance the epoch and apply the
    /// restart policy (see the [module docs](crate::persist)) at `now`, through the table's own
    /// transitions, so dependents of interrupted jobs fail too and every change takes a new
    /// revision after the stored one. The table's previous contents are replaced; on an error
    /// the table is as [`JobTable::decode_in_place`] leaves it.
    ///
    /// Nothing issued before the crash is issued again (R-ID, R-VERSION, R-DURABLE):
    ///
    /// * revisions continue [`RESTORE_GAP`](super::RESTORE_GAP) after the stored one, so the
    ///   changes made after the last save and lost in the crash never see their revisions
    ///   again (as long as fewer than 2^24 changes separate two saves), and every restored job
    ///   takes a new revision ([`EventKind::Restored`](crate::EventKind::Restored)): a client
    ///   that long-polls with any revision it saw before the crash gets its job at once;
    /// * the epoch advances, so new ids differ from every id issued before — **provided the
    ///   restored table is saved before it issues its first id**. Restoring the same image twice
    ///   without a save in between would hand out the same epoch twice: save right after a
    ///   restore ([`crate::flash::AbStore::restore_into`] does).
    ///
    /// `now` is on the restored table's timeline: the table's clock never goes back, so an
    /// earlier `now` counts as the stored [`JobTable::now`]. A firmware whose clock restarts at
    /// zero keeps passing instants offset by the restored `now()`.
    pub fn restore_in_place(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Restored, DecodeError> {
        self.decode_in_place(bytes)?;
        let Some(epoch) = self.head.epoch.checked_add(1) else {
            let keep = self.head.retention;
            self.reset(Header {
                retention: keep,
                ..Header::default()
            });
            return Err(DecodeError::EpochExhausted);
        };
        self.head.epoch = epoch;
        let revision = self
            .head
            .revision
            .saturating_add(super::RESTORE_GAP)
            .min(crate::Revision::MAX.get());
        self.head.revision = revision;
        self.head.dropped = revision;
        for slot in self.slots.iter_mut() {
            if slot.phase.is_live() || slot.phase.is_terminal() {
                slot.epoch_lag = slot.epoch_lag.saturating_add(1);
            }
        }
        let mut core = self.core();
        for i in 0..core.h.fresh {
            if core
                .slot(i)
                .is_some_and(|s| s.phase.is_live() || s.phase.is_terminal())
            {
                core.touch(i, crate::EventKind::Restored);
            }
        }
        Ok(core.apply_restart_policy(now))
    }

    /// Empty, in place (no table-sized temporary), with this header.
    fn reset(&mut self, head: Header) {
        self.head = head;
        for slot in self.slots.iter_mut() {
            *slot = Slot::EMPTY;
        }
        self.specs.clear();
        for l in self.lens.iter_mut() {
            *l = [0; 2];
        }
        for e in self.edges.iter_mut() {
            *e = crate::record::Edge::EMPTY;
        }
        self.tombs.clear();
        self.events.clear();
        for k in self.keys.iter_mut() {
            *k = crate::table::KeyRecord::EMPTY;
        }
    }

    /// Fill this table from a checked body. On error the table is in an unspecified (but
    /// memory-safe) state: callers reset it.
    fn load_body(&mut self, body: &[u8]) -> Result<(), DecodeError> {
        let mut rest = body;
        let meta: Meta = take(&mut rest)?;
        let fresh = usize::from(meta.fresh);
        if fresh > N {
            return Err(DecodeError::CapacityTooSmall { needed: fresh });
        }
        if usize::from(meta.tombstones) > K {
            return Err(DecodeError::CapacityTooSmall {
                needed: usize::from(meta.tombstones),
            });
        }
        if meta.jobs > meta.fresh
            || [meta.runnable, meta.active, meta.retained, meta.free]
                .iter()
                .any(|c| *c > meta.fresh)
            || meta.revision > crate::Revision::MAX.get()
        {
            return Err(bad(Inconsistency::Count));
        }
        let retention = Instant::try_from_millis(meta.retention_ms)
            .map(|_| crate::Duration::from_millis(meta.retention_ms).as_ticks())
            .ok_or(DecodeError::Malformed)?;
        self.reset(Header {
            revision: meta.revision,
            dropped: meta.revision,
            now: time::instant_of_ms(meta.now_ms).as_ticks(),
            now_ms: Ms::at(time::instant_of_ms(meta.now_ms)).ms(),
            retention: Header::of(crate::Config {
                retention: crate::Duration::from_ticks(retention),
            })
            .retention,
            epoch: meta.epoch,
            fresh: meta.fresh,
            ..Header::default()
        });
        for slot in self.slots.iter_mut().take(fresh) {
            slot.generation = take(&mut rest)?;
            if slot.generation == u32::MAX {
                // Retired unless a job turns up in it below.
                slot.phase = Phase::Retired;
            }
        }
        for _ in 0..meta.tombstones {
            let t: TombImage = take(&mut rest)?;
            if t.id.epoch() > meta.epoch {
                return Err(bad(Inconsistency::Epoch));
            }
            let _ = self.tombs.push_back(Tomb {
                id: t.id,
                ended: Ms::from_ms(t.ended_ms),
                outcome: t.outcome,
                succeeded: t.succeeded,
                code: t.code,
            });
        }
        let mut core = self.core();
        for _ in 0..meta.jobs {
            let job: JobImage<'_, S> = take(&mut rest)?;
            core.place(job)?;
        }
        core.link_all()?;
        // Dependents lists, each in its stored order (release and cascade order).
        let mut last: Option<(u16, u16)> = None;
        for _ in 0..meta.dependents {
            let (target, owner): (u16, u16) = take(&mut rest)?;
            let tail = match last {
                Some((t, e)) if t == target => e,
                _ => {
                    if core.slot(target).is_some_and(|s| s.dependents != 0) {
                        // A target's dependents come together, once.
                        return Err(bad(Inconsistency::Dependency));
                    }
                    0
                }
            };
            let e = core.relink(target, owner, tail)?;
            last = Some((target, e));
        }
        core.check_links()?;
        for (list, n) in [
            (Listed::Runnable, meta.runnable),
            (Listed::Active, meta.active),
            (Listed::Retained, meta.retained),
            (Listed::Free, meta.free),
        ] {
            for _ in 0..n {
                let i: u16 = take(&mut rest)?;
                core.relist(list, i)?;
            }
        }
        for _ in 0..meta.keys {
            let (hash, fingerprint, i): (u64, u64, u16) = take(&mut rest)?;
            let slot = core.slot(i).copied().ok_or(bad(Inconsistency::SlotIndex))?;
            if hash == 0 || !(slot.phase.is_live() || slot.phase.is_terminal()) {
                return Err(bad(Inconsistency::JobState));
            }
            if core.key_target(hash).is_some() {
                return Err(bad(Inconsistency::DuplicateSlot));
            }
            let pos = core.key_room(hash).ok_or(DecodeError::CapacityTooSmall {
                needed: usize::from(meta.keys),
            })?;
            let id = crate::JobId::new(0, i, slot.generation);
            core.put_key(pos, hash, fingerprint, id);
        }
        if !rest.is_empty() {
            return Err(DecodeError::Malformed);
        }
        core.check_lists()?;
        core.h.retired = u16::try_from(
            core.slots
                .iter()
                .filter(|s| s.phase == Phase::Retired)
                .count(),
        )
        .unwrap_or(u16::MAX);
        Ok(())
    }
}

/// The lists an image names, in order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listed {
    Runnable,
    Active,
    Retained,
    Free,
}

/// A temporary mark while decoding: the slot was named on a list.
const LISTED: u8 = 1 << 7;

impl<S> Core<'_, S> {
    /// Put a decoded job into its slot, checking it on its own.
    fn place(&mut self, job: JobImage<'_, S>) -> Result<(), DecodeError> {
        let i = job.index;
        let epoch = self.h.epoch;
        if usize::from(i) >= usize::from(self.h.fresh) {
            return Err(bad(Inconsistency::SlotIndex));
        }
        if job.epoch > epoch {
            return Err(bad(Inconsistency::Epoch));
        }
        if job.revision > self.h.revision || job.state_revision > job.revision {
            return Err(bad(Inconsistency::Revision));
        }
        let phase = match job.phase {
            1 => Phase::Queued,
            2 => Phase::Running,
            3 => Phase::Paused,
            4 => Phase::Succeeded,
            5 => Phase::Failed,
            _ => return Err(bad(Inconsistency::JobState)),
        };
        let requests = flag::PAUSE_REQUESTED | flag::CANCEL_REQUESTED;
        let backoff = job.flags & flag::BACKOFF != 0;
        let active = matches!(phase, Phase::Running | Phase::Paused);
        #[cfg(feature = "retry")]
        let retry = match job.retry {
            None => crate::retry::RetryState::EMPTY,
            Some((
                max_attempts,
                multiplier,
                jitter_percent,
                retries,
                first_ms,
                ceiling_ms,
                seed,
            )) => crate::retry::RetryState {
                max_attempts,
                multiplier,
                jitter_percent,
                retries,
                first_ms,
                ceiling_ms,
                seed,
            },
        };
        #[cfg(not(feature = "retry"))]
        if job.retry.is_some() {
            // Written by a build with retries: this one cannot keep the policy.
            return Err(DecodeError::Malformed);
        }
        let consistent = job.progress <= 100
            && job.flags
                & !(flag::PAUSABLE
                    | flag::CANCELABLE
                    | flag::RESTARTABLE
                    | requests
                    | flag::RUNNABLE
                    | flag::BACKOFF)
                == 0
            && (job.flags & flag::PAUSE_REQUESTED == 0 || phase == Phase::Running)
            && (job.flags & flag::CANCEL_REQUESTED == 0 || active)
            && (job.flags & flag::RUNNABLE == 0 || phase == Phase::Queued)
            && (!backoff || (phase == Phase::Queued && job.expiry_ms.is_some()))
            && (job.started_ms.is_some() || !(active || backoff))
            && (job.expiry_ms.is_none() || active || backoff || phase.is_terminal())
            && job.description.len() <= self.t
            && job.message.len() <= self.t
            && job.created_ms <= job.modified_ms
            && job.modified_ms <= self.h.now_ms
            && job
                .started_ms
                .is_none_or(|t| job.created_ms <= t && t <= job.modified_ms)
            && job.depends_on.iter().enumerate().all(|(k, d)| {
                let itself = d.index() == i && d.generation() == job.generation;
                let twice = job.depends_on.iter().take(k).any(|e| e == d);
                !(itself || twice)
            })
            && usize::from(job.cause & 0x0F) <= job.depends_on.len()
            && job.cause & 0xC0 == 0;
        if !consistent {
            return Err(bad(Inconsistency::JobState));
        }
        if job.depends_on.len() > self.edges_free() {
            return Err(DecodeError::CapacityTooSmall {
                needed: self.edges.len().saturating_add(job.depends_on.len()),
            });
        }
        let slot = self.slot(i).ok_or(bad(Inconsistency::SlotIndex))?;
        if slot.phase.is_live() || slot.phase.is_terminal() {
            return Err(bad(Inconsistency::DuplicateSlot));
        }
        if job.generation == 0 || job.generation != slot.generation {
            return Err(bad(Inconsistency::Generation));
        }
        let pos = self.specs.len();
        if self.specs.push((i, job.spec)).is_err() {
            return Err(bad(Inconsistency::Count));
        }
        let revision = Ms::from_ms(job.revision);
        let Some(s) = self.slot_mut(i) else {
            return Err(bad(Inconsistency::SlotIndex));
        };
        *s = Slot {
            generation: job.generation,
            state_lag: u32::try_from(job.revision.saturating_sub(job.state_revision))
                .unwrap_or(u32::MAX),
            run_timeout: job.run_timeout_ms,
            word: job.code_or_lease,
            revision,
            created: Ms::from_ms(job.created_ms),
            modified: Ms::from_ms(job.modified_ms),
            started: job.started_ms.map_or(Ms::NONE, Ms::from_ms),
            expiry: job.expiry_ms.map_or(Ms::NONE, Ms::from_ms),
            spec: u16::try_from(pos.saturating_add(1)).unwrap_or(0),
            epoch_lag: u16::try_from(epoch.saturating_sub(job.epoch)).unwrap_or(u16::MAX),
            phase,
            flags: job.flags,
            progress: job.progress,
            outcome: job.outcome,
            cause: job.cause,
            #[cfg(feature = "retry")]
            retry,
            ..Slot::EMPTY
        };
        self.write_text(i, crate::table::Text::Description, job.description);
        self.write_text(i, crate::table::Text::Message, job.message);
        self.h.len = self.h.len.saturating_add(1);
        // Edges now (owned, not yet linked to targets): `link_all` links them.
        self.store_edges(i, &job.depends_on);
        Ok(())
    }

    /// Check every dependency against the rules, link queued jobs' edges on live targets,
    /// count unmet ones, and refuse cycles.
    fn link_all(&mut self) -> Result<(), DecodeError> {
        for i in 0..self.h.fresh {
            let Some(slot) = self.slot(i).copied() else {
                continue;
            };
            if !(slot.phase.is_live() || slot.phase.is_terminal()) {
                continue;
            }
            let mut unmet: u8 = 0;
            let mut e = slot.deps;
            while let Some(edge) = self.edge(e).copied() {
                let target = self.ro().locate(edge.target).ok();
                let target_phase = target.and_then(|t| self.slot(t)).map(|s| s.phase);
                match (slot.phase, target_phase) {
                    // Linked below, in the stored order of the target's dependents.
                    (Phase::Queued, Some(p)) if p.is_live() => {
                        unmet = unmet.saturating_add(1);
                    }
                    // A live job never waits on a failed one; a started one on a live one.
                    (Phase::Queued | Phase::Running | Phase::Paused, Some(Phase::Failed)) => {
                        return Err(bad(Inconsistency::Dependency))
                    }
                    (Phase::Running | Phase::Paused, Some(p)) if p.is_live() => {
                        return Err(bad(Inconsistency::Dependency))
                    }
                    _ => {}
                }
                e = edge.next_own;
            }
            let runnable = slot.has(flag::RUNNABLE);
            let backoff = slot.has(flag::BACKOFF);
            let waiting = unmet != 0;
            if slot.phase == Phase::Queued
                && (runnable == (waiting || backoff) || (backoff && waiting))
            {
                return Err(bad(Inconsistency::List));
            }
            if let Some(s) = self.slot_mut(i) {
                s.unmet = unmet;
            }
        }
        Ok(())
    }

    /// Append the edge of `owner` that points at `target` to the end of `target`'s dependents
    /// list (`tail`: the list's last edge so far, 0 for an empty list). Answers the edge.
    fn relink(&mut self, target: u16, owner: u16, tail: u16) -> Result<u16, DecodeError> {
        let live = |s: &Slot| s.phase.is_live();
        if !self.slot(target).is_some_and(live)
            || self.slot(owner).map(|s| s.phase) != Some(Phase::Queued)
        {
            return Err(bad(Inconsistency::Dependency));
        }
        let mut e = self.slot(owner).map_or(0, |s| s.deps);
        while let Some(edge) = self.edge(e).copied() {
            let unlinked = edge.prev_dep == crate::record::Edge::UNLINKED;
            if unlinked
                && edge.target.index() == target
                && self.ro().locate(edge.target) == Ok(target)
            {
                match self.edge_mut(tail) {
                    Some(t) => t.next_dep = e,
                    None => {
                        if let Some(s) = self.slot_mut(target) {
                            s.dependents = e;
                        }
                    }
                }
                if let Some(x) = self.edge_mut(e) {
                    x.prev_dep = tail;
                    x.next_dep = 0;
                }
                return Ok(e);
            }
            e = edge.next_own;
        }
        Err(bad(Inconsistency::Dependency))
    }

    /// Every unmet dependency is on its target's dependents list; then refuse cycles.
    fn check_links(&mut self) -> Result<(), DecodeError> {
        let mut linked: usize = 0;
        let mut unmet: usize = 0;
        for s in self.slots.iter().take(usize::from(self.h.fresh)) {
            if s.phase == Phase::Queued {
                unmet = unmet.saturating_add(usize::from(s.unmet));
            }
        }
        for e in self.edges.iter() {
            if e.owner != 0 && e.prev_dep != crate::record::Edge::UNLINKED {
                linked = linked.saturating_add(1);
            }
        }
        if linked != unmet {
            return Err(bad(Inconsistency::Dependency));
        }
        self.refuse_cycles()
    }

    /// Kahn's walk over the live jobs: starting from those waiting on nothing, release
    /// dependents; any live job never released sits on a cycle. The work list is threaded
    /// through `next` and the counters through `cause`, both unused until the lists are built.
    fn refuse_cycles(&mut self) -> Result<(), DecodeError> {
        let mut stack: u16 = 0;
        let mut live: usize = 0;
        for i in 0..self.h.fresh {
            let Some(s) = self.slot_mut(i) else { continue };
            if !s.phase.is_live() {
                continue;
            }
            live = live.saturating_add(1);
            s.cause = (s.cause & 0xF0) | (s.unmet & 0x0F);
            if s.unmet == 0 {
                s.next = stack;
                stack = i.saturating_add(1);
            }
        }
        let mut released: usize = 0;
        while let Some(x) = stack.checked_sub(1) {
            released = released.saturating_add(1);
            stack = self.slot(x).map_or(0, |s| s.next);
            let mut e = self.slot(x).map_or(0, |s| s.dependents);
            while let Some(edge) = self.edge(e).copied() {
                if let Some(d) = edge.owner.checked_sub(1) {
                    if let Some(s) = self.slot_mut(d) {
                        let left = (s.cause & 0x0F).saturating_sub(1);
                        s.cause = (s.cause & 0xF0) | left;
                        if left == 0 {
                            s.next = stack;
                            stack = d.saturating_add(1);
                        }
                    }
                }
                e = edge.next_dep;
            }
        }
        for s in self.slots.iter_mut() {
            if s.phase.is_live() {
                s.cause &= 0xF0;
                s.next = 0;
            }
        }
        if released == live {
            Ok(())
        } else {
            Err(bad(Inconsistency::Dependency))
        }
    }

    /// Append slot `i` to a list named by the image, checking it belongs there.
    fn relist(&mut self, list: Listed, i: u16) -> Result<(), DecodeError> {
        if usize::from(i) >= usize::from(self.h.fresh) {
            return Err(bad(Inconsistency::SlotIndex));
        }
        let slot = self.slot(i).ok_or(bad(Inconsistency::SlotIndex))?;
        if slot.flags & LISTED != 0 {
            return Err(bad(Inconsistency::DuplicateSlot));
        }
        let slot_level = slot.level();
        let fits = match list {
            Listed::Runnable => slot.phase == Phase::Queued && slot.has(flag::RUNNABLE),
            Listed::Active => {
                matches!(slot.phase, Phase::Running | Phase::Paused)
                    || (slot.phase == Phase::Queued && slot.has(flag::BACKOFF))
            }
            Listed::Retained => slot.phase.is_terminal(),
            Listed::Free => slot.phase == Phase::Empty,
        };
        if !fits {
            return Err(bad(Inconsistency::List));
        }
        if let Some(s) = self.slot_mut(i) {
            s.flags |= LISTED;
        }
        match list {
            Listed::Runnable => self.push_back(crate::table::List::Runnable(slot_level), i),
            Listed::Active => self.push_back(crate::table::List::Active, i),
            Listed::Retained => self.push_back(crate::table::List::Retained, i),
            Listed::Free => self.push_free(i),
        }
        Ok(())
    }

    /// Every job and free slot is on exactly one list; clear the marks, and put the free list
    /// back in stored order.
    fn check_lists(&mut self) -> Result<(), DecodeError> {
        self.reverse_free();
        let fresh = usize::from(self.h.fresh);
        let mut ok = true;
        for s in self.slots.iter_mut().take(fresh) {
            let listed = s.flags & LISTED != 0;
            s.flags &= !LISTED;
            let must = match s.phase {
                Phase::Queued => s.has(flag::RUNNABLE) || s.has(flag::BACKOFF),
                Phase::Retired => false,
                _ => true,
            };
            ok &= listed == must;
        }
        if ok {
            Ok(())
        } else {
            Err(bad(Inconsistency::List))
        }
    }

    /// The restart policy: running and paused jobs end (or go back to the queue).
    fn apply_restart_policy(&mut self, now: Instant) -> Restored {
        self.clock(now);
        let mut report = Restored {
            jobs: usize::from(self.h.len),
            ..Restored::default()
        };
        let mut i = self.h.active.head.checked_sub(1);
        while let Some(x) = i {
            let Some(slot) = self.slot(x).copied() else {
                break;
            };
            i = slot.next.checked_sub(1);
            if slot.phase == Phase::Queued {
                // Waiting out a retry backoff: it keeps waiting, on the table's clock.
                continue;
            }
            match self.release_held(x, Gone::Restart) {
                Released::Canceled => report.canceled = report.canceled.saturating_add(1),
                Released::Requeued => report.requeued = report.requeued.saturating_add(1),
                Released::Failed => report.interrupted = report.interrupted.saturating_add(1),
            }
        }
        report
    }
}
