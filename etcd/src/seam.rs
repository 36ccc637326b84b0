//! [`EtcdStore`] behind the std adapter's [`JobStore`] seam.

use std::time::Duration as StdDuration;

use jobstate::{Condition, JobId, NewJob, Request, Revision, Waited};
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
}
