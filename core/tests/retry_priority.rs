//! R-RETRY and R-PRIORITY on the bare table.
#![cfg(feature = "retry")]

use jobstate::{
    Condition, Config, Detail, Duration, FailReason, Instant, JobError, JobOptions, JobTable,
    NewJob, Outcome, Priority, RetryPolicy, Severity, State, SubmitError,
};

type Table = JobTable<u32, 16>;

fn ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

fn policy() -> RetryPolicy {
    RetryPolicy::exponential(3, Duration::from_millis(100), Duration::from_secs(1))
}

fn failed(t: &Table, id: jobstate::JobId) -> Option<(FailReason, Option<Detail>)> {
    let j = t.get(id).ok()?;
    match j.outcome()? {
        Outcome::Failed { reason, .. } => Some((reason, j.detail())),
        _ => None,
    }
}

#[test]
fn r_retry_failure_requeues_after_backoff_until_attempts_run_out() {
    let mut t = Table::new(Config::DEFAULT);
    let id = t.submit(NewJob::new(1).retry(policy()), ms(0)).unwrap();
    assert_eq!(t.start_next(ms(0)), Some(id));
    assert_eq!(t.get(id).unwrap().attempt(), 1);

    t.fail(id, 7, "flash busy", ms(10)).unwrap();
    let j = t.get(id).unwrap();
    assert_eq!(
        (j.state(), j.attempt(), j.message()),
        (State::Queued, 2, "flash busy")
    );
    assert_eq!(j.retry_at(), Some(ms(110)));
    assert_eq!(t.next_timer(), Some(ms(110)));
    // Not startable before its backoff ends.
    assert_eq!(t.start(id, ms(50)), Err(JobError::BackingOff));
    assert_eq!(t.start_next(ms(50)), None);
    t.expire(ms(109));
    assert_eq!(t.start_next(ms(109)), None);
    t.expire(ms(110));
    assert_eq!(t.start_next(ms(110)), Some(id));
    assert_eq!(t.get(id).unwrap().attempt(), 2);

    // Second retry: the backoff doubles.
    t.fail(id, 7, "again", ms(120)).unwrap();
    assert_eq!(t.get(id).unwrap().retry_at(), Some(ms(320)));
    // `start` itself notices the backoff is over, without a sweep.
    t.start(id, ms(320)).unwrap();
    assert_eq!(t.get(id).unwrap().attempt(), 3);

    // Third failure: attempts used up, failed for good with the worker's code.
    t.fail(id, 7, "gave up", ms(330)).unwrap();
    let j = t.get(id).unwrap();
    assert_eq!(j.state(), State::Failed);
    assert_eq!(
        j.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Error,
            code: 7
        })
    );
    assert_eq!((j.attempt(), j.message()), (3, "gave up"));
}

#[test]
fn r_retry_cancel_during_backoff_fails_canceled() {
    let mut t = Table::new(Config::DEFAULT);
    let id = t.submit(NewJob::new(1).retry(policy()), ms(0)).unwrap();
    t.start_next(ms(0));
    t.fail(id, 1, "x", ms(1)).unwrap();
    t.request_cancel(id, ms(2)).unwrap();
    assert_eq!(
        failed(&t, id),
        Some((FailReason::Canceled, Some(Detail::Canceled)))
    );
    // Nothing is left armed for it.
    assert_eq!(t.next_timer(), Some(ms(2) + Config::DEFAULT.retention));
}

#[test]
fn r_retry_deadline_spans_all_attempts() {
    let mut t = Table::new(Config::DEFAULT);
    let options = JobOptions {
        run_timeout: Some(Duration::from_secs(1)),
        ..JobOptions::DEFAULT
    };
    let slow = RetryPolicy::exponential(5, Duration::from_millis(300), Duration::from_secs(10));
    let id = t
        .submit(NewJob::new(1).options(options).retry(slow), ms(0))
        .unwrap();
    t.start_next(ms(0));
    t.fail(id, 1, "x", ms(900)).unwrap();
    // The backoff would end at 1.2 s; the deadline (first start + 1 s) comes first.
    assert_eq!(t.next_timer(), Some(ms(1000)));
    let report = t.expire(ms(1000));
    assert_eq!(report.timed_out, 1);
    assert_eq!(
        failed(&t, id),
        Some((FailReason::TimedOut, Some(Detail::Deadline)))
    );
}

#[test]
fn r_retry_dependents_wait_across_attempts_and_fail_only_on_the_final_failure() {
    let mut t = Table::new(Config::DEFAULT);
    let two = RetryPolicy::exponential(2, Duration::from_millis(0), Duration::from_millis(0));
    let a = t.submit(NewJob::new(1).retry(two), ms(0)).unwrap();
    let b = t.submit(NewJob::new(2).depends_on(&[a]), ms(0)).unwrap();
    t.start_next(ms(0));
    t.fail(a, 1, "first", ms(1)).unwrap();
    // No backoff: runnable again at once; the dependent still waits.
    assert_eq!(t.get(b).unwrap().state(), State::Queued);
    assert_eq!(t.start_next(ms(2)), Some(a));
    t.fail(a, 1, "second", ms(3)).unwrap();
    assert_eq!(
        failed(&t, b),
        Some((FailReason::DependencyFailed, Some(Detail::Dependency(a))))
    );
}

#[test]
fn r_retry_a_lost_lease_is_retried_and_the_worker_learns_it_lost_the_job() {
    let mut t = Table::new(Config::DEFAULT);
    let options = JobOptions {
        lease: Some(Duration::from_millis(50)),
        ..JobOptions::DEFAULT
    };
    let id = t
        .submit(NewJob::new(1).options(options).retry(policy()), ms(0))
        .unwrap();
    t.start_next(ms(0));
    // The worker comes back after its lease ran out: the table retries the job.
    assert_eq!(
        t.progress(id, 50, "late", ms(60)),
        Err(JobError::NotRunning)
    );
    let j = t.get(id).unwrap();
    assert_eq!((j.state(), j.attempt()), (State::Queued, 2));
    assert_eq!(j.retry_at(), Some(ms(160)));
}

#[test]
fn r_retry_fail_final_and_terminal_reasons_do_not_retry() {
    let mut t = Table::new(Config::DEFAULT);
    let id = t.submit(NewJob::new(1).retry(policy()), ms(0)).unwrap();
    t.start_next(ms(0));
    t.fail_final(id, 3, "bad input", ms(1)).unwrap();
    assert_eq!(failed(&t, id), Some((FailReason::Error, None)));
    assert_eq!(t.get(id).unwrap().attempt(), 1);
}

#[test]
fn r_retry_jitter_comes_from_the_callers_seed() {
    let at = |seed| {
        let mut t = Table::new(Config::DEFAULT);
        let p = RetryPolicy::exponential(4, Duration::from_secs(1), Duration::from_secs(8))
            .with_jitter(50, seed);
        let id = t.submit(NewJob::new(1).retry(p), ms(0)).unwrap();
        t.start_next(ms(0));
        t.fail(id, 1, "x", ms(0)).unwrap();
        t.get(id).unwrap().retry_at().unwrap().as_millis()
    };
    assert_eq!(at(1), at(1), "same seed, same backoff");
    let spread: std::collections::BTreeSet<u64> = (0..32).map(at).collect();
    assert!(spread.len() > 8, "seeds spread the retries: {spread:?}");
    assert!(
        spread.iter().all(|b| (500..=1000).contains(b)),
        "{spread:?}"
    );
}

#[test]
fn r_retry_an_invalid_policy_is_refused_and_hands_the_job_back() {
    let mut t = Table::new(Config::DEFAULT);
    let zero = RetryPolicy {
        max_attempts: 0,
        ..policy()
    };
    let refused = t.submit(NewJob::new(42).retry(zero), ms(0)).unwrap_err();
    assert_eq!(refused.error, SubmitError::InvalidRetryPolicy);
    assert_eq!(refused.into_spec(), 42);
    assert!(t.is_empty());
}

#[cfg(feature = "persist")]
#[test]
fn r_retry_survives_a_restore_mid_backoff() {
    let mut t = Table::new(Config::DEFAULT);
    let id = t.submit(NewJob::new(1).retry(policy()), ms(0)).unwrap();
    t.start_next(ms(0));
    t.fail(id, 1, "x", ms(10)).unwrap();
    let mut buf = vec![0; Table::image_size_bound(5)];
    let len = t.encode(&mut buf).unwrap();
    let mut back = Box::new(Table::new(Config::DEFAULT));
    back.restore_in_place(&buf[..len], ms(20)).unwrap();
    let j = back.get(id).unwrap();
    assert_eq!(
        (j.state(), j.attempt(), j.retry_at()),
        (State::Queued, 2, Some(ms(110)))
    );
    assert_eq!(j.retry_policy(), policy());
    back.expire(ms(110));
    assert_eq!(back.start_next(ms(110)), Some(id));
}

#[test]
fn r_priority_highest_level_first_then_oldest() {
    let mut t = Table::new(Config::DEFAULT);
    let low = t
        .submit(NewJob::new(0).priority(Priority::Low), ms(0))
        .unwrap();
    let n1 = t.submit(NewJob::new(1), ms(0)).unwrap();
    let urgent = t
        .submit(NewJob::new(2).priority(Priority::Urgent), ms(0))
        .unwrap();
    let n2 = t.submit(NewJob::new(3), ms(0)).unwrap();
    let high = t
        .submit(NewJob::new(4).priority(Priority::High), ms(0))
        .unwrap();
    let order: Vec<_> = std::iter::from_fn(|| t.start_next(ms(1))).collect();
    assert_eq!(order, [urgent, high, n1, n2, low]);
    assert_eq!(t.get(high).unwrap().priority(), Priority::High);
}

#[test]
fn r_priority_released_dependents_queue_in_their_own_level() {
    let mut t = Table::new(Config::DEFAULT);
    let root = t.submit(NewJob::new(0), ms(0)).unwrap();
    let waiting_low = t
        .submit(
            NewJob::new(1).priority(Priority::Low).depends_on(&[root]),
            ms(0),
        )
        .unwrap();
    let waiting_high = t
        .submit(
            NewJob::new(2).priority(Priority::High).depends_on(&[root]),
            ms(0),
        )
        .unwrap();
    let normal = t.submit(NewJob::new(3), ms(0)).unwrap();
    assert_eq!(t.start_next(ms(0)), Some(root));
    t.succeed(root, Severity::Normal, "", ms(1)).unwrap();
    let order: Vec<_> = std::iter::from_fn(|| t.start_next(ms(2))).collect();
    assert_eq!(order, [waiting_high, normal, waiting_low]);
    // A long-poll sees the retry as a state change.
    let _ = t.check(normal, Condition::Terminal).unwrap();
}
