//! One or more named tests per requirement of the core (SPEC R-ID … R-INPUT), through the
//! public API only. Every refused call is checked to leave the table exactly as it was: a
//! [`Snapshot`] of all observable state (jobs, revision, clock, journal, tombstones, runnable
//! head, next timer) before and after must be equal.

use jobstate::{
    Compacted, Condition, Config, Directive, Duration, EventKind, FailReason, Instant, JobError,
    JobId, JobOptions, JobTable, LookupError, NewJob, Outcome, Request, Revision, Severity, State,
    SubmitError,
};
use jobstate_tests::{make_id, read_journal, KindView, Snapshot};

/// 4 jobs, 16-byte texts, 2 dependencies, 8 journal events.
type Small = JobTable<u32, 4, 16, 2, 8>;

const RETENTION: Duration = Duration::from_secs(10);

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn table() -> Small {
    JobTable::new(Config {
        retention: RETENTION,
    })
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
    refused!(table, table.request_cancel(id, t(50)), e);
    refused!(
        table,
        table.submit(NewJob::new(0).depends_on(&[id]), t(50)),
        SubmitError::UnknownDependency { id, error: lookup }
    );
}

// ----- R-ID ---------------------------------------------------------------------------------

#[test]
fn r_id_lookup_answers_job_expired_or_not_found() {
    let mut table = table();
    let a = running(&mut table, 0);
    assert_eq!(table.get(a).unwrap().id(), a);
    let never = make_id(1, 3, 1);
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
    let mut table: JobTable<u32, 1, 16, 2, 8> = JobTable::new(Config {
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
        make_id(1, live.index(), live.generation() + 1),
        make_id(1, 3, 1),
        make_id(1, 4, 1),
        make_id(1, u16::MAX, 1),
        make_id(2, live.index(), live.generation()),
        make_id(1, live.index(), 0),
    ] {
        all_entry_points_refuse(&mut table, id, LookupError::NotFound);
    }
}

#[test]
fn r_id_stale_generation_refused_by_every_entry_point() {
    let mut table: JobTable<u32, 1, 16, 2, 8> = JobTable::new(Config {
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
        small.submit(NewJob::new(9).depends_on(&[stale]), t(9)),
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
    let tomb = *table.tombstones().next().unwrap();
    assert_eq!(tomb.id, gone);
    all_entry_points_refuse(&mut table, gone, LookupError::Expired(Some(tomb)));
}

#[test]
fn r_id_previous_epoch_ids_are_stale() {
    // Epoch 0 comes before every table (a new table is in epoch 1).
    let mut table = table();
    let live = running(&mut table, 0);
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
    let (mut restored, _) = Small::restore(&buf[..len], t(20)).unwrap();
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
    refused!(big, big.start(s, t(12)), tr(Succeeded, Running));
    refused!(other, other.start(f, t(12)), tr(Failed, Running));
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
    refused!(
        big,
        big.succeed(s, Severity::Normal, "", t(12)),
        tr(Succeeded, Succeeded)
    );
    refused!(
        other,
        other.succeed(f, Severity::Normal, "", t(12)),
        tr(Failed, Succeeded)
    );
    refused!(big, big.fail(s, 1, "", t(12)), tr(Succeeded, Failed));
    refused!(other, other.fail(f, 1, "", t(12)), tr(Failed, Failed));
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
        let (rev, version) = (table.revision(), table.get(id).unwrap().version());
        step(&mut table, id);
        let job = table.get(id).unwrap();
        assert_eq!(table.revision(), Revision::new(rev.get() + 1), "{name}");
        assert_eq!(job.revision(), table.revision(), "{name}");
        assert_eq!(job.version(), version + 1, "{name}");
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
    let job = table.get(dependent).unwrap();
    assert_eq!(job.outcome(), failure(FailReason::DependencyFailed, 4));
    table.expire(t(100));

    let canceled = queued(&mut table, 100);
    table.request_cancel(canceled, t(100)).unwrap();
    assert_eq!(
        table.get(canceled).unwrap().outcome(),
        failure(FailReason::Canceled, 2)
    );

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
    assert_eq!(
        table.get(timed).unwrap().outcome(),
        failure(FailReason::TimedOut, 3)
    );
    assert_eq!(FailReason::Interrupted.default_code(), 5);
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

#[test]
fn r_control_any_action_on_a_terminal_job_is_already_terminal() {
    let mut table = table();
    for id in [succeeded(&mut table, 0), failed(&mut table, 0)] {
        let e = JobError::AlreadyTerminal;
        refused!(table, table.request_pause(id, t(1)), e);
        refused!(table, table.request_resume(id, t(1)), e);
        refused!(table, table.request_cancel(id, t(1)), e);
        refused!(table, table.checkpoint(id, t(1)), e);
        refused!(table, table.progress(id, 1, "", t(1)), e);
        refused!(table, table.log(id, "", t(1)), e);
        refused!(table, table.heartbeat(id, t(1)), e);
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
    let events: Vec<_> = table.journal(seen).unwrap().cloned().collect();
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
    assert!(matches!(&events[2].kind, EventKind::Log(l) if l.as_str() == "step 1"));
    let revisions: Vec<u64> = events.iter().map(|e| e.revision.get()).collect();
    assert_eq!(revisions, [seen.get() + 1, seen.get() + 2, seen.get() + 3]);
    assert_eq!(table.journal(table.revision()).unwrap().count(), 0);
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
    // Resuming from just before the oldest kept event reads them all, in order.
    let kept: Vec<u64> = table
        .journal(Revision::new(oldest - 1))
        .unwrap()
        .map(|e| e.revision.get())
        .collect();
    assert_eq!(kept, (oldest..=current).collect::<Vec<_>>());
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
    let mut table: JobTable<u32, 8, 32, 2, 32> = JobTable::new(Config::DEFAULT);
    let a = table.submit(NewJob::new(0), t(0)).unwrap();
    let other = table.submit(NewJob::new(0), t(0)).unwrap();
    let b = table.submit(NewJob::new(0).depends_on(&[a]), t(0)).unwrap();
    let c = table
        .submit(NewJob::new(0).depends_on(&[b, other]), t(0))
        .unwrap();
    let d = table.submit(NewJob::new(0).depends_on(&[c]), t(0)).unwrap();
    table.start(a, t(1)).unwrap();
    let seen = table.revision();
    table.fail(a, 9, "boom", t(2)).unwrap();
    for id in [b, c, d] {
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
    }
    assert_eq!(table.get(other).unwrap().state(), State::Queued);
    assert_eq!(
        table.get(b).unwrap().message(),
        format!("dependency {a} failed")
    );
    // One revision per failed job.
    assert_eq!(table.revision().get(), seen.get() + 4);
    // A job submitted on a failed dependency fails at once.
    let late = table.submit(NewJob::new(0).depends_on(&[d]), t(3)).unwrap();
    assert!(matches!(
        table.get(late).unwrap().outcome(),
        Some(Outcome::Failed {
            reason: FailReason::DependencyFailed,
            ..
        })
    ));
}

#[test]
fn r_deps_bad_dependencies_are_refused_at_submit() {
    let mut table = table();
    let a = queued(&mut table, 0);
    let gone = expired(&mut table, 0);
    let tomb = table.tombstones().find(|x| x.id == gone).copied();
    let unknown = make_id(1, 3, 9);
    let stale = make_id(0, a.index(), a.generation());
    fn sub(deps: &[JobId]) -> NewJob<'_, u32> {
        NewJob::new(0).depends_on(deps)
    }
    refused!(
        table,
        table.submit(sub(&[a, unknown]), t(1)),
        SubmitError::UnknownDependency {
            id: unknown,
            error: LookupError::NotFound
        }
    );
    refused!(
        table,
        table.submit(sub(&[gone]), t(1)),
        SubmitError::UnknownDependency {
            id: gone,
            error: LookupError::Expired(tomb)
        }
    );
    refused!(
        table,
        table.submit(sub(&[stale]), t(1)),
        SubmitError::UnknownDependency {
            id: stale,
            error: LookupError::Stale
        }
    );
    refused!(
        table,
        table.submit(sub(&[a, a]), t(1)),
        SubmitError::DuplicateDependency(a)
    );
    refused!(
        table,
        table.submit(sub(&[a, a, a]), t(1)),
        SubmitError::TooManyDependencies
    );
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
    // Even the clock must not move on a refused submit.
    refused!(
        table,
        table.submit(NewJob::new(9), t(500)),
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
    refused!(
        table,
        table.submit(NewJob::new(9), t(9)),
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
        .map(|e| (e.job, e.kind.clone()))
        .collect();
    assert_eq!(
        removed,
        [(older, EventKind::Removed), (new, EventKind::Submitted)]
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
    let mut table: JobTable<u32, 2, 16, 2, 8> = JobTable::new(Config {
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
    assert_eq!(table.get(run).unwrap().message(), "deadline passed");
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
    assert!(matches!(
        table.get(id).unwrap().outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            ..
        })
    ));
    // A paused job does not need a heartbeat.
    let parked = with(lease, &mut table, 10);
    table.request_pause(parked, t(10)).unwrap();
    table.checkpoint(parked, t(10)).unwrap();
    assert_eq!(table.expire(t(100)).timed_out, 0);
    assert_eq!(state(&table, parked), State::Paused);
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
    for text in [over, wide] {
        refused!(
            table,
            table.submit(NewJob::new(0).description(text), t(1)),
            SubmitError::TextTooLong
        );
        refused!(
            table,
            table.progress(id, 1, text, t(1)),
            JobError::TextTooLong
        );
        refused!(table, table.log(id, text, t(1)), JobError::TextTooLong);
        refused!(
            table,
            table.succeed(id, Severity::Normal, text, t(1)),
            JobError::TextTooLong
        );
        refused!(table, table.fail(id, 1, text, t(1)), JobError::TextTooLong);
    }
    table.progress(id, 1, fits, t(1)).unwrap();
    let d = table
        .submit(NewJob::new(0).description(fits), t(1))
        .unwrap();
    assert_eq!(table.get(d).unwrap().description(), fits);
}

#[test]
fn r_input_error_precedence_lookup_then_state_then_value() {
    let mut table = table();
    let q = queued(&mut table, 0);
    let done = succeeded(&mut table, 0);
    // The state error comes before the value errors.
    refused!(
        table,
        table.progress(q, 255, "far too long for 16", t(1)),
        JobError::NotRunning
    );
    refused!(
        table,
        table.progress(done, 255, "x", t(1)),
        JobError::AlreadyTerminal
    );
    // The text is checked before dependencies, the count before their ids.
    let unknown = make_id(1, 3, 5);
    refused!(
        table,
        table.submit(
            NewJob::new(0)
                .description("far too long for 16")
                .depends_on(&[unknown]),
            t(1)
        ),
        SubmitError::TextTooLong
    );
    refused!(
        table,
        table.submit(
            NewJob::new(0).depends_on(&[unknown, unknown, unknown]),
            t(1)
        ),
        SubmitError::TooManyDependencies
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

// ----- fixed RAM (SPEC §1) ------------------------------------------------------------------

/// All memory is inside the table value: each byte of text capacity costs two bytes per slot
/// (description and message) and one per journal event (a log line); each slot costs the same
/// whatever the capacity. The figures are printed by `cargo run -p jobstate --example size`.
#[test]
fn fixed_ram_grows_linearly_with_capacity_and_text() {
    use core::mem::size_of;
    let s16 = size_of::<JobTable<u32, 16, 64, 4, 64>>();
    let s64 = size_of::<JobTable<u32, 64, 64, 4, 64>>();
    let s16_wide = size_of::<JobTable<u32, 16, 128, 4, 64>>();
    let per_slot = (s64 - s16) / 48;
    assert_eq!(s64 - s16, per_slot * 48);
    assert_eq!(s16_wide - s16, 16 * 2 * 64 + 64 * 64);
    assert!(per_slot < 512, "a slot takes {per_slot} bytes");
}
