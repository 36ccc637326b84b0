//! Waiting: blocking and async long-polls (R-WAIT, R-LONGPOLL, R-RETURN).
//!
//! One state machine, [`WaitState`], serves both kinds. Each step runs under the engine lock:
//! check the condition with the core ([`jobstate::JobTable::check`]); if it does not hold,
//! register in the waiter registry (with the deadline in the engine's timer wheel) and sleep;
//! the thread that changes the job evaluates the condition and, only if it now holds (or the
//! job is gone), settles the waiter and wakes it once the lock is released. The waiter then
//! collects: a copy made when the job ended, or the job as it is now (its condition still
//! holds: conditions never go back from true to false while the job exists). A timeout —
//! the timer thread's, or the clock seen by the waiter itself — ends the wait with the current
//! snapshot marked `timed_out`. The waiter deregisters on every way out, including a dropped
//! future and an unwinding thread.
//!
//! The blocking wait sleeps on its own condition variable (paired with the engine lock, with
//! the deadline as its own timeout too); the async wait returns `Pending` and is woken through
//! its task's `Waker`, cloned outside the lock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use jobstate::{
    Condition, Job, JobId, JobRef, LookupError, NewJob, Revision, Submitted, Table, Waited,
};

use crate::clock::Clock;
use crate::engine::{Engine, EngineTable, Shared, State, MAX_RETURN_TIMEOUT};
use crate::error::{SubmitWaitError, WaitError};
use crate::registry::{Found, Ready, Registry, Wake, WakeList, WakeRef, Watch};
use crate::snapshot::Snapshot;
use crate::sync::{self, Arc, AtomicBool, Condvar, Ordering};

/// What a wait ends with, as found under the engine lock. A live job is handed over as a
/// borrow of the table, so that whoever collects it copies it once, straight into its own
/// answer (a wait future: into the value its `poll` returns), still under the lock.
pub(crate) enum Answer<'t, Tb: Table> {
    /// The job as it is now.
    Live(JobRef<'t, Tb::Spec>),
    /// The copy made when the job ended (before it could be removed).
    Copy(Box<Tb::Job>),
    /// Why there is no job.
    Gone(LookupError),
    /// The table revision.
    Table(Revision),
}

/// An [`Answer`] as owned data (made under the lock: a job copy runs the spec's `Clone`).
pub(crate) enum Owned<J> {
    /// The job, or why there is none.
    Job(Result<J, LookupError>),
    /// The table revision.
    Table(Revision),
}

type OwnedOf<Tb> = Owned<<Tb as Table>::Job>;

impl<Tb: Table> Answer<'_, Tb>
where
    Tb::Spec: Clone,
{
    pub(crate) fn owned(self) -> OwnedOf<Tb> {
        match self {
            Answer::Live(job) => Owned::Job(Ok(Tb::to_job(&job))),
            Answer::Copy(job) => Owned::Job(Ok(*job)),
            Answer::Gone(e) => Owned::Job(Err(e)),
            Answer::Table(r) => Owned::Table(r),
        }
    }
}

/// The answer if the watched thing is there already.
fn answer_now<Tb: Table>(table: &Tb, watch: Watch) -> Option<Answer<'_, Tb>> {
    match watch {
        Watch::Job(id, condition) => match table.check(id, condition) {
            Ok(Some(job)) => Some(Answer::Live(job)),
            Ok(None) => None,
            Err(e) => Some(Answer::Gone(e)),
        },
        Watch::Table(after) => (table.revision() > after).then(|| Answer::Table(table.revision())),
    }
}

/// How things are now (a settled waiter's lazy answer, or the answer at a timeout).
fn current<Tb: Table>(table: &Tb, watch: Watch) -> Answer<'_, Tb> {
    match watch {
        Watch::Job(id, _) => match table.get(id) {
            Ok(job) => Answer::Live(job),
            Err(e) => Answer::Gone(e),
        },
        Watch::Table(_) => Answer::Table(table.revision()),
    }
}

/// One step of a wait.
pub(crate) enum Step<A> {
    /// The wait is over: the answer, and whether the timeout (or a stop) ended it.
    Ready(A, bool),
    /// Registered; sleep until woken.
    Pending,
    /// To register (or to replace its waker) the wait needs an owned waker, which must be
    /// cloned outside the lock (a waker's `clone` is user code): clone it, lock, step again.
    NeedWake,
}

/// The wait state machine shared by [`Engine::wait`] and [`Engine::wait_async`] (and the
/// table-wide and submit-and-wait forms of both).
pub(crate) struct WaitState {
    watch: Watch,
    /// Zero: answer at once, never register.
    timeout: StdDuration,
    /// `None` when the timeout reaches past the end of the clock.
    deadline: Option<StdInstant>,
    /// The registry key while registered.
    key: Option<usize>,
}

impl WaitState {
    pub(crate) fn new(watch: Watch, timeout: StdDuration, now: StdInstant) -> Self {
        Self {
            watch,
            timeout,
            deadline: now.checked_add(timeout),
            key: None,
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.key.is_some()
    }

    /// One step, under the engine lock. `wake` is whom to wake; `spare`, an owned wake made
    /// outside the lock (taken if needed). `stop` ends the wait like a timeout (the worker
    /// pool's shutdown). Wakes and drops for after the lock go into `wl`. A `Ready` answer
    /// borrows the table: copy what is needed before the lock is released.
    pub(crate) fn step<'a, 's, Tb: EngineTable>(
        &mut self,
        shared: &'a Shared<Tb>,
        st: &'s mut State<Tb>,
        wake: WakeRef<'_>,
        spare: &mut Option<Wake>,
        stop: bool,
        wl: &mut WakeList<'a>,
    ) -> Step<Answer<'s, Tb>> {
        let floor = st.floor;
        let (table, waiters, timer) = st.parts();
        match self.key {
            Some(key) => {
                let passed = || self.deadline.is_some_and(|d| shared.std_now() >= d);
                if waiters.is_settled(key) || stop || passed() {
                    return self.finish(table, waiters, wl);
                }
                if !waiters.wakes(key, wake) {
                    match spare.take().or_else(|| wake.cheap_owned()) {
                        Some(w) => waiters.set_wake(key, w, wl),
                        None => return Step::NeedWake,
                    }
                }
                Step::Pending
            }
            None => {
                if let Some(answer) = answer_now(table, self.watch) {
                    return Step::Ready(answer, false);
                }
                // Whether the deadline passed is judged by the latest instant read under the
                // lock (a lower bound of the time now), without reading the clock: a deadline
                // that passed since then is in the timer wheel's past, and the timer thread,
                // kicked by `arm`, settles the wait at once.
                if self.timeout.is_zero() || stop || self.deadline.is_some_and(|d| floor >= d) {
                    return Step::Ready(current(table, self.watch), true);
                }
                let Some(w) = spare.take().or_else(|| wake.cheap_owned()) else {
                    return Step::NeedWake;
                };
                self.key = Some(waiters.register_at(self.watch, w, self.deadline));
                if let Some(at) = self.deadline {
                    shared.arm(timer, at, waiters.fresh_len(), wl);
                }
                Step::Pending
            }
        }
    }

    /// Deregister and collect the answer (under the lock).
    fn finish<'t, Tb: EngineTable>(
        &mut self,
        table: &'t Tb,
        waiters: &mut Registry<Box<Tb::Job>>,
        wl: &mut WakeList<'_>,
    ) -> Step<Answer<'t, Tb>> {
        let Some(key) = self.key.take() else {
            return Step::Ready(current(table, self.watch), true);
        };
        let removed = waiters.deregister(key);
        if let Some(w) = removed.wake {
            wl.discard(w);
        }
        match removed.found {
            Found::Ready(Ready::Job(Ok(job))) => Step::Ready(Answer::Copy(job), false),
            Found::Ready(Ready::Job(Err(e))) => Step::Ready(Answer::Gone(e), false),
            Found::Ready(Ready::Holds) => Step::Ready(current(table, self.watch), false),
            Found::Ready(Ready::Table(r)) => Step::Ready(Answer::Table(r), false),
            Found::TimedOut | Found::Waiting => Step::Ready(current(table, self.watch), true),
        }
    }

    /// Deregister without collecting (a dropped future, an unwinding wait): the answer it
    /// had, if any, for the caller to drop once the lock is released (a job copy's `Drop`
    /// runs the spec's).
    pub(crate) fn cancel<Tb: EngineTable>(
        &mut self,
        st: &mut State<Tb>,
        wl: &mut WakeList<'_>,
    ) -> Option<Box<Tb::Job>> {
        let key = self.key.take()?;
        let removed = st.waiters.deregister(key);
        if let Some(w) = removed.wake {
            wl.discard(w);
        }
        match removed.found {
            Found::Ready(Ready::Job(Ok(job))) => Some(job),
            _ => None,
        }
    }
}

/// Deregisters a wait that is left by unwinding or by a drop.
#[inline]
fn cancel_locked<Tb: EngineTable>(shared: &Shared<Tb>, ws: &mut WaitState) {
    if ws.is_registered() {
        cancel_registered(shared, ws);
    }
}

/// [`cancel_locked`] for a wait still registered.
#[inline(never)]
fn cancel_registered<Tb: EngineTable>(shared: &Shared<Tb>, ws: &mut WaitState) {
    let mut wl = WakeList::new();
    let leftover = {
        let mut st = shared.lock();
        ws.cancel(&mut st, &mut wl)
    };
    if let Some(job) = leftover {
        sync::contain(|| drop(job));
    }
    drop(wl);
}

/// A blocking wait's state, deregistered if the thread unwinds out of the wait.
struct Blocking<'a, Tb: EngineTable> {
    shared: &'a Shared<Tb>,
    ws: WaitState,
}

impl<Tb: EngineTable> Drop for Blocking<'_, Tb> {
    fn drop(&mut self) {
        cancel_locked(self.shared, &mut self.ws);
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
        crate::engine::clamp(timeout, self.shared().config.max_wait)
    }

    /// The blocking wait, for a job or the table. `stop`, when set, ends the wait early like
    /// a timeout (the worker pool's shutdown).
    pub(crate) fn block(
        &self,
        watch: Watch,
        timeout: StdDuration,
        stop: Option<&AtomicBool>,
    ) -> (OwnedOf<Tb>, bool) {
        let mut wl = WakeList::new();
        self.block_locked(self.lock(), &mut wl, watch, timeout, stop, None)
    }

    /// [`Engine::block`] sleeping on the caller's condition variable (a worker's, which the
    /// pool's shutdown notifies).
    pub(crate) fn block_parked(
        &self,
        watch: Watch,
        timeout: StdDuration,
        stop: Option<&AtomicBool>,
        park: Option<&Arc<Condvar>>,
    ) -> (OwnedOf<Tb>, bool) {
        let mut wl = WakeList::new();
        self.block_locked(self.lock(), &mut wl, watch, timeout, stop, park)
    }

    /// [`Engine::block`] with the lock already held (so a submit and its waiter's
    /// registration are one step).
    fn block_locked<'a>(
        &'a self,
        guard: sync::MutexGuard<'a, State<Tb>>,
        wl: &mut WakeList<'a>,
        watch: Watch,
        timeout: StdDuration,
        stop: Option<&AtomicBool>,
        park: Option<&Arc<Condvar>>,
    ) -> (OwnedOf<Tb>, bool) {
        let shared = self.shared();
        let timeout = self.clamp(timeout);
        // Declared in this order so that on any way out the lock is released first, then the
        // wait deregisters (if it still is registered); the caller's wake list wakes last.
        let mut wait = Blocking {
            shared,
            ws: WaitState::new(watch, timeout, shared.std_now()),
        };
        let mut st = guard;
        let cv = park.cloned().unwrap_or_else(|| Arc::new(Condvar::new()));
        loop {
            let stopped = stop.is_some_and(|s| s.load(Ordering::SeqCst));
            let step = wait.ws.step(
                shared,
                &mut st,
                WakeRef::Thread(&cv),
                &mut None,
                stopped,
                wl,
            );
            match step {
                Step::Ready(answer, timed_out) => {
                    let answer = answer.owned();
                    drop(st);
                    return (answer, timed_out);
                }
                // A thread's wake is made without user code: never asked for.
                Step::Pending | Step::NeedWake => {}
            }
            if wl.has_work() {
                // Whom this wait (or the caller's change before it, a submit) is to wake is
                // woken before it sleeps — with the lock released — then it steps again.
                drop(st);
                wl.wake_all();
                st = shared.lock();
                continue;
            }
            let left = wait
                .ws
                .deadline
                .map_or(timeout, |d| d.saturating_duration_since(shared.std_now()));
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
                Owned::Table(r) => r,
                Owned::Job(_) => after,
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
        let clock = self.shared().clock;
        let early = |r| SubmitWaitFuture {
            step: SubmitStep::Done(Some(r)),
            clock,
        };
        if let Err(e) = Self::check_return_timeout(return_timeout) {
            return early(Err(e));
        }
        let shared = self.shared();
        let timeout = self.clamp(return_timeout);
        let mut wl = WakeList::new();
        let mut st = shared.lock();
        let now = shared.now_locked(&mut st);
        let submitted = st.table.submit(job, now);
        shared.commit(&mut st, &mut wl);
        let id = match submitted {
            Ok(id) => id,
            Err(refused) => {
                // The caller's job comes back to be dropped with the lock released.
                drop(st);
                return early(Err(SubmitWaitError::Submit(refused.error)));
            }
        };
        if timeout.is_zero() {
            return early(Ok(accepted_now(&*st.table, id)));
        }
        // Registered now, under the submit's lock, with a no-op waker; the task's waker
        // replaces it at the first poll (an answer that comes before is kept in the registry).
        let mut waiting = Waiting::new(self.clone(), Watch::Job(id, Condition::Terminal), timeout);
        let mut spare = Some(Wake::Task(Waker::noop().clone()));
        let step = waiting.ws.step(
            shared,
            &mut st,
            WakeRef::Task(Waker::noop()),
            &mut spare,
            false,
            &mut wl,
        );
        let done = match step {
            Step::Ready(answer, timed_out) => Some((answer.owned(), timed_out)),
            Step::Pending | Step::NeedWake => None,
        };
        drop(st);
        match done {
            Some((answer, timed_out)) => early(Ok(submitted_of_answer(id, answer, timed_out))),
            None => SubmitWaitFuture {
                step: SubmitStep::Waiting(id, WaitFuture { waiting }),
                clock,
            },
        }
    }
}

/// A submit-and-wait's answer from a wait's raw answer.
fn submitted_of_answer<J>(id: JobId, answer: Owned<J>, timed_out: bool) -> Submitted<J> {
    match answer {
        Owned::Job(Ok(job)) if timed_out => Submitted::Accepted(job),
        Owned::Job(Ok(job)) => Submitted::Completed(job),
        Owned::Job(Err(e)) => Submitted::Removed(id, tombstone(e)),
        Owned::Table(_) => Submitted::Removed(id, None),
    }
}

/// A job wait's answer, copied (under the lock) straight into the value handed out.
fn waited<S, const T: usize, Tb>(
    answer: Answer<'_, Tb>,
    timed_out: bool,
    clock: Clock,
) -> Result<Waited<Snapshot<S, T>>, WaitError>
where
    S: Clone,
    Tb: Table<Spec = S, Job = Job<S, T>>,
{
    match answer {
        Answer::Live(job) => Ok(Waited {
            job: Snapshot::new(Tb::to_job(&job), clock),
            timed_out,
        }),
        Answer::Copy(job) => Ok(Waited {
            job: Snapshot::new(*job, clock),
            timed_out,
        }),
        Answer::Gone(e) => Err(WaitError::Lookup(e)),
        // A job wait never gets a table answer.
        Answer::Table(_) => Err(WaitError::Lookup(LookupError::NotFound)),
    }
}

/// Waits that answer with snapshots.
impl<S, const T: usize, Tb> Engine<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    fn to_waited(
        &self,
        answer: OwnedOf<Tb>,
        timed_out: bool,
    ) -> Result<Waited<Snapshot<S, T>>, WaitError> {
        match answer {
            Owned::Job(Ok(job)) => Ok(Waited {
                job: self.snapshot(job),
                timed_out,
            }),
            Owned::Job(Err(e)) => Err(WaitError::Lookup(e)),
            // A job wait never gets a table answer.
            Owned::Table(_) => Err(WaitError::Lookup(LookupError::NotFound)),
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
        let shared = self.shared();
        let mut wl = WakeList::new();
        let mut st = shared.lock();
        let now = shared.now_locked(&mut st);
        let submitted = st.table.submit(job, now);
        shared.commit(&mut st, &mut wl);
        let id = match submitted {
            Ok(id) => id,
            Err(refused) => {
                // The caller's job comes back to be dropped with the lock released.
                drop(st);
                return Err(SubmitWaitError::Submit(refused.error));
            }
        };
        if return_timeout.is_zero() {
            let accepted = accepted_now(&*st.table, id);
            drop(st);
            return Ok(snapshots(accepted, shared.clock));
        }
        // Whoever the submit woke (an idle worker, table watchers) is woken as soon as the
        // wait is registered, before it sleeps.
        let watch = Watch::Job(id, Condition::Terminal);
        let (answer, timed_out) = self.block_locked(st, &mut wl, watch, return_timeout, None, None);
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

/// The async wait: an engine handle and the wait's state.
struct Waiting<Tb: EngineTable> {
    engine: Engine<Tb>,
    ws: WaitState,
}

impl<Tb: EngineTable> Waiting<Tb> {
    fn new(engine: Engine<Tb>, watch: Watch, timeout: StdDuration) -> Self {
        let now = engine.shared().std_now();
        Self {
            engine,
            ws: WaitState::new(watch, timeout, now),
        }
    }

    /// Poll the wait: step under the lock; the task's waker is cloned (when the wait needs
    /// one) and dropped outside it, and whom the step woke is woken after it. The answer is
    /// made by `collect`, under the lock (it may copy the job it is handed).
    #[inline]
    fn poll_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        collect: impl Fn(Answer<'_, Tb>, bool, &Clock) -> R,
    ) -> Poll<R> {
        let shared = self.engine.shared();
        // A first poll registers (unless the answer is there): clone before locking.
        let mut spare = (!self.ws.is_registered()).then(|| Wake::Task(cx.waker().clone()));
        loop {
            // Declared before the guard: on every way out the lock is released first, then
            // the list wakes and drops what it holds.
            let mut wl = WakeList::new();
            let mut st = shared.lock();
            let step = self.ws.step(
                shared,
                &mut st,
                WakeRef::Task(cx.waker()),
                &mut spare,
                false,
                &mut wl,
            );
            if let Some(w) = spare.take() {
                wl.discard(w);
            }
            match step {
                // Made straight into the value returned, then the guard and the list drop.
                Step::Ready(answer, timed_out) => {
                    return Poll::Ready(collect(answer, timed_out, &shared.clock))
                }
                Step::Pending => return Poll::Pending,
                Step::NeedWake => {}
            }
            drop(st);
            drop(wl);
            spare = Some(Wake::Task(cx.waker().clone()));
        }
    }
}

impl<Tb: EngineTable> Drop for Waiting<Tb> {
    fn drop(&mut self) {
        cancel_locked(self.engine.shared(), &mut self.ws);
    }
}

/// The future of [`Engine::wait_async`]: resolves like [`Engine::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct WaitFuture<Tb: EngineTable> {
    waiting: Waiting<Tb>,
}

impl<S, const T: usize, Tb> Future for WaitFuture<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    type Output = Result<Waited<Snapshot<S, T>>, WaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut()
            .waiting
            .poll_with(cx, |answer, timed_out, clock| {
                waited(answer, timed_out, *clock)
            })
    }
}

/// The future of [`Engine::wait_table_async`].
#[must_use = "futures do nothing unless polled"]
pub struct TableWaitFuture<Tb: EngineTable> {
    waiting: Waiting<Tb>,
    after: Revision,
}

impl<Tb: EngineTable> Future for TableWaitFuture<Tb> {
    type Output = TableWaited;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TableWaited> {
        let this = self.get_mut();
        let after = this.after;
        this.waiting
            .poll_with(cx, |answer, timed_out, _| TableWaited {
                revision: match answer {
                    Answer::Table(r) => r,
                    _ => after,
                },
                timed_out,
            })
    }
}

enum SubmitStep<Tb: EngineTable> {
    /// The answer, before it became one of snapshots (the engine's clock is in the future).
    Done(Option<Result<Submitted<Tb::Job>, SubmitWaitError>>),
    Waiting(JobId, WaitFuture<Tb>),
}

/// The future of [`Engine::submit_and_wait_async`].
#[must_use = "futures do nothing unless polled"]
pub struct SubmitWaitFuture<Tb: EngineTable> {
    step: SubmitStep<Tb>,
    clock: Clock,
}

// Nothing in it is pinned structurally: the finished answer is moved out, the wait future is
// `Unpin`.
impl<Tb: EngineTable> Unpin for SubmitWaitFuture<Tb> {}

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
