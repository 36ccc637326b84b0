//! R-RETRY through the worker pool: a handler's failure retries through the job's policy.
#![cfg(feature = "retry")]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jobstate::{Condition, JobTable, NewJob, RetryPolicy, State};
use jobstate_std::{Engine, EngineConfig, Failure, Success, WorkerPool};

type Jobs = JobTable<u32, 8>;

#[test]
fn r_retry_the_pool_retries_a_failed_handler_until_it_succeeds() {
    let engine: Engine<Jobs> = Engine::new(EngineConfig::default());
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let pool = WorkerPool::start(engine.clone(), 1, move |_job| {
        if counted.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(Failure::new(7, "flash busy"))
        } else {
            Ok(Success::normal("written"))
        }
    })
    .unwrap();
    let policy = RetryPolicy::exponential(
        3,
        Duration::from_millis(5).into_core(),
        Duration::from_millis(20).into_core(),
    );
    let id = engine.submit(NewJob::new(1).retry(policy)).unwrap();
    let seen = engine
        .wait(id, Condition::Terminal, Duration::from_secs(30))
        .unwrap();
    assert_eq!(seen.job.state(), State::Succeeded);
    assert_eq!(seen.job.attempt(), 3);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    pool.shutdown();
}

trait IntoCore {
    fn into_core(self) -> jobstate::Duration;
}

impl IntoCore for Duration {
    fn into_core(self) -> jobstate::Duration {
        jobstate::Duration::from_millis(u64::try_from(self.as_millis()).unwrap())
    }
}
