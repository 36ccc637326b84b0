//! One etcd watch per replica, from the revision its index was read at: it keeps the local
//! index (runnable queue, timers, running jobs) and wakes only the waiters of the job a
//! change touched (R-LONGPOLL). A change committed through any replica arrives here.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration as StdDuration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use jobstate::{Condition, Instant, JobId, LookupError, Priority, State, Waited};
use jobstate_std::store::StoreError;
use jobstate_std::Snapshot;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use crate::store::{EtcdStore, Inner};
use crate::value::Stored;

/// The newest thing the watch saw of one job.
#[derive(Clone, Debug)]
pub(crate) enum Seen {
    /// A new value.
    Put {
        value: Arc<[u8]>,
        mod_revision: i64,
        create_revision: i64,
    },
    /// The record was removed (retention).
    Deleted { mod_revision: i64 },
    /// The watch restarted after a compaction: read the job again.
    Resync,
}

/// What the waiters of one job share.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    notify: Notify,
    latest: Mutex<Option<Seen>>,
}

/// Waiters by job: a slot lives while one of its waits does.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    map: Mutex<HashMap<JobId, Weak<Slot>>>,
}

impl Waiters {
    fn register(&self, id: JobId) -> Arc<Slot> {
        let Ok(mut map) = self.map.lock() else {
            return Arc::new(Slot::default());
        };
        if let Some(slot) = map.get(&id).and_then(Weak::upgrade) {
            return slot;
        }
        let slot = Arc::new(Slot::default());
        map.insert(id, Arc::downgrade(&slot));
        slot
    }

    /// Drop job `id`'s entry if no wait holds its slot any more.
    fn release(&self, id: JobId, slot: Arc<Slot>) {
        if let Ok(mut map) = self.map.lock() {
            drop(slot);
            // Under the map lock no new wait can take the slot: if no wait holds it now (a
            // delivery may hold it a moment; its entry goes with the next release or delivery),
            // the entry goes.
            if map.get(&id).is_some_and(|w| w.strong_count() == 0) {
                map.remove(&id);
            }
        }
    }

    /// Tell job `id`'s waiters (if any) what the watch saw.
    pub(crate) fn deliver(&self, id: JobId, seen: Seen) {
        let slot = match self.map.lock() {
            Ok(mut map) => {
                let slot = map.get(&id).and_then(Weak::upgrade);
                if slot.is_none() {
                    map.remove(&id);
                }
                slot
            }
            Err(_) => None,
        };
        if let Some(slot) = slot {
            if let Ok(mut latest) = slot.latest.lock() {
                *latest = Some(seen);
            }
            slot.notify.notify_waiters();
        }
    }

    /// Every waiter reads its job again.
    fn resync(&self) {
        let slots: Vec<Arc<Slot>> = match self.map.lock() {
            Ok(map) => map.values().filter_map(Weak::upgrade).collect(),
            Err(_) => return,
        };
        for slot in slots {
            if let Ok(mut latest) = slot.latest.lock() {
                *latest = Some(Seen::Resync);
            }
            slot.notify.notify_waiters();
        }
    }

    /// Jobs with waiters now.
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .map_or(0, |m| m.values().filter(|w| w.strong_count() > 0).count())
    }
}

/// A wait's registration: released when the wait ends or is dropped (a long-poll whose
/// client went away), so no entry outlives its waits.
struct Registered<'a> {
    waiters: &'a Waiters,
    id: JobId,
    slot: Option<Arc<Slot>>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.waiters.release(self.id, slot);
        }
    }
}

/// One job in the local index.
#[derive(Clone, Debug)]
struct Entry {
    value: Arc<[u8]>,
    create_revision: i64,
    mod_revision: i64,
    runnable: Option<(Reverse<Priority>, i64)>,
    timer: Option<Instant>,
    active: bool,
    ended: bool,
}

/// The replica's index of the jobs, kept by the watch: which are runnable (by priority, then
/// submission), which have a timer due when, which are running or paused.
#[derive(Debug, Default)]
pub(crate) struct Index {
    jobs: HashMap<JobId, Entry>,
    runnable: BTreeSet<(Reverse<Priority>, i64, JobId)>,
    timers: BTreeSet<(Instant, JobId)>,
    removals: BTreeSet<(Instant, JobId)>,
}

impl Index {
    /// Index a job's record; answers whether it became runnable and whether its timer moved.
    pub(crate) fn put<S, const T: usize>(
        &mut self,
        id: JobId,
        stored: &Stored<S, T>,
        value: Arc<[u8]>,
    ) -> (bool, bool) {
        if let Some(e) = self.jobs.get(&id) {
            if e.mod_revision > stored.mod_revision {
                return (false, false);
            }
        }
        let old = self.take(id);
        let r = &stored.record;
        let state = r.state();
        let entry = Entry {
            value,
            create_revision: stored.create_revision,
            mod_revision: stored.mod_revision,
            runnable: r.is_runnable().then(|| {
                (
                    Reverse(r.job().map_or(Priority::default(), |j| j.priority())),
                    stored.create_revision,
                )
            }),
            timer: r.next_timer(),
            active: matches!(state, Some(State::Running | State::Paused)),
            ended: matches!(state, Some(State::Succeeded | State::Failed)),
        };
        if let Some((p, c)) = entry.runnable {
            self.runnable.insert((p, c, id));
        }
        if let Some(t) = entry.timer {
            self.timers.insert((t, id));
            if entry.ended {
                self.removals.insert((t, id));
            }
        }
        let became_runnable =
            entry.runnable.is_some() && old.as_ref().is_none_or(|o| o.runnable.is_none());
        let timer_moved = entry.timer != old.and_then(|o| o.timer);
        self.jobs.insert(id, entry);
        (became_runnable, timer_moved)
    }

    fn take(&mut self, id: JobId) -> Option<Entry> {
        let e = self.jobs.remove(&id)?;
        if let Some((p, c)) = e.runnable {
            self.runnable.remove(&(p, c, id));
        }
        if let Some(t) = e.timer {
            self.timers.remove(&(t, id));
            self.removals.remove(&(t, id));
        }
        Some(e)
    }

    /// Job `id`'s latest value with its mod and create revisions.
    pub(crate) fn value(&self, id: JobId) -> Option<(Arc<[u8]>, i64, i64)> {
        self.jobs
            .get(&id)
            .map(|e| (e.value.clone(), e.mod_revision, e.create_revision))
    }

    /// Forget job `id` (its record was removed).
    pub(crate) fn remove(&mut self, id: JobId) {
        self.take(id);
    }

    /// Up to `n` runnable jobs, in start order.
    pub(crate) fn runnable(&self, n: usize) -> Vec<JobId> {
        self.runnable.iter().take(n).map(|&(_, _, id)| id).collect()
    }

    /// Jobs whose timer is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> Vec<JobId> {
        self.timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|&(_, id)| id)
            .collect()
    }

    /// The earliest timer.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// The earliest end of an ended job's retention.
    pub(crate) fn earliest_removal(&self) -> Option<Instant> {
        self.removals.first().map(|&(t, _)| t)
    }

    /// Running and paused jobs.
    pub(crate) fn active(&self) -> Vec<JobId> {
        self.jobs
            .iter()
            .filter(|(_, e)| e.active)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Jobs indexed.
    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }

    fn clear(&mut self) {
        *self = Index::default();
    }
}

/// The watch loop: from revision `from` + 1, for as long as the store lives. A broken stream
/// is opened again from the last revision seen; a compacted start revision re-reads the index
/// and has every waiter read its job again.
pub(crate) async fn run<S, const T: usize>(inner: Weak<Inner<S, T>>, mut from: i64)
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    loop {
        let Some(store) = inner.upgrade().map(|inner| EtcdStore { inner }) else {
            return;
        };
        let mut client = store.client();
        let prefix = store.inner.keys.prefix().to_owned();
        drop(store);
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from.saturating_add(1));
        let mut stream = match client.watch(prefix, Some(options)).await {
            Ok(s) => s,
            Err(_) => {
                tokio::time::sleep(StdDuration::from_millis(200)).await;
                continue;
            }
        };
        while let Ok(Some(resp)) = stream.message().await {
            let Some(store) = inner.upgrade().map(|inner| EtcdStore { inner }) else {
                return;
            };
            if resp.compact_revision() > 0 || resp.canceled() {
                // Fell behind a compaction: read everything again from now.
                if let Ok(at) = store.reload_index().await {
                    from = at;
                }
                store.inner.waiters.resync();
                // Claim deletes inside the compacted gap were never seen: look at every
                // running job again.
                let again = store.clone();
                tokio::spawn(async move { again.recover_lost_claims().await });
                break;
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                from = from.max(kv.mod_revision());
                let keys = &store.inner.keys;
                match ev.event_type() {
                    EventType::Put => {
                        if let Some(id) = keys.job_of(kv.key()) {
                            store.index_kv(kv);
                            store.inner.waiters.deliver(
                                id,
                                Seen::Put {
                                    value: Arc::from(kv.value()),
                                    mod_revision: kv.mod_revision(),
                                    create_revision: kv.create_revision(),
                                },
                            );
                        }
                    }
                    EventType::Delete => {
                        if let Some(id) = keys.job_of(kv.key()) {
                            if let Ok(mut index) = store.inner.index.lock() {
                                index.remove(id);
                            }
                            store.inner.waiters.deliver(
                                id,
                                Seen::Deleted {
                                    mod_revision: kv.mod_revision(),
                                },
                            );
                        } else if let Some(id) = keys.claim_of(kv.key()) {
                            // A claim ended: by its worker (the job ended with it, nothing to
                            // do) or by its replica's lease running out (release the job).
                            let store = store.clone();
                            tokio::spawn(async move { store.release_if_unclaimed(id).await });
                        }
                    }
                }
            }
            // Only events move `from`: a response's header revision (the store's, in the
            // response that creates the watch or in a catch-up batch) can be ahead of events
            // not delivered yet, and a reconnect from it would skip them.
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

impl<S, const T: usize> EtcdStore<S, T>
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Read every job record again into a fresh index; answers the revision of the read.
    pub(crate) async fn reload_index(&self) -> Result<i64, StoreError> {
        let mut client = self.client();
        let resp = crate::store::get(
            &mut client,
            &self.inner.keys.jobs(),
            Some(GetOptions::new().with_prefix()),
        )
        .await?;
        if let Ok(mut index) = self.inner.index.lock() {
            index.clear();
        }
        for kv in resp.kvs() {
            self.index_kv(kv);
        }
        self.inner.runnable.notify_waiters();
        self.inner.timers_moved.notify_one();
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Wait up to `timeout` for `condition` on job `id` (R-WAIT, R-LONGPOLL): reads the job
    /// once, then lives on what the watch delivers for that job alone — a change committed
    /// through any replica wakes it, and no other job's change does.
    pub async fn wait(
        &self,
        id: JobId,
        condition: Condition,
        timeout: StdDuration,
    ) -> Result<Waited<Snapshot<S, T>>, StoreError> {
        let timeout = timeout.min(jobstate_std::DEFAULT_MAX_WAIT);
        let deadline = tokio::time::Instant::now() + timeout;
        let guard = Registered {
            waiters: &self.inner.waiters,
            id,
            slot: Some(self.inner.waiters.register(id)),
        };
        let slot = guard.slot.clone().unwrap_or_default();
        let result = self.wait_on(&slot, id, condition, deadline).await;
        drop(slot);
        drop(guard);
        result
    }

    async fn wait_on(
        &self,
        slot: &Slot,
        id: JobId,
        condition: Condition,
        deadline: tokio::time::Instant,
    ) -> Result<Waited<Snapshot<S, T>>, StoreError> {
        let mut current: Option<Stored<S, T>> = None;
        loop {
            let notified = slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let seen = slot.latest.lock().ok().and_then(|l| l.clone());
            let known = current.as_ref().map_or(0, |c| c.mod_revision);
            match seen {
                Some(Seen::Put {
                    value,
                    mod_revision,
                    create_revision,
                }) if mod_revision > known => {
                    current = Some(Stored::decode(&value, mod_revision, create_revision)?);
                }
                Some(Seen::Deleted { mod_revision }) if mod_revision > known => {
                    return Err(self.missing(id).await);
                }
                Some(Seen::Resync) => current = Some(self.read(id).await?),
                _ => {}
            }
            let stored = match current.take() {
                Some(s) => s,
                None => self.read(id).await?,
            };
            let job = stored
                .snapshot(id, self.inner.clock)
                .ok_or(StoreError::Lookup(LookupError::Expired(None)))?;
            if condition.holds(&*job) {
                return Ok(Waited {
                    job,
                    timed_out: false,
                });
            }
            current = Some(stored);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Ok(Waited { job, timed_out: true });
                }
            }
        }
    }

    /// Jobs with a wait in flight on this replica.
    pub fn waited_jobs(&self) -> usize {
        self.inner.waiters.len()
    }
}

/// The jobs that changed after a revision (R-JOURNAL), as [`EtcdStore::changes_since`]
/// answers them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    /// The revision of the newest change reported (follow on from it), or the revision asked
    /// from when nothing changed in time.
    pub revision: jobstate::Revision,
    /// The jobs changed or removed, each once, in the order of their first change.
    pub jobs: Vec<JobId>,
}

impl<S, const T: usize> EtcdStore<S, T>
where
    S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// The jobs changed or removed after revision `after`, waiting up to `timeout` for the
    /// first change when there is none yet — the table-wide journal read over etcd's history.
    /// A revision etcd has compacted away answers [`StoreError::Compacted`] with the oldest
    /// revision still kept: read the jobs again ([`EtcdStore::list`]), then follow on from
    /// the revision of that read.
    pub async fn changes_since(
        &self,
        after: jobstate::Revision,
        timeout: StdDuration,
    ) -> Result<Changes, StoreError> {
        let start = i64::try_from(after.get())
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let mut client = self.client();
        let options = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut stream = client
            .watch(self.inner.keys.jobs(), Some(options))
            .await
            .map_err(crate::store::unavailable)?;
        let deadline = tokio::time::Instant::now() + timeout.min(jobstate_std::DEFAULT_MAX_WAIT);
        loop {
            let message = match tokio::time::timeout_at(deadline, stream.message()).await {
                // Nothing arrived: follow on from `after` itself (a change just before the
                // timeout may still be on its way; the store's revision would skip it).
                Err(_) => {
                    return Ok(Changes {
                        revision: after,
                        jobs: Vec::new(),
                    })
                }
                Ok(m) => m.map_err(crate::store::unavailable)?,
            };
            let Some(resp) = message else {
                return Err(StoreError::Unavailable("the watch ended".into()));
            };
            if resp.compact_revision() > 0 {
                return Err(StoreError::Compacted(jobstate::Compacted {
                    oldest: jobstate::Revision::new(
                        u64::try_from(resp.compact_revision()).unwrap_or(0),
                    ),
                }));
            }
            if resp.canceled() {
                return Err(StoreError::Unavailable(
                    resp.cancel_reason().to_owned().into(),
                ));
            }
            let mut jobs: Vec<JobId> = Vec::new();
            let mut revision = 0;
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                revision = revision.max(kv.mod_revision());
                if let Some(id) = self.inner.keys.job_of(kv.key()) {
                    if !jobs.contains(&id) {
                        jobs.push(id);
                    }
                }
            }
            if !jobs.is_empty() {
                return Ok(Changes {
                    revision: jobstate::Revision::new(u64::try_from(revision).unwrap_or(0)),
                    jobs,
                });
            }
        }
    }
}
