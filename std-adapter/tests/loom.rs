//! Loom model of the wait protocol (register-wait / notify / timeout / deregister).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p jobstate-std --test loom --release`. Under
//! `cfg(loom)` the engine's lock, condition variables, `Arc` and atomics are loom's (see
//! `src/sync.rs`), so loom explores every interleaving of the very code the engine runs. A
//! timeout is the model's clock: `model_time_out_waiters` makes every deadline pass and wakes
//! the blocked waiters, as the operating system's timer would.
//!
//! Proven, for every interleaving:
//! * no lost wake-up: a waiter whose job ends is always woken (loom reports a deadlock if a
//!   waiter could sleep forever) and gets the terminal snapshot;
//! * a timeout racing a notification ends the wait either way, never both, never neither;
//! * no wake after deregistration: once a dropped future's deregistration returns, its waker
//!   is never called;
//! * nothing stays registered after any wait returns.
#![cfg(loom)]

use std::sync::Arc as StdArc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use jobstate::{Condition, NewJob, Severity, State};
use jobstate_std::{Engine, EngineConfig, DEFAULT_MAX_WAIT};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;

type E = Engine<jobstate::JobTable<u8, 2>>;
const LONG: Duration = DEFAULT_MAX_WAIT;

fn engine() -> E {
    Engine::new(EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    })
}

/// An engine with one running job: the starting point of every model.
fn running_job() -> (E, jobstate::JobId) {
    let e = engine();
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start(id).unwrap();
    (e, id)
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
fn loom_timeout_racing_notify_ends_the_wait_exactly_once() {
    loom::model(|| {
        let (e, id) = running_job();
        let (e2, e3) = (e.clone(), e.clone());
        let waiter = loom::thread::spawn(move || e2.wait(id, Condition::Terminal, LONG));
        let clock = loom::thread::spawn(move || e3.model_time_out_waiters());
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
        let clock = loom::thread::spawn(move || e3.model_time_out_waiters());
        e.succeed(id, Severity::Normal, "ok").unwrap();
        clock.join().unwrap();
        let w = waiter.join().unwrap().unwrap();
        if !w.timed_out {
            assert_eq!(w.job.state(), State::Succeeded);
        }
        assert_eq!(e.waiting(), 0);
    });
}

/// A waker that fails the model if it is called after its future's drop returned.
struct Guarded {
    dropped: Arc<AtomicBool>,
    wakes: Arc<AtomicUsize>,
}

impl Wake for Guarded {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &StdArc<Self>) {
        assert!(
            !self.dropped.load(Ordering::SeqCst),
            "woken after deregistration"
        );
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn loom_no_wake_after_deregistration() {
    loom::model(|| {
        let (e, id) = running_job();
        let dropped = Arc::new(AtomicBool::new(false));
        let wakes = Arc::new(AtomicUsize::new(0));
        let waker = Waker::from(StdArc::new(Guarded {
            dropped: dropped.clone(),
            wakes: wakes.clone(),
        }));
        let mut fut = e.wait_async(id, Condition::Terminal, LONG);
        let first = std::pin::Pin::new(&mut fut).poll_ready(&mut Context::from_waker(&waker));
        assert!(first.is_pending());
        let e2 = e.clone();
        let finisher = loom::thread::spawn(move || e2.succeed(id, Severity::Normal, "ok"));
        drop(fut);
        dropped.store(true, Ordering::SeqCst);
        finisher.join().unwrap().unwrap();
        assert!(wakes.load(Ordering::SeqCst) <= 1);
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
