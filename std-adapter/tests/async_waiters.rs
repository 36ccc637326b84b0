//! 10,000 concurrent async waiters on distinct jobs under tokio: completing job k wakes exactly
//! the waiter of k, and nobody else, ever (R-LONGPOLL).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use jobstate::{Condition, JobId, NewJob, Severity, State};
use jobstate_std::{Engine, EngineConfig, DEFAULT_MAX_WAIT};

const WAITERS: usize = 10_000;
type E = Engine<jobstate::JobTable<u32, 10_240>>;

/// Counts the wakes of one task (and of all tasks together).
struct CountWake {
    task: Waker,
    mine: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl Wake for CountWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.mine.fetch_add(1, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        self.task.wake_by_ref();
    }
}

/// Wraps a future so every waker it hands out counts its wakes.
struct Counted<F> {
    inner: F,
    mine: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
}

impl<F: Future + Unpin> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(CountWake {
            task: cx.waker().clone(),
            mine: self.mine.clone(),
            total: self.total.clone(),
        }));
        Pin::new(&mut self.inner).poll(&mut Context::from_waker(&waker))
    }
}

#[test]
fn r_longpoll_10000_async_waiters_targeted_wakes_no_spurious() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let e: E = Engine::new(EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    });
    let ids: Vec<JobId> = (0..WAITERS as u32)
        .map(|k| e.submit(NewJob::new(k)).unwrap())
        .collect();
    // Start every job first: the waiters wait for Terminal, so a start must not wake them.
    let total = Arc::new(AtomicUsize::new(0));
    let mut counters = Vec::new();
    let mut tasks = Vec::new();
    for &id in &ids {
        let mine = Arc::new(AtomicUsize::new(0));
        counters.push(mine.clone());
        let fut = Counted {
            inner: e.wait_async(id, Condition::Terminal, DEFAULT_MAX_WAIT),
            mine,
            total: total.clone(),
        };
        tasks.push(rt.spawn(fut));
    }
    // All registered (a condition on the engine's own state).
    while e.waiting() != WAITERS {
        std::thread::yield_now();
    }
    for &id in &ids {
        e.start(id).unwrap();
        e.progress(id, 50, "half").unwrap();
    }
    assert_eq!(
        total.load(Ordering::SeqCst),
        0,
        "starts and progress woke a Terminal waiter"
    );
    // Complete them in a scattered order; each completion wakes exactly its own waiter, inside
    // the call.
    let mut order: Vec<usize> = (0..WAITERS).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    for (done, &k) in order.iter().enumerate() {
        e.succeed(ids[k], Severity::Normal, "ok").unwrap();
        assert_eq!(
            counters[k].load(Ordering::SeqCst),
            1,
            "waiter {k} was not woken exactly once"
        );
        assert_eq!(
            total.load(Ordering::SeqCst),
            done + 1,
            "a spurious wake happened"
        );
    }
    rt.block_on(async {
        for (k, t) in tasks.into_iter().enumerate() {
            let w = t.await.unwrap().unwrap();
            assert!(!w.timed_out);
            assert_eq!(w.job.id(), ids[k]);
            assert_eq!(w.job.state(), State::Succeeded);
        }
    });
    let spurious = total.load(Ordering::SeqCst) - WAITERS;
    println!("10,000 async waiters: {WAITERS} completions, {spurious} spurious wakes");
    assert_eq!(spurious, 0);
    assert!(counters.iter().all(|c| c.load(Ordering::SeqCst) == 1));
    assert_eq!(e.waiting(), 0);
}
