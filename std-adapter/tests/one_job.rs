//! Many waiters on one job: registration and removal stay O(1) (an intrusive list per job),
//! no wake-up is lost, and no waiter is woken without its answer (R-LONGPOLL).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{poll_with, test_waker, Ctl};
use jobstate::{Condition, JobId, NewJob, Revision, Severity, State};
use jobstate_std::{Engine, EngineConfig, DEFAULT_MAX_WAIT};

type E = Engine<jobstate::JobTable<u32, 16>>;
const LONG: Duration = DEFAULT_MAX_WAIT;

/// Wake counts over all waits of a test.
#[derive(Default)]
struct Tally {
    /// Wakes delivered.
    wakes: AtomicUsize,
    /// Waits whose first poll registered (answered `Pending`).
    registered: AtomicUsize,
    /// Waits answered at once (their condition held when they started).
    immediate: AtomicUsize,
    /// Waits that ended with a wake count other than exactly one after registering.
    odd: AtomicUsize,
}

/// Counts the wakes of one task's current wait.
struct CountWake {
    task: Waker,
    mine: Arc<AtomicUsize>,
    tally: Arc<Tally>,
}

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.mine.fetch_add(1, Ordering::SeqCst);
        self.tally.wakes.fetch_add(1, Ordering::SeqCst);
        self.task.wake_by_ref();
    }
}

/// One wait, with every waker it hands out counting its wakes.
struct Counted<F> {
    inner: F,
    mine: Arc<AtomicUsize>,
    tally: Arc<Tally>,
    polls: usize,
}

impl<F> Counted<F> {
    fn new(inner: F, tally: &Arc<Tally>) -> Self {
        Self {
            inner,
            mine: Arc::default(),
            tally: tally.clone(),
            polls: 0,
        }
    }
}

impl<F: Future + Unpin> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(CountWake {
            task: cx.waker().clone(),
            mine: self.mine.clone(),
            tally: self.tally.clone(),
        }));
        self.polls += 1;
        let first = self.polls == 1;
        let out = Pin::new(&mut self.inner).poll(&mut Context::from_waker(&waker));
        match (&out, first) {
            (Poll::Pending, true) => {
                self.tally.registered.fetch_add(1, Ordering::SeqCst);
            }
            (Poll::Ready(_), true) => {
                self.tally.immediate.fetch_add(1, Ordering::SeqCst);
            }
            (Poll::Ready(_), false) => {
                if self.mine.load(Ordering::SeqCst) != 1 {
                    self.tally.odd.fetch_add(1, Ordering::SeqCst);
                }
            }
            (Poll::Pending, false) => {}
        }
        out
    }
}

/// The condition a waiter of kind `k` waits for next, after seeing `seen` (revision) and
/// `state` (state revision).
fn condition(k: usize, seen: Revision, state: Revision) -> Condition {
    match k % 4 {
        0 | 1 => Condition::ChangedSince(seen),
        2 => Condition::StateChangedSince(state),
        _ => Condition::Terminal,
    }
}

#[test]
fn thousands_of_waiters_on_one_job_no_lost_and_no_spurious_wake_ups() {
    const TASKS: usize = 2_000;
    const THREADS: usize = 8;
    const STEPS: usize = 1_000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let e: E = Engine::new(EngineConfig::default());
    let target = e.submit(NewJob::new(0)).unwrap();
    let other = e.submit(NewJob::new(1)).unwrap();
    e.start(target).unwrap();
    e.start(other).unwrap();
    let tally = Arc::new(Tally::default());
    let waits = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for k in 0..TASKS {
        let (e, tally, waits) = (e.clone(), tally.clone(), waits.clone());
        tasks.push(rt.spawn(async move {
            let job = e.get(target).unwrap();
            let (mut seen, mut state) = (job.revision(), job.state_revision());
            loop {
                let c = condition(k, seen, state);
                let w = Counted::new(e.wait_async(target, c, LONG), &tally)
                    .await
                    .unwrap();
                waits.fetch_add(1, Ordering::SeqCst);
                assert!(!w.timed_out, "a wake-up was lost (waiter {k})");
                assert!(c.holds(&w.job.job), "woken without its answer: {c:?}");
                if w.job.is_terminal() {
                    return w.job.state();
                }
                (seen, state) = (w.job.revision(), w.job.state_revision());
            }
        }));
    }
    let mut threads = Vec::new();
    for k in 0..THREADS {
        let e = e.clone();
        threads.push(std::thread::spawn(move || {
            let job = e.get(target).unwrap();
            let (mut seen, mut state) = (job.revision(), job.state_revision());
            loop {
                let c = condition(k, seen, state);
                let w = e.wait(target, c, LONG).unwrap();
                assert!(!w.timed_out, "a wake-up was lost (thread {k})");
                assert!(c.holds(&w.job.job));
                if w.job.is_terminal() {
                    return w.job.state();
                }
                (seen, state) = (w.job.revision(), w.job.state_revision());
            }
        }));
    }
    // Let every waiter register once before the changes start (a condition on the engine's
    // own state).
    while e.waiting() < TASKS + THREADS {
        std::thread::yield_now();
    }
    for step in 0..STEPS {
        e.progress(target, (step % 100) as u8, "step").unwrap();
        if step % 10 == 0 {
            // Changes to another job wake none of these.
            e.progress(other, (step % 100) as u8, "other").unwrap();
        }
        if step % 50 == 25 {
            // State changes: pause, then resume.
            e.request_pause(target).unwrap();
            e.checkpoint(target).unwrap();
            assert_eq!(e.get(target).unwrap().state(), State::Paused);
            e.request_resume(target).unwrap();
        }
    }
    e.succeed(target, Severity::Normal, "done").unwrap();
    for t in threads {
        assert_eq!(t.join().unwrap(), State::Succeeded);
    }
    rt.block_on(async {
        for t in tasks {
            assert_eq!(t.await.unwrap(), State::Succeeded);
        }
    });
    let (wakes, registered, immediate, odd) = (
        tally.wakes.load(Ordering::SeqCst),
        tally.registered.load(Ordering::SeqCst),
        tally.immediate.load(Ordering::SeqCst),
        tally.odd.load(Ordering::SeqCst),
    );
    println!(
        "{TASKS} async waiters + {THREADS} threads on one job, {STEPS} changes: {} waits \
         ({registered} registered, {immediate} answered at once), {wakes} wakes, {odd} odd",
        waits.load(Ordering::SeqCst)
    );
    assert_eq!(
        odd, 0,
        "a wait was woken more than once, or answered without a wake"
    );
    assert_eq!(wakes, registered, "spurious wake-ups");
    assert_eq!(registered + immediate, waits.load(Ordering::SeqCst));
    assert_eq!(e.waiting(), 0);
}

#[test]
fn one_hundred_thousand_waiters_on_one_job_leave_in_any_order() {
    const N: usize = 100_000;
    let e: E = Engine::new(EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    });
    let id: JobId = e.submit(NewJob::new(0)).unwrap();
    e.start(id).unwrap();
    let ctl = Ctl::new();
    let waker = test_waker(&ctl);
    let mut futs: Vec<Option<_>> = (0..N)
        .map(|_| {
            let mut f = e.wait_async(id, Condition::Terminal, LONG);
            assert!(poll_with(&mut f, &waker).is_pending());
            Some(f)
        })
        .collect();
    assert_eq!(e.waiting(), N);
    // Drop two thirds in a scattered order (head, tail, middle of the job's list alike).
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut dropped = 0;
    while dropped < N * 2 / 3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if futs[(x % N as u64) as usize].take().is_some() {
            dropped += 1;
        }
    }
    assert_eq!(e.waiting(), N - dropped);
    // The rest are each woken exactly once by the end.
    e.succeed(id, Severity::Normal, "done").unwrap();
    assert_eq!(ctl.wakes(), N - dropped);
    for f in futs.iter_mut().flatten() {
        match poll_with(f, &waker) {
            Poll::Ready(w) => assert_eq!(w.unwrap().job.state(), State::Succeeded),
            Poll::Pending => panic!("woken, so ready"),
        }
    }
    drop(futs);
    assert_eq!(e.waiting(), 0);
}
