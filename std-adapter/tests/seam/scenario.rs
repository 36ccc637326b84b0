//! One worker-and-client scenario written once against `dyn JobStore`, run over the in-process
//! engine (std-adapter/tests/store_seam.rs) and over etcd (etcd/tests/cluster.rs): the seam
//! gives both the same answers.

use std::time::Duration;

use jobstate::{
    Condition, Directive, FailReason, JobOptions, NewJob, Outcome, Request, Severity, State,
};
use jobstate_std::store::StoreError;
use jobstate_std::JobStore;

pub async fn run(store: &dyn JobStore<String, 64>) {
    let options = JobOptions {
        pausable: true,
        cancelable: true,
        ..JobOptions::DEFAULT
    };
    let first = store
        .submit(NewJob::new("first".to_owned()).options(options))
        .await
        .unwrap();
    let second = store
        .submit(NewJob::new("second".to_owned()))
        .await
        .unwrap();

    // Oldest first; the claim answers the job as started.
    let claimed = store.claim().await.unwrap().expect("a runnable job");
    assert_eq!(claimed.id(), first);
    assert_eq!(claimed.state(), State::Running);
    assert_eq!(claimed.spec(), "first");
    store.progress(first, 40, "copying").await.unwrap();
    store.heartbeat(first).await.unwrap();

    // A client's pause reaches the worker at its check-in.
    let requested = store.request(first, Request::Pause).await.unwrap();
    assert_eq!(requested.state, State::Running);
    assert_eq!(store.checkpoint(first).await.unwrap(), Directive::Pause);
    let paused = store.get(first).await.unwrap();
    assert_eq!(paused.state(), State::Paused);
    store.request(first, Request::Resume).await.unwrap();
    assert_eq!(store.checkpoint(first).await.unwrap(), Directive::Continue);
    store
        .succeed(first, Severity::Normal, "copied")
        .await
        .unwrap();

    // Refusals are the core's.
    assert_eq!(
        store.succeed(first, Severity::Normal, "again").await,
        Err(StoreError::Job(jobstate::JobError::AlreadyTerminal))
    );
    assert_eq!(
        store.progress(second, 10, "not started").await,
        Err(StoreError::Job(jobstate::JobError::NotRunning))
    );

    let claimed = store.claim().await.unwrap().expect("the second job");
    assert_eq!(claimed.id(), second);
    store.fail(second, 7, "no space").await.unwrap();
    let ended = store
        .wait(second, Condition::Terminal, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(!ended.timed_out);
    assert_eq!(
        ended.job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Error,
            code: 7
        })
    );

    // Nothing left to run; the timers have nothing due.
    assert!(store.claim().await.unwrap().is_none());
    let swept = store.expire().await.unwrap();
    assert_eq!(swept, jobstate::Expired::default());

    let listed: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id(), s.state()))
        .collect();
    assert_eq!(
        listed,
        vec![(first, State::Succeeded), (second, State::Failed)]
    );
}
