//! Stress: 8 threads submitting, running, pausing, canceling and waiting on 20,000 jobs in a
//! table of 8 slots, so eviction and `TableFull` happen all the time (R-FULL, R-WAIT,
//! R-RETURN, R-CONTROL, R-ID).
//!
//! Checked: every submitter's waiter observes its job's final (terminal) state; every extra
//! waiter observes the same final state (or the job's tombstone); no accepted job is lost
//! (each ends) or duplicated (ids unique, each job run at most once).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jobstate::{
    Condition, FailReason, JobError, JobId, LookupError, NewJob, Outcome, State, SubmitError,
};
use jobstate_std::{
    Engine, EngineConfig, Failure, SubmitWaitError, Submitted, Success, WaitError, WorkerPool,
    DEFAULT_MAX_WAIT,
};

const JOBS: usize = 20_000;
const SUBMITTERS: usize = 3;
const IN_FLIGHT: usize = 4;
const WORKERS: usize = 2;
type E = Engine<jobstate::JobTable<u64, 8>>;

#[derive(Default)]
struct Record {
    /// Final outcome each submitter's waiter saw, by job.
    finals: Mutex<HashMap<JobId, Outcome>>,
    /// Jobs a worker started.
    started: Mutex<HashSet<JobId>>,
    duplicate_runs: AtomicUsize,
    accepted: AtomicUsize,
    table_full: AtomicUsize,
    /// Times the pauser saw a job parked in `Paused`.
    paused: AtomicUsize,
    /// What the extra waiter saw: (job, outcome from a snapshot or tombstone).
    observed: Mutex<Vec<(JobId, Outcome)>>,
}

/// A live job from the table (queued, running or paused), chosen by `k`.
fn pick(e: &E, k: usize) -> Option<JobId> {
    e.with_table(|t| {
        let live = t.iter().filter(|j| !j.is_terminal()).count();
        if live == 0 {
            return None;
        }
        t.iter()
            .filter(|j| !j.is_terminal())
            .nth(k % live)
            .map(|j| j.id())
    })
}

fn submitter(e: E, rec: Arc<Record>, n: usize) {
    futures::executor::block_on(async move {
        let mut spec = n as u64;
        loop {
            let mut batch = Vec::new();
            for _ in 0..IN_FLIGHT {
                if rec.accepted.load(Ordering::SeqCst) >= JOBS {
                    break;
                }
                spec += SUBMITTERS as u64;
                batch.push(e.submit_and_wait_async(NewJob::new(spec), DEFAULT_MAX_WAIT));
            }
            if batch.is_empty() {
                return;
            }
            for answer in futures::future::join_all(batch).await {
                match answer {
                    Ok(Submitted::Completed(s)) => {
                        let outcome = s.outcome().expect("a completed job has an outcome");
                        assert!(s.state().is_terminal());
                        let fresh = rec.finals.lock().unwrap().insert(s.id(), outcome).is_none();
                        assert!(fresh, "job id {} accepted twice", s.id());
                        rec.accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Submitted::Accepted(s)) => {
                        panic!(
                            "job {} not terminal after the longest wait: {:?}",
                            s.id(),
                            s.state()
                        )
                    }
                    Ok(other) => {
                        panic!("the submitter's waiter did not see its job end: {other:?}")
                    }
                    Err(SubmitWaitError::Submit(SubmitError::TableFull)) => {
                        rec.table_full.fetch_add(1, Ordering::SeqCst);
                        std::thread::yield_now();
                    }
                    Err(other) => panic!("unexpected submit error {other:?}"),
                }
            }
        }
    });
}

fn expected_job_error(e: JobError) -> bool {
    matches!(
        e,
        JobError::NotRunning
            | JobError::NotPaused
            | JobError::AlreadyTerminal
            | JobError::Lookup(LookupError::Expired(_))
    )
}

#[test]
fn r_full_stress_8_threads_20000_jobs_small_table() {
    let e: E = Engine::new(EngineConfig {
        // Terminal jobs may be evicted at once; no timer thread, so only submits evict.
        table: jobstate::Config {
            retention: jobstate::Duration::from_ticks(0),
        },
        timer_thread: false,
        ..EngineConfig::default()
    });
    let rec = Arc::new(Record::default());
    let done = Arc::new(AtomicBool::new(false));

    let r = rec.clone();
    let pool = WorkerPool::start(e.clone(), WORKERS, move |ctx| {
        if !r.started.lock().unwrap().insert(ctx.id()) {
            r.duplicate_runs.fetch_add(1, Ordering::SeqCst);
        }
        for step in 1..=3u8 {
            ctx.progress(step * 30, "step")?;
            ctx.checkpoint()?;
        }
        if *ctx.spec() % 7 == 0 {
            Err(Failure::new(70, "every seventh fails"))
        } else {
            Ok(Success::normal("done"))
        }
    })
    .unwrap();

    let mut threads = Vec::new();
    for n in 0..SUBMITTERS {
        let (e, rec) = (e.clone(), rec.clone());
        threads.push(std::thread::spawn(move || submitter(e, rec, n)));
    }
    let background = |f: Box<dyn Fn(usize) + Send>| {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut k = 0usize;
            while !done.load(Ordering::SeqCst) {
                f(k);
                k = k.wrapping_add(1);
            }
        })
    };
    // Pauser: pause then resume (a paused worker is always released again).
    let (pe, pr) = (e.clone(), rec.clone());
    let pauser = background(Box::new(move |k| {
        if let Some(id) = pick(&pe, k.wrapping_mul(7)) {
            if let Err(err) = pe.request_pause(id) {
                assert!(expected_job_error(err), "{err:?}");
            }
            // Give the worker a chance to reach a checkpoint and park.
            for _ in 0..3 {
                std::thread::yield_now();
            }
            if pe.get(id).is_ok_and(|s| s.state() == State::Paused) {
                pr.paused.fetch_add(1, Ordering::SeqCst);
            }
            if let Err(err) = pe.request_resume(id) {
                assert!(expected_job_error(err), "{err:?}");
            }
        }
        std::thread::yield_now();
    }));
    // Canceler: cancels now and then (queued jobs at once, running ones at a checkpoint).
    let ce = e.clone();
    let canceler = background(Box::new(move |k| {
        if k % 5 == 0 {
            if let Some(id) = pick(&ce, k.wrapping_mul(13)) {
                if let Err(err) = ce.request_cancel(id) {
                    assert!(expected_job_error(err), "{err:?}");
                }
            }
        }
        std::thread::yield_now();
    }));
    // Extra waiter: waits for recent jobs to end.
    let (we, wr) = (e.clone(), rec.clone());
    let waiter = background(Box::new(move |k| {
        let Some(id) = pick(&we, k.wrapping_mul(5)) else {
            std::thread::yield_now();
            return;
        };
        match we.wait(id, Condition::Terminal, DEFAULT_MAX_WAIT) {
            Ok(w) => {
                assert!(!w.timed_out, "job {id} did not end");
                let outcome = w.job.outcome().expect("terminal");
                wr.observed.lock().unwrap().push((id, outcome));
            }
            Err(WaitError::Lookup(LookupError::Expired(Some(t)))) => {
                wr.observed.lock().unwrap().push((id, t.outcome));
            }
            Err(WaitError::Lookup(LookupError::Expired(None))) => {}
            Err(other) => panic!("unexpected wait error {other:?}"),
        }
    }));

    for t in threads {
        t.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    for t in [pauser, canceler, waiter] {
        t.join().unwrap();
    }
    pool.shutdown();

    let finals = rec.finals.lock().unwrap();
    let started = rec.started.lock().unwrap();
    assert!(finals.len() >= JOBS, "accepted {}", finals.len());
    assert_eq!(
        rec.duplicate_runs.load(Ordering::SeqCst),
        0,
        "a job ran twice"
    );
    // Nothing lost: every accepted job ended, and one that ran was started exactly once; one
    // that never ran was canceled while queued.
    let mut canceled_queued = 0;
    for (id, outcome) in finals.iter() {
        let ran = started.contains(id);
        match outcome {
            Outcome::Succeeded { .. } => assert!(ran, "{id} succeeded without running"),
            Outcome::Failed {
                reason: FailReason::Error,
                code: 70,
            } => assert!(ran),
            Outcome::Failed {
                reason: FailReason::Canceled,
                ..
            } if !ran => canceled_queued += 1,
            Outcome::Failed {
                reason: FailReason::Canceled,
                ..
            } => {}
            other => panic!("{id}: unexpected outcome {other:?}"),
        }
    }
    assert!(
        started.iter().all(|id| finals.contains_key(id)),
        "a started job was lost"
    );
    // Extra waiters saw the same final state as the submitters.
    let observed = rec.observed.lock().unwrap();
    for (id, outcome) in observed.iter() {
        assert_eq!(
            finals.get(id),
            Some(outcome),
            "waiter of {id} saw another final state"
        );
    }
    // The table really was small: slots were reused (eviction) and submits were refused.
    let reused = finals.keys().filter(|id| id.generation() > 1).count();
    assert!(reused > JOBS / 2, "slots reused {reused} times");
    assert!(
        rec.table_full.load(Ordering::SeqCst) > 0,
        "TableFull never happened"
    );
    assert_eq!(e.waiting(), 0, "every waiter deregistered");
    let live = e.with_table(|t| t.iter().filter(|j| !j.is_terminal()).count());
    assert_eq!(live, 0);
    println!(
        "stress: {} jobs, {} ran, {} canceled while queued, {} seen paused, {} TableFull, {} extra waits",
        finals.len(),
        started.len(),
        canceled_queued,
        rec.paused.load(Ordering::SeqCst),
        rec.table_full.load(Ordering::SeqCst),
        observed.len()
    );
}
