//! [`EtcdStore`]: connect, submit, read, change one job under a compare-and-swap.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp,
};
use jobstate::persist::JobRecord;
use jobstate::{JobError, JobId, LookupError, NewJob, Request, Revision, SubmitError};
use jobstate_std::store::{Refusal, Requested, StoreError};
use jobstate_std::{Clock, Snapshot};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::keys::Keys;
use crate::value::{self, Stored};
use crate::watch::{Index, Waiters};

/// How many times a change retries its compare-and-swap before answering
/// [`StoreError::Unavailable`] (each retry means another commit touched the same key).
const CAS_TRIES: usize = 256;

/// Settings of a replica's connection to the cluster.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// The etcd endpoints (`http://127.0.0.1:2379`, …).
    pub endpoints: Vec<String>,
    /// The key prefix of this job table (several tables may share one etcd). Default
    /// `/jobstate/`.
    pub prefix: String,
    /// The most job records the cluster keeps (live and retained): a submit beyond it is
    /// refused `TableFull` (R-FULL). Default 1024.
    pub capacity: u64,
    /// The core's table settings (retention of ended jobs).
    pub table: jobstate::Config,
    /// The time to live of this replica's etcd lease, which holds its claims: a replica that
    /// stops renewing it loses its running jobs after this long. Default 5 s.
    pub lease_ttl: StdDuration,
    /// How long one etcd request may take before it answers `Unavailable`. Default 5 s.
    pub request_timeout: StdDuration,
    /// How long the tombstone of a removed job is kept (R-RETAIN): a late poller learns how
    /// the job ended for ⅞ to all of it, then the id answers `Expired` without one. Default
    /// 1 h.
    pub tombstone_ttl: StdDuration,
}

impl EtcdConfig {
    /// The defaults, at these endpoints.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: "/jobstate/".to_owned(),
            capacity: 1024,
            table: jobstate::Config::DEFAULT,
            lease_ttl: StdDuration::from_secs(5),
            request_timeout: StdDuration::from_secs(5),
            tombstone_ttl: StdDuration::from_secs(3600),
        }
    }
}

pub(crate) fn unavailable(e: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(e.to_string().into())
}

fn revision_of(r: i64) -> Revision {
    Revision::new(u64::try_from(r).unwrap_or(0))
}

/// A job table in etcd, shared by every replica connected to the same prefix. Cheap to clone.
/// See the [crate docs](crate).
pub struct EtcdStore<S, const T: usize = 64> {
    pub(crate) inner: Arc<Inner<S, T>>,
}

impl<S, const T: usize> Clone for EtcdStore<S, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S, const T: usize> std::fmt::Debug for EtcdStore<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.inner.keys.prefix())
            .field("epoch", &self.inner.epoch)
            .field("lease", &self.inner.lease)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<S, const T: usize> {
    pub(crate) client: Client,
    pub(crate) keys: Keys,
    pub(crate) config: EtcdConfig,
    pub(crate) clock: Clock,
    /// This replica's id epoch: ids are (epoch, generation), the epoch unique to this start.
    pub(crate) epoch: u32,
    pub(crate) next_generation: AtomicU32,
    /// The etcd lease holding this replica's claims (a new one once an old one expired).
    pub(crate) lease: std::sync::atomic::AtomicI64,
    /// The UUID instance tag of the cluster.
    pub(crate) tag: u64,
    pub(crate) waiters: Waiters,
    pub(crate) index: Mutex<Index>,
    /// Signalled when a job may have become runnable (workers park on it).
    pub(crate) runnable: Notify,
    /// Signalled when the earliest timer may have moved.
    pub(crate) timers_moved: Arc<Notify>,
    pub(crate) tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The job count and its mod revision as this replica last saw them.
    pub(crate) count_seen: Mutex<Option<(u64, i64)>>,
    /// The lease tombstones are put under now, and when it was granted: a new one every
    /// eighth of `tombstone_ttl`, never renewed, so tombstones end with their lease.
    pub(crate) tomb_lease: tokio::sync::Mutex<Option<(i64, std::time::Instant)>>,
    pub(crate) _spec: std::marker::PhantomData<fn() -> S>,
}

impl<S, const T: usize> Drop for Inner<S, T> {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().map(std::mem::take).unwrap_or_default() {
            task.abort();
        }
    }
}

impl<S, const T: usize> EtcdStore<S, T>
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Connect a replica: take a new id epoch (a durable increment, so no two starts of any
    /// replica ever issue the same id, R-ID), read or create the cluster's UUID tag, take a
    /// lease for this replica's claims, load the job index and start watching.
    pub async fn connect(config: EtcdConfig) -> Result<Self, StoreError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout)
            .with_timeout(config.request_timeout)
            .with_keep_alive(config.lease_ttl / 3, config.request_timeout)
            .with_keep_alive_while_idle(true);
        let mut client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(unavailable)?;
        let keys = Keys::new(&config.prefix);
        let epoch = take_epoch(&mut client, &keys).await?;
        let tag = take_tag(&mut client, &keys).await?;
        let ttl = i64::try_from(config.lease_ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let lease = client
            .lease_grant(ttl, None)
            .await
            .map_err(unavailable)?
            .id();
        let inner = Arc::new(Inner {
            client,
            keys,
            config,
            clock: Clock::unix(),
            epoch,
            next_generation: AtomicU32::new(1),
            lease: std::sync::atomic::AtomicI64::new(lease),
            tag,
            waiters: Waiters::default(),
            index: Mutex::new(Index::default()),
            runnable: Notify::new(),
            timers_moved: Arc::new(Notify::new()),
            tasks: Mutex::new(Vec::new()),
            count_seen: Mutex::new(None),
            tomb_lease: tokio::sync::Mutex::new(None),
            _spec: std::marker::PhantomData,
        });
        let store = Self { inner };
        let from = store.reload_index().await?;
        let tasks = vec![
            tokio::spawn(crate::watch::run(Arc::downgrade(&store.inner), from)),
            tokio::spawn(crate::sweep::keep_lease(Arc::downgrade(&store.inner))),
            tokio::spawn(crate::sweep::timers(Arc::downgrade(&store.inner))),
        ];
        if let Ok(mut t) = store.inner.tasks.lock() {
            t.extend(tasks);
        }
        // Jobs whose replica died while no replica watched: their claims are gone already.
        store.recover_lost_claims().await;
        Ok(store)
    }

    /// The cluster's UUID instance tag (every replica prints a job's id the same way).
    pub fn uuid_tag(&self) -> u64 {
        self.inner.tag
    }

    /// The etcd lease that holds this replica's claims now (for operators: `etcdctl lease
    /// timetolive`).
    pub fn lease_id(&self) -> i64 {
        self.inner.lease.load(Ordering::Relaxed)
    }

    /// This replica's id epoch.
    pub fn epoch(&self) -> u32 {
        self.inner.epoch
    }

    /// The clock the store's instants read on (microseconds since the Unix epoch).
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    pub(crate) fn client(&self) -> Client {
        self.inner.client.clone()
    }

    /// Put one `jobs/<id>` key-value into the local index (runnable queue and timers).
    pub(crate) fn index_kv(&self, kv: &KeyValue) {
        if let Some(id) = self.inner.keys.job_of(kv.key()) {
            self.index_value(
                id,
                Arc::from(kv.value()),
                kv.mod_revision(),
                kv.create_revision(),
            );
        }
    }

    /// Put job `id`'s value at these revisions into the local index (from the watch, a read,
    /// or this replica's own commit; an older revision than the index has changes nothing).
    pub(crate) fn index_value(
        &self,
        id: JobId,
        value: Arc<[u8]>,
        mod_revision: i64,
        create_revision: i64,
    ) {
        let Ok(stored) = Stored::<S, T>::decode(&value, mod_revision, create_revision) else {
            return;
        };
        let (runnable, timer) = {
            let Ok(mut index) = self.inner.index.lock() else {
                return;
            };
            index.put(id, &stored, value)
        };
        if runnable {
            self.inner.runnable.notify_waiters();
        }
        if timer {
            self.inner.timers_moved.notify_one();
        }
    }

    /// Take the next job id.
    fn next_id(&self) -> Result<JobId, StoreError> {
        let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
        if generation == u32::MAX {
            return Err(StoreError::Submit(SubmitError::TableFull));
        }
        let mut bytes = [0u8; JobId::BYTES];
        bytes[..4].copy_from_slice(&self.inner.epoch.to_be_bytes());
        bytes[4..8].copy_from_slice(&generation.to_be_bytes());
        Ok(JobId::from_bytes(bytes))
    }

    /// Submit a job: the core checks it (a one-job record), then one transaction puts the
    /// record and raises the cluster's job count, compared against the count it read (R-FULL:
    /// the capacity holds cluster-wide). Answers once etcd committed it.
    pub async fn submit(&self, job: NewJob<'_, S>) -> Result<JobId, StoreError> {
        let now = self.inner.clock.now();
        let record = JobRecord::<S, T>::create(job, self.inner.config.table, now)
            .map_err(|r| StoreError::Submit(r.error))?;
        let value = value::encode(&record, None)?;
        let id = self.next_id()?;
        let key = self.inner.keys.job(id);
        let count_key = self.inner.keys.count();
        let mut client = self.client();
        let mut failures = 0u32;
        // The count this replica last saw: a submit that finds it current commits in one
        // round trip; a stale one fails the compare and the same round trip reads the count.
        let cached = self.inner.count_seen.lock().ok().and_then(|c| *c);
        let (mut count, mut count_rev, mut fresh) = match cached {
            Some((c, r)) => (c, r, false),
            None => {
                let (c, r) = read_count(&mut client, &count_key).await?;
                (c, r, true)
            }
        };
        for _ in 0..CAS_TRIES {
            if count >= self.inner.config.capacity {
                if fresh {
                    return Err(StoreError::Submit(SubmitError::TableFull));
                }
                (count, count_rev) = read_count(&mut client, &count_key).await?;
                fresh = true;
                continue;
            }
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(count_key.as_str(), CompareOp::Equal, count_rev),
                    Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
                ])
                .and_then([
                    TxnOp::put(count_key.as_str(), (count + 1).to_string(), None),
                    TxnOp::put(key.as_str(), value.clone(), None),
                ])
                .or_else([
                    TxnOp::get(count_key.as_str(), None),
                    TxnOp::get(key.as_str(), None),
                ]);
            match client.txn(txn).await {
                Ok(resp) if resp.succeeded() => {
                    let rev = resp.header().map_or(0, |h| h.revision());
                    self.saw_count(count + 1, rev);
                    return Ok(id);
                }
                Ok(resp) => {
                    let mut gets = resp.op_responses().into_iter().filter_map(|op| match op {
                        etcd_client::TxnOpResponse::Get(g) => Some(g),
                        _ => None,
                    });
                    (count, count_rev) = gets.next().map_or((0, 0), |g| count_of(g.kvs()));
                    fresh = true;
                    self.saw_count(count, count_rev);
                    if gets.next().is_some_and(|g| !g.kvs().is_empty()) {
                        return Ok(id);
                    }
                }
                // The outcome is unknown (a leader change, a lost connection): the id is this
                // submit's alone, so whether the commit happened is whether the key exists.
                Err(e) => {
                    failures += 1;
                    if failures > RETRIES {
                        return Err(unavailable(e));
                    }
                    tokio::time::sleep(backoff(failures)).await;
                    if exists(&mut client, &key).await? {
                        return Ok(id);
                    }
                    (count, count_rev) = read_count(&mut client, &count_key).await?;
                    fresh = true;
                }
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent submits; retry".into(),
        ))
    }

    /// Remember the count at a revision (a newer one wins).
    pub(crate) fn saw_count(&self, count: u64, revision: i64) {
        if let Ok(mut seen) = self.inner.count_seen.lock() {
            if seen.is_none_or(|(_, r)| r <= revision) {
                *seen = Some((count, revision));
            }
        }
    }

    /// Job `id` as the local index has it (the watch's or this replica's latest value).
    fn cached(&self, id: JobId) -> Option<Stored<S, T>> {
        let (value, mod_revision, create_revision) = self.inner.index.lock().ok()?.value(id)?;
        Stored::decode(&value, mod_revision, create_revision).ok()
    }

    /// One job as etcd has it now (a linearizable read).
    pub async fn get(&self, id: JobId) -> Result<Snapshot<S, T>, StoreError> {
        let stored = self.read(id).await?;
        stored
            .snapshot(id, self.inner.clock)
            .ok_or(StoreError::Lookup(LookupError::Expired(None)))
    }

    /// Every job, oldest first.
    pub async fn list(&self) -> Result<Vec<Snapshot<S, T>>, StoreError> {
        let mut client = self.client();
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend);
        let resp = get(&mut client, &self.inner.keys.jobs(), Some(options)).await?;
        let mut out = Vec::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            let Some(id) = self.inner.keys.job_of(kv.key()) else {
                continue;
            };
            let stored =
                Stored::<S, T>::decode(kv.value(), kv.mod_revision(), kv.create_revision())?;
            if let Some(s) = stored.snapshot(id, self.inner.clock) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The cluster's current revision.
    pub async fn revision(&self) -> Result<Revision, StoreError> {
        let mut client = self.client();
        let resp = get(&mut client, &self.inner.keys.count(), None).await?;
        Ok(revision_of(resp.header().map_or(0, |h| h.revision())))
    }

    pub(crate) async fn read(&self, id: JobId) -> Result<Stored<S, T>, StoreError> {
        let mut client = self.client();
        let resp = get(&mut client, &self.inner.keys.job(id), None).await?;
        match resp.kvs().first() {
            Some(kv) => Stored::decode(kv.value(), kv.mod_revision(), kv.create_revision()),
            None => Err(self.missing(id).await),
        }
    }

    /// The lookup error of an id with no record (R-RETAIN): its tombstone while kept; an id
    /// this cluster issued is `Expired` after that, any other `NotFound`.
    pub(crate) async fn missing(&self, id: JobId) -> StoreError {
        let mut client = self.client();
        if let Ok(resp) = get(&mut client, &self.inner.keys.tomb(id), None).await {
            if let Some(t) = resp.kvs().first().and_then(|kv| {
                Stored::<S, T>::decode(kv.value(), kv.mod_revision(), kv.create_revision())
                    .ok()?
                    .record
                    .tombstone(id)
            }) {
                return StoreError::Lookup(LookupError::Expired(Some(t)));
            }
        }
        let issued = id.epoch() != 0 && id.index() == 0 && id.generation() != 0;
        StoreError::Lookup(if issued {
            LookupError::Expired(None)
        } else {
            LookupError::NotFound
        })
    }

    /// Apply `change` to job `id`'s record at `now` and commit it if the record did not move in
    /// between (compare its mod revision); on a conflict read again and re-apply. `extra`
    /// adds conditions and operations to the commit (a claim's lease, a claim to remove).
    /// Answers the change's result and the record as committed with its revision; a refused
    /// change commits nothing.
    pub(crate) async fn change<R>(
        &self,
        id: JobId,
        mut change: impl FnMut(&mut JobRecord<S, T>, jobstate::Instant) -> Result<R, JobError>,
        extra: impl Fn(&JobRecord<S, T>) -> (Vec<Compare>, Vec<TxnOp>),
    ) -> Result<(R, Stored<S, T>), (StoreError, Option<Stored<S, T>>)> {
        let key = self.inner.keys.job(id);
        let claim = self.inner.keys.claim(id);
        let mut client = self.client();
        // The value the watch (or this replica's last commit) left in the index saves a read
        // when it is current; a stale one fails the compare, and a refusal is only ever
        // answered from a fresh read.
        let mut cached = self.cached(id);
        for _ in 0..CAS_TRIES {
            let from_cache = cached.is_some();
            let mut stored = match cached.take() {
                Some(s) => s,
                None => self.read(id).await.map_err(|e| (e, None))?,
            };
            let before_state = stored.record.state();
            let before = value::encode(&stored.record, Some(stored.state_revision))
                .map_err(|e| (e, None))?;
            let now = self.inner.clock.now();
            let result = match change(&mut stored.record, now) {
                Ok(r) => r,
                Err(_) if from_cache => continue,
                Err(e) => {
                    // A refusal can still have changed the record (a deadline that had passed
                    // fails the job first, R-DEADLINE): commit that, then refuse.
                    let after = value::state_revision_after(
                        before_state,
                        stored.state_revision,
                        &stored.record,
                    );
                    let value = value::encode(&stored.record, after).map_err(|e| (e, None))?;
                    if value != before {
                        let mut ops = vec![TxnOp::put(key.as_str(), value, None)];
                        if left_holding(before_state, &stored.record) {
                            ops.push(TxnOp::delete(claim.as_str(), None));
                        }
                        let txn = Txn::new()
                            .when([Compare::mod_revision(
                                key.as_str(),
                                CompareOp::Equal,
                                stored.mod_revision,
                            )])
                            .and_then(ops);
                        let resp = client.txn(txn).await.map_err(|e| (unavailable(e), None))?;
                        if !resp.succeeded() {
                            continue;
                        }
                        let rev = resp.header().map_or(0, |h| h.revision());
                        stored.mod_revision = rev;
                        if after.is_none() {
                            stored.state_revision = rev;
                        }
                    }
                    return Err((StoreError::from(e), Some(stored)));
                }
            };
            let after =
                value::state_revision_after(before_state, stored.state_revision, &stored.record);
            let value = value::encode(&stored.record, after).map_err(|e| (e, None))?;
            let (mut compares, mut ops) = extra(&stored.record);
            if value == before && ops.is_empty() {
                // Nothing to commit: answer only from a fresh read.
                if from_cache {
                    continue;
                }
                return Ok((result, stored));
            }
            compares.push(Compare::mod_revision(
                key.as_str(),
                CompareOp::Equal,
                stored.mod_revision,
            ));
            let written: Option<Arc<[u8]>> = (value != before).then(|| Arc::from(value.as_slice()));
            if value != before {
                ops.push(TxnOp::put(key.as_str(), value, None));
            }
            // Whatever takes a job out of Running/Paused (its worker, a deadline, a lost
            // lease, a cancel at a check-in) ends its claim in the same commit.
            if left_holding(before_state, &stored.record) {
                ops.push(TxnOp::delete(claim.as_str(), None));
            }
            let resp = client
                .txn(Txn::new().when(compares).and_then(ops))
                .await
                .map_err(|e| (unavailable(e), None))?;
            if resp.succeeded() {
                let rev = resp.header().map_or(0, |h| h.revision());
                stored.mod_revision = rev;
                if after.is_none() {
                    stored.state_revision = rev;
                }
                if let Some(v) = written {
                    self.index_value(id, v, rev, stored.create_revision);
                }
                return Ok((result, stored));
            }
            // The record moved, or an extra condition failed: read again. A failed extra
            // condition (a lost claim) shows in the re-read record or the caller's check.
            if !self.extra_holds(&extra, id).await {
                return Err((StoreError::Job(JobError::NotRunning), None));
            }
        }
        Err((
            StoreError::Unavailable("the job changed too often to commit; retry".into()),
            None,
        ))
    }

    /// Whether the extra conditions of a change still hold (checked after a failed commit).
    async fn extra_holds(
        &self,
        extra: &impl Fn(&JobRecord<S, T>) -> (Vec<Compare>, Vec<TxnOp>),
        id: JobId,
    ) -> bool {
        let Ok(stored) = self.read(id).await else {
            return true;
        };
        let (compares, _) = extra(&stored.record);
        if compares.is_empty() {
            return true;
        }
        let mut client = self.client();
        client
            .txn(Txn::new().when(compares))
            .await
            .map(|r| r.succeeded())
            .unwrap_or(true)
    }

    /// A client's request on job `id` (R-CONTROL), committed under a compare-and-swap.
    pub async fn request(&self, id: JobId, request: Request) -> Result<Requested, Refusal> {
        match self
            .change(id, |r, now| r.request(request, now), |_| (vec![], vec![]))
            .await
        {
            Ok(((), stored)) => Ok(Requested {
                state: stored.record.state().unwrap_or(jobstate::State::Queued),
                state_revision: revision_of(stored.state_revision),
            }),
            Err((error, stored)) => Err(Refusal {
                error,
                state: stored.and_then(|s| s.record.state()),
            }),
        }
    }

    /// Remove job `id`'s record (its retention passed), keep its tombstone (`tomb`: the record
    /// holding only the tombstone) and lower the job count, in one transaction compared
    /// against the record and the count.
    pub(crate) async fn remove(
        &self,
        id: JobId,
        mod_revision: i64,
        tomb: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let key = self.inner.keys.job(id);
        let tomb_key = self.inner.keys.tomb(id);
        let tomb_options = PutOptions::new().with_lease(self.tomb_lease().await?);
        let count_key = self.inner.keys.count();
        let mut client = self.client();
        for _ in 0..CAS_TRIES {
            let (count, count_rev) = read_count(&mut client, &count_key).await?;
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(count_key.as_str(), CompareOp::Equal, count_rev),
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, mod_revision),
                ])
                .and_then([
                    TxnOp::put(
                        count_key.as_str(),
                        count.saturating_sub(1).to_string(),
                        None,
                    ),
                    TxnOp::delete(key.as_str(), None),
                    TxnOp::put(tomb_key.as_str(), tomb.clone(), Some(tomb_options.clone())),
                ]);
            let resp = match client.txn(txn).await {
                Ok(r) => r,
                Err(e) => {
                    // The tombstone lease may be gone (revoked, etcd restored): take a new
                    // one next time.
                    *self.inner.tomb_lease.lock().await = None;
                    return Err(unavailable(e));
                }
            };
            if resp.succeeded() {
                self.saw_count(
                    count.saturating_sub(1),
                    resp.header().map_or(0, |h| h.revision()),
                );
                return Ok(true);
            }
            let still = client
                .get(key.as_str(), None)
                .await
                .map_err(unavailable)?
                .kvs()
                .first()
                .map(|kv| kv.mod_revision());
            if still != Some(mod_revision) {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// The lease to put a tombstone under now.
    async fn tomb_lease(&self) -> Result<i64, StoreError> {
        let ttl = self
            .inner
            .config
            .tombstone_ttl
            .max(StdDuration::from_secs(8));
        let mut lease = self.inner.tomb_lease.lock().await;
        if let Some((id, at)) = *lease {
            if at.elapsed() < ttl / 8 {
                return Ok(id);
            }
        }
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let id = self
            .client()
            .lease_grant(secs, None)
            .await
            .map_err(unavailable)?
            .id();
        *lease = Some((id, std::time::Instant::now()));
        Ok(id)
    }

    /// How long until a submit finds room: zero below the capacity, else the time to the
    /// earliest retention end this replica knows of.
    pub async fn free_in(&self) -> Option<StdDuration> {
        let mut client = self.client();
        let (count, _) = read_count(&mut client, &self.inner.keys.count())
            .await
            .ok()?;
        if count < self.inner.config.capacity {
            return Some(StdDuration::ZERO);
        }
        let now = self.inner.clock.now();
        let at = self.inner.index.lock().ok()?.earliest_removal()?;
        Some(StdDuration::from_micros(
            at.as_micros().saturating_sub(now.as_micros()),
        ))
    }

    /// Jobs left running or paused by a replica whose claim is gone (its lease expired):
    /// each gets the core's `worker_lost` (R-CLUSTER) — queued again when restartable (or
    /// retried by its policy), `Failed(TimedOut)` with the lease as the detail otherwise.
    pub(crate) async fn recover_lost_claims(&self) {
        let ids = match self.inner.index.lock() {
            Ok(index) => index.active(),
            Err(_) => return,
        };
        for id in ids {
            self.release_if_unclaimed(id).await;
        }
    }

    /// Release job `id` if it is running or paused and nobody holds its claim.
    pub(crate) async fn release_if_unclaimed(&self, id: JobId) {
        let claim = self.inner.keys.claim(id);
        let _ = self
            .change(
                id,
                |r, now| r.worker_lost(now),
                |_| {
                    (
                        vec![Compare::create_revision(
                            claim.as_str(),
                            CompareOp::Equal,
                            0,
                        )],
                        vec![],
                    )
                },
            )
            .await;
    }

    /// Jobs per id this replica's index holds.
    pub fn indexed(&self) -> usize {
        self.inner.index.lock().map_or(0, |i| i.len())
    }
}

/// Whether a change took the job out of Running/Paused (its claim must go with it).
fn left_holding<S, const T: usize>(
    before: Option<jobstate::State>,
    after: &JobRecord<S, T>,
) -> bool {
    let holding = |s: Option<jobstate::State>| {
        matches!(s, Some(jobstate::State::Running | jobstate::State::Paused))
    };
    holding(before) && !holding(after.state())
}

/// How many times a read (or a submit of unknown outcome) is tried again after an etcd error
/// (a leader change, a member down) before it answers `Unavailable`.
const RETRIES: u32 = 6;

/// The pause before try `n` + 1: 50 ms doubling, 1.6 s at most.
fn backoff(n: u32) -> StdDuration {
    StdDuration::from_millis(50u64 << n.min(5))
}

/// A read, tried again on an etcd error (reads change nothing).
pub(crate) async fn get(
    client: &mut Client,
    key: &str,
    options: Option<GetOptions>,
) -> Result<etcd_client::GetResponse, StoreError> {
    let mut failures = 0;
    loop {
        match client.get(key, options.clone()).await {
            Ok(r) => return Ok(r),
            Err(e) => {
                failures += 1;
                if failures > RETRIES {
                    return Err(unavailable(e));
                }
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

async fn exists(client: &mut Client, key: &str) -> Result<bool, StoreError> {
    Ok(!get(client, key, None).await?.kvs().is_empty())
}

/// The job count and its key's mod revision (0, 0 before the first submit).
async fn read_count(client: &mut Client, key: &str) -> Result<(u64, i64), StoreError> {
    Ok(count_of(get(client, key, None).await?.kvs()))
}

/// The job count and its key's mod revision from a read of the `count` key.
fn count_of(kvs: &[KeyValue]) -> (u64, i64) {
    match kvs.first() {
        Some(kv) => (
            std::str::from_utf8(kv.value())
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            kv.mod_revision(),
        ),
        None => (0, 0),
    }
}

/// Take the next id epoch: a compare-and-swap increment of the `epoch` key, so every replica
/// start has its own (and ids never repeat across restarts, R-ID).
async fn take_epoch(client: &mut Client, keys: &Keys) -> Result<u32, StoreError> {
    let key = keys.epoch();
    for _ in 0..CAS_TRIES {
        let resp = client.get(key.as_str(), None).await.map_err(unavailable)?;
        let (last, rev) = match resp.kvs().first() {
            Some(kv) => (
                std::str::from_utf8(kv.value())
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .unwrap_or(0),
                kv.mod_revision(),
            ),
            None => (0, 0),
        };
        let next = last
            .checked_add(1)
            .ok_or_else(|| StoreError::Unavailable("the id epochs are used up".into()))?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, rev)])
            .and_then([TxnOp::put(key.as_str(), next.to_string(), None)]);
        if client.txn(txn).await.map_err(unavailable)?.succeeded() {
            return Ok(next);
        }
    }
    Err(StoreError::Unavailable("could not take an id epoch".into()))
}

/// The cluster's UUID tag: created by the first replica, read by the others.
async fn take_tag(client: &mut Client, keys: &Keys) -> Result<u64, StoreError> {
    let key = keys.tag();
    let fresh = jobstate_std_tag();
    let txn = Txn::new()
        .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key.as_str(), fresh.to_string(), None)])
        .or_else([TxnOp::get(key.as_str(), None)]);
    let resp = client.txn(txn).await.map_err(unavailable)?;
    if resp.succeeded() {
        return Ok(fresh);
    }
    for op in resp.op_responses() {
        if let etcd_client::TxnOpResponse::Get(g) = op {
            if let Some(tag) = g
                .kvs()
                .first()
                .and_then(|kv| std::str::from_utf8(kv.value()).ok())
                .and_then(|s| s.parse().ok())
            {
                return Ok(tag);
            }
        }
    }
    Err(StoreError::Unavailable(
        "the cluster's UUID tag is unreadable".into(),
    ))
}

/// A random 64-bit tag (the std `RandomState` keys are random per process).
fn jobstate_std_tag() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
