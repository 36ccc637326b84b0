//! `JobRecord`: one job kept on its own under the table's rules (the record of a store with one
//! key per job). Every change goes through the table's own transitions; the image reads back
//! exactly; a refusal changes nothing; the retention leaves a tombstone under the store's id.
#![cfg(feature = "persist")]

use jobstate::persist::JobRecord;
use jobstate::{
    Config, Directive, Duration, FailReason, Instant, JobError, JobId, JobOptions, JobTable,
    NewJob, Outcome, Request, Revision, Severity, State, SubmitError,
};

type Record = JobRecord<u32>;
const BUF: usize = Record::size_bound(8);
fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn round_trip(r: &Record) -> Record {
    let mut buf = [0u8; BUF];
    let n = r.encode(&mut buf).unwrap();
    Record::decode(&buf[..n]).unwrap()
}

#[test]
fn r_trans_a_record_goes_through_the_tables_transitions_and_reads_back_exactly() {
    let options = JobOptions {
        pausable: true,
        cancelable: true,
        ..JobOptions::DEFAULT
    };
    let mut r = Record::create(NewJob::new(7).options(options), Config::DEFAULT, t(0)).unwrap();
    assert!(r.is_runnable());
    r.start(t(1)).unwrap();
    let mut r = round_trip(&r);
    assert_eq!(r.state(), Some(State::Running));
    r.request(Request::Pause, t(2)).unwrap();
    let mut r = round_trip(&r);
    assert_eq!(r.checkpoint(t(3)).unwrap(), Directive::Pause);
    assert_eq!(r.state(), Some(State::Paused));
    r.request(Request::Resume, t(4)).unwrap();
    r.progress(50, "half", t(5)).unwrap();
    let mut r = round_trip(&r);
    assert_eq!(r.job().unwrap().progress(), 50);
    r.succeed(Severity::Normal, "done", t(6)).unwrap();
    let r = round_trip(&r);
    assert_eq!(r.state(), Some(State::Succeeded));
    assert_eq!(r.job().unwrap().message(), "done");
}

#[test]
fn r_input_a_refused_change_changes_nothing() {
    let mut r = Record::create(NewJob::new(1), Config::DEFAULT, t(0)).unwrap();
    let before = r.changes();
    assert_eq!(r.progress(10, "x", t(1)), Err(JobError::NotRunning));
    assert!(r.request(Request::Pause, t(1)).is_err());
    assert_eq!(r.changes(), before);
    assert_eq!(r.state(), Some(State::Queued));
}

#[test]
fn r_deadline_an_update_after_the_deadline_fails_the_record_timed_out() {
    let options = JobOptions {
        run_timeout: Some(Duration::from_millis(100)),
        ..JobOptions::DEFAULT
    };
    let mut r = Record::create(NewJob::new(1).options(options), Config::DEFAULT, t(0)).unwrap();
    r.start(t(0)).unwrap();
    assert_eq!(r.next_timer(), Some(t(100)));
    assert_eq!(
        r.progress(10, "late", t(150)),
        Err(JobError::AlreadyTerminal)
    );
    assert!(matches!(
        r.job().unwrap().outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            ..
        })
    ));
}

#[test]
fn r_retain_the_retention_leaves_a_tombstone_under_the_stores_id() {
    let config = Config {
        retention: Duration::from_millis(50),
    };
    let mut r = Record::create(NewJob::new(1), config, t(0)).unwrap();
    r.start(t(1)).unwrap();
    r.fail(42, "broke", t(2)).unwrap();
    assert_eq!(r.tombstone(JobId::default()), None);
    r.expire(t(100));
    assert!(r.is_empty());
    let r = round_trip(&r);
    let store_id = JobId::from_bytes([0, 0, 0, 9, 0, 0, 0, 3, 0, 0]);
    let tomb = r.tombstone(store_id).unwrap();
    assert_eq!(tomb.id, store_id);
    assert_eq!(
        tomb.outcome,
        Outcome::Failed {
            reason: FailReason::Error,
            code: 42
        }
    );
    assert_eq!(r.snapshot(store_id, Revision::new(5), None), None);
}

#[test]
fn r_id_a_snapshot_carries_the_stores_id_and_revisions() {
    let mut r = Record::create(NewJob::new(3), Config::DEFAULT, t(0)).unwrap();
    r.start(t(1)).unwrap();
    let id = JobId::from_bytes([0, 0, 0, 2, 0, 0, 0, 7, 0, 0]);
    let s = r
        .snapshot(id, Revision::new(900), Some(Revision::new(800)))
        .unwrap();
    assert_eq!(s.id(), id);
    assert_eq!(s.revision(), Revision::new(900));
    assert_eq!(s.state_revision(), Revision::new(800));
    assert_eq!(*s.spec(), 3);
}

#[test]
fn r_deps_a_record_knows_no_other_job() {
    let dep = JobId::from_bytes([0, 0, 0, 1, 0, 0, 0, 1, 0, 0]);
    let deps = [dep];
    let refused =
        Record::create(NewJob::new(1).depends_on(&deps), Config::DEFAULT, t(0)).unwrap_err();
    assert!(matches!(
        refused.error,
        SubmitError::UnknownDependency { id, .. } if id == dep
    ));
}

#[test]
fn r_persist_an_image_of_more_than_one_job_is_no_record() {
    let mut table = JobTable::<u32, 2>::new(Config::DEFAULT);
    table.submit(NewJob::new(1), t(0)).unwrap();
    table.submit(NewJob::new(2), t(0)).unwrap();
    let mut buf = [0u8; JobTable::<u32, 2>::image_size_bound(8)];
    let n = table.encode(&mut buf).unwrap();
    assert!(Record::decode(&buf[..n]).is_err());
}

#[test]
fn r_cluster_a_lost_worker_releases_its_job_as_the_contract_says() {
    let t0 = t(0);
    let with = |options: JobOptions| {
        let mut r = Record::create(NewJob::new(1).options(options), Config::DEFAULT, t0).unwrap();
        r.start(t0).unwrap();
        r
    };
    // Plain: TimedOut, the lease as the detail.
    let mut plain = with(JobOptions::DEFAULT);
    plain.worker_lost(t(1)).unwrap();
    let job = plain.job().unwrap();
    assert!(matches!(
        job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            ..
        })
    ));
    assert_eq!(job.detail(), Some(jobstate::Detail::Lease));
    // Restartable: queued again, runnable.
    let mut again = with(JobOptions {
        restartable: true,
        ..JobOptions::DEFAULT
    });
    again.worker_lost(t(1)).unwrap();
    assert_eq!(again.state(), Some(State::Queued));
    assert!(again.is_runnable());
    // A pending cancel is honoured.
    let mut canceled = with(JobOptions {
        cancelable: true,
        restartable: true,
        ..JobOptions::DEFAULT
    });
    canceled.request(Request::Cancel, t(1)).unwrap();
    canceled.worker_lost(t(2)).unwrap();
    assert!(matches!(
        canceled.job().unwrap().outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Canceled,
            ..
        })
    ));
    // Not held by a worker: refused, nothing changes.
    let mut queued = Record::create(NewJob::new(1), Config::DEFAULT, t0).unwrap();
    let before = queued.changes();
    assert_eq!(queued.worker_lost(t(1)), Err(JobError::NotRunning));
    assert_eq!(queued.changes(), before);
    assert_eq!(plain.worker_lost(t(2)), Err(JobError::AlreadyTerminal));
}
