//! One or more named tests per requirement of the core (SPEC R-ID … R-INPUT), through the
//! public API only. Every refused call is checked to leave the table exactly as it was: a
//! [`Snapshot`] of all observable state (jobs, revision, clock, journal, tombstones, runnable
//! head, next timer, next free slot) before and after must be equal.

use std::collections::BTreeSet;

use jobstate::persist::{image_now, DecodeError};
use jobstate::{
    Compacted, Condition, Config, Detail, Directive, Duration, EventKind, FailReason, Instant,
    JobError, JobId, JobOptions, JobTable, LookupError, NewJob, Outcome, Request, Revision,
    Severity, State, SubmitError, TextField, MAX_DEPENDENCIES,
};
use jobstate_tests::{make_id, read_journal, KindView, Snapshot};

/// 4 jobs, 16-byte texts, 8 journal events (a 256-byte log ring, 4 dependency edges, 4
/// tombstones).
type Small = JobTable<u32, 4, 16, 8>;

const RETENTION: Duration = Duration::from_secs(10);

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn table() -> Small {
    JobTable::new(Config {
        retention: RETENTION,
    })
}

/// An empty [`Small`] restored once (epoch 1), so that epoch 0 is a previous epoch.
fn restored_table() -> Box<Small> {
    let empty = table();
    let mut image = vec![0u8; Small::image_size_bound(5)];
    let len = empty.encode(&mut image).unwrap();
    let mut restored = Box::new(table());
    restored.restore_in_place(&image[..len], t(0)).unwrap();
    assert_eq!(restored.epoch(), 1);
    restored
}

/// `$call` must answer `Err($err)` and leave `$table` exactly as it was.
macro_rules! refused {
    ($table:expr, $call:expr, $err:expr) => {{
        let before = Snapshot::of(&$table);
        let got = $call;
        assert_eq!(got, Err($err), "{}", stringify!($call));
        assert_eq!(
            Snapshot::of(&$table),
            before,
            "refused call changed the table: {}",
            stringify!($call)
        );
    }};
}

fn queued(table: &mut Small, at: u64) -> JobId {
    table.submit(NewJob::new(0), t(at)).unwrap()
}

fn running(table: &mut Small, at: u64) -> JobId {
    let id = queued(table, at);
    table.start(id, t(at)).unwrap();
    id
}

fn paused(table: &mut Small, at: u64) -> JobId {
    let id = running(table, at);
    table.request_pause(id, t(at)).unwrap();
    assert_eq!(table.checkpoint(id, t(at)).unwrap(), Directive::Pause);
    assert_eq!(table.get(id).unwrap().state(), State::Paused);
    id
}

fn succeeded(table: &mut Small, at: u64) -> JobId {
    let id = running(table, at);
    table.succeed(id, Severity::Normal, "ok", t(at)).unwrap();
    id
}

fn failed(table: &mut Small, at: u64) -> JobId {
    let id = running(table, at);
    table.fail(id, 7, "broken", t(at)).unwrap();
    id
}

/// A removed job: succeeded at `at`, swept after its retention.
fn expired(table: &mut Small, at: u64) -> JobId {
    let id = succeeded(table, at);
    let r = table.expire(t(at + 10));
    assert!(r.removed >= 1);
    id
}

fn state(table: &Small, id: JobId) -> State {
    table.get(id).unwrap().state()
}

/// Every entry point that takes an id, answering `Err(JobError)` for `id`, must refuse it
/// with `expected` and change nothing.
fn all_entry_points_refuse(table: &mut Small, id: JobId, lookup: LookupError) {
    let e = JobError::Lookup(lookup);
    refused!(table, table.get(id).map(|_| ()), lookup);
    refused!(
        table,
        table.check(id, Condition::Terminal).map(|_| ()),
        lookup
    );
    refused!(table, table.start(id, t(50)), e);
    refused!(table, table.progress(id, 10, "x", t(50)), e);
    refused!(table, table.log(id, "x", t(50)), e);
    refused!(table, table.heartbeat(id, t(50)), e);
    refused!(table, table.checkpoint(id, t(50)), e);
    refused!(table, table.succeed(id, Severity::Normal, "x", t(50)), e);
    refused!(table, table.fail(id, 1, "x", t(50)), e);
    refused!(table, table.request_pause(id, t(50)), e);
    refused!(table, table.request_resume(id, t(50)), e);
    refused!(
        table,
        table.fail_with(id, FailReason::Interrupted, None, "x", t(50)),
        e
    );
    refused!(table, table.request_cancel(id, t(50)), e);
    refused!(
        table,
        table
            .submit(NewJob::new(0).depends_on(&[id]), t(50))
            .map_err(SubmitError::from),
        SubmitError::UnknownDependency { id, error: lookup }
    );
}

// ----- R-ID ---------------------------------------------------------------------------------

#[test]
fn r_id_lookup_answers_job_expired_or_not_found() {
    let mut table = table();
    let a = running(&mut table, 0);
    assert_eq!(table.get(a).unwrap().id(), a);
    assert_eq!(table.epoch(), 0, "a new table is in epoch 0");
    let never = make_id(0, 3, 1);
    assert_eq!(table.get(never).map(|_| ()), Err(LookupError::NotFound));
    table.succeed(a, Severity::Normal, "ok", t(1)).unwrap();
    table.expire(t(11));
    let Err(LookupError::Expired(Some(tomb))) = table.get(a) else {
        panic!("expected Expired with a tombstone")
    };
    assert_eq!(tomb.id, a);
    assert_eq!(tomb.state(), State::Succeeded);
}

#[test]
fn r_id_reused_slot_gets_new_generation_and_old_id_never_reaches_new_job() {
    let mut table: JobTable<u32, 1, 16, 8> = JobTable::new(Config {
        retention: Duration::from_secs(0),
    });
    let old = table.submit(NewJob::new(1), t(0)).unwrap();
    table.request_cancel(old, t(0)).unwrap();
    let new = table.submit(NewJob::new(2), t(1)).unwrap(); // evicts `old`
    assert_eq!(new.index(), old.index());
    assert_eq!(new.generation(), old.generation() + 1);
    assert!(matches!(table.get(old), Err(LookupError::Expired(Some(_)))));
    let before = Snapshot::of(&table);
    assert!(table.start(old, t(2)).is_err());
    assert!(table.request_cancel(old, t(2)).is_err());
    assert!(table.fail(old, 1, "x", t(2)).is_err());
    assert_eq!(Snapshot::of(&table), before);
    assert_eq!(*table.get(new).unwrap().spec(), 2);
    assert_eq!(table.get(new).unwrap().state(), State::Queued);
}

#[test]
fn r_id_unknown_ids_refused_by_every_entry_point() {
    let mut table = table();
    let live = running(&mut table, 0);
    // A generation never issued, a slot never used, an index beyond the capacity, an epoch
    // still to come.
    for id in [
        make_id(0, live.index(), live.generation() + 1),
        make_id(0, 3, 1),
        make_id(0, 4, 1),
        make_id(0, u16::MAX, 1),
        make_id(1, live.index(), live.generation()),
        make_id(0, live.index(), 0),
    ] {
        all_entry_points_refuse(&mut table, id, LookupError::NotFound);
    }
}

#[test]
fn r_id_stale_generation_refused_by_every_entry_point() {
    let mut table: JobTable<u32, 1, 16, 8> = JobTable::new(Config {
        retention: Duration::from_secs(0),
    });
    // Fill the tombstone ring (1 entry) past the old id, so it is Expired without a tombstone.
    let mut ids = Vec::new();
    for k in 0..3 {
        let id = table.submit(NewJob::new(k), t(u64::from(k))).unwrap();
        table.request_cancel(id, t(u64::from(k))).unwrap();
        ids.push(id);
    }
    table.expire(t(5));
    let stale = ids[0];
    let e = LookupError::Expired(None);
    let mut small = table;
    refused!(small, small.get(stale).map(|_| ()), e);
    refused!(small, small.start(stale, t(9)), JobError::Lookup(e));
    refused!(
        small,
        small.request_cancel(stale, t(9)),
        JobError::Lookup(e)
    );
    refused!(
        small,
        small
            .submit(NewJob::new(9).depends_on(&[stale]), t(9))
            .map_err(SubmitError::from),
        SubmitError::UnknownDependency {
            id: stale,
            error: e
        }
    );
}

#[test]
fn r_id_expired_ids_refused_by_every_entry_point() {
    let mut table = table();
    let gone = expired(&mut table, 0);
    let tomb = table.tombstones().next().unwrap();
    assert_eq!(tomb.id, gone);
    all_entry_points_refuse(&mut table, gone, LookupError::Expired(Some(tomb)));
}

#[test]
fn r_id_previous_epoch_ids_are_stale() {
    // A restored table is in epoch 1: an id of epoch 0 it never held is stale, even with the
    // index and generation of one of its live jobs.
    let mut table = restored_table();
    let live = running(&mut table, 0);
    assert_eq!(live.epoch(), 1);
    let old = make_id(0, live.index(), live.generation());
    all_entry_points_refuse(&mut table, old, LookupError::Stale);
}

#[test]
fn r_id_previous_epoch_after_restore() {
    let mut table = table();
    let kept = queued(&mut table, 0);
    let gone = expired(&mut table, 1);
    let mut buf = vec![0u8; Small::image_size_bound(8)];
    let len = table.encode(&mut buf).unwrap();
    let mut restored = Box::new(self::table());
    restored.restore_in_place(&buf[..len], t(20)).unwrap();
    assert_eq!(restored.epoch(), table.epoch() + 1);
    // A job restored keeps its id; a removed one answers with its tombstone; an id of the
    // old epoch that never reached this table is stale.
    assert_eq!(restored.get(kept).unwrap().id(), kept);
    assert!(matches!(
        restored.get(gone),
        Err(LookupError::Expired(Some(_)))
    ));
    let never = make_id(table.epoch(), 3, 1);
    all_entry_points_refuse(&mut restored, never, LookupError::Stale);
    // New ids carry the new epoch.
    let new = restored.submit(NewJob::new(1), t(21)).unwrap();
    assert_eq!(new.epoch(), restored.epoch());
}

#[test]
fn r_id_bytes_round_trip() {
    let id = make_id(3, 513, 70_000);
    assert_eq!(JobId::from_bytes(id.to_bytes()), id);
    assert_eq!((id.epoch(), id.index(), id.generation()), (3, 513, 70_000));
}

/// R-ID: a slot whose generation reaches `u32::MAX` takes that last job and retires when it
/// is removed. No id is issued twice, the slot is never used again, the old id answers
/// `Expired`, and `retired()` counts it.
#[test]
fn r_id_generation_exhaustion_retires_the_slot() {
    let mut table: Small = JobTable::new(Config {
        retention: Duration::from_secs(0),
    });
    // Only an empty slot can be set: slot 0 has never been used.
    assert!(table.set_slot_generation_for_tests(0, u32::MAX - 1));
    let mut issued = BTreeSet::new();
    let mut through_slot_0 = Vec::new();
    let mut at = 0;
    while table.retired() == 0 {
        let id = table.submit(NewJob::new(at as u32), t(at)).unwrap();
        assert!(issued.insert(id), "{id} issued twice");
        assert_eq!(id.index(), 0, "the next job takes the slot just freed");
        through_slot_0.push(id);
        // A job in the table keeps its slot: the hook refuses to touch it.
        assert!(!table.set_slot_generation_for_tests(0, 1));
        table.request_cancel(id, t(at)).unwrap();
        assert_eq!(table.expire(t(at)).removed, 1);
        at += 1;
    }
    assert_eq!(
        through_slot_0
            .iter()
            .map(|id| id.generation())
            .collect::<Vec<_>>(),
        [u32::MAX]
    );
    let last = through_slot_0[0];
    assert_eq!(table.retired(), 1);
    assert!(!table.set_slot_generation_for_tests(0, 1), "a retired slot");
    assert!(matches!(
        table.get(last),
        Err(LookupError::Expired(Some(tomb))) if tomb.id == last
    ));

    // Many more jobs: none takes slot 0, no id comes twice; the table holds 3 jobs at most.
    for k in 0..40u64 {
        let id = table.submit(NewJob::new(100), t(at + k)).unwrap();
        assert_ne!(id.index(), 0);
        assert!(issued.insert(id), "{id} issued twice");
        table.request_cancel(id, t(at + k)).unwrap();
        table.expire(t(at + k));
    }
    at += 40;
    for k in 0..3 {
        let id = table.submit(NewJob::new(k), t(at)).unwrap();
        assert!(issued.insert(id));
    }
    let before = Snapshot::of(&table);
    let refused = table.submit(NewJob::new(7), t(at)).unwrap_err();
    assert_eq!(refused.error, SubmitError::TableFull);
    assert_eq!(refused.into_spec(), 7);
    assert_eq!(Snapshot::of(&table), before);
    assert_eq!((table.len(), table.capacity(), table.retired()), (3, 4, 1));
    // Every id issued still answers: the live ones their job, the removed ones `Expired`
    // (with the tombstone while the ring keeps it).
    for id in &issued {
        match table.get(*id) {
            Ok(job) => assert_eq!(job.id(), *id),
            Err(LookupError::Expired(Some(tomb))) => assert_eq!(tomb.id, *id),
            Err(LookupError::Expired(None)) => {}
            Err(e) => panic!("{id}: {e:?}"),
        }
    }
    // A generation never issued is unknown.
    let beyond = make_id(0, 1, 1_000_000);
    assert_eq!(table.get(beyond).err(), Some(LookupError::NotFound));
}

/// R-ID, R-FULL: in a table of one slot, a retired slot leaves no room: submit answers
/// `TableFull` and hands the job back; `next_free_at` says no slot will ever free.
#[test]
fn r_id_retired_slot_of_a_one_slot_table_makes_submit_table_full() {
    let mut table: JobTable<String, 1> = JobTable::new(Config {
        retention: Duration::from_secs(0),
    });
    assert!(table.set_slot_generation_for_tests(0, u32::MAX - 1));
    let last = table.submit(NewJob::new("last".into()), t(0)).unwrap();
    assert_eq!(last.generation(), u32::MAX);
    table.request_cancel(last, t(0)).unwrap();
    assert_eq!(table.expire(t(1)).removed, 1);
    assert_eq!(table.retired(), 1);
    assert_eq!(table.next_free_at(), None);
    let before = Snapshot::of(&table);
    let refused = table
        .submit(NewJob::new("next".to_string()).description("x"), t(2))
        .unwrap_err();
    assert_eq!(refused.error, SubmitError::TableFull);
    assert_eq!(refused.into_spec(), "next");
    assert_eq!(
        Snapshot::of(&table),
        before,
        "a refused submit changes nothing"
    );
    assert!(matches!(
        table.get(last),
        Err(LookupError::Expired(Some(_)))
    ));
}

/// R-ID, R-FULL: a submit that finds a full table must change nothing, even when the only
/// terminal job past its retention sits in a slot that retires once that job is removed.
#[test]
fn r_full_refused_submit_changes_nothing_when_the_evictable_slot_would_retire() {
    let mut table: JobTable<String, 1> = JobTable::new(Config {
        retention: Duration::from_secs(0),
    });
    assert!(table.set_slot_generation_for_tests(0, u32::MAX - 1));
    let last = table.submit(NewJob::new("last".into()), t(0)).unwrap();
    table.request_cancel(last, t(0)).unwrap();
    // No sweep: the terminal job is still in its (retiring) slot, past its retention.
    let before = Snapshot::of(&table);
    let refused = table
        .submit(NewJob::new("next".to_string()), t(5))
        .unwrap_err();
    assert_eq!(refused.error, SubmitError::TableFull);
    assert_eq!(refused.into_spec(), "next");
    assert_eq!(
        Snapshot::of(&table),
        before,
        "a refused submit changes nothing"
    );
}

// ----- R-TRANS ------------------------------------------------------------------------------

#[test]
fn r_trans_illegal_transitions_name_from_and_to_and_change_nothing() {
    let mut table = table();
    let q = queued(&mut table, 0);
    let r = running(&mut table, 0);
    let p = paused(&mut table, 0);
    let s = succeeded(&mut table, 0);
    let mut other = self::table();
    let f = failed(&mut other, 0);
    let mut big = table;
    let tr = |from, to| JobError::Transition { from, to };
    use State::*;
    refused!(big, big.start(r, t(12)), tr(Running, Running));
    refused!(big, big.start(p, t(12)), tr(Paused, Running));
    refused!(
        big,
        big.succeed(q, Severity::Normal, "", t(12)),
        tr(Queued, Succeeded)
    );
    refused!(
        big,
        big.succeed(p, Severity::Normal, "", t(12)),
        tr(Paused, Succeeded)
    );
    // A terminal job has no edge left: every action answers `AlreadyTerminal`.
    let done = JobError::AlreadyTerminal;
    refused!(big, big.start(s, t(12)), done);
    refused!(other, other.start(f, t(12)), done);
    refused!(big, big.succeed(s, Severity::Normal, "", t(12)), done);
    refused!(other, other.succeed(f, Severity::Normal, "", t(12)), done);
    refused!(big, big.fail(s, 1, "", t(12)), done);
    refused!(other, other.fail(f, 1, "", t(12)), done);
}

#[test]
fn r_trans_legal_path_takes_a_revision_per_change() {
    let mut table = table();
    let id = queued(&mut table, 0);
    type Step = fn(&mut Small, JobId);
    let steps: [(&str, Step); 5] = [
        ("start", |tb, id| tb.start(id, t(1)).unwrap()),
        ("pause", |tb, id| tb.request_pause(id, t(1)).unwrap()),
        ("checkpoint", |tb, id| {
            tb.checkpoint(id, t(1)).unwrap();
        }),
        ("resume", |tb, id| tb.request_resume(id, t(1)).unwrap()),
        ("succeed", |tb, id| {
            tb.succeed(id, Severity::Normal, "", t(1)).unwrap()
        }),
    ];
    for (name, step) in steps {
        let (rev, version) = (table.revision(), table.get(id).unwrap().revision());
        step(&mut table, id);
        let job = table.get(id).unwrap();
        assert_eq!(table.revision(), Revision::new(rev.get() + 1), "{name}");
        // The job's revision is its version: it moved with this change, to the table's.
        assert_eq!(job.revision(), table.revision(), "{name}");
        assert!(job.revision() > version, "{name}");
    }
    assert_eq!(state(&table, id), State::Succeeded);
}

// ----- R-OUTCOME ----------------------------------------------------------------------------

#[test]
fn r_outcome_success_carries_severity() {
    let mut table = table();
    for (k, severity) in [
        Severity::Normal,
        Severity::Warning,
        Severity::PartialFailure,
    ]
    .into_iter()
    .enumerate()
    {
        let at = 100 * k as u64;
        let id = running(&mut table, at);
        table.progress(id, 40, "", t(at)).unwrap();
        table.succeed(id, severity, "done", t(at + 1)).unwrap();
        let job = table.get(id).unwrap();
        assert_eq!(job.outcome(), Some(Outcome::Succeeded { severity }));
        assert_eq!((job.progress(), job.message()), (100, "done"));
        assert_eq!(job.ended(), Some(t(at + 1)));
        assert_eq!(job.detail(), None, "the worker's own success");
        table.expire(t(at + 50));
    }
}

#[test]
fn r_outcome_failure_carries_reason_code_and_message() {
    let mut table = table();
    let worker = running(&mut table, 0);
    let dependent = table
        .submit(NewJob::new(0).depends_on(&[worker]), t(0))
        .unwrap();
    table.fail(worker, 42, "disk full", t(1)).unwrap();
    let job = table.get(worker).unwrap();
    let failure = |reason: FailReason, code| Some(Outcome::Failed { reason, code });
    assert_eq!(job.outcome(), failure(FailReason::Error, 42));
    assert_eq!(job.outcome().unwrap().code(), 42);
    assert_eq!(job.message(), "disk full");
    assert_eq!(job.detail(), None);
    // Failures the table makes itself have an empty message and a detail.
    let job = table.get(dependent).unwrap();
    assert_eq!(job.outcome(), failure(FailReason::DependencyFailed, 4));
    assert_eq!(job.message(), "");
    assert_eq!(job.detail(), Some(Detail::Dependency(worker)));
    table.expire(t(100));

    let canceled = queued(&mut table, 100);
    table.request_cancel(canceled, t(100)).unwrap();
    let job = table.get(canceled).unwrap();
    assert_eq!(job.outcome(), failure(FailReason::Canceled, 2));
    assert_eq!((job.message(), job.detail()), ("", Some(Detail::Canceled)));

    let timed = table
        .submit(
            NewJob::new(0).options(JobOptions {
                run_timeout: Some(Duration::from_secs(5)),
                ..JobOptions::DEFAULT
            }),
            t(100),
        )
        .unwrap();
    table.start(timed, t(100)).unwrap();
    table.expire(t(105));
    let job = table.get(timed).unwrap();
    assert_eq!(job.outcome(), failure(FailReason::TimedOut, 3));
    assert_eq!((job.message(), job.detail()), ("", Some(Detail::Deadline)));
    assert_eq!(FailReason::Interrupted.default_code(), 5);
    assert_eq!(Detail::Deadline.as_str(), "deadline passed");
    assert_eq!(Detail::Lease.as_str(), "heartbeat lease expired");
}

/// R-OUTCOME: `fail_with` carries the adapter's reason; `Interrupted` re-queues a restartable
/// running job instead (as a restart would) and fails any other job with detail `Interrupted`.
#[test]
fn r_outcome_fail_with_reason_and_interrupted_requeues_a_restartable_job() {
    let mut table = table();
    let plain = running(&mut table, 0);
    table
        .fail_with(plain, FailReason::Interrupted, None, "pool stopped", t(1))
        .unwrap();
    let job = table.get(plain).unwrap();
    assert_eq!(
        job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Interrupted,
            code: 5
        })
    );
    assert_eq!(job.message(), "pool stopped");
    assert_eq!(job.detail(), Some(Detail::Interrupted));

    let restartable = JobOptions {
        restartable: true,
        ..JobOptions::DEFAULT
    };
    let again = with(restartable, &mut table, 2);
    table.progress(again, 60, "half", t(3)).unwrap();
    table
        .fail_with(again, FailReason::Interrupted, Some(99), "", t(4))
        .unwrap();
    let job = table.get(again).unwrap();
    assert_eq!((job.state(), job.progress()), (State::Queued, 0));
    assert_eq!(job.started(), Some(t(2)), "it did start once");
    assert_eq!(table.peek_runnable(), Some(again));
    // A queued restartable job is not running: interrupting it fails it.
    table
        .fail_with(again, FailReason::Interrupted, Some(99), "", t(5))
        .unwrap();
    assert_eq!(
        table.get(again).unwrap().outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Interrupted,
            code: 99
        })
    );
}

// ----- R-CONTROL ----------------------------------------------------------------------------

#[test]
fn r_control_cancel_queued_fails_at_once() {
    let mut table = table();
    let id = queued(&mut table, 0);
    table.request_cancel(id, t(1)).unwrap();
    let job = table.get(id).unwrap();
    assert_eq!(job.state(), State::Failed);
    assert!(matches!(
        job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Canceled,
            ..
        })
    ));
    assert_eq!(table.peek_runnable(), None);
}

#[test]
fn r_control_cancel_running_is_a_flag_the_checkpoint_acts_on() {
    let mut table = table();
    let id = running(&mut table, 0);
    table.request_cancel(id, t(1)).unwrap();
    assert_eq!(state(&table, id), State::Running);
    assert!(table.get(id).unwrap().cancel_requested());
    // Asking again changes nothing.
    let before = Snapshot::of(&table);
    table.request_cancel(id, t(1)).unwrap();
    assert_eq!(Snapshot::of(&table), before);
    assert_eq!(table.checkpoint(id, t(2)).unwrap(), Directive::Canceled);
    assert_eq!(state(&table, id), State::Failed);
    assert!(!table.get(id).unwrap().cancel_requested());
}

#[test]
fn r_control_cancel_paused_job_ends_at_its_checkpoint() {
    let mut table = table();
    let id = paused(&mut table, 0);
    assert_eq!(table.checkpoint(id, t(1)).unwrap(), Directive::Pause);
    table.request_cancel(id, t(2)).unwrap();
    assert_eq!(table.checkpoint(id, t(3)).unwrap(), Directive::Canceled);
    assert!(matches!(
        table.get(id).unwrap().outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Canceled,
            ..
        })
    ));
}

#[test]
fn r_control_pause_resume_round_trip() {
    let mut table = table();
    let id = running(&mut table, 0);
    assert_eq!(table.checkpoint(id, t(1)).unwrap(), Directive::Continue);
    table.request_pause(id, t(1)).unwrap();
    assert_eq!(
        state(&table, id),
        State::Running,
        "a request only sets a flag"
    );
    assert_eq!(table.checkpoint(id, t(2)).unwrap(), Directive::Pause);
    assert_eq!(state(&table, id), State::Paused);
    table.request_resume(id, t(3)).unwrap();
    assert_eq!(state(&table, id), State::Running);
    assert_eq!(table.checkpoint(id, t(4)).unwrap(), Directive::Continue);
    // A resume before the worker saw the pause withdraws it.
    table.request_pause(id, t(5)).unwrap();
    table.request_resume(id, t(5)).unwrap();
    assert_eq!(table.checkpoint(id, t(6)).unwrap(), Directive::Continue);
    let kinds: Vec<KindView> = read_journal(&table, Revision::ZERO)
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&KindView::Requested(Request::Resume)));
}

#[test]
fn r_control_refused_requests_change_nothing() {
    let mut table = table();
    let q = queued(&mut table, 0);
    let p = paused(&mut table, 0);
    let r = running(&mut table, 0);
    refused!(table, table.request_pause(q, t(1)), JobError::NotRunning);
    refused!(table, table.request_pause(p, t(1)), JobError::NotRunning);
    refused!(table, table.request_resume(q, t(1)), JobError::NotPaused);
    refused!(table, table.request_resume(r, t(1)), JobError::NotPaused);
    refused!(table, table.checkpoint(q, t(1)), JobError::NotRunning);
    refused!(table, table.progress(q, 1, "", t(1)), JobError::NotRunning);
    refused!(table, table.progress(p, 1, "", t(1)), JobError::NotRunning);
    refused!(table, table.heartbeat(p, t(1)), JobError::NotRunning);
}

#[test]
fn r_control_jobs_that_cannot_be_paused_or_canceled_refuse() {
    let mut table = table();
    let fixed = table
        .submit(
            NewJob::new(0).options(JobOptions {
                pausable: false,
                cancelable: false,
                ..JobOptions::DEFAULT
            }),
            t(0),
        )
        .unwrap();
    refused!(
        table,
        table.request_cancel(fixed, t(1)),
        JobError::NotCancelable
    );
    table.start(fixed, t(1)).unwrap();
    refused!(
        table,
        table.request_pause(fixed, t(2)),
        JobError::NotPausable
    );
    refused!(
        table,
        table.request_cancel(fixed, t(2)),
        JobError::NotCancelable
    );
}

/// One error model: every action on a terminal job answers `AlreadyTerminal` and changes
/// nothing, whichever action it is and however the job ended.
#[test]
fn r_control_any_action_on_a_terminal_job_is_already_terminal() {
    let mut table = table();
    let canceled = queued(&mut table, 0);
    table.request_cancel(canceled, t(0)).unwrap();
    for id in [succeeded(&mut table, 0), failed(&mut table, 0), canceled] {
        let e = JobError::AlreadyTerminal;
        refused!(table, table.start(id, t(1)), e);
        refused!(table, table.request_pause(id, t(1)), e);
        refused!(table, table.request_resume(id, t(1)), e);
        refused!(table, table.request_cancel(id, t(1)), e);
        refused!(table, table.checkpoint(id, t(1)), e);
        refused!(table, table.progress(id, 1, "", t(1)), e);
        refused!(table, table.log(id, "", t(1)), e);
        refused!(table, table.heartbeat(id, t(1)), e);
        refused!(table, table.succeed(id, Severity::Normal, "", t(1)), e);
        refused!(table, table.fail(id, 1, "", t(1)), e);
        for reason in [
            FailReason::Error,
            FailReason::Canceled,
            FailReason::TimedOut,
            FailReason::Interrupted,
        ] {
            refused!(table, table.fail_with(id, reason, None, "", t(1)), e);
        }
    }
}

// ----- R-VERSION ----------------------------------------------------------------------------

#[test]
fn r_version_two_changes_in_one_instant_are_told_apart() {
    let mut table = table();
    let id = running(&mut table, 0);
    table.progress(id, 10, "a", t(1)).unwrap();
    let seen = table.revision();
    table.progress(id, 20, "b", t(1)).unwrap(); // same instant
    assert!(table
        .check(id, Condition::ChangedSince(seen))
        .unwrap()
        .is_some());
    // Timestamps cannot tell them apart: the modified instant is the same.
    assert!(table
        .check(id, Condition::ModifiedAfter(t(1)))
        .unwrap()
        .is_none());
    assert!(table
        .check(id, Condition::ChangedSince(table.revision()))
        .unwrap()
        .is_none());
}

#[test]
fn r_version_state_changed_since_ignores_progress() {
    let mut table = table();
    let id = running(&mut table, 0);
    let seen = table.revision();
    table.progress(id, 50, "half", t(1)).unwrap();
    assert!(table
        .check(id, Condition::StateChangedSince(seen))
        .unwrap()
        .is_none());
    assert!(table
        .check(id, Condition::ChangedSince(seen))
        .unwrap()
        .is_some());
    table.succeed(id, Severity::Normal, "", t(2)).unwrap();
    assert!(table
        .check(id, Condition::StateChangedSince(seen))
        .unwrap()
        .is_some());
}

#[test]
fn r_version_terminal_holds_on_success_and_failure() {
    let mut table = table();
    let (s, f, r) = (
        succeeded(&mut table, 0),
        failed(&mut table, 0),
        running(&mut table, 0),
    );
    assert!(table.check(s, Condition::Terminal).unwrap().is_some());
    assert!(table.check(f, Condition::Terminal).unwrap().is_some());
    assert!(table.check(r, Condition::Terminal).unwrap().is_none());
}

#[test]
fn r_version_revision_never_goes_back_and_stamps_each_change() {
    let mut table = table();
    let mut last = table.revision();
    let id = running(&mut table, 0);
    for k in 0..20u8 {
        table.progress(id, k, "", t(1)).unwrap();
        let now = table.revision();
        assert!(now > last);
        assert_eq!(table.get(id).unwrap().revision(), now);
        last = now;
    }
}

// ----- R-JOURNAL ----------------------------------------------------------------------------

#[test]
fn r_journal_reads_exactly_the_events_after_a_revision() {
    let mut table = table();
    let id = queued(&mut table, 0);
    let seen = table.revision();
    table.start(id, t(1)).unwrap();
    table.progress(id, 30, "copy", t(1)).unwrap();
    table.log(id, "step 1", t(1)).unwrap();
    let events: Vec<_> = table.journal(seen).unwrap().collect();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.job == id));
    assert_eq!(
        events[0].kind,
        EventKind::StateChanged {
            from: State::Queued,
            to: State::Running
        }
    );
    assert_eq!(events[1].kind, EventKind::Progress { percent: 30 });
    assert_eq!(events[2].kind, EventKind::Log);
    assert_eq!(events[2].line(), Some("step 1"));
    assert_eq!(events[1].line(), None);
    let revisions: Vec<u64> = events.iter().map(|e| e.revision.get()).collect();
    assert_eq!(revisions, [seen.get() + 1, seen.get() + 2, seen.get() + 3]);
    assert_eq!(table.journal(table.revision()).unwrap().count(), 0);
    let changed: Vec<JobId> = table.changed_since(seen).unwrap().collect();
    assert_eq!(changed, [id, id, id]);
}

#[test]
fn r_journal_reader_too_far_behind_gets_compacted() {
    let mut table = table(); // 8 events
    let id = running(&mut table, 0);
    for k in 0..20 {
        table.progress(id, k, "", t(1)).unwrap();
    }
    let current = table.revision().get();
    let oldest = current - 7;
    refused!(
        table,
        table.journal(Revision::ZERO).map(|e| e.count()),
        Compacted {
            oldest: Revision::new(oldest)
        }
    );
    assert!(table.journal(Revision::new(oldest - 2)).is_err());
    assert!(table.changed_since(Revision::new(oldest - 2)).is_err());
    // Resuming from just before the oldest kept event reads them all, in order.
    let kept: Vec<u64> = table
        .journal(Revision::new(oldest - 1))
        .unwrap()
        .map(|e| e.revision.get())
        .collect();
    assert_eq!(kept, (oldest..=current).collect::<Vec<_>>());
}

/// R-JOURNAL: log lines live in a ring of `L` bytes (a line takes its length + 2); the event
/// stays while the journal keeps it, its line reads `None` once newer lines overwrote it.
#[test]
fn r_journal_log_lines_live_in_a_ring_and_read_none_once_overwritten() {
    // 16-byte texts, 16 events, a 24-byte log ring: two 10-byte lines fit, a third overwrites.
    let mut table: JobTable<u32, 2, 16, 16, 24> = JobTable::new(Config::DEFAULT);
    let id = table.submit(NewJob::new(0), t(0)).unwrap();
    let seen = table.revision();
    for line in ["line one..", "line two..", "line three"] {
        table.log(id, line, t(1)).unwrap();
    }
    let lines: Vec<(EventKind, Option<&str>)> = table
        .journal(seen)
        .unwrap()
        .map(|e| (e.kind, e.line()))
        .collect();
    assert_eq!(
        lines,
        [
            (EventKind::Log, None),
            (EventKind::Log, Some("line two..")),
            (EventKind::Log, Some("line three")),
        ]
    );
    // The longest line is the smaller of the text capacity and the ring less 2 bytes.
    let mut narrow: JobTable<u32, 2, 32, 16, 12> = JobTable::new(Config::DEFAULT);
    let id = narrow.submit(NewJob::new(0), t(0)).unwrap();
    narrow.log(id, "0123456789", t(0)).unwrap();
    refused!(
        narrow,
        narrow.log(id, "0123456789a", t(0)),
        JobError::TextTooLong {
            field: TextField::LogLine,
            limit: 10
        }
    );
    // A log line is not a change of the job: its revision stays.
    let before = narrow.get(id).unwrap().revision();
    narrow.log(id, "x", t(1)).unwrap();
    assert_eq!(narrow.get(id).unwrap().revision(), before);
}

// ----- R-DEPS -------------------------------------------------------------------------------

#[test]
fn r_deps_job_waits_until_every_dependency_succeeded() {
    let mut table = table();
    let a = running(&mut table, 0);
    let b = running(&mut table, 0);
    let c = table
        .submit(NewJob::new(0).depends_on(&[a, b]), t(0))
        .unwrap();
    refused!(table, table.start(c, t(1)), JobError::DependenciesPending);
    table.succeed(a, Severity::Normal, "", t(1)).unwrap();
    refused!(table, table.start(c, t(1)), JobError::DependenciesPending);
    assert_eq!(table.peek_runnable(), None);
    table.succeed(b, Severity::Normal, "", t(2)).unwrap();
    assert_eq!(table.peek_runnable(), Some(c));
    table.start(c, t(3)).unwrap();
    // A dependency that already succeeded counts as met at submit.
    let d = table.submit(NewJob::new(0).depends_on(&[a]), t(3)).unwrap();
    assert_eq!(table.peek_runnable(), Some(d));
}

#[test]
fn r_deps_failure_cascades_transitively() {
    let mut table: JobTable<u32, 8, 32, 32> = JobTable::new(Config::DEFAULT);
    let a = table.submit(NewJob::new(0), t(0)).unwrap();
    let other = table.submit(NewJob::new(0), t(0)).unwrap();
    let b = table.submit(NewJob::new(0).depends_on(&[a]), t(0)).unwrap();
    let c = table
        .submit(NewJob::new(0).depends_on(&[other, b]), t(0))
        .unwrap();
    let d = table.submit(NewJob::new(0).depends_on(&[c]), t(0)).unwrap();
    table.start(a, t(1)).unwrap();
    let seen = table.revision();
    table.fail(a, 9, "boom", t(2)).unwrap();
    for (id, cause) in [(b, a), (c, b), (d, c)] {
        let job = table.get(id).unwrap();
        assert_eq!(job.state(), State::Failed);
        assert!(matches!(
            job.outcome(),
            Some(Outcome::Failed {
                reason: FailReason::DependencyFailed,
                code: 4
            })
        ));
        assert!(job.revision() > seen);
        // The detail names the dependency that failed (the edge prints "dependency <id>
        // failed"); the message is left empty.
        assert_eq!(job.detail(), Some(Detail::Dependency(cause)));
        assert_eq!(job.message(), "");
    }
    assert_eq!(table.get(other).unwrap().state(), State::Queued);
    // One revision per failed job.
    assert_eq!(table.revision().get(), seen.get() + 4);
    // A job submitted on a failed dependency fails at once, naming the first failed one.
    let late = table
        .submit(NewJob::new(0).depends_on(&[other, d, c]), t(3))
        .unwrap();
    let job = table.get(late).unwrap();
    assert!(matches!(
        job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::DependencyFailed,
            ..
        })
    ));
    assert_eq!(job.detail(), Some(Detail::Dependency(d)));
}

#[test]
fn r_deps_bad_dependencies_are_refused_at_submit() {
    let mut table = restored_table();
    let a = queued(&mut table, 0);
    let gone = expired(&mut table, 0);
    let tomb = table.tombstones().find(|x| x.id == gone);
    let unknown = make_id(1, 3, 9);
    let stale = make_id(0, a.index(), a.generation());
    fn submit(table: &mut Small, deps: &[JobId]) -> Result<JobId, SubmitError> {
        table
            .submit(NewJob::new(0).depends_on(deps), t(1))
            .map_err(SubmitError::from)
    }
    let mut table = *table;
    refused!(
        table,
        submit(&mut table, &[a, unknown]),
        SubmitError::UnknownDependency {
            id: unknown,
            error: LookupError::NotFound
        }
    );
    refused!(
        table,
        submit(&mut table, &[gone]),
        SubmitError::UnknownDependency {
            id: gone,
            error: LookupError::Expired(tomb)
        }
    );
    refused!(
        table,
        submit(&mut table, &[stale]),
        SubmitError::UnknownDependency {
            id: stale,
            error: LookupError::Stale
        }
    );
    refused!(
        table,
        submit(&mut table, &[a, a]),
        SubmitError::DuplicateDependency(a)
    );
    refused!(
        table,
        submit(&mut table, &[a; MAX_DEPENDENCIES + 1]),
        SubmitError::TooManyDependencies
    );
}

/// R-DEPS: a job names at most `MAX_DEPENDENCIES` (8) jobs; all jobs share a pool of `E`
/// edges (`DependenciesFull` when it is used up), given back when a job with dependencies is
/// removed — not when it ends.
#[test]
fn r_deps_at_most_eight_per_job_from_a_shared_pool_returned_on_removal() {
    // 12 jobs, a pool of 10 edges.
    let mut table: JobTable<u32, 12, 16, 16, 256, 10> = JobTable::new(Config {
        retention: Duration::from_secs(0),
    });
    let deps: Vec<JobId> = (0..9)
        .map(|k| table.submit(NewJob::new(k), t(0)).unwrap())
        .collect();
    assert_eq!(MAX_DEPENDENCIES, 8);
    refused!(
        table,
        table
            .submit(NewJob::new(99).depends_on(&deps), t(0))
            .map_err(SubmitError::from),
        SubmitError::TooManyDependencies
    );
    let wide = table
        .submit(NewJob::new(8).depends_on(&deps[..8]), t(0))
        .unwrap();
    assert_eq!(
        table.get(wide).unwrap().depends_on().collect::<Vec<_>>(),
        deps[..8]
    );
    let two = table
        .submit(NewJob::new(2).depends_on(&deps[..2]), t(0))
        .unwrap();
    // 10 of 10 edges in use.
    refused!(
        table,
        table
            .submit(NewJob::new(1).depends_on(&deps[8..9]), t(0))
            .map_err(SubmitError::from),
        SubmitError::DependenciesFull
    );
    // Ending a job keeps its edges (its `depends_on` still reads back) ...
    table.request_cancel(wide, t(1)).unwrap();
    assert_eq!(table.get(wide).unwrap().depends_on().count(), 8);
    refused!(
        table,
        table
            .submit(NewJob::new(1).depends_on(&deps[8..9]), t(1))
            .map_err(SubmitError::from),
        SubmitError::DependenciesFull
    );
    // ... removing it gives them back.
    assert_eq!(table.expire(t(1)).removed, 1);
    let after = table
        .submit(NewJob::new(1).depends_on(&deps[..8]), t(1))
        .unwrap();
    assert_eq!(table.get(after).unwrap().depends_on().count(), 8);
    assert_eq!(table.get(two).unwrap().depends_on().count(), 2);
}

// ----- R-SCHED ------------------------------------------------------------------------------

#[test]
fn r_sched_oldest_runnable_starts_first() {
    let mut table = table();
    let ids = [
        queued(&mut table, 0),
        queued(&mut table, 1),
        queued(&mut table, 1),
    ];
    for id in ids {
        assert_eq!(table.peek_runnable(), Some(id));
        assert_eq!(table.start_next(t(2)), Some(id));
    }
    assert_eq!(table.start_next(t(2)), None);
}

#[test]
fn r_sched_runnable_order_is_the_order_jobs_became_runnable() {
    let mut table = table();
    let x = running(&mut table, 0);
    let waits = table.submit(NewJob::new(0).depends_on(&[x]), t(1)).unwrap();
    let ready = queued(&mut table, 2);
    table.succeed(x, Severity::Normal, "", t(3)).unwrap();
    assert_eq!(table.start_next(t(4)), Some(ready));
    assert_eq!(table.start_next(t(4)), Some(waits));
}

#[test]
fn r_sched_jobs_released_together_queue_oldest_first() {
    let mut table = table();
    let x = running(&mut table, 0);
    let first = table.submit(NewJob::new(1).depends_on(&[x]), t(1)).unwrap();
    let second = table.submit(NewJob::new(2).depends_on(&[x]), t(2)).unwrap();
    let third = table.submit(NewJob::new(3).depends_on(&[x]), t(3)).unwrap();
    table.succeed(x, Severity::Normal, "", t(4)).unwrap();
    assert_eq!(table.start_next(t(5)), Some(first));
    assert_eq!(table.start_next(t(5)), Some(second));
    assert_eq!(table.start_next(t(5)), Some(third));
}

// ----- R-FULL -------------------------------------------------------------------------------

#[test]
fn r_full_table_full_when_every_job_is_live() {
    let mut table = table();
    let _ = (
        queued(&mut table, 0),
        running(&mut table, 0),
        paused(&mut table, 0),
    );
    let _ = queued(&mut table, 0);
    assert_eq!(
        table.next_free_at(),
        None,
        "only live jobs: no slot will free"
    );
    // Even the clock must not move on a refused submit.
    refused!(
        table,
        table
            .submit(NewJob::new(9), t(500))
            .map_err(SubmitError::from),
        SubmitError::TableFull
    );
}

#[test]
fn r_full_terminal_job_within_retention_is_kept() {
    let mut table = table();
    let done = succeeded(&mut table, 0);
    for _ in 0..3 {
        queued(&mut table, 0);
    }
    // The slot frees when the terminal job's retention ends.
    assert_eq!(table.next_free_at(), Some(t(10)));
    refused!(
        table,
        table
            .submit(NewJob::new(9), t(9))
            .map_err(SubmitError::from),
        SubmitError::TableFull
    );
    assert!(table.get(done).is_ok());
}

#[test]
fn r_full_evicts_the_oldest_terminal_job_past_retention() {
    let mut table = table();
    let older = succeeded(&mut table, 0);
    let newer = failed(&mut table, 1);
    let live = [queued(&mut table, 1), running(&mut table, 1)];
    let new = table.submit(NewJob::new(9), t(11)).unwrap();
    assert_eq!(new.index(), older.index());
    assert!(matches!(
        table.get(older),
        Err(LookupError::Expired(Some(_)))
    ));
    assert_eq!(table.get(newer).unwrap().state(), State::Failed);
    for id in live {
        assert!(table.get(id).is_ok(), "a live job was dropped");
    }
    let removed: Vec<_> = table
        .journal(Revision::new(table.revision().get() - 2))
        .unwrap()
        .map(|e| (e.job, e.kind))
        .collect();
    assert_eq!(
        removed,
        [(older, EventKind::Removed), (new, EventKind::Submitted)]
    );
}

type Strings = JobTable<String, 3, 16, 8, 64, 2>;

/// Submit `job` (with spec `spec`) and require the refusal `error`, the job handed back whole
/// and the table unchanged.
fn refused_with_job_back(
    table: &mut Strings,
    spec: &str,
    job: NewJob<'_, String>,
    error: SubmitError,
) {
    let before = Snapshot::of(table);
    let shown = format!("{job:?}");
    let refused = table.submit(job, t(1)).unwrap_err();
    assert_eq!(refused.error, error, "{shown}");
    assert_eq!(
        format!("{:?}", refused.job),
        shown,
        "the whole job comes back"
    );
    assert_eq!(refused.into_spec(), spec);
    assert_eq!(Snapshot::of(table), before, "{error:?} changed the table");
}

/// R-FULL, time: a refused submit does not move the clock — not even the millisecond the
/// table stamps jobs with: the next change made at the table's own `now` is stamped with it.
#[test]
fn r_full_refused_submit_does_not_move_the_clock() {
    let mut table: JobTable<u32, 1> = JobTable::new(Config::DEFAULT);
    let id = table.submit(NewJob::new(0), t(0)).unwrap();
    table.start(id, t(0)).unwrap();
    refused!(
        table,
        table
            .submit(NewJob::new(1), t(500))
            .map_err(SubmitError::from),
        SubmitError::TableFull
    );
    assert_eq!(table.now(), t(0));
    table.progress(id, 10, "", t(0)).unwrap();
    let job = table.get(id).unwrap();
    assert_eq!(job.modified(), t(0), "stamped at the table's now");
    assert_eq!(table.now(), t(0));
}

/// R-FULL: every refused submit hands the caller's job back whole — the spec (here a
/// `String`, moved in and out), its description, dependencies and options — and leaves the
/// table exactly as it was.
#[test]
fn r_full_refused_submit_hands_back_the_exact_job_and_changes_nothing() {
    // 3 jobs, 16-byte texts, a pool of 2 dependency edges.
    let mut table: Strings = JobTable::new(Config {
        retention: RETENTION,
    });
    let a = table.submit(NewJob::new("a".into()), t(0)).unwrap();
    let b = table.submit(NewJob::new("b".into()), t(0)).unwrap();
    let unknown = make_id(0, 2, 7);
    let nine = [a; MAX_DEPENDENCIES + 1];
    let twice = [a, b, a];
    let with_unknown = [a, unknown];
    let too_long = JobOptions {
        run_timeout: Some(Duration::from_secs(50 * 86_400)),
        ..JobOptions::DEFAULT
    };
    let job = |spec: &str| NewJob::new(spec.to_string());
    let cases = [
        (
            "description",
            job("description").description("seventeen bytes.."),
            SubmitError::TextTooLong {
                field: TextField::Description,
                limit: 16,
            },
        ),
        (
            "nine",
            job("nine").depends_on(&nine),
            SubmitError::TooManyDependencies,
        ),
        (
            "duration",
            job("duration").options(too_long),
            SubmitError::DurationTooLong,
        ),
        (
            "twice",
            job("twice").depends_on(&twice),
            SubmitError::DuplicateDependency(a),
        ),
        (
            "unknown",
            job("unknown").depends_on(&with_unknown),
            SubmitError::UnknownDependency {
                id: unknown,
                error: LookupError::NotFound,
            },
        ),
    ];
    for (spec, job, error) in cases {
        refused_with_job_back(&mut table, spec, job, error);
    }
    // The pool: `c` takes both edges; one more dependency finds it used up.
    let c = table
        .submit(NewJob::new("c".into()).depends_on(&[a, b]), t(1))
        .unwrap();
    refused_with_job_back(
        &mut table,
        "pool",
        job("pool").depends_on(&[c]),
        SubmitError::DependenciesFull,
    );
    // The table is full of live jobs.
    refused_with_job_back(
        &mut table,
        "full",
        job("full").description("room?"),
        SubmitError::TableFull,
    );
}

// ----- R-RETAIN -----------------------------------------------------------------------------

#[test]
fn r_retain_terminal_jobs_stay_for_the_retention_then_leave_a_tombstone() {
    let mut table = table();
    let id = failed(&mut table, 0);
    assert_eq!(table.next_timer(), Some(t(10)));
    assert_eq!(table.expire(t(9)).removed, 0);
    assert!(table.get(id).is_ok());
    assert_eq!(table.expire(t(10)).removed, 1);
    let Err(LookupError::Expired(Some(tomb))) = table.get(id) else {
        panic!("expected a tombstone")
    };
    assert_eq!(
        tomb.outcome,
        Outcome::Failed {
            reason: FailReason::Error,
            code: 7
        }
    );
    assert_eq!(tomb.ended, t(0));
    assert_eq!(Config::DEFAULT.retention, Duration::from_secs(300));
}

#[test]
fn r_retain_tombstone_ring_keeps_the_most_recent() {
    let mut table: JobTable<u32, 2, 16, 8> = JobTable::new(Config {
        retention: Duration::from_secs(0),
    });
    let ids: Vec<JobId> = (0..3)
        .map(|k| {
            let id = table.submit(NewJob::new(k), t(u64::from(k))).unwrap();
            table.request_cancel(id, t(u64::from(k))).unwrap();
            table.expire(t(u64::from(k)));
            id
        })
        .collect();
    let kept: Vec<JobId> = table.tombstones().map(|x| x.id).collect();
    assert_eq!(kept, ids[1..]);
    assert_eq!(
        table.get(ids[0]).map(|_| ()),
        Err(LookupError::Expired(None))
    );
    assert!(matches!(
        table.get(ids[2]),
        Err(LookupError::Expired(Some(_)))
    ));
}

// ----- R-DEADLINE ---------------------------------------------------------------------------

fn with(options: JobOptions, table: &mut Small, at: u64) -> JobId {
    let id = table
        .submit(NewJob::new(0).options(options), t(at))
        .unwrap();
    table.start(id, t(at)).unwrap();
    id
}

fn ms(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

#[test]
fn r_deadline_run_timeout_fails_running_and_paused_jobs() {
    let mut table = table();
    let timeout = JobOptions {
        run_timeout: Some(Duration::from_secs(5)),
        ..JobOptions::DEFAULT
    };
    let run = with(timeout, &mut table, 0);
    let park = with(timeout, &mut table, 1);
    table.request_pause(park, t(1)).unwrap();
    table.checkpoint(park, t(1)).unwrap();
    let dependent = table
        .submit(NewJob::new(0).depends_on(&[run]), t(1))
        .unwrap();
    assert_eq!(table.next_timer(), Some(t(5)));
    assert_eq!(table.expire(t(4)).timed_out, 0);
    assert_eq!(table.expire(t(5)).timed_out, 1);
    let job = table.get(run).unwrap();
    assert_eq!((job.message(), job.detail()), ("", Some(Detail::Deadline)));
    assert_eq!(
        state(&table, dependent),
        State::Failed,
        "dependents fail too"
    );
    assert_eq!(state(&table, park), State::Paused);
    assert_eq!(table.expire(t(6)).timed_out, 1);
    assert!(matches!(
        table.get(park).unwrap().outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            ..
        })
    ));
}

#[test]
fn r_deadline_lease_runs_out_without_heartbeat() {
    let mut table = table();
    let lease = JobOptions {
        lease: Some(Duration::from_secs(3)),
        ..JobOptions::DEFAULT
    };
    let id = with(lease, &mut table, 0);
    table.heartbeat(id, t(2)).unwrap();
    table.progress(id, 5, "", t(4)).unwrap();
    assert_eq!(table.checkpoint(id, t(6)).unwrap(), Directive::Continue);
    assert_eq!(table.next_timer(), Some(t(9)));
    assert_eq!(table.expire(t(8)).timed_out, 0);
    assert_eq!(table.expire(t(9)).timed_out, 1);
    let job = table.get(id).unwrap();
    assert!(matches!(
        job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            ..
        })
    ));
    assert_eq!((job.message(), job.detail()), ("", Some(Detail::Lease)));
    // A paused job does not need a heartbeat.
    let parked = with(lease, &mut table, 10);
    table.request_pause(parked, t(10)).unwrap();
    table.checkpoint(parked, t(10)).unwrap();
    assert_eq!(table.get(parked).unwrap().lease_until(), None);
    assert_eq!(table.expire(t(100)).timed_out, 0);
    assert_eq!(state(&table, parked), State::Paused);
}

/// An operation a worker or client may make on a running or paused job.
type Late = fn(&mut Small, JobId, Instant) -> Result<(), JobError>;

/// Every operation on a running job: each must time out an overdue job by itself.
const ON_RUNNING: [(&str, Late); 10] = [
    ("progress", |tb, id, now| tb.progress(id, 50, "late", now)),
    ("heartbeat", |tb, id, now| tb.heartbeat(id, now)),
    ("checkpoint", |tb, id, now| {
        tb.checkpoint(id, now).map(|_| ())
    }),
    ("log", |tb, id, now| tb.log(id, "late", now)),
    ("succeed", |tb, id, now| {
        tb.succeed(id, Severity::Normal, "done", now)
    }),
    ("fail", |tb, id, now| tb.fail(id, 1, "broke", now)),
    ("start", |tb, id, now| tb.start(id, now)),
    ("pause", |tb, id, now| tb.request_pause(id, now)),
    ("resume", |tb, id, now| tb.request_resume(id, now)),
    ("cancel", |tb, id, now| tb.request_cancel(id, now)),
];

/// Call `late` on the overdue job `id` at `now` (no `expire` ran): it answers
/// `AlreadyTerminal` and the job is `Failed(TimedOut)` with `detail`, ended at `now`, with
/// none of the late call's effect; its dependent fails too.
fn times_out_on_its_own(
    table: &mut Small,
    name: &str,
    late: Late,
    id: JobId,
    now: Instant,
    detail: Detail,
) {
    let dependent = table
        .submit(NewJob::new(0).depends_on(&[id]), t(0))
        .unwrap();
    let before = table.get(id).unwrap();
    let (revision, progress, from) = (table.revision(), before.progress(), before.state());
    assert_eq!(
        late(table, id, now),
        Err(JobError::AlreadyTerminal),
        "{name}"
    );
    let job = table.get(id).unwrap();
    assert_eq!(
        job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            code: 3
        }),
        "{name}"
    );
    assert_eq!(job.detail(), Some(detail), "{name}");
    assert_eq!(job.message(), "", "{name}");
    assert_eq!(
        job.progress(),
        progress,
        "{name}: the late call did nothing"
    );
    assert_eq!(job.ended(), Some(now), "{name}");
    assert_eq!(table.now(), now, "{name}");
    let dep = table.get(dependent).unwrap();
    assert_eq!(dep.detail(), Some(Detail::Dependency(id)), "{name}");
    // Two changes (the timeout, then the cascade) and nothing else: no log line, no progress.
    let kinds: Vec<_> = table
        .journal(revision)
        .unwrap()
        .map(|e| (e.job, e.kind))
        .collect();
    let failed = EventKind::StateChanged {
        from,
        to: State::Failed,
    };
    assert_eq!(
        kinds,
        [
            (id, failed),
            (
                dependent,
                EventKind::StateChanged {
                    from: State::Queued,
                    to: State::Failed
                }
            )
        ],
        "{name}"
    );
    // Asking again changes nothing.
    let before = Snapshot::of(&*table);
    assert_eq!(
        late(table, id, now),
        Err(JobError::AlreadyTerminal),
        "{name}"
    );
    assert_eq!(Snapshot::of(&*table), before, "{name}");
}

/// R-DEADLINE: a late update (progress, heartbeat, checkpoint, log, succeed, …) after the
/// lease passed fails the job `TimedOut` (detail `Lease`) by itself — no `expire` ran — and
/// answers `AlreadyTerminal`. Just before, the same update is on time.
#[test]
fn r_deadline_update_after_lease_fails_timed_out_without_expire() {
    let lease = JobOptions {
        lease: Some(Duration::from_secs(3)),
        ..JobOptions::DEFAULT
    };
    for (name, late) in ON_RUNNING {
        let mut table = table();
        let id = with(lease, &mut table, 0);
        assert_eq!(table.get(id).unwrap().lease_until(), Some(t(3)));
        times_out_on_its_own(&mut table, name, late, id, t(3), Detail::Lease);
    }
    // One millisecond earlier the lease holds, and a heartbeat renews it.
    let mut table = table();
    let id = with(lease, &mut table, 0);
    table.heartbeat(id, ms(2_999)).unwrap();
    assert_eq!(table.get(id).unwrap().lease_until(), Some(ms(5_999)));
    assert_eq!(state(&table, id), State::Running);
}

/// R-DEADLINE: the same for the run timeout (detail `Deadline`), also when the lease has
/// passed as well (the deadline is named when it has passed, the lease otherwise).
#[test]
fn r_deadline_update_after_deadline_fails_timed_out_without_expire() {
    let both = JobOptions {
        run_timeout: Some(Duration::from_secs(5)),
        lease: Some(Duration::from_secs(2)),
        ..JobOptions::DEFAULT
    };
    for (name, late) in ON_RUNNING {
        // Heartbeats keep the lease alive up to the deadline.
        let mut table = table();
        let id = with(both, &mut table, 0);
        for s in 1..=4 {
            table.heartbeat(id, t(s)).unwrap();
        }
        // The lease would end at 6 s: it reads as the deadline, the earlier of the two.
        assert_eq!(table.get(id).unwrap().lease_until(), Some(t(5)));
        assert_eq!(table.get(id).unwrap().deadline(), Some(t(5)));
        times_out_on_its_own(&mut table, name, late, id, t(5), Detail::Deadline);

        // No heartbeat: the lease passed at 2 s, the deadline at 5 s; at 6 s it is the deadline.
        let mut table = self::table();
        let id = with(both, &mut table, 0);
        times_out_on_its_own(&mut table, name, late, id, t(6), Detail::Deadline);

        // At 3 s only the lease has passed.
        let mut table = self::table();
        let id = with(both, &mut table, 0);
        times_out_on_its_own(&mut table, name, late, id, t(3), Detail::Lease);
    }
}

/// R-DEADLINE: a paused job owes no heartbeat, but its deadline runs on: resume, cancel or a
/// checkpoint after it fail the job `TimedOut` (detail `Deadline`) by themselves.
#[test]
fn r_deadline_paused_job_past_its_deadline_times_out_on_resume_or_cancel() {
    let options = JobOptions {
        run_timeout: Some(Duration::from_secs(5)),
        lease: Some(Duration::from_secs(1)),
        ..JobOptions::DEFAULT
    };
    let on_paused: [(&str, Late); 3] = [
        ("resume", |tb, id, now| tb.request_resume(id, now)),
        ("cancel", |tb, id, now| tb.request_cancel(id, now)),
        ("checkpoint", |tb, id, now| {
            tb.checkpoint(id, now).map(|_| ())
        }),
    ];
    for (name, late) in on_paused {
        let mut table = table();
        let id = with(options, &mut table, 0);
        table.request_pause(id, t(0)).unwrap();
        assert_eq!(table.checkpoint(id, t(0)).unwrap(), Directive::Pause);
        // Paused for 4 s: no lease, no timeout yet.
        assert_eq!(table.get(id).unwrap().lease_until(), None);
        assert_eq!(table.checkpoint(id, t(4)).unwrap(), Directive::Pause);
        times_out_on_its_own(&mut table, name, late, id, t(5), Detail::Deadline);
    }
    // Without a run timeout, a paused job waits as long as it takes; resuming renews the lease.
    let mut table = table();
    let lease_only = JobOptions {
        lease: Some(Duration::from_secs(1)),
        ..JobOptions::DEFAULT
    };
    let id = with(lease_only, &mut table, 0);
    table.request_pause(id, t(0)).unwrap();
    table.checkpoint(id, t(0)).unwrap();
    table.request_resume(id, t(100)).unwrap();
    assert_eq!(state(&table, id), State::Running);
    assert_eq!(table.get(id).unwrap().lease_until(), Some(t(101)));
}

/// R-DEADLINE: the deadline is the first start plus the run timeout; pausing, resuming and
/// going back to the queue do not move it.
#[test]
fn r_deadline_spans_pauses_and_requeues() {
    let mut table = table();
    let options = JobOptions {
        run_timeout: Some(Duration::from_secs(10)),
        restartable: true,
        ..JobOptions::DEFAULT
    };
    let id = with(options, &mut table, 0);
    assert_eq!(table.get(id).unwrap().deadline(), Some(t(10)));
    table.request_pause(id, t(2)).unwrap();
    table.checkpoint(id, t(2)).unwrap();
    table.request_resume(id, t(6)).unwrap();
    assert_eq!(table.get(id).unwrap().deadline(), Some(t(10)));
    // Interrupted: a restartable job goes back to the queue, its deadline stays.
    table
        .fail_with(id, FailReason::Interrupted, None, "", t(7))
        .unwrap();
    assert_eq!(state(&table, id), State::Queued);
    assert_eq!(table.get(id).unwrap().deadline(), Some(t(10)));
    table.start(id, t(8)).unwrap();
    let job = table.get(id).unwrap();
    assert_eq!((job.started(), job.deadline()), (Some(t(0)), Some(t(10))));
    assert_eq!(table.next_timer(), Some(t(10)));
    times_out_on_its_own(
        &mut table,
        "heartbeat",
        |tb, id, now| tb.heartbeat(id, now),
        id,
        t(10),
        Detail::Deadline,
    );
}

/// R-DEADLINE: the lease is renewed by start, progress, heartbeat, checkpoint and log while
/// running, and by resume; a client's request renews nothing; a paused job has no lease.
#[test]
fn r_deadline_lease_renewed_by_every_worker_contact() {
    let mut table = table();
    let lease = JobOptions {
        lease: Some(Duration::from_secs(3)),
        ..JobOptions::DEFAULT
    };
    let id = with(lease, &mut table, 0);
    let until = |table: &Small| table.get(id).unwrap().lease_until();
    assert_eq!(until(&table), Some(t(3)), "start");
    table.progress(id, 1, "", t(1)).unwrap();
    assert_eq!(until(&table), Some(t(4)), "progress");
    table.heartbeat(id, t(2)).unwrap();
    assert_eq!(until(&table), Some(t(5)), "heartbeat");
    table.checkpoint(id, t(3)).unwrap();
    assert_eq!(until(&table), Some(t(6)), "checkpoint");
    table.log(id, "x", t(4)).unwrap();
    assert_eq!(until(&table), Some(t(7)), "log");
    table.request_pause(id, t(5)).unwrap();
    assert_eq!(until(&table), Some(t(7)), "a request renews nothing");
    table.checkpoint(id, t(5)).unwrap();
    assert_eq!(state(&table, id), State::Paused);
    assert_eq!(until(&table), None, "paused");
    table.log(id, "parked", t(20)).unwrap();
    table.request_resume(id, t(30)).unwrap();
    assert_eq!(until(&table), Some(t(33)), "resume");
    table.request_cancel(id, t(31)).unwrap();
    assert_eq!(until(&table), Some(t(33)), "a request renews nothing");
    assert_eq!(table.next_timer(), Some(t(33)));
}

/// R-DEADLINE: a job's options are chosen at submit and read back the same for its whole
/// life — its lease too, once it has ended (an HTTP binding prints them for finished jobs).
#[test]
fn r_deadline_options_read_back_unchanged_after_the_job_ended() {
    let mut table = table();
    let options = JobOptions {
        pausable: false,
        cancelable: true,
        restartable: true,
        run_timeout: Some(Duration::from_secs(60)),
        lease: Some(Duration::from_secs(5)),
    };
    let canceled = table.submit(NewJob::new(0).options(options), t(0)).unwrap();
    let done = with(options, &mut table, 0);
    assert_eq!(table.get(canceled).unwrap().options(), options);
    assert_eq!(table.get(done).unwrap().options(), options);
    table.request_cancel(canceled, t(1)).unwrap();
    table.succeed(done, Severity::Normal, "", t(1)).unwrap();
    assert_eq!(table.get(canceled).unwrap().options(), options, "canceled");
    assert_eq!(table.get(done).unwrap().options(), options, "succeeded");
    assert_eq!(table.snapshot(done).unwrap().options(), options);
}

/// R-DEADLINE, time: a job keeps whole milliseconds (sub-millisecond parts dropped); run
/// timeouts and leases are kept to the millisecond, rounded up; the table's own clock keeps
/// the instant it was given.
#[test]
fn r_deadline_instants_and_durations_are_whole_milliseconds() {
    let mut table = table();
    let us = Instant::from_micros;
    let options = JobOptions {
        run_timeout: Some(Duration::from_micros(2_000_001)),
        lease: Some(Duration::from_ticks(0)),
        ..JobOptions::DEFAULT
    };
    let id = table
        .submit(NewJob::new(0).options(options), us(1_500_700))
        .unwrap();
    let job = table.get(id).unwrap();
    assert_eq!((job.created(), job.modified()), (ms(1_500), ms(1_500)));
    assert_eq!(
        job.options().run_timeout,
        Some(Duration::from_millis(2_001))
    );
    assert_eq!(job.options().lease, Some(Duration::from_millis(1)));
    table.start(id, us(3_000_999)).unwrap();
    let job = table.get(id).unwrap();
    assert_eq!(job.started(), Some(ms(3_000)));
    assert_eq!(job.deadline(), Some(ms(5_001)));
    assert_eq!(job.lease_until(), Some(ms(3_001)));
    assert_eq!(table.now(), us(3_000_999));
    // Due at the lease's millisecond, whatever the sub-millisecond part of `now`.
    assert_eq!(table.expire(us(3_000_999)).timed_out, 0);
    assert_eq!(table.expire(us(3_001_000)).timed_out, 1);
    assert_eq!(table.get(id).unwrap().ended(), Some(ms(3_001)));
    let too_long = JobOptions {
        lease: Some(JobOptions::MAX_DURATION + Duration::from_millis(1)),
        ..JobOptions::DEFAULT
    };
    refused!(
        table,
        table
            .submit(NewJob::new(0).options(too_long), t(4))
            .map_err(SubmitError::from),
        SubmitError::DurationTooLong
    );
}

// ----- R-INPUT ------------------------------------------------------------------------------

#[test]
fn r_input_progress_over_100_is_refused() {
    let mut table = table();
    let id = running(&mut table, 0);
    table.progress(id, 100, "", t(1)).unwrap();
    for p in [101, 200, 255] {
        refused!(
            table,
            table.progress(id, p, "", t(2)),
            JobError::ProgressOutOfRange(p)
        );
    }
}

#[test]
fn r_input_text_over_capacity_is_refused() {
    let mut table = table(); // 16 bytes
    let fits = "0123456789abcdef";
    let over = "0123456789abcdefg";
    let wide = "ééééééééé"; // 9 characters, 18 bytes
    let id = running(&mut table, 0);
    let message = JobError::TextTooLong {
        field: TextField::Message,
        limit: 16,
    };
    for text in [over, wide] {
        refused!(
            table,
            table
                .submit(NewJob::new(0).description(text), t(1))
                .map_err(SubmitError::from),
            SubmitError::TextTooLong {
                field: TextField::Description,
                limit: 16
            }
        );
        refused!(table, table.progress(id, 1, text, t(1)), message);
        refused!(
            table,
            table.log(id, text, t(1)),
            JobError::TextTooLong {
                field: TextField::LogLine,
                limit: 16
            }
        );
        refused!(
            table,
            table.succeed(id, Severity::Normal, text, t(1)),
            message
        );
        refused!(table, table.fail(id, 1, text, t(1)), message);
        refused!(
            table,
            table.fail_with(id, FailReason::Error, None, text, t(1)),
            message
        );
    }
    table.progress(id, 1, fits, t(1)).unwrap();
    table.log(id, fits, t(1)).unwrap();
    let d = table
        .submit(NewJob::new(0).description(fits), t(1))
        .unwrap();
    assert_eq!(table.get(d).unwrap().description(), fits);
}

/// One error model: `TextTooLong` names the text that did not fit and its limit in bytes —
/// the description, a message, or a log line (whose limit is the smaller of `T` and the log
/// ring less 2 bytes).
#[test]
fn r_input_text_too_long_names_field_and_limit() {
    // 32-byte texts, a 20-byte log ring: log lines up to 18 bytes.
    let mut table: JobTable<u32, 2, 32, 8, 20> = JobTable::new(Config::DEFAULT);
    let id = table.submit(NewJob::new(0), t(0)).unwrap();
    table.start(id, t(0)).unwrap();
    let long = "x".repeat(33);
    let description = table
        .submit(NewJob::new(1).description(&long), t(1))
        .unwrap_err()
        .error;
    assert_eq!(
        description,
        SubmitError::TextTooLong {
            field: TextField::Description,
            limit: 32
        }
    );
    assert_eq!(description.to_string(), "description longer than 32 bytes");
    let message = table.progress(id, 1, &long, t(1)).unwrap_err();
    assert_eq!(
        message,
        JobError::TextTooLong {
            field: TextField::Message,
            limit: 32
        }
    );
    assert_eq!(message.to_string(), "message longer than 32 bytes");
    let line = table.log(id, &long[..19], t(1)).unwrap_err();
    assert_eq!(
        line,
        JobError::TextTooLong {
            field: TextField::LogLine,
            limit: 18
        }
    );
    assert_eq!(line.to_string(), "log_line longer than 18 bytes");
    table.log(id, &long[..18], t(1)).unwrap();
    table.progress(id, 1, &long[..32], t(1)).unwrap();
}

/// R-INPUT: input that is wrong whatever the table holds is refused first, then the id is
/// resolved, then a terminal job answers `AlreadyTerminal`, then an overdue job times out,
/// then the job's state is checked (`docs/core.md`, "Error precedence").
#[test]
fn r_input_error_precedence_values_then_lookup_then_live_then_state() {
    let mut table = table();
    let q = queued(&mut table, 0);
    let done = succeeded(&mut table, 0);
    let unknown = make_id(0, 3, 5);
    let too_long = "far too long for 16";
    let text = JobError::TextTooLong {
        field: TextField::Message,
        limit: 16,
    };
    // Values first: percent, then the message, before the id and the state.
    refused!(
        table,
        table.progress(unknown, 255, too_long, t(1)),
        JobError::ProgressOutOfRange(255)
    );
    refused!(table, table.progress(q, 50, too_long, t(1)), text);
    refused!(
        table,
        table.succeed(done, Severity::Normal, too_long, t(1)),
        text
    );
    refused!(
        table,
        table.log(unknown, too_long, t(1)),
        JobError::TextTooLong {
            field: TextField::LogLine,
            limit: 16
        }
    );
    // Then the id, then whether the job is live, then its state.
    refused!(
        table,
        table.progress(unknown, 50, "x", t(1)),
        JobError::Lookup(LookupError::NotFound)
    );
    refused!(
        table,
        table.progress(done, 50, "x", t(1)),
        JobError::AlreadyTerminal
    );
    refused!(
        table,
        table.progress(q, 50, "x", t(1)),
        JobError::NotRunning
    );
    refused!(
        table,
        table.succeed(q, Severity::Normal, "x", t(1)),
        JobError::Transition {
            from: State::Queued,
            to: State::Succeeded
        }
    );
    // An overdue job: a bad value is refused and changes nothing (the job is not timed out
    // by a refused call); a good one times it out.
    let lease = JobOptions {
        lease: Some(Duration::from_secs(1)),
        ..JobOptions::DEFAULT
    };
    let mut other = self::table();
    let late = with(lease, &mut other, 0);
    refused!(
        other,
        other.progress(late, 101, "", t(5)),
        JobError::ProgressOutOfRange(101)
    );
    assert_eq!(
        other.progress(late, 50, "", t(5)),
        Err(JobError::AlreadyTerminal)
    );
    assert_eq!(other.get(late).unwrap().detail(), Some(Detail::Lease));
    // Submit: the description before the count, the count before the durations, the
    // durations before each dependency, the dependencies before the pool and a slot.
    let nine = [unknown; MAX_DEPENDENCIES + 1];
    let forever = JobOptions {
        run_timeout: Some(Duration::from_secs(60 * 86_400)),
        ..JobOptions::DEFAULT
    };
    fn submit(table: &mut Small, job: NewJob<'_, u32>) -> Result<JobId, SubmitError> {
        table.submit(job, t(1)).map_err(SubmitError::from)
    }
    refused!(
        table,
        submit(
            &mut table,
            NewJob::new(0).description(too_long).depends_on(&nine)
        ),
        SubmitError::TextTooLong {
            field: TextField::Description,
            limit: 16
        }
    );
    refused!(
        table,
        submit(
            &mut table,
            NewJob::new(0).depends_on(&nine).options(forever)
        ),
        SubmitError::TooManyDependencies
    );
    refused!(
        table,
        submit(
            &mut table,
            NewJob::new(0).depends_on(&[unknown]).options(forever)
        ),
        SubmitError::DurationTooLong
    );
}

#[test]
fn r_input_time_going_back_counts_as_the_newest_seen() {
    let mut table = table();
    let id = running(&mut table, 100);
    table.progress(id, 1, "", t(50)).unwrap();
    assert_eq!(table.now(), t(100));
    assert_eq!(table.get(id).unwrap().modified(), t(100));
}

#[test]
fn r_input_journal_from_the_future_is_empty() {
    let mut table = table();
    queued(&mut table, 0);
    assert_eq!(table.journal(Revision::new(u64::MAX)).unwrap().count(), 0);
}

// ----- R-PERSIST ----------------------------------------------------------------------------

/// R-PERSIST: images store milliseconds. `image_now` and the instants of decoded and restored
/// jobs are the encoded table's instants truncated to the millisecond, so an image reads the
/// same whatever tick rate wrote or reads it.
#[test]
fn r_persist_images_store_milliseconds() {
    let mut table = table();
    let us = Instant::from_micros;
    let a = table.submit(NewJob::new(1), us(1_234_567)).unwrap();
    table.start(a, us(2_345_678)).unwrap();
    table.progress(a, 10, "x", us(3_456_789)).unwrap();
    let b = table.submit(NewJob::new(2), us(4_000_999)).unwrap();
    assert_eq!(table.now(), us(4_000_999));
    let mut image = vec![0u8; Small::image_size_bound(5)];
    let len = table.encode(&mut image).unwrap();
    let image = &image[..len];
    assert_eq!(image_now(image), Ok(ms(4_000)));

    let mut decoded = Box::new(self::table());
    decoded.decode_in_place(image).unwrap();
    assert_eq!(decoded.now(), ms(4_000));
    for id in [a, b] {
        assert_eq!(
            decoded.snapshot(id).unwrap(),
            table.snapshot(id).unwrap(),
            "{id}"
        );
    }
    let job = decoded.get(a).unwrap();
    assert_eq!(
        (job.created(), job.started(), job.modified()),
        (ms(1_234), Some(ms(2_345)), ms(3_456))
    );
    assert_eq!(decoded.get(b).unwrap().created(), ms(4_000));

    let mut restored = Box::new(self::table());
    restored.restore_in_place(image, us(5_000_500)).unwrap();
    let job = restored.get(a).unwrap();
    assert_eq!(
        (job.created(), job.started(), job.ended()),
        (ms(1_234), Some(ms(2_345)), Some(ms(5_000)))
    );
    assert_eq!(job.detail(), Some(Detail::Interrupted));
    let job = restored.get(b).unwrap();
    assert_eq!((job.created(), job.modified()), (ms(4_000), ms(4_000)));
}

/// R-PERSIST: a version-1 image (tick-based times) is refused with `UnsupportedVersion(1)`,
/// its CRC valid or not, and the table it was offered to is left as it was.
#[test]
fn r_persist_version_1_images_are_refused() {
    let mut table = table();
    queued(&mut table, 0);
    let mut image = vec![0u8; Small::image_size_bound(5)];
    let len = table.encode(&mut image).unwrap();
    image.truncate(len);
    image[4] = 1;
    let mut target = self::table();
    let kept = running(&mut target, 1);
    let before = Snapshot::of(&target);
    assert_eq!(
        target.decode_in_place(&image),
        Err(DecodeError::UnsupportedVersion(1))
    );
    // With a CRC that matches the changed header.
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut digest = crc.digest();
    digest.update(&image[..9]);
    digest.update(&image[13..]);
    image[9..13].copy_from_slice(&digest.finalize().to_le_bytes());
    assert_eq!(
        target.restore_in_place(&image, t(2)).map(|_| ()),
        Err(DecodeError::UnsupportedVersion(1))
    );
    assert_eq!(Snapshot::of(&target), before);
    assert!(target.get(kept).is_ok());
}

// ----- fixed RAM (SPEC §1) ------------------------------------------------------------------

/// All memory is inside the table value. A slot costs the same whatever the capacity (its
/// record, its spec entry and two texts of `T` bytes); the journal costs 16 bytes an event
/// whatever `T`; the log ring `L` bytes; an edge 20 bytes and a tombstone 24. The figures are
/// printed by `cargo run -p jobstate --example size`.
#[test]
fn fixed_ram_grows_linearly_with_capacity_and_text() {
    use core::mem::size_of;
    type Table<const N: usize, const T: usize, const J: usize, const L: usize, const E: usize> =
        JobTable<u32, N, T, J, L, E, 8>;
    let s16 = size_of::<Table<16, 64, 64, 256, 8>>();
    let s64 = size_of::<Table<64, 64, 64, 256, 8>>();
    let per_slot = (s64 - s16) / 48;
    assert_eq!(s64 - s16, per_slot * 48);
    // The record (64 bytes; 80 with the `retry` feature), the (u16, u32) spec entry, two
    // 64-byte texts and their two u16 lengths.
    let record = per_slot - (8 + 2 * 64 + 4);
    assert!(
        record == 64 || record == 80,
        "a slot record takes {record} bytes"
    );
    assert_eq!(size_of::<Table<16, 128, 64, 256, 8>>() - s16, 16 * 2 * 64);
    assert_eq!(size_of::<Table<16, 64, 128, 256, 8>>() - s16, 64 * 16);
    assert_eq!(size_of::<Table<16, 64, 64, 512, 8>>() - s16, 256);
    assert_eq!(size_of::<Table<16, 64, 64, 256, 16>>() - s16, 8 * 20);
    assert_eq!(
        size_of::<JobTable<u32, 16, 64, 64, 256, 8, 16>>() - s16,
        8 * 24
    );
}
