//! A job table shared between firmware tasks, with async long-poll waits (feature `embassy`).
//!
//! [`SharedTable`] puts a [`JobTable`] behind an `embassy-sync` blocking mutex. Name the
//! table's capacities once, in a type alias, and wrap that type:
//! `SharedTable<CriticalSectionRawMutex, JobTable<Op, 8>>` (the third parameter, `W`, bounds
//! the waiter registrations; default 8). [`SharedTable::new`] is `const`, and with
//! [`Config::DEFAULT`] the value is all-zero bytes, so a `static` lands in `.bss`.
//!
//! * **Typed calls** mirror the core and answer one error type, [`SharedError`]:
//!   [`submit`](SharedTable::submit) ([`try_submit`](SharedTable::try_submit) hands a refused
//!   job back), [`start_next`](SharedTable::start_next), [`progress`](SharedTable::progress),
//!   [`log`](SharedTable::log), [`heartbeat`](SharedTable::heartbeat),
//!   [`succeed`](SharedTable::succeed), [`fail`](SharedTable::fail), the client requests,
//!   [`snapshot`](SharedTable::snapshot) and [`inspect`](SharedTable::inspect). Like the core
//!   they take `now` and read no clock.
//! * **Async calls**: [`wait`](SharedTable::wait) (R-WAIT long-poll),
//!   [`changed`](SharedTable::changed) (any change of the table),
//!   [`submit_and_wait`](SharedTable::submit_and_wait) (R-RETURN),
//!   [`checkpoint`](SharedTable::checkpoint) (the worker's check-in; it parks while the job is
//!   paused) and [`run_timers`](SharedTable::run_timers) (a task body). They return
//!   hand-written futures, not `async fn` state machines: like an `async fn` they do nothing
//!   until first polled, and unlike one they have no "resumed after completion" panic — polled
//!   again after answering, they answer again. So a firmware that uses them keeps no panic path.
//! * **Closures** for anything else: [`update`](SharedTable::update) and
//!   [`read`](SharedTable::read) hand out the table under the lock.
//!
//! ## Which raw mutex
//!
//! A `static` must be `Sync`, and only a `Sync` raw mutex makes it so:
//! `CriticalSectionRawMutex` (tasks on any executor, interrupt handlers, RTIC tasks of any
//! priority, other cores), or `ThreadModeRawMutex` (Cortex-M thread-mode tasks only).
//! `NoopRawMutex` is not `Sync`: use it only for a table that is not a `static`, owned by code
//! on one executor and lent by reference to that executor's tasks.
//!
//! ## From RTIC (or any executor)
//!
//! Nothing here is tied to an executor: the async calls are plain [`Future`]s driven by plain
//! [`Waker`]s. An RTIC 2 application keeps the table in a `static` with
//! `CriticalSectionRawMutex` (RTIC tasks preempt one another, and a critical section keeps each
//! access whole); any task, hardware tasks included, makes the typed calls; async software
//! tasks `.await` `wait`, `changed` and `checkpoint`, and one software task runs
//! `JOBS.run_timers().await` (or calls [`SharedTable::expire`] from a task driven by its own
//! monotonic). Timeouts, `checkpoint` and `run_timers` sleep on `embassy-time`, so the
//! application links an `embassy-time` driver with a timer queue (a HAL's driver, or
//! `embassy-time`'s `generic-queue-*` feature), and passes that driver's `Instant::now()` to the
//! typed calls, so that the table's times and the sleeps read one clock.
//!
//! ## How waking works
//!
//! * A waiter checks its [`Condition`] with the core's rule ([`JobTable::check`]) and, if it
//!   does not hold yet, registers its waker under the job's slot, inside the same lock: no change
//!   slips between the check and the registration.
//! * After every [`SharedTable::update`] (every typed change is one), the jobs changed since the
//!   last wake-up walk ([`JobTable::changed_since`]) have their waiters woken, and only they
//!   (R-LONGPOLL), with the table-wide watchers. If the journal was compacted meanwhile, every
//!   waiter is woken.
//! * **Every wait owns its registration**, under a token of its own: two waits of one task on
//!   one job are two registrations, and one ending never takes the other's away. A wait takes its
//!   registration back when it ends or is dropped — also when it is dropped from inside an
//!   `update` closure: the registrations live apart from the table and never wait for its borrow.
//! * Storage is bounded: `W` registrations across the table. When it is full, a new waiter wakes
//!   every registered one and takes the freed room (like embassy-sync's
//!   `MultiWakerRegistration`); the woken ones re-check and register again. A wake-up is never
//!   lost; with more than `W` concurrent waiters some wake-ups are spurious.
//! * Wakers are woken after the lock is released.
//!
//! ## Time
//!
//! Typed calls take `now` like the core. The calls that sleep already depend on the time
//! driver, so they read [`Instant::now`] themselves: the timeouts of `wait`, `changed` and
//! `submit_and_wait` run from `Instant::now()`; `checkpoint` checks in at `Instant::now()`
//! (R-DEADLINE: a paused job whose deadline passes is failed `TimedOut` then); `run_timers`
//! expires at `Instant::now()`. A timeout is not an error: a wait answers the job's snapshot
//! marked [`Waited::timed_out`]. Waits are clamped to [`SharedTable::max_wait`] ([`MAX_WAIT`],
//! 120 s, by default; R-LONGPOLL).
//!
//! ## Example
//!
//! ```
//! use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
//! use jobstate::shared::{SharedError, SharedTable};
//! use jobstate::{Condition, Config, Directive, Duration, Instant, JobTable, NewJob, Severity, State};
//!
//! #[derive(Clone, Debug, PartialEq)]
//! enum Op { Erase { sector: u16 } }
//!
//! // The capacities, named once: 8 jobs, default texts, journal, edges and tombstones.
//! type Jobs = JobTable<Op, 8>;
//! // Const and all-zero: the static costs no flash.
//! static JOBS: SharedTable<CriticalSectionRawMutex, Jobs> = SharedTable::new(Config::DEFAULT);
//!
//! # futures::executor::block_on(async {
//! let now = Instant::now();
//! // A client submits; a worker starts the oldest runnable job.
//! let id = JOBS.submit(NewJob::new(Op::Erase { sector: 3 }), now)?;
//! assert_eq!(JOBS.start_next(now)?, Some(id));
//!
//! // The client long-polls for any change after the revision it saw.
//! let seen = JOBS.snapshot(id)?.revision();
//! let poll = JOBS.wait(id, Condition::ChangedSince(seen), Duration::from_secs(30));
//!
//! // The worker reports, checks in (it would park here while paused) and finishes.
//! JOBS.progress(id, 40, "erasing", now)?;
//! assert_eq!(JOBS.checkpoint(id).await?, Directive::Continue);
//!
//! let update = poll.await?;
//! assert!(!update.timed_out);
//! assert_eq!(update.job.progress(), 40);
//!
//! JOBS.succeed(id, Severity::Normal, "erased", now)?;
//! assert_eq!(JOBS.inspect(id, |job| job.state())?, State::Succeeded);
//! # Ok::<(), SharedError>(())
//! # }).unwrap();
//! ```

use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::Timer;
use heapless::vec::VecView;
use heapless::Vec;

use crate::error::{JobError, LookupError, Refused, SubmitError};
use crate::id::{JobId, Revision};
use crate::job::NewJob;
use crate::journal::JournalRef;
use crate::state::{Directive, FailReason, Severity};
use crate::table::{changed_jobs, Config, Core, Expired, JobTable, Ro, Table};
use crate::time::{Duration, Instant};
use crate::view::JobRef;
use crate::wait::{clamp_wait, Condition, Submitted, Waited, MAX_WAIT};

/// The registration key of a table-wide watcher ([`SharedTable::changed`]). Slot indices are
/// always below it (a table has at most 65 534 slots).
const ANY: u16 = u16::MAX;

/// "No registration" in a watch's token.
const NO_TOKEN: u32 = 0;

// ----- errors -----------------------------------------------------------------------------------

/// The table is already borrowed: [`SharedTable::update`] or [`SharedTable::read`] was called
/// from inside the closure of another one on the same table. Nothing was done.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Busy;

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("job table already borrowed by an enclosing update or read")
    }
}

impl core::error::Error for Busy {}

/// Why a call on a [`SharedTable`] did nothing: the one error type of its typed API. Every
/// error leaves the table as it was (but see [`JobError`] on R-DEADLINE).
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SharedError {
    /// The table is borrowed by an enclosing [`SharedTable::update`] or [`SharedTable::read`]
    /// closure (the call was made, or the future polled, from inside it) ([`Busy`]).
    Busy,
    /// The id does not lead to a job (whatever the call was: a [`JobError::Lookup`] of the core
    /// lands here too).
    Lookup(LookupError),
    /// The job refused the operation.
    Job(JobError),
    /// The submit was refused.
    Submit(SubmitError),
}

impl From<Busy> for SharedError {
    fn from(_: Busy) -> Self {
        SharedError::Busy
    }
}

impl From<LookupError> for SharedError {
    fn from(e: LookupError) -> Self {
        SharedError::Lookup(e)
    }
}

impl From<JobError> for SharedError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Lookup(e) => SharedError::Lookup(e),
            e => SharedError::Job(e),
        }
    }
}

impl From<SubmitError> for SharedError {
    fn from(e: SubmitError) -> Self {
        SharedError::Submit(e)
    }
}

impl<S> From<Refused<'_, S>> for SharedError {
    fn from(r: Refused<'_, S>) -> Self {
        SharedError::Submit(r.error)
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedError::Busy => fmt::Display::fmt(&Busy, f),
            SharedError::Lookup(e) => fmt::Display::fmt(e, f),
            SharedError::Job(e) => fmt::Display::fmt(e, f),
            SharedError::Submit(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl core::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SharedError::Busy => None,
            SharedError::Lookup(e) => Some(e),
            SharedError::Job(e) => Some(e),
            SharedError::Submit(e) => Some(e),
        }
    }
}

/// A submit that did not happen ([`SharedTable::try_submit`]): the caller's job comes back
/// whole, spec included, with the reason (R-FULL) — [`SharedError::Submit`] when the table
/// refused it (the core's [`Refused`]), [`SharedError::Busy`] when the table was borrowed.
#[derive(Clone, Debug)]
pub struct Rejected<'a, S> {
    /// The job that was not added.
    pub job: NewJob<'a, S>,
    /// Why.
    pub error: SharedError,
}

impl<S> Rejected<'_, S> {
    /// The spec back, dropping the rest.
    pub fn into_spec(self) -> S {
        self.job.spec
    }
}

impl<'a, S> From<Refused<'a, S>> for Rejected<'a, S> {
    fn from(r: Refused<'a, S>) -> Self {
        Rejected {
            job: r.job,
            error: SharedError::Submit(r.error),
        }
    }
}

impl<S> From<Rejected<'_, S>> for SharedError {
    fn from(r: Rejected<'_, S>) -> Self {
        r.error
    }
}

impl<S> fmt::Display for Rejected<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<S: fmt::Debug> core::error::Error for Rejected<'_, S> {}

// ----- waker registrations ----------------------------------------------------------------------
//
// Everything from here on is written once per spec type, over slices: the registrations are
// `[Entry]`, the wakers to wake a slice on the caller's stack, the table the core's
// capacity-erased parts. Per table type there are only the two functions that lock and erase
// ([`SharedTable::enter`] and [`SharedTable::look`]), the thin typed calls and the futures'
// small `poll`s: a second table type adds little code.

/// One registration: its own token (or [`NO_TOKEN`]: the entry is free), the slot it waits for
/// (or [`ANY`]), its waker.
struct Entry {
    waker: Option<Waker>,
    token: u32,
    key: u16,
}

impl Entry {
    const FREE: Entry = Entry {
        waker: None,
        token: NO_TOKEN,
        key: 0,
    };
}

/// Wakers to wake, and a replaced one to drop, once the registry and the lock are released: no
/// executor's wake or drop runs while the registry is borrowed (a waker is still cloned there,
/// when a future registers). The room is the caller's (`W` places on its stack). Without
/// `std` there is no unwinding to contain: a waker whose `wake` panics ends the wake-ups still
/// in the room, so wakers must not panic (embassy's and RTIC's do not).
struct Deferred<'r> {
    wake: &'r mut VecView<Waker>,
    dropped: Option<Waker>,
}

impl<'r> Deferred<'r> {
    fn new(room: &'r mut VecView<Waker>) -> Self {
        Self {
            wake: room,
            dropped: None,
        }
    }

    #[inline(never)]
    fn wake(&mut self, waker: Waker) {
        // At most W registrations leave the registry per borrow: there is always room. Were
        // there none, waking at once still loses no wake-up.
        if let Err(waker) = self.wake.push(waker) {
            waker.wake();
        }
    }

    #[inline(never)]
    fn run(self) {
        while let Some(waker) = self.wake.pop() {
            waker.wake();
        }
        drop(self.dropped);
    }
}

/// Bounded waker storage: `W` registrations (`E = [Entry; W]`, erased to `[Entry]`), each under
/// its own token.
struct Registry<E: ?Sized> {
    /// The last token handed out.
    last: u32,
    entries: E,
}

impl Registry<[Entry]> {
    /// Registrations held.
    fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.token != NO_TOKEN).count()
    }

    /// A token no registration holds (never [`NO_TOKEN`]). Of `W + 1` successive candidates at
    /// most `W` are in use. Tokens count up, so a token whose registration was taken by a
    /// wake-up (its watch still holding it) comes round again only after 2^32 registrations.
    fn fresh_token(&mut self) -> u32 {
        let mut token = self.last;
        for _ in 0..=self.entries.len() {
            token = token.wrapping_add(1).max(1);
            if !self.entries.iter().any(|e| e.token == token) {
                break;
            }
        }
        self.last = token;
        token
    }

    /// Keep `waker` under `token`, or under a new token if `token`'s registration is gone (it
    /// was woken) or there was none. When full, every registered waiter is woken first and
    /// its registration dropped (never a lost wake-up). Answers the token now held.
    fn register(&mut self, token: u32, key: u16, waker: &Waker, out: &mut Deferred<'_>) -> u32 {
        if token != NO_TOKEN {
            if let Some(e) = self.entries.iter_mut().find(|e| e.token == token) {
                if !e.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    out.dropped = e.waker.replace(waker.clone());
                }
                return token;
            }
        }
        if self.entries.iter().all(|e| e.token != NO_TOKEN) {
            self.take_all(out);
        }
        let token = self.fresh_token();
        match self.entries.iter_mut().find(|e| e.token == NO_TOKEN) {
            Some(e) => {
                *e = Entry {
                    waker: Some(waker.clone()),
                    token,
                    key,
                };
                token
            }
            // No room at all (cannot happen: W >= 1 is checked at compile time): have the
            // waiter polled again rather than sleep unregistered.
            None => {
                out.wake(waker.clone());
                NO_TOKEN
            }
        }
    }

    /// Take back the registration of `token`; its waker is dropped by the caller, later.
    fn unregister(&mut self, token: u32) -> Option<Waker> {
        let e = self.entries.iter_mut().find(|e| e.token == token)?;
        e.token = NO_TOKEN;
        e.waker.take()
    }

    /// Move the waiters registered under `key` (every waiter: `None`) out, to be woken.
    fn take(&mut self, key: Option<u16>, out: &mut Deferred<'_>) {
        for e in self.entries.iter_mut() {
            if e.token != NO_TOKEN && key.is_none_or(|k| k == e.key) {
                e.token = NO_TOKEN;
                if let Some(waker) = e.waker.take() {
                    out.wake(waker);
                }
            }
        }
    }

    /// Move every waiter out, to be woken.
    fn take_all(&mut self, out: &mut Deferred<'_>) {
        self.take(None, out);
    }
}

// ----- the shared state -------------------------------------------------------------------------

/// Everything behind the lock. The table and the registrations are separate cells, so a wait
/// dropped while the table is borrowed (inside an `update` closure) still takes its
/// registration back.
struct Cells<Tb, const W: usize> {
    table: RefCell<Tb>,
    /// The table revision up to which waiters have been woken: the table's revision as of the
    /// last completed update.
    seen: Cell<Revision>,
    registry: RefCell<Registry<[Entry; W]>>,
}

/// The registrations and the wake-up state, with `W` erased: what a locked step sees beside
/// the table.
struct Side<'c, 'x, 'r> {
    registry: &'c RefCell<Registry<[Entry]>>,
    seen: &'c Cell<Revision>,
    out: &'x mut Deferred<'r>,
}

/// Move the waiters of every job changed since `seen` out, to be woken (R-LONGPOLL).
fn notify<S>(table: &Core<'_, S>, side: &mut Side<'_, '_, '_>) {
    let current = Revision::new(table.h.revision);
    let seen = side.seen.get();
    if current == seen {
        return;
    }
    // The registry is only ever borrowed by this module's own short sections; were it
    // borrowed, `seen` stays behind and the next update wakes these waiters.
    let Ok(mut registry) = side.registry.try_borrow_mut() else {
        return;
    };
    let out = &mut *side.out;
    if current < seen {
        // A different table was put in place: everything may have changed.
        registry.take_all(out);
    } else if registry.len() != 0 {
        let journal = JournalRef {
            events: table.events,
            logs: table.logs,
            pos: table.h.log,
            dropped: table.h.dropped,
        };
        match changed_jobs(journal, seen, current) {
            Ok(changed) => {
                for id in changed {
                    registry.take(Some(id.index()), out);
                }
                registry.take(Some(ANY), out);
            }
            Err(_) => registry.take_all(out),
        }
    }
    side.seen.set(current);
}

/// Require room for one registration.
struct Room<const W: usize>;

impl<const W: usize> Room<W> {
    const OK: () = assert!(
        W > 0,
        "jobstate: a SharedTable needs room for at least one waiter registration (W >= 1)"
    );
}

// ----- one call, erased -------------------------------------------------------------------------

/// A typed call's arguments. With [`Call`], the same plain value for every call, so that a
/// table type has one function that locks and erases ([`SharedTable::enter`]), and the bodies
/// ([`steps`]) are written once per spec type.
enum Args<'t, 'a, S> {
    /// Only `now`: `start_next`, `expire`.
    Now,
    /// A submit; a refused job is put back here.
    Submit(NewJob<'a, S>),
    /// One job: `start`, `heartbeat`, the client requests, `checkpoint`.
    Id(JobId),
    Progress(JobId, u8, &'t str),
    Log(JobId, &'t str),
    Succeed(JobId, Severity, &'t str),
    Fail(JobId, i32, &'t str),
    FailWith(JobId, FailReason, Option<i32>, &'t str),
    /// A watch's poll: its target, its token (the step writes the new one back), its waker.
    Watch(Target, u32, &'t Waker),
}

/// What a call answers, besides its error.
#[derive(Clone, Copy)]
enum Out {
    Done,
    /// A watch not ready yet.
    Pending,
    Id(JobId),
    Next(Option<JobId>),
    Swept(Expired),
    /// The checkpoint's directive with the job's revision and deadline.
    Checked(Directive, Revision, Option<Instant>),
    /// The table's revision and its next timer.
    Timer(Revision, Option<Instant>),
}

/// One call: its instant and its arguments (a step may write back into them: a refused job, a
/// watch's new token).
struct Call<'t, 'a, S> {
    now: Instant,
    args: Args<'t, 'a, S>,
}

/// What a step answers.
type Answer = Result<Out, SharedError>;

/// A change's body: runs with the table borrowed mutably, its waiters woken after.
type Step<S> = for<'c, 't, 'a> fn(&mut Core<'c, S>, &mut Call<'t, 'a, S>) -> Answer;
/// A read's body: the table borrowed for reading (`Err(Busy)` when an update has it), the
/// registrations beside it.
type Look<S> = for<'c, 'g, 'x, 'r, 't, 'a> fn(
    Result<&Ro<'c, S>, Busy>,
    &mut Side<'g, 'x, 'r>,
    &mut Call<'t, 'a, S>,
) -> Answer;

/// A table type's two locking functions, as the futures see them: behind this reference the
/// futures' code is written once per spec type, not once per table type.
trait Gate<S> {
    /// [`SharedTable::enter`].
    fn enter(&self, call: &mut Call<'_, '_, S>, step: Step<S>) -> Answer;
    /// [`SharedTable::look`].
    fn look(&self, call: &mut Call<'_, '_, S>, step: Look<S>) -> Answer;
    /// [`SharedTable::revision`].
    fn seen(&self) -> Revision;
    /// Give a watch's registration back; its waker is dropped after the lock is released.
    fn release(&self, token: u32);
}

/// A change through a gate, with only `now` and its arguments.
fn run<S>(gate: &dyn Gate<S>, now: Instant, args: Args<'_, '_, S>, step: Step<S>) -> Answer {
    gate.enter(&mut Call { now, args }, step)
}

/// A submit through a gate, a refused job handed back whole: once per spec type.
#[inline(never)]
#[allow(clippy::result_large_err)] // the caller's job comes back whole (R-FULL)
fn submit_via<'a, S>(
    gate: &dyn Gate<S>,
    job: NewJob<'a, S>,
    now: Instant,
) -> Result<JobId, Rejected<'a, S>> {
    let mut call = Call {
        now,
        args: Args::Submit(job),
    };
    match (gate.enter(&mut call, steps::submit), call.args) {
        (Ok(Out::Id(id)), _) => Ok(id),
        (Err(error), Args::Submit(job)) => Err(Rejected { job, error }),
        // Not reached: a step that takes the job answers its id or puts the job back.
        (_, _) => Ok(JobId::default()),
    }
}

/// A watch on a gate.
fn watch<S>(gate: &dyn Gate<S>, target: Target) -> Watch<'_, S> {
    Watch {
        gate,
        target,
        token: NO_TOKEN,
    }
}

/// The typed calls' bodies, once per spec type.
mod steps {
    use super::{Answer, Args, Busy, Call, Condition, Core, Out, Ro, SharedError, Side, Target};
    use super::{JobError, JobRef, LookupError, NO_TOKEN};

    /// A step's answer when its arguments are not its own (not reached; the cheapest value).
    const MISMATCH: Answer = Ok(Out::Done);

    #[inline(never)]
    fn unit(r: Result<(), JobError>) -> Answer {
        match r {
            Ok(()) => Ok(Out::Done),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn submit<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Submit(job) = core::mem::replace(&mut c.args, Args::Now) else {
            return MISMATCH;
        };
        match t.submit(job, c.now) {
            Ok(id) => Ok(Out::Id(id)),
            Err(refused) => {
                c.args = Args::Submit(refused.job);
                Err(SharedError::Submit(refused.error))
            }
        }
    }

    pub(super) fn start_next<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        Ok(Out::Next(t.start_next(c.now)))
    }

    pub(super) fn start<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Id(id) = c.args else {
            return MISMATCH;
        };
        unit(t.start(id, c.now))
    }

    pub(super) fn progress<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Progress(id, percent, message) = c.args else {
            return MISMATCH;
        };
        unit(t.progress(id, percent, message, c.now))
    }

    pub(super) fn log<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Log(id, line) = c.args else {
            return MISMATCH;
        };
        unit(t.log(id, line, c.now))
    }

    pub(super) fn heartbeat<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Id(id) = c.args else {
            return MISMATCH;
        };
        unit(t.heartbeat(id, c.now))
    }

    pub(super) fn succeed<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Succeed(id, severity, message) = c.args else {
            return MISMATCH;
        };
        unit(t.succeed(id, severity, message, c.now))
    }

    pub(super) fn fail<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Fail(id, code, message) = c.args else {
            return MISMATCH;
        };
        unit(t.fail_retrying(id, code, message, c.now))
    }

    pub(super) fn fail_with<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::FailWith(id, reason, code, message) = c.args else {
            return MISMATCH;
        };
        unit(t.fail_with(id, reason, code, message, c.now))
    }

    pub(super) fn request_pause<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Id(id) = c.args else {
            return MISMATCH;
        };
        unit(t.request_pause(id, c.now))
    }

    pub(super) fn request_resume<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Id(id) = c.args else {
            return MISMATCH;
        };
        unit(t.request_resume(id, c.now))
    }

    pub(super) fn request_cancel<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Id(id) = c.args else {
            return MISMATCH;
        };
        unit(t.request_cancel(id, c.now))
    }

    pub(super) fn expire<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        Ok(Out::Swept(t.expire(c.now)))
    }

    /// The async checkpoint's step: the checkpoint, then the job's revision and deadline.
    pub(super) fn checkpoint<S>(t: &mut Core<'_, S>, c: &mut Call<'_, '_, S>) -> Answer {
        let Args::Id(id) = c.args else {
            return MISMATCH;
        };
        let directive = t.checkpoint(id, c.now)?;
        let i = t.locate(id)?;
        let Some(slot) = t.slots.get(usize::from(i)) else {
            return Err(SharedError::Lookup(LookupError::NotFound));
        };
        // The record's own accessors, without the spec and texts this needs not read.
        let job = JobRef {
            id,
            slot,
            spec: &(),
            description: &[],
            message: &[],
            edges: &[],
        };
        Ok(Out::Checked(directive, job.revision(), job.deadline()))
    }

    /// The timer task's plan: the table's revision and its next timer.
    pub(super) fn timer<S>(
        t: Result<&Ro<'_, S>, Busy>,
        _: &mut Side<'_, '_, '_>,
        _: &mut Call<'_, '_, S>,
    ) -> Answer {
        let t = t?;
        Ok(Out::Timer(
            super::Revision::new(t.h.revision),
            t.next_timer(),
        ))
    }

    /// A watch's poll: is the target reached? Registers the waker if not, gives the
    /// registration back if so.
    pub(super) fn watch<S>(
        t: Result<&Ro<'_, S>, Busy>,
        side: &mut Side<'_, '_, '_>,
        c: &mut Call<'_, '_, S>,
    ) -> Answer {
        let Args::Watch(target, ref mut token, waker) = c.args else {
            return MISMATCH;
        };
        let seen = match target {
            Target::Job(id, condition) => match t {
                Ok(table) => match table.get(id) {
                    Ok(job) => Condition::holds(&condition, &job).then_some(Ok(Out::Done)),
                    Err(e) => Some(Err(SharedError::Lookup(e))),
                },
                Err(Busy) => Some(Err(SharedError::Busy)),
            },
            Target::Revision(after) => (side.seen.get() > after).then_some(Ok(Out::Done)),
        };
        match side.registry.try_borrow_mut() {
            Ok(mut registry) => {
                if seen.is_none() {
                    *token = registry.register(*token, target.key(), waker, side.out);
                } else if *token != NO_TOKEN {
                    side.out.dropped = registry.unregister(*token);
                    *token = NO_TOKEN;
                }
            }
            // Cannot happen (the registry is only borrowed by this module's short
            // sections): be polled again rather than sleep unregistered.
            Err(_) => side.out.wake(waker.clone()),
        }
        seen.unwrap_or(Ok(Out::Pending))
    }
}

/// A [`JobTable`] shared between tasks, with async waits. See the [module docs](self).
///
/// * `M` — the embassy-sync raw mutex: `CriticalSectionRawMutex` for a `static` (see the module
///   docs for the choice);
/// * `Tb` — the table type, a [`JobTable`] (any [`Table`]): its capacities are named there,
///   once, typically in a type alias;
/// * `W` — how many waiters can be registered at once across the table (default 8, at least
///   1); more waiters still work, at the cost of spurious wake-ups.
///
/// `new` is `const` and, with [`Config::DEFAULT`], all-zero: a `static` lands in `.bss`. To
/// start from a persisted image, restore it in place inside [`SharedTable::update`] (feature
/// `persist`): every waiter is woken, and the revisions carry on from the restored table's.
pub struct SharedTable<M: RawMutex, Tb, const W: usize = 8> {
    cells: Mutex<M, Cells<Tb, W>>,
    /// `None` is [`MAX_WAIT`] (so the default is all-zero).
    max_wait: Option<Duration>,
}

impl<
        M: RawMutex,
        S,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
        const W: usize,
    > SharedTable<M, JobTable<S, N, T, J, L, E, K, I>, W>
{
    /// An empty shared table; waits are clamped to [`MAX_WAIT`]. With [`Config::DEFAULT`] it is
    /// all-zero bytes.
    pub const fn new(config: Config) -> Self {
        Self::with_max_wait(config, MAX_WAIT)
    }

    /// An empty shared table whose waits are clamped to `max_wait`.
    pub const fn with_max_wait(config: Config, max_wait: Duration) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Room::<W>::OK;
        Self {
            cells: Mutex::new(Cells {
                table: RefCell::new(JobTable::new(config)),
                seen: Cell::new(Revision::ZERO),
                registry: RefCell::new(Registry {
                    last: 0,
                    entries: [Entry::FREE; W],
                }),
            }),
            max_wait: if max_wait.as_ticks() == MAX_WAIT.as_ticks() {
                None
            } else {
                Some(max_wait)
            },
        }
    }
}

impl<M: RawMutex, Tb: Table, const W: usize> SharedTable<M, Tb, W> {
    /// The longest a wait lasts, whatever timeout it asks for.
    pub fn max_wait(&self) -> Duration {
        self.max_wait.unwrap_or(MAX_WAIT)
    }

    // ----- the two per-table-type functions ----------------------------------------------------

    /// Run a change's `step` on the table's erased parts under the lock (or answer `Busy`),
    /// then the wake-up walk; the wakers are woken after the lock is released. One copy per
    /// table type, whatever the calls.
    #[inline(never)]
    fn enter(&self, call: &mut Call<'_, '_, Tb::Spec>, step: Step<Tb::Spec>) -> Answer {
        let mut room: Vec<Waker, W> = Vec::new();
        let mut out = Deferred::new(room.as_mut_view());
        let answer = self.cells.lock(|cells| {
            let mut s = Side {
                registry: &cells.registry,
                seen: &cells.seen,
                out: &mut out,
            };
            match cells.table.try_borrow_mut() {
                Ok(mut table) => {
                    let mut core = table.erased_mut();
                    let answer = step(&mut core, call);
                    notify(&core, &mut s);
                    answer
                }
                Err(_) => Err(SharedError::Busy),
            }
        });
        out.run();
        answer
    }

    /// Run a read's `step` on the table's erased parts (`Err(Busy)` if an update has the
    /// table) and the registrations, under the lock; wakers are woken, and a given-back one
    /// dropped, after the lock is released. One copy per table type.
    #[inline(never)]
    fn look(&self, call: &mut Call<'_, '_, Tb::Spec>, step: Look<Tb::Spec>) -> Answer {
        let mut room: Vec<Waker, W> = Vec::new();
        let mut out = Deferred::new(room.as_mut_view());
        let answer = self.cells.lock(|cells| {
            let mut s = Side {
                registry: &cells.registry,
                seen: &cells.seen,
                out: &mut out,
            };
            match cells.table.try_borrow() {
                Ok(table) => step(Ok(&table.erased()), &mut s, call),
                Err(_) => step(Err(Busy), &mut s, call),
            }
        });
        out.run();
        answer
    }

    /// A typed change with only `now` or one id: its answer.
    fn run(
        &self,
        now: Instant,
        args: Args<'_, '_, Tb::Spec>,
        step: Step<Tb::Spec>,
    ) -> Result<Out, SharedError> {
        self.enter(&mut Call { now, args }, step)
    }

    /// A typed change that answers nothing but its error.
    fn unit(
        &self,
        now: Instant,
        args: Args<'_, '_, Tb::Spec>,
        step: Step<Tb::Spec>,
    ) -> Result<(), SharedError> {
        self.run(now, args, step).map(|_| ())
    }

    // ----- closures ----------------------------------------------------------------------------

    /// Change the table, then wake the waiters of every job that changed.
    ///
    /// Every change goes through here (the typed calls too), so no change escapes the waiters.
    /// The closure runs under the lock: keep it short. Calling this table from inside it answers
    /// [`Busy`] instead of deadlocking; dropping a wait inside it is fine.
    pub fn update<R>(&self, f: impl FnOnce(&mut Tb) -> R) -> Result<R, Busy> {
        let mut room: Vec<Waker, W> = Vec::new();
        let mut out = Deferred::new(room.as_mut_view());
        let result = self.cells.lock(|cells| {
            let mut s = Side {
                registry: &cells.registry,
                seen: &cells.seen,
                out: &mut out,
            };
            let result = match cells.table.try_borrow_mut() {
                Ok(mut table) => {
                    let result = f(&mut table);
                    notify(&table.erased_mut(), &mut s);
                    Ok(result)
                }
                Err(_) => Err(Busy),
            };
            result
        });
        out.run();
        result
    }

    /// Read the table under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&Tb) -> R) -> Result<R, Busy> {
        self.cells.lock(|cells| {
            let table = cells.table.try_borrow().map_err(|_| Busy)?;
            Ok(f(&table))
        })
    }

    // ----- typed reads -------------------------------------------------------------------------

    /// The table's revision as of the last completed change (R-VERSION). Never busy.
    pub fn revision(&self) -> Revision {
        self.cells.lock(|cells| cells.seen.get())
    }

    /// Look at the job in place, without copying it: `f` gets the borrowed view, under the
    /// lock (keep it short).
    pub fn inspect<R>(
        &self,
        id: JobId,
        f: impl FnOnce(JobRef<'_, Tb::Spec>) -> R,
    ) -> Result<R, SharedError> {
        self.read(|t| t.get(id).map(f))?.map_err(Into::into)
    }

    /// When [`SharedTable::expire`] next has something to do ([`JobTable::next_timer`]).
    pub fn next_timer(&self) -> Result<Option<Instant>, SharedError> {
        self.plan().map(|(_, next)| next)
    }

    /// The table's revision and its next timer, read together.
    fn plan(&self) -> Result<(Revision, Option<Instant>), SharedError> {
        let mut call = Call {
            now: Instant::from_ticks(0),
            args: Args::Now,
        };
        match self.look(&mut call, steps::timer)? {
            Out::Timer(revision, next) => Ok((revision, next)),
            _ => Err(SharedError::Busy),
        }
    }

    /// Registrations held by waiters now (at most `W`): a diagnostic. Zero once every wait has
    /// ended or been dropped.
    pub fn registered_waiters(&self) -> usize {
        self.cells.lock(|cells| {
            let registry: &RefCell<Registry<[Entry]>> = &cells.registry;
            registry.try_borrow().map_or(0, |registry| registry.len())
        })
    }

    // ----- typed changes -----------------------------------------------------------------------

    /// Accept a job ([`JobTable::submit`]). A refused job is dropped: use
    /// [`SharedTable::try_submit`] to get it back.
    pub fn submit(&self, job: NewJob<'_, Tb::Spec>, now: Instant) -> Result<JobId, SharedError> {
        self.try_submit(job, now).map_err(|r| r.error)
    }

    /// Accept a job, or hand it back whole with the reason (R-FULL): retry it later, or answer
    /// the client.
    #[allow(clippy::result_large_err)] // the caller's job comes back whole (R-FULL)
    pub fn try_submit<'a>(
        &self,
        job: NewJob<'a, Tb::Spec>,
        now: Instant,
    ) -> Result<JobId, Rejected<'a, Tb::Spec>> {
        submit_via(self, job, now)
    }

    /// Start the oldest runnable job ([`JobTable::start_next`]); `None` if none is runnable.
    pub fn start_next(&self, now: Instant) -> Result<Option<JobId>, SharedError> {
        match self.run(now, Args::Now, steps::start_next)? {
            Out::Next(id) => Ok(id),
            _ => Ok(None),
        }
    }

    /// Start this queued job ([`JobTable::start`]).
    pub fn start(&self, id: JobId, now: Instant) -> Result<(), SharedError> {
        self.unit(now, Args::Id(id), steps::start)
    }

    /// Report progress ([`JobTable::progress`]).
    pub fn progress(
        &self,
        id: JobId,
        percent: u8,
        message: &str,
        now: Instant,
    ) -> Result<(), SharedError> {
        self.unit(now, Args::Progress(id, percent, message), steps::progress)
    }

    /// Append a log line ([`JobTable::log`]).
    pub fn log(&self, id: JobId, line: &str, now: Instant) -> Result<(), SharedError> {
        self.unit(now, Args::Log(id, line), steps::log)
    }

    /// Renew the heartbeat lease ([`JobTable::heartbeat`]).
    pub fn heartbeat(&self, id: JobId, now: Instant) -> Result<(), SharedError> {
        self.unit(now, Args::Id(id), steps::heartbeat)
    }

    /// The worker finished well ([`JobTable::succeed`]).
    pub fn succeed(
        &self,
        id: JobId,
        severity: Severity,
        message: &str,
        now: Instant,
    ) -> Result<(), SharedError> {
        self.unit(now, Args::Succeed(id, severity, message), steps::succeed)
    }

    /// The job failed with the worker's error `code`, reason [`FailReason::Error`]
    /// ([`JobTable::fail`]).
    pub fn fail(
        &self,
        id: JobId,
        code: i32,
        message: &str,
        now: Instant,
    ) -> Result<(), SharedError> {
        self.unit(now, Args::Fail(id, code, message), steps::fail)
    }

    /// Fail a live job with a given reason ([`JobTable::fail_with`]).
    pub fn fail_with(
        &self,
        id: JobId,
        reason: FailReason,
        code: Option<i32>,
        message: &str,
        now: Instant,
    ) -> Result<(), SharedError> {
        self.unit(
            now,
            Args::FailWith(id, reason, code, message),
            steps::fail_with,
        )
    }

    /// Ask a running job to pause at its next checkpoint ([`JobTable::request_pause`]).
    pub fn request_pause(&self, id: JobId, now: Instant) -> Result<(), SharedError> {
        self.unit(now, Args::Id(id), steps::request_pause)
    }

    /// Resume a paused job, or withdraw a pause request ([`JobTable::request_resume`]). A
    /// worker parked in [`SharedTable::checkpoint`] goes on.
    pub fn request_resume(&self, id: JobId, now: Instant) -> Result<(), SharedError> {
        self.unit(now, Args::Id(id), steps::request_resume)
    }

    /// Cancel a job ([`JobTable::request_cancel`]). A worker parked in
    /// [`SharedTable::checkpoint`] wakes and answers [`Directive::Canceled`].
    pub fn request_cancel(&self, id: JobId, now: Instant) -> Result<(), SharedError> {
        self.unit(now, Args::Id(id), steps::request_cancel)
    }

    /// The timer sweep ([`JobTable::expire`]), for a firmware that runs its own timer task
    /// instead of [`SharedTable::run_timers`].
    pub fn expire(&self, now: Instant) -> Result<Expired, SharedError> {
        match self.run(now, Args::Now, steps::expire)? {
            Out::Swept(expired) => Ok(expired),
            _ => Ok(Expired::default()),
        }
    }

    // ----- async -------------------------------------------------------------------------------
    //
    // The async calls return hand-written futures rather than being `async fn`s: an `async fn`'s
    // state machine panics when polled after it completed, and that panic path would stay in
    // every firmware that uses them. These futures answer again instead (they re-check), and
    // like an `async fn` they do nothing until first polled: a timeout runs from the first poll.

    /// The worker's checkpoint, async (R-CONTROL): applies pending requests at
    /// `Instant::now()` ([`JobTable::checkpoint`]) and answers [`Directive::Continue`] or
    /// [`Directive::Canceled`] — never [`Directive::Pause`]: while the job is paused it parks,
    /// woken by the job's changes (no polling), until a resume (then `Continue`) or a cancel
    /// (then `Canceled`, the job failed `Canceled`).
    ///
    /// A paused job's deadline still runs: at the deadline the parked checkpoint wakes and the
    /// job fails `TimedOut`, answering [`JobError::AlreadyTerminal`] (R-DEADLINE). A job that is
    /// queued answers [`JobError::NotRunning`]; one that has ended, `AlreadyTerminal`.
    pub fn checkpoint(
        &self,
        id: JobId,
    ) -> impl Future<Output = Result<Directive, SharedError>> + '_ {
        Checkpoint {
            gate: self,
            id,
            parked: None,
        }
    }

    /// Wait until a change of the table after revision `after`, for at most `timeout` (clamped
    /// to [`SharedTable::max_wait`], from the first poll); answers the table's revision then
    /// ([`SharedTable::revision`]; not above `after` on timeout). A table-wide watcher: a worker
    /// with nothing to do sleeps here.
    pub fn changed(
        &self,
        after: Revision,
        timeout: Duration,
    ) -> impl Future<Output = Revision> + '_ {
        Changed {
            watch: watch(self, Target::Revision(after)),
            deadline: Deadline::new(clamp_wait(timeout, self.max_wait())),
        }
    }

    /// Run the table's timers forever: [`JobTable::expire`] at `Instant::now()` whenever
    /// [`JobTable::next_timer`] comes due (deadlines, leases, retention), re-planning after
    /// every change. Spawn it as its own task; it never completes.
    pub fn run_timers(&self) -> impl Future<Output = ()> + '_ {
        RunTimers {
            gate: self,
            sleep: None,
        }
    }
}

impl<M: RawMutex, Tb: Table, const W: usize> Gate<Tb::Spec> for SharedTable<M, Tb, W> {
    fn enter(&self, call: &mut Call<'_, '_, Tb::Spec>, step: Step<Tb::Spec>) -> Answer {
        SharedTable::enter(self, call, step)
    }

    fn look(&self, call: &mut Call<'_, '_, Tb::Spec>, step: Look<Tb::Spec>) -> Answer {
        SharedTable::look(self, call, step)
    }

    fn seen(&self) -> Revision {
        self.revision()
    }

    fn release(&self, token: u32) {
        let waker = self.cells.lock(|cells| {
            let registry: &RefCell<Registry<[Entry]>> = &cells.registry;
            registry
                .try_borrow_mut()
                .ok()
                .and_then(|mut registry| registry.unregister(token))
        });
        drop(waker);
    }
}

impl<M: RawMutex, Tb: Table, const W: usize> SharedTable<M, Tb, W>
where
    Tb::Spec: Clone,
{
    /// An owned copy of the job ([`JobTable::snapshot`]).
    pub fn snapshot(&self, id: JobId) -> Result<Tb::Job, SharedError> {
        self.answer(id, Condition::Terminal)
            .map(|waited| waited.job)
    }

    /// The job's snapshot now, and whether `condition` fails to hold for it (`timed_out`). The
    /// one place a snapshot is taken (so one copy of it), built straight into the answer.
    fn answer(&self, id: JobId, condition: Condition) -> Result<Waited<Tb::Job>, SharedError> {
        self.cells.lock(|cells| {
            let table = cells.table.try_borrow().map_err(|_| SharedError::Busy)?;
            let job = table.get(id)?;
            Ok(Waited {
                timed_out: !condition.holds(&job),
                job: Tb::to_job(&job),
            })
        })
    }

    /// Wait until `condition` holds for the job, for at most `timeout` (clamped to
    /// [`SharedTable::max_wait`], from the first poll) (R-WAIT).
    ///
    /// Answers at once if the condition already holds. On timeout, answers the current snapshot
    /// with [`Waited::timed_out`] set — a timeout is never an error. A job that is removed
    /// during the wait answers [`SharedError::Lookup`] with [`LookupError::Expired`]; an unknown
    /// id answers its lookup error at once. A wait for [`Condition::Terminal`] ends on success
    /// and on failure alike. Dropping the future ends the wait cleanly.
    pub fn wait(
        &self,
        id: JobId,
        condition: Condition,
        timeout: Duration,
    ) -> impl Future<Output = Result<Waited<Tb::Job>, SharedError>> + '_ {
        WaitFor {
            shared: self,
            waiting: Waiting {
                watch: watch(self, Target::Job(id, condition)),
                deadline: Deadline::new(clamp_wait(timeout, self.max_wait())),
            },
            id,
            condition,
        }
    }

    /// Submit a job, then wait up to `return_timeout` (clamped to [`SharedTable::max_wait`]) for
    /// it to end (R-RETURN): [`Submitted::Completed`] if it did, [`Submitted::Accepted`]
    /// otherwise, [`Submitted::Removed`] if it ended and was removed before the answer. With a
    /// zero timeout the answer is `Accepted` at once. The submit happens at the first poll, and
    /// the job is in the table before any answer, so a lookup straight after `Accepted` finds
    /// it. A refused submit answers [`SharedError::Submit`] (the job is dropped;
    /// [`SharedTable::try_submit`] and [`SharedTable::wait`] keep it).
    pub fn submit_and_wait<'s, 'a>(
        &'s self,
        job: NewJob<'a, Tb::Spec>,
        return_timeout: Duration,
        now: Instant,
    ) -> impl Future<Output = Result<Submitted<Tb::Job>, SharedError>> + use<'s, 'a, M, Tb, W> {
        SubmitAndWait {
            shared: self,
            submitting: Submitting {
                gate: self,
                job: Some(job),
                zero: return_timeout == Duration::from_ticks(0),
                timeout: clamp_wait(return_timeout, self.max_wait()),
                now,
                stage: None,
            },
        }
    }
}

/// The instant `timeout` from now, saturating at the end of time.
fn deadline_after(timeout: Duration) -> Instant {
    Instant::now().checked_add(timeout).unwrap_or(Instant::MAX)
}

// ----- the async calls' futures -----------------------------------------------------------------

/// A timeout that starts at its first poll, as it would in an `async fn`.
struct Deadline {
    timeout: Duration,
    timer: Option<Timer>,
}

impl Deadline {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            timer: None,
        }
    }

    /// Ready once the timeout has passed (never on the very first poll: embassy's timer yields
    /// once).
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let timeout = self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Timer::at(deadline_after(timeout)));
        Pin::new(timer).poll(cx)
    }
}

/// A parked worker or timer task: until a change (the watch) or an instant (the timer).
struct Sleep<'s, S> {
    watch: Watch<'s, S>,
    timer: Option<Timer>,
}

impl<S> Sleep<'_, S> {
    /// Whether the sleep is over: the watch ended (whatever its answer) or the timer fired.
    fn woke(&mut self, cx: &mut Context<'_>) -> bool {
        Pin::new(&mut self.watch).poll(cx).is_ready()
            || self
                .timer
                .as_mut()
                .is_some_and(|t| Pin::new(t).poll(cx).is_ready())
    }
}

/// [`SharedTable::checkpoint`].
struct Checkpoint<'s, S> {
    gate: &'s dyn Gate<S>,
    id: JobId,
    /// While the job is paused: woken by its next change or its deadline.
    parked: Option<Sleep<'s, S>>,
}

impl<S> Future for Checkpoint<'_, S> {
    type Output = Result<Directive, SharedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (gate, id) = (this.gate, this.id);
        loop {
            if let Some(parked) = this.parked.as_mut() {
                if !parked.woke(cx) {
                    return Poll::Pending;
                }
                // Its registration goes back here.
                this.parked = None;
            }
            let checked = run(gate, Instant::now(), Args::Id(id), steps::checkpoint);
            match checked {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(Out::Checked(Directive::Pause, revision, deadline)) => {
                    // Parked: any change of the job (resume, cancel request, …) ends the watch,
                    // and the checkpoint is asked again; so does the deadline. A watch's own
                    // answer (a lookup error, Busy) is the next checkpoint's answer too. The
                    // loop polls the new watch and timer at once; both are pending on their
                    // first poll unless the job changed meanwhile.
                    this.parked = Some(Sleep {
                        watch: watch(gate, Target::Job(id, Condition::ChangedSince(revision))),
                        timer: deadline.map(Timer::at),
                    });
                }
                Ok(Out::Checked(directive, _, _)) => return Poll::Ready(Ok(directive)),
                // Not reached: the step answers `Checked` or an error.
                Ok(_) => return Poll::Ready(Err(SharedError::Busy)),
            }
        }
    }
}

/// [`SharedTable::changed`].
struct Changed<'s, S> {
    watch: Watch<'s, S>,
    deadline: Deadline,
}

impl<S> Future for Changed<'_, S> {
    type Output = Revision;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Revision> {
        let this = self.get_mut();
        if Pin::new(&mut this.watch).poll(cx).is_pending() {
            if this.deadline.poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Timed out: the registration goes back now, not when the future is dropped.
            this.watch.release();
        }
        Poll::Ready(this.watch.gate.seen())
    }
}

/// [`SharedTable::run_timers`]: never ready.
struct RunTimers<'s, S> {
    gate: &'s dyn Gate<S>,
    /// Until the next change of the table or the next timer.
    sleep: Option<Sleep<'s, S>>,
}

impl<S> Future for RunTimers<'_, S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let gate = this.gate;
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                if !sleep.woke(cx) {
                    return Poll::Pending;
                }
                this.sleep = None;
                let _ = run(gate, Instant::now(), Args::Now, steps::expire);
            }
            let plan = gate.look(
                &mut Call {
                    now: Instant::from_ticks(0),
                    args: Args::Now,
                },
                steps::timer,
            );
            let Ok(Out::Timer(revision, next)) = plan else {
                // Only when polled from inside an update or read of this table: yield once to
                // the executor and try again.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            };
            // Both pending on their first poll (the watch unless the table changed meanwhile).
            this.sleep = Some(Sleep {
                watch: watch(gate, Target::Revision(revision)),
                timer: next.map(Timer::at),
            });
        }
    }
}

/// A wait's watch and its timeout, written once per spec type.
struct Waiting<'s, S> {
    watch: Watch<'s, S>,
    deadline: Deadline,
}

impl<S> Waiting<'_, S> {
    /// Ready with `Ok` once the target is reached or the timeout passed (the registration then
    /// goes back at once, not when the future is dropped), with the watch's error otherwise.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SharedError>> {
        if let Poll::Ready(ready) = Pin::new(&mut self.watch).poll(cx) {
            return Poll::Ready(ready);
        }
        if self.deadline.poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.watch.release();
        Poll::Ready(Ok(()))
    }
}

/// [`SharedTable::wait`].
struct WaitFor<'s, M: RawMutex, Tb: Table, const W: usize> {
    shared: &'s SharedTable<M, Tb, W>,
    waiting: Waiting<'s, Tb::Spec>,
    id: JobId,
    condition: Condition,
}

impl<M: RawMutex, Tb: Table, const W: usize> Future for WaitFor<'_, M, Tb, W>
where
    Tb::Spec: Clone,
{
    type Output = Result<Waited<Tb::Job>, SharedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.waiting.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // Condition met or timeout: answer the job as it is now, in the same poll.
            Poll::Ready(Ok(())) => Poll::Ready(this.shared.answer(this.id, this.condition)),
        }
    }
}

/// [`SharedTable::submit_and_wait`] up to the answer, written once per spec type: the submit
/// at the first poll, then the wait for the job's end.
struct Submitting<'s, 'a, S> {
    gate: &'s dyn Gate<S>,
    /// Until the first poll submits it.
    job: Option<NewJob<'a, S>>,
    /// A zero return timeout: answer at once.
    zero: bool,
    /// The return timeout, clamped.
    timeout: Duration,
    now: Instant,
    /// After the submit: the job's id and its wait (none for a zero timeout), or the refusal.
    stage: Option<Result<Accepted<'s, S>, SharedError>>,
}

/// A submitted job's id and its wait (none for a zero timeout).
type Accepted<'s, S> = (JobId, Option<Waiting<'s, S>>);

/// A submitted job's id and how its wait ended (`Ok`: ask the job now), or the refusal.
type Ended = Result<(JobId, Result<(), SharedError>), SharedError>;

impl<S> Submitting<'_, '_, S> {
    /// Ready with the job's id and how its wait ended (`Ok`: ask the job now), or the refusal.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        let gate = self.gate;
        let stage = match self.stage.as_mut() {
            Some(stage) => stage,
            None => {
                let submitted = match self.job.take() {
                    Some(job) => run(gate, self.now, Args::Submit(job), steps::submit),
                    // Not reached: the job is taken only here, and the stage set with it.
                    None => Err(SharedError::Busy),
                };
                let (zero, timeout) = (self.zero, self.timeout);
                self.stage.insert(submitted.map(|out| {
                    let id = match out {
                        Out::Id(id) => id,
                        _ => JobId::default(),
                    };
                    let wait = (!zero).then(|| Waiting {
                        watch: watch(gate, Target::Job(id, Condition::Terminal)),
                        deadline: Deadline::new(timeout),
                    });
                    (id, wait)
                }))
            }
        };
        match stage {
            Err(e) => Poll::Ready(Err(*e)),
            Ok((id, None)) => Poll::Ready(Ok((*id, Ok(())))),
            Ok((id, Some(wait))) => wait.poll(cx).map(|waited| Ok((*id, waited))),
        }
    }
}

/// [`SharedTable::submit_and_wait`].
struct SubmitAndWait<'s, 'a, M: RawMutex, Tb: Table, const W: usize> {
    shared: &'s SharedTable<M, Tb, W>,
    submitting: Submitting<'s, 'a, Tb::Spec>,
}

// The job is never pinned: it is moved out by value at the first poll.
impl<M: RawMutex, Tb: Table, const W: usize> Unpin for SubmitAndWait<'_, '_, M, Tb, W> {}

impl<M: RawMutex, Tb: Table, const W: usize> Future for SubmitAndWait<'_, '_, M, Tb, W>
where
    Tb::Spec: Clone,
{
    type Output = Result<Submitted<Tb::Job>, SharedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (id, waited) = match this.submitting.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(ended)) => ended,
        };
        let zero = this.submitting.zero;
        let waited = waited.and_then(|()| this.shared.answer(id, Condition::Terminal));
        Poll::Ready(match waited {
            // Waiting for `Terminal`: not timed out means terminal.
            Ok(Waited {
                job,
                timed_out: false,
            }) if !zero => Ok(Submitted::Completed(job)),
            Ok(Waited { job, .. }) => Ok(Submitted::Accepted(job)),
            Err(SharedError::Lookup(LookupError::Expired(tombstone))) => {
                Ok(Submitted::Removed(id, tombstone))
            }
            Err(SharedError::Lookup(_)) => Ok(Submitted::Removed(id, None)),
            // Polled from inside an update or read of this table (the job is in the table).
            Err(e) => Err(e),
        })
    }
}

// ----- the watch future -------------------------------------------------------------------------

/// What a [`Watch`] waits for.
#[derive(Clone, Copy)]
enum Target {
    /// The condition holds for the job.
    Job(JobId, Condition),
    /// The table's revision passes this one.
    Revision(Revision),
}

impl Target {
    fn key(self) -> u16 {
        match self {
            Target::Job(id, _) => id.index(),
            Target::Revision(_) => ANY,
        }
    }
}

/// One waiter: a job's condition or a table-wide change. Holds its own registration (by
/// token) while pending, and gives it back when it is ready or dropped.
struct Watch<'s, S> {
    gate: &'s dyn Gate<S>,
    target: Target,
    /// Its registration, or [`NO_TOKEN`].
    token: u32,
}

impl<S> Future for Watch<'_, S> {
    /// `Ok` once the target is reached; the lookup error if the job is gone; `Busy` if polled
    /// from inside an update of the same table. Never clones a job.
    type Output = Result<(), SharedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut call = Call {
            now: Instant::from_ticks(0),
            args: Args::Watch(this.target, this.token, cx.waker()),
        };
        let answer = this.gate.look(&mut call, steps::watch);
        if let Args::Watch(_, token, _) = call.args {
            this.token = token;
        }
        match answer {
            Ok(Out::Pending) => Poll::Pending,
            Ok(_) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<S> Watch<'_, S> {
    /// Give the registration back, if it holds one (a wait that timed out, or a dropped one).
    /// The waker is dropped outside the lock.
    #[inline(never)]
    fn release(&mut self) {
        if self.token == NO_TOKEN {
            return;
        }
        let token = core::mem::replace(&mut self.token, NO_TOKEN);
        self.gate.release(token);
    }
}

impl<S> Drop for Watch<'_, S> {
    fn drop(&mut self) {
        self.release();
    }
}
