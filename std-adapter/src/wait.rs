//! Waiting: blocking and async long-polls (R-WAIT, R-LONGPOLL, R-RETURN).
//!
//! Both kinds follow one protocol under the engine lock: check the condition with the core
//! ([`jobstate::JobTable::check`]); if it does not hold, register in the waiter registry and sleep; the
//! thread that changes the job evaluates the condition and, only if it now holds (or the job is
//! gone), hands the waiter its snapshot and wakes it. A timeout ends the wait with the current
//! snapshot marked `timed_out`; the waiter deregisters on every way out, including a dropped
//! future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use jobstate::{Condition, Job, JobId, LookupError, NewJob, Revision, Submitted, Table, Waited};

use crate::clock::Clock;
use crate::engine::{Engine, EngineTable, MAX_RETURN_TIMEOUT};
use crate::error::{SubmitWaitError, WaitError};
use crate::registry::{Ready, Wake, Watch};
use crate::snapshot::Snapshot;
use crate::sync::{self, Arc, AtomicBool, Condvar, Ordering};

type Answer<Tb> = Ready<Box<<Tb as Table>::Job>>;

/// The answer if the watched thing is already there.
fn answer_now<Tb: Table>(table: &Tb, watch: Watch) -> Option<Answer<Tb>>
where
    Tb::Spec: Clone,
{
    match watch {
        Watch::Job(id, condition) => match table.check(id, condition) {
            Ok(Some(job)) => Some(Ready::Job(Ok(Box::new(Tb::to_job(&job))))),
            Ok(None) => None,
            Err(e) => Some(Ready::Job(Err(e))),
        },
        Watch::Table(after) => (table.revision() > after).then(|| Ready::Table(table.revision())),
    }
}

/// The answer when the timeout ended the wait: how things are now.
fn current<Tb: Table>(table: &Tb, watch: Watch) -> Answer<Tb>
where
    Tb::Spec: Clone,
{
    match watch {
        Watch::Job(id, _) => Ready::Job(table.snapshot(id).map(Box::new)),
        Watch::Table(_) => Ready::Table(table.revision()),
    }
}

/// A table-wide wait's answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TableWaited {
    /// The table revision when the wait ended.
    pub revision: Revision,
    /// `true` when nothing changed within the timeout.
    pub timed_out: bool,
}

impl<Tb: EngineTable> Engine<Tb> {
    fn clamp(&self, timeout: StdDuration) -> StdDuration {
        crate::engine::clamp(timeout, self.shared.config.max_wait)
    }

    #[cfg(not(loom))]
    fn passed(&self, deadline: Option<StdInstant>) -> bool {
        deadline.is_some_and(|d| StdInstant::now() >= d)
    }

    #[cfg(loom)]
    fn passed(&self, _deadline: Option<StdInstant>) -> bool {
        self.shared.time_up.load(Ordering::SeqCst)
    }

    /// The blocking wait protocol, for a job or the table. `stop`, when set, ends the wait
    /// early like a timeout (the worker pool's shutdown).
    pub(crate) fn block(
        &self,
        watch: Watch,
        timeout: StdDuration,
        stop: Option<&AtomicBool>,
    ) -> (Answer<Tb>, bool) {
        self.block_locked(self.lock(), watch, timeout, stop)
    }

    /// [`Engine::block`] with the lock already held (so a submit and its waiter's
    /// registration are one step).
    fn block_locked(
        &self,
        mut st: sync::MutexGuard<'_, crate::engine::State<Tb>>,
        watch: Watch,
        timeout: StdDuration,
        stop: Option<&AtomicBool>,
    ) -> (Answer<Tb>, bool) {
        let timeout = self.clamp(timeout);
        let deadline = StdInstant::now().checked_add(timeout);
        if let Some(answer) = answer_now(&*st.table, watch) {
            return (answer, false);
        }
        if timeout.is_zero() {
            return (current(&*st.table, watch), true);
        }
        let cv = Arc::new(Condvar::new());
        let key = st.waiters.register(watch, Wake::Thread(cv.clone()));
        loop {
            if st.waiters.is_ready(key) {
                if let Some(answer) = st.waiters.deregister(key) {
                    return (answer, false);
                }
            }
            let stopped = stop.is_some_and(|s| s.load(Ordering::SeqCst));
            if stopped || self.passed(deadline) {
                let _ = st.waiters.deregister(key);
                return (current(&*st.table, watch), true);
            }
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(StdInstant::now()));
            st = sync::wait_timeout(&cv, st, left);
        }
    }

    /// [`Engine::wait`] as a future. Works on any executor (tokio, `futures::executor`,
    /// …): its timeout is kept by the engine's own timer thread, not a runtime's. Dropping the
    /// future deregisters it.
    pub fn wait_async(
        &self,
        id: JobId,
        condition: Condition,
        timeout: StdDuration,
    ) -> WaitFuture<Tb> {
        WaitFuture {
            waiting: Waiting::new(self.clone(), Watch::Job(id, condition), self.clamp(timeout)),
        }
    }

    /// Block until the table changes after revision `after` (a table-wide watcher: any
    /// change to any job wakes it), or the timeout ends.
    pub fn wait_table(&self, after: Revision, timeout: StdDuration) -> TableWaited {
        let (answer, timed_out) = self.block(Watch::Table(after), timeout, None);
        TableWaited {
            revision: match answer {
                Ready::Table(r) => r,
                Ready::Job(_) => after,
            },
            timed_out,
        }
    }

    /// [`Engine::wait_table`] as a future.
    pub fn wait_table_async(&self, after: Revision, timeout: StdDuration) -> TableWaitFuture<Tb> {
        TableWaitFuture {
            waiting: Waiting::new(self.clone(), Watch::Table(after), self.clamp(timeout)),
            after,
        }
    }

    pub(crate) fn check_return_timeout(return_timeout: StdDuration) -> Result<(), SubmitWaitError> {
        if return_timeout > MAX_RETURN_TIMEOUT {
            Err(SubmitWaitError::ReturnTimeoutOutOfRange)
        } else {
            Ok(())
        }
    }

    /// [`Engine::submit_and_wait`] as a future. The job is submitted (and the return timeout
    /// checked) when this is called, not when the future is first polled, so the future owns
    /// nothing borrowed.
    pub fn submit_and_wait_async(
        &self,
        job: NewJob<'_, Tb::Spec>,
        return_timeout: StdDuration,
    ) -> SubmitWaitFuture<Tb> {
        let clock = self.shared.clock;
        let early = |r| SubmitWaitFuture {
            step: SubmitStep::Done(Some(r)),
            clock,
        };
        if let Err(e) = Self::check_return_timeout(return_timeout) {
            return early(Err(e));
        }
        let mut st = self.lock();
        let submitted = st.table.submit(job, self.now());
        self.shared.commit(&mut st);
        let id = match submitted {
            Ok(id) => id,
            Err(r) => return early(Err(SubmitWaitError::Submit(r.error))),
        };
        let watch = Watch::Job(id, Condition::Terminal);
        let timeout = self.clamp(return_timeout);
        if timeout.is_zero() {
            return early(Ok(accepted_now(&*st.table, id)));
        }
        // Registered now, under the submit's lock; the task's waker replaces the no-op one at
        // the first poll (an answer that comes before is kept in the registry).
        let mut waiting = Waiting::new(self.clone(), watch, timeout);
        if answer_now(&*st.table, watch).is_none() {
            waiting.register(&mut st, std::task::Waker::noop().clone());
        }
        drop(st);
        SubmitWaitFuture {
            step: SubmitStep::Waiting(id, WaitFuture { waiting }),
            clock,
        }
    }
}

/// Waits that answer with snapshots.
impl<S, const T: usize, Tb> Engine<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    fn to_waited(
        &self,
        answer: Answer<Tb>,
        timed_out: bool,
    ) -> Result<Waited<Snapshot<S, T>>, WaitError> {
        match answer {
            Ready::Job(Ok(job)) => Ok(Waited {
                job: self.snapshot(*job),
                timed_out,
            }),
            Ready::Job(Err(e)) => Err(WaitError::Lookup(e)),
            // A job wait never gets a table answer.
            Ready::Table(_) => Err(WaitError::Lookup(LookupError::NotFound)),
        }
    }

    /// Block until `condition` holds for job `id`, or the timeout (clamped to
    /// [`EngineConfig::max_wait`](crate::EngineConfig::max_wait)) ends (R-WAIT). Returns at
    /// once if the condition already holds. A timeout is not an error: the current snapshot
    /// comes back with `timed_out` set. A job removed during the wait answers
    /// `WaitError::Lookup(LookupError::Expired(..))`.
    pub fn wait(
        &self,
        id: JobId,
        condition: Condition,
        timeout: StdDuration,
    ) -> Result<Waited<Snapshot<S, T>>, WaitError> {
        let (answer, timed_out) = self.block(Watch::Job(id, condition), timeout, None);
        self.to_waited(answer, timed_out)
    }

    /// Submit, then wait up to `return_timeout` (0 to [`jobstate::MAX_WAIT`], further clamped
    /// to `max_wait`) for the job to end (R-RETURN): [`Submitted::Completed`] (HTTP 200) if it
    /// ended, success or failure, else [`Submitted::Accepted`] (HTTP 202); with a retention
    /// shorter than the wait, [`Submitted::Removed`] with the job's tombstone when kept. With 0
    /// the answer is `Accepted` at once. The job is in the table before any answer. A longer
    /// `return_timeout` is refused before anything is submitted.
    pub fn submit_and_wait(
        &self,
        job: NewJob<'_, S>,
        return_timeout: StdDuration,
    ) -> Result<Submitted<Snapshot<S, T>>, SubmitWaitError> {
        Self::check_return_timeout(return_timeout)?;
        // Submit and register the waiter under one lock: the job cannot end unseen between.
        let mut st = self.lock();
        let submitted = st.table.submit(job, self.now());
        self.shared.commit(&mut st);
        let id = submitted.map_err(|r| SubmitWaitError::Submit(r.error))?;
        if return_timeout.is_zero() {
            return Ok(snapshots(accepted_now(&*st.table, id), self.shared.clock));
        }
        let watch = Watch::Job(id, Condition::Terminal);
        let (answer, timed_out) = self.block_locked(st, watch, return_timeout, None);
        Ok(submitted_of(id, self.to_waited(answer, timed_out)))
    }
}

/// The answer to a submit with return timeout 0: the job as accepted.
fn accepted_now<Tb: Table>(table: &Tb, id: JobId) -> Submitted<Tb::Job>
where
    Tb::Spec: Clone,
{
    match table.snapshot(id) {
        Ok(job) => Submitted::Accepted(job),
        Err(e) => Submitted::Removed(id, tombstone(e)),
    }
}

/// A submit's answer with its job read by the wall clock.
fn snapshots<S, const T: usize>(
    s: Submitted<Job<S, T>>,
    clock: Clock,
) -> Submitted<Snapshot<S, T>> {
    match s {
        Submitted::Completed(j) => Submitted::Completed(Snapshot::new(j, clock)),
        Submitted::Accepted(j) => Submitted::Accepted(Snapshot::new(j, clock)),
        Submitted::Removed(id, t) => Submitted::Removed(id, t),
    }
}

/// The tombstone a lookup error carries, if any.
fn tombstone(e: LookupError) -> Option<jobstate::Tombstone> {
    match e {
        LookupError::Expired(t) => t,
        _ => None,
    }
}

/// A submit-and-wait's answer from its wait's (R-RETURN): a job removed before its waiter
/// read it answers [`Submitted::Removed`].
fn submitted_of<P>(id: JobId, waited: Result<Waited<P>, WaitError>) -> Submitted<P> {
    match waited {
        Ok(w) if w.timed_out => Submitted::Accepted(w.job),
        Ok(w) => Submitted::Completed(w.job),
        Err(WaitError::Lookup(e)) => Submitted::Removed(id, tombstone(e)),
    }
}

/// The async wait protocol shared by the futures below.
struct Waiting<Tb: Table> {
    engine: Engine<Tb>,
    slot: Slot,
}

/// A wait's own state, apart from the engine handle (so the engine's lock and this can be
/// borrowed together without touching the handle's reference counts).
struct Slot {
    watch: Watch,
    timeout: StdDuration,
    #[cfg_attr(loom, allow(dead_code))]
    deadline: Option<StdInstant>,
    key: Option<usize>,
    /// The deadline is in the engine's timer heap.
    in_heap: bool,
}

type Guard<'a, Tb> = sync::MutexGuard<'a, crate::engine::State<Tb>>;
type Shared<Tb> = crate::engine::Shared<Tb>;

impl Slot {
    /// Register (under the caller's lock) and hand the deadline to the engine's timer.
    fn register<Tb: Table>(
        &mut self,
        shared: &Shared<Tb>,
        st: &mut Guard<'_, Tb>,
        waker: std::task::Waker,
    ) {
        let key = st.waiters.register(self.watch, Wake::Task(waker));
        self.key = Some(key);
        #[cfg(not(loom))]
        if let (Some(at), Some(token)) = (self.deadline, st.waiters.token(key)) {
            shared.add_deadline(st, at, key, token);
            self.in_heap = true;
        }
        #[cfg(loom)]
        let _ = shared;
    }

    /// Deregister (under the caller's lock); the answer, if the waiter had one.
    fn deregister<Tb: Table>(
        &mut self,
        shared: &Shared<Tb>,
        st: &mut Guard<'_, Tb>,
    ) -> Option<Answer<Tb>> {
        let key = self.key.take()?;
        let answer = st.waiters.deregister(key);
        if std::mem::take(&mut self.in_heap) {
            #[cfg(not(loom))]
            shared.forget_deadline(st);
        }
        #[cfg(loom)]
        let _ = shared;
        answer
    }

    /// Whether the wait's deadline passed (the engine's timer marked it).
    fn expired<Tb: Table>(shared: &Shared<Tb>, st: &Guard<'_, Tb>, key: usize) -> bool {
        #[cfg(loom)]
        let _ = (st, key);
        #[cfg(loom)]
        return shared.time_up.load(Ordering::SeqCst);
        #[cfg(not(loom))]
        {
            let _ = shared;
            st.waiters.is_expired(key)
        }
    }
}

impl<Tb: EngineTable> Waiting<Tb> {
    fn new(engine: Engine<Tb>, watch: Watch, timeout: StdDuration) -> Self {
        Self {
            engine,
            slot: Slot {
                watch,
                timeout,
                deadline: StdInstant::now().checked_add(timeout),
                key: None,
                in_heap: false,
            },
        }
    }

    /// Register under the caller's lock (a submit's).
    fn register(&mut self, st: &mut Guard<'_, Tb>, waker: std::task::Waker) {
        self.slot.register(&self.engine.shared, st, waker);
    }

    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<(Answer<Tb>, bool)> {
        let shared = &*self.engine.shared;
        let w = &mut self.slot;
        let mut st = sync::lock(&shared.state);
        let key = match w.key {
            Some(key) => {
                if st.waiters.is_ready(key) {
                    if let Some(answer) = w.deregister(shared, &mut st) {
                        return Poll::Ready((answer, false));
                    }
                }
                st.waiters.set_waker(key, cx.waker());
                key
            }
            None => {
                if let Some(answer) = answer_now(&*st.table, w.watch) {
                    return Poll::Ready((answer, false));
                }
                if w.timeout.is_zero() {
                    return Poll::Ready((current(&*st.table, w.watch), true));
                }
                w.register(shared, &mut st, cx.waker().clone());
                match w.key {
                    Some(key) => key,
                    None => return Poll::Pending,
                }
            }
        };
        if Slot::expired(shared, &st, key) {
            // The heap entry was popped when the deadline passed.
            w.in_heap = false;
            if let Some(answer) = w.deregister(shared, &mut st) {
                return Poll::Ready((answer, false));
            }
            return Poll::Ready((current(&*st.table, w.watch), true));
        }
        Poll::Pending
    }
}

impl<Tb: Table> Drop for Waiting<Tb> {
    fn drop(&mut self) {
        if self.slot.key.is_some() {
            let shared = &*self.engine.shared;
            let mut st = sync::lock(&shared.state);
            let _ = self.slot.deregister(shared, &mut st);
        }
    }
}

/// The future of [`Engine::wait_async`]: resolves like [`Engine::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct WaitFuture<Tb: Table> {
    waiting: Waiting<Tb>,
}

impl<S, const T: usize, Tb> Future for WaitFuture<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    type Output = Result<Waited<Snapshot<S, T>>, WaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting
            .poll_answer(cx)
            .map(|(answer, timed_out)| this.waiting.engine.to_waited(answer, timed_out))
    }
}

/// The future of [`Engine::wait_table_async`].
#[must_use = "futures do nothing unless polled"]
pub struct TableWaitFuture<Tb: Table> {
    waiting: Waiting<Tb>,
    after: Revision,
}

impl<Tb: EngineTable> Future for TableWaitFuture<Tb> {
    type Output = TableWaited;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TableWaited> {
        let this = self.get_mut();
        let after = this.after;
        this.waiting
            .poll_answer(cx)
            .map(|(answer, timed_out)| TableWaited {
                revision: match answer {
                    Ready::Table(r) => r,
                    Ready::Job(_) => after,
                },
                timed_out,
            })
    }
}

enum SubmitStep<Tb: Table> {
    /// The answer, before it became one of snapshots (the engine's clock is in the future).
    Done(Option<Result<Submitted<Tb::Job>, SubmitWaitError>>),
    Waiting(JobId, WaitFuture<Tb>),
}

/// The future of [`Engine::submit_and_wait_async`].
#[must_use = "futures do nothing unless polled"]
pub struct SubmitWaitFuture<Tb: Table> {
    step: SubmitStep<Tb>,
    clock: Clock,
}

// Nothing in it is pinned structurally: the finished answer is moved out, the wait future is
// `Unpin`.
impl<Tb: Table> Unpin for SubmitWaitFuture<Tb> {}

impl<S, const T: usize, Tb> Future for SubmitWaitFuture<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    type Output = Result<Submitted<Snapshot<S, T>>, SubmitWaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let clock = this.clock;
        match &mut this.step {
            SubmitStep::Done(r) => match r.take() {
                Some(r) => Poll::Ready(r.map(|s| snapshots(s, clock))),
                None => Poll::Pending,
            },
            SubmitStep::Waiting(id, w) => {
                let id = *id;
                Pin::new(w).poll(cx).map(|r| Ok(submitted_of(id, r)))
            }
        }
    }
}
