//! # jobstate — the job-state engine
//!
//! Appliances and services run long operations in the background and hand the caller a *job
//! object* to watch: HTTP 202, then polling or long-polling until the job succeeds or fails.
//! `jobstate` is the engine behind such an API. This crate is its core: `#![no_std]`, no
//! allocation, no clock, no lock — a fixed-size [`JobTable`] and the rules of a job's life.
//!
//! ## The model
//!
//! * A **job** ([`Job`]) carries the caller's spec `S` (what to do), a description, a
//!   [`State`], progress (0–100 %) and a message, timestamps, its dependencies, and once
//!   terminal an [`Outcome`] (success with a [`Severity`], or failure with a [`FailReason`],
//!   code and message).
//! * The **table** ([`JobTable`]) holds up to `N` jobs in place. Ids ([`JobId`]) are checked by
//!   slot generation and table epoch: an old id never reaches a new job, and looking one up
//!   answers the job, [`LookupError::Expired`] (with a [`Tombstone`] when kept),
//!   [`LookupError::Stale`] (issued before a restart) or [`LookupError::NotFound`].
//! * **States** move `Queued → Running ⇄ Paused → Succeeded | Failed`; anything else is refused
//!   with a typed [`JobError`] and changes nothing.
//! * **Clients request, workers act**: [`JobTable::request_pause`], [`JobTable::request_resume`]
//!   and [`JobTable::request_cancel`] set flags; the worker's [`JobTable::checkpoint`] applies them
//!   and answers a [`Directive`].
//! * **Every change takes a [`Revision`]**, stamped on the job and on a [`journal`](JobTable::journal)
//!   event. A waiter that remembers the revision it saw can ask [`JobTable::check`] with a
//!   [`Condition`] and never misses an update; an adapter reads the journal to learn exactly which
//!   jobs changed, so it wakes only their waiters.
//! * **Dependencies**: a job waits until all it depends on have succeeded; if one fails it
//!   fails with `DependencyFailed`, and so do its dependents, transitively. Runnable jobs start
//!   oldest first ([`JobTable::start_next`]). Submit, start, lookup and updates are O(1) or
//!   O(dependents).
//! * **Time is a value**: every operation takes `now` ([`Instant`]); nothing reads a clock.
//!   [`JobTable::expire`] fails jobs whose deadline or heartbeat lease passed and removes
//!   terminal jobs whose retention passed; [`JobTable::next_timer`] says when to call it next.
//! * **Capacity**: a full table makes room by removing the oldest terminal job past its
//!   retention, and answers [`SubmitError::TableFull`] otherwise; a live job is never dropped.
//!
//! ## Firmware-style use
//!
//! ```
//! use jobstate::{Config, Directive, Duration, Instant, JobTable, NewJob, Severity, State};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! enum Op { Erase { sector: u16 }, Write { sector: u16 } }
//!
//! let mut jobs: JobTable<Op, 4> = JobTable::new(Config { retention: Duration::from_secs(60) });
//! let t = |s| Instant::from_secs(s);
//!
//! let erase = jobs.submit(jobstate::NewJob::new(Op::Erase { sector: 3 }), t(0)).unwrap();
//! let write = jobs
//!     .submit(NewJob::new(Op::Write { sector: 3 }).depends_on(&[erase]), t(0))
//!     .unwrap();
//!
//! // The worker loop: take the oldest runnable job, report, check in, finish.
//! while let Some(id) = jobs.start_next(t(1)) {
//!     jobs.progress(id, 50, "half way", t(2)).unwrap();
//!     match jobs.checkpoint(id, t(2)).unwrap() {
//!         Directive::Continue => jobs.succeed(id, Severity::Normal, "done", t(3)).unwrap(),
//!         _ => break, // paused or canceled
//!     }
//! }
//! assert_eq!(jobs.get(write).unwrap().state(), State::Succeeded);
//! ```
//!
//! ## Features
//!
//! * `serde` — `Serialize`/`Deserialize` on jobs and every public value type;
//! * `defmt` — `defmt::Format` on every public type (for firmware; not for host builds);
//! * `embassy` — a shared table with async long-poll waits for firmware;
//! * `persist` — encode/decode the table to bytes (postcard + CRC) for power-safe images;
//! * `retry` — a retry policy with backoff per job (16 bytes more per slot).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod error;
#[cfg(feature = "persist")]
pub mod flash;
mod id;
mod job;
pub mod journal;
#[cfg(feature = "persist")]
pub mod persist;
mod record;
mod retain;
mod retry;
#[cfg(feature = "embassy")]
pub mod shared;
mod state;
mod table;
mod time;
mod view;
mod wait;

pub use error::{Compacted, JobError, LookupError, Refused, SubmitError, TextField};
pub use id::{JobId, Revision};
pub use job::{JobOptions, NewJob, MAX_DEPENDENCIES};
pub use journal::{Event, EventKind};
pub use record::Detail;
pub use retain::Tombstone;
pub use retry::Priority;
#[cfg(feature = "retry")]
pub use retry::RetryPolicy;
#[cfg(feature = "embassy")]
pub use shared::SharedTable;
pub use state::{Directive, FailReason, Outcome, Request, Severity, State};
pub use table::{key_hash, Config, Expired, Idempotent, JobTable, Table};
pub use time::{Duration, Instant};
pub use view::{Job, JobRef};
pub use wait::{clamp_wait, Condition, Submitted, Waited, Watched, MAX_WAIT};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
