//! Naming the capacities once: the [`Table`] trait.
//!
//! A program picks its capacities in one type alias — `type Jobs = JobTable<Op, 64, 128>;` —
//! and hands that type to everything else: the firmware's shared table, the std adapter's
//! engine, worker context, file store and HTTP binding are generic over `Tb: Table`, so no
//! capacity is written twice and no call needs a capacity turbofish. [`JobTable`] is the one
//! implementation; the trait's methods are its inherent methods (same names, same rules).

use super::{Config, Expired, JobTable};
use crate::error::{Compacted, JobError, LookupError, Refused};
use crate::id::{JobId, Revision};
use crate::job::NewJob;
use crate::journal::Event;
use crate::retain::Tombstone;
use crate::state::{Directive, FailReason, Severity};
use crate::time::Instant;
use crate::view::{Job, JobRef};
use crate::wait::Condition;

/// A job table type with its capacities fixed: what generic code (adapters) takes. See the
/// [`JobTable`] for what each method does.
pub trait Table {
    /// The caller's spec type.
    type Spec;
    /// The owned snapshot of a job of this table (`Job<Spec, T>`).
    type Job;
    /// Text capacity `T`.
    const TEXT: usize;
    /// Capacity in jobs `N`.
    const CAPACITY: usize;

    /// An empty table ([`JobTable::new`]).
    fn new(config: Config) -> Self;
    /// [`JobTable::config`].
    fn config(&self) -> Config;
    /// [`JobTable::len`].
    fn len(&self) -> usize;
    /// [`JobTable::is_empty`].
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// [`JobTable::retired`].
    fn retired(&self) -> usize;
    /// [`JobTable::revision`].
    fn revision(&self) -> Revision;
    /// [`JobTable::epoch`].
    fn epoch(&self) -> u32;
    /// [`JobTable::now`].
    fn now(&self) -> Instant;
    /// [`JobTable::get`].
    fn get(&self, id: JobId) -> Result<JobRef<'_, Self::Spec>, LookupError>;
    /// [`JobTable::snapshot`].
    fn snapshot(&self, id: JobId) -> Result<Self::Job, LookupError>
    where
        Self::Spec: Clone;
    /// An owned copy of a borrowed job of this table.
    fn to_job(job: &JobRef<'_, Self::Spec>) -> Self::Job
    where
        Self::Spec: Clone;
    /// [`JobTable::check`].
    fn check(
        &self,
        id: JobId,
        condition: Condition,
    ) -> Result<Option<JobRef<'_, Self::Spec>>, LookupError>;
    /// [`JobTable::iter`].
    fn iter(&self) -> impl Iterator<Item = JobRef<'_, Self::Spec>>;
    /// [`JobTable::tombstones`].
    fn tombstones(&self) -> impl Iterator<Item = Tombstone> + '_;
    /// [`JobTable::peek_runnable`].
    fn peek_runnable(&self) -> Option<JobId>;
    /// [`JobTable::journal`].
    fn journal(&self, after: Revision) -> Result<impl Iterator<Item = Event<'_>>, Compacted>;
    /// [`JobTable::changed_since`].
    fn changed_since(&self, after: Revision)
        -> Result<impl Iterator<Item = JobId> + '_, Compacted>;
    /// [`JobTable::next_timer`].
    fn next_timer(&self) -> Option<Instant>;
    /// [`JobTable::next_free_at`].
    fn next_free_at(&self) -> Option<Instant>;
    /// [`JobTable::submit`].
    #[allow(clippy::result_large_err)] // the caller's job comes back whole (R-FULL)
    fn submit<'a>(
        &mut self,
        job: NewJob<'a, Self::Spec>,
        now: Instant,
    ) -> Result<JobId, Refused<'a, Self::Spec>>;
    /// [`JobTable::submit_idempotent`].
    #[allow(clippy::result_large_err)] // the caller's job comes back whole (R-FULL)
    fn submit_idempotent<'a>(
        &mut self,
        job: NewJob<'a, Self::Spec>,
        key: &[u8],
        fingerprint: u64,
        now: Instant,
    ) -> Result<super::Idempotent, Refused<'a, Self::Spec>>;
    /// [`JobTable::key_job`].
    fn key_job(&mut self, key: &[u8]) -> Option<JobId>;
    /// [`JobTable::start_next`].
    fn start_next(&mut self, now: Instant) -> Option<JobId>;
    /// [`JobTable::start`].
    fn start(&mut self, id: JobId, now: Instant) -> Result<(), JobError>;
    /// [`JobTable::progress`].
    fn progress(
        &mut self,
        id: JobId,
        percent: u8,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError>;
    /// [`JobTable::log`].
    fn log(&mut self, id: JobId, line: &str, now: Instant) -> Result<(), JobError>;
    /// [`JobTable::heartbeat`].
    fn heartbeat(&mut self, id: JobId, now: Instant) -> Result<(), JobError>;
    /// [`JobTable::checkpoint`].
    fn checkpoint(&mut self, id: JobId, now: Instant) -> Result<Directive, JobError>;
    /// [`JobTable::succeed`].
    fn succeed(
        &mut self,
        id: JobId,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError>;
    /// [`JobTable::fail`].
    fn fail(&mut self, id: JobId, code: i32, message: &str, now: Instant) -> Result<(), JobError>;
    /// [`JobTable::fail_final`].
    fn fail_final(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError>;
    /// [`JobTable::fail_with`].
    fn fail_with(
        &mut self,
        id: JobId,
        reason: FailReason,
        code: Option<i32>,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError>;
    /// [`JobTable::request_pause`].
    fn request_pause(&mut self, id: JobId, now: Instant) -> Result<(), JobError>;
    /// [`JobTable::request_resume`].
    fn request_resume(&mut self, id: JobId, now: Instant) -> Result<(), JobError>;
    /// [`JobTable::request_cancel`].
    fn request_cancel(&mut self, id: JobId, now: Instant) -> Result<(), JobError>;
    /// A client's request by value (R-CONTROL): [`Table::request_pause`],
    /// [`Table::request_resume`] or [`Table::request_cancel`].
    fn request(
        &mut self,
        id: JobId,
        request: crate::Request,
        now: Instant,
    ) -> Result<(), JobError> {
        match request {
            crate::Request::Pause => self.request_pause(id, now),
            crate::Request::Resume => self.request_resume(id, now),
            crate::Request::Cancel => self.request_cancel(id, now),
        }
    }
    /// [`JobTable::expire`].
    fn expire(&mut self, now: Instant) -> Expired;

    /// The table's parts with its capacities erased: how the shared table runs one copy of its
    /// code for every table type. Not part of the API.
    #[doc(hidden)]
    fn erased_mut(&mut self) -> super::Core<'_, Self::Spec>;
    /// The same, for reading. Not part of the API.
    #[doc(hidden)]
    fn erased(&self) -> super::Ro<'_, Self::Spec>;

    /// [`JobTable::image_size_bound`].
    #[cfg(feature = "persist")]
    fn image_size_bound(spec_max: usize) -> usize;
    /// [`JobTable::encode`].
    #[cfg(feature = "persist")]
    fn encode(&self, buf: &mut [u8]) -> Result<usize, crate::persist::EncodeError>
    where
        Self::Spec: serde::Serialize;
    /// [`JobTable::decode_in_place`].
    #[cfg(feature = "persist")]
    fn decode_in_place(&mut self, bytes: &[u8]) -> Result<(), crate::persist::DecodeError>
    where
        Self::Spec: serde::de::DeserializeOwned;
    /// [`JobTable::restore_in_place`].
    #[cfg(feature = "persist")]
    fn restore_in_place(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<crate::persist::Restored, crate::persist::DecodeError>
    where
        Self::Spec: serde::de::DeserializeOwned;
}

impl<
        S,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    > Table for JobTable<S, N, T, J, L, E, K, I>
{
    type Spec = S;
    type Job = Job<S, T>;
    const TEXT: usize = T;
    const CAPACITY: usize = N;

    fn new(config: Config) -> Self {
        JobTable::new(config)
    }
    fn config(&self) -> Config {
        JobTable::config(self)
    }
    fn len(&self) -> usize {
        JobTable::len(self)
    }
    fn retired(&self) -> usize {
        JobTable::retired(self)
    }
    fn revision(&self) -> Revision {
        JobTable::revision(self)
    }
    fn epoch(&self) -> u32 {
        JobTable::epoch(self)
    }
    fn now(&self) -> Instant {
        JobTable::now(self)
    }
    fn get(&self, id: JobId) -> Result<JobRef<'_, S>, LookupError> {
        JobTable::get(self, id)
    }
    fn snapshot(&self, id: JobId) -> Result<Job<S, T>, LookupError>
    where
        S: Clone,
    {
        JobTable::snapshot(self, id)
    }
    fn to_job(job: &JobRef<'_, S>) -> Job<S, T>
    where
        S: Clone,
    {
        job.snapshot()
    }
    fn check(&self, id: JobId, condition: Condition) -> Result<Option<JobRef<'_, S>>, LookupError> {
        JobTable::check(self, id, condition)
    }
    fn iter(&self) -> impl Iterator<Item = JobRef<'_, S>> {
        JobTable::iter(self)
    }
    fn tombstones(&self) -> impl Iterator<Item = Tombstone> + '_ {
        JobTable::tombstones(self)
    }
    fn peek_runnable(&self) -> Option<JobId> {
        JobTable::peek_runnable(self)
    }
    fn journal(&self, after: Revision) -> Result<impl Iterator<Item = Event<'_>>, Compacted> {
        JobTable::journal(self, after)
    }
    fn changed_since(
        &self,
        after: Revision,
    ) -> Result<impl Iterator<Item = JobId> + '_, Compacted> {
        JobTable::changed_since(self, after)
    }
    fn next_timer(&self) -> Option<Instant> {
        JobTable::next_timer(self)
    }
    fn next_free_at(&self) -> Option<Instant> {
        JobTable::next_free_at(self)
    }
    #[allow(clippy::result_large_err)]
    fn submit<'a>(&mut self, job: NewJob<'a, S>, now: Instant) -> Result<JobId, Refused<'a, S>> {
        JobTable::submit(self, job, now)
    }
    #[allow(clippy::result_large_err)]
    fn submit_idempotent<'a>(
        &mut self,
        job: NewJob<'a, S>,
        key: &[u8],
        fingerprint: u64,
        now: Instant,
    ) -> Result<super::Idempotent, Refused<'a, S>> {
        JobTable::submit_idempotent(self, job, key, fingerprint, now)
    }
    fn key_job(&mut self, key: &[u8]) -> Option<JobId> {
        JobTable::key_job(self, key)
    }
    fn start_next(&mut self, now: Instant) -> Option<JobId> {
        JobTable::start_next(self, now)
    }
    fn start(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        JobTable::start(self, id, now)
    }
    fn progress(
        &mut self,
        id: JobId,
        percent: u8,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        JobTable::progress(self, id, percent, message, now)
    }
    fn log(&mut self, id: JobId, line: &str, now: Instant) -> Result<(), JobError> {
        JobTable::log(self, id, line, now)
    }
    fn heartbeat(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        JobTable::heartbeat(self, id, now)
    }
    fn checkpoint(&mut self, id: JobId, now: Instant) -> Result<Directive, JobError> {
        JobTable::checkpoint(self, id, now)
    }
    fn succeed(
        &mut self,
        id: JobId,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        JobTable::succeed(self, id, severity, message, now)
    }
    fn fail(&mut self, id: JobId, code: i32, message: &str, now: Instant) -> Result<(), JobError> {
        JobTable::fail(self, id, code, message, now)
    }
    fn fail_final(
        &mut self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        JobTable::fail_final(self, id, code, message, now)
    }
    fn fail_with(
        &mut self,
        id: JobId,
        reason: FailReason,
        code: Option<i32>,
        message: &str,
        now: Instant,
    ) -> Result<(), JobError> {
        JobTable::fail_with(self, id, reason, code, message, now)
    }
    fn request_pause(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        JobTable::request_pause(self, id, now)
    }
    fn request_resume(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        JobTable::request_resume(self, id, now)
    }
    fn request_cancel(&mut self, id: JobId, now: Instant) -> Result<(), JobError> {
        JobTable::request_cancel(self, id, now)
    }
    fn expire(&mut self, now: Instant) -> Expired {
        JobTable::expire(self, now)
    }

    fn erased_mut(&mut self) -> super::Core<'_, S> {
        self.core()
    }
    fn erased(&self) -> super::Ro<'_, S> {
        self.ro()
    }

    #[cfg(feature = "persist")]
    fn image_size_bound(spec_max: usize) -> usize {
        JobTable::<S, N, T, J, L, E, K>::image_size_bound(spec_max)
    }
    #[cfg(feature = "persist")]
    fn encode(&self, buf: &mut [u8]) -> Result<usize, crate::persist::EncodeError>
    where
        S: serde::Serialize,
    {
        JobTable::encode(self, buf)
    }
    #[cfg(feature = "persist")]
    fn decode_in_place(&mut self, bytes: &[u8]) -> Result<(), crate::persist::DecodeError>
    where
        S: serde::de::DeserializeOwned,
    {
        JobTable::decode_in_place(self, bytes)
    }
    #[cfg(feature = "persist")]
    fn restore_in_place(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<crate::persist::Restored, crate::persist::DecodeError>
    where
        S: serde::de::DeserializeOwned,
    {
        JobTable::restore_in_place(self, bytes, now)
    }
}
