//! The replica's background duties: keep its lease alive, and run the core's timers
//! (deadlines, heartbeat leases, retry backoffs, retention) on the jobs whose timer is due.
//! Every replica sweeps; a compare-and-swap makes each expiry happen once.

use std::sync::Weak;
use std::time::Duration as StdDuration;

use jobstate::JobError;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::{EtcdStore, Inner};

/// Renew the lease at a third of its time to live. A renewal that fails is retried at once
/// (the claims stay as long as the lease has time left). A lease that expired anyway (this
/// replica could not reach etcd for longer than the TTL) took its claims with it — the other
/// replicas released those jobs — so the replica takes a new lease and goes on claiming.
pub(crate) async fn keep_lease<S, const T: usize>(inner: Weak<Inner<S, T>>) {
    let Some((mut client, ttl)) = inner
        .upgrade()
        .map(|i| (i.client.clone(), i.config.lease_ttl))
    else {
        return;
    };
    let every = (ttl / 3).max(StdDuration::from_millis(100));
    let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    loop {
        let Some(lease) = inner
            .upgrade()
            .map(|i| i.lease.load(std::sync::atomic::Ordering::Relaxed))
        else {
            return;
        };
        let mut expired = false;
        if let Ok((mut keeper, mut answers)) = client.lease_keep_alive(lease).await {
            loop {
                if inner.strong_count() == 0 {
                    return;
                }
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match tokio::time::timeout(every, answers.message())
                    .await
                    .unwrap_or(Ok(None))
                {
                    Ok(Some(a)) if a.ttl() > 0 => {}
                    Ok(Some(_)) => {
                        expired = true;
                        break;
                    }
                    _ => break,
                }
                tokio::time::sleep(every).await;
            }
        }
        if inner.strong_count() == 0 {
            return;
        }
        if expired {
            if let Ok(granted) = client.lease_grant(ttl_secs, None).await {
                if let Some(i) = inner.upgrade() {
                    i.lease
                        .store(granted.id(), std::sync::atomic::Ordering::Relaxed);
                }
                continue;
            }
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

/// Sleep to the earliest timer of the index, then apply the core's `expire` to every due job
/// (a job whose retention passed is removed, lowering the job count).
pub(crate) async fn timers<S, const T: usize>(inner: Weak<Inner<S, T>>)
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let mut last_reconcile = std::time::Instant::now();
    loop {
        let Some(store) = inner.upgrade().map(|inner| EtcdStore { inner }) else {
            return;
        };
        let now = store.inner.clock.now();
        let (due, next) = match store.inner.index.lock() {
            Ok(index) => (index.due(now), index.next_timer()),
            Err(_) => return,
        };
        let _ = store.expire_ids(due).await;
        // Every lease TTL, look at the running jobs again: a claim delete whose release failed
        // (etcd unavailable at that moment) or that no watch delivered is caught here.
        if last_reconcile.elapsed() >= store.inner.config.lease_ttl {
            last_reconcile = std::time::Instant::now();
            store.recover_lost_claims().await;
        }
        let timers_moved = store.inner.timers_moved.clone();
        let moved = timers_moved.notified();
        tokio::pin!(moved);
        moved.as_mut().enable();
        let sleep = match next {
            Some(at) if at > now => StdDuration::from_micros(at.as_micros() - now.as_micros()),
            Some(_) => StdDuration::from_millis(50),
            None => StdDuration::from_secs(3600),
        }
        .min(store.inner.config.lease_ttl);
        drop(store);
        tokio::select! {
            () = &mut moved => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

impl<S, const T: usize> EtcdStore<S, T>
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Run the timers that are due now on the jobs this replica indexes (R-DEADLINE,
    /// R-RETAIN): what the sweep does by itself.
    pub(crate) async fn expire_due(&self) -> Result<jobstate::Expired, jobstate_std::StoreError> {
        let now = self.inner.clock.now();
        let due = match self.inner.index.lock() {
            Ok(index) => index.due(now),
            Err(_) => Vec::new(),
        };
        Ok(self.expire_ids(due).await)
    }

    async fn expire_ids(&self, ids: Vec<jobstate::JobId>) -> jobstate::Expired {
        let mut report = jobstate::Expired::default();
        for id in ids {
            let one = self.expire_one(id).await;
            report.timed_out += one.timed_out;
            report.removed += one.removed;
        }
        report
    }

    /// Apply the core's timers to job `id` at now. A job whose retention passed goes in one
    /// transaction with the count (never an empty record first: a submit that hears of the
    /// removal finds the room).
    async fn expire_one(&self, id: jobstate::JobId) -> jobstate::Expired {
        let mut report = jobstate::Expired::default();
        let mut stored = match self.read(id).await {
            Ok(s) => s,
            // Gone (a delete this replica's watch has not delivered, or missed): forget it,
            // or its timer stays due for ever.
            Err(jobstate_std::StoreError::Lookup(_)) => {
                if let Ok(mut index) = self.inner.index.lock() {
                    index.remove(id);
                }
                return report;
            }
            Err(_) => return report,
        };
        let read_at = stored.mod_revision;
        let swept = stored.record.expire(self.inner.clock.now());
        if stored.record.is_empty() {
            if let Ok(tomb) = crate::value::encode(&stored.record, None) {
                if let Ok(true) = self.remove(id, read_at, tomb).await {
                    report.removed = swept.removed;
                }
            }
            return report;
        }
        if let Ok((swept, _)) = self
            .change(
                id,
                |r, now| Ok::<_, JobError>(r.expire(now)),
                |_| (vec![], vec![]),
            )
            .await
        {
            report.timed_out = swept.timed_out;
        }
        report
    }
}
