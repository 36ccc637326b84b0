//! [`JobRecord`]: one job kept on its own, under the table's rules.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{DecodeError, EncodeError};
use crate::error::{JobError, LookupError, Refused};
use crate::id::{JobId, Revision};
use crate::state::{Directive, FailReason, Request, Severity, State};
use crate::table::{Config, Expired, JobTable};
use crate::time::Instant;
use crate::view::{Job, JobRef};
use crate::NewJob;

/// The one-slot table behind a record: two journal events, no log bytes, no dependency edges,
/// one tombstone (a ring needs one), no keys.
type One<S, const T: usize> = JobTable<S, 1, T, 2, 0, 0, 1, 0>;

/// One job kept on its own: the record of a store that keeps each job under its own key
/// (`jobstate-etcd` keeps one etcd key per job).
///
/// A [`JobRecord`] is a one-slot [`JobTable`] and its image: every transition runs through the
/// table's own rules (R-TRANS, R-CONTROL, R-DEADLINE, R-RETRY, R-RETAIN), so a store that
/// reads a record, applies one change at `now` and writes it back under a compare-and-swap
/// applies exactly the rules an in-process table applies — none is written again outside the
/// core. What a one-job record cannot hold is the store's: the job's id in the store, its
/// revisions (the store's own, [`JobRecord::snapshot`] puts them in), other jobs (dependencies
/// are refused: [`SubmitError::UnknownDependency`], a record knows no other job) and log
/// lines. Once the job's retention passes, the record keeps its tombstone
/// ([`JobRecord::tombstone`]).
///
/// ```
/// use jobstate::persist::JobRecord;
/// use jobstate::{Config, Instant, NewJob, Revision, State};
///
/// let t = Instant::from_millis;
/// let mut record = JobRecord::<u8>::create(NewJob::new(7), Config::DEFAULT, t(0)).unwrap();
/// record.start(t(1)).unwrap();
/// let mut buf = [0u8; JobRecord::<u8>::size_bound(1)];
/// let len = record.encode(&mut buf).unwrap();
///
/// // Later, on another replica: read, change, write back.
/// let mut again = JobRecord::<u8>::decode(&buf[..len]).unwrap();
/// again.succeed(jobstate::Severity::Normal, "done", t(2)).unwrap();
/// assert_eq!(again.state(), Some(State::Succeeded));
/// # let id = again.job().unwrap().id();
/// let job = again.snapshot(id, Revision::new(42), None).unwrap();
/// assert_eq!(job.revision(), Revision::new(42));
/// ```
///
/// [`SubmitError::UnknownDependency`]: crate::SubmitError::UnknownDependency
pub struct JobRecord<S, const T: usize = 64> {
    table: One<S, T>,
}

impl<S, const T: usize> JobRecord<S, T> {
    /// Bytes that always hold the image of a record whose spec encodes to at most `spec_max`
    /// bytes.
    pub const fn size_bound(spec_max: usize) -> usize {
        One::<S, T>::image_size_bound(spec_max)
    }

    /// A record holding `job`, submitted at `now`. Refused as an in-process table refuses it
    /// (text too long, invalid options); with dependencies, [`SubmitError::UnknownDependency`]
    /// (a record knows no other job). The refusal hands the job back.
    ///
    /// [`SubmitError::UnknownDependency`]: crate::SubmitError::UnknownDependency
    #[allow(clippy::result_large_err)] // the refusal hands the whole job back (R-FULL)
    pub fn create<'a>(
        job: NewJob<'a, S>,
        config: Config,
        now: Instant,
    ) -> Result<Self, Refused<'a, S>> {
        let mut table = One::new(config);
        table.submit(job, now)?;
        Ok(Self { table })
    }

    /// The job, while the record holds one (`None` once its retention passed: the store
    /// removes the record).
    pub fn job(&self) -> Option<JobRef<'_, S>> {
        self.table.iter().next()
    }

    /// The job's state.
    pub fn state(&self) -> Option<State> {
        self.job().map(|j| j.state())
    }

    /// What is left of the job once its retention passed at [`JobRecord::expire`] (R-RETAIN),
    /// under the store's id: keep it where late pollers find it.
    pub fn tombstone(&self, id: JobId) -> Option<crate::Tombstone> {
        self.table
            .tombstones()
            .next()
            .map(|t| crate::Tombstone { id, ..t })
    }

    /// Whether the record no longer holds a job (its retention passed at [`JobRecord::expire`]).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Whether a worker may start the job now (queued, not in a retry backoff).
    pub fn is_runnable(&self) -> bool {
        self.table.peek_runnable().is_some()
    }

    /// An owned snapshot under the store's identity: its id for the job and its revisions.
    /// `state_revision` `None` means the state last changed at `revision`.
    pub fn snapshot(
        &self,
        id: JobId,
        revision: Revision,
        state_revision: Option<Revision>,
    ) -> Option<Job<S, T>>
    where
        S: Clone,
    {
        let mut job: Job<S, T> = self.job()?.snapshot();
        job.relabel(id, revision, state_revision.unwrap_or(revision));
        Some(job)
    }

    /// The next instant at which [`JobRecord::expire`] has work: a deadline, a lease, the end
    /// of a retry backoff or of the retention.
    pub fn next_timer(&self) -> Option<Instant> {
        self.table.next_timer()
    }

    fn id(&self) -> Result<JobId, JobError> {
        self.job()
            .map(|j| j.id())
            .ok_or(JobError::Lookup(LookupError::NotFound))
    }

    /// [`JobTable::start`].
    pub fn start(&mut self, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.start(id, now)
    }

    /// [`JobTable::progress`].
    pub fn progress(&mut self, percent: u8, message: &str, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.progress(id, percent, message, now)
    }

    /// [`JobTable::heartbeat`].
    pub fn heartbeat(&mut self, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.heartbeat(id, now)
    }

    /// [`JobTable::checkpoint`].
    pub fn checkpoint(&mut self, now: Instant) -> Result<Directive, JobError> {
        let id = self.id()?;
        self.table.checkpoint(id, now)
    }

    /// [`JobTable::succeed`].
    pub fn succeed(
        &mut self,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.succeed(id, severity, message, now)
    }

    /// [`JobTable::fail`] (retries through the job's policy).
    pub fn fail(&mut self, code: i32, message: &str, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.fail(id, code, message, now)
    }

    /// [`JobTable::fail_with`]: `Interrupted` queues a restartable job again.
    pub fn fail_with(
        &mut self,
        reason: FailReason,
        code: Option<i32>,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.fail_with(id, reason, code, message, now)
    }

    /// [`JobTable::request_pause`].
    pub fn request_pause(&mut self, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.request_pause(id, now)
    }

    /// [`JobTable::request_resume`].
    pub fn request_resume(&mut self, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.request_resume(id, now)
    }

    /// [`JobTable::request_cancel`].
    pub fn request_cancel(&mut self, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.request_cancel(id, now)
    }

    /// [`JobTable::worker_lost`]: the worker holding the job is gone (its lease in the store
    /// ended).
    pub fn worker_lost(&mut self, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        self.table.worker_lost(id, now)
    }

    /// [`Table::request`](crate::Table::request): a client's request by value.
    pub fn request(&mut self, request: Request, now: Instant) -> Result<(), JobError> {
        let id = self.id()?;
        crate::Table::request(&mut self.table, id, request, now)
    }

    /// [`JobTable::expire`]: deadlines, leases, backoffs and the retention at `now`.
    pub fn expire(&mut self, now: Instant) -> Expired {
        self.table.expire(now)
    }

    /// The record's revision counter: it grows with every change the record takes, so a
    /// caller tells whether an operation changed anything by comparing it before and after.
    pub fn changes(&self) -> Revision {
        self.table.revision()
    }
}

impl<S: Serialize, const T: usize> JobRecord<S, T> {
    /// Write the record's image into `buf` and answer its length
    /// ([`JobRecord::size_bound`] bytes are always enough).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.table.encode(buf)
    }
}

impl<S: DeserializeOwned, const T: usize> JobRecord<S, T> {
    /// Read a record's image exactly as written (a running job is still running). Every
    /// rule of an image is checked; an image of more than one job is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut table = One::new(Config::DEFAULT);
        table.decode_in_place(bytes)?;
        Ok(Self { table })
    }
}

impl<S: core::fmt::Debug, const T: usize> core::fmt::Debug for JobRecord<S, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JobRecord")
            .field("job", &self.job())
            .finish()
    }
}
