//! The worker pool (R-SCHED, R-CONTROL worker side, R-OUTCOME, R-DEPS).

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobstate::{Condition, FailReason, JobId, JobOptions, NewJob, Outcome, Severity, State};
use jobstate_std::{Canceled, Engine, EngineConfig, Failure, Success, WorkerPool};

const LONG: Duration = Duration::from_secs(60);

type Jobs = jobstate::JobTable<u32, 16>;

fn engine() -> Engine<Jobs> {
    Engine::new(EngineConfig::default())
}

fn terminal(e: &Engine<Jobs>, id: JobId) -> jobstate::Job<u32> {
    let w = e.wait(id, Condition::Terminal, LONG).unwrap();
    assert!(!w.timed_out);
    w.job.into_job()
}

#[test]
fn r_sched_pool_runs_oldest_runnable_first_and_respects_dependencies() {
    let e = engine();
    let a = e.submit(NewJob::new(1)).unwrap();
    let b = e.submit(NewJob::new(2).depends_on(&[a])).unwrap();
    let c = e.submit(NewJob::new(3)).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let seen = order.clone();
    let pool = WorkerPool::start(e.clone(), 1, move |ctx| {
        seen.lock().unwrap().push(*ctx.spec());
        Ok(Success::normal("ok"))
    })
    .unwrap();
    for id in [a, b, c] {
        assert_eq!(terminal(&e, id).state(), State::Succeeded);
    }
    pool.shutdown();
    assert_eq!(*order.lock().unwrap(), vec![1, 3, 2]);
}

#[test]
fn r_outcome_handler_answers_become_outcomes() {
    let e = engine();
    let pool = WorkerPool::start(e.clone(), 2, |ctx| match *ctx.spec() {
        0 => Ok(Success::new(Severity::Warning, "check the log")),
        1 => Err(Failure::new(7, "no space left")),
        _ => Ok(Severity::PartialFailure.into()),
    })
    .unwrap();
    let ids: Vec<JobId> = (0..3).map(|k| e.submit(NewJob::new(k)).unwrap()).collect();
    let warn = terminal(&e, ids[0]);
    assert_eq!(
        warn.outcome(),
        Some(Outcome::Succeeded {
            severity: Severity::Warning
        })
    );
    assert_eq!(warn.message(), "check the log");
    let fail = terminal(&e, ids[1]);
    assert_eq!(
        fail.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Error,
            code: 7
        })
    );
    assert_eq!(fail.message(), "no space left");
    let partial = terminal(&e, ids[2]);
    assert_eq!(
        partial.outcome(),
        Some(Outcome::Succeeded {
            severity: Severity::PartialFailure
        })
    );
    pool.shutdown();
}

#[test]
fn r_outcome_panicking_handler_fails_job_and_worker_survives() {
    let e = engine();
    let pool = WorkerPool::start(e.clone(), 1, |ctx| {
        if *ctx.spec() == 0 {
            panic!("boom");
        }
        Ok(Success::normal("fine"))
    })
    .unwrap();
    let bad = e.submit(NewJob::new(0)).unwrap();
    let good = e.submit(NewJob::new(1)).unwrap();
    let bad = terminal(&e, bad);
    assert_eq!(
        bad.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Error,
            code: 1
        })
    );
    assert!(bad.message().contains("boom"), "{}", bad.message());
    assert_eq!(
        terminal(&e, good).state(),
        State::Succeeded,
        "the same single worker ran on"
    );
    pool.shutdown();
}

/// A handler that reports it started, then checks in until told to stop; progress, log lines
/// and heartbeats go through the context.
fn looping(
    started: mpsc::Sender<JobId>,
) -> impl Fn(&mut jobstate_std::JobContext<'_, Jobs>) -> Result<Success, Failure> + Send + Sync + 'static
{
    let started = Mutex::new(started);
    move |ctx| {
        ctx.progress(10, "working")?;
        ctx.log("started")?;
        ctx.heartbeat()?;
        let _ = started.lock().unwrap().send(ctx.id());
        loop {
            ctx.checkpoint()?;
            std::thread::sleep(Duration::from_millis(1)); // pacing the work, not synchronising
        }
    }
}

#[test]
fn r_control_pause_blocks_in_checkpoint_resume_and_cancel_wake_it() {
    let e = engine();
    let (tx, rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 1, looping(tx)).unwrap();
    let id = e.submit(NewJob::new(1)).unwrap();
    assert_eq!(rx.recv().unwrap(), id);
    // Pause: the worker's checkpoint moves it to Paused and blocks there.
    let rev = e.get(id).unwrap().state_revision();
    e.request_pause(id).unwrap();
    let w = e.wait(id, Condition::StateChangedSince(rev), LONG).unwrap();
    assert_eq!(w.job.state(), State::Paused);
    // Resume: running again.
    e.request_resume(id).unwrap();
    assert_eq!(e.get(id).unwrap().state(), State::Running);
    // Pause again, then cancel the paused job: the parked worker wakes and ends it.
    let rev = e.get(id).unwrap().state_revision();
    e.request_pause(id).unwrap();
    let w = e.wait(id, Condition::StateChangedSince(rev), LONG).unwrap();
    assert_eq!(w.job.state(), State::Paused);
    e.request_cancel(id).unwrap();
    let done = terminal(&e, id);
    assert_eq!(
        done.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Canceled,
            code: 2
        })
    );
    // The journal has the worker's log line.
    let logged = e.with_table(|t| {
        t.journal(jobstate::Revision::ZERO)
            .map(|mut ev| {
                ev.any(|x| {
                    x.job == id && x.kind == jobstate::EventKind::Log && x.line() == Some("started")
                })
            })
            .unwrap_or(false)
    });
    assert!(logged);
    pool.shutdown();
}

#[test]
fn r_control_cancel_running_job_at_checkpoint() {
    let e = engine();
    let (tx, rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 2, looping(tx)).unwrap();
    let id = e.submit(NewJob::new(1)).unwrap();
    assert_eq!(rx.recv().unwrap(), id);
    e.request_cancel(id).unwrap();
    let done = terminal(&e, id);
    assert_eq!(
        done.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Canceled,
            code: 2
        })
    );
    pool.shutdown();
}

#[test]
fn shutdown_stops_running_and_paused_handlers_and_joins() {
    let e = engine();
    let (tx, rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 2, looping(tx)).unwrap();
    let running = e.submit(NewJob::new(1)).unwrap();
    let paused = e.submit(NewJob::new(2)).unwrap();
    let mut started = vec![rx.recv().unwrap(), rx.recv().unwrap()];
    started.sort();
    let mut both = vec![running, paused];
    both.sort();
    assert_eq!(started, both);
    let rev = e.get(paused).unwrap().state_revision();
    e.request_pause(paused).unwrap();
    e.wait(paused, Condition::StateChangedSince(rev), LONG)
        .unwrap();
    let queued = e.submit(NewJob::new(3)).unwrap();
    // Both workers are busy; the third job waits. Shut down: it is never started.
    pool.shutdown();
    for id in [running, paused] {
        let j = e.get(id).unwrap();
        assert_eq!(
            j.outcome(),
            Some(Outcome::Failed {
                reason: FailReason::Interrupted,
                code: FailReason::Interrupted.default_code()
            })
        );
        assert_eq!(j.message(), Canceled::Shutdown.to_string());
    }
    assert_eq!(e.get(queued).unwrap().state(), State::Queued);
    assert_eq!(e.waiting(), 0);
}

#[test]
fn shutdown_requeues_restartable_jobs_for_the_next_pool() {
    let e = engine();
    let (tx, rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 1, looping(tx)).unwrap();
    let restartable = JobOptions {
        restartable: true,
        ..JobOptions::DEFAULT
    };
    let id = e.submit(NewJob::new(1).options(restartable)).unwrap();
    assert_eq!(rx.recv().unwrap(), id);
    pool.shutdown();
    // The core's rule for an interrupted restartable job: back to the queue, not failed.
    let j = e.get(id).unwrap();
    assert_eq!(j.state(), State::Queued);
    assert_eq!(j.outcome(), None);
    assert_eq!(e.with_table(|t| t.peek_runnable()), Some(id));
    // The next pool runs it again.
    let (tx, rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 1, looping(tx)).unwrap();
    assert_eq!(rx.recv().unwrap(), id);
    e.request_cancel(id).unwrap();
    assert_eq!(
        terminal(&e, id).outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Canceled,
            code: 2
        })
    );
    pool.shutdown();
}

#[test]
fn r_sched_every_job_runs_exactly_once_with_idle_workers() {
    // Many idle workers, a stream of submits: every job still runs exactly once.
    let e = engine();
    let runs = Arc::new(Mutex::new(Vec::new()));
    let r = runs.clone();
    let pool = WorkerPool::start(e.clone(), 4, move |ctx| {
        r.lock().unwrap().push(ctx.id());
        Ok(Success::normal(""))
    })
    .unwrap();
    let mut ids = Vec::new();
    for k in 0..12 {
        let id = e.submit(NewJob::new(k)).unwrap();
        ids.push(id);
        terminal(&e, id);
    }
    pool.shutdown();
    let mut ran = runs.lock().unwrap().clone();
    ran.sort();
    ids.sort();
    assert_eq!(ran, ids);
}

#[test]
fn r_longpoll_shutdown_wakes_only_the_pools_own_jobs() {
    let e = engine();
    let (tx, rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 1, looping(tx)).unwrap();
    let busy = e.submit(NewJob::new(1)).unwrap();
    assert_eq!(rx.recv().unwrap(), busy);
    // A client long-polls a job the pool is not running (the only worker is busy).
    let other = e.submit(NewJob::new(2)).unwrap();
    let waker = Arc::new(common::CountingWaker::default());
    let mut fut = e.wait_async(other, Condition::Terminal, LONG);
    assert!(common::poll_once(&mut fut, &waker).is_pending());
    pool.shutdown();
    assert_eq!(e.get(busy).unwrap().state(), State::Failed);
    assert_eq!(waker.count(), 0, "shutdown woke an unrelated waiter");
    assert_eq!(e.waiting(), 1);
    drop(fut);
    assert_eq!(e.waiting(), 0);
}

/// A handler that reports it started, then never checks in: it waits for `release` (the
/// test's end), whatever happens to its job meanwhile, and then tries to report.
fn stubborn(
    started: mpsc::Sender<JobId>,
    release: mpsc::Receiver<()>,
    after: mpsc::Sender<(Result<(), jobstate::JobError>, Result<(), Canceled>)>,
) -> impl Fn(&mut jobstate_std::JobContext<'_, Jobs>) -> Result<Success, Failure> + Send + Sync + 'static
{
    let started = Mutex::new(started);
    let release = Mutex::new(release);
    let after = Mutex::new(after);
    move |ctx| {
        let _ = started.lock().unwrap().send(ctx.id());
        let _ = release.lock().unwrap().recv();
        // Left behind by the shutdown: nothing of this reaches the job any more.
        let progress = ctx.progress(99, "still here");
        let checkpoint = ctx.checkpoint();
        let _ = after.lock().unwrap().send((progress, checkpoint));
        Ok(Success::normal("finished late"))
    }
}

#[test]
fn shutdown_within_interrupts_a_handler_that_never_checks_in_and_abandons_its_thread() {
    let e = engine();
    let (tx, rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (after_tx, after_rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 1, stubborn(tx, release_rx, after_tx)).unwrap();
    let id = e.submit(NewJob::new(1)).unwrap();
    assert_eq!(rx.recv().unwrap(), id);
    let queued = e.submit(NewJob::new(2)).unwrap();
    let report = pool.shutdown_within(Duration::from_millis(100));
    assert_eq!(report.interrupted, vec![id]);
    assert_eq!((report.joined, report.abandoned), (0, 1));
    // What a crash would give it.
    let j = e.get(id).unwrap();
    assert_eq!(
        j.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Interrupted,
            code: FailReason::Interrupted.default_code()
        })
    );
    assert_eq!(e.get(queued).unwrap().state(), State::Queued);
    // The handler goes on when it likes; its calls and its answer change nothing.
    let rev = e.revision();
    release_tx.send(()).unwrap();
    let (progress, checkpoint) = after_rx.recv().unwrap();
    assert_eq!(progress, Err(jobstate::JobError::NotRunning));
    assert_eq!(checkpoint, Err(Canceled::Shutdown));
    // Its thread records nothing on its way out: once the thread has ended (the handler, and
    // with it the channel's sender, dropped), the table is as it was.
    assert!(after_rx.recv().is_err());
    assert_eq!(e.revision(), rev, "an abandoned handler changed the table");
    assert_eq!(e.get(id).unwrap().state(), State::Failed);
    assert_eq!(e.get(queued).unwrap().state(), State::Queued);
}

#[test]
fn shutdown_within_requeues_an_abandoned_restartable_job_for_the_next_pool() {
    let e = engine();
    let (tx, rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let (after_tx, after_rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 1, stubborn(tx, release_rx, after_tx)).unwrap();
    let restartable = JobOptions {
        restartable: true,
        ..JobOptions::DEFAULT
    };
    let id = e.submit(NewJob::new(1).options(restartable)).unwrap();
    assert_eq!(rx.recv().unwrap(), id);
    let report = pool.shutdown_within(Duration::from_millis(50));
    assert_eq!(report.interrupted, vec![id]);
    // Back in the queue, as after a crash.
    assert_eq!(e.get(id).unwrap().state(), State::Queued);
    // The next pool runs it again; the first, abandoned handler cannot touch the new run.
    let (tx2, rx2) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 1, looping(tx2)).unwrap();
    assert_eq!(rx2.recv().unwrap(), id);
    release_tx.send(()).unwrap();
    let (progress, _) = after_rx.recv().unwrap();
    assert_eq!(progress, Err(jobstate::JobError::NotRunning));
    // The abandoned thread ends (its handler, and the channel's sender, dropped).
    assert!(after_rx.recv().is_err());
    assert_eq!(
        e.get(id).unwrap().progress(),
        10,
        "the new run's progress, untouched"
    );
    e.request_cancel(id).unwrap();
    assert_eq!(
        terminal(&e, id).outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Canceled,
            code: 2
        })
    );
    let report = pool.shutdown_within(Duration::from_secs(30));
    assert_eq!((report.joined, report.abandoned), (1, 0));
}

#[test]
fn shutdown_within_joins_handlers_that_check_in_before_the_deadline() {
    let e = engine();
    let (tx, rx) = mpsc::channel();
    let pool = WorkerPool::start(e.clone(), 2, looping(tx)).unwrap();
    let a = e.submit(NewJob::new(1)).unwrap();
    let b = e.submit(NewJob::new(2)).unwrap();
    let mut started = vec![rx.recv().unwrap(), rx.recv().unwrap()];
    started.sort();
    assert_eq!(started, {
        let mut v = vec![a, b];
        v.sort();
        v
    });
    let report = pool.shutdown_within(Duration::from_secs(30));
    assert_eq!(report.interrupted, Vec::<JobId>::new());
    assert_eq!((report.joined, report.abandoned), (2, 0));
    for id in [a, b] {
        // The handlers' own answer (Canceled::Shutdown) was recorded.
        let j = e.get(id).unwrap();
        assert_eq!(j.message(), Canceled::Shutdown.to_string());
        assert_eq!(
            j.outcome(),
            Some(Outcome::Failed {
                reason: FailReason::Interrupted,
                code: FailReason::Interrupted.default_code()
            })
        );
    }
}

#[test]
fn r_return_submit_and_wait_wakes_the_idle_worker_it_waits_for() {
    // The submit's wake-ups (here: the one idle worker) go out before the submitter's own wait
    // sleeps, or the job would only run after the return timeout.
    let e = engine();
    let pool = WorkerPool::start(e.clone(), 1, |_| Ok(Success::normal("done"))).unwrap();
    for _ in 0..10 {
        match e
            .submit_and_wait(NewJob::new(1), Duration::from_secs(60))
            .unwrap()
        {
            jobstate::Submitted::Completed(s) => assert_eq!(s.state(), State::Succeeded),
            other => panic!("expected the job to complete, got {other:?}"),
        }
    }
    pool.shutdown();
}
