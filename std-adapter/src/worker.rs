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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use jobstate::{
    Condition, Directive, FailReason, JobError, JobId, Severity, State as JobState, Table,
};

use crate::engine::{Engine, EngineTable};
use crate::registry::Watch;
use crate::sync;

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

/// What a handler sees of its job.
pub struct JobContext<'a, Tb: Table> {
    engine: &'a Engine<Tb>,
    id: JobId,
    spec: Tb::Spec,
    stop: &'a AtomicBool,
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

    /// Report progress (0–100 %) and a short message; renews the heartbeat lease.
    pub fn progress(&mut self, percent: u8, message: &str) -> Result<(), JobError> {
        self.engine.progress(self.id, percent, message)
    }

    /// Append a line to the job's log (the journal).
    pub fn log(&mut self, line: &str) -> Result<(), JobError> {
        self.engine.log(self.id, line)
    }

    /// Renew the heartbeat lease.
    pub fn heartbeat(&mut self) -> Result<(), JobError> {
        self.engine.heartbeat(self.id)
    }

    /// Check in (R-CONTROL): `Ok(())` to go on; blocks while the job is paused (until resume
    /// or cancel); `Err` when the handler must stop — return it (`?` turns it into a
    /// [`Failure`]). Renews the heartbeat lease.
    pub fn checkpoint(&mut self) -> Result<(), Canceled> {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Err(Canceled::Shutdown);
            }
            // The revision is read under the same lock as the checkpoint, so a resume or cancel
            // that comes right after cannot be missed. Any change wakes the paused worker: a
            // resume is a state change, a cancel request only sets a flag.
            let (directive, seen) = self.engine.update(|t, now| {
                let d = t.checkpoint(self.id, now);
                (d, t.get(self.id).map(|j| j.revision()))
            });
            match directive {
                Ok(Directive::Canceled) => return Err(Canceled::Requested),
                Ok(Directive::Pause) => {
                    let Ok(seen) = seen else {
                        return Err(Canceled::Ended);
                    };
                    let watch = Watch::Job(self.id, Condition::ChangedSince(seen));
                    let max = self.engine.config().max_wait;
                    let _ = self.engine.block(watch, max, Some(self.stop));
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
/// });
/// let id = engine.submit(NewJob::new(7)).unwrap();
/// let done = engine.wait(id, Condition::Terminal, Duration::from_secs(10)).unwrap();
/// assert_eq!(done.job.state(), State::Succeeded);
/// assert_eq!(done.job.message(), "squared: 49");
/// pool.shutdown();
/// ```
pub struct WorkerPool {
    stop: Arc<AtomicBool>,
    /// The job each worker runs, if any (shutdown wakes their parked checkpoints).
    running: Arc<Mutex<Vec<Option<JobId>>>>,
    threads: Vec<JoinHandle<()>>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &self.threads.len())
            .field(
                "running",
                &self.running.lock().map(|r| r.iter().flatten().count()).ok(),
            )
            .field("stopping", &self.stop.load(Ordering::Relaxed))
            .finish()
    }
}

impl From<JobError> for Failure {
    fn from(e: JobError) -> Self {
        Failure::new(FailReason::Error.default_code(), e.to_string())
    }
}

impl WorkerPool {
    /// Start `threads` workers (at least one) running `handler` for each job.
    pub fn start<Tb: EngineTable, F>(engine: Engine<Tb>, threads: usize, handler: F) -> WorkerPool
    where
        F: Fn(&mut JobContext<'_, Tb>) -> Result<Success, Failure> + Send + Sync + 'static,
    {
        let threads = threads.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(Mutex::new(vec![None; threads]));
        let handler = Arc::new(handler);
        let mut handles = Vec::new();
        for n in 0..threads {
            let (engine, handler) = (engine.clone(), handler.clone());
            let (stop, running) = (stop.clone(), running.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("jobstate-worker-{n}"))
                .spawn(move || work(&engine, &*handler, &stop, &running, n));
            if let Ok(h) = spawned {
                handles.push(h);
            }
        }
        let jobs = running.clone();
        let wake = Box::new(move || {
            let mut st = engine.lock();
            engine.shared.work_cv.notify_all();
            let jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
            for id in jobs.iter().flatten() {
                st.waiters.poke_job(*id);
            }
        });
        WorkerPool {
            stop,
            running,
            threads: handles,
            wake,
        }
    }

    /// How many worker threads run.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Stop taking jobs; running handlers see [`Canceled::Shutdown`] at their next checkpoint
    /// (paused ones are woken for it) and their jobs end as interrupted (restartable ones are
    /// queued again); then join every thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        (self.wake)();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_and_join();
        }
    }
}

/// One worker thread.
fn work<Tb: EngineTable, F>(
    engine: &Engine<Tb>,
    handler: &F,
    stop: &AtomicBool,
    running: &Mutex<Vec<Option<JobId>>>,
    me: usize,
) where
    F: Fn(&mut JobContext<'_, Tb>) -> Result<Success, Failure>,
{
    let set_running = |job: Option<JobId>| {
        let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = r.get_mut(me) {
            *slot = job;
        }
    };
    while let Some((id, spec, attempt)) = next_job(engine, stop) {
        set_running(Some(id));
        let mut ctx = JobContext {
            engine,
            id,
            spec,
            stop,
        };
        let answer = catch_unwind(AssertUnwindSafe(|| handler(&mut ctx)));
        let text = Tb::TEXT;
        engine.update(|t, now| {
            // Only while the job is still this worker's: not once it ended without the
            // handler (canceled, timed out), nor once it went back to the queue for a retry
            // (and perhaps to another worker).
            let mine = t.get(id).is_ok_and(|j| {
                j.attempt() == attempt && matches!(j.state(), JobState::Running | JobState::Paused)
            });
            if !mine {
                return;
            }
            // Errors here mean the job ended just now (its deadline passed): nothing to record.
            let _ = match &answer {
                Ok(Ok(success)) => {
                    t.succeed(id, success.severity, fit(&success.message, text), now)
                }
                Ok(Err(failure)) => t.fail_with(
                    id,
                    failure.reason,
                    Some(failure.code),
                    fit(&failure.message, text),
                    now,
                ),
                Err(panic) => {
                    let message = panic_message(&**panic);
                    t.fail(
                        id,
                        FailReason::Error.default_code(),
                        fit(&message, text),
                        now,
                    )
                }
            };
        });
        set_running(None);
    }
}

/// Take the oldest runnable job, sleeping while there is none; `None` once stopping.
/// Answers the job, its spec and which attempt of it this is.
fn next_job<Tb: EngineTable>(
    engine: &Engine<Tb>,
    stop: &AtomicBool,
) -> Option<(JobId, Tb::Spec, u8)> {
    let mut st = engine.lock();
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(id) = st.table.start_next(engine.now()) {
            let job = st.table.get(id).map(|j| (j.spec().clone(), j.attempt()));
            engine.shared.commit(&mut st);
            if let Ok((spec, attempt)) = job {
                return Some((id, spec, attempt));
            }
            continue;
        }
        st.idle_workers = st.idle_workers.saturating_add(1);
        st = sync::wait(&engine.shared.work_cv, st);
        st.idle_workers = st.idle_workers.saturating_sub(1);
    }
}
