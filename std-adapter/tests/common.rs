//! Helpers shared by the adapter's tests (included with `mod common;`).
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use jobstate_std::{Engine, EngineConfig};

/// A waker that counts how often it is woken.
#[derive(Default)]
pub struct CountingWaker(pub AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Poll a future once with the given waker.
pub fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Arc<CountingWaker>) -> Poll<F::Output> {
    let waker = Waker::from(waker.clone());
    Pin::new(f).poll(&mut Context::from_waker(&waker))
}

/// An engine without the timer thread (tests that drive timers themselves).
pub fn manual<const N: usize>() -> Engine<jobstate::JobTable<u32, N>> {
    Engine::new(EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    })
}

/// Spin (yielding) until the engine has `n` registered waits — a condition wait on the
/// engine's own state, not a sleep.
pub fn until_waiting<const N: usize>(engine: &Engine<jobstate::JobTable<u32, N>>, n: usize) {
    while engine.waiting() != n {
        std::thread::yield_now();
    }
}
