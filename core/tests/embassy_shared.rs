//! Host tests of the shared table and its async waits (feature `embassy`), on the workspace's one
//! time driver: embassy-time's mock driver, advanced by hand for deterministic virtual time.
//!
//! Futures are polled by hand with counting wakers, so each test sees exactly who was woken.
//! The mock driver is process-global: every test holds `CLOCK` and resets the driver first.
#![cfg(feature = "embassy")]

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use embassy_sync::blocking_mutex::raw::{CriticalSectionRawMutex, NoopRawMutex};
use embassy_time::MockDriver;
use futures::task::ArcWake;
use jobstate::shared::{Busy, Rejected, SharedError, SharedTable};
use jobstate::{
    Condition, Config, Detail, Directive, Duration, FailReason, Instant, JobError, JobId,
    JobOptions, JobTable, LookupError, NewJob, Outcome, Revision, Severity, State, SubmitError,
    Submitted, Waited,
};

/// Spec `u32`, 8 slots, 32-byte texts, a journal of 16 events, default log ring, edges and
/// tombstones.
type Jobs = JobTable<u32, 8, 32, 16>;
/// The shared table over it, with `W` waker registrations.
type Shared<const W: usize> = SharedTable<CriticalSectionRawMutex, Jobs, W>;

static CLOCK: Mutex<()> = Mutex::new(());

fn setup() -> MutexGuard<'static, ()> {
    let guard = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    MockDriver::get().reset();
    guard
}

fn advance(d: Duration) {
    MockDriver::get().advance(d);
}

fn now() -> Instant {
    Instant::now()
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counter(AtomicUsize);

impl ArcWake for Counter {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counter {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    fn count(self: &Arc<Self>) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn poll<F: Future>(f: Pin<&mut F>, counter: &Arc<Counter>) -> Poll<F::Output> {
    let waker = futures::task::waker(counter.clone());
    f.poll(&mut Context::from_waker(&waker))
}

fn submit<const W: usize>(shared: &Shared<W>, spec: u32) -> JobId {
    shared.submit(NewJob::new(spec), now()).unwrap()
}

fn started<const W: usize>(shared: &Shared<W>, spec: u32) -> JobId {
    let id = submit(shared, spec);
    shared.start(id, now()).unwrap();
    id
}

const LONG: Duration = Duration::from_secs(60);

// R-WAIT: a condition that already holds answers at once, not timed out.
#[test]
fn r_wait_answers_at_once_when_condition_holds() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let c = Counter::new();
    let mut w = pin!(shared.wait(
        id,
        Condition::ChangedSince(Revision::ZERO),
        Duration::from_secs(5)
    ));
    let Poll::Ready(Ok(seen)) = poll(w.as_mut(), &c) else {
        panic!("should be ready at once");
    };
    assert!(!seen.timed_out);
    assert_eq!(seen.job.state(), State::Running);
    assert_eq!(shared.registered_waiters(), 0);
}

// R-WAIT: after its timeout (virtual time) the wait answers the unchanged snapshot marked timed
// out, never an error; not one tick earlier.
#[test]
fn r_wait_timeout_answers_snapshot_marked_timed_out() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let rev = shared.revision();
    let before = shared.snapshot(id).unwrap();
    let c = Counter::new();
    let mut w = pin!(shared.wait(id, Condition::ChangedSince(rev), Duration::from_secs(5)));
    assert!(poll(w.as_mut(), &c).is_pending());
    advance(Duration::from_secs(5) - Duration::from_ticks(1));
    assert!(poll(w.as_mut(), &c).is_pending(), "woke before its timeout");
    advance(Duration::from_ticks(1));
    assert!(c.count() >= 1, "the timer woke the waiter");
    let Poll::Ready(Ok(Waited { job, timed_out })) = poll(w.as_mut(), &c) else {
        panic!("should have timed out");
    };
    assert!(timed_out);
    assert_eq!(job, before);
    assert_eq!(
        shared.registered_waiters(),
        0,
        "a timed-out wait gives its registration back"
    );
}

// R-LONGPOLL: a change to job A wakes A's waiter and table-wide watchers, not B's waiter.
#[test]
fn r_longpoll_wakes_only_target_job() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let a = started(&shared, 1);
    let b = started(&shared, 2);
    let rev = shared.revision();
    let (ca, cb, cany) = (Counter::new(), Counter::new(), Counter::new());
    let mut wa = pin!(shared.wait(a, Condition::ChangedSince(rev), LONG));
    let mut wb = pin!(shared.wait(b, Condition::ChangedSince(rev), LONG));
    let mut any = pin!(shared.changed(rev, LONG));
    assert!(poll(wa.as_mut(), &ca).is_pending());
    assert!(poll(wb.as_mut(), &cb).is_pending());
    assert!(poll(any.as_mut(), &cany).is_pending());
    assert_eq!(shared.registered_waiters(), 3);

    shared.progress(a, 30, "copying", now()).unwrap();
    assert_eq!((ca.count(), cb.count(), cany.count()), (1, 0, 1));
    let Poll::Ready(Ok(seen)) = poll(wa.as_mut(), &ca) else {
        panic!("A's waiter should see the change");
    };
    assert!(!seen.timed_out);
    assert_eq!((seen.job.progress(), seen.job.message()), (30, "copying"));
    assert_eq!(poll(any.as_mut(), &cany), Poll::Ready(shared.revision()));
    assert!(rev < shared.revision());
    assert!(poll(wb.as_mut(), &cb).is_pending());
    assert_eq!(
        shared.registered_waiters(),
        1,
        "only B's waiter is still registered"
    );
}

// R-LONGPOLL: a table-wide watcher answers the unchanged revision on timeout.
#[test]
fn r_longpoll_changed_times_out_with_unchanged_revision() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let _ = started(&shared, 1);
    let rev = shared.revision();
    let c = Counter::new();
    let mut any = pin!(shared.changed(rev, Duration::from_secs(1)));
    assert!(poll(any.as_mut(), &c).is_pending());
    advance(Duration::from_secs(1));
    assert_eq!(poll(any.as_mut(), &c), Poll::Ready(rev));
    assert_eq!(shared.registered_waiters(), 0);
}

// R-WAIT: a wait for Terminal ends on failure as well as on success.
#[test]
fn r_wait_terminal_returns_on_failure() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let c = Counter::new();
    let mut w = pin!(shared.wait(id, Condition::Terminal, LONG));
    assert!(poll(w.as_mut(), &c).is_pending());
    shared.progress(id, 10, "", now()).unwrap();
    assert_eq!(c.count(), 1);
    assert!(
        poll(w.as_mut(), &c).is_pending(),
        "progress is not terminal"
    );
    shared.fail(id, 7, "disk error", now()).unwrap();
    let Poll::Ready(Ok(seen)) = poll(w.as_mut(), &c) else {
        panic!("failure is terminal");
    };
    assert_eq!(seen.job.state(), State::Failed);
    assert!(!seen.timed_out);
}

// R-WAIT: a job removed during the wait answers Expired (with its tombstone).
#[test]
fn r_wait_expired_when_job_removed_during_wait() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config {
        retention: Duration::from_ticks(0),
    });
    let id = started(&shared, 1);
    let c = Counter::new();
    // A condition that this job's changes never satisfy: only the removal ends the wait.
    let far = now() + Duration::from_secs(3600);
    let mut w = pin!(shared.wait(id, Condition::ModifiedAfter(far), LONG));
    assert!(poll(w.as_mut(), &c).is_pending());
    shared.succeed(id, Severity::Normal, "ok", now()).unwrap();
    assert!(poll(w.as_mut(), &c).is_pending());
    let woken = c.count();
    let report = shared.expire(now()).unwrap();
    assert_eq!(report.removed, 1);
    assert_eq!(c.count(), woken + 1, "the removal woke the waiter");
    match poll(w.as_mut(), &c) {
        Poll::Ready(Err(SharedError::Lookup(LookupError::Expired(Some(t))))) => {
            assert_eq!(t.state(), State::Succeeded)
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    assert_eq!(shared.registered_waiters(), 0);
}

// R-WAIT / R-ID: an unknown id answers its lookup error at once.
#[test]
fn r_wait_unknown_id_is_not_found() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let other: Shared<4> = SharedTable::new(Config::DEFAULT);
    let _ = submit(&other, 1);
    let foreign = submit(&other, 2);
    let c = Counter::new();
    let mut w = pin!(shared.wait(foreign, Condition::Terminal, Duration::from_secs(1)));
    assert!(matches!(
        poll(w.as_mut(), &c),
        Poll::Ready(Err(SharedError::Lookup(LookupError::NotFound)))
    ));
    assert_eq!(shared.registered_waiters(), 0);
}

// R-WAIT bug (a): two waits of one task (one waker) on one job are two registrations. The first
// ending by its timeout and being dropped does not take the second's away: the second is woken
// by the job's next change, not left sleeping until its own timeout.
#[test]
fn r_wait_two_waits_one_task_one_job_first_timeout_keeps_second_registered() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let rev = shared.revision();
    let task = Counter::new();
    let mut second = pin!(shared.wait(id, Condition::ChangedSince(rev), LONG));
    {
        let mut first =
            Box::pin(shared.wait(id, Condition::ChangedSince(rev), Duration::from_secs(1)));
        assert!(poll(first.as_mut(), &task).is_pending());
        assert!(poll(second.as_mut(), &task).is_pending());
        assert_eq!(shared.registered_waiters(), 2, "one registration per wait");
        advance(Duration::from_secs(1));
        assert!(matches!(
            poll(first.as_mut(), &task),
            Poll::Ready(Ok(Waited {
                timed_out: true,
                ..
            }))
        ));
    }
    assert_eq!(
        shared.registered_waiters(),
        1,
        "the second wait is still registered"
    );
    let before = task.count();
    shared.progress(id, 50, "half", now()).unwrap();
    assert_eq!(task.count(), before + 1, "the change woke the second wait");
    let Poll::Ready(Ok(seen)) = poll(second.as_mut(), &task) else {
        panic!("the second wait sees the change");
    };
    assert!(!seen.timed_out);
    assert_eq!(seen.job.progress(), 50);
}

// R-WAIT bug (a): the first of two waits of one task on one job ends by its condition and is
// dropped after the second re-registered; the second is still woken by the job's end.
#[test]
fn r_wait_two_waits_one_task_one_job_first_ready_keeps_second_registered() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let rev = shared.revision();
    let task = Counter::new();
    let mut end = pin!(shared.wait(id, Condition::Terminal, LONG));
    {
        let mut change = Box::pin(shared.wait(id, Condition::ChangedSince(rev), LONG));
        assert!(poll(change.as_mut(), &task).is_pending());
        assert!(poll(end.as_mut(), &task).is_pending());
        shared.progress(id, 10, "", now()).unwrap();
        assert!(poll(change.as_mut(), &task).is_ready());
        assert!(
            poll(end.as_mut(), &task).is_pending(),
            "progress is not terminal"
        );
        assert_eq!(shared.registered_waiters(), 1);
        // `change` is dropped here, after `end` registered again with the same waker.
    }
    assert_eq!(shared.registered_waiters(), 1);
    let before = task.count();
    shared.fail(id, 3, "broken", now()).unwrap();
    assert_eq!(task.count(), before + 1, "the end woke the remaining wait");
    let Poll::Ready(Ok(seen)) = poll(end.as_mut(), &task) else {
        panic!("the remaining wait sees the end");
    };
    assert_eq!(seen.job.state(), State::Failed);
}

// R-WAIT bug (b): a wait dropped while the table is borrowed (inside an `update` or `read`
// closure) still gives its registration back; so does a table-wide watcher.
#[test]
fn r_wait_dropped_inside_update_gives_registration_back() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let rev = shared.revision();
    let c = Counter::new();

    let mut w = Box::pin(shared.wait(id, Condition::ChangedSince(rev), LONG));
    let mut any = Box::pin(shared.changed(rev, LONG));
    assert!(poll(w.as_mut(), &c).is_pending());
    assert!(poll(any.as_mut(), &c).is_pending());
    assert_eq!(shared.registered_waiters(), 2);
    shared
        .update(|t| {
            drop(w);
            t.progress(id, 5, "", now())
        })
        .unwrap()
        .unwrap();
    // The watcher was woken by the change and took its registration with it.
    assert_eq!(shared.registered_waiters(), 0, "no registration leaked");
    drop(any);

    let mut r = Box::pin(shared.wait(id, Condition::Terminal, LONG));
    assert!(poll(r.as_mut(), &c).is_pending());
    let mut any = Box::pin(shared.changed(shared.revision(), LONG));
    assert!(poll(any.as_mut(), &c).is_pending());
    assert_eq!(shared.registered_waiters(), 2);
    shared.update(|_| drop(any)).unwrap();
    shared.read(|_| drop(r)).unwrap();
    assert_eq!(shared.registered_waiters(), 0, "no registration leaked");
}

// R-WAIT: a wait polled again by another task (a new waker) is woken through the new waker only.
#[test]
fn r_wait_repolled_with_new_waker_wakes_the_new_one() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let rev = shared.revision();
    let (old, new) = (Counter::new(), Counter::new());
    let mut w = pin!(shared.wait(id, Condition::ChangedSince(rev), LONG));
    assert!(poll(w.as_mut(), &old).is_pending());
    assert!(poll(w.as_mut(), &new).is_pending());
    assert_eq!(shared.registered_waiters(), 1, "still one registration");
    shared.heartbeat(id, now()).unwrap();
    shared.progress(id, 1, "", now()).unwrap();
    assert_eq!((old.count(), new.count()), (0, 1));
    assert!(poll(w.as_mut(), &new).is_ready());
}

// Bounded registrations: when full, a new waiter wakes all registered ones (never loses one);
// a change still wakes whoever is registered for it.
#[test]
fn r_longpoll_full_waker_pool_wakes_all_never_loses() {
    let _g = setup();
    let shared: Shared<2> = SharedTable::new(Config::DEFAULT);
    let ids = [
        started(&shared, 1),
        started(&shared, 2),
        started(&shared, 3),
    ];
    let rev = shared.revision();
    let counters = [Counter::new(), Counter::new(), Counter::new()];
    let mut w0 = pin!(shared.wait(ids[0], Condition::ChangedSince(rev), LONG));
    let mut w1 = pin!(shared.wait(ids[1], Condition::ChangedSince(rev), LONG));
    let mut w2 = pin!(shared.wait(ids[2], Condition::ChangedSince(rev), LONG));
    assert!(poll(w0.as_mut(), &counters[0]).is_pending());
    assert!(poll(w1.as_mut(), &counters[1]).is_pending());
    assert_eq!(counters.iter().map(|c| c.count()).sum::<usize>(), 0);
    assert!(poll(w2.as_mut(), &counters[2]).is_pending());
    // The third registration overflowed: the two earlier waiters were woken to re-register.
    assert_eq!((counters[0].count(), counters[1].count()), (1, 1));
    assert_eq!(shared.registered_waiters(), 1);
    // The waiter that did register is woken by its job's change.
    shared.progress(ids[2], 5, "", now()).unwrap();
    assert_eq!(counters[2].count(), 1);
    assert!(poll(w2.as_mut(), &counters[2]).is_ready());
    // The evicted waiters re-register on their next poll and are woken by their changes.
    assert!(poll(w0.as_mut(), &counters[0]).is_pending());
    assert!(poll(w1.as_mut(), &counters[1]).is_pending());
    shared.progress(ids[1], 5, "", now()).unwrap();
    assert_eq!((counters[0].count(), counters[1].count()), (1, 2));
    assert!(poll(w1.as_mut(), &counters[1]).is_ready());
    assert!(poll(w0.as_mut(), &counters[0]).is_pending());
}

// R-JOURNAL: when the journal was compacted between two looks, every waiter is woken (it
// re-checks its condition and, here, keeps waiting).
#[test]
fn r_journal_compacted_wakes_all_waiters() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let a = started(&shared, 1);
    let b = started(&shared, 2);
    let rev = shared.revision();
    let c = Counter::new();
    let mut w = pin!(shared.wait(a, Condition::ChangedSince(rev), LONG));
    assert!(poll(w.as_mut(), &c).is_pending());
    // More events for B in one update than the journal (16) keeps.
    shared
        .update(|t| {
            for p in 0..20u8 {
                t.progress(b, p, "", now()).unwrap();
            }
        })
        .unwrap();
    assert!(shared.read(|t| t.journal(rev).is_err()).unwrap());
    assert_eq!(c.count(), 1, "compaction wakes everyone");
    assert!(poll(w.as_mut(), &c).is_pending(), "A did not change");
}

// R-WAIT: putting a different table in place (its revision goes back) wakes every waiter.
#[test]
fn r_wait_table_replaced_wakes_all_waiters() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let c = Counter::new();
    let mut w = pin!(shared.wait(id, Condition::Terminal, LONG));
    assert!(poll(w.as_mut(), &c).is_pending());
    shared.update(|t| *t = Jobs::new(Config::DEFAULT)).unwrap();
    assert_eq!(c.count(), 1);
    assert_eq!(shared.revision(), Revision::ZERO);
    assert!(matches!(
        poll(w.as_mut(), &c),
        Poll::Ready(Err(SharedError::Lookup(_)))
    ));
}

// A wait that ends gives its registration back: a dropped waiter is not woken by a later
// waiter's overflow (the pool had room again).
#[test]
fn r_wait_dropped_wait_unregisters() {
    let _g = setup();
    let shared: Shared<1> = SharedTable::new(Config::DEFAULT);
    let a = started(&shared, 1);
    let b = started(&shared, 2);
    let rev = shared.revision();
    let (ca, cb) = (Counter::new(), Counter::new());
    {
        let mut wa = pin!(shared.wait(a, Condition::ChangedSince(rev), LONG));
        assert!(poll(wa.as_mut(), &ca).is_pending());
    }
    assert_eq!(shared.registered_waiters(), 0);
    let mut wb = pin!(shared.wait(b, Condition::ChangedSince(rev), LONG));
    assert!(poll(wb.as_mut(), &cb).is_pending());
    assert_eq!(ca.count(), 0);
}

// R-LONGPOLL: the timeout is clamped to the table's maximum; the default maximum is MAX_WAIT.
#[test]
fn r_longpoll_timeout_clamped_to_max_wait() {
    let _g = setup();
    let default: Shared<4> = SharedTable::new(Config::DEFAULT);
    assert_eq!(default.max_wait(), jobstate::MAX_WAIT);
    let shared: Shared<4> = SharedTable::with_max_wait(Config::DEFAULT, Duration::from_secs(2));
    assert_eq!(shared.max_wait(), Duration::from_secs(2));
    let id = started(&shared, 1);
    let c = Counter::new();
    let mut w = pin!(shared.wait(id, Condition::Terminal, Duration::from_secs(3600)));
    assert!(poll(w.as_mut(), &c).is_pending());
    advance(Duration::from_secs(2));
    assert!(matches!(
        poll(w.as_mut(), &c),
        Poll::Ready(Ok(Waited {
            timed_out: true,
            ..
        }))
    ));
}

// R-LONGPOLL: an unbounded maximum and timeout do not overflow the clock (no panic).
#[test]
fn r_longpoll_huge_timeout_saturates() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::with_max_wait(Config::DEFAULT, Duration::MAX);
    let id = started(&shared, 1);
    let c = Counter::new();
    advance(Duration::from_secs(10));
    let mut w = pin!(shared.wait(id, Condition::Terminal, Duration::MAX));
    assert!(poll(w.as_mut(), &c).is_pending());
    let mut any = pin!(shared.changed(shared.revision(), Duration::MAX));
    assert!(poll(any.as_mut(), &c).is_pending());
    shared.succeed(id, Severity::Normal, "", now()).unwrap();
    assert!(poll(w.as_mut(), &c).is_ready());
    assert!(poll(any.as_mut(), &c).is_ready());
}

// R-RETURN: Completed when the job ends within the return timeout.
#[test]
fn r_return_completed_when_job_ends_in_time() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let c = Counter::new();
    let mut f = pin!(shared.submit_and_wait(NewJob::new(9), Duration::from_secs(10), now()));
    assert!(poll(f.as_mut(), &c).is_pending());
    // The job is in the table while the caller waits; a worker runs it.
    let id = shared.start_next(now()).unwrap().unwrap();
    advance(Duration::from_secs(3));
    shared
        .succeed(id, Severity::Warning, "done", now())
        .unwrap();
    match poll(f.as_mut(), &c) {
        Poll::Ready(Ok(Submitted::Completed(job))) => {
            assert_eq!(job.id(), id);
            assert_eq!(
                job.outcome(),
                Some(Outcome::Succeeded {
                    severity: Severity::Warning
                })
            );
        }
        other => panic!("expected Completed, got {other:?}"),
    }
}

// R-RETURN: Accepted after the return timeout, and the job is in the table; with 0, Accepted at
// once.
#[test]
fn r_return_accepted_when_job_outlasts_timeout() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let c = Counter::new();
    let mut f = pin!(shared.submit_and_wait(NewJob::new(9), Duration::from_secs(10), now()));
    assert!(poll(f.as_mut(), &c).is_pending());
    advance(Duration::from_secs(10));
    let Poll::Ready(Ok(Submitted::Accepted(job))) = poll(f.as_mut(), &c) else {
        panic!("expected Accepted");
    };
    assert_eq!(job.state(), State::Queued);
    assert!(shared.snapshot(job.id()).is_ok());

    let mut z = pin!(shared.submit_and_wait(NewJob::new(10), Duration::from_ticks(0), now()));
    let Poll::Ready(Ok(Submitted::Accepted(job))) = poll(z.as_mut(), &c) else {
        panic!("zero return timeout answers at once");
    };
    assert!(shared.snapshot(job.id()).is_ok());
    assert_eq!(shared.registered_waiters(), 0);
}

// R-RETURN / R-FULL: a refused submit answers its error and adds nothing.
#[test]
fn r_return_table_full_is_an_error() {
    let _g = setup();
    let shared: SharedTable<CriticalSectionRawMutex, JobTable<u32, 1>> =
        SharedTable::new(Config::DEFAULT);
    let _ = shared.submit(NewJob::new(1), now()).unwrap();
    let rev = shared.revision();
    let c = Counter::new();
    let mut f = pin!(shared.submit_and_wait(NewJob::new(2), Duration::from_secs(1), now()));
    assert!(matches!(
        poll(f.as_mut(), &c),
        Poll::Ready(Err(SharedError::Submit(SubmitError::TableFull)))
    ));
    assert_eq!(shared.read(|t| (t.revision(), t.len())).unwrap(), (rev, 1));
}

// R-FULL: a refused submit hands the job back, spec included — also when the table is busy.
#[test]
fn r_full_try_submit_hands_the_job_back() {
    let _g = setup();
    let shared: SharedTable<CriticalSectionRawMutex, JobTable<u32, 1>> =
        SharedTable::new(Config::DEFAULT);
    assert!(shared.try_submit(NewJob::new(1), now()).is_ok());
    let Err(rejected) = shared.try_submit(NewJob::new(2).description("second"), now()) else {
        panic!("the table is full");
    };
    assert_eq!(rejected.error, SharedError::Submit(SubmitError::TableFull));
    assert_eq!(rejected.into_spec(), 2);

    let inner = shared
        .update(|_| {
            shared
                .try_submit(NewJob::new(3), now())
                .map_err(Rejected::into_spec)
        })
        .unwrap();
    assert_eq!(inner, Err(3), "a busy table hands the job back too");
    let err: SharedError = shared.try_submit(NewJob::new(4), now()).unwrap_err().into();
    assert_eq!(err, SharedError::Submit(SubmitError::TableFull));
}

// R-TRANS / R-INPUT: the typed calls answer one error type; a lookup error is a lookup error
// whatever the call.
#[test]
fn r_trans_typed_calls_answer_shared_error() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let other: Shared<4> = SharedTable::new(Config::DEFAULT);
    let _ = submit(&other, 1);
    let foreign = submit(&other, 2);
    let id = started(&shared, 1);
    assert_eq!(
        shared.progress(foreign, 1, "", now()),
        Err(SharedError::Lookup(LookupError::NotFound))
    );
    assert_eq!(
        shared.snapshot(foreign).map(|_| ()),
        Err(SharedError::Lookup(LookupError::NotFound))
    );
    assert_eq!(
        shared.progress(id, 101, "", now()),
        Err(SharedError::Job(JobError::ProgressOutOfRange(101)))
    );
    shared.log(id, "step 1", now()).unwrap();
    shared.heartbeat(id, now()).unwrap();
    shared.succeed(id, Severity::Normal, "ok", now()).unwrap();
    assert_eq!(
        shared.fail(id, 1, "", now()),
        Err(SharedError::Job(JobError::AlreadyTerminal))
    );
    assert_eq!(
        shared.request_cancel(id, now()),
        Err(SharedError::Job(JobError::AlreadyTerminal))
    );
    assert_eq!(shared.inspect(id, |j| j.state()), Ok(State::Succeeded));
    assert_eq!(shared.start_next(now()), Ok(None));
    let q = submit(&shared, 3);
    shared
        .fail_with(q, FailReason::Interrupted, None, "", now())
        .unwrap();
    assert_eq!(
        shared.inspect(q, |j| j.outcome()),
        Ok(Some(Outcome::Failed {
            reason: FailReason::Interrupted,
            code: FailReason::Interrupted.default_code()
        }))
    );
}

// R-INPUT: re-entering the table from inside an update answers Busy and changes nothing.
#[test]
fn r_input_reentrant_update_is_busy() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let rev = shared.revision();
    let inner = shared
        .update(|_| shared.update(|t| t.fail(id, 1, "", now())))
        .unwrap();
    assert_eq!(inner, Err(Busy));
    assert_eq!(
        shared.update(|_| shared.fail(id, 1, "", now())).unwrap(),
        Err(SharedError::Busy)
    );
    assert_eq!(
        shared.read(|_| shared.read(|t| t.revision())).unwrap(),
        Ok(rev)
    );
    // A wait polled from inside an update answers Busy at once instead of spinning.
    let c = Counter::new();
    let polled = shared
        .update(|_| {
            let mut w = pin!(shared.wait(id, Condition::Terminal, LONG));
            matches!(poll(w.as_mut(), &c), Poll::Ready(Err(SharedError::Busy)))
        })
        .unwrap();
    assert!(polled);
    assert_eq!(shared.revision(), rev);
    assert_eq!(shared.registered_waiters(), 0);
}

// R-CONTROL: the async checkpoint parks while the job is paused — woken by the resume, not by
// polling — and then answers Continue.
#[test]
fn r_control_checkpoint_parks_while_paused_until_resumed() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let worker = Counter::new();
    {
        let mut cp = pin!(shared.checkpoint(id));
        assert_eq!(
            poll(cp.as_mut(), &worker),
            Poll::Ready(Ok(Directive::Continue))
        );
    }
    shared.request_pause(id, now()).unwrap();
    let mut cp = pin!(shared.checkpoint(id));
    assert!(poll(cp.as_mut(), &worker).is_pending());
    assert_eq!(shared.inspect(id, |j| j.state()), Ok(State::Paused));
    assert_eq!(shared.registered_waiters(), 1);
    // Unrelated changes of the table do not wake it; polling again keeps it parked.
    let other = submit(&shared, 2);
    shared.progress(id, 1, "", now()).unwrap_err();
    assert_eq!(worker.count(), 0);
    assert!(poll(cp.as_mut(), &worker).is_pending());
    advance(Duration::from_secs(600));
    assert_eq!(
        worker.count(),
        0,
        "no timer while parked without a deadline"
    );

    shared.request_resume(id, now()).unwrap();
    assert_eq!(worker.count(), 1, "the resume woke the parked worker");
    assert_eq!(
        poll(cp.as_mut(), &worker),
        Poll::Ready(Ok(Directive::Continue))
    );
    assert_eq!(shared.inspect(id, |j| j.state()), Ok(State::Running));
    assert_eq!(shared.registered_waiters(), 0);
    assert_eq!(shared.inspect(other, |j| j.state()), Ok(State::Queued));
}

// R-CONTROL: a cancel wakes the parked checkpoint, which answers Canceled (the job is failed
// Canceled); a queued job's checkpoint answers NotRunning.
#[test]
fn r_control_checkpoint_parked_answers_canceled() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    shared.request_pause(id, now()).unwrap();
    let worker = Counter::new();
    let mut cp = pin!(shared.checkpoint(id));
    assert!(poll(cp.as_mut(), &worker).is_pending());
    shared.request_cancel(id, now()).unwrap();
    assert_eq!(worker.count(), 1);
    assert_eq!(
        poll(cp.as_mut(), &worker),
        Poll::Ready(Ok(Directive::Canceled))
    );
    let job = shared.snapshot(id).unwrap();
    assert_eq!(job.state(), State::Failed);
    assert_eq!(job.detail(), Some(Detail::Canceled));

    let queued = submit(&shared, 2);
    let mut cp = pin!(shared.checkpoint(queued));
    assert_eq!(
        poll(cp.as_mut(), &worker),
        Poll::Ready(Err(SharedError::Job(JobError::NotRunning)))
    );
}

// R-DEADLINE: a paused job's deadline wakes the parked checkpoint; the job fails TimedOut and
// the checkpoint answers AlreadyTerminal.
#[test]
fn r_deadline_checkpoint_parked_times_out_at_deadline() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let opts = JobOptions {
        run_timeout: Some(Duration::from_secs(5)),
        ..JobOptions::DEFAULT
    };
    let id = shared.submit(NewJob::new(1).options(opts), now()).unwrap();
    shared.start(id, now()).unwrap();
    shared.request_pause(id, now()).unwrap();
    let worker = Counter::new();
    let mut cp = pin!(shared.checkpoint(id));
    assert!(poll(cp.as_mut(), &worker).is_pending());
    advance(Duration::from_secs(5) - Duration::from_millis(1));
    assert!(poll(cp.as_mut(), &worker).is_pending());
    advance(Duration::from_millis(1));
    assert!(worker.count() >= 1, "the deadline woke the parked worker");
    assert_eq!(
        poll(cp.as_mut(), &worker),
        Poll::Ready(Err(SharedError::Job(JobError::AlreadyTerminal)))
    );
    let job = shared.snapshot(id).unwrap();
    assert_eq!(job.detail(), Some(Detail::Deadline));
    assert_eq!(shared.registered_waiters(), 0);
}

// R-RETAIN / R-DEADLINE: the timer task runs `expire` when the next timer comes due: a lease
// that runs out fails the job, and its retention later removes it.
#[test]
fn r_deadline_run_timers_expires_in_virtual_time() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config {
        retention: Duration::from_secs(10),
    });
    let c = Counter::new();
    let mut timers = pin!(shared.run_timers());
    assert!(poll(timers.as_mut(), &c).is_pending());
    let opts = JobOptions {
        lease: Some(Duration::from_secs(5)),
        ..JobOptions::DEFAULT
    };
    let id = shared.submit(NewJob::new(1).options(opts), now()).unwrap();
    shared.start(id, now()).unwrap();
    // The change woke the timer task; it re-plans for the lease.
    assert!(c.count() >= 1);
    assert!(poll(timers.as_mut(), &c).is_pending());
    advance(Duration::from_secs(5));
    assert!(poll(timers.as_mut(), &c).is_pending());
    let job = shared.snapshot(id).unwrap();
    assert_eq!(
        job.outcome(),
        Some(Outcome::Failed {
            reason: FailReason::TimedOut,
            code: FailReason::TimedOut.default_code()
        })
    );
    advance(Duration::from_secs(10));
    assert!(poll(timers.as_mut(), &c).is_pending());
    assert!(matches!(
        shared.snapshot(id),
        Err(SharedError::Lookup(LookupError::Expired(Some(_))))
    ));
}

// R-RETURN: with a zero return timeout the answer is Accepted at once, even for a job that is
// already terminal when submitted (its dependency had failed).
#[test]
fn r_return_zero_timeout_is_accepted_even_if_terminal() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let dep = started(&shared, 1);
    shared.fail(dep, 9, "broken", now()).unwrap();
    let deps = [dep];
    let c = Counter::new();
    let mut z = pin!(shared.submit_and_wait(
        NewJob::new(2).depends_on(&deps),
        Duration::from_ticks(0),
        now()
    ));
    let Poll::Ready(Ok(Submitted::Accepted(job))) = poll(z.as_mut(), &c) else {
        panic!("zero return timeout answers Accepted at once");
    };
    assert_eq!(job.state(), State::Failed);
    // With a return timeout, the same situation answers Completed.
    let mut w = pin!(shared.submit_and_wait(
        NewJob::new(3).depends_on(&deps),
        Duration::from_secs(1),
        now()
    ));
    assert!(matches!(
        poll(w.as_mut(), &c),
        Poll::Ready(Ok(Submitted::Completed(_)))
    ));
}

// A single-executor table that is not a static: `NoopRawMutex` works the same.
#[test]
fn r_wait_noop_mutex_local_table() {
    let _g = setup();
    let shared: SharedTable<NoopRawMutex, Jobs> = SharedTable::new(Config::DEFAULT);
    let id = shared.submit(NewJob::new(1), now()).unwrap();
    let rev = shared.revision();
    let c = Counter::new();
    let mut w = pin!(shared.wait(id, Condition::ChangedSince(rev), LONG));
    assert!(poll(w.as_mut(), &c).is_pending());
    assert_eq!(shared.start_next(now()), Ok(Some(id)));
    assert_eq!(c.count(), 1);
    assert!(poll(w.as_mut(), &c).is_ready());
}

// `new` with the default config is all-zero bytes: a static lands in .bss (and one with another
// config does not, which shows the check tells them apart).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn r_wait_default_static_is_all_zero_in_bss() {
    static ZERO: SharedTable<CriticalSectionRawMutex, JobTable<u32, 8>> =
        SharedTable::new(Config::DEFAULT);
    static ZERO_W: SharedTable<CriticalSectionRawMutex, Jobs, 2> =
        SharedTable::with_max_wait(Config::DEFAULT, jobstate::MAX_WAIT);
    static SET: SharedTable<CriticalSectionRawMutex, JobTable<u32, 8>> = SharedTable::new(Config {
        retention: Duration::from_secs(1),
    });
    static SET_WAIT: SharedTable<CriticalSectionRawMutex, JobTable<u32, 8>> =
        SharedTable::with_max_wait(Config::DEFAULT, Duration::from_secs(1));
    extern "C" {
        static __bss_start: u8;
        static _end: u8;
    }
    let bss = (&raw const __bss_start) as usize..(&raw const _end) as usize;
    let at = |p: *const u8| std::hint::black_box(p) as usize;
    assert!(bss.contains(&at((&raw const ZERO).cast())));
    assert!(bss.contains(&at((&raw const ZERO_W).cast())));
    assert!(!bss.contains(&at((&raw const SET).cast())));
    assert!(!bss.contains(&at((&raw const SET_WAIT).cast())));
}

// The async calls are hand-written futures with no "resumed after completion" panic: polled
// again after they answered, they answer again (re-checking), and hold no registration after.
#[test]
fn r_wait_futures_polled_after_completion_answer_again() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let c = Counter::new();

    let rev = shared.revision();
    let mut w = pin!(shared.wait(id, Condition::ChangedSince(rev), Duration::from_secs(1)));
    assert!(poll(w.as_mut(), &c).is_pending());
    advance(Duration::from_secs(1));
    assert!(matches!(
        poll(w.as_mut(), &c),
        Poll::Ready(Ok(Waited {
            timed_out: true,
            ..
        }))
    ));
    assert!(matches!(
        poll(w.as_mut(), &c),
        Poll::Ready(Ok(Waited {
            timed_out: true,
            ..
        }))
    ));
    assert_eq!(shared.registered_waiters(), 0);

    let mut any = pin!(shared.changed(rev, Duration::from_secs(1)));
    assert!(poll(any.as_mut(), &c).is_pending());
    shared.progress(id, 5, "", now()).unwrap();
    let after = shared.revision();
    assert_eq!(poll(any.as_mut(), &c), Poll::Ready(after));
    assert_eq!(poll(any.as_mut(), &c), Poll::Ready(after));
    assert_eq!(shared.registered_waiters(), 0);

    let mut cp = pin!(shared.checkpoint(id));
    assert_eq!(poll(cp.as_mut(), &c), Poll::Ready(Ok(Directive::Continue)));
    assert_eq!(poll(cp.as_mut(), &c), Poll::Ready(Ok(Directive::Continue)));

    let mut sw = pin!(shared.submit_and_wait(NewJob::new(7), Duration::from_ticks(0), now()));
    let Poll::Ready(Ok(Submitted::Accepted(job))) = poll(sw.as_mut(), &c) else {
        panic!("zero return timeout answers Accepted");
    };
    // Answered again for the same job: it is not submitted twice.
    let len = shared.read(|t| t.len()).unwrap();
    let Poll::Ready(Ok(Submitted::Accepted(again))) = poll(sw.as_mut(), &c) else {
        panic!("answers again");
    };
    assert_eq!(again.id(), job.id());
    assert_eq!(shared.read(|t| t.len()).unwrap(), len);
    assert_eq!(shared.registered_waiters(), 0);
}
