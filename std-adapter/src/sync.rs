//! The synchronisation primitives the engine is built on, in one place.
//!
//! Normal builds use `std::sync` and `std::thread`; `RUSTFLAGS="--cfg loom"` builds swap in
//! `loom`'s model-checked versions, so the loom model (`tests/loom.rs`) explores the very code
//! the engine runs: the same registry, the same lock, the same wait, notify and timer paths,
//! the same worker pool.

use std::panic::{catch_unwind, AssertUnwindSafe};

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};
#[cfg(loom)]
pub(crate) use loom::thread::JoinHandle;
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::thread::JoinHandle;

/// Lock, recovering from poisoning: every change to the table is one core call made under
/// `catch_unwind` and followed by the wake-up of whoever waits on what it changed, and the
/// registry is only changed by code that does not panic, so a panic elsewhere while the lock
/// was held (in a caller's closure, a spec's `Clone`) leaves nothing the engine relies on half
/// done.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Block on `cv` (releasing the guard's lock) for at most `timeout`.
///
/// Under loom a timed wait is an untimed one: the model's clock moves only when the model
/// says so (`Engine::model_advance`), and then the engine's own timer round wakes whoever is
/// due, as the timer thread does.
#[cfg(not(loom))]
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    match cv.wait_timeout(guard, timeout) {
        Ok((g, _)) => g,
        Err(e) => e.into_inner().0,
    }
}

#[cfg(loom)]
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    _timeout: std::time::Duration,
) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(|e| e.into_inner())
}

/// Block on `cv` (releasing the guard's lock) until notified.
pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(|e| e.into_inner())
}

/// Start a named thread.
#[cfg(not(loom))]
pub(crate) fn spawn<F>(name: String, f: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new().name(name).spawn(f)
}

#[cfg(loom)]
pub(crate) fn spawn<F>(name: String, f: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    loom::thread::Builder::new().name(name).spawn(f)
}

/// Run user code (a waker, a spec's `Drop`, …) so that its panic stops here: the panic hook
/// has printed it, and the engine goes on. Answers whether it panicked.
pub(crate) fn contain(f: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => false,
        Err(payload) => {
            forget_payload(payload);
            true
        }
    }
}

/// Drop a panic payload; a payload whose own `Drop` panics is leaked instead.
pub(crate) fn forget_payload(payload: Box<dyn std::any::Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}
