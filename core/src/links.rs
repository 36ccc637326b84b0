//! Intrusive links through the slots: the three ordered lists (runnable FIFO, active, retained)
//! and the dependency edges. They are what makes submit, start, next-runnable, complete and the
//! dependency cascade O(1) or O(dependents), with no scan of the table (R-SCHED).

/// "No slot".
pub(crate) const NIL: u16 = u16::MAX;
/// "No edge".
pub(crate) const NIL_EDGE: u32 = u32::MAX;

/// Which list a slot is on. A slot is on at most one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum List {
    /// Empty slot never used, or a queued job still waiting for dependencies.
    None,
    /// Empty slot on the free list.
    Free,
    /// Queued job whose dependencies have all succeeded, in the order it became runnable.
    Runnable,
    /// Running or paused job.
    Active,
    /// Terminal job, in the order it ended (oldest first: the next to go).
    Retained,
}

/// Head and tail of one list.
#[derive(Clone, Copy, Debug)]
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

/// "Not on a dependents list": the `prev` of an unlinked edge. Distinct from [`NIL_EDGE`],
/// which as a `prev` means "first on the list".
pub(crate) const UNLINKED: u32 = u32::MAX - 1;

/// One dependency of a job: an entry in the target's doubly linked list of dependents.
///
/// Edge `k` of slot `i` stands for the job's dependency `depends_on[k]`; the target slot is
/// that id's index, so it is not stored here.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    /// The previous edge, [`NIL_EDGE`] at the head, [`UNLINKED`] when not on a list.
    pub(crate) prev: u32,
    pub(crate) next: u32,
}

impl Edge {
    pub(crate) const EMPTY: Edge = Edge {
        prev: UNLINKED,
        next: NIL_EDGE,
    };

    /// On its target's dependents list.
    pub(crate) const fn linked(&self) -> bool {
        self.prev != UNLINKED
    }
}

/// The link fields of a slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Links<const D: usize> {
    pub(crate) list: List,
    pub(crate) prev: u16,
    pub(crate) next: u16,
    /// Dependencies not yet succeeded.
    pub(crate) unmet: u8,
    /// Head of this job's dependents list (edges owned by the dependents).
    pub(crate) dependents: u32,
    /// This job's own edges, one per dependency.
    pub(crate) edges: [Edge; D],
    /// Next slot on the cascade stack.
    pub(crate) cascade: u16,
}

impl<const D: usize> Links<D> {
    pub(crate) const EMPTY: Links<D> = Links {
        list: List::None,
        prev: NIL,
        next: NIL,
        unmet: 0,
        dependents: NIL_EDGE,
        edges: [Edge::EMPTY; D],
        cascade: NIL,
    };
}
