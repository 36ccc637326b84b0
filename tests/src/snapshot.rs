//! Everything a caller can observe of a table, as one comparable value.
//!
//! [`Snapshot::of`] reads a real [`JobTable`] through its public API only; the reference
//! [`Model`](crate::Model) produces the same type. Comparing two snapshots is how the tests
//! check "every observable answer matches" and "an error left the table unchanged".

use jobstate::{
    Compacted, EventKind, Instant, Job, JobId, JobOptions, JobTable, Outcome, Request, Revision,
    State, Tombstone,
};

/// One job, field by field, as its getters answer.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView<S> {
    /// [`Job::id`].
    pub id: JobId,
    /// [`Job::spec`].
    pub spec: S,
    /// [`Job::description`].
    pub description: String,
    /// [`Job::state`].
    pub state: State,
    /// [`Job::progress`].
    pub progress: u8,
    /// [`Job::message`].
    pub message: String,
    /// [`Job::created`].
    pub created: Instant,
    /// [`Job::started`].
    pub started: Option<Instant>,
    /// [`Job::ended`].
    pub ended: Option<Instant>,
    /// [`Job::modified`].
    pub modified: Instant,
    /// [`Job::revision`].
    pub revision: Revision,
    /// [`Job::state_revision`].
    pub state_revision: Revision,
    /// [`Job::version`].
    pub version: u32,
    /// [`Job::outcome`].
    pub outcome: Option<Outcome>,
    /// [`Job::depends_on`].
    pub depends_on: Vec<JobId>,
    /// [`Job::options`].
    pub options: JobOptions,
    /// [`Job::pause_requested`].
    pub pause_requested: bool,
    /// [`Job::cancel_requested`].
    pub cancel_requested: bool,
    /// [`Job::deadline`].
    pub deadline: Option<Instant>,
    /// [`Job::lease_until`].
    pub lease_until: Option<Instant>,
}

impl<S: Clone> JobView<S> {
    /// Read a job through its getters.
    pub fn of<const T: usize, const D: usize>(job: &Job<S, T, D>) -> Self {
        Self {
            id: job.id(),
            spec: job.spec().clone(),
            description: job.description().into(),
            state: job.state(),
            progress: job.progress(),
            message: job.message().into(),
            created: job.created(),
            started: job.started(),
            ended: job.ended(),
            modified: job.modified(),
            revision: job.revision(),
            state_revision: job.state_revision(),
            version: job.version(),
            outcome: job.outcome(),
            depends_on: job.depends_on().to_vec(),
            options: *job.options(),
            pause_requested: job.pause_requested(),
            cancel_requested: job.cancel_requested(),
            deadline: job.deadline(),
            lease_until: job.lease_until(),
        }
    }
}

/// What a journal event says happened, with the log line as a `String`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindView {
    /// [`EventKind::Submitted`].
    Submitted,
    /// [`EventKind::StateChanged`].
    StateChanged {
        /// Before.
        from: State,
        /// After.
        to: State,
    },
    /// [`EventKind::Progress`].
    Progress {
        /// Percent.
        percent: u8,
    },
    /// [`EventKind::Requested`].
    Requested(Request),
    /// [`EventKind::Log`].
    Log(String),
    /// [`EventKind::Removed`].
    Removed,
}

impl KindView {
    /// Convert a table's event kind.
    pub fn of<const T: usize>(kind: &EventKind<T>) -> Self {
        match kind {
            EventKind::Submitted => KindView::Submitted,
            EventKind::StateChanged { from, to } => KindView::StateChanged {
                from: *from,
                to: *to,
            },
            EventKind::Progress { percent } => KindView::Progress { percent: *percent },
            EventKind::Requested(r) => KindView::Requested(*r),
            EventKind::Log(line) => KindView::Log(line.as_str().into()),
            EventKind::Removed => KindView::Removed,
        }
    }
}

/// One journal event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventView {
    /// Its revision.
    pub revision: Revision,
    /// The job it is about.
    pub job: JobId,
    /// What happened.
    pub kind: KindView,
}

/// The answer of a journal read, as a comparable value.
pub type JournalRead = Result<Vec<EventView>, Compacted>;

/// Read the journal of a table after `after`.
pub fn read_journal<S, const N: usize, const T: usize, const D: usize, const J: usize>(
    table: &JobTable<S, N, T, D, J>,
    after: Revision,
) -> JournalRead {
    table.journal(after).map(|events| {
        events
            .map(|e| EventView {
                revision: e.revision,
                job: e.job,
                kind: KindView::of(&e.kind),
            })
            .collect()
    })
}

/// All observable state of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot<S> {
    /// [`JobTable::len`].
    pub len: usize,
    /// [`JobTable::revision`].
    pub revision: Revision,
    /// [`JobTable::epoch`].
    pub epoch: u32,
    /// [`JobTable::now`].
    pub now: Instant,
    /// [`JobTable::iter`], in its order (slot order).
    pub jobs: Vec<JobView<S>>,
    /// [`JobTable::tombstones`], oldest first.
    pub tombstones: Vec<Tombstone>,
    /// [`JobTable::peek_runnable`].
    pub runnable: Option<JobId>,
    /// [`JobTable::next_timer`].
    pub next_timer: Option<Instant>,
    /// [`JobTable::journal`] from revision zero.
    pub journal_from_zero: JournalRead,
    /// Every kept journal event (read from just before the oldest kept one).
    pub journal_kept: JournalRead,
}

impl<S: Clone> Snapshot<S> {
    /// Read everything a caller can see of `table`.
    pub fn of<const N: usize, const T: usize, const D: usize, const J: usize>(
        table: &JobTable<S, N, T, D, J>,
    ) -> Self {
        let journal_from_zero = read_journal(table, Revision::ZERO);
        let journal_kept = match journal_from_zero {
            Ok(ref events) => Ok(events.clone()),
            Err(Compacted { oldest }) => {
                read_journal(table, Revision::new(oldest.get().saturating_sub(1)))
            }
        };
        Self {
            len: table.len(),
            revision: table.revision(),
            epoch: table.epoch(),
            now: table.now(),
            jobs: table.iter().map(JobView::of).collect(),
            tombstones: table.tombstones().copied().collect(),
            runnable: table.peek_runnable(),
            next_timer: table.next_timer(),
            journal_from_zero,
            journal_kept,
        }
    }
}
