//! How readers see a job: a borrowed [`JobRef`] (no copy) or an owned [`Job`] snapshot.

use heapless::{String, Vec};

use crate::id::{JobId, Revision};
use crate::job::{JobOptions, MAX_DEPENDENCIES};
use crate::record::{flag, outcome_byte, Detail, Edge, Phase, Slot};
use crate::retry::Priority;
use crate::state::{Outcome, State};
use crate::time::{self, Instant};

/// A job in the table, borrowed: every accessor reads the table's record in place.
///
/// Get one from [`crate::JobTable::get`]; turn it into an owned [`Job`] with
/// [`JobRef::snapshot`] when it must outlive the borrow (a wait's answer, a message to
/// another task).
#[derive(Clone, Copy)]
pub struct JobRef<'a, S> {
    pub(crate) id: JobId,
    pub(crate) slot: &'a Slot,
    pub(crate) spec: &'a S,
    /// Texts as stored (valid UTF-8, written from `&str`); checked when read.
    pub(crate) description: &'a [u8],
    pub(crate) message: &'a [u8],
    pub(crate) edges: &'a [Edge],
}

fn as_str(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).unwrap_or("")
}

impl<'a, S> JobRef<'a, S> {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }
    /// The caller's spec: what to do.
    pub fn spec(&self) -> &'a S {
        self.spec
    }
    /// The description given at submit.
    pub fn description(&self) -> &'a str {
        as_str(self.description)
    }
    /// The current state.
    pub fn state(&self) -> State {
        self.slot.phase.state().unwrap_or(State::Queued)
    }
    /// Progress in percent, 0–100.
    pub fn progress(&self) -> u8 {
        self.slot.progress
    }
    /// The last progress message, or the worker's success/failure message once terminal.
    /// Empty when the table itself ended the job: see [`JobRef::detail`].
    pub fn message(&self) -> &'a str {
        as_str(self.message)
    }
    /// When it was submitted (to the millisecond).
    pub fn created(&self) -> Instant {
        self.slot.created.instant()
    }
    /// When a worker first started it.
    pub fn started(&self) -> Option<Instant> {
        self.slot.started.get()
    }
    /// When it reached a terminal state.
    pub fn ended(&self) -> Option<Instant> {
        self.slot
            .phase
            .is_terminal()
            .then(|| self.slot.modified.instant())
    }
    /// When it last changed observably.
    pub fn modified(&self) -> Instant {
        self.slot.modified.instant()
    }
    /// The table revision of its last observable change (R-VERSION): the job's version, which
    /// grows with every observable change.
    pub fn revision(&self) -> Revision {
        Revision::new(self.slot.revision.ms())
    }
    /// The table revision of its last state change.
    pub fn state_revision(&self) -> Revision {
        Revision::new(self.slot.state_revision())
    }
    /// The outcome, once terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        self.slot.outcome()
    }
    /// Why the table itself ended the job (deadline, lease, a failed dependency, cancel,
    /// restart); `None` for a worker's own success or failure and for live jobs.
    pub fn detail(&self) -> Option<Detail> {
        if !self.slot.phase.is_terminal() {
            return None;
        }
        match self.slot.outcome >> 4 {
            outcome_byte::DEADLINE => Some(Detail::Deadline),
            outcome_byte::LEASE => Some(Detail::Lease),
            outcome_byte::DEPENDENCY => {
                let k = usize::from(self.slot.failed_dep()).checked_sub(1)?;
                self.depends_on().nth(k).map(Detail::Dependency)
            }
            outcome_byte::CANCELED => Some(Detail::Canceled),
            outcome_byte::INTERRUPTED => Some(Detail::Interrupted),
            _ => None,
        }
    }
    /// The jobs it depends on, in the order given at submit.
    pub fn depends_on(&self) -> impl Iterator<Item = JobId> + 'a {
        let edges = self.edges;
        let mut e = self.slot.deps;
        core::iter::from_fn(move || {
            let edge = edges.get(usize::from(e.checked_sub(1)?))?;
            e = edge.next_own;
            Some(edge.target)
        })
    }
    /// Its options.
    pub fn options(&self) -> JobOptions {
        let s = self.slot;
        JobOptions {
            pausable: s.has(flag::PAUSABLE),
            cancelable: s.has(flag::CANCELABLE),
            restartable: s.has(flag::RESTARTABLE),
            run_timeout: time::duration_of_ms(s.run_timeout),
            lease: time::duration_of_ms(s.lease()),
        }
    }
    /// A pause was requested and the worker has not acknowledged it yet.
    pub fn pause_requested(&self) -> bool {
        self.slot.has(flag::PAUSE_REQUESTED)
    }
    /// A cancel was requested and the worker has not acknowledged it yet.
    pub fn cancel_requested(&self) -> bool {
        self.slot.has(flag::CANCEL_REQUESTED)
    }
    /// When it times out (run timeout), once it has started and while live.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.slot.phase.is_live() || self.slot.run_timeout == 0 {
            return None;
        }
        let started = self.slot.started.get()?;
        Some(time::add(
            started,
            time::duration_of_ms(self.slot.run_timeout)?,
        ))
    }
    /// When its heartbeat lease runs out, while running. A lease that would end after the
    /// deadline reads as the deadline (the earlier of the two is what the table keeps).
    pub fn lease_until(&self) -> Option<Instant> {
        (self.slot.phase == Phase::Running && self.slot.lease() != 0)
            .then(|| self.slot.expiry.get())
            .flatten()
    }
    /// `true` once `Succeeded` or `Failed`.
    pub fn is_terminal(&self) -> bool {
        self.slot.phase.is_terminal()
    }
    /// Its priority level (R-PRIORITY).
    pub fn priority(&self) -> Priority {
        Priority::of_level(self.slot.level())
    }
    /// The attempt under way, or the last one made: 1 for the first (R-RETRY).
    pub fn attempt(&self) -> u8 {
        self.slot.attempt()
    }
    /// Queued again after a retryable failure and waiting out its backoff: the instant it
    /// may start again (R-RETRY).
    pub fn retry_at(&self) -> Option<Instant> {
        (self.slot.phase == Phase::Queued && self.slot.has(flag::BACKOFF))
            .then(|| self.slot.expiry.get())
            .flatten()
    }
    /// Its retry policy ([`crate::RetryPolicy::NONE`] when it has none).
    #[cfg(feature = "retry")]
    pub fn retry_policy(&self) -> crate::RetryPolicy {
        self.slot.retry.policy()
    }
    /// An owned copy with text capacity `T` (the table's own `T` always fits; a smaller one
    /// cuts texts at a character boundary).
    pub fn snapshot<const T: usize>(&self) -> Job<S, T>
    where
        S: Clone,
    {
        // Built in place: the texts and the dependency list are filled into the answer itself
        // rather than built apart and moved in.
        let mut job = Job {
            id: self.id,
            spec: self.spec.clone(),
            description: String::new(),
            state: self.state(),
            progress: self.progress(),
            message: String::new(),
            created: self.created(),
            started: self.started(),
            ended: self.ended(),
            modified: self.modified(),
            revision: self.revision(),
            state_revision: self.state_revision(),
            outcome: self.outcome(),
            detail: self.detail(),
            depends_on: Vec::new(),
            options: self.options(),
            pause_requested: self.pause_requested(),
            cancel_requested: self.cancel_requested(),
            deadline: self.deadline(),
            lease_until: self.lease_until(),
            priority: self.priority(),
            attempt: self.attempt(),
            retry_at: self.retry_at(),
        };
        let _ = job.description.push_str(cut(self.description(), T));
        let _ = job.message.push_str(cut(self.message(), T));
        for id in self.depends_on().take(MAX_DEPENDENCIES) {
            let _ = job.depends_on.push(id);
        }
        job
    }
}

impl<S: core::fmt::Debug> core::fmt::Debug for JobRef<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JobRef")
            .field("id", &self.id)
            .field("spec", self.spec)
            .field("state", &self.state())
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or("")
}

/// An owned snapshot of a job (see [`JobRef`] for what each accessor means). `T` is the text
/// capacity of its description and message.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Job<S, const T: usize = 64> {
    id: JobId,
    spec: S,
    description: String<T>,
    state: State,
    progress: u8,
    message: String<T>,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms"))]
    created: Instant,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms::option"))]
    started: Option<Instant>,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms::option"))]
    ended: Option<Instant>,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms"))]
    modified: Instant,
    revision: Revision,
    state_revision: Revision,
    outcome: Option<Outcome>,
    detail: Option<Detail>,
    depends_on: Vec<JobId, MAX_DEPENDENCIES>,
    options: JobOptions,
    pause_requested: bool,
    cancel_requested: bool,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms::option"))]
    deadline: Option<Instant>,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms::option"))]
    lease_until: Option<Instant>,
    priority: Priority,
    attempt: u8,
    #[cfg_attr(feature = "serde", serde(with = "crate::time::serde_ms::option"))]
    retry_at: Option<Instant>,
}

impl<S, const T: usize> Job<S, T> {
    /// Give the snapshot a store's identity (a one-job record's id and revisions are the
    /// store's, not the record's).
    #[cfg(feature = "persist")]
    pub(crate) fn relabel(&mut self, id: JobId, revision: Revision, state_revision: Revision) {
        self.id = id;
        self.revision = revision;
        self.state_revision = state_revision;
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }
    /// The caller's spec.
    pub fn spec(&self) -> &S {
        &self.spec
    }
    /// The spec, out of the snapshot.
    pub fn into_spec(self) -> S {
        self.spec
    }
    /// The description given at submit.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The state when the snapshot was taken.
    pub fn state(&self) -> State {
        self.state
    }
    /// Progress in percent.
    pub fn progress(&self) -> u8 {
        self.progress
    }
    /// The last progress message or the worker's outcome message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// When it was submitted.
    pub fn created(&self) -> Instant {
        self.created
    }
    /// When a worker first started it.
    pub fn started(&self) -> Option<Instant> {
        self.started
    }
    /// When it reached a terminal state.
    pub fn ended(&self) -> Option<Instant> {
        self.ended
    }
    /// When it last changed observably.
    pub fn modified(&self) -> Instant {
        self.modified
    }
    /// The revision of its last observable change (its version).
    pub fn revision(&self) -> Revision {
        self.revision
    }
    /// The revision of its last state change.
    pub fn state_revision(&self) -> Revision {
        self.state_revision
    }
    /// The outcome, once terminal.
    pub fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }
    /// Why the table itself ended it, if it did.
    pub fn detail(&self) -> Option<Detail> {
        self.detail
    }
    /// The jobs it depends on.
    pub fn depends_on(&self) -> &[JobId] {
        &self.depends_on
    }
    /// Its options.
    pub fn options(&self) -> JobOptions {
        self.options
    }
    /// A pause was requested and not yet acknowledged.
    pub fn pause_requested(&self) -> bool {
        self.pause_requested
    }
    /// A cancel was requested and not yet acknowledged.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }
    /// When it times out, if it has a run timeout and has started.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    /// When its heartbeat lease runs out, while running.
    pub fn lease_until(&self) -> Option<Instant> {
        self.lease_until
    }
    /// `true` once `Succeeded` or `Failed`.
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
    /// Its priority level.
    pub fn priority(&self) -> Priority {
        self.priority
    }
    /// The attempt under way or last made (1 for the first).
    pub fn attempt(&self) -> u8 {
        self.attempt
    }
    /// When it may start again, while it waits out a retry backoff.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }
}
