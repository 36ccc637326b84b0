//! # jobstate-std — the job-state engine for services
//!
//! [`jobstate`] is a `no_std` table with no clock, no lock and no threads. This crate adds
//! what a service needs around it, and never re-implements a rule of it: every state change
//! is one call of the core's API under the engine's lock.
//!
//! * **[`Engine`]** — a cheap-to-clone, `Send + Sync` handle over one [`jobstate::JobTable`]
//!   (boxed, behind one mutex). It takes the table type itself, through the core's
//!   [`jobstate::Table`] trait: name the capacities once (`type Jobs = JobTable<Op, 64>;`) and
//!   write `Engine<Jobs>`, `JobsApi<Jobs>`, `JobContext<'_, Jobs>`, `store.load::<Jobs>(..)`.
//!   Clients [`submit`](Engine::submit), [`get`](Engine::get),
//!   [`list`](Engine::list) and [`request_pause`](Engine::request_pause) /
//!   [`request_resume`](Engine::request_resume) / [`request_cancel`](Engine::request_cancel);
//!   workers [`start_next`](Engine::start_next), report [`progress`](Engine::progress),
//!   [`checkpoint`](Engine::checkpoint) and [`succeed`](Engine::succeed) /
//!   [`fail`](Engine::fail). Any other core operation goes through [`Engine::update`].
//! * **Waiting** (R-WAIT, R-LONGPOLL) — [`Engine::wait`] blocks and [`Engine::wait_async`]
//!   awaits until a [`jobstate::Condition`] holds for a job (changed since a revision, state
//!   changed since a revision, terminal, modified after an instant), or until the timeout —
//!   clamped by the core's [`clamp_wait`](jobstate::clamp_wait) to
//!   [`EngineConfig::max_wait`], at most [`jobstate::MAX_WAIT`] — ends, which is not an
//!   error: the current snapshot comes back marked [`Waited::timed_out`]. Wake-ups are
//!   targeted: after each change the engine asks the core which jobs changed
//!   ([`changed_since`](jobstate::JobTable::changed_since)) and evaluates only their waiters'
//!   conditions (with the core's [`Condition::holds`](jobstate::Condition::holds)); a waiter
//!   is woken once, when its condition holds or its job is gone. [`Engine::wait_table`]
//!   watches the whole table.
//! * **Submit and wait** (R-RETURN) — [`Engine::submit_and_wait`]: the core's [`Submitted`]:
//!   `Completed` (HTTP 200) or `Accepted` (HTTP 202) after at most `return_timeout` (0 to
//!   [`jobstate::MAX_WAIT`]), or `Removed` with the tombstone of a job removed before its
//!   waiter saw it end.
//! * **Timers** (R-DEADLINE, R-RETAIN) — a timer thread sleeps until the core's
//!   [`next_timer`](jobstate::JobTable::next_timer) (or until a change makes something due
//!   sooner) and runs [`expire`](jobstate::JobTable::expire): jobs past their deadline or
//!   heartbeat lease fail with `TimedOut`, terminal jobs past their retention are removed
//!   (tombstones kept).
//! * **Wall-clock time** — [`Snapshot::created_at`] and friends, [`Engine::to_system_time`] and
//!   [`Engine::to_instant`] map the table's instants to `SystemTime` and back ([`Clock`]).
//! * **[`WorkerPool`]** — `n` threads running a handler per job, oldest runnable first, with a
//!   [`JobContext`] for progress, log lines, heartbeats and a checkpoint that blocks while the
//!   job is paused. Handler answers are recorded with the core's rules; a shutdown leaves a
//!   running job to [`fail_with`](jobstate::JobTable::fail_with)`(Interrupted)` (restartable
//!   jobs go back to the queue); [`WorkerPool::shutdown_within`] does so at a deadline for
//!   handlers that do not stop, and leaves their threads behind.
//! * **Failures stay where they belong** — a thread that cannot start is an error
//!   ([`Engine::try_new`], [`WorkerPool::start`]: [`StartError`]); a panic in user code (a
//!   handler, a waker, a spec's `Clone` or `Drop`, an [`Engine::update`] closure) never stops
//!   the timer thread or a worker and never costs another waiter its wake-up; wakers are
//!   woken, and dropped, after the engine lock is released, so a waker may call back into the
//!   engine.
//!
//! ## Example
//!
//! ```
//! use std::time::Duration;
//! use jobstate::{Condition, NewJob, State};
//! use jobstate_std::{Engine, EngineConfig, Submitted};
//!
//! type Jobs = jobstate::JobTable<&'static str, 64>;
//! let engine: Engine<Jobs> = Engine::new(EngineConfig::default());
//! let id = engine.submit(NewJob::new("resize volume").description("vol1 to 2 TiB")).unwrap();
//!
//! // A worker elsewhere (here: another thread) runs it.
//! let worker = engine.clone();
//! let t = std::thread::spawn(move || {
//!     let id = worker.start_next().unwrap();
//!     worker.progress(id, 50, "copying").unwrap();
//!     worker.succeed(id, jobstate::Severity::Normal, "resized").unwrap();
//! });
//!
//! // The client long-polls until the job ends: success or failure, whichever comes.
//! let done = engine.wait(id, Condition::Terminal, Duration::from_secs(30)).unwrap();
//! assert!(!done.timed_out);
//! assert_eq!(done.job.state(), State::Succeeded);
//! assert!(done.job.ended_at().is_some());
//! t.join().unwrap();
//!
//! // return_timeout 0: accepted at once (HTTP 202); the job is in the table already.
//! let answer = engine.submit_and_wait(NewJob::new("scrub"), Duration::ZERO).unwrap();
//! let Submitted::Accepted(job) = answer else { panic!("accepted at once") };
//! assert!(engine.get(job.id()).is_ok());
//! ```
//!
//! ## Async
//!
//! [`Engine::wait_async`] returns a future that works on any executor: its timeout is kept by
//! the engine's own timer thread (a timing wheel under the engine lock, no runtime needed),
//! so it runs under tokio and under `futures::executor::block_on` alike. Dropping it
//! deregisters it. The blocking [`Engine::wait`] runs the very same wait state machine.
//!
//! ## Time
//!
//! The engine never calls `embassy_time::Instant::now()` and needs no embassy time driver: it
//! converts `std::time::Instant` (microseconds since the engine started) into
//! `jobstate::Instant::from_micros(..)`. The table keeps every instant of a job to the
//! millisecond.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod clock;
mod engine;
mod error;
#[cfg(feature = "persist")]
mod region;
mod registry;
mod snapshot;
pub mod store;
mod sync;
mod wait;
mod worker;

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "persist")]
pub mod persist;

pub use clock::Clock;
pub use engine::{Engine, EngineConfig, EngineTable, DEFAULT_MAX_WAIT, MAX_RETURN_TIMEOUT};
pub use error::{StartError, SubmitWaitError, WaitError};
pub use jobstate::{Submitted, Waited};
pub use snapshot::Snapshot;
pub use store::{JobStore, StoreError};
pub use wait::{SubmitWaitFuture, TableWaitFuture, TableWaited, WaitFuture};
pub use worker::{Canceled, Failure, JobContext, ShutdownReport, Success, WorkerPool};
