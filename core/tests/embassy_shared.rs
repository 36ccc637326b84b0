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

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::MockDriver;
use futures::task::ArcWake;
use jobstate::shared::{Busy, SharedTable, Submitted, Waited};
use jobstate::{
    Condition, Config, Duration, FailReason, Instant, JobTable, LookupError, NewJob, Outcome,
    Revision, Severity, State,
};

/// Spec `u32`, 8 slots, 32-byte texts, 2 deps, journal of 16, `W` waker registrations.
type Shared<const W: usize> = SharedTable<CriticalSectionRawMutex, u32, 8, 32, 2, 16, W>;

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

fn submit<const W: usize>(shared: &Shared<W>, spec: u32) -> jobstate::JobId {
    shared
        .update(|t| t.submit(NewJob::new(spec), now()))
        .unwrap()
        .unwrap()
}

fn started<const W: usize>(shared: &Shared<W>, spec: u32) -> jobstate::JobId {
    let id = submit(shared, spec);
    shared.update(|t| t.start(id, now())).unwrap().unwrap();
    id
}

fn revision<const W: usize>(shared: &Shared<W>) -> Revision {
    shared.read(|t| t.revision()).unwrap()
}

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
}

// R-WAIT: after its timeout (virtual time) the wait answers the unchanged snapshot marked timed
// out, never an error; not one tick earlier.
#[test]
fn r_wait_timeout_answers_snapshot_marked_timed_out() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let rev = revision(&shared);
    let before = shared.read(|t| t.get(id).cloned()).unwrap().unwrap();
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
}

// R-LONGPOLL: a change to job A wakes A's waiter and table-wide watchers, not B's waiter.
#[test]
fn r_longpoll_wakes_only_target_job() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let a = started(&shared, 1);
    let b = started(&shared, 2);
    let rev = revision(&shared);
    let (ca, cb, cany) = (Counter::new(), Counter::new(), Counter::new());
    let long = Duration::from_secs(60);
    let mut wa = pin!(shared.wait(a, Condition::ChangedSince(rev), long));
    let mut wb = pin!(shared.wait(b, Condition::ChangedSince(rev), long));
    let mut any = pin!(shared.changed(rev, long));
    assert!(poll(wa.as_mut(), &ca).is_pending());
    assert!(poll(wb.as_mut(), &cb).is_pending());
    assert!(poll(any.as_mut(), &cany).is_pending());

    shared
        .update(|t| t.progress(a, 30, "copying", now()))
        .unwrap()
        .unwrap();
    assert_eq!((ca.count(), cb.count(), cany.count()), (1, 0, 1));
    let Poll::Ready(Ok(seen)) = poll(wa.as_mut(), &ca) else {
        panic!("A's waiter should see the change");
    };
    assert!(!seen.timed_out);
    assert_eq!((seen.job.progress(), seen.job.message()), (30, "copying"));
    assert_eq!(poll(any.as_mut(), &cany), Poll::Ready(revision(&shared)));
    assert!(poll(wb.as_mut(), &cb).is_pending());
}

// R-WAIT: a wait for Terminal ends on failure as well as on success.
#[test]
fn r_wait_terminal_returns_on_failure() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let c = Counter::new();
    let mut w = pin!(shared.wait(id, Condition::Terminal, Duration::from_secs(60)));
    assert!(poll(w.as_mut(), &c).is_pending());
    shared
        .update(|t| t.progress(id, 10, "", now()))
        .unwrap()
        .unwrap();
    assert_eq!(c.count(), 1);
    assert!(
        poll(w.as_mut(), &c).is_pending(),
        "progress is not terminal"
    );
    shared
        .update(|t| t.fail(id, 7, "disk error", now()))
        .unwrap()
        .unwrap();
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
    let mut w = pin!(shared.wait(id, Condition::ModifiedAfter(far), Duration::from_secs(60)));
    assert!(poll(w.as_mut(), &c).is_pending());
    shared
        .update(|t| t.succeed(id, Severity::Normal, "ok", now()))
        .unwrap()
        .unwrap();
    assert!(poll(w.as_mut(), &c).is_pending());
    let woken = c.count();
    let report = shared.update(|t| t.expire(now())).unwrap();
    assert_eq!(report.removed, 1);
    assert_eq!(c.count(), woken + 1, "the removal woke the waiter");
    match poll(w.as_mut(), &c) {
        Poll::Ready(Err(LookupError::Expired(Some(t)))) => assert_eq!(t.state(), State::Succeeded),
        other => panic!("expected Expired, got {other:?}"),
    }
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
        Poll::Ready(Err(LookupError::NotFound))
    ));
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
    let rev = revision(&shared);
    let counters = [Counter::new(), Counter::new(), Counter::new()];
    let long = Duration::from_secs(60);
    let mut w0 = pin!(shared.wait(ids[0], Condition::ChangedSince(rev), long));
    let mut w1 = pin!(shared.wait(ids[1], Condition::ChangedSince(rev), long));
    let mut w2 = pin!(shared.wait(ids[2], Condition::ChangedSince(rev), long));
    assert!(poll(w0.as_mut(), &counters[0]).is_pending());
    assert!(poll(w1.as_mut(), &counters[1]).is_pending());
    assert_eq!(counters.iter().map(|c| c.count()).sum::<usize>(), 0);
    assert!(poll(w2.as_mut(), &counters[2]).is_pending());
    // The third registration overflowed: the two earlier waiters were woken to re-register.
    assert_eq!((counters[0].count(), counters[1].count()), (1, 1));
    // The waiter that did register is woken by its job's change.
    shared
        .update(|t| t.progress(ids[2], 5, "", now()))
        .unwrap()
        .unwrap();
    assert_eq!(counters[2].count(), 1);
    assert!(poll(w2.as_mut(), &counters[2]).is_ready());
    // The evicted waiters re-register on their next poll and are woken by their changes.
    assert!(poll(w0.as_mut(), &counters[0]).is_pending());
    assert!(poll(w1.as_mut(), &counters[1]).is_pending());
    shared
        .update(|t| t.progress(ids[1], 5, "", now()))
        .unwrap()
        .unwrap();
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
    let rev = revision(&shared);
    let c = Counter::new();
    let mut w = pin!(shared.wait(a, Condition::ChangedSince(rev), Duration::from_secs(60)));
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

// A wait that ends gives its registration back: a dropped waiter is not woken by a later
// waiter's overflow (the pool had room again).
#[test]
fn dropped_wait_unregisters() {
    let _g = setup();
    let shared: Shared<1> = SharedTable::new(Config::DEFAULT);
    let a = started(&shared, 1);
    let b = started(&shared, 2);
    let rev = revision(&shared);
    let (ca, cb) = (Counter::new(), Counter::new());
    {
        let mut wa = pin!(shared.wait(a, Condition::ChangedSince(rev), Duration::from_secs(60)));
        assert!(poll(wa.as_mut(), &ca).is_pending());
    }
    let mut wb = pin!(shared.wait(b, Condition::ChangedSince(rev), Duration::from_secs(60)));
    assert!(poll(wb.as_mut(), &cb).is_pending());
    assert_eq!(ca.count(), 0);
}

// R-LONGPOLL: the timeout is clamped to the table's maximum.
#[test]
fn r_longpoll_timeout_clamped_to_max_wait() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::with_max_wait(Config::DEFAULT, Duration::from_secs(2));
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

// R-RETURN: Completed when the job ends within the return timeout.
#[test]
fn r_return_completed_when_job_ends_in_time() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let c = Counter::new();
    let mut f = pin!(shared.submit_and_wait(NewJob::new(9), Duration::from_secs(10), now()));
    assert!(poll(f.as_mut(), &c).is_pending());
    // The job is in the table while the caller waits; a worker runs it.
    let id = shared.update(|t| t.start_next(now())).unwrap().unwrap();
    advance(Duration::from_secs(3));
    shared
        .update(|t| t.succeed(id, Severity::Warning, "done", now()))
        .unwrap()
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
    assert!(shared.read(|t| t.get(job.id()).is_ok()).unwrap());

    let mut z = pin!(shared.submit_and_wait(NewJob::new(10), Duration::from_ticks(0), now()));
    let Poll::Ready(Ok(Submitted::Accepted(job))) = poll(z.as_mut(), &c) else {
        panic!("zero return timeout answers at once");
    };
    assert!(shared.read(|t| t.get(job.id()).is_ok()).unwrap());
}

// R-RETURN / R-FULL: a refused submit answers its error and adds nothing.
#[test]
fn r_return_table_full_is_an_error() {
    let _g = setup();
    let shared: SharedTable<CriticalSectionRawMutex, u32, 1> = SharedTable::new(Config::DEFAULT);
    let _ = shared
        .update(|t| t.submit(NewJob::new(1), now()))
        .unwrap()
        .unwrap();
    let rev = shared.read(|t| t.revision()).unwrap();
    let c = Counter::new();
    let mut f = pin!(shared.submit_and_wait(NewJob::new(2), Duration::from_secs(1), now()));
    assert!(matches!(
        poll(f.as_mut(), &c),
        Poll::Ready(Err(jobstate::SubmitError::TableFull))
    ));
    assert_eq!(shared.read(|t| (t.revision(), t.len())).unwrap(), (rev, 1));
}

// R-INPUT: re-entering the table from inside an update answers Busy and changes nothing.
#[test]
fn r_input_reentrant_update_is_busy() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let id = started(&shared, 1);
    let rev = revision(&shared);
    let inner = shared
        .update(|_| shared.update(|t: &mut JobTable<u32, 8, 32, 2, 16>| t.fail(id, 1, "", now())))
        .unwrap();
    assert_eq!(inner, Err(Busy));
    assert_eq!(
        shared.read(|_| shared.read(|t| t.revision())).unwrap(),
        Ok(rev)
    );
    assert_eq!(revision(&shared), rev);
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
    let opts = jobstate::JobOptions {
        lease: Some(Duration::from_secs(5)),
        ..jobstate::JobOptions::DEFAULT
    };
    let id = shared
        .update(|t| t.submit(NewJob::new(1).options(opts), now()))
        .unwrap()
        .unwrap();
    shared.update(|t| t.start(id, now())).unwrap().unwrap();
    // The change woke the timer task; it re-plans for the lease.
    assert!(c.count() >= 1);
    assert!(poll(timers.as_mut(), &c).is_pending());
    advance(Duration::from_secs(5));
    assert!(poll(timers.as_mut(), &c).is_pending());
    let job = shared.read(|t| t.get(id).cloned()).unwrap().unwrap();
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
        shared.read(|t| t.get(id).map(|_| ())).unwrap(),
        Err(LookupError::Expired(Some(_)))
    ));
}

// R-RETURN: with a zero return timeout the answer is Accepted at once, even for a job that is
// already terminal when submitted (its dependency had failed).
#[test]
fn r_return_zero_timeout_is_accepted_even_if_terminal() {
    let _g = setup();
    let shared: Shared<4> = SharedTable::new(Config::DEFAULT);
    let dep = started(&shared, 1);
    shared
        .update(|t| t.fail(dep, 9, "broken", now()))
        .unwrap()
        .unwrap();
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
