//! A panic in user code — a job handler, a waker's `wake` / `clone` / `drop`, a spec's
//! `Clone` or `Drop`, an `update` closure — never stops the timer thread or a worker, and
//! never costs another waiter its wake-up. One test per case. (The panic hook prints each
//! contained panic: the noise in this test's output is expected.)

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use common::{poll_with, test_waker, within, Ctl};
use jobstate::{
    Condition, FailReason, JobId, JobOptions, LookupError, NewJob, Outcome, Severity, State,
};
use jobstate_std::{Engine, EngineConfig, EngineTable, Success, WaitError, WorkerPool};

const LONG: Duration = Duration::from_secs(60);
const DEADLOCK: Duration = Duration::from_secs(30);
/// A timeout the timer thread is to serve: long enough that the wait is polled (and
/// registered) well before it, even interpreted by Miri.
const SHORT: Duration = Duration::from_millis(300);

type Jobs = jobstate::JobTable<u32, 8>;

fn engine() -> Engine<Jobs> {
    Engine::new(EngineConfig::default())
}

fn running(e: &Engine<Jobs>) -> JobId {
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start(id).unwrap();
    id
}

/// The timer thread still times waits out: an async wait with a short timeout comes back
/// timed out (under `block_on`, only the timer thread can wake it).
fn timer_thread_alive<S, const T: usize, Tb>(e: &Engine<Tb>, id: JobId)
where
    Tb: EngineTable + jobstate::Table<Spec = S, Job = jobstate::Job<S, T>>,
    S: Clone + Send + 'static,
{
    let e = e.clone();
    let w = within(DEADLOCK, move || {
        futures::executor::block_on(e.wait_async(
            id,
            Condition::Terminal,
            // Later than any `SHORT` wait made before: served after it.
            2 * SHORT,
        ))
        .map(|w| w.timed_out)
    });
    assert_eq!(
        w,
        Some(Ok(true)),
        "the timer thread no longer serves timeouts"
    );
}

fn ready<F: std::future::Future + Unpin>(f: &mut F) -> F::Output {
    match poll_with(f, std::task::Waker::noop()) {
        Poll::Ready(x) => x,
        Poll::Pending => panic!("expected the future to be ready"),
    }
}

// ----- job handler ---------------------------------------------------------------------------

#[test]
fn handler_panic_fails_its_job_and_the_worker_goes_on() {
    let e = engine();
    let pool = WorkerPool::start(e.clone(), 1, |ctx| {
        if *ctx.spec() == 0 {
            panic!("handler boom");
        }
        Ok(Success::normal("fine"))
    })
    .unwrap();
    let bad = e.submit(NewJob::new(0)).unwrap();
    let good = e.submit(NewJob::new(1)).unwrap();
    let bad = e.wait(bad, Condition::Terminal, LONG).unwrap().job;
    assert_eq!(
        bad.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Error,
            code: 1
        })
    );
    assert!(bad.message().contains("handler boom"));
    let good = e.wait(good, Condition::Terminal, LONG).unwrap().job;
    assert_eq!(good.state(), State::Succeeded, "the one worker went on");
    pool.shutdown();
}

// ----- wakers ---------------------------------------------------------------------------------

#[test]
fn waker_wake_panic_costs_no_other_waiter_its_wake_up() {
    let e = engine();
    let id = running(&e);
    let (bad, good) = (Ctl::new(), Ctl::new());
    Ctl::set(&bad.panic_on_wake, true);
    let mut first = e.wait_async(id, Condition::Terminal, LONG);
    let mut second = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut first, &test_waker(&bad)).is_pending());
    assert!(poll_with(&mut second, &test_waker(&good)).is_pending());
    // The panicking waker is woken first (registration order); the change still goes
    // through, and the second waiter is still woken.
    e.succeed(id, Severity::Normal, "ok").unwrap();
    assert_eq!(bad.wakes(), 1);
    assert_eq!(good.wakes(), 1);
    assert_eq!(ready(&mut first).unwrap().job.state(), State::Succeeded);
    assert_eq!(ready(&mut second).unwrap().job.state(), State::Succeeded);
    assert_eq!(e.waiting(), 0);
}

#[test]
fn waker_wake_panic_on_the_timer_thread_does_not_stop_it() {
    let e = engine();
    let id = e.submit(NewJob::new(1)).unwrap();
    let bad = Ctl::new();
    Ctl::set(&bad.panic_on_wake, true);
    let mut fut = e.wait_async(id, Condition::Terminal, SHORT);
    assert!(poll_with(&mut fut, &test_waker(&bad)).is_pending());
    // A later timeout is still served (after the panicking wake, which comes first).
    timer_thread_alive(&e, id);
    assert_eq!(bad.wakes(), 1);
    assert!(ready(&mut fut).unwrap().timed_out);
}

#[test]
fn waker_clone_panic_stays_with_its_poller() {
    let e = engine();
    let id = running(&e);
    let (bad, good) = (Ctl::new(), Ctl::new());
    let mut other = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut other, &test_waker(&good)).is_pending());
    // The first poll clones the waker (outside the lock): the panic reaches the poller, and
    // nothing was registered.
    Ctl::set(&bad.panic_on_clone, true);
    let mut fut = e.wait_async(id, Condition::Terminal, LONG);
    let w = test_waker(&bad);
    let polled = catch_unwind(AssertUnwindSafe(|| poll_with(&mut fut, &w).is_pending()));
    assert!(polled.is_err());
    assert_eq!(e.waiting(), 1);
    // A later poll that must replace the waker: the same.
    Ctl::set(&bad.panic_on_clone, false);
    let mut fut2 = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut fut2, &test_waker(&good)).is_pending());
    Ctl::set(&bad.panic_on_clone, true);
    let polled = catch_unwind(AssertUnwindSafe(|| poll_with(&mut fut2, &w).is_pending()));
    assert!(polled.is_err());
    Ctl::set(&bad.panic_on_clone, false);
    assert_eq!(e.waiting(), 2);
    // Everyone registered is still woken.
    e.succeed(id, Severity::Normal, "ok").unwrap();
    assert_eq!(good.wakes(), 2);
    assert_eq!(ready(&mut other).unwrap().job.state(), State::Succeeded);
    assert_eq!(ready(&mut fut2).unwrap().job.state(), State::Succeeded);
    assert_eq!(ready(&mut fut).unwrap().job.state(), State::Succeeded);
    assert_eq!(e.waiting(), 0);
}

#[test]
fn waker_drop_panic_is_contained_on_every_path() {
    let e = engine();
    let id = running(&e);
    let good = Ctl::new();
    let mut other = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut other, &test_waker(&good)).is_pending());
    // Each of these wakers panics when the engine drops its clone; the test's own handles are
    // dropped before the switch is set.
    let armed = || {
        let ctl = Ctl::new();
        (ctl.clone(), move || Ctl::set(&ctl.panic_on_drop, true))
    };
    // 1. A deregistered wait (a dropped future).
    let (c1, arm1) = armed();
    let mut f1 = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut f1, &test_waker(&c1)).is_pending());
    arm1();
    drop(f1);
    assert_eq!(c1.drops(), 2);
    // 2. A replaced waker.
    let (c2, arm2) = armed();
    let mut f2 = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut f2, &test_waker(&c2)).is_pending());
    arm2();
    assert!(poll_with(&mut f2, &test_waker(&good)).is_pending());
    assert_eq!(c2.drops(), 2);
    // 3. A waker woken by value by the timer thread (then dropped).
    let (c3, arm3) = armed();
    let mut f3 = e.wait_async(id, Condition::Terminal, SHORT);
    assert!(poll_with(&mut f3, &test_waker(&c3)).is_pending());
    arm3();
    timer_thread_alive(&e, id);
    assert_eq!((c3.wakes(), c3.drops()), (1, 2));
    assert!(ready(&mut f3).unwrap().timed_out);
    // 4. A waker woken by value by a change (then dropped): the change goes through and the
    //    other waiters are woken.
    let (c4, arm4) = armed();
    let mut f4 = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut f4, &test_waker(&c4)).is_pending());
    arm4();
    e.succeed(id, Severity::Normal, "ok").unwrap();
    assert_eq!((c4.wakes(), c4.drops()), (1, 2));
    assert_eq!(
        good.wakes(),
        2,
        "the replacing waker of f2 and the other waiter"
    );
    assert_eq!(ready(&mut other).unwrap().job.state(), State::Succeeded);
    assert_eq!(ready(&mut f2).unwrap().job.state(), State::Succeeded);
    assert_eq!(ready(&mut f4).unwrap().job.state(), State::Succeeded);
    assert_eq!(e.waiting(), 0);
}

// ----- the spec's Clone and Drop ----------------------------------------------------------

/// What a [`Spec`] does when cloned or dropped.
#[derive(Default, Debug)]
struct Bomb {
    clone_panics: AtomicBool,
    drop_panics: AtomicBool,
}

/// A spec whose `Clone` and `Drop` panic on demand.
#[derive(Debug)]
struct Spec {
    n: u32,
    bomb: Arc<Bomb>,
}

impl Clone for Spec {
    fn clone(&self) -> Self {
        if self.bomb.clone_panics.load(Ordering::SeqCst) {
            panic!("spec clone boom");
        }
        Spec {
            n: self.n,
            bomb: self.bomb.clone(),
        }
    }
}

impl Drop for Spec {
    fn drop(&mut self) {
        if self.bomb.drop_panics.load(Ordering::SeqCst) && !std::thread::panicking() {
            panic!("spec drop boom");
        }
    }
}

type SpecJobs = jobstate::JobTable<Spec, 8>;

fn spec(n: u32, bomb: &Arc<Bomb>) -> NewJob<'static, Spec> {
    NewJob::new(Spec {
        n,
        bomb: bomb.clone(),
    })
}

#[test]
fn spec_clone_panic_in_the_pool_fails_that_job_and_the_worker_goes_on() {
    let e: Engine<SpecJobs> = Engine::new(EngineConfig::default());
    let (bad, fine) = (Arc::new(Bomb::default()), Arc::new(Bomb::default()));
    Ctl::set(&bad.clone_panics, true);
    let bad_id = e.submit(spec(0, &bad)).unwrap();
    let good_id = e.submit(spec(1, &fine)).unwrap();
    let pool = WorkerPool::start(e.clone(), 1, |ctx| {
        Ok(Success::normal(format!("ran {}", ctx.spec().n)))
    })
    .unwrap();
    let good = e.wait(good_id, Condition::Terminal, LONG).unwrap();
    assert_eq!(good.job.state(), State::Succeeded);
    pool.shutdown();
    // Reading the failed job clones its spec too: disarm first.
    Ctl::set(&bad.clone_panics, false);
    let failed = e.get(bad_id).unwrap();
    assert_eq!(failed.state(), State::Failed);
    assert!(failed.message().contains("spec"), "{}", failed.message());
}

#[test]
fn spec_clone_panic_while_copying_for_a_waiter_costs_no_one_a_wake_up() {
    let e: Engine<SpecJobs> = Engine::new(EngineConfig::default());
    let (bad, fine) = (Arc::new(Bomb::default()), Arc::new(Bomb::default()));
    let a = e.submit(spec(0, &bad)).unwrap();
    // B depends on A: failing A fails B in the same change, so both waiters are settled by
    // one commit — A's copy panics first.
    let b = e.submit(spec(1, &fine).depends_on(&[a])).unwrap();
    e.start(a).unwrap();
    let (ca, cb) = (Ctl::new(), Ctl::new());
    let mut wa = e.wait_async(a, Condition::Terminal, LONG);
    let mut wb = e.wait_async(b, Condition::Terminal, LONG);
    assert!(poll_with(&mut wa, &test_waker(&ca)).is_pending());
    assert!(poll_with(&mut wb, &test_waker(&cb)).is_pending());
    Ctl::set(&bad.clone_panics, true);
    e.fail(a, 3, "disk gone").unwrap();
    assert_eq!((ca.wakes(), cb.wakes()), (1, 1), "both waiters woken");
    let b_end = ready(&mut wb).unwrap();
    assert_eq!(b_end.job.state(), State::Failed);
    // A's waiter reads A itself: its own clone panics, in its own poll.
    let polled = catch_unwind(AssertUnwindSafe(|| {
        let _ = poll_with(&mut wa, std::task::Waker::noop());
    }));
    assert!(polled.is_err());
    assert_eq!(e.waiting(), 0, "the waiter deregistered before reading");
    drop(wa);
    Ctl::set(&bad.clone_panics, false);
    assert_eq!(e.get(a).unwrap().state(), State::Failed);
}

#[test]
fn spec_drop_panic_in_the_pool_does_not_stop_the_worker() {
    let e: Engine<SpecJobs> = Engine::new(EngineConfig::default());
    let (bad, fine) = (Arc::new(Bomb::default()), Arc::new(Bomb::default()));
    let first = e.submit(spec(0, &bad)).unwrap();
    let second = e.submit(spec(1, &fine)).unwrap();
    let pool = WorkerPool::start(e.clone(), 1, |ctx| {
        if ctx.spec().n == 0 {
            // The worker drops its clone of this spec after the handler: that drop panics.
            Ctl::set(&ctx.spec().bomb.drop_panics, true);
        }
        Ok(Success::normal("ok"))
    })
    .unwrap();
    let w = e.wait(second, Condition::Terminal, LONG).unwrap();
    assert_eq!(w.job.state(), State::Succeeded, "the one worker went on");
    pool.shutdown();
    Ctl::set(&bad.drop_panics, false);
    assert_eq!(e.get(first).unwrap().state(), State::Succeeded);
}

#[test]
fn spec_drop_panic_in_the_timer_threads_expire_does_not_stop_it() {
    let e: Engine<SpecJobs> = Engine::new(EngineConfig {
        table: jobstate::Config {
            retention: jobstate::Duration::from_millis(1),
        },
        ..EngineConfig::default()
    });
    let bad = Arc::new(Bomb::default());
    let fine = Arc::new(Bomb::default());
    let doomed = e.submit(spec(0, &bad)).unwrap();
    e.start(doomed).unwrap();
    Ctl::set(&bad.drop_panics, true);
    // It ends; its retention passes; the timer thread removes it, and the table's own copy
    // of the spec panics as it is dropped, inside the core's `expire`.
    let ended = e.update(|t, now| {
        t.succeed(doomed, Severity::Normal, "ok", now).unwrap();
        t.revision()
    });
    // The removal is the next change (a table watcher hears of it). The core's `remove` does
    // not survive a panicking spec `Drop` unharmed (the slot is lost; a spec moved in the same
    // step would lose its place), so nothing else is in the table meanwhile.
    let removal = e.wait_table(ended, LONG);
    assert!(!removal.timed_out, "the timer thread never removed the job");
    // A job with a run timeout afterwards: only the timer thread fails it (and, retention
    // being 1 ms, soon removes it: then its tombstone tells how it ended).
    let options = JobOptions {
        run_timeout: Some(jobstate::Duration::from_millis(20)),
        ..JobOptions::DEFAULT
    };
    let timed = e.submit(spec(1, &fine).options(options)).unwrap();
    e.start(timed).unwrap();
    let outcome = match e.wait(timed, Condition::Terminal, LONG) {
        Ok(w) => {
            assert!(!w.timed_out, "the timer thread stopped");
            w.job.outcome()
        }
        Err(WaitError::Lookup(LookupError::Expired(Some(t)))) => Some(t.outcome),
        Err(other) => panic!("{other:?}"),
    };
    assert_eq!(
        outcome,
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            code: FailReason::TimedOut.default_code()
        })
    );
    Ctl::set(&bad.drop_panics, false);
}

#[test]
fn spec_drop_panic_of_an_uncollected_answer_is_contained() {
    let e: Engine<SpecJobs> = Engine::new(EngineConfig::default());
    let bad = Arc::new(Bomb::default());
    let id = e.submit(spec(0, &bad)).unwrap();
    e.start(id).unwrap();
    let mut fut = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut fut, std::task::Waker::noop()).is_pending());
    // The end settles the waiter with a copy of the job (and its spec)…
    e.succeed(id, Severity::Normal, "ok").unwrap();
    // …which the dropped future never collects: the engine drops the copy, whose spec
    // panics — after the lock is released, and contained.
    Ctl::set(&bad.drop_panics, true);
    drop(fut);
    Ctl::set(&bad.drop_panics, false);
    assert_eq!(e.waiting(), 0);
    assert_eq!(e.get(id).unwrap().state(), State::Succeeded);
}

// ----- update closures --------------------------------------------------------------------

#[test]
fn update_closure_panic_still_wakes_the_waiters_of_what_it_changed() {
    let e = engine();
    let id = running(&e);
    let rev = e.get(id).unwrap().revision();
    let e2 = e.clone();
    let waiter = std::thread::spawn(move || e2.wait(id, Condition::ChangedSince(rev), LONG));
    common::until_waiting(&e, 1);
    let r = catch_unwind(AssertUnwindSafe(|| {
        e.update(|t, now| {
            t.progress(id, 40, "made it this far", now).unwrap();
            panic!("update boom");
        })
    }));
    assert!(r.is_err(), "the panic reaches the caller");
    let w = waiter.join().unwrap().unwrap();
    assert!(!w.timed_out);
    assert_eq!(w.job.progress(), 40);
    // The engine goes on: the lock is not left poisoned for anyone.
    e.progress(id, 50, "").unwrap();
    assert_eq!(e.get(id).unwrap().progress(), 50);
    assert_eq!(e.waiting(), 0);
}

#[test]
fn with_table_panic_leaves_the_engine_usable() {
    let e = engine();
    let id = running(&e);
    let r = catch_unwind(AssertUnwindSafe(|| e.with_table(|_| panic!("read boom"))));
    assert!(r.is_err());
    e.succeed(id, Severity::Normal, "ok").unwrap();
    assert_eq!(e.get(id).unwrap().state(), State::Succeeded);
    timer_thread_alive(&e, e.submit(NewJob::new(2)).unwrap());
}
