//! The seam between the clients' side of the engine and where the jobs live: [`JobStore`].
//!
//! It is the engine's API once more, as a trait: the clients' side (submit, get, list, wait,
//! pause/resume/cancel, revision) and the workers' side (claim the next runnable job,
//! progress, heartbeat, check-in, succeed, fail, run the timers). One scenario, written
//! against `dyn JobStore`, runs over both stores in the tests.
//!
//! The HTTP binding reads and changes jobs only through this trait, so it serves the same
//! dialects over the in-process [`Engine`] (this crate) or over a store shared by several
//! replicas (`jobstate-etcd`, one etcd key per job). The trait is object safe (its futures are
//! boxed), so a binding holds an `Arc<dyn JobStore<S, T>>` and does not know which one it has.
//!
//! Every rule stays in the core: the engine applies them to its table, a record store applies
//! them to each job's record ([`jobstate::persist::JobRecord`]). What a store adds is where
//! the job lives and how waiters hear of changes; what can go wrong beyond the core's refusals
//! is [`StoreError::Unavailable`] (the store could not be reached or did not commit).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use jobstate::{
    Compacted, Condition, Directive, EventKind, Expired, Job, JobError, JobId, LookupError, NewJob,
    Request, Revision, Severity, State, SubmitError, Waited,
};

use crate::clock::Clock;
use crate::engine::{Engine, EngineTable};
use crate::error::WaitError;
use crate::snapshot::Snapshot;

/// A boxed future of a [`JobStore`] call.
pub type Pending<'a, R> = Pin<Box<dyn Future<Output = R> + Send + 'a>>;

/// Why a store call did not do what it was asked.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The id leads to no job.
    Lookup(LookupError),
    /// The core refused the change (its state, options or input).
    Job(JobError),
    /// The core refused the submit.
    Submit(SubmitError),
    /// The store could not be reached, or did not confirm the commit: nothing is known to
    /// have changed, and the caller may retry.
    Unavailable(Arc<str>),
    /// The changes asked for are older than the store keeps (R-JOURNAL): read the jobs again,
    /// then follow changes from the revision of that read.
    Compacted(Compacted),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Lookup(e) => e.fmt(f),
            StoreError::Job(e) => e.fmt(f),
            StoreError::Submit(e) => e.fmt(f),
            StoreError::Unavailable(why) => write!(f, "the job store is unavailable: {why}"),
            StoreError::Compacted(c) => c.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<LookupError> for StoreError {
    fn from(e: LookupError) -> Self {
        StoreError::Lookup(e)
    }
}

impl From<JobError> for StoreError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Lookup(l) => StoreError::Lookup(l),
            e => StoreError::Job(e),
        }
    }
}

impl From<SubmitError> for StoreError {
    fn from(e: SubmitError) -> Self {
        StoreError::Submit(e)
    }
}

impl From<WaitError> for StoreError {
    fn from(WaitError::Lookup(e): WaitError) -> Self {
        StoreError::Lookup(e)
    }
}

/// A client request that was taken: the job's state after it, and the revision of its last
/// state change (wait for a change after it to see the request take effect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requested {
    /// The state after the request (a cancel of a queued job ends it at once).
    pub state: State,
    /// The revision of the job's last state change.
    pub state_revision: Revision,
}

/// A refused client request, with the job's state as the request left it (the request itself
/// may have ended a job whose deadline had passed), when it can still be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub error: StoreError,
    /// The job's state.
    pub state: Option<State>,
}

/// One of a job's events, as the journal kept it (R-JOURNAL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The revision the event took.
    pub revision: Revision,
    /// What happened.
    pub kind: EventKind,
    /// The logged line of a log event, while the log ring still holds it.
    pub line: Option<String>,
}

/// A job's events from the journal, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The events the journal still holds.
    pub entries: Vec<Entry>,
    /// Whether they go back to the job's submission (otherwise earlier ones were compacted
    /// away, or dropped by a restart: the journal is not persisted; a store without a journal
    /// answers none, incomplete).
    pub complete: bool,
}

/// The events of job `id` that the engine's journal still holds.
pub(crate) fn journal_history<Tb: EngineTable>(engine: &Engine<Tb>, id: JobId) -> History {
    engine.with_table(|t| {
        let read = |after: Revision| {
            t.journal(after).map(|events| {
                events
                    .filter(|e| e.job == id)
                    .map(|e| Entry {
                        revision: e.revision,
                        kind: e.kind,
                        line: e.line().map(str::to_owned),
                    })
                    .collect::<Vec<_>>()
            })
        };
        let entries = match read(Revision::new(0)) {
            Ok(entries) => entries,
            Err(c) => read(Revision::new(c.oldest.get().saturating_sub(1))).unwrap_or_default(),
        };
        let complete = entries
            .first()
            .is_some_and(|e| e.kind == EventKind::Submitted);
        History { entries, complete }
    })
}

/// Where the jobs live, as the clients' side sees it: the in-process [`Engine`], or a store
/// shared by replicas. See the [module docs](self).
pub trait JobStore<S, const T: usize>: Send + Sync + 'static {
    /// The mapping of the store's instants to the wall clock.
    fn clock(&self) -> Clock;

    /// Submit a job; answers its id once the store has it (committed, and — with a durable
    /// engine — as durable as the engine makes it).
    fn submit<'a>(&'a self, job: NewJob<'a, S>) -> Pending<'a, Result<JobId, StoreError>>
    where
        S: 'a;

    /// One job.
    fn get(&self, id: JobId) -> Pending<'_, Result<Snapshot<S, T>, StoreError>>;

    /// Every job, oldest first.
    fn list(&self) -> Pending<'_, Result<Vec<Snapshot<S, T>>, StoreError>>;

    /// Wait up to `timeout` for `condition` on job `id` (R-WAIT, R-LONGPOLL): the job when the
    /// condition holds, or as it is at the timeout (`timed_out`).
    fn wait(
        &self,
        id: JobId,
        condition: Condition,
        timeout: StdDuration,
    ) -> Pending<'_, Result<Waited<Snapshot<S, T>>, StoreError>>;

    /// A client's request on job `id` (R-CONTROL).
    fn request(&self, id: JobId, request: Request) -> Pending<'_, Result<Requested, Refusal>>;

    /// The store's current revision (R-VERSION).
    fn revision(&self) -> Pending<'_, Result<Revision, StoreError>>;

    /// How long until a submit can find room (R-FULL): zero when there is room now, the time
    /// until the oldest ended job's retention passes otherwise, `None` while every place holds
    /// a live job.
    fn free_in(&self) -> Pending<'_, Option<StdDuration>>;

    /// The events of job `id` the store still knows, oldest first (R-JOURNAL): the engine
    /// reads its journal; a store without one answers an empty, incomplete [`History`] (what
    /// this default does).
    fn history(&self, id: JobId) -> Pending<'_, Result<History, StoreError>> {
        let _ = id;
        Box::pin(std::future::ready(Ok(History::default())))
    }

    // ----- the worker side -------------------------------------------------------------------

    /// Start the next runnable job for a worker of this process (R-SCHED: highest priority,
    /// then oldest) and answer it as started, or `None` when no job is runnable now. In a
    /// store shared by replicas the job is held under this replica's lease (R-CLUSTER).
    fn claim(&self) -> Pending<'_, Result<Option<Snapshot<S, T>>, StoreError>>;

    /// The worker's progress on a job it holds (R-PROGRESS).
    fn progress<'a>(
        &'a self,
        id: JobId,
        percent: u8,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>>;

    /// The worker's heartbeat: renews the job's own lease, when it has one (R-DEADLINE).
    fn heartbeat(&self, id: JobId) -> Pending<'_, Result<(), StoreError>>;

    /// The worker's check-in (R-CONTROL): continue, pause (the job is paused now), or canceled
    /// (the job ended canceled).
    fn checkpoint(&self, id: JobId) -> Pending<'_, Result<Directive, StoreError>>;

    /// The job succeeded (R-OUTCOME).
    fn succeed<'a>(
        &'a self,
        id: JobId,
        severity: Severity,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>>;

    /// The job failed with the worker's own error (retried through the job's policy, R-RETRY).
    fn fail<'a>(
        &'a self,
        id: JobId,
        code: i32,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>>;

    /// Run the timers now (R-DEADLINE, R-RETAIN): deadlines, leases, backoffs and retention
    /// that are due. Both stores also run them by themselves.
    fn expire(&self) -> Pending<'_, Result<Expired, StoreError>>;
}

impl<S, const T: usize, Tb> JobStore<S, T> for Engine<Tb>
where
    Tb: EngineTable + jobstate::Table<Spec = S, Job = Job<S, T>>,
    S: Clone + Send + Sync + 'static,
{
    fn clock(&self) -> Clock {
        *Engine::clock(self)
    }

    fn submit<'a>(&'a self, job: NewJob<'a, S>) -> Pending<'a, Result<JobId, StoreError>>
    where
        S: 'a,
    {
        let r = Engine::submit(self, job).map_err(|e| StoreError::Submit(e.error));
        Box::pin(std::future::ready(r))
    }

    fn get(&self, id: JobId) -> Pending<'_, Result<Snapshot<S, T>, StoreError>> {
        Box::pin(std::future::ready(
            Engine::get(self, id).map_err(StoreError::from),
        ))
    }

    fn list(&self) -> Pending<'_, Result<Vec<Snapshot<S, T>>, StoreError>> {
        Box::pin(std::future::ready(Ok(Engine::list(self))))
    }

    fn wait(
        &self,
        id: JobId,
        condition: Condition,
        timeout: StdDuration,
    ) -> Pending<'_, Result<Waited<Snapshot<S, T>>, StoreError>> {
        let wait = self.wait_async(id, condition, timeout);
        Box::pin(async move { wait.await.map_err(StoreError::from) })
    }

    fn request(&self, id: JobId, request: Request) -> Pending<'_, Result<Requested, Refusal>> {
        // The request and the state it left, under one lock: a worker acting on the request
        // right after cannot make a wait from that state revision miss the change.
        let r = self.update(|t, now| {
            let before = t.get(id).map(|j| j.state()).ok();
            let result = t.request(id, request, now);
            let after = t.get(id).map(|j| (j.state(), j.state_revision())).ok();
            match (result, after) {
                (Ok(()), Some((state, state_revision))) => Ok(Requested {
                    state,
                    state_revision,
                }),
                (Ok(()), None) => Err(Refusal {
                    error: StoreError::Lookup(LookupError::NotFound),
                    state: before,
                }),
                (Err(e), after) => Err(Refusal {
                    error: StoreError::from(e),
                    state: after.map(|(s, _)| s).or(before),
                }),
            }
        });
        Box::pin(std::future::ready(r))
    }

    fn revision(&self) -> Pending<'_, Result<Revision, StoreError>> {
        Box::pin(std::future::ready(Ok(Engine::revision(self))))
    }

    fn free_in(&self) -> Pending<'_, Option<StdDuration>> {
        let now = self.now();
        let at = self.with_table(|t| t.next_free_at());
        Box::pin(std::future::ready(at.map(|at| {
            StdDuration::from_micros(at.as_micros().saturating_sub(now.as_micros()))
        })))
    }

    fn history(&self, id: JobId) -> Pending<'_, Result<History, StoreError>> {
        Box::pin(std::future::ready(Ok(journal_history(self, id))))
    }

    fn claim(&self) -> Pending<'_, Result<Option<Snapshot<S, T>>, StoreError>> {
        let started = self
            .start_next()
            .map(|id| Engine::get(self, id).map_err(StoreError::from))
            .transpose();
        Box::pin(std::future::ready(started))
    }

    fn progress<'a>(
        &'a self,
        id: JobId,
        percent: u8,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        let r = Engine::progress(self, id, percent, message).map_err(StoreError::from);
        Box::pin(std::future::ready(r))
    }

    fn heartbeat(&self, id: JobId) -> Pending<'_, Result<(), StoreError>> {
        let r = Engine::heartbeat(self, id).map_err(StoreError::from);
        Box::pin(std::future::ready(r))
    }

    fn checkpoint(&self, id: JobId) -> Pending<'_, Result<Directive, StoreError>> {
        let r = Engine::checkpoint(self, id).map_err(StoreError::from);
        Box::pin(std::future::ready(r))
    }

    fn succeed<'a>(
        &'a self,
        id: JobId,
        severity: Severity,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        let r = Engine::succeed(self, id, severity, message).map_err(StoreError::from);
        Box::pin(std::future::ready(r))
    }

    fn fail<'a>(
        &'a self,
        id: JobId,
        code: i32,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        let r = Engine::fail(self, id, code, message).map_err(StoreError::from);
        Box::pin(std::future::ready(r))
    }

    fn expire(&self) -> Pending<'_, Result<Expired, StoreError>> {
        Box::pin(std::future::ready(Ok(self.run_timers())))
    }
}
