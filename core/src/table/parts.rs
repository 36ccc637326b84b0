//! The table's parts: its scalar header, and the borrowed views every rule is written over
//! ([`Core`] to change, [`Ro`] to read), with the capacities erased into slice lengths.

use heapless::deque::DequeView;
use heapless::vec::VecView;

use super::lists::Ends;
use super::Config;
use crate::journal::{Ev, Journal, JournalRef, LogPos};
use crate::record::{Edge, Slot, Tomb};
use crate::time::Duration;

/// The table's scalar state. All-zero for a new table with the default settings.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Header {
    pub(crate) revision: u64,
    /// The highest revision whose journal event was dropped.
    pub(crate) dropped: u64,
    /// The newest `now` seen, in ticks.
    pub(crate) now: u64,
    /// The same in whole milliseconds (what jobs record), kept with `now`.
    pub(crate) now_ms: u64,
    /// Retention in ticks; `None` is [`Config::DEFAULT`] (so the default table is all-zero).
    pub(crate) retention: Option<u64>,
    pub(crate) epoch: u32,
    pub(crate) log: LogPos,
    pub(crate) len: u16,
    /// Slots `fresh..N` have never been used.
    pub(crate) fresh: u16,
    /// Head of the free list (index + 1).
    pub(crate) free: u16,
    /// One runnable FIFO per priority level, lowest first.
    pub(crate) runnable: [Ends; crate::Priority::LEVELS],
    pub(crate) active: Ends,
    pub(crate) retained: Ends,
    /// Edges `edge_fresh..E` have never been used.
    pub(crate) edge_fresh: u16,
    /// Head of the free edge list (index + 1).
    pub(crate) edge_free: u16,
    pub(crate) edges_used: u16,
    /// Slots retired for good (generation used up).
    pub(crate) retired: u16,
}

impl Header {
    pub(crate) fn retention(&self) -> Duration {
        self.retention
            .map_or(Config::DEFAULT.retention, Duration::from_ticks)
    }

    pub(crate) const fn of(config: Config) -> Self {
        let ticks = config.retention.as_ticks();
        Header {
            revision: 0,
            dropped: 0,
            now: 0,
            now_ms: 0,
            retention: if ticks == Config::DEFAULT.retention.as_ticks() {
                None
            } else {
                Some(ticks)
            },
            epoch: 0,
            log: LogPos { written: 0 },
            len: 0,
            fresh: 0,
            free: 0,
            runnable: [Ends::EMPTY; crate::Priority::LEVELS],
            active: Ends::EMPTY,
            retained: Ends::EMPTY,
            edge_fresh: 0,
            edge_free: 0,
            edges_used: 0,
            retired: 0,
        }
    }
}

/// The table's parts, borrowed mutably, capacities erased: where every change is made. (`pub`
/// in a private module: nameable by no other crate; [`crate::Table`]'s hidden methods hand it
/// to the shared table.)
pub struct Core<'a, S> {
    pub(crate) h: &'a mut Header,
    pub(crate) slots: &'a mut [Slot],
    pub(crate) specs: &'a mut VecView<(u16, S), u16>,
    pub(crate) desc: &'a mut [u8],
    pub(crate) msg: &'a mut [u8],
    pub(crate) lens: &'a mut [[u16; 2]],
    pub(crate) t: usize,
    pub(crate) edges: &'a mut [Edge],
    pub(crate) tombs: &'a mut DequeView<Tomb>,
    pub(crate) events: &'a mut DequeView<Ev>,
    pub(crate) logs: &'a mut [u8],
    pub(crate) keys: &'a mut [super::KeyRecord],
}

/// The table's parts, borrowed for reading.
pub struct Ro<'a, S> {
    pub(crate) h: &'a Header,
    pub(crate) slots: &'a [Slot],
    pub(crate) specs: &'a VecView<(u16, S), u16>,
    pub(crate) desc: &'a [u8],
    pub(crate) msg: &'a [u8],
    pub(crate) lens: &'a [[u16; 2]],
    pub(crate) t: usize,
    pub(crate) edges: &'a [Edge],
    pub(crate) tombs: &'a DequeView<Tomb>,
    pub(crate) journal: JournalRef<'a>,
}

impl<S> Core<'_, S> {
    // Not inlined: a dozen words copied at every read inside a change add up.
    #[cfg(feature = "persist")]
    #[inline(never)]
    pub(crate) fn ro(&self) -> Ro<'_, S> {
        Ro {
            h: self.h,
            slots: self.slots,
            specs: self.specs,
            desc: self.desc,
            msg: self.msg,
            lens: self.lens,
            t: self.t,
            edges: self.edges,
            tombs: self.tombs,
            journal: JournalRef {
                events: self.events,
                logs: self.logs,
                pos: self.h.log,
                dropped: self.h.dropped,
            },
        }
    }

    pub(crate) fn journal(&mut self) -> Journal<'_> {
        Journal {
            events: self.events,
            logs: self.logs,
            pos: &mut self.h.log,
            dropped: &mut self.h.dropped,
        }
    }
}

/// Compile-time checks of a table's capacities, with this crate's own words.
pub(crate) struct Limits<const N: usize, const T: usize, const J: usize, const E: usize>;

impl<const N: usize, const T: usize, const J: usize, const E: usize> Limits<N, T, J, E> {
    pub(crate) const OK: () = {
        assert!(
            N > 0,
            "jobstate: a JobTable needs at least one slot (N >= 1)"
        );
        assert!(
            N < 65535,
            "jobstate: a JobTable holds at most 65 534 jobs (N)"
        );
        assert!(
            T <= 65535,
            "jobstate: text capacity T is at most 65 535 bytes"
        );
        assert!(
            E < 65535,
            "jobstate: the dependency pool E holds at most 65 534 edges"
        );
        assert!(J < usize::MAX, "jobstate: journal capacity J out of range");
    };
}
