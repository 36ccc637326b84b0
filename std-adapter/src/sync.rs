//! The synchronisation primitives the engine is built on, in one place.
//!
//! Normal builds use `std::sync`; `RUSTFLAGS="--cfg loom"` builds swap in `loom`'s
//! model-checked versions, so the loom model (`tests/loom.rs`) explores the very code the
//! engine runs: the same registry, the same lock, the same wait and notify paths.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};

/// Lock, ignoring poisoning: every change to the table is one core call that either happens
/// completely or not at all, so a panic elsewhere while the lock was held leaves nothing half
/// done.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Block on `cv` (releasing the guard's lock) for at most `timeout`.
///
/// Under loom a timed wait is an untimed one: the model's "clock" is a flag the waiter reads,
/// and the model fires it by waking every blocked waiter (see `Engine::model_time_out_waiters`),
/// as the operating system's timer would.
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
#[cfg(not(loom))]
pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(|e| e.into_inner())
}
