//! [`EtcdStore`] behind the std adapter's [`JobStore`] seam.

use std::time::Duration as StdDuration;

use jobstate::{Condition, Directive, Expired, JobId, NewJob, Request, Revision, Severity, Waited};
use jobstate_std::store::{Pending, Refusal, Requested, StoreError};
use jobstate_std::{Clock, JobStore, Snapshot};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::EtcdStore;

impl<S, const T: usize> JobStore<S, T> for EtcdStore<S, T>
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn clock(&self) -> Clock {
        EtcdStore::clock(self)
    }

    fn submit<'a>(&'a self, job: NewJob<'a, S>) -> Pending<'a, Result<JobId, StoreError>>
    where
        S: 'a,
    {
        Box::pin(EtcdStore::submit(self, job))
    }

    fn get(&self, id: JobId) -> Pending<'_, Result<Snapshot<S, T>, StoreError>> {
        Box::pin(EtcdStore::get(self, id))
    }

    fn list(&self) -> Pending<'_, Result<Vec<Snapshot<S, T>>, StoreError>> {
        Box::pin(EtcdStore::list(self))
    }

    fn wait(
        &self,
        id: JobId,
        condition: Condition,
        timeout: StdDuration,
    ) -> Pending<'_, Result<Waited<Snapshot<S, T>>, StoreError>> {
        Box::pin(EtcdStore::wait(self, id, condition, timeout))
    }

    fn request(&self, id: JobId, request: Request) -> Pending<'_, Result<Requested, Refusal>> {
        Box::pin(EtcdStore::request(self, id, request))
    }

    fn revision(&self) -> Pending<'_, Result<Revision, StoreError>> {
        Box::pin(EtcdStore::revision(self))
    }

    fn free_in(&self) -> Pending<'_, Option<StdDuration>> {
        Box::pin(EtcdStore::free_in(self))
    }

    fn claim(&self) -> Pending<'_, Result<Option<Snapshot<S, T>>, StoreError>> {
        Box::pin(async move {
            match EtcdStore::claim(self).await? {
                Some(c) => self.get(c.id()).await.map(Some),
                None => Ok(None),
            }
        })
    }

    fn progress<'a>(
        &'a self,
        id: JobId,
        percent: u8,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        Box::pin(self.worker_change(id, self.lease_id(), move |r, now| {
            r.progress(percent, message, now)
        }))
    }

    fn heartbeat(&self, id: JobId) -> Pending<'_, Result<(), StoreError>> {
        Box::pin(self.worker_change(id, self.lease_id(), |r, now| r.heartbeat(now)))
    }

    fn checkpoint(&self, id: JobId) -> Pending<'_, Result<Directive, StoreError>> {
        Box::pin(self.worker_change(id, self.lease_id(), |r, now| r.checkpoint(now)))
    }

    fn succeed<'a>(
        &'a self,
        id: JobId,
        severity: Severity,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        Box::pin(self.worker_change(id, self.lease_id(), move |r, now| {
            r.succeed(severity, message, now)
        }))
    }

    fn fail<'a>(
        &'a self,
        id: JobId,
        code: i32,
        message: &'a str,
    ) -> Pending<'a, Result<(), StoreError>> {
        Box::pin(self.worker_change(id, self.lease_id(), move |r, now| {
            r.fail(code, message, now)
        }))
    }

    fn expire(&self) -> Pending<'_, Result<Expired, StoreError>> {
        Box::pin(self.expire_due())
    }
}
