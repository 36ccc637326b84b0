//! Waiting: blocking and async long-polls (R-WAIT, R-LONGPOLL, R-RETURN).
//!
//! Both kinds follow one protocol under the engine lock: check the condition with the core
//! ([`JobTable::check`]); if it does not hold, register in the waiter registry and sleep; the
//! thread that changes the job evaluates the condition and, only if it now holds (or the job is
//! gone), hands the waiter its snapshot and wakes it. A timeout ends the wait with the current
//! snapshot marked `timed_out`; the waiter deregisters on every way out, including a dropped
//! future.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use jobstate::{Condition, Job, JobId, JobTable, LookupError, NewJob, Revision};

use crate::engine::{Engine, MAX_RETURN_TIMEOUT};
use crate::error::{SubmitWaitError, WaitError};
use crate::registry::{Ready, Wake, Watch};
use crate::snapshot::{Submitted, Waited};
use crate::sync::{self, Arc, AtomicBool, Condvar, Ordering};

type Answer<S, const T: usize, const D: usize> = Ready<Box<Job<S, T, D>>>;

/// The answer if the watched thing is already there.
fn answer_now<S: Clone, const N: usize, const T: usize, const D: usize, const J: usize>(
    table: &JobTable<S, N, T, D, J>,
    watch: Watch,
) -> Option<Answer<S, T, D>> {
    match watch {
        Watch::Job(id, condition) => match table.check(id, condition) {
            Ok(Some(job)) => Some(Ready::Job(Ok(Box::new(job.clone())))),
            Ok(None) => None,
            Err(e) => Some(Ready::Job(Err(e))),
        },
        Watch::Table(after) => (table.revision() > after).then(|| Ready::Table(table.revision())),
    }
}

/// The answer when the timeout ended the wait: how things are now.
fn current<S: Clone, const N: usize, const T: usize, const D: usize, const J: usize>(
    table: &JobTable<S, N, T, D, J>,
    watch: Watch,
) -> Answer<S, T, D> {
    match watch {
        Watch::Job(id, _) => Ready::Job(table.get(id).map(|j| Box::new(j.clone()))),
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

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> Engine<S, N, T, D, J>
where
    S: Clone + Send + 'static,
{
    fn clamp(&self, timeout: StdDuration) -> StdDuration {
        timeout.min(self.shared.config.max_wait)
    }

    #[cfg(not(loom))]
    fn passed(&self, deadline: Option<StdInstant>) -> bool {
        deadline.is_some_and(|d| StdInstant::now() >= d)
    }

    #[cfg(loom)]
    fn passed(&self, _deadline: Option<StdInstant>) -> bool {
        self.shared.time_up.load(Ordering::SeqCst)
    }

    fn to_waited(
        &self,
        answer: Answer<S, T, D>,
        timed_out: bool,
    ) -> Result<Waited<S, T, D>, WaitError> {
        match answer {
            Ready::Job(Ok(job)) => Ok(Waited {
                snapshot: self.snapshot(*job),
                timed_out,
            }),
            Ready::Job(Err(e)) => Err(WaitError::Lookup(e)),
            // A job wait never gets a table answer.
            Ready::Table(_) => Err(WaitError::Lookup(LookupError::NotFound)),
        }
    }

    /// The blocking wait protocol, for a job or the table. `stop`, when set, ends the wait
    /// early like a timeout (the worker pool's shutdown).
    pub(crate) fn block(
        &self,
        watch: Watch,
        timeout: StdDuration,
        stop: Option<&AtomicBool>,
    ) -> (Answer<S, T, D>, bool) {
        self.block_locked(self.lock(), watch, timeout, stop)
    }

    /// [`Engine::block`] with the lock already held (so a submit and its waiter's
    /// registration are one step).
    fn block_locked(
        &self,
        mut st: sync::MutexGuard<'_, crate::engine::State<S, N, T, D, J>>,
        watch: Watch,
        timeout: StdDuration,
        stop: Option<&AtomicBool>,
    ) -> (Answer<S, T, D>, bool) {
        let timeout = self.clamp(timeout);
        let deadline = StdInstant::now().checked_add(timeout);
        if let Some(answer) = answer_now(&st.table, watch) {
            return (answer, false);
        }
        if timeout.is_zero() {
            return (current(&st.table, watch), true);
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
                return (current(&st.table, watch), true);
            }
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(StdInstant::now()));
            st = sync::wait_timeout(&cv, st, left);
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
    ) -> Result<Waited<S, T, D>, WaitError> {
        let (answer, timed_out) = self.block(Watch::Job(id, condition), timeout, None);
        self.to_waited(answer, timed_out)
    }

    /// [`Engine::wait`] as a future. Works on any executor (tokio, `futures::executor`,
    /// …): its timeout is kept by the engine's own timer thread, not a runtime's. Dropping the
    /// future deregisters it.
    pub fn wait_async(
        &self,
        id: JobId,
        condition: Condition,
        timeout: StdDuration,
    ) -> WaitFuture<S, N, T, D, J> {
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
    pub fn wait_table_async(
        &self,
        after: Revision,
        timeout: StdDuration,
    ) -> TableWaitFuture<S, N, T, D, J> {
        TableWaitFuture {
            waiting: Waiting::new(self.clone(), Watch::Table(after), self.clamp(timeout)),
            after,
        }
    }

    fn check_return_timeout(return_timeout: StdDuration) -> Result<(), SubmitWaitError> {
        if return_timeout > MAX_RETURN_TIMEOUT {
            Err(SubmitWaitError::ReturnTimeoutOutOfRange)
        } else {
            Ok(())
        }
    }

    /// Submit, then wait up to `return_timeout` (0–120 s, further clamped to `max_wait`) for
    /// the job to end (R-RETURN): [`Submitted::Completed`] (HTTP 200) if it ended, success or
    /// failure, else [`Submitted::Accepted`] (HTTP 202). With 0 the answer is `Accepted` at
    /// once. The job is in the table before either answer. Over 120 s is refused before
    /// anything is submitted.
    pub fn submit_and_wait(
        &self,
        job: NewJob<'_, S>,
        return_timeout: StdDuration,
    ) -> Result<Submitted<S, T, D>, SubmitWaitError> {
        Self::check_return_timeout(return_timeout)?;
        // Submit and register the waiter under one lock: the job cannot end unseen between.
        let mut st = self.lock();
        let submitted = st.table.submit(job, self.now());
        self.shared.commit(&mut st);
        let id = submitted?;
        if return_timeout.is_zero() {
            let job = st.table.get(id).cloned().map_err(SubmitWaitError::Lookup)?;
            return Ok(Submitted::Accepted(self.snapshot(job)));
        }
        let watch = Watch::Job(id, Condition::Terminal);
        let (answer, timed_out) = self.block_locked(st, watch, return_timeout, None);
        match self.to_waited(answer, timed_out) {
            Ok(w) if w.timed_out => Ok(Submitted::Accepted(w.snapshot)),
            Ok(w) => Ok(Submitted::Completed(w.snapshot)),
            Err(WaitError::Lookup(e)) => Err(SubmitWaitError::Lookup(e)),
        }
    }

    /// [`Engine::submit_and_wait`] as a future. The job is submitted (and the return timeout
    /// checked) when this is called, not when the future is first polled, so the future owns
    /// nothing borrowed.
    pub fn submit_and_wait_async(
        &self,
        job: NewJob<'_, S>,
        return_timeout: StdDuration,
    ) -> SubmitWaitFuture<S, N, T, D, J> {
        let early = |r| SubmitWaitFuture {
            step: SubmitStep::Done(Some(r)),
        };
        if let Err(e) = Self::check_return_timeout(return_timeout) {
            return early(Err(e));
        }
        let mut st = self.lock();
        let submitted = st.table.submit(job, self.now());
        self.shared.commit(&mut st);
        let id = match submitted {
            Ok(id) => id,
            Err(e) => return early(Err(SubmitWaitError::Submit(e))),
        };
        let watch = Watch::Job(id, Condition::Terminal);
        let timeout = self.clamp(return_timeout);
        if timeout.is_zero() {
            let job = st.table.get(id).cloned().map_err(SubmitWaitError::Lookup);
            return early(job.map(|j| Submitted::Accepted(self.snapshot(j))));
        }
        // Registered now, under the submit's lock; the task's waker replaces the no-op one at
        // the first poll (an answer that comes before is kept in the registry).
        let mut waiting = Waiting::new(self.clone(), watch, timeout);
        if answer_now(&st.table, watch).is_none() {
            waiting.register(&mut st, std::task::Waker::noop().clone());
        }
        drop(st);
        SubmitWaitFuture {
            step: SubmitStep::Waiting(WaitFuture { waiting }),
        }
    }
}

/// The async wait protocol shared by the futures below.
struct Waiting<S, const N: usize, const T: usize, const D: usize, const J: usize>
where
    S: Clone + Send + 'static,
{
    engine: Engine<S, N, T, D, J>,
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

type Guard<'a, S, const N: usize, const T: usize, const D: usize, const J: usize> =
    sync::MutexGuard<'a, crate::engine::State<S, N, T, D, J>>;
type Shared<S, const N: usize, const T: usize, const D: usize, const J: usize> =
    crate::engine::Shared<S, N, T, D, J>;

impl Slot {
    /// Register (under the caller's lock) and hand the deadline to the engine's timer.
    fn register<S: Clone, const N: usize, const T: usize, const D: usize, const J: usize>(
        &mut self,
        shared: &Shared<S, N, T, D, J>,
        st: &mut Guard<'_, S, N, T, D, J>,
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
    fn deregister<S: Clone, const N: usize, const T: usize, const D: usize, const J: usize>(
        &mut self,
        shared: &Shared<S, N, T, D, J>,
        st: &mut Guard<'_, S, N, T, D, J>,
    ) -> Option<Answer<S, T, D>> {
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
    fn expired<S, const N: usize, const T: usize, const D: usize, const J: usize>(
        shared: &Shared<S, N, T, D, J>,
        st: &Guard<'_, S, N, T, D, J>,
        key: usize,
    ) -> bool {
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

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> Waiting<S, N, T, D, J>
where
    S: Clone + Send + 'static,
{
    fn new(engine: Engine<S, N, T, D, J>, watch: Watch, timeout: StdDuration) -> Self {
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
    fn register(&mut self, st: &mut Guard<'_, S, N, T, D, J>, waker: std::task::Waker) {
        self.slot.register(&self.engine.shared, st, waker);
    }

    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<(Answer<S, T, D>, bool)> {
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
                if let Some(answer) = answer_now(&st.table, w.watch) {
                    return Poll::Ready((answer, false));
                }
                if w.timeout.is_zero() {
                    return Poll::Ready((current(&st.table, w.watch), true));
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
            return Poll::Ready((current(&st.table, w.watch), true));
        }
        Poll::Pending
    }
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> Drop
    for Waiting<S, N, T, D, J>
where
    S: Clone + Send + 'static,
{
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
pub struct WaitFuture<S, const N: usize, const T: usize, const D: usize, const J: usize>
where
    S: Clone + Send + 'static,
{
    waiting: Waiting<S, N, T, D, J>,
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> Future
    for WaitFuture<S, N, T, D, J>
where
    S: Clone + Send + 'static,
{
    type Output = Result<Waited<S, T, D>, WaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting
            .poll_answer(cx)
            .map(|(answer, timed_out)| this.waiting.engine.to_waited(answer, timed_out))
    }
}

/// The future of [`Engine::wait_table_async`].
#[must_use = "futures do nothing unless polled"]
pub struct TableWaitFuture<S, const N: usize, const T: usize, const D: usize, const J: usize>
where
    S: Clone + Send + 'static,
{
    waiting: Waiting<S, N, T, D, J>,
    after: Revision,
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> Future
    for TableWaitFuture<S, N, T, D, J>
where
    S: Clone + Send + 'static,
{
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

enum SubmitStep<S, const N: usize, const T: usize, const D: usize, const J: usize>
where
    S: Clone + Send + 'static,
{
    Done(Option<Result<Submitted<S, T, D>, SubmitWaitError>>),
    Waiting(WaitFuture<S, N, T, D, J>),
}

/// The future of [`Engine::submit_and_wait_async`].
#[must_use = "futures do nothing unless polled"]
pub struct SubmitWaitFuture<S, const N: usize, const T: usize, const D: usize, const J: usize>
where
    S: Clone + Send + 'static,
{
    step: SubmitStep<S, N, T, D, J>,
}

// Nothing in it is pinned structurally: the finished answer is moved out, the wait future is
// `Unpin`.
impl<S, const N: usize, const T: usize, const D: usize, const J: usize> Unpin
    for SubmitWaitFuture<S, N, T, D, J>
where
    S: Clone + Send + 'static,
{
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> Future
    for SubmitWaitFuture<S, N, T, D, J>
where
    S: Clone + Send + 'static,
{
    type Output = Result<Submitted<S, T, D>, SubmitWaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().step {
            SubmitStep::Done(r) => match r.take() {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            },
            SubmitStep::Waiting(w) => Pin::new(w).poll(cx).map(|r| match r {
                Ok(w) if w.timed_out => Ok(Submitted::Accepted(w.snapshot)),
                Ok(w) => Ok(Submitted::Completed(w.snapshot)),
                Err(WaitError::Lookup(e)) => Err(SubmitWaitError::Lookup(e)),
            }),
        }
    }
}
