//! Timers that run without the caller's help, and wall-clock reporting (R-DEADLINE, R-RETAIN).

mod common;

use std::time::{Duration, SystemTime};

use jobstate::{Condition, FailReason, JobOptions, LookupError, NewJob, Outcome, Severity, State};
use jobstate_std::{Engine, EngineConfig, WaitError};

// Long enough that only a working timer thread ends these waits (its own safety re-check
// runs every 30 s).
const WAIT: Duration = Duration::from_secs(20);

fn timed_out(o: Option<Outcome>) -> bool {
    matches!(
        o,
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            ..
        })
    )
}

#[test]
fn r_deadline_running_job_times_out_by_itself() {
    let e: Engine<jobstate::JobTable<u32, 8>> = Engine::new(EngineConfig::default());
    let opts = JobOptions {
        run_timeout: Some(jobstate::Duration::from_millis(30)),
        ..JobOptions::DEFAULT
    };
    let id = e.submit(NewJob::new(1).options(opts)).unwrap();
    // The timer thread sleeps with nothing due; starting the job must wake it.
    assert_eq!(e.start_next(), Some(id));
    let w = e.wait(id, Condition::Terminal, WAIT).unwrap();
    assert!(
        !w.timed_out,
        "the timer thread did not fail the job in time"
    );
    assert_eq!(w.job.state(), State::Failed);
    assert!(timed_out(w.job.outcome()));
    assert_eq!(w.job.detail(), Some(jobstate::Detail::Deadline));
}

#[test]
fn r_deadline_lease_without_heartbeat_times_out() {
    let e: Engine<jobstate::JobTable<u32, 8>> = Engine::new(EngineConfig::default());
    let opts = JobOptions {
        lease: Some(jobstate::Duration::from_millis(30)),
        ..JobOptions::DEFAULT
    };
    let id = e.submit(NewJob::new(1).options(opts)).unwrap();
    e.start_next().unwrap();
    let w = e.wait(id, Condition::Terminal, WAIT).unwrap();
    assert!(!w.timed_out);
    assert!(timed_out(w.job.outcome()));
    // The table ended it: no message of its own, the detail says why.
    assert_eq!(w.job.detail(), Some(jobstate::Detail::Lease));
    assert_eq!(w.job.message(), "");
}

#[test]
fn r_deadline_paused_job_times_out_too() {
    let e: Engine<jobstate::JobTable<u32, 8>> = Engine::new(EngineConfig::default());
    // Long enough to pause the job first, even interpreted by Miri.
    let opts = JobOptions {
        run_timeout: Some(jobstate::Duration::from_millis(300)),
        ..JobOptions::DEFAULT
    };
    let id = e.submit(NewJob::new(1).options(opts)).unwrap();
    e.start_next().unwrap();
    e.request_pause(id).unwrap();
    assert_eq!(e.checkpoint(id).unwrap(), jobstate::Directive::Pause);
    let w = e.wait(id, Condition::Terminal, WAIT).unwrap();
    assert!(!w.timed_out);
    assert!(timed_out(w.job.outcome()));
}

#[test]
fn r_retain_terminal_job_removed_after_retention_tombstone_kept() {
    let e: Engine<jobstate::JobTable<u32, 8>> = Engine::new(EngineConfig {
        table: jobstate::Config {
            retention: jobstate::Duration::from_millis(30),
        },
        ..EngineConfig::default()
    });
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start_next().unwrap();
    // The end's revision, read with the end (the removal may come before a later read).
    let rev = e.update(|t, now| {
        t.succeed(id, Severity::Normal, "ok", now).unwrap();
        t.get(id).unwrap().revision()
    });
    // Nothing changes the job any more; only its removal ends this wait.
    match e.wait(id, Condition::ChangedSince(rev), WAIT) {
        Err(WaitError::Lookup(LookupError::Expired(Some(t)))) => {
            assert_eq!(t.id, id);
            assert_eq!(t.state(), State::Succeeded);
        }
        other => panic!("expected Expired with a tombstone, got {other:?}"),
    }
    assert!(e.list().is_empty());
}

#[test]
fn r_retain_live_jobs_are_never_removed_by_timers() {
    let e: Engine<jobstate::JobTable<u32, 8>> = Engine::new(EngineConfig {
        table: jobstate::Config {
            retention: jobstate::Duration::from_ticks(0),
        },
        timer_thread: false,
        ..EngineConfig::default()
    });
    let queued = e.submit(NewJob::new(1)).unwrap();
    let expired = e.run_timers();
    assert_eq!(expired.removed, 0);
    assert_eq!(e.get(queued).unwrap().state(), State::Queued);
}

#[test]
fn wall_clock_reporting_brackets_real_time() {
    let e: Engine<jobstate::JobTable<u32, 8>> = Engine::new(EngineConfig::default());
    let before = SystemTime::now();
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start_next().unwrap();
    e.succeed(id, Severity::Normal, "ok").unwrap();
    let after = SystemTime::now();
    let s = e.get(id).unwrap();
    let slack = Duration::from_millis(5);
    let within = |t: SystemTime| t + slack >= before && t <= after + slack;
    assert!(within(s.created_at()));
    assert!(within(s.started_at().unwrap()));
    assert!(within(s.ended_at().unwrap()));
    assert!(within(s.modified_at()));
    assert!(s.created_at() <= s.ended_at().unwrap());
    assert_eq!(e.to_instant(e.to_system_time(s.created())), s.created());
}

#[test]
fn from_table_continues_the_tables_clock() {
    let mut table: jobstate::JobTable<u32, 4> = jobstate::JobTable::new(jobstate::Config::DEFAULT);
    let late = jobstate::Instant::from_secs(1_000);
    let old = table.submit(NewJob::new(1), late).unwrap();
    let e = Engine::from_table(table, EngineConfig::default());
    assert!(e.now() >= late);
    let new = e.submit(NewJob::new(2)).unwrap();
    assert!(e.get(new).unwrap().created() >= e.get(old).unwrap().created());
    assert_eq!(e.list().first().map(|s| s.id()), Some(old), "oldest first");
}
