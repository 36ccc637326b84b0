//! A job table shared between firmware tasks, with async long-poll waits (feature `embassy`).
//!
//! [`SharedTable`] puts a [`JobTable`] behind an `embassy-sync` blocking mutex, generic over the
//! raw mutex: `CriticalSectionRawMutex` when interrupts or several executors touch it,
//! `NoopRawMutex` for a single executor. Tasks change jobs through [`SharedTable::update`] and
//! read them through [`SharedTable::read`]; clients long-poll with [`SharedTable::wait`].
//!
//! ## How waking works
//!
//! * A waiter checks its [`Condition`] with [`JobTable::check`] — the core's rule, the same one
//!   every other adapter uses — and, if it does not hold yet, registers its waker under the
//!   job's slot, all inside one lock: no change can slip between the check and the
//!   registration.
//! * After every [`SharedTable::update`], the table's journal since the last revision seen
//!   ([`JobTable::journal`]) names exactly the jobs that changed; only their waiters are woken
//!   (R-LONGPOLL). If the journal was compacted meanwhile, every waiter is woken.
//! * Waker storage is bounded: `W` registrations in all, across the table. When it is full, a
//!   new waiter wakes every registered one and takes the freed room (like embassy-sync's
//!   `MultiWakerRegistration`): the woken waiters re-check their condition and register again.
//!   A wake-up is never lost; with more than `W` concurrent waiters, some wake up spuriously.
//! * A wait that ends (condition met or timeout) takes its registration back.
//!
//! Timeouts are built on [`embassy_time::with_timeout`], so they run on whatever time driver the
//! firmware links (the table never picks one). A timeout is not an error: the wait answers the
//! job's current snapshot marked [`Waited::timed_out`]. Waits are clamped to
//! [`SharedTable::max_wait`] (120 s by default, R-LONGPOLL).
//!
//! ```
//! use embassy_sync::blocking_mutex::raw::NoopRawMutex;
//! use jobstate::shared::SharedTable;
//! use jobstate::{Condition, Config, Duration, Instant, NewJob, Revision};
//!
//! // In firmware this is a `static` with `CriticalSectionRawMutex`.
//! let jobs: SharedTable<NoopRawMutex, &str, 8> = SharedTable::new(Config::DEFAULT);
//! let now = Instant::from_ticks(0);
//! let id = jobs.update(|t| t.submit(NewJob::new("erase"), now)).unwrap().unwrap();
//! jobs.update(|t| t.start(id, now)).unwrap().unwrap();
//!
//! // A client long-polls for any change after revision 2 (the start): the worker reports
//! // progress from another task, which wakes exactly this waiter.
//! let wait = jobs.wait(id, Condition::ChangedSince(Revision::new(2)), Duration::from_secs(30));
//! jobs.update(|t| t.progress(id, 40, "erasing", now)).unwrap().unwrap();
//! let seen = futures::executor::block_on(wait).unwrap();
//! assert!(!seen.timed_out);
//! assert_eq!(seen.job.progress(), 40);
//! ```

use core::cell::RefCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use heapless::Vec;

use crate::error::{LookupError, SubmitError};
use crate::id::{JobId, Revision};
use crate::job::{Job, NewJob};
use crate::links::NIL;
use crate::retain::Tombstone;
use crate::table::{Config, JobTable};
use crate::time::{Duration, Instant};
use crate::wait::Condition;

/// The longest wait by default: 120 s, the top of ONTAP Select Deploy's `poll_timeout` range.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// The registration key of a table-wide watcher ([`SharedTable::changed`]). Slot indices are
/// always below it.
const ANY: u16 = NIL;

/// The table is already borrowed: [`SharedTable::update`] or [`SharedTable::read`] was called
/// from inside the closure of another one on the same table. Nothing was done.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Busy;

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("job table already borrowed by an enclosing update or read")
    }
}

impl core::error::Error for Busy {}

/// What a wait answers: the job's snapshot, and whether the wait ended by timeout (R-WAIT).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Waited<J> {
    /// The job as it is when the wait ends.
    pub job: J,
    /// The timeout ended the wait and the condition still does not hold.
    pub timed_out: bool,
}

/// What [`SharedTable::submit_and_wait`] answers (R-RETURN).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Submitted<J> {
    /// The job reached a terminal state within the return timeout (HTTP 200).
    Completed(J),
    /// The job is accepted and still live; poll it by its id (HTTP 202).
    Accepted(J),
    /// The job ended and was already removed (zero retention) before the waiter saw it; the
    /// tombstone, when kept, says how it ended.
    Removed(JobId, Option<Tombstone>),
}

/// Bounded waker storage: `W` registrations, each under the key of the slot it waits for.
struct Wakers<const W: usize> {
    entries: Vec<(u16, Waker), W>,
}

impl<const W: usize> Wakers<W> {
    const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Register `waker` under `key`. When full, wake everyone first (never drop a wake-up).
    fn register(&mut self, key: u16, waker: &Waker) {
        if self
            .entries
            .iter()
            .any(|(k, w)| *k == key && w.will_wake(waker))
        {
            return;
        }
        if self.entries.is_full() {
            self.wake_all();
        }
        if self.entries.push((key, waker.clone())).is_err() {
            // W == 0: nowhere to keep it; have the waiter poll again instead of sleeping.
            waker.wake_by_ref();
        }
    }

    /// Take a registration back (its wait ended).
    fn unregister(&mut self, key: u16, waker: &Waker) {
        self.entries
            .retain(|(k, w)| !(*k == key && w.will_wake(waker)));
    }

    fn wake(&mut self, key: u16) {
        self.entries.retain(|(k, w)| {
            let hit = *k == key;
            if hit {
                w.wake_by_ref();
            }
            !hit
        });
    }

    fn wake_all(&mut self) {
        for (_, w) in self.entries.iter() {
            w.wake_by_ref();
        }
        self.entries.clear();
    }
}

struct Inner<S, const N: usize, const T: usize, const D: usize, const J: usize, const W: usize> {
    table: JobTable<S, N, T, D, J>,
    /// The revision up to which waiters have been woken.
    seen: Revision,
    wakers: Wakers<W>,
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize, const W: usize>
    Inner<S, N, T, D, J, W>
{
    /// Wake the waiters of every job that changed since `seen` (R-LONGPOLL).
    fn notify(&mut self) {
        let current = self.table.revision();
        if current == self.seen {
            return;
        }
        let Inner {
            table,
            seen,
            wakers,
        } = self;
        if !wakers.entries.is_empty() {
            match table.journal(*seen) {
                Ok(events) => {
                    for e in events {
                        wakers.wake(e.job.index());
                    }
                    wakers.wake(ANY);
                }
                Err(_) => wakers.wake_all(),
            }
        }
        *seen = current;
    }
}

/// A [`JobTable`] shared between tasks, with async waits. See the [module docs](self).
///
/// * `M` — the embassy-sync raw mutex (`CriticalSectionRawMutex`, `NoopRawMutex`, …);
/// * `S`, `N`, `T`, `D`, `J` — as for [`JobTable`];
/// * `W` — how many waiters can be registered at once across the table (default 8); more
///   waiters still work, at the cost of spurious wake-ups.
///
/// `new` is `const`, so the table lives in a `static`.
pub struct SharedTable<
    M: RawMutex,
    S,
    const N: usize,
    const T: usize = 64,
    const D: usize = 4,
    const J: usize = 64,
    const W: usize = 8,
> {
    inner: Mutex<M, RefCell<Inner<S, N, T, D, J, W>>>,
    max_wait: Duration,
}

impl<
        M: RawMutex,
        S,
        const N: usize,
        const T: usize,
        const D: usize,
        const J: usize,
        const W: usize,
    > SharedTable<M, S, N, T, D, J, W>
{
    /// An empty shared table; waits are clamped to [`MAX_WAIT`].
    pub const fn new(config: Config) -> Self {
        Self::with_max_wait(config, MAX_WAIT)
    }

    /// An empty shared table whose waits are clamped to `max_wait`.
    pub const fn with_max_wait(config: Config, max_wait: Duration) -> Self {
        Self {
            inner: Mutex::new(RefCell::new(Inner {
                table: JobTable::new(config),
                seen: Revision::ZERO,
                wakers: Wakers::new(),
            })),
            max_wait,
        }
    }

    /// The longest a wait lasts, whatever timeout it asks for.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Change the table, then wake the waiters of every job that changed.
    ///
    /// Every change goes through here, so no change escapes the waiters. The closure runs under
    /// the lock: keep it short, and do not call this table from inside it (that answers
    /// [`Busy`] instead of deadlocking).
    pub fn update<R>(&self, f: impl FnOnce(&mut JobTable<S, N, T, D, J>) -> R) -> Result<R, Busy> {
        self.inner.lock(|cell| {
            let mut inner = cell.try_borrow_mut().map_err(|_| Busy)?;
            let out = f(&mut inner.table);
            inner.notify();
            Ok(out)
        })
    }

    /// Read the table under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&JobTable<S, N, T, D, J>) -> R) -> Result<R, Busy> {
        self.inner.lock(|cell| {
            let inner = cell.try_borrow().map_err(|_| Busy)?;
            Ok(f(&inner.table))
        })
    }

    /// Wait until a change of the table after revision `after`, for at most `timeout`; answers
    /// the table's revision then (equal to `after` on timeout). A table-wide watcher.
    pub async fn changed(&self, after: Revision, timeout: Duration) -> Revision {
        let timeout = timeout.min(self.max_wait);
        let _ = embassy_time::with_timeout(timeout, self.changed_since(after)).await;
        loop {
            if let Ok(r) = self.read(|t| t.revision()) {
                return r;
            }
            YieldNow(false).await;
        }
    }

    fn changed_since(&self, after: Revision) -> Watch<'_, M, S, N, T, D, J, W> {
        Watch {
            shared: self,
            key: ANY,
            registered: None,
            target: Target::Revision(after),
        }
    }

    /// Run the table's timers forever: call [`JobTable::expire`] with `Instant::now()` whenever
    /// [`JobTable::next_timer`] comes due (deadlines, leases, retention), re-planning after
    /// every change. Spawn it as its own task; it never returns.
    pub async fn run_timers(&self) {
        loop {
            let Ok((rev, next)) = self.read(|t| (t.revision(), t.next_timer())) else {
                YieldNow(false).await;
                continue;
            };
            match next {
                Some(at) => {
                    let _ = embassy_time::with_deadline(at, self.changed_since(rev)).await;
                }
                None => {
                    let _ = self.changed_since(rev).await;
                }
            }
            let _ = self.update(|t| t.expire(Instant::now()));
        }
    }
}

impl<
        M: RawMutex,
        S: Clone,
        const N: usize,
        const T: usize,
        const D: usize,
        const J: usize,
        const W: usize,
    > SharedTable<M, S, N, T, D, J, W>
{
    /// The job's snapshot now, and whether `condition` fails to hold for it (`timed_out`).
    /// The one place a wait clones a job.
    async fn answer(
        &self,
        id: JobId,
        condition: Condition,
    ) -> Result<Waited<Job<S, T, D>>, LookupError> {
        loop {
            let read = self.read(|t| {
                t.get(id).map(|job| Waited {
                    timed_out: !condition.holds(job),
                    job: job.clone(),
                })
            });
            match read {
                Ok(r) => return r,
                Err(Busy) => YieldNow(false).await,
            }
        }
    }

    /// Wait until `condition` holds for the job, for at most `timeout` (clamped to
    /// [`SharedTable::max_wait`]) (R-WAIT).
    ///
    /// Answers at once if the condition already holds. On timeout, answers the current snapshot
    /// with [`Waited::timed_out`] set — a timeout is never an error. A job that is removed
    /// during the wait answers [`LookupError::Expired`]; an unknown id answers its lookup error
    /// at once. A wait for [`Condition::Terminal`] ends on success and on failure alike.
    pub async fn wait(
        &self,
        id: JobId,
        condition: Condition,
        timeout: Duration,
    ) -> Result<Waited<Job<S, T, D>>, LookupError> {
        let timeout = timeout.min(self.max_wait);
        let watch = Watch {
            shared: self,
            key: id.index(),
            registered: None,
            target: Target::Job(id, condition),
        };
        if let Ok(Err(e)) = embassy_time::with_timeout(timeout, watch).await {
            return Err(e);
        }
        // Condition met or timeout: answer the job as it is now, in the same poll.
        self.answer(id, condition).await
    }

    /// Submit a job, then wait up to `return_timeout` (clamped to [`SharedTable::max_wait`])
    /// for it to end (R-RETURN): [`Submitted::Completed`] if it did, [`Submitted::Accepted`]
    /// otherwise. With a zero timeout the answer is `Accepted` at once. The job is in the table
    /// before either answer, so a lookup straight after `Accepted` finds it.
    pub async fn submit_and_wait(
        &self,
        job: NewJob<'_, S>,
        return_timeout: Duration,
        now: Instant,
    ) -> Result<Submitted<Job<S, T, D>>, SubmitError> {
        let mut job = Some(job);
        let id = loop {
            let submitted = self.update(|t| job.take().map(|j| t.submit(j, now)));
            match submitted {
                Ok(Some(r)) => break r?,
                // `job` is consumed only by a closure that ran, and that answered `Some`.
                Ok(None) => return Err(SubmitError::TableFull),
                Err(Busy) => YieldNow(false).await,
            }
        };
        let zero = return_timeout == Duration::from_ticks(0);
        let waited = if zero {
            self.answer(id, Condition::Terminal).await
        } else {
            self.wait(id, Condition::Terminal, return_timeout).await
        };
        Ok(match waited {
            Ok(Waited { job, .. }) if job.is_terminal() && !zero => Submitted::Completed(job),
            Ok(Waited { job, .. }) => Submitted::Accepted(job),
            Err(LookupError::Expired(tombstone)) => Submitted::Removed(id, tombstone),
            Err(_) => Submitted::Removed(id, None),
        })
    }
}

/// What a [`Watch`] waits for.
#[derive(Clone, Copy)]
enum Target {
    /// The condition holds for the job.
    Job(JobId, Condition),
    /// The table's revision passes this one.
    Revision(Revision),
}

/// One registered waiter: a job's condition or a table-wide change.
struct Watch<
    'a,
    M: RawMutex,
    S,
    const N: usize,
    const T: usize,
    const D: usize,
    const J: usize,
    const W: usize,
> {
    shared: &'a SharedTable<M, S, N, T, D, J, W>,
    key: u16,
    registered: Option<Waker>,
    target: Target,
}

impl<
        M: RawMutex,
        S,
        const N: usize,
        const T: usize,
        const D: usize,
        const J: usize,
        const W: usize,
    > Watch<'_, M, S, N, T, D, J, W>
{
    /// Ready with `Ok` once the target is reached, with the lookup error if the job is gone.
    /// Never clones a job: the caller reads the snapshot once, when the watch is over.
    fn poll_seen(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LookupError>> {
        let key = self.key;
        let target = self.target;
        let polled = self.shared.inner.lock(|cell| {
            let mut inner = cell.try_borrow_mut().ok()?;
            let seen = match target {
                Target::Job(id, condition) => match inner.table.check(id, condition) {
                    Ok(Some(_)) => Some(Ok(())),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                },
                Target::Revision(after) => (inner.table.revision() > after).then_some(Ok(())),
            };
            if seen.is_none() {
                inner.wakers.register(key, cx.waker());
            }
            Some(seen)
        });
        match polled {
            Some(Some(seen)) => Poll::Ready(seen),
            Some(None) => {
                self.registered = Some(cx.waker().clone());
                Poll::Pending
            }
            // Polled from inside an update/read of the same table: try again later.
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl<
        M: RawMutex,
        S,
        const N: usize,
        const T: usize,
        const D: usize,
        const J: usize,
        const W: usize,
    > Drop for Watch<'_, M, S, N, T, D, J, W>
{
    fn drop(&mut self) {
        if let Some(waker) = self.registered.take() {
            let key = self.key;
            self.shared.inner.lock(|cell| {
                if let Ok(mut inner) = cell.try_borrow_mut() {
                    inner.wakers.unregister(key, &waker);
                }
            });
        }
    }
}

impl<
        M: RawMutex,
        S,
        const N: usize,
        const T: usize,
        const D: usize,
        const J: usize,
        const W: usize,
    > Future for Watch<'_, M, S, N, T, D, J, W>
{
    type Output = Result<(), LookupError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_seen(cx)
    }
}

/// Yield once to the executor.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
