//! The worker pool: threads that run a handler per job (R-SCHED, R-CONTROL worker side).
//!
//! Each worker takes the oldest runnable job ([`jobstate::JobTable::start_next`]: FIFO,
//! dependencies respected), runs the handler with a [`JobContext`], and records the handler's
//! answer: [`Success`] → `Succeeded` with its severity; [`Failure`] → `Failed(Error)` with its
//! code and message; a panic → `Failed(Error)` with the panic message, and the worker goes on.
//! A handler stopped by the pool's shutdown ([`Canceled::Shutdown`]) leaves its job to the
//! core's rule for an interrupted job ([`jobstate::JobTable::fail_with`] with
//! [`FailReason::Interrupted`]): failed `Interrupted`, or queued again when restartable.
//! Idle workers sleep on a condition variable and are woken one at a time, only when a job is
//! runnable.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use jobstate::{
    Condition, Directive, FailReason, JobError, JobId, Severity, State as JobState, Table,
};

use crate::engine::{Engine, EngineTable};
use crate::error::StartError;
use crate::registry::{WakeList, Watch};
use crate::sync::{self, Arc, AtomicBool, Condvar, JoinHandle, Mutex, Ordering};

/// A handler's good answer: the job succeeded.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Success {
    /// How well (Unified Manager's NORMAL / WARNING / PARTIAL_FAILURES).
    pub severity: Severity,
    /// The job's final message (cut to the table's text capacity).
    pub message: String,
}

impl Success {
    /// Success with this severity and message.
    pub fn new(severity: Severity, message: impl Into<String>) -> Self {
        Self {
            severity,
            message: message.into(),
        }
    }

    /// `Normal` success with a message.
    pub fn normal(message: impl Into<String>) -> Self {
        Self::new(Severity::Normal, message)
    }
}

impl From<Severity> for Success {
    fn from(severity: Severity) -> Self {
        Self::new(severity, "")
    }
}

/// A handler's bad answer: the job failed with this reason (`Error` for the handler's own
/// failures), code and message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Failure {
    /// Why: [`FailReason::Error`] for the handler's own failure ([`Failure::new`]);
    /// [`FailReason::Interrupted`] when it stopped for the pool's shutdown (a restartable job
    /// is queued again then).
    pub reason: FailReason,
    /// The error code clients see.
    pub code: i32,
    /// The error message clients see (cut to the table's text capacity).
    pub message: String,
}

impl Failure {
    /// A failure of the handler's own (reason `Error`) with this code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            reason: FailReason::Error,
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for Failure {}

/// Why [`JobContext::checkpoint`] tells the handler to stop.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Canceled {
    /// A client canceled the job; it is `Failed(Canceled)` now.
    Requested,
    /// The job is no longer this handler's: it ended without it (deadline or lease passed:
    /// `Failed(TimedOut)`), or went back to the queue for a retry. Whatever the handler
    /// answers then is not recorded.
    Ended,
    /// The pool is shutting down. The job is still live; if the handler returns this as its
    /// failure, the job fails with [`FailReason::Interrupted`] and "worker pool shut down" —
    /// or, when restartable, goes back to the queue for the next pool.
    Shutdown,
}

impl fmt::Display for Canceled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Canceled::Requested => "canceled",
            Canceled::Ended => "job ended",
            Canceled::Shutdown => "worker pool shut down",
        })
    }
}

impl std::error::Error for Canceled {}

impl From<Canceled> for Failure {
    fn from(c: Canceled) -> Self {
        let reason = match c {
            Canceled::Requested => FailReason::Canceled,
            Canceled::Ended => FailReason::TimedOut,
            Canceled::Shutdown => FailReason::Interrupted,
        };
        Failure {
            reason,
            code: reason.default_code(),
            message: c.to_string(),
        }
    }
}

/// The pool's own state, shared by its threads and its handle.
struct PoolShared {
    /// Shutting down: take no more jobs; checkpoints answer [`Canceled::Shutdown`].
    stop: AtomicBool,
    /// One per worker thread.
    workers: Vec<WorkerSlot>,
    /// The start gate and who has exited.
    state: Mutex<PoolState>,
    /// Notified when the gate opens and when a worker exits.
    changed: Condvar,
}

struct WorkerSlot {
    /// The job it runs. Changed under the engine lock (so a shutdown's interruption and the
    /// worker's own recording never cross).
    job: Mutex<Option<JobId>>,
    /// Left behind by a shutdown's deadline: whatever it does now is not recorded. Set and
    /// read under the engine lock.
    abandoned: AtomicBool,
    /// Where its checkpoint parks while the job is paused (the shutdown wakes it here).
    park: Arc<Condvar>,
}

#[derive(Default)]
struct PoolState {
    /// Every thread started: workers may take jobs.
    open: bool,
    /// Which workers have left their loop.
    exited: Vec<bool>,
}

impl PoolShared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn abandoned(&self, me: usize) -> bool {
        self.workers
            .get(me)
            .is_some_and(|w| w.abandoned.load(Ordering::SeqCst))
    }

    fn set_job(&self, me: usize, job: Option<JobId>) {
        if let Some(w) = self.workers.get(me) {
            *sync::lock(&w.job) = job;
        }
    }

    fn job(&self, me: usize) -> Option<JobId> {
        self.workers.get(me).and_then(|w| *sync::lock(&w.job))
    }

    /// Wait until every thread is started (`true`) or the pool stops first (`false`).
    fn wait_open(&self) -> bool {
        let mut st = sync::lock(&self.state);
        loop {
            if self.stopping() {
                return false;
            }
            if st.open {
                return true;
            }
            st = sync::wait(&self.changed, st);
        }
    }
}

/// Marks its worker as exited however its thread ends.
struct Exit<'a> {
    pool: &'a PoolShared,
    me: usize,
}

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        let mut st = sync::lock(&self.pool.state);
        if let Some(e) = st.exited.get_mut(self.me) {
            *e = true;
        }
        drop(st);
        self.pool.changed.notify_all();
    }
}

/// What a handler sees of its job.
pub struct JobContext<'a, Tb: Table> {
    engine: &'a Engine<Tb>,
    id: JobId,
    spec: Tb::Spec,
    pool: &'a PoolShared,
    me: usize,
}

impl<Tb: EngineTable> JobContext<'_, Tb> {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// The job's spec: what to do.
    pub fn spec(&self) -> &Tb::Spec {
        &self.spec
    }

    /// The engine (to submit follow-up jobs, for example).
    pub fn engine(&self) -> &Engine<Tb> {
        self.engine
    }

    /// A change to this handler's job, unless a shutdown left the handler behind (then
    /// `NotRunning`: the job is no longer its own).
    fn own<R>(
        &self,
        f: impl FnOnce(&mut Tb, jobstate::Instant) -> Result<R, JobError>,
    ) -> Result<R, JobError> {
        self.engine.update_hinted(Some(self.id), |t, now| {
            if self.pool.abandoned(self.me) {
                Err(JobError::NotRunning)
            } else {
                f(t, now)
            }
        })
    }

    /// Report progress (0–100 %) and a short message; renews the heartbeat lease.
    pub fn progress(&mut self, percent: u8, message: &str) -> Result<(), JobError> {
        let id = self.id;
        self.own(|t, now| t.progress(id, percent, message, now))
    }

    /// Append a line to the job's log (the journal).
    pub fn log(&mut self, line: &str) -> Result<(), JobError> {
        let id = self.id;
        self.own(|t, now| t.log(id, line, now))
    }

    /// Renew the heartbeat lease.
    pub fn heartbeat(&mut self) -> Result<(), JobError> {
        let id = self.id;
        self.own(|t, now| t.heartbeat(id, now))
    }

    /// Check in (R-CONTROL): `Ok(())` to go on; blocks while the job is paused (until resume
    /// or cancel); `Err` when the handler must stop — return it (`?` turns it into a
    /// [`Failure`]). Renews the heartbeat lease.
    pub fn checkpoint(&mut self) -> Result<(), Canceled> {
        let id = self.id;
        loop {
            if self.pool.stopping() {
                return Err(Canceled::Shutdown);
            }
            // The revision is read under the same lock as the checkpoint, so a resume or cancel
            // that comes right after cannot be missed. Any change wakes the paused worker: a
            // resume is a state change, a cancel request only sets a flag.
            let answer = self.own(|t, now| {
                let d = t.checkpoint(id, now)?;
                Ok((d, t.get(id).map(|j| j.revision())))
            });
            match answer {
                Ok((Directive::Canceled, _)) => return Err(Canceled::Requested),
                Ok((Directive::Pause, seen)) => {
                    let Ok(seen) = seen else {
                        return Err(Canceled::Ended);
                    };
                    let watch = Watch::Job(id, Condition::ChangedSince(seen));
                    let max = self.engine.config().max_wait;
                    let park = self.pool.workers.get(self.me).map(|w| &w.park);
                    let _ = self
                        .engine
                        .block_parked(watch, max, Some(&self.pool.stop), park);
                }
                // `Continue`, and any directive this adapter does not know: go on.
                Ok(_) => return Ok(()),
                Err(_) => return Err(Canceled::Ended),
            }
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn fit(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or("")
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("handler panicked: {what}")
}

/// How a [`WorkerPool::shutdown_within`] went.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Worker threads that stopped within the grace period (joined).
    pub joined: usize,
    /// Worker threads still busy at the deadline: detached, never joined. Whatever their
    /// handlers do from then on is not recorded.
    pub abandoned: usize,
    /// The jobs those handlers were running: failed [`FailReason::Interrupted`] at the
    /// deadline (restartable ones queued again), as a crash would have left them.
    pub interrupted: Vec<JobId>,
}

/// A pool of worker threads running a handler per job.
///
/// ```
/// use std::time::Duration;
/// use jobstate::{Condition, NewJob, State};
/// use jobstate_std::{Engine, EngineConfig, Success, WorkerPool};
///
/// let engine: Engine<jobstate::JobTable<u32, 16>> = Engine::new(EngineConfig::default());
/// let pool = WorkerPool::start(engine.clone(), 2, |ctx| {
///     ctx.progress(50, "half way")?;
///     ctx.checkpoint()?;
///     Ok(Success::normal(format!("squared: {}", ctx.spec() * ctx.spec())))
/// })
/// .expect("worker threads start");
/// let id = engine.submit(NewJob::new(7)).unwrap();
/// let done = engine.wait(id, Condition::Terminal, Duration::from_secs(10)).unwrap();
/// assert_eq!(done.job.state(), State::Succeeded);
/// assert_eq!(done.job.message(), "squared: 49");
/// let report = pool.shutdown_within(Duration::from_secs(5));
/// assert!(report.interrupted.is_empty());
/// ```
pub struct WorkerPool {
    pool: Arc<PoolShared>,
    threads: Vec<JoinHandle<()>>,
    /// Wake idle workers and parked checkpoints (after `stop` is set).
    wake: Box<dyn Fn() + Send + Sync>,
    /// At the deadline: leave the still-running handlers behind and fail their jobs
    /// `Interrupted`; answers those jobs.
    interrupt: Box<dyn Fn() -> Vec<JobId> + Send + Sync>,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &self.threads.len())
            .field(
                "running",
                &(0..self.pool.workers.len())
                    .filter(|me| self.pool.job(*me).is_some())
                    .count(),
            )
            .field("stopping", &self.pool.stopping())
            .finish()
    }
}

impl From<JobError> for Failure {
    fn from(e: JobError) -> Self {
        Failure::new(FailReason::Error.default_code(), e.to_string())
    }
}

/// The message of a job whose handler a shutdown left behind.
const ABANDONED: &str = "worker pool shut down: the handler did not stop in time";

impl WorkerPool {
    /// Start `threads` workers (at least one) running `handler` for each job. No worker takes
    /// a job before every thread has started; if one cannot start, those already started are
    /// stopped and joined, no job was touched, and the error says why.
    pub fn start<Tb: EngineTable, F>(
        engine: Engine<Tb>,
        threads: usize,
        handler: F,
    ) -> Result<WorkerPool, StartError>
    where
        F: Fn(&mut JobContext<'_, Tb>) -> Result<Success, Failure> + Send + Sync + 'static,
    {
        let n = threads.max(1);
        let pool = Arc::new(PoolShared {
            stop: AtomicBool::new(false),
            workers: (0..n)
                .map(|_| WorkerSlot {
                    job: Mutex::new(None),
                    abandoned: AtomicBool::new(false),
                    park: Arc::new(Condvar::new()),
                })
                .collect(),
            state: Mutex::new(PoolState {
                open: false,
                exited: vec![false; n],
            }),
            changed: Condvar::new(),
        });
        let handler = Arc::new(handler);
        let wake = {
            let (engine, pool) = (engine.clone(), pool.clone());
            Box::new(move || {
                // Taken after `stop` was set: a worker about to sleep has either seen it or is
                // waiting on its condition variable already.
                let _st = engine.lock();
                engine.shared().work_cv.notify_all();
                for w in &pool.workers {
                    w.park.notify_all();
                }
            })
        };
        let interrupt = {
            let (engine, pool) = (engine.clone(), pool.clone());
            Box::new(move || interrupt(&engine, &pool))
        };
        let mut me = WorkerPool {
            pool: pool.clone(),
            threads: Vec::with_capacity(n),
            wake,
            interrupt,
        };
        for k in 0..n {
            let (engine, handler, shared) = (engine.clone(), handler.clone(), pool.clone());
            let spawned = sync::spawn(format!("jobstate-worker-{k}"), move || {
                let _exit = Exit {
                    pool: &shared,
                    me: k,
                };
                if shared.wait_open() {
                    work(&engine, &*handler, &shared, k);
                }
            });
            match spawned {
                Ok(h) => me.threads.push(h),
                Err(e) => {
                    // The unstarted ones count as exited; the started ones stop at the gate.
                    {
                        let mut st = sync::lock(&pool.state);
                        for x in st.exited.iter_mut().skip(k) {
                            *x = true;
                        }
                    }
                    me.stop_within(None);
                    return Err(StartError::new("worker thread", e));
                }
            }
        }
        sync::lock(&pool.state).open = true;
        pool.changed.notify_all();
        Ok(me)
    }

    /// How many worker threads run.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Stop taking jobs; running handlers see [`Canceled::Shutdown`] at their next checkpoint
    /// (paused ones are woken for it) and their jobs end as interrupted (restartable ones are
    /// queued again); then join every thread. Waits as long as a handler takes to check in —
    /// forever for one that never does: prefer [`WorkerPool::shutdown_within`].
    pub fn shutdown(mut self) {
        self.stop_within(None);
    }

    /// [`WorkerPool::shutdown`] with a deadline: handlers get `grace` to see
    /// [`Canceled::Shutdown`] and return. Jobs still running then get what a crash would
    /// give them — [`FailReason::Interrupted`] (restartable ones go back to the queue) —
    /// and the threads running their handlers are detached rather than waited for: what
    /// those handlers do afterwards is not recorded (their [`JobContext`] calls answer
    /// `NotRunning` / [`Canceled::Ended`]). Queued jobs stay queued.
    pub fn shutdown_within(mut self, grace: std::time::Duration) -> ShutdownReport {
        self.stop_within(Some(grace))
    }

    fn stop_within(&mut self, grace: Option<std::time::Duration>) -> ShutdownReport {
        let pool = &*self.pool;
        pool.stop.store(true, Ordering::SeqCst);
        pool.changed.notify_all();
        (self.wake)();
        let deadline = grace.and_then(|g| std::time::Instant::now().checked_add(g));
        let all_out = |st: &PoolState| st.exited.iter().all(|e| *e);
        let mut st = sync::lock(&pool.state);
        while !all_out(&st) {
            match deadline {
                None => st = sync::wait(&pool.changed, st),
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    st = sync::wait_timeout(&pool.changed, st, left);
                }
            }
        }
        let done = all_out(&st);
        drop(st);
        let interrupted = if done { Vec::new() } else { (self.interrupt)() };
        let exited = sync::lock(&pool.state).exited.clone();
        let mut report = ShutdownReport {
            interrupted,
            ..ShutdownReport::default()
        };
        for (k, h) in self.threads.drain(..).enumerate() {
            if exited.get(k).copied().unwrap_or(true) {
                let _ = h.join();
                report.joined = report.joined.saturating_add(1);
            } else {
                report.abandoned = report.abandoned.saturating_add(1);
            }
        }
        report
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_within(None);
        }
    }
}

/// The shutdown's deadline passed: every worker still out is left behind, and the job it
/// runs fails `Interrupted`, as a crash would leave it (the core queues a restartable job
/// again). Under the engine lock, so a worker recording its handler's answer at the same time
/// either did so first or sees that it was left behind.
fn interrupt<Tb: EngineTable>(engine: &Engine<Tb>, pool: &PoolShared) -> Vec<JobId> {
    let exited = sync::lock(&pool.state).exited.clone();
    engine.update(|t, now| {
        let mut jobs = Vec::new();
        for (me, w) in pool.workers.iter().enumerate() {
            if exited.get(me).copied().unwrap_or(true) {
                continue;
            }
            w.abandoned.store(true, Ordering::SeqCst);
            let Some(id) = *sync::lock(&w.job) else {
                continue;
            };
            let live = t
                .get(id)
                .is_ok_and(|j| matches!(j.state(), JobState::Running | JobState::Paused));
            if live {
                let message = fit(ABANDONED, Tb::TEXT);
                let _ = t.fail_with(id, FailReason::Interrupted, None, message, now);
            }
            jobs.push(id);
        }
        jobs
    })
}

/// One worker thread's loop. Nothing a handler, a spec or a waker does ends it: each is
/// contained, and the worker goes on with the next job.
fn work<Tb: EngineTable, F>(engine: &Engine<Tb>, handler: &F, pool: &PoolShared, me: usize)
where
    F: Fn(&mut JobContext<'_, Tb>) -> Result<Success, Failure>,
{
    while let Some((id, attempt, spec)) = next_job(engine, pool, me) {
        let mut ctx = JobContext {
            engine,
            id,
            spec,
            pool,
            me,
        };
        let answer = catch_unwind(AssertUnwindSafe(|| handler(&mut ctx)));
        let JobContext { spec, .. } = ctx;
        sync::contain(|| drop(spec));
        let answer = match answer {
            Ok(a) => Ok(a),
            Err(panic) => {
                let message = panic_message(&*panic);
                sync::forget_payload(panic);
                Err(message)
            }
        };
        let recorded = catch_unwind(AssertUnwindSafe(|| {
            record(engine, pool, me, id, attempt, &answer);
        }));
        if let Err(panic) = recorded {
            sync::forget_payload(panic);
        }
        sync::contain(|| drop(answer));
        if pool.abandoned(me) {
            return;
        }
    }
}

/// Record the handler's answer, while the job is still this worker's: not once it ended
/// without the handler (canceled, timed out), nor once it went back to the queue for a retry
/// (and perhaps to another worker), nor once a shutdown left this worker behind.
fn record<Tb: EngineTable>(
    engine: &Engine<Tb>,
    pool: &PoolShared,
    me: usize,
    id: JobId,
    attempt: u8,
    answer: &Result<Result<Success, Failure>, String>,
) {
    let text = Tb::TEXT;
    engine.update_hinted(Some(id), |t, now| {
        if pool.abandoned(me) {
            return;
        }
        pool.set_job(me, None);
        let mine = t.get(id).is_ok_and(|j| {
            j.attempt() == attempt && matches!(j.state(), JobState::Running | JobState::Paused)
        });
        if !mine {
            return;
        }
        // Errors here mean the job ended just now (its deadline passed): nothing to record.
        let _ = match answer {
            Ok(Ok(success)) => t.succeed(id, success.severity, fit(&success.message, text), now),
            // The handler's own failure retries through the job's policy (R-RETRY).
            Ok(Err(failure)) if failure.reason == FailReason::Error => {
                t.fail(id, failure.code, fit(&failure.message, text), now)
            }
            Ok(Err(failure)) => t.fail_with(
                id,
                failure.reason,
                Some(failure.code),
                fit(&failure.message, text),
                now,
            ),
            Err(message) => t.fail(
                id,
                FailReason::Error.default_code(),
                fit(message, text),
                now,
            ),
        };
    });
}

/// Take the oldest runnable job, sleeping while there is none; `None` once stopping.
/// Answers the job, which attempt of it this is, and its spec (a clone: a `Clone` that panics
/// fails the job, and the worker takes the next).
fn next_job<Tb: EngineTable>(
    engine: &Engine<Tb>,
    pool: &PoolShared,
    me: usize,
) -> Option<(JobId, u8, Tb::Spec)> {
    let shared = engine.shared();
    loop {
        let mut wl = WakeList::new();
        let mut st = shared.lock();
        loop {
            if pool.stopping() {
                return None;
            }
            if let Some(id) = st.table.start_next(shared.now()) {
                shared.commit(&mut st, &mut wl);
                pool.set_job(me, Some(id));
                let table = &st.table;
                let taken = catch_unwind(AssertUnwindSafe(|| {
                    table.get(id).map(|j| (j.attempt(), j.spec().clone()))
                }));
                match taken {
                    Ok(Ok((attempt, spec))) => return Some((id, attempt, spec)),
                    Ok(Err(_)) => pool.set_job(me, None),
                    Err(panic) => {
                        sync::forget_payload(panic);
                        let message = fit("the job's spec panicked when cloned", Tb::TEXT);
                        let code = FailReason::Error.default_code();
                        let now = shared.now();
                        let _ = st.table.fail(id, code, message, now);
                        shared.commit(&mut st, &mut wl);
                        pool.set_job(me, None);
                    }
                }
                // Wake whom this woke before sleeping.
                break;
            }
            st.idle_workers = st.idle_workers.saturating_add(1);
            st = sync::wait(&shared.work_cv, st);
            st.idle_workers = st.idle_workers.saturating_sub(1);
        }
    }
}
