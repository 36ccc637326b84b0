//! Waits and long-polls through the engine (R-WAIT, R-LONGPOLL, R-VERSION, R-RETURN).

mod common;

use std::time::{Duration, Instant as StdInstant};

use common::{manual, poll_once, until_waiting, CountingWaker};
use jobstate::{Condition, FailReason, JobError, LookupError, NewJob, Outcome, Severity, State};
use jobstate_std::{
    Engine, EngineConfig, SubmitWaitError, Submitted, WaitError, MAX_RETURN_TIMEOUT,
};
use std::sync::Arc;
use std::task::Poll;

const LONG: Duration = Duration::from_secs(60);

#[test]
fn r_wait_returns_at_once_when_condition_already_holds() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    let w = e
        .wait(id, Condition::ChangedSince(jobstate::Revision::ZERO), LONG)
        .unwrap();
    assert!(!w.timed_out);
    assert_eq!(w.job.id(), id);
    assert_eq!(e.waiting(), 0);
}

#[test]
fn r_wait_timeout_is_not_an_error_and_returns_current_snapshot() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    let before = e.revision();
    let w = e
        .wait(id, Condition::Terminal, Duration::from_millis(20))
        .unwrap();
    assert!(w.timed_out);
    assert_eq!(w.job.state(), State::Queued);
    assert_eq!(e.revision(), before, "a wait changes nothing");
    assert_eq!(e.waiting(), 0, "deregistered after the timeout");
}

#[test]
fn r_wait_terminal_returns_on_failure_too() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    let e2 = e.clone();
    let t = std::thread::spawn(move || e2.wait(id, Condition::Terminal, LONG));
    until_waiting(&e, 1);
    assert_eq!(e.start_next(), Some(id));
    e.fail(id, 42, "disk on fire").unwrap();
    let w = t.join().unwrap().unwrap();
    assert!(!w.timed_out);
    assert_eq!(w.job.state(), State::Failed);
    assert_eq!(
        w.job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Error,
            code: 42
        })
    );
}

#[test]
fn r_wait_unknown_and_removed_jobs_answer_lookup_errors() {
    let e: Engine<jobstate::JobTable<u32, 2>> = Engine::new(EngineConfig {
        table: jobstate::Config {
            retention: jobstate::Duration::from_ticks(0),
        },
        timer_thread: false,
        ..EngineConfig::default()
    });
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start_next().unwrap();
    let e2 = e.clone();
    // Waits for a change that never comes: the job is removed instead.
    let t = std::thread::spawn(move || {
        e2.wait(
            id,
            Condition::StateChangedSince(e2.get(id).unwrap().state_revision()),
            LONG,
        )
    });
    until_waiting(&e, 1);
    e.succeed(id, Severity::Normal, "ok").unwrap();
    // The waiter is woken by the success (its condition held then).
    let w = t.join().unwrap().unwrap();
    assert_eq!(w.job.state(), State::Succeeded);
    // Now remove it and ask again.
    e.run_timers();
    match e.wait(id, Condition::Terminal, LONG) {
        Err(WaitError::Lookup(LookupError::Expired(Some(t)))) => assert_eq!(t.id, id),
        other => panic!("expected Expired with tombstone, got {other:?}"),
    }
    let other: Engine<jobstate::JobTable<u32, 2>> = manual::<2>();
    let foreign = other.submit(NewJob::new(9)).unwrap();
    let _ = foreign;
    // An id the table never issued (index beyond the table).
    let never = jobstate::JobId::from_bytes([0, 0, 0, 1, 0, 0, 0, 1, 0, 7]);
    assert_eq!(
        e.wait(never, Condition::Terminal, LONG).unwrap_err(),
        WaitError::Lookup(LookupError::NotFound)
    );
}

#[test]
fn r_wait_job_removed_during_wait_answers_expired() {
    let e: Engine<jobstate::JobTable<u32, 2>> = Engine::new(EngineConfig {
        table: jobstate::Config {
            retention: jobstate::Duration::from_ticks(0),
        },
        timer_thread: false,
        ..EngineConfig::default()
    });
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start_next().unwrap();
    e.succeed(id, Severity::Normal, "ok").unwrap();
    // Terminal and past retention; a ChangedSince(now) waiter sees only the removal.
    let rev = e.revision();
    let e2 = e.clone();
    let t = std::thread::spawn(move || e2.wait(id, Condition::ChangedSince(rev), LONG));
    until_waiting(&e, 1);
    assert_eq!(e.run_timers().removed, 1);
    assert!(matches!(
        t.join().unwrap(),
        Err(WaitError::Lookup(LookupError::Expired(Some(_))))
    ));
}

#[test]
fn r_longpoll_timeout_clamped_to_max_wait() {
    let e: Engine<jobstate::JobTable<u32, 4>> = Engine::new(EngineConfig {
        max_wait: Duration::from_millis(30),
        timer_thread: false,
        ..EngineConfig::default()
    });
    let id = e.submit(NewJob::new(1)).unwrap();
    let t0 = StdInstant::now();
    let w = e
        .wait(id, Condition::Terminal, Duration::from_secs(3600))
        .unwrap();
    assert!(w.timed_out);
    // A measurement, not synchronisation: the hour was cut to max_wait.
    assert!(t0.elapsed() < Duration::from_secs(60));
}

#[test]
fn r_longpoll_wakes_only_target_job() {
    let e = manual::<8>();
    let a = e.submit(NewJob::new(1)).unwrap();
    let b = e.submit(NewJob::new(2)).unwrap();
    let waker = Arc::new(CountingWaker::default());
    let mut fut = e.wait_async(a, Condition::Terminal, LONG);
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert_eq!(e.waiting(), 1);
    // Changes to B: A's waiter is not woken.
    assert_eq!(e.start_next(), Some(a));
    assert_eq!(e.start_next(), Some(b));
    assert_eq!(
        waker.count(),
        0,
        "A started, but A's waiter waits for terminal"
    );
    e.progress(b, 10, "b").unwrap();
    e.succeed(b, Severity::Normal, "b done").unwrap();
    assert_eq!(waker.count(), 0, "changes to B must not wake A's waiter");
    // A non-terminal change to A does not satisfy the condition: still no wake.
    e.progress(a, 50, "half").unwrap();
    assert_eq!(waker.count(), 0);
    e.succeed(a, Severity::Warning, "a done").unwrap();
    assert_eq!(waker.count(), 1, "exactly one wake for A's end");
    match poll_once(&mut fut, &waker) {
        Poll::Ready(Ok(w)) => {
            assert!(!w.timed_out);
            assert_eq!(w.job.state(), State::Succeeded);
        }
        other => panic!("expected ready, got {:?}", other.is_ready()),
    }
    assert_eq!(e.waiting(), 0);
}

#[test]
fn r_longpoll_table_watcher_wakes_on_any_change() {
    let e = manual::<8>();
    let rev = e.revision();
    let e2 = e.clone();
    let t = std::thread::spawn(move || e2.wait_table(rev, LONG));
    until_waiting(&e, 1);
    let id = e.submit(NewJob::new(1)).unwrap();
    let w = t.join().unwrap();
    assert!(!w.timed_out);
    assert_eq!(w.revision, e.get(id).unwrap().revision());
}

#[test]
fn r_wait_async_drop_deregisters_and_is_never_woken() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    let waker = Arc::new(CountingWaker::default());
    let mut fut = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert_eq!(e.waiting(), 1);
    drop(fut);
    assert_eq!(e.waiting(), 0, "dropping the future deregisters it");
    e.request_cancel(id).unwrap();
    assert_eq!(waker.count(), 0, "no wake after deregistration");
}

#[test]
fn r_wait_async_works_under_plain_block_on() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    // Timeout under a plain executor: futures-timer, no runtime.
    let w = futures::executor::block_on(e.wait_async(
        id,
        Condition::Terminal,
        Duration::from_millis(20),
    ))
    .unwrap();
    assert!(w.timed_out);
    assert_eq!(e.waiting(), 0);
    let e2 = e.clone();
    let t = std::thread::spawn(move || {
        futures::executor::block_on(e2.wait_async(id, Condition::Terminal, LONG))
    });
    until_waiting(&e, 1);
    e.request_cancel(id).unwrap();
    let w = t.join().unwrap().unwrap();
    assert!(!w.timed_out);
    assert_eq!(w.job.state(), State::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r_wait_async_works_under_tokio() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    let w = e
        .wait_async(id, Condition::Terminal, Duration::from_millis(20))
        .await
        .unwrap();
    assert!(w.timed_out);
    let e2 = e.clone();
    let task = tokio::spawn(async move { e2.wait_async(id, Condition::Terminal, LONG).await });
    while e.waiting() != 1 {
        tokio::task::yield_now().await;
    }
    e.start_next().unwrap();
    e.succeed(id, Severity::Normal, "ok").unwrap();
    let w = task.await.unwrap().unwrap();
    assert_eq!(w.job.state(), State::Succeeded);
}

#[test]
fn r_version_two_changes_in_one_instant_are_both_seen() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start_next().unwrap();
    let seen = e.get(id).unwrap().revision();
    e.progress(id, 1, "a").unwrap();
    let first = e.wait(id, Condition::ChangedSince(seen), LONG).unwrap();
    e.progress(id, 2, "b").unwrap();
    let second = e
        .wait(id, Condition::ChangedSince(first.job.revision()), LONG)
        .unwrap();
    assert!(!first.timed_out && !second.timed_out);
    assert_eq!(second.job.progress(), 2);
}

#[test]
fn r_wait_modified_after_wall_clock() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    let s = e.get(id).unwrap();
    let since = e.to_instant(s.modified_at());
    assert_eq!(since, s.modified());
    let w = e
        .wait(
            id,
            Condition::ModifiedAfter(since),
            Duration::from_millis(10),
        )
        .unwrap();
    assert!(w.timed_out);
    e.request_cancel(id).unwrap();
    let w = e.wait(id, Condition::ModifiedAfter(since), LONG).unwrap();
    assert!(!w.timed_out || w.job.modified() > since);
}

#[test]
fn r_return_zero_answers_accepted_at_once_and_job_is_listed() {
    let e = manual::<8>();
    let answer = e.submit_and_wait(NewJob::new(1), Duration::ZERO).unwrap();
    let Submitted::Accepted(s) = answer else {
        panic!("expected Accepted")
    };
    assert_eq!(e.get(s.id()).unwrap().state(), State::Queued);
    assert_eq!(e.list().len(), 1);
}

#[test]
fn r_return_completed_when_job_ends_in_time() {
    let e = manual::<8>();
    let e2 = e.clone();
    let worker = std::thread::spawn(move || {
        // Wait for the submit through the engine itself (a table watcher).
        let mut rev = jobstate::Revision::ZERO;
        loop {
            if let Some(id) = e2.start_next() {
                e2.succeed(id, Severity::Normal, "done").unwrap();
                return;
            }
            rev = e2.wait_table(rev, LONG).revision;
        }
    });
    let answer = e
        .submit_and_wait(NewJob::new(1), Duration::from_secs(60))
        .unwrap();
    worker.join().unwrap();
    let Submitted::Completed(s) = answer else {
        panic!("expected Completed")
    };
    assert_eq!(s.state(), State::Succeeded);
}

#[test]
fn r_return_accepted_after_timeout() {
    let e = manual::<8>();
    let answer = e
        .submit_and_wait(NewJob::new(1), Duration::from_millis(20))
        .unwrap();
    assert!(matches!(answer, Submitted::Accepted(ref s) if s.state() == State::Queued));
}

#[test]
fn r_return_removed_before_the_waiter_saw_it_end_answers_removed_with_tombstone() {
    // Zero retention, and one change that both ends the job and removes it: the submitter's
    // waiter only ever sees the job gone, and answers with its tombstone.
    let e: Engine<jobstate::JobTable<u32, 2>> = Engine::new(EngineConfig {
        table: jobstate::Config {
            retention: jobstate::Duration::from_ticks(0),
        },
        timer_thread: false,
        ..EngineConfig::default()
    });
    let fut = e.submit_and_wait_async(NewJob::new(1), LONG);
    let id = e.update(|t, now| {
        let id = t.start_next(now).unwrap();
        t.succeed(id, Severity::Normal, "ok", now).unwrap();
        assert_eq!(t.expire(now).removed, 1);
        id
    });
    match futures::executor::block_on(fut).unwrap() {
        Submitted::Removed(gone, Some(tomb)) => {
            assert_eq!(gone, id);
            assert_eq!(tomb.id, id);
            assert_eq!(tomb.state(), State::Succeeded);
        }
        other => panic!("expected Removed with a tombstone, got {other:?}"),
    }
    assert_eq!(e.waiting(), 0);
}

#[test]
fn r_return_timeout_over_max_wait_is_refused_and_nothing_is_added() {
    let e = manual::<8>();
    let rev = e.revision();
    let over = MAX_RETURN_TIMEOUT + Duration::from_secs(1);
    assert_eq!(
        MAX_RETURN_TIMEOUT.as_millis(),
        u128::from(jobstate::MAX_WAIT.as_millis())
    );
    let err = e.submit_and_wait(NewJob::new(1), over).unwrap_err();
    assert_eq!(err, SubmitWaitError::ReturnTimeoutOutOfRange);
    let err =
        futures::executor::block_on(e.submit_and_wait_async(NewJob::new(1), over)).unwrap_err();
    assert_eq!(err, SubmitWaitError::ReturnTimeoutOutOfRange);
    assert_eq!(e.revision(), rev);
    assert!(e.list().is_empty());
}

#[test]
fn r_return_async_completed_and_submit_errors_typed() {
    let e = manual::<1>();
    let e2 = e.clone();
    let t = std::thread::spawn(move || {
        futures::executor::block_on(
            e2.submit_and_wait_async(NewJob::new(5), Duration::from_secs(60)),
        )
    });
    // The job appears, a worker finishes it.
    // The revision is read before looking, so a submit in between is a change the wait sees.
    let id = loop {
        let seen = e.revision();
        if let Some(id) = e.start_next() {
            break id;
        }
        e.wait_table(seen, LONG);
    };
    e.succeed(id, Severity::Normal, "ok").unwrap();
    assert!(matches!(
        t.join().unwrap().unwrap(),
        Submitted::Completed(_)
    ));
    // Table of one, holding a terminal job within retention: TableFull, nothing changes.
    let rev = e.revision();
    let err = e
        .submit_and_wait(NewJob::new(6), Duration::ZERO)
        .unwrap_err();
    assert_eq!(
        err,
        SubmitWaitError::Submit(jobstate::SubmitError::TableFull)
    );
    assert_eq!(e.revision(), rev);
}

#[test]
fn r_control_errors_pass_through_typed_and_change_nothing() {
    let e = manual::<8>();
    let id = e.submit(NewJob::new(1)).unwrap();
    let rev = e.revision();
    assert_eq!(e.request_pause(id), Err(JobError::NotRunning));
    assert_eq!(e.request_resume(id), Err(JobError::NotPaused));
    assert_eq!(e.progress(id, 50, "x"), Err(JobError::NotRunning));
    assert!(e.progress(id, 101, "x").is_err());
    assert_eq!(e.revision(), rev);
    e.start_next().unwrap();
    assert_eq!(
        e.progress(id, 101, "x"),
        Err(JobError::ProgressOutOfRange(101))
    );
    assert_eq!(e.get(id).unwrap().progress(), 0);
    // Every action on a terminal job answers `AlreadyTerminal`, and changes nothing.
    e.succeed(id, Severity::Normal, "done").unwrap();
    let rev = e.revision();
    assert_eq!(e.request_pause(id), Err(JobError::AlreadyTerminal));
    assert_eq!(e.request_resume(id), Err(JobError::AlreadyTerminal));
    assert_eq!(e.request_cancel(id), Err(JobError::AlreadyTerminal));
    assert_eq!(e.progress(id, 50, "x"), Err(JobError::AlreadyTerminal));
    assert_eq!(e.checkpoint(id), Err(JobError::AlreadyTerminal));
    assert_eq!(e.fail(id, 1, "late"), Err(JobError::AlreadyTerminal));
    assert_eq!(e.revision(), rev);
}

#[test]
fn engine_is_send_sync_and_its_futures_are_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let e = manual::<8>();
    send_sync(&e);
    let id = e.submit(NewJob::new(1)).unwrap();
    send(&e.wait_async(id, Condition::Terminal, LONG));
    send(&e.wait_table_async(e.revision(), LONG));
    send(&e.submit_and_wait_async(NewJob::new(2), Duration::ZERO));
}
