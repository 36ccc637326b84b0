//! Time-driven rules (R-DEADLINE, R-RETAIN): which change arms which timer, when a job times
//! out, when a terminal job may go, and when the next slot frees.
//!
//! A running job's record keeps one instant, `expiry`: the earlier of its deadline (first
//! start + run timeout) and its lease's end (last worker contact + lease). A paused job's
//! `expiry` is its deadline alone (a parked worker owes no heartbeat). Starting, every worker
//! contact, pausing and resuming re-arm it ([`Core::renew`]); nothing else does.

use super::lists::{index, List};
use super::{Core, Expired, Ro};
use crate::journal::EventKind;
use crate::record::{flag, Detail, Phase, Slot};
use crate::state::FailReason;
use crate::time::{self, Instant, Ms};

/// The deadline of a started job with a run timeout, in ms.
fn deadline_ms(s: &Slot) -> Option<u64> {
    if s.run_timeout == 0 || s.started.is_none() {
        return None;
    }
    Some(s.started.ms().saturating_add(u64::from(s.run_timeout)))
}

fn retention_end(ro_retention_ms: u64, s: &Slot) -> Option<u64> {
    s.phase
        .is_terminal()
        .then(|| s.modified.ms().saturating_add(ro_retention_ms))
}

impl<S> Core<'_, S> {
    /// Re-arm the expiry of slot `i` at the table's `now` (start, worker contact, pause,
    /// resume).
    pub(crate) fn renew(&mut self, i: u16) {
        let now_ms = self.h.now_ms;
        let Some(s) = self.slot_mut(i) else { return };
        let deadline = deadline_ms(s);
        let lease = (s.phase == Phase::Running && s.lease() != 0)
            .then(|| now_ms.saturating_add(u64::from(s.lease())));
        s.expiry = match (deadline, lease) {
            (Some(d), Some(l)) => Ms::from_ms(d.min(l)),
            (Some(x), None) | (None, Some(x)) => Ms::from_ms(x),
            (None, None) => Ms::NONE,
        };
    }

    /// The deadline of slot `s` in ms, if it has one and has started.
    pub(crate) fn deadline_of(s: &Slot) -> Option<u64> {
        deadline_ms(s)
    }

    /// Whether a job waiting out a retry backoff may run at `now_ms`.
    pub(crate) fn backoff_over(s: &Slot, now_ms: u64) -> bool {
        s.phase == Phase::Queued && s.has(flag::BACKOFF) && s.expiry.ms() <= now_ms
    }

    /// A job whose backoff is over becomes runnable, at the back of its level's queue.
    pub(crate) fn promote(&mut self, i: u16) {
        self.unlink(i);
        let Some(s) = self.slot_mut(i) else { return };
        s.set(flag::BACKOFF, false);
        s.set(flag::RUNNABLE, true);
        s.expiry = Ms::NONE;
        let level = s.level();
        self.push_back(List::Runnable(level), i);
        // Observable (`retry_at` clears), and a waiting worker must hear of it.
        self.change(i, EventKind::Ready, false);
    }

    /// Whether `slot`'s deadline or lease has passed at `now_ms`, and which. A job in a retry
    /// backoff can only pass its deadline.
    pub(crate) fn due(s: &Slot, now_ms: u64) -> Option<Detail> {
        if s.phase == Phase::Queued && s.has(flag::BACKOFF) {
            return deadline_ms(s)
                .filter(|d| *d <= now_ms)
                .map(|_| Detail::Deadline);
        }
        if !matches!(s.phase, Phase::Running | Phase::Paused) || s.expiry.is_none() {
            return None;
        }
        if s.expiry.ms() > now_ms {
            return None;
        }
        Some(match deadline_ms(s) {
            Some(d) if d <= now_ms => Detail::Deadline,
            _ => Detail::Lease,
        })
    }

    /// Fail slot `i` `TimedOut` if its deadline or lease passed; `true` if it did.
    pub(crate) fn settle(&mut self, i: u16) -> bool {
        let Some(detail) = self.slot(i).and_then(|s| Self::due(s, self.h.now_ms)) else {
            return false;
        };
        // A lost lease is a retryable failure (the worker died); a deadline is final.
        if detail == Detail::Lease && self.retry_allowed(i) {
            self.retry(i, "");
        } else {
            self.finish(i, Self::failure(FailReason::TimedOut), Some(detail), None);
        }
        true
    }

    pub(crate) fn evictable(&self, i: u16) -> bool {
        let retention = self.h.retention().as_millis();
        self.slot(i)
            .and_then(|s| retention_end(retention, s))
            .is_some_and(|end| end <= self.h.now_ms)
    }

    pub(crate) fn expire(&mut self, now: Instant) -> Expired {
        self.clock(now);
        let mut report = Expired::default();
        let mut i = index(self.h.active.head);
        while let Some(x) = i {
            // Timing out `x` only fails queued dependents: the next active job stays.
            i = self.slot(x).and_then(|s| index(s.next));
            if self.settle(x) {
                report.timed_out = report.timed_out.saturating_add(1);
            } else if self
                .slot(x)
                .is_some_and(|s| Self::backoff_over(s, self.h.now_ms))
            {
                self.promote(x);
            }
        }
        while let Some(head) = index(self.h.retained.head).filter(|h| self.evictable(*h)) {
            self.remove(head);
            report.removed = report.removed.saturating_add(1);
        }
        report
    }
}

impl<S> Ro<'_, S> {
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let mut next: Option<u64> = None;
        let mut i = index(self.h.active.head);
        while let Some(s) = i.and_then(|x| self.slot(x)) {
            if !s.expiry.is_none() {
                let e = s.expiry.ms();
                next = Some(next.map_or(e, |n| n.min(e)));
            }
            i = index(s.next);
        }
        let retention = self.h.retention().as_millis();
        if let Some(end) = index(self.h.retained.head)
            .and_then(|h| self.slot(h))
            .and_then(|s| retention_end(retention, s))
        {
            next = Some(next.map_or(end, |n| n.min(end)));
        }
        next.map(time::instant_of_ms)
    }

    pub(crate) fn next_free_at(&self) -> Option<Instant> {
        let now = Instant::from_ticks(self.h.now);
        if self.h.free != 0 || usize::from(self.h.fresh) < self.slots.len() {
            return Some(now);
        }
        let retention = self.h.retention().as_millis();
        let end = index(self.h.retained.head)
            .and_then(|h| self.slot(h))
            .and_then(|s| retention_end(retention, s))?;
        Some(time::instant_of_ms(end).max(now))
    }
}
