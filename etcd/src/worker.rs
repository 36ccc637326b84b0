//! Workers on any replica: a runnable job is claimed by exactly one of them — one transaction
//! starts it (the core's `start`) and puts its `claims/<id>` key under the replica's lease,
//! compared against the record's mod revision and the claim's absence. Every later change the
//! worker makes is compared against its claim still being held by its lease; when the job
//! leaves `Running`/`Paused` the claim goes in the same commit.

use std::future::Future;
use std::time::Duration as StdDuration;

use etcd_client::{Compare, CompareOp, TxnOp};
use jobstate::persist::JobRecord;
use jobstate::{Directive, FailReason, JobError, JobId, Severity, State};
use jobstate_std::store::StoreError;
use jobstate_std::{Failure, Success};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::store::EtcdStore;

/// A job this replica's worker holds: its id, its spec, and the changes a worker makes.
pub struct Claimed<S, const T: usize = 64> {
    store: EtcdStore<S, T>,
    id: JobId,
    spec: S,
    /// The lease the claim was put under: a later claim of the same job by this replica (after
    /// its lease was replaced) is not this one's.
    lease: i64,
}

impl<S: Clone, const T: usize> Clone for Claimed<S, T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            id: self.id,
            spec: self.spec.clone(),
            lease: self.lease,
        }
    }
}

impl<S, const T: usize> std::fmt::Debug for Claimed<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<S, const T: usize> EtcdStore<S, T>
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Claim the next runnable job (highest priority, then oldest) for a worker of this
    /// replica, or `None` when no job is runnable now.
    pub async fn claim(&self) -> Result<Option<Claimed<S, T>>, StoreError> {
        let candidates = match self.inner.index.lock() {
            Ok(index) => index.runnable(16),
            Err(_) => return Ok(None),
        };
        for id in candidates {
            let claim = self.inner.keys.claim(id);
            let lease = self.lease_id();
            let leased = etcd_client::PutOptions::new().with_lease(lease);
            let started = self
                .change(
                    id,
                    |r, now| r.start(now),
                    |_| {
                        (
                            vec![Compare::create_revision(
                                claim.as_str(),
                                CompareOp::Equal,
                                0,
                            )],
                            vec![TxnOp::put(
                                claim.as_str(),
                                self.inner.epoch.to_string(),
                                Some(leased.clone()),
                            )],
                        )
                    },
                )
                .await;
            match started {
                Ok(((), stored)) => {
                    if let Some(job) = stored.record.job() {
                        return Ok(Some(Claimed {
                            store: self.clone(),
                            id,
                            spec: job.spec().clone(),
                            lease,
                        }));
                    }
                }
                Err((StoreError::Unavailable(why), _)) => {
                    // The outcome is unknown: a claim that committed under this lease is
                    // this worker's (nobody else would ever run the job).
                    if let Some(c) = self.adopt(id, lease).await {
                        return Ok(Some(c));
                    }
                    return Err(StoreError::Unavailable(why));
                }
                // Another worker took it, or it is no longer runnable: the next one.
                Err(_) => {}
            }
        }
        Ok(None)
    }

    /// Job `id`'s claim, if it is held under `lease` (a claim whose commit's answer was lost).
    async fn adopt(&self, id: JobId, lease: i64) -> Option<Claimed<S, T>> {
        let mut client = self.client();
        let resp = crate::store::get(&mut client, &self.inner.keys.claim(id), None)
            .await
            .ok()?;
        if resp.kvs().first()?.lease() != lease {
            return None;
        }
        let stored = self.read(id).await.ok()?;
        let spec = stored.record.job()?.spec().clone();
        Some(Claimed {
            store: self.clone(),
            id,
            spec,
            lease,
        })
    }

    /// Wait until a job can be claimed, and claim it. An unavailable store (etcd out of
    /// reach, or this replica's lease expired and not yet replaced) is waited out too.
    pub async fn claim_next(&self) -> Result<Claimed<S, T>, StoreError> {
        loop {
            let runnable = self.inner.runnable.notified();
            tokio::pin!(runnable);
            runnable.as_mut().enable();
            match self.claim().await {
                Ok(Some(c)) => return Ok(c),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "claim: the store is unavailable; trying again");
                    tokio::time::sleep(StdDuration::from_millis(200)).await;
                    continue;
                }
            }
            // Woken by a job that became runnable; the timeout covers a wake-up lost to a
            // watch reconnect.
            let _ = tokio::time::timeout(StdDuration::from_secs(1), runnable).await;
        }
    }

    /// Apply a worker's change to job `id` under its claim: compared against the claim still
    /// being held by this replica's lease; the claim goes with the commit that takes the job
    /// out of `Running`/`Paused`. A claim that is not this replica's any more answers
    /// `NotRunning` and commits nothing.
    pub(crate) async fn worker_change<R>(
        &self,
        id: JobId,
        lease: i64,
        change: impl FnMut(&mut JobRecord<S, T>, jobstate::Instant) -> Result<R, JobError>,
    ) -> Result<R, StoreError> {
        let claim = self.inner.keys.claim(id);
        // The claim's end when the job leaves Running/Paused is `change`'s own.
        self.change(id, change, |_| {
            (
                vec![Compare::lease(claim.as_str(), CompareOp::Equal, lease)],
                vec![],
            )
        })
        .await
        .map(|(r, _)| r)
        .map_err(|(e, _)| e)
    }

    /// Run `workers` workers on this replica: each claims a job, runs `handler` on it (in its
    /// own task: a panic fails that job with code 5, the worker goes on), and ends the job
    /// with the handler's answer (given again while etcd is unavailable). The workers hold the
    /// store: they run until their handles are aborted.
    pub fn work<F, Fut>(&self, workers: usize, handler: F) -> Vec<JoinHandle<()>>
    where
        F: Fn(Claimed<S, T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Success, Failure>> + Send + 'static,
    {
        (0..workers)
            .map(|_| {
                let store = self.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    loop {
                        let claimed = match store.claim_next().await {
                            Ok(c) => c,
                            Err(_) => {
                                tokio::time::sleep(StdDuration::from_millis(200)).await;
                                continue;
                            }
                        };
                        let run = tokio::spawn(handler(claimed.clone()));
                        let answer = match run.await {
                            Ok(a) => a,
                            Err(e) if e.is_panic() => {
                                Err(Failure::new(5, "the job's handler panicked"))
                            }
                            Err(_) => Err(Failure {
                                reason: FailReason::Interrupted,
                                ..Failure::new(4, "the worker stopped")
                            }),
                        };
                        // An answer the table refuses (the job already ended: canceled, timed
                        // out, or its claim lost) changes nothing.
                        // An answer whose commit's outcome is unknown (etcd unavailable) is
                        // given again until it has one: a second try of one that did commit
                        // is refused (`AlreadyTerminal`) and changes nothing.
                        for attempt in 0u32.. {
                            let ended = match &answer {
                                Ok(s) => claimed.succeed(s.severity, &s.message).await,
                                Err(f) if f.reason == FailReason::Error => {
                                    claimed.fail(f.code, &f.message).await
                                }
                                Err(f) => claimed.fail_with(f.reason, f.code, &f.message).await,
                            };
                            if !matches!(ended, Err(StoreError::Unavailable(_))) {
                                break;
                            }
                            tokio::time::sleep(StdDuration::from_millis(
                                100 * u64::from(attempt.min(20) + 1),
                            ))
                            .await;
                        }
                    }
                })
            })
            .collect()
    }
}

impl<S, const T: usize> Claimed<S, T>
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The job's spec.
    pub fn spec(&self) -> &S {
        &self.spec
    }

    async fn act<R>(
        &self,
        change: impl FnMut(&mut JobRecord<S, T>, jobstate::Instant) -> Result<R, JobError>,
    ) -> Result<R, StoreError> {
        self.store.worker_change(self.id, self.lease, change).await
    }

    /// Report progress (R-PROGRESS).
    pub async fn progress(&self, percent: u8, message: &str) -> Result<(), StoreError> {
        self.act(|r, now| r.progress(percent, message, now)).await
    }

    /// Renew the job's own heartbeat lease, when it has one.
    pub async fn heartbeat(&self) -> Result<(), StoreError> {
        self.act(|r, now| r.heartbeat(now)).await
    }

    /// Check in (R-CONTROL): `Continue`, `Pause` (the job is now paused) or `Canceled` (the job
    /// ended canceled).
    pub async fn checkpoint(&self) -> Result<Directive, StoreError> {
        self.act(|r, now| r.checkpoint(now)).await
    }

    /// Check in and park while paused: answers when the job may go on, or
    /// `Err(Canceled)`-like [`Failure`] when it was canceled or can no longer run here.
    pub async fn proceed(&self) -> Result<(), Failure> {
        loop {
            match self.checkpoint().await {
                Ok(Directive::Continue) => return Ok(()),
                Ok(Directive::Pause) => {
                    // Parked until the job changes at all (a resume, or a cancel, which is a
                    // flag and no state change); checked again at once if it is not paused
                    // any more.
                    let job = match self.store.get(self.id).await {
                        Ok(j) => j,
                        Err(e) => return Err(Failure::new(4, e.to_string())),
                    };
                    if job.state() != State::Paused || job.cancel_requested() {
                        continue;
                    }
                    let _ = self
                        .store
                        .wait(
                            self.id,
                            jobstate::Condition::ChangedSince(job.revision()),
                            StdDuration::from_secs(60),
                        )
                        .await;
                }
                Ok(_) => {
                    return Err(Failure {
                        reason: FailReason::Canceled,
                        ..Failure::new(FailReason::Canceled.default_code(), "canceled")
                    })
                }
                Err(e) => {
                    return Err(Failure {
                        reason: FailReason::Interrupted,
                        ..Failure::new(4, e.to_string())
                    })
                }
            }
        }
    }

    /// The job succeeded.
    pub async fn succeed(&self, severity: Severity, message: &str) -> Result<(), StoreError> {
        self.act(|r, now| r.succeed(severity, message, now)).await
    }

    /// The job failed (retried through its policy).
    pub async fn fail(&self, code: i32, message: &str) -> Result<(), StoreError> {
        self.act(|r, now| r.fail(code, message, now)).await
    }

    /// The job failed with this reason (`Interrupted` queues a restartable job again).
    pub async fn fail_with(
        &self,
        reason: FailReason,
        code: i32,
        message: &str,
    ) -> Result<(), StoreError> {
        self.act(|r, now| r.fail_with(reason, Some(code), message, now))
            .await
    }
}
