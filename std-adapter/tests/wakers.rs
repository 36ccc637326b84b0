//! Wakers are woken, and dropped, after the engine lock is released: a waker may call back
//! into the engine (read a job, even change one) without deadlocking, on every path that
//! wakes or drops one — a change's notification, the timer thread's timeout, a replaced
//! waker, a deregistered wait.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{poll_with, test_waker, within, Ctl};
use jobstate::{Condition, NewJob, Severity, State};
use jobstate_std::{Engine, EngineConfig};

type Jobs = jobstate::JobTable<u32, 8>;
const LONG: Duration = Duration::from_secs(60);
/// Far longer than any of these steps takes; reaching it means a deadlock.
const DEADLOCK: Duration = Duration::from_secs(20);

fn engine() -> Engine<Jobs> {
    Engine::new(EngineConfig::default())
}

#[test]
fn a_waker_that_reads_the_engine_when_woken_by_a_change_does_not_deadlock() {
    let e = engine();
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start(id).unwrap();
    let ctl = Ctl::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let (e, seen) = (e.clone(), seen.clone());
        *ctl.on_wake.lock().unwrap() = Some(Box::new(move || {
            // Called from inside `succeed` below: under the lock this would deadlock.
            seen.lock().unwrap().push(e.get(id).unwrap().state());
            // It may even change the table.
            let _ = e.progress(id, 1, "from a waker");
        }));
    }
    let mut fut = e.wait_async(id, Condition::Terminal, LONG);
    assert!(poll_with(&mut fut, &test_waker(&ctl)).is_pending());
    let e2 = e.clone();
    let done = within(DEADLOCK, move || e2.succeed(id, Severity::Normal, "ok"));
    assert!(done.is_some(), "the notifier deadlocked in the waker");
    done.unwrap().unwrap();
    assert_eq!(ctl.wakes(), 1);
    assert_eq!(*seen.lock().unwrap(), vec![State::Succeeded]);
    let w = match poll_with(&mut fut, &test_waker(&ctl)) {
        std::task::Poll::Ready(w) => w.unwrap(),
        std::task::Poll::Pending => panic!("woken, so ready"),
    };
    assert_eq!(w.job.state(), State::Succeeded);
    assert_eq!(e.waiting(), 0);
}

#[test]
fn a_waker_that_reads_the_engine_when_woken_by_the_timer_thread_does_not_deadlock() {
    let e = engine();
    let id = e.submit(NewJob::new(1)).unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let ctl = Ctl::new();
    {
        let (e, reads) = (e.clone(), reads.clone());
        *ctl.on_wake.lock().unwrap() = Some(Box::new(move || {
            // Called on the timer thread: under the lock this would stop it for good.
            let _ = e.get(id).unwrap();
            reads.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Long enough to be polled before it passes, even interpreted by Miri.
    let mut fut = e.wait_async(id, Condition::Terminal, Duration::from_millis(300));
    assert!(poll_with(&mut fut, &test_waker(&ctl)).is_pending());
    // The timer thread times the wait out and wakes the waker; a second wait after it shows
    // the timer thread is still going.
    let e2 = e.clone();
    let second = within(DEADLOCK, move || {
        futures::executor::block_on(e2.wait_async(
            id,
            Condition::Terminal,
            Duration::from_millis(600),
        ))
    });
    let second = second.expect("the timer thread is stuck").unwrap();
    assert!(second.timed_out);
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    match poll_with(&mut fut, &test_waker(&ctl)) {
        std::task::Poll::Ready(w) => assert!(w.unwrap().timed_out),
        std::task::Poll::Pending => panic!("woken by the timer, so ready"),
    }
}

#[test]
fn replaced_and_deregistered_wakers_are_dropped_outside_the_lock() {
    let e = engine();
    let id = e.submit(NewJob::new(1)).unwrap();
    let reads = Arc::new(AtomicUsize::new(0));
    let reading = |ctl: &Arc<Ctl>| {
        let (e, reads) = (e.clone(), reads.clone());
        *ctl.on_drop.lock().unwrap() = Some(Box::new(move || {
            let _ = e.get(id).unwrap();
            reads.fetch_add(1, Ordering::SeqCst);
        }));
    };
    let (first, second) = (Ctl::new(), Ctl::new());
    reading(&first);
    reading(&second);
    let e2 = e.clone();
    let done = within(DEADLOCK, move || {
        let mut fut = e2.wait_async(id, Condition::Terminal, LONG);
        // The engine keeps a clone of the first waker…
        let w1 = test_waker(&first);
        assert!(poll_with(&mut fut, &w1).is_pending());
        drop(w1);
        assert_eq!(first.drops(), 1, "only the test's own handle so far");
        // …which a poll with another waker replaces: the engine drops its clone.
        let w2 = test_waker(&second);
        assert!(poll_with(&mut fut, &w2).is_pending());
        drop(w2);
        assert_eq!(first.drops(), 2, "the replaced waker was dropped");
        // Dropping the future deregisters it: the engine drops the second waker's clone.
        drop(fut);
        assert_eq!(second.drops(), 2, "the deregistered waker was dropped");
        e2.waiting()
    });
    assert_eq!(done, Some(0), "a waker's drop deadlocked");
    assert_eq!(reads.load(Ordering::SeqCst), 4);
}

#[test]
fn every_waiter_of_a_change_is_woken_after_the_lock_even_when_one_calls_back() {
    // Many waiters on one job; each waker reads the engine. One change wakes them all from
    // the changing thread, one after another, with the lock free.
    let e = engine();
    let id = e.submit(NewJob::new(1)).unwrap();
    e.start(id).unwrap();
    let rev = e.get(id).unwrap().revision();
    let mut futs = Vec::new();
    let mut ctls = Vec::new();
    for _ in 0..50 {
        let ctl = Ctl::new();
        let reader = e.clone();
        *ctl.on_wake.lock().unwrap() = Some(Box::new(move || {
            assert_eq!(reader.get(id).unwrap().progress(), 10);
        }));
        let mut fut = e.wait_async(id, Condition::ChangedSince(rev), LONG);
        assert!(poll_with(&mut fut, &test_waker(&ctl)).is_pending());
        futs.push(fut);
        ctls.push(ctl);
    }
    let e2 = e.clone();
    let done = within(DEADLOCK, move || e2.progress(id, 10, "ten"));
    done.expect("deadlock in a waker").unwrap();
    assert!(ctls.iter().all(|c| c.wakes() == 1));
    drop(futs);
    assert_eq!(e.waiting(), 0);
}
