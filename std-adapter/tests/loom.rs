//! Loom models of the wait protocol, the timer path and the worker pool's parking.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p jobstate-std --test loom --release`. Under
//! `cfg(loom)` the engine's lock, condition variables, `Arc`, atomics and threads are loom's
//! (see `src/sync.rs`), so loom explores every interleaving of the very code the engine runs.
//! Time is the model's: `model_advance` moves the clock on and runs the engine's timer round
//! (the timer thread's own code: job timers, then every wait whose deadline passed);
//! `model_tick` moves it on and tells the real timer thread (a loom thread) to look.
//!
//! Proven, for every interleaving:
//! * no lost wake-up: a waiter whose job ends is always woken (loom reports a deadlock if a
//!   waiter could sleep forever) and gets the terminal snapshot;
//! * a timeout from the timer round racing a notification ends the wait either way, never
//!   both, never neither — blocking and async;
//! * a job deadline fired by the timer round racing the worker's success ends the job once,
//!   and its waiter sees the end;
//! * the timer thread's sleep never misses a deadline that a wait registers meanwhile;
//! * a future dropped while a notifier is waking it is woken at most once, and the engine
//!   keeps no clone of its waker;
//! * a worker parked in `checkpoint` by a pause is always woken by the resume, and by the
//!   pool's shutdown;
//! * nothing stays registered after any wait returns.
#![cfg(loom)]

use std::sync::Arc as StdArc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use jobstate::{Condition, FailReason, JobOptions, NewJob, Outcome, Severity, State};
use jobstate_std::{Engine, EngineConfig, Success, WorkerPool, DEFAULT_MAX_WAIT};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;

type E = Engine<jobstate::JobTable<u8, 2>>;
const LONG: Duration = DEFAULT_MAX_WAIT;
/// Past every wait's deadline, short of the default retention (300 s).
const PAST_LONG: Duration = Duration::from_secs(200);

fn engine() -> E {
    Engine::new(EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    })
}

/// An engine with one running job: the starting point of most models.
fn running_job() -> (E, jobstate::JobId) {
    let e = engine();
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start(id).unwrap();
    (e, id)
}

/// A model with a bound on preemptions (the pool and timer-thread models are large).
fn bounded(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(f);
}

#[test]
fn loom_blocking_wait_never_misses_the_end() {
    loom::model(|| {
        let (e, id) = running_job();
        let e2 = e.clone();
        let waiter = loom::thread::spawn(move || e2.wait(id, Condition::Terminal, LONG));
        e.succeed(id, Severity::Normal, "ok").unwrap();
        let w = waiter.join().unwrap().unwrap();
        assert!(!w.timed_out);
        assert_eq!(w.job.state(), State::Succeeded);
        assert_eq!(e.waiting(), 0);
    });
}

#[test]
fn loom_blocking_timeout_racing_notify_ends_the_wait_exactly_once() {
    loom::model(|| {
        let (e, id) = running_job();
        let (e2, e3) = (e.clone(), e.clone());
        let waiter = loom::thread::spawn(move || e2.wait(id, Condition::Terminal, LONG));
        let clock = loom::thread::spawn(move || e3.model_advance(PAST_LONG));
        e.succeed(id, Severity::Normal, "ok").unwrap();
        clock.join().unwrap();
        let w = waiter.join().unwrap().unwrap();
        if !w.timed_out {
            assert_eq!(w.job.state(), State::Succeeded);
        }
        assert_eq!(e.waiting(), 0);
    });
}

#[test]
fn loom_async_wait_never_misses_the_end() {
    loom::model(|| {
        let (e, id) = running_job();
        let e2 = e.clone();
        let waiter = loom::thread::spawn(move || {
            loom::future::block_on(e2.wait_async(id, Condition::Terminal, LONG))
        });
        e.succeed(id, Severity::Normal, "ok").unwrap();
        let w = waiter.join().unwrap().unwrap();
        assert!(!w.timed_out);
        assert_eq!(w.job.state(), State::Succeeded);
        assert_eq!(e.waiting(), 0);
    });
}

#[test]
fn loom_async_timeout_racing_notify() {
    loom::model(|| {
        let (e, id) = running_job();
        let (e2, e3) = (e.clone(), e.clone());
        let waiter = loom::thread::spawn(move || {
            loom::future::block_on(e2.wait_async(id, Condition::Terminal, LONG))
        });
        let clock = loom::thread::spawn(move || e3.model_advance(PAST_LONG));
        e.succeed(id, Severity::Normal, "ok").unwrap();
        clock.join().unwrap();
        let w = waiter.join().unwrap().unwrap();
        if !w.timed_out {
            assert_eq!(w.job.state(), State::Succeeded);
        }
        assert_eq!(e.waiting(), 0);
    });
}

/// A progress (not the awaited change) racing the timeout: the wait ends by timeout, once,
/// with the job as it is.
#[test]
fn loom_async_timeout_racing_an_unrelated_change() {
    loom::model(|| {
        let (e, id) = running_job();
        let e3 = e.clone();
        // Made here, so its deadline is set before the clock moves past it.
        let wait = e.wait_async(id, Condition::Terminal, LONG);
        let waiter = loom::thread::spawn(move || loom::future::block_on(wait));
        let clock = loom::thread::spawn(move || e3.model_advance(PAST_LONG));
        e.progress(id, 5, "").unwrap();
        clock.join().unwrap();
        let w = waiter.join().unwrap().unwrap();
        assert!(w.timed_out);
        assert_eq!(w.job.state(), State::Running);
        assert_eq!(e.waiting(), 0);
    });
}

/// The job timer path: the timer round's `expire` fails a job past its run timeout while the
/// worker succeeds it; either way the job ends once and its waiter sees the end.
#[test]
fn loom_job_deadline_racing_success() {
    loom::model(|| {
        let e: E = Engine::new(EngineConfig::default());
        let options = JobOptions {
            run_timeout: Some(jobstate::Duration::from_secs(1)),
            ..JobOptions::DEFAULT
        };
        let id = e.submit(NewJob::new(1).options(options)).unwrap();
        e.start(id).unwrap();
        let (e2, e3) = (e.clone(), e.clone());
        let waiter = loom::thread::spawn(move || e2.wait(id, Condition::Terminal, LONG));
        let clock = loom::thread::spawn(move || e3.model_advance(Duration::from_secs(2)));
        let worker = e.succeed(id, Severity::Normal, "ok");
        clock.join().unwrap();
        let w = waiter.join().unwrap().unwrap();
        assert!(!w.timed_out);
        match w.job.outcome() {
            Some(Outcome::Succeeded { .. }) => assert!(worker.is_ok()),
            Some(Outcome::Failed {
                reason: FailReason::TimedOut,
                ..
            }) => assert!(worker.is_err()),
            other => panic!("unexpected outcome {other:?}"),
        }
        assert_eq!(e.waiting(), 0);
    });
}

/// The real timer thread (a loom thread running the engine's timer loop): a wait registered
/// while it sleeps is timed out once the clock passes its deadline — the wake-up that tells
/// the timer thread about the new deadline, and the one that tells it the clock moved, are
/// never lost. (Loom reports a deadlock otherwise.)
#[test]
fn loom_timer_thread_times_out_a_wait_registered_while_it_sleeps() {
    bounded(|| {
        let e: E = Engine::model_with_timer_thread(EngineConfig {
            timer_thread: false,
            ..EngineConfig::default()
        });
        let id = e.submit(NewJob::new(1)).unwrap();
        let e2 = e.clone();
        let waiter = loom::thread::spawn(move || {
            loom::future::block_on(e2.wait_async(id, Condition::Terminal, Duration::from_secs(1)))
        });
        // The clock moves past the deadline only once the wait is registered.
        while e.waiting() == 0 {
            loom::thread::yield_now();
        }
        e.model_tick(Duration::from_secs(2));
        let w = waiter.join().unwrap().unwrap();
        assert!(w.timed_out);
        assert_eq!(e.waiting(), 0);
    });
}

/// A waker that counts its wakes and knows when the engine dropped its clone.
struct Counting {
    wakes: Arc<AtomicUsize>,
}

impl Wake for Counting {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &StdArc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Wakers are woken after the engine lock is released, so a future dropped while its
/// notifier holds its waker may still be woken — once, never more — and the engine keeps no
/// clone of the waker once both are done.
#[test]
fn loom_dropped_future_is_woken_at_most_once_and_released() {
    loom::model(|| {
        let (e, id) = running_job();
        let wakes = Arc::new(AtomicUsize::new(0));
        let counting = StdArc::new(Counting {
            wakes: wakes.clone(),
        });
        let waker = Waker::from(counting.clone());
        let mut fut = e.wait_async(id, Condition::Terminal, LONG);
        let first = std::pin::Pin::new(&mut fut).poll_ready(&mut Context::from_waker(&waker));
        assert!(first.is_pending());
        drop(waker);
        let e2 = e.clone();
        let finisher = loom::thread::spawn(move || e2.succeed(id, Severity::Normal, "ok"));
        drop(fut);
        finisher.join().unwrap().unwrap();
        assert!(wakes.load(Ordering::SeqCst) <= 1);
        assert_eq!(
            StdArc::strong_count(&counting),
            1,
            "the engine kept a waker"
        );
        assert_eq!(e.waiting(), 0);
    });
}

/// Wait (long-polling state changes) until the job is in `state`.
fn until_state(e: &E, id: jobstate::JobId, state: State) {
    loop {
        let job = e.get(id).unwrap();
        if job.state() == state {
            return;
        }
        assert!(!job.is_terminal(), "ended as {:?}", job.state());
        let _ = e
            .wait(id, Condition::StateChangedSince(job.state_revision()), LONG)
            .unwrap();
    }
}

/// Pool model: one worker whose handler waits for its pause request, then checks in (and so
/// parks); the client waits until the job is `Paused`.
fn parked_worker(e: &E) -> (WorkerPool, jobstate::JobId) {
    let pool = WorkerPool::start(e.clone(), 1, |ctx| {
        let id = ctx.id();
        // Any change after the start: the pause request.
        let started = ctx.engine().get(id).unwrap().state_revision();
        let _ = ctx
            .engine()
            .wait(id, Condition::ChangedSince(started), LONG)
            .unwrap();
        ctx.checkpoint()?;
        Ok(Success::normal("done"))
    })
    .unwrap();
    let id = e.submit(NewJob::new(1)).unwrap();
    until_state(e, id, State::Running);
    e.request_pause(id).unwrap();
    until_state(e, id, State::Paused);
    (pool, id)
}

fn failed(reason: FailReason) -> Option<Outcome> {
    Some(Outcome::Failed {
        reason,
        code: reason.default_code(),
    })
}

#[test]
fn loom_pool_resume_wakes_the_parked_checkpoint() {
    bounded(|| {
        let e = engine();
        let (pool, id) = parked_worker(&e);
        e.request_resume(id).unwrap();
        let end = e.wait(id, Condition::Terminal, LONG).unwrap();
        assert_eq!(end.job.state(), State::Succeeded);
        pool.shutdown();
        assert_eq!(e.waiting(), 0);
    });
}

#[test]
fn loom_pool_cancel_wakes_the_parked_checkpoint() {
    bounded(|| {
        let e = engine();
        let (pool, id) = parked_worker(&e);
        e.request_cancel(id).unwrap();
        let end = e.wait(id, Condition::Terminal, LONG).unwrap();
        assert_eq!(end.job.outcome(), failed(FailReason::Canceled));
        pool.shutdown();
        assert_eq!(e.waiting(), 0);
    });
}

#[test]
fn loom_pool_shutdown_wakes_the_parked_checkpoint() {
    bounded(|| {
        let e = engine();
        let (pool, id) = parked_worker(&e);
        // The parked worker must be woken by the shutdown, or this never returns.
        pool.shutdown();
        assert_eq!(
            e.get(id).unwrap().outcome(),
            failed(FailReason::Interrupted)
        );
        assert_eq!(e.waiting(), 0);
    });
}

trait PollReady {
    fn poll_ready(self, cx: &mut Context<'_>) -> std::task::Poll<()>;
}

impl<F: std::future::Future> PollReady for std::pin::Pin<&mut F> {
    fn poll_ready(self, cx: &mut Context<'_>) -> std::task::Poll<()> {
        self.poll(cx).map(|_| ())
    }
}
