//! The journal: a bounded ring of events, each with its revision (R-JOURNAL).
//!
//! An event is 16 bytes whatever the text capacity: log lines are kept apart, in a byte ring of
//! `L` bytes, and an event names where its line starts. A line that has been overwritten by
//! newer lines reads as `None`; the event itself stays until the event ring drops it. Kept
//! events have contiguous revisions (every revision has exactly one event), so a reader's
//! position is found in O(1) and no revision is stored per event.

use core::iter::Chain;
use core::slice;

use heapless::deque::DequeView;

use crate::error::Compacted;
use crate::id::{JobId, Revision};
use crate::state::{Request, State};

/// What happened.
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EventKind {
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
    /// The worker logged a line (Oracle's work-request logs): [`Event::line`].
    Log,
    /// The job was removed from the table (retention passed, or evicted for room).
    Removed,
    /// The table was restored from an image (R-PERSIST): every restored job takes one, so a
    /// waiter holding a revision from before the restart sees a change.
    Restored,
    /// A job queued again after a retryable failure waited out its backoff and may start now
    /// (R-RETRY): a worker waiting for runnable jobs hears of it.
    Ready,
}

/// One journal entry, borrowed from the table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Event<'a> {
    /// The revision this event took.
    pub revision: Revision,
    /// The job it is about.
    pub job: JobId,
    /// What happened.
    pub kind: EventKind,
    line: Option<&'a str>,
}

impl<'a> Event<'a> {
    /// The logged line of an [`EventKind::Log`] event, while the log ring still holds it.
    pub fn line(&self) -> Option<&'a str> {
        self.line
    }
}

/// A stored event: 16 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ev {
    epoch: u32,
    generation: u32,
    index: u16,
    kind: u8,
    a: u8,
    /// Log: the line's position in the log ring (bytes written before it, wrapping).
    b: u32,
}

const SUBMITTED: u8 = 0;
const STATE: u8 = 1;
const PROGRESS: u8 = 2;
const REQUESTED: u8 = 3;
const LOG: u8 = 4;
const REMOVED: u8 = 5;
const RESTORED: u8 = 6;
const READY: u8 = 7;

const fn state_code(s: State) -> u8 {
    match s {
        State::Queued => 0,
        State::Running => 1,
        State::Paused => 2,
        State::Succeeded => 3,
        State::Failed => 4,
    }
}

const fn state_of(c: u8) -> State {
    match c {
        0 => State::Queued,
        1 => State::Running,
        2 => State::Paused,
        3 => State::Succeeded,
        _ => State::Failed,
    }
}

impl Ev {
    pub(crate) fn new(job: JobId, kind: EventKind, log_pos: u32) -> Self {
        let (kind, a, b) = match kind {
            EventKind::Submitted => (SUBMITTED, 0, 0),
            EventKind::StateChanged { from, to } => {
                (STATE, state_code(from) | (state_code(to) << 4), 0)
            }
            EventKind::Progress { percent } => (PROGRESS, percent, 0),
            EventKind::Requested(r) => (
                REQUESTED,
                match r {
                    Request::Pause => 0,
                    Request::Resume => 1,
                    Request::Cancel => 2,
                },
                0,
            ),
            EventKind::Log => (LOG, 0, log_pos),
            EventKind::Removed => (REMOVED, 0, 0),
            EventKind::Restored => (RESTORED, 0, 0),
            EventKind::Ready => (READY, 0, 0),
        };
        Self {
            epoch: job.epoch(),
            generation: job.generation(),
            index: job.index(),
            kind,
            a,
            b,
        }
    }

    pub(crate) fn job(&self) -> JobId {
        JobId::new(self.epoch, self.index, self.generation)
    }

    pub(crate) fn kind(&self) -> EventKind {
        match self.kind {
            SUBMITTED => EventKind::Submitted,
            STATE => EventKind::StateChanged {
                from: state_of(self.a & 0xF),
                to: state_of(self.a >> 4),
            },
            PROGRESS => EventKind::Progress { percent: self.a },
            REQUESTED => EventKind::Requested(match self.a {
                0 => Request::Pause,
                1 => Request::Resume,
                _ => Request::Cancel,
            }),
            LOG => EventKind::Log,
            RESTORED => EventKind::Restored,
            READY => EventKind::Ready,
            _ => EventKind::Removed,
        }
    }
}

/// The log ring's bookkeeping (lives in the table header).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogPos {
    /// Bytes written so far, wrapping.
    pub(crate) written: u32,
}

/// The journal's parts, borrowed from the table: events, the log ring, and the highest
/// dropped revision.
pub(crate) struct Journal<'a> {
    pub(crate) events: &'a mut DequeView<Ev>,
    pub(crate) logs: &'a mut [u8],
    pub(crate) pos: &'a mut LogPos,
    pub(crate) dropped: &'a mut u64,
}

/// Read-only journal parts.
#[derive(Clone, Copy)]
pub(crate) struct JournalRef<'a> {
    pub(crate) events: &'a DequeView<Ev>,
    pub(crate) logs: &'a [u8],
    pub(crate) pos: LogPos,
    pub(crate) dropped: u64,
}

/// The longest line the log ring holds.
pub(crate) fn line_limit(ring: usize) -> usize {
    ring.saturating_sub(2).min(usize::from(u16::MAX))
}

impl Journal<'_> {
    /// Keep an event; the oldest goes when the ring is full.
    pub(crate) fn push(&mut self, revision: Revision, ev: Ev) {
        if self.events.is_full() && self.events.pop_front().is_some() {
            // Kept events are `dropped + 1 ..`: the front was the next one.
            *self.dropped = self.dropped.saturating_add(1);
        }
        if self.events.push_back(ev).is_err() {
            // Only with J == 0: nothing is kept, so the event counts as dropped at once.
            *self.dropped = revision.get();
        }
    }

    /// Write a log line to the ring; answers its position. The caller checked its length
    /// against [`line_limit`].
    pub(crate) fn write_line(&mut self, line: &str) -> u32 {
        let ring = self.logs.len();
        let need = line.len().saturating_add(2);
        let Ok(ring32) = u32::try_from(ring) else {
            return self.pos.written;
        };
        if ring == 0 || need > ring {
            return self.pos.written;
        }
        // A line never wraps around the ring's end: skip to the start instead.
        let at = self.pos.written.checked_rem(ring32).unwrap_or(0) as usize;
        if at.saturating_add(need) > ring {
            let skip = ring32.saturating_sub(self.pos.written.checked_rem(ring32).unwrap_or(0));
            self.pos.written = self.pos.written.wrapping_add(skip);
        }
        let start = self.pos.written;
        let at = start.checked_rem(ring32).unwrap_or(0) as usize;
        let len = u16::try_from(line.len()).unwrap_or(u16::MAX).to_le_bytes();
        if let Some(dst) = self.logs.get_mut(at..at.saturating_add(need)) {
            // Byte by byte: no length check that could panic.
            for (d, b) in dst.iter_mut().zip(len.iter().chain(line.as_bytes())) {
                *d = *b;
            }
        }
        self.pos.written = start.wrapping_add(u32::try_from(need).unwrap_or(0));
        start
    }
}

impl<'a> JournalRef<'a> {
    fn line(&self, start: u32) -> Option<&'a str> {
        let ring = self.logs.len();
        let ring32 = u32::try_from(ring).ok()?;
        let behind = self.pos.written.wrapping_sub(start);
        let at = (start.checked_rem(ring32)?) as usize;
        let head = self.logs.get(at..at.checked_add(2)?)?;
        let len = usize::from(u16::from_le_bytes([*head.first()?, *head.get(1)?]));
        let end = at.checked_add(2)?.checked_add(len)?;
        // Still there only if nothing written since reached back over it.
        if behind > ring32 || (behind as usize) < len.saturating_add(2) {
            return None;
        }
        let bytes = self.logs.get(at.checked_add(2)?..end)?;
        core::str::from_utf8(bytes).ok()
    }

    /// The kept events from the `skip`-th on (revisions `dropped + 1 + skip ..`), oldest
    /// first. The start is found by arithmetic on the ring's two halves, not by stepping
    /// through the ring: O(1), so a reader that is nearly up to date pays for what it reads,
    /// not for the journal's length.
    pub(crate) fn kept_from(&self, skip: usize) -> Chain<slice::Iter<'a, Ev>, slice::Iter<'a, Ev>> {
        let (front, back) = self.events.as_slices();
        let none: &[Ev] = &[];
        let (front, back) = match front.get(skip..) {
            Some(rest) => (rest, back),
            None => (
                none,
                back.get(skip.saturating_sub(front.len())..).unwrap_or(none),
            ),
        };
        front.iter().chain(back)
    }

    /// Events with a revision greater than `after`, oldest first.
    pub(crate) fn since(
        self,
        after: Revision,
        current: Revision,
    ) -> Result<impl Iterator<Item = Event<'a>> + 'a, Compacted> {
        let dropped = self.dropped;
        if after.get() < dropped {
            let oldest = if self.events.is_empty() {
                current.next()
            } else {
                Revision::new(dropped.saturating_add(1))
            };
            return Err(Compacted { oldest });
        }
        let skip = after.get().saturating_sub(dropped);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let first = dropped
            .saturating_add(1)
            .saturating_add(u64::try_from(skip).unwrap_or(u64::MAX));
        Ok(self.kept_from(skip).enumerate().map(move |(k, ev)| {
            let kind = ev.kind();
            Event {
                revision: Revision::new(first.saturating_add(k as u64)),
                job: ev.job(),
                kind,
                line: match kind {
                    EventKind::Log => self.line(ev.b),
                    _ => None,
                },
            }
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use crate::{Compacted, Instant, JobTable, NewJob, Revision};

    /// Reading from any revision, with the ring wrapped at every position, answers exactly the
    /// kept events after it (the start is found by index arithmetic).
    #[test]
    fn since_starts_at_the_right_event_wherever_the_ring_wraps() {
        let mut table: JobTable<u8, 2, 8, 5, 64> = JobTable::default();
        let t = Instant::from_ticks(0);
        let id = table.submit(NewJob::new(1), t).unwrap();
        for n in 0..23u32 {
            let current = table.revision().get();
            let kept = current.min(5);
            let dropped = current - kept;
            for after in 0..current + 3 {
                let got = table.journal(Revision::new(after)).map(|events| {
                    events
                        .map(|e| e.revision.get())
                        .collect::<heapless::Vec<u64, 8>>()
                });
                if after < dropped {
                    assert_eq!(
                        got.map(|_| ()),
                        Err(Compacted {
                            oldest: Revision::new(dropped + 1)
                        })
                    );
                } else {
                    let want: heapless::Vec<u64, 8> = (after.max(dropped) + 1..=current).collect();
                    assert_eq!(got.unwrap(), want, "after {after}, {n} lines logged");
                }
            }
            let line = if n % 2 == 0 { "a" } else { "bb" };
            table.log(id, line, t).unwrap();
            let last = table.journal(Revision::new(table.revision().get() - 1));
            assert_eq!(last.unwrap().map(|e| e.line()).last(), Some(Some(line)));
        }
    }
}
