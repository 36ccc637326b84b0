//! The waiter registry: who waits for what, and whom a change wakes (R-LONGPOLL).
//!
//! Plain data, kept under the engine's lock next to the table, so "check the condition, then
//! register" and "change the table, then notify" can never interleave: no wake-up is lost.
//!
//! * A **job waiter** waits for one job and one [`Condition`]; it sits in the list of that
//!   job's table slot. When the journal says the job changed, the notifier evaluates the
//!   waiter's condition with the core's [`Condition::holds`] (through `JobTable::check`) and
//!   wakes it only if it now holds — or if the job is gone. The answer is stored in the entry,
//!   so the waiter gets exactly the snapshot of the moment its condition first held, even if
//!   the job is removed before the waiter runs again.
//! * A **table watcher** waits for the table revision to pass a value; any change wakes it.
//! * Waking happens under the lock: once a waiter has deregistered (its wait returned, its
//!   future was dropped), nothing can wake it any more.

// The timer-heap half is unused in the loom build (no timer thread there).
#![cfg_attr(loom, allow(dead_code))]

use std::task::Waker;

use jobstate::{Condition, JobId, LookupError, Revision};
use slab::Slab;

use crate::sync::{Arc, Condvar};

/// How to wake a waiter.
pub(crate) enum Wake {
    /// A blocked thread, parked on its own condition variable (paired with the engine lock).
    Thread(Arc<Condvar>),
    /// An async task.
    Task(Waker),
}

impl Wake {
    fn wake(&self) {
        match self {
            Wake::Thread(cv) => cv.notify_one(),
            Wake::Task(w) => w.wake_by_ref(),
        }
    }
}

/// What a waiter waits for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Watch {
    /// This job, until this condition holds (or the job is gone).
    Job(JobId, Condition),
    /// Any change after this table revision.
    Table(Revision),
}

/// The answer a waiter gets.
#[derive(Debug)]
pub(crate) enum Ready<P> {
    /// The job as it was when the condition held, or why it is gone.
    Job(Result<P, LookupError>),
    /// The table revision that passed the watched one.
    Table(Revision),
}

struct Entry<P> {
    watch: Watch,
    wake: Wake,
    ready: Option<Ready<P>>,
    /// Unique for the registry's life (slab keys are reused): names this wait in the timer
    /// heap.
    token: u64,
    /// The engine's timer passed this wait's deadline.
    expired: bool,
}

/// All registered waiters. `P` is the job snapshot handed to a woken waiter.
pub(crate) struct Registry<P> {
    entries: Slab<Entry<P>>,
    /// Keys of job waiters not yet woken, by the job's table slot.
    by_slot: Vec<Vec<usize>>,
    /// Keys of table watchers not yet woken.
    table: Vec<usize>,
    next_token: u64,
}

fn forget(list: &mut Vec<usize>, key: usize) {
    if let Some(pos) = list.iter().position(|k| *k == key) {
        list.swap_remove(pos);
    }
}

impl<P> Registry<P> {
    /// An empty registry for a table of `slots` slots.
    pub(crate) fn new(slots: usize) -> Self {
        let mut by_slot = Vec::new();
        by_slot.resize_with(slots, Vec::new);
        Self {
            entries: Slab::new(),
            by_slot,
            table: Vec::new(),
            next_token: 0,
        }
    }

    /// Registered waiters, woken or not.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nobody waits for anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Add a waiter; the key identifies it until [`Registry::deregister`].
    pub(crate) fn register(&mut self, watch: Watch, wake: Wake) -> usize {
        self.next_token = self.next_token.wrapping_add(1);
        let key = self.entries.insert(Entry {
            watch,
            wake,
            ready: None,
            token: self.next_token,
            expired: false,
        });
        match watch {
            Watch::Job(id, _) => {
                let slot = usize::from(id.index());
                if self.by_slot.len() <= slot {
                    self.by_slot.resize_with(slot.saturating_add(1), Vec::new);
                }
                if let Some(list) = self.by_slot.get_mut(slot) {
                    list.push(key);
                }
            }
            Watch::Table(_) => self.table.push(key),
        }
        key
    }

    /// Replace an async waiter's waker if the task moved.
    pub(crate) fn set_waker(&mut self, key: usize, waker: &Waker) {
        if let Some(Entry {
            wake: Wake::Task(w),
            ..
        }) = self.entries.get_mut(key)
        {
            if !w.will_wake(waker) {
                w.clone_from(waker);
            }
        }
    }

    /// The waiter's unique token (for the timer heap).
    pub(crate) fn token(&self, key: usize) -> Option<u64> {
        self.entries.get(key).map(|e| e.token)
    }

    /// Whether `key` still names the wait `token` named.
    pub(crate) fn is_live(&self, key: usize, token: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.token == token)
    }

    /// The wait's deadline passed: mark it and wake it, unless it already has its answer or
    /// is gone. Returns whether the wait was still registered.
    pub(crate) fn expire(&mut self, key: usize, token: u64) -> bool {
        match self.entries.get_mut(key) {
            Some(e) if e.token == token => {
                if e.ready.is_none() && !e.expired {
                    e.expired = true;
                    e.wake.wake();
                }
                true
            }
            _ => false,
        }
    }

    /// Whether the engine's timer passed this wait's deadline.
    pub(crate) fn is_expired(&self, key: usize) -> bool {
        self.entries.get(key).is_some_and(|e| e.expired)
    }

    /// Whether the waiter has been woken with an answer.
    pub(crate) fn is_ready(&self, key: usize) -> bool {
        self.entries.get(key).is_some_and(|e| e.ready.is_some())
    }

    /// Remove a waiter; returns its answer if it had been woken with one. After this, no
    /// notification reaches it.
    pub(crate) fn deregister(&mut self, key: usize) -> Option<Ready<P>> {
        let entry = self.entries.try_remove(key)?;
        if entry.ready.is_none() {
            match entry.watch {
                Watch::Job(id, _) => {
                    if let Some(list) = self.by_slot.get_mut(usize::from(id.index())) {
                        forget(list, key);
                    }
                }
                Watch::Table(_) => forget(&mut self.table, key),
            }
        }
        entry.ready
    }

    /// `job` changed: wake each of its waiters for which `decide(condition)` gives an answer
    /// (the condition holds now, or the job is gone). Returns how many were woken.
    pub(crate) fn notify_job(
        &mut self,
        job: JobId,
        mut decide: impl FnMut(Condition) -> Option<Result<P, LookupError>>,
    ) -> usize {
        let Some(list) = self.by_slot.get_mut(usize::from(job.index())) else {
            return 0;
        };
        let mut woken = 0usize;
        let mut k = 0;
        while let Some(&key) = list.get(k) {
            let Some(entry) = self.entries.get_mut(key) else {
                list.swap_remove(k);
                continue;
            };
            let answer = match entry.watch {
                Watch::Job(id, condition) if id == job => decide(condition),
                _ => None,
            };
            match answer {
                Some(answer) => {
                    entry.ready = Some(Ready::Job(answer));
                    entry.wake.wake();
                    woken = woken.saturating_add(1);
                    list.swap_remove(k);
                }
                None => k = k.saturating_add(1),
            }
        }
        woken
    }

    /// The table moved to `revision`: wake every table watcher that watched an older one.
    pub(crate) fn notify_table(&mut self, revision: Revision) -> usize {
        let mut woken = 0usize;
        let mut k = 0;
        while let Some(&key) = self.table.get(k) {
            let fire = match self.entries.get_mut(key) {
                Some(entry) => match entry.watch {
                    Watch::Table(after) if revision > after => {
                        entry.ready = Some(Ready::Table(revision));
                        entry.wake.wake();
                        true
                    }
                    _ => false,
                },
                None => true,
            };
            if fire {
                woken = woken.saturating_add(1);
                self.table.swap_remove(k);
            } else {
                k = k.saturating_add(1);
            }
        }
        woken
    }

    /// The jobs of every waiting job waiter (for a re-check after the journal was compacted).
    pub(crate) fn watched_jobs(&self) -> Vec<JobId> {
        let mut jobs: Vec<JobId> = self
            .by_slot
            .iter()
            .flatten()
            .filter_map(|key| match self.entries.get(*key)?.watch {
                Watch::Job(id, _) => Some(id),
                Watch::Table(_) => None,
            })
            .collect();
        jobs.sort_unstable();
        jobs.dedup();
        jobs
    }

    /// Wake the waiters of `job` that have no answer yet, without giving them one (they
    /// re-check and wait again). For the worker pool's shutdown.
    pub(crate) fn poke_job(&mut self, job: JobId) -> usize {
        let Some(list) = self.by_slot.get(usize::from(job.index())) else {
            return 0;
        };
        let mut woken = 0usize;
        for key in list {
            if let Some(entry) = self.entries.get(*key) {
                if matches!(entry.watch, Watch::Job(id, _) if id == job) {
                    entry.wake.wake();
                    woken = woken.saturating_add(1);
                }
            }
        }
        woken
    }

    /// Wake every waiter that has no answer yet, without giving it one (it re-checks and waits
    /// again). The loom model's clock.
    #[cfg(loom)]
    pub(crate) fn poke_all(&mut self) -> usize {
        let mut woken = 0usize;
        for (_, entry) in self.entries.iter() {
            if entry.ready.is_none() {
                entry.wake.wake();
                woken = woken.saturating_add(1);
            }
        }
        woken
    }
}
