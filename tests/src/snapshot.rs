//! Everything a caller can observe of a table, as one comparable value.
//!
//! [`Snapshot::of`] reads a real [`JobTable`] through its public API only; the reference
//! [`Model`](crate::Model) produces the same type. Comparing two snapshots is how the tests
//! check "every observable answer matches" and "an error left the table unchanged".

use jobstate::{
    Compacted, Detail, EventKind, Instant, Job, JobId, JobOptions, JobRef, JobTable, Outcome,
    Priority, Request, RetryPolicy, Revision, State, Tombstone,
};

/// One job, field by field, as its getters answer.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView<S> {
    /// [`JobRef::id`].
    pub id: JobId,
    /// [`JobRef::spec`].
    pub spec: S,
    /// [`JobRef::description`].
    pub description: String,
    /// [`JobRef::state`].
    pub state: State,
    /// [`JobRef::progress`].
    pub progress: u8,
    /// [`JobRef::message`].
    pub message: String,
    /// [`JobRef::created`].
    pub created: Instant,
    /// [`JobRef::started`].
    pub started: Option<Instant>,
    /// [`JobRef::ended`].
    pub ended: Option<Instant>,
    /// [`JobRef::modified`].
    pub modified: Instant,
    /// [`JobRef::revision`]: the job's version.
    pub revision: Revision,
    /// [`JobRef::state_revision`].
    pub state_revision: Revision,
    /// [`JobRef::outcome`].
    pub outcome: Option<Outcome>,
    /// [`JobRef::detail`].
    pub detail: Option<Detail>,
    /// [`JobRef::depends_on`].
    pub depends_on: Vec<JobId>,
    /// [`JobRef::options`].
    pub options: JobOptions,
    /// [`JobRef::pause_requested`].
    pub pause_requested: bool,
    /// [`JobRef::cancel_requested`].
    pub cancel_requested: bool,
    /// [`JobRef::deadline`].
    pub deadline: Option<Instant>,
    /// [`JobRef::lease_until`].
    pub lease_until: Option<Instant>,
    /// [`JobRef::priority`].
    pub priority: Priority,
    /// [`JobRef::attempt`].
    pub attempt: u8,
    /// [`JobRef::retry_at`].
    pub retry_at: Option<Instant>,
    /// [`JobRef::retry_policy`]; `None` when read from an owned [`Job`], which does not carry
    /// it.
    pub retry_policy: Option<RetryPolicy>,
}

impl<S: Clone> JobView<S> {
    /// Read a borrowed job through its getters.
    pub fn of(job: JobRef<'_, S>) -> Self {
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
            outcome: job.outcome(),
            detail: job.detail(),
            depends_on: job.depends_on().collect(),
            options: job.options(),
            pause_requested: job.pause_requested(),
            cancel_requested: job.cancel_requested(),
            deadline: job.deadline(),
            lease_until: job.lease_until(),
            priority: job.priority(),
            attempt: job.attempt(),
            retry_at: job.retry_at(),
            retry_policy: Some(job.retry_policy()),
        }
    }

    /// Read an owned snapshot through its getters.
    pub fn of_job<const T: usize>(job: &Job<S, T>) -> Self {
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
            outcome: job.outcome(),
            detail: job.detail(),
            depends_on: job.depends_on().to_vec(),
            options: job.options(),
            pause_requested: job.pause_requested(),
            cancel_requested: job.cancel_requested(),
            deadline: job.deadline(),
            lease_until: job.lease_until(),
            priority: job.priority(),
            attempt: job.attempt(),
            retry_at: job.retry_at(),
            retry_policy: None,
        }
    }
}

/// What a journal event says happened; a log event carries its line while the log ring still
/// holds it (`None` once overwritten).
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
    /// [`EventKind::Log`] with [`jobstate::Event::line`].
    Log(Option<String>),
    /// [`EventKind::Removed`].
    Removed,
    /// [`EventKind::Restored`].
    Restored,
    /// [`EventKind::Ready`].
    Ready,
}

impl KindView {
    /// Convert a table's event.
    pub fn of(event: &jobstate::Event<'_>) -> Self {
        match event.kind {
            EventKind::Submitted => KindView::Submitted,
            EventKind::StateChanged { from, to } => KindView::StateChanged { from, to },
            EventKind::Progress { percent } => KindView::Progress { percent },
            EventKind::Requested(r) => KindView::Requested(r),
            EventKind::Log => KindView::Log(event.line().map(String::from)),
            EventKind::Removed => KindView::Removed,
            EventKind::Restored => KindView::Restored,
            EventKind::Ready => KindView::Ready,
            other => panic!("an event kind the tests do not know: {other:?}"),
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
pub fn read_journal<
    S,
    const N: usize,
    const T: usize,
    const J: usize,
    const L: usize,
    const E: usize,
    const K: usize,
    const I: usize,
>(
    table: &JobTable<S, N, T, J, L, E, K, I>,
    after: Revision,
) -> JournalRead {
    table.journal(after).map(|events| {
        events
            .map(|e| EventView {
                revision: e.revision,
                job: e.job,
                kind: KindView::of(&e),
            })
            .collect()
    })
}

/// All observable state of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot<S> {
    /// [`JobTable::len`].
    pub len: usize,
    /// [`JobTable::retired`].
    pub retired: usize,
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
    /// [`JobTable::next_free_at`].
    pub next_free_at: Option<Instant>,
    /// [`JobTable::journal`] from revision zero.
    pub journal_from_zero: JournalRead,
    /// Every kept journal event (read from just before the oldest kept one).
    pub journal_kept: JournalRead,
}

impl<S: Clone> Snapshot<S> {
    /// Read everything a caller can see of `table`.
    pub fn of<
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    >(
        table: &JobTable<S, N, T, J, L, E, K, I>,
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
            retired: table.retired(),
            revision: table.revision(),
            epoch: table.epoch(),
            now: table.now(),
            jobs: table.iter().map(JobView::of).collect(),
            tombstones: table.tombstones().collect(),
            runnable: table.peek_runnable(),
            next_timer: table.next_timer(),
            next_free_at: table.next_free_at(),
            journal_from_zero,
            journal_kept,
        }
    }
}
