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

/// What a [`test_waker`] does and has seen. Every hook is optional and can be switched at
/// any time: panic in `clone`, `wake` / `wake_by_ref` or `drop`, or run a callback (which may
/// call back into the engine) on wake or drop.
#[derive(Default)]
pub struct Ctl {
    pub wakes: AtomicUsize,
    pub clones: AtomicUsize,
    pub drops: AtomicUsize,
    pub panic_on_clone: std::sync::atomic::AtomicBool,
    pub panic_on_wake: std::sync::atomic::AtomicBool,
    pub panic_on_drop: std::sync::atomic::AtomicBool,
    #[allow(clippy::type_complexity)]
    pub on_wake: std::sync::Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    #[allow(clippy::type_complexity)]
    pub on_drop: std::sync::Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl Ctl {
    pub fn new() -> Arc<Ctl> {
        Arc::new(Ctl::default())
    }
    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
    pub fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
    pub fn set(flag: &std::sync::atomic::AtomicBool, on: bool) {
        flag.store(on, Ordering::SeqCst);
    }
    fn woken(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = self
            .on_wake
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            f();
        }
        if self.panic_on_wake.load(Ordering::SeqCst) {
            panic!("test waker: wake panics");
        }
    }
}

mod raw {
    use super::Ctl;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::task::{RawWaker, RawWakerVTable};

    pub(super) static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

    /// # Safety
    /// `data` comes from `Arc::<Ctl>::into_raw` and the waker holds one count of it.
    unsafe fn ctl<'a>(data: *const ()) -> &'a Ctl {
        unsafe { &*(data as *const Ctl) }
    }

    unsafe fn clone(data: *const ()) -> RawWaker {
        let c = unsafe { ctl(data) };
        if c.panic_on_clone.load(Ordering::SeqCst) {
            panic!("test waker: clone panics");
        }
        unsafe { Arc::increment_strong_count(data as *const Ctl) };
        c.clones.fetch_add(1, Ordering::SeqCst);
        RawWaker::new(data, &VTABLE)
    }

    unsafe fn wake(data: *const ()) {
        // Dropped even if the wake panics.
        struct Release(*const ());
        impl std::ops::Drop for Release {
            fn drop(&mut self) {
                unsafe { super::raw::drop(self.0) }
            }
        }
        let _release = Release(data);
        unsafe { ctl(data) }.woken();
    }

    unsafe fn wake_by_ref(data: *const ()) {
        unsafe { ctl(data) }.woken();
    }

    unsafe fn drop(data: *const ()) {
        let c = unsafe { ctl(data) };
        c.drops.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = c.on_drop.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            f();
        }
        let panics = c.panic_on_drop.load(Ordering::SeqCst) && !std::thread::panicking();
        unsafe { Arc::decrement_strong_count(data as *const Ctl) };
        if panics {
            panic!("test waker: drop panics");
        }
    }
}

/// A waker driven by `ctl` (see [`Ctl`]). The returned handle counts as a waker too: its
/// own drop runs the drop hooks.
pub fn test_waker(ctl: &Arc<Ctl>) -> Waker {
    let data = Arc::into_raw(ctl.clone()) as *const ();
    // SAFETY: the vtable's functions treat `data` as an `Arc<Ctl>` with one count per waker.
    unsafe { Waker::from_raw(std::task::RawWaker::new(data, &raw::VTABLE)) }
}

/// Poll a future once with the given waker.
pub fn poll_with<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// Run `f` on another thread and wait at most `limit` for it. If it does not finish — a
/// deadlock, for the tests that look for one — the whole test process exits with a failure
/// (unwinding would only block on the same lock).
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(x) => Some(x),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            // Straight to the process's stderr: the test harness's capture dies with it.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "DEADLOCK: a step did not finish within {limit:?}"
            );
            std::process::exit(101);
        }
    }
}
