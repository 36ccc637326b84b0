//! The engine: the core table behind one lock, with waiters, timers and wall-clock time.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use jobstate::{
    clamp_wait, Config, Directive, Expired, FailReason, Instant, Job, JobError, JobId, JobRef,
    LookupError, NewJob, Refused, Revision, Severity, Table, MAX_WAIT,
};

use crate::clock::Clock;
use crate::error::StartError;
use crate::registry::{JobNow, Registry, WakeList};
use crate::snapshot::Snapshot;
#[cfg(loom)]
use crate::sync::AtomicU64;
use crate::sync::{self, Arc, Condvar, JoinHandle, Mutex, MutexGuard};

/// The longest a wait may last: the core's [`jobstate::MAX_WAIT`] (the top of ONTAP Select
/// Deploy's `poll_timeout` range), as a `std` duration. [`EngineConfig::max_wait`] may lower it.
pub const DEFAULT_MAX_WAIT: StdDuration = StdDuration::from_micros(MAX_WAIT.as_micros());

/// The largest `return_timeout` [`Engine::submit_and_wait`] accepts (R-RETURN): the same
/// ceiling, [`jobstate::MAX_WAIT`].
pub const MAX_RETURN_TIMEOUT: StdDuration = DEFAULT_MAX_WAIT;

/// A `std` duration as the core's (whole microseconds; anything past a few days is more than
/// any wait ceiling and reads as that).
pub(crate) fn core_duration(d: StdDuration) -> jobstate::Duration {
    const LIMIT_US: u64 = 1 << 40;
    let us = u64::try_from(d.as_micros()).unwrap_or(LIMIT_US);
    jobstate::Duration::from_micros(us.min(LIMIT_US))
}

/// The core's duration as a `std` one.
pub(crate) fn std_duration(d: jobstate::Duration) -> StdDuration {
    StdDuration::from_micros(d.as_micros())
}

/// `timeout` clamped to `max` by the core's rule ([`jobstate::clamp_wait`], R-LONGPOLL).
pub(crate) fn clamp(timeout: StdDuration, max: StdDuration) -> StdDuration {
    // The common case without the conversions: a whole number of microseconds within the
    // ceiling (`max` is one already: it was clamped the same way) is its own answer.
    if timeout <= max && timeout.subsec_nanos().is_multiple_of(1_000) {
        return timeout;
    }
    std_duration(clamp_wait(core_duration(timeout), core_duration(max)))
}

/// The timer thread re-checks at least this often, whatever it was told.
const TIMER_SAFETY_PERIOD: StdDuration = StdDuration::from_secs(30);

/// Engine settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EngineConfig {
    /// The core table's settings (retention).
    pub table: Config,
    /// Waits longer than this are clamped to it (R-LONGPOLL). Default and ceiling
    /// [`jobstate::MAX_WAIT`]: a larger value counts as that.
    pub max_wait: StdDuration,
    /// Run the job timers on the engine's timer thread: fail jobs whose deadline or heartbeat
    /// lease passed, remove terminal jobs whose retention passed (default `true`). Without
    /// them, call [`Engine::run_timers`] yourself. (The thread runs either way: it also ends
    /// async waits at their timeout.)
    pub timer_thread: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            table: Config::DEFAULT,
            max_wait: DEFAULT_MAX_WAIT,
            timer_thread: true,
        }
    }
}

/// How many wait deadlines the timer thread settles before it releases the lock and wakes
/// them (tokio's `WakeList` batch is 32): the first ones woken need not wait for the last ones
/// to be found.
const TIMER_BATCH: usize = 64;

/// How many newly registered waits the timer thread places in its wheel in one round (see
/// [`Registry::place_fresh`]), so that one round holds the lock briefly however many waits
/// were registered since the last.
const FRESH_BATCH: usize = 4096;

/// When the timer thread is due, and whether it must stop.
#[derive(Default)]
pub(crate) struct TimerState {
    /// The job timer the timer thread plans for (`None`: nothing due).
    at: Option<Instant>,
    /// When the timer thread wakes next (`None`: it is not asleep).
    wake_at: Option<StdInstant>,
    /// The plan changed since the timer thread's last round: go round again before sleeping.
    kicked: bool,
    /// The engine is gone: the timer thread ends.
    stop: bool,
}

/// Everything under the lock.
pub(crate) struct State<Tb: Table> {
    pub(crate) table: Box<Tb>,
    /// The revision up to which waiters have been notified.
    seen: Revision,
    pub(crate) waiters: Registry<Box<Tb::Job>>,
    timer: TimerState,
    /// Worker threads waiting for a runnable job.
    pub(crate) idle_workers: usize,
    /// The latest monotonic instant read under the lock: a lower bound of the time now, which
    /// a wait compares its deadline with when it registers (without reading the clock).
    pub(crate) floor: StdInstant,
}

impl<Tb: Table> State<Tb> {
    /// The table, the waiters and the timer's plan, borrowed apart.
    pub(crate) fn parts(&mut self) -> (&Tb, &mut Registry<Box<Tb::Job>>, &mut TimerState) {
        (&self.table, &mut self.waiters, &mut self.timer)
    }
}

/// What engine handles share.
pub(crate) struct Shared<Tb: Table> {
    pub(crate) state: Mutex<State<Tb>>,
    timer_cv: Condvar,
    /// Idle workers wait here; notified when a job is runnable.
    pub(crate) work_cv: Condvar,
    pub(crate) clock: Clock,
    pub(crate) config: EngineConfig,
    /// The loom model's clock: how far (µs) the model moved time on.
    #[cfg(loom)]
    model_offset: AtomicU64,
}

/// Stops the timer thread when the last engine handle goes.
struct Owner<Tb: Table> {
    shared: Arc<Shared<Tb>>,
    timer: Option<JoinHandle<()>>,
}

impl<Tb: Table> Drop for Owner<Tb> {
    fn drop(&mut self) {
        {
            let mut st = sync::lock(&self.shared.state);
            st.timer.stop = true;
            st.timer.kicked = true;
        }
        self.shared.timer_cv.notify_all();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}

/// A core table an [`Engine`] can run: any [`Table`] — in practice a `JobTable` type alias —
/// whose spec can be cloned and sent to other threads. Implemented for every such table; it
/// only names those bounds once.
pub trait EngineTable:
    Table<Spec: Clone + Send + 'static, Job: Send + 'static> + Send + 'static
{
}

impl<Tb> EngineTable for Tb
where
    Tb: Table + Send + 'static,
    Tb::Spec: Clone + Send + 'static,
    Tb::Job: Send + 'static,
{
}

/// A thread-safe, cheap-to-clone handle to a job table (see the [crate docs](crate)).
///
/// `Tb` is the core table it runs, capacities and all: name them once in a type alias
/// (`type Jobs = JobTable<Op, 64>;`) and write `Engine<Jobs>`, `JobsApi<Jobs>`,
/// `JobContext<'_, Jobs>` (the core's [`Table`] trait is how the adapter reads them).
pub struct Engine<Tb: Table> {
    /// One reference count per handle (a wait future holds a handle too).
    owner: Arc<Owner<Tb>>,
}

impl<Tb: Table> Clone for Engine<Tb> {
    fn clone(&self) -> Self {
        Self {
            owner: self.owner.clone(),
        }
    }
}

impl<Tb: Table> Engine<Tb> {
    /// What the handles share (the timer thread holds it too).
    pub(crate) fn shared(&self) -> &Shared<Tb> {
        &self.owner.shared
    }
}

impl<Tb: Table> std::fmt::Debug for Engine<Tb> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("capacity", &Tb::CAPACITY)
            .field("config", &self.shared().config)
            .finish_non_exhaustive()
    }
}

/// Build a table in place on the heap. `Table::new` returns the table by value (a 64-byte
/// record and two `T`-byte texts a slot), which can overflow a thread's stack for large `N` in
/// an unoptimised build, so large tables are built on a helper thread with a stack big enough
/// for them; if that thread cannot start, on this one.
#[cfg_attr(not(feature = "persist"), allow(dead_code))]
pub(crate) fn boxed_table<Tb: Table + Send>(config: Config) -> Box<Tb> {
    try_boxed_table(config).unwrap_or_else(|_| build_here(config))
}

/// [`boxed_table`], with the helper thread's start failure as an error.
pub(crate) fn try_boxed_table<Tb: Table + Send>(config: Config) -> Result<Box<Tb>, StartError> {
    let size = std::mem::size_of::<Tb>();
    if size <= 64 * 1024 {
        return Ok(build_here(config));
    }
    let stack = size.saturating_mul(4).saturating_add(1 << 20);
    std::thread::scope(|s| {
        let built = std::thread::Builder::new()
            .name("jobstate-alloc".into())
            .stack_size(stack)
            .spawn_scoped(s, || build_here(config))
            .map_err(|e| StartError::new("table builder thread", e))?;
        match built.join() {
            Ok(table) => Ok(table),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The table is built in this function's own frame, which only the thread that calls it
/// pays for (kept out of line so `boxed_table`'s frame stays small).
#[inline(never)]
fn build_here<Tb: Table>(config: Config) -> Box<Tb> {
    Box::new(Tb::new(config))
}

/// The job's copy for a waiter settled on it; `None` if the spec's `Clone` panicked (the
/// waiter then reads the job itself).
fn copy_job<Tb: Table>(job: &JobRef<'_, Tb::Spec>) -> Option<Box<Tb::Job>>
where
    Tb::Spec: Clone,
{
    catch_unwind(AssertUnwindSafe(|| Box::new(Tb::to_job(job))))
        .map_err(sync::forget_payload)
        .ok()
}

/// A changed job: settle and wake its waiters (see [`Registry::notify_job`]), and answer the
/// timer it arms now, if any (with `timers`).
fn visit_job<'t, Tb: Table>(
    table: &'t Tb,
    id: JobId,
    job: Result<JobRef<'t, Tb::Spec>, LookupError>,
    waiters: &mut Registry<Box<Tb::Job>>,
    timers: bool,
    wl: &mut WakeList<'_>,
) -> Option<Instant>
where
    Tb::Spec: Clone,
{
    if !waiters.is_empty() {
        let now = match &job {
            Ok(j) => JobNow::Live {
                terminal: j.is_terminal(),
            },
            Err(e) => JobNow::Gone(*e),
        };
        waiters.notify_job(
            id,
            &now,
            |condition| job.as_ref().is_ok_and(|j| condition.holds(j)),
            || job.as_ref().ok().and_then(copy_job::<Tb>),
            wl,
        );
    }
    match (timers, &job) {
        (true, Ok(j)) => timer_of(table, j),
        _ => None,
    }
}

impl<Tb: Table> Shared<Tb> {
    /// The monotonic clock (moved on by the model under loom).
    pub(crate) fn std_now(&self) -> StdInstant {
        let now = StdInstant::now();
        #[cfg(loom)]
        let now = now
            .checked_add(StdDuration::from_micros(
                self.model_offset.load(sync::Ordering::SeqCst),
            ))
            .unwrap_or(now);
        now
    }

    /// The current table instant.
    pub(crate) fn now(&self) -> Instant {
        self.clock.instant_of(self.std_now())
    }

    /// The current table instant, read under the lock (it moves the state's `floor` on).
    pub(crate) fn now_locked(&self, st: &mut State<Tb>) -> Instant {
        let now = self.std_now();
        if now > st.floor {
            st.floor = now;
        }
        self.clock.instant_of(now)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<Tb>> {
        sync::lock(&self.state)
    }

    /// A wait registered with this deadline: the timer thread settles it then. Wakes the
    /// timer thread (after the lock) if it planned to sleep past the deadline, or if `fresh`
    /// waits are left for it to place: every [`FRESH_BATCH`] of them, so that with many
    /// long waits registered the placing is done as they come, not all at the first
    /// deadline (where it would make every wait late).
    pub(crate) fn arm<'a>(
        &'a self,
        timer: &mut TimerState,
        at: StdInstant,
        fresh: usize,
        wl: &mut WakeList<'a>,
    ) {
        let sooner = timer.wake_at.is_none_or(|w| at < w);
        if sooner {
            timer.wake_at = Some(at);
        }
        if sooner || fresh.is_multiple_of(FRESH_BATCH) {
            timer.kicked = true;
            wl.notify(&self.timer_cv);
        }
    }
}

impl<Tb: EngineTable> Shared<Tb> {
    /// After a change to the table: learn from the journal which jobs changed and settle
    /// exactly their waiters whose condition now holds, the table watchers, an idle worker if
    /// a job is runnable, and the timer thread if something falls due sooner than it planned.
    /// Whom to wake goes into `wl`, woken by the caller once the lock is released. Runs no
    /// user code but a spec's `Clone` (contained).
    pub(crate) fn commit<'a>(&'a self, st: &mut State<Tb>, wl: &mut WakeList<'a>) {
        self.commit_hinted(st, wl, None);
    }

    /// [`Shared::commit`] after an operation on job `hint`. When that operation made exactly
    /// one change and it was to `hint` (the table moved on by one revision, and it is the
    /// job's), the journal is not read: that one job is what changed.
    pub(crate) fn commit_hinted<'a>(
        &'a self,
        st: &mut State<Tb>,
        wl: &mut WakeList<'a>,
        hint: Option<JobId>,
    ) {
        let revision = st.table.revision();
        if revision == st.seen {
            return;
        }
        let State {
            table,
            seen,
            waiters,
            timer,
            idle_workers,
            ..
        } = st;
        let table: &Tb = table;
        let timers = self.config.timer_thread;
        let mut due: Option<Instant> = None;
        let only = hint.filter(|_| revision.get() == seen.get().saturating_add(1));
        let only = only.and_then(|id| match table.get(id) {
            Ok(job) if job.revision() == revision => Some((id, job)),
            _ => None,
        });
        let known = only.is_some();
        if let Some((id, job)) = only {
            due = visit_job(table, id, Ok(job), waiters, timers, wl);
        }
        let changed = if (waiters.is_empty() && !timers) || known {
            // Nobody to tell which jobs changed, or the one that did is known: no journal.
            Ok(None)
        } else {
            table.changed_since(*seen).map(Some)
        };
        let mut visit = |id: JobId, waiters: &mut Registry<Box<Tb::Job>>, wl: &mut WakeList<'a>| {
            if let Some(t) = visit_job(table, id, table.get(id), waiters, timers, wl) {
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        };
        match changed {
            Ok(None) => {}
            Ok(Some(changed)) => {
                let mut last = None;
                for id in changed {
                    // One operation often records several events of one job.
                    if last != Some(id) {
                        visit(id, waiters, wl);
                        last = Some(id);
                    }
                }
            }
            Err(_compacted) => {
                // Too far behind to know which jobs changed: re-check every waiter, and let
                // the timer thread re-plan.
                for id in waiters.watched_jobs() {
                    visit(id, waiters, wl);
                }
                due = Some(Instant::from_ticks(0));
            }
        }
        if !waiters.is_empty() {
            waiters.notify_table(revision, wl);
        }
        *seen = revision;
        if *idle_workers > 0 && table.peek_runnable().is_some() {
            wl.notify(&self.work_cv);
        }
        if let Some(t) = due {
            if timer.at.is_none_or(|at| t < at) {
                timer.at = Some(t);
                timer.kicked = true;
                wl.notify(&self.timer_cv);
            }
        }
    }

    /// One round of the timer thread: run the job timers (`expire`, when enabled; a panic
    /// in it — a spec's `Drop` — is contained and whatever it changed is still committed),
    /// settle the waits whose deadline passed (at most [`TIMER_BATCH`]), and plan the next
    /// wake-up. Answers how long to sleep (zero: go round again at once), or `None` once the
    /// engine is gone. Whom to wake goes into `wl`.
    fn timer_round<'a>(&'a self, wl: &mut WakeList<'a>) -> Option<StdDuration> {
        let mut st = self.lock();
        if st.timer.stop {
            return None;
        }
        st.timer.kicked = false;
        let mut wake = self.std_now().checked_add(TIMER_SAFETY_PERIOD);
        let earliest = |wake: Option<StdInstant>, t: StdInstant| Some(wake.map_or(t, |w| w.min(t)));
        if self.config.timer_thread {
            let now = self.now_locked(&mut st);
            let table = &mut st.table;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| table.expire(now))) {
                sync::forget_payload(panic);
            }
            self.commit(&mut st, wl);
            let next = st.table.next_timer();
            st.timer.at = next;
            if let Some(t) = next {
                wake = earliest(wake, self.clock.std_instant_of(t));
            }
        }
        let now = self.std_now();
        if now > st.floor {
            st.floor = now;
        }
        let tick = self.clock.tick_floor(now);
        // The waits registered since the last round go to their slots first (a batch at a
        // time: a round holds the lock briefly).
        let clock = self.clock;
        let more_fresh = st
            .waiters
            .place_fresh(FRESH_BATCH, |at| clock.tick_ceil(at));
        if st.waiters.expire_due(tick, TIMER_BATCH, wl) || more_fresh {
            // More are due (or to be placed): wake these first, then go on at once.
            wake = Some(now);
        } else if let Some(next) = st.waiters.next_deadline() {
            wake = earliest(wake, self.clock.at_tick(next));
        }
        st.timer.wake_at = wake;
        Some(wake.map_or(TIMER_SAFETY_PERIOD, |w| w.saturating_duration_since(now)))
    }

    /// The timer thread: timer rounds, sleeping in between until the next thing is due or a
    /// change makes something due sooner. Nothing a user's code does stops it: wakers, a
    /// spec's `Drop` in `expire`, anything else that panics inside a round is contained.
    fn run_timer(&self) {
        loop {
            let mut wl = WakeList::new();
            let round = catch_unwind(AssertUnwindSafe(|| self.timer_round(&mut wl)));
            wl.wake_all();
            drop(wl);
            let (sleep, planned) = match round {
                Ok(None) => return,
                Ok(Some(sleep)) => (sleep, true),
                Err(panic) => {
                    sync::forget_payload(panic);
                    (StdDuration::from_millis(1), false)
                }
            };
            if sleep.is_zero() {
                continue;
            }
            let st = self.lock();
            if st.timer.stop {
                return;
            }
            if st.timer.kicked {
                continue;
            }
            // Sleep until the wake-up the round planned, measured now: waking this round's
            // wakers took time, and a wait registered meanwhile relied on the planned instant
            // (it wakes the thread only for an earlier deadline).
            let sleep = match st.timer.wake_at {
                Some(at) if planned => at.saturating_duration_since(self.std_now()),
                _ => sleep,
            };
            if sleep.is_zero() {
                continue;
            }
            drop(sync::wait_timeout(
                &self.timer_cv,
                st,
                sleep.max(StdDuration::from_micros(50)),
            ));
        }
    }
}

/// The timer a changed job arms now, if any: its deadline or lease while running or paused,
/// the end of its backoff while queued for a retry, the end of its retention once terminal. A
/// change only ever brings a timer forward through one of these, so the timer thread is woken
/// when one falls before what it planned.
fn timer_of<Tb: Table>(table: &Tb, job: &JobRef<'_, Tb::Spec>) -> Option<Instant> {
    if job.is_terminal() {
        let retention = table.config().retention;
        return job.ended().and_then(|e| e.checked_add(retention));
    }
    if let Some(at) = job.retry_at() {
        return Some(at);
    }
    match (job.deadline(), job.lease_until()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<Tb: EngineTable> Engine<Tb> {
    /// An engine over a new, empty table; starts the engine's timer thread (job timers unless
    /// [`EngineConfig::timer_thread`] is off; wait timeouts always).
    ///
    /// # Panics
    ///
    /// If the timer thread (or, for a table over 64 KiB, the thread that builds it) cannot
    /// start — the operating system refused a thread. [`Engine::try_new`] answers that as an
    /// error instead.
    pub fn new(config: EngineConfig) -> Self {
        Self::try_new(config).unwrap_or_else(|e| panic!("jobstate engine: {e}"))
    }

    /// [`Engine::new`], with a thread that cannot start as an error.
    pub fn try_new(config: EngineConfig) -> Result<Self, StartError> {
        Self::try_from_boxed_table(try_boxed_table(config.table)?, config)
    }

    /// An engine over an existing table, for example one restored from disk. The engine's
    /// clock continues from the table's newest instant ([`Table::now`]), which maps to the
    /// wall-clock time of this call. `config.table` is ignored: the table keeps its own.
    ///
    /// # Panics
    ///
    /// If the timer thread cannot start ([`Engine::try_from_table`] answers an error).
    pub fn from_table(table: Tb, config: EngineConfig) -> Self {
        Self::from_boxed_table(Box::new(table), config)
    }

    /// [`Engine::from_table`], with a thread that cannot start as an error.
    pub fn try_from_table(table: Tb, config: EngineConfig) -> Result<Self, StartError> {
        Self::try_from_boxed_table(Box::new(table), config)
    }

    /// [`Engine::from_table`] for a table already on the heap.
    ///
    /// # Panics
    ///
    /// If the timer thread cannot start ([`Engine::try_from_boxed_table`] answers an error).
    pub fn from_boxed_table(table: Box<Tb>, config: EngineConfig) -> Self {
        Self::try_from_boxed_table(table, config).unwrap_or_else(|e| panic!("jobstate engine: {e}"))
    }

    /// [`Engine::from_boxed_table`], with a thread that cannot start as an error.
    pub fn try_from_boxed_table(table: Box<Tb>, config: EngineConfig) -> Result<Self, StartError> {
        let config = EngineConfig {
            table: table.config(),
            max_wait: clamp(config.max_wait, DEFAULT_MAX_WAIT),
            ..config
        };
        let clock = Clock::starting_at(table.now());
        let seen = table.revision();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                table,
                seen,
                waiters: Registry::new(Tb::CAPACITY),
                timer: TimerState::default(),
                idle_workers: 0,
                floor: clock.at_tick(0),
            }),
            timer_cv: Condvar::new(),
            work_cv: Condvar::new(),
            clock,
            config,
            #[cfg(loom)]
            model_offset: AtomicU64::new(0),
        });
        let timer = Self::spawn_timer(&shared).map_err(|e| StartError::new("timer thread", e))?;
        Ok(Self {
            owner: Arc::new(Owner { shared, timer }),
        })
    }

    #[cfg(not(loom))]
    fn spawn_timer(shared: &Arc<Shared<Tb>>) -> std::io::Result<Option<JoinHandle<()>>> {
        let shared = shared.clone();
        sync::spawn("jobstate-timer".into(), move || shared.run_timer()).map(Some)
    }

    /// Under loom the model runs the timer's rounds itself ([`Engine::model_advance`]), or
    /// starts the timer thread explicitly ([`Engine::model_with_timer_thread`]).
    #[cfg(loom)]
    fn spawn_timer(_shared: &Arc<Shared<Tb>>) -> std::io::Result<Option<JoinHandle<()>>> {
        Ok(None)
    }

    /// The loom model with the engine's real timer thread (a loom thread running the same
    /// loop), which ends when the last engine handle is dropped.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn model_with_timer_thread(config: EngineConfig) -> Self {
        let mut e = Self::new(config);
        let shared = e.owner.shared.clone();
        let timer = sync::spawn("jobstate-timer".into(), move || shared.run_timer()).ok();
        if let Some(owner) = Arc::get_mut(&mut e.owner) {
            owner.timer = timer;
        }
        e
    }

    /// The loom model's clock without the timer's round: time moves on by `by`, and the
    /// timer thread is told to look (as the operating system's timer would wake it).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn model_tick(&self, by: StdDuration) {
        let us = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.shared()
            .model_offset
            .fetch_add(us, sync::Ordering::SeqCst);
        self.lock().timer.kicked = true;
        self.shared().timer_cv.notify_all();
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<Tb>> {
        self.shared().lock()
    }

    /// The settings in force (`table` as the table has it).
    pub fn config(&self) -> &EngineConfig {
        &self.shared().config
    }

    /// The engine's clock: table instants ⇄ monotonic time ⇄ wall-clock time.
    pub fn clock(&self) -> &Clock {
        &self.shared().clock
    }

    /// The current table instant.
    pub fn now(&self) -> Instant {
        self.shared().now()
    }

    /// The wall-clock time of a table instant (for RFC 3339 reporting).
    pub fn to_system_time(&self, at: Instant) -> std::time::SystemTime {
        self.shared().clock.to_system_time(at)
    }

    /// The table instant of a wall-clock time, for timestamp-based long-polls
    /// ([`jobstate::Condition::ModifiedAfter`]).
    pub fn to_instant(&self, at: std::time::SystemTime) -> Instant {
        self.shared().clock.to_instant(at)
    }

    /// Read access to the table under the lock (keep it short: every other caller waits).
    /// A panic in `f` reaches the caller; the engine goes on (the lock's poisoning is
    /// ignored: nothing was changed).
    pub fn with_table<R>(&self, f: impl FnOnce(&Tb) -> R) -> R {
        f(&self.lock().table)
    }

    /// Change the table through any core operation, under the lock, with the current instant;
    /// waiters of the jobs it changed are woken afterwards, once the lock is released. Every
    /// state change of the engine goes through here.
    ///
    /// If `f` panics, whatever it changed before is still committed — its waiters are woken
    /// like any others — and then the panic goes on to the caller.
    pub fn update<R>(&self, f: impl FnOnce(&mut Tb, Instant) -> R) -> R {
        self.update_hinted(None, f)
    }

    /// [`Engine::update`] for an operation on job `hint` (see [`Shared::commit_hinted`]).
    pub(crate) fn update_hinted<R>(
        &self,
        hint: Option<JobId>,
        f: impl FnOnce(&mut Tb, Instant) -> R,
    ) -> R {
        let shared = self.shared();
        let mut wl = WakeList::new();
        let r = {
            let mut st = shared.lock();
            let now = shared.now_locked(&mut st);
            let table = &mut st.table;
            let r = catch_unwind(AssertUnwindSafe(|| f(table, now)));
            shared.commit_hinted(&mut st, &mut wl, hint);
            r
        };
        wl.wake_all();
        match r {
            Ok(r) => r,
            Err(panic) => resume_unwind(panic),
        }
    }

    // ----- clients ------------------------------------------------------------------------

    /// Accept a job (see [`jobstate::JobTable::submit`]). The job is in the table when this
    /// returns. A refusal hands the job back with the reason ([`Refused`]; `?` turns it into a
    /// [`jobstate::SubmitError`]).
    #[allow(clippy::result_large_err)] // the caller's job comes back whole (R-FULL)
    pub fn submit<'a>(&self, job: NewJob<'a, Tb::Spec>) -> Result<JobId, Refused<'a, Tb::Spec>> {
        self.update(|t, now| t.submit(job, now))
    }

    /// The table revision of the latest change (R-VERSION).
    pub fn revision(&self) -> Revision {
        self.lock().table.revision()
    }

    /// Ask a running job to pause at its next checkpoint (R-CONTROL).
    pub fn request_pause(&self, id: JobId) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.request_pause(id, now))
    }

    /// Resume a paused job, or withdraw a pause request (R-CONTROL).
    pub fn request_resume(&self, id: JobId) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.request_resume(id, now))
    }

    /// Cancel a job: at once when queued, at its next checkpoint when running or paused (a
    /// paused worker is woken for it) (R-CONTROL).
    pub fn request_cancel(&self, id: JobId) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.request_cancel(id, now))
    }

    // ----- workers (the worker pool uses these; own worker loops may too) -------------------

    /// Start the oldest runnable job (R-SCHED).
    pub fn start_next(&self) -> Option<JobId> {
        self.update(|t, now| t.start_next(now))
    }

    /// Start this queued job.
    pub fn start(&self, id: JobId) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.start(id, now))
    }

    /// Report progress (0–100 %) and a message; renews the lease.
    pub fn progress(&self, id: JobId, percent: u8, message: &str) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.progress(id, percent, message, now))
    }

    /// Append a log line to the journal.
    pub fn log(&self, id: JobId, line: &str) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.log(id, line, now))
    }

    /// Renew the heartbeat lease (R-DEADLINE).
    pub fn heartbeat(&self, id: JobId) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.heartbeat(id, now))
    }

    /// The worker's checkpoint: applies pending requests, answers what to do. Does not block
    /// (the worker pool's [`crate::JobContext::checkpoint`] blocks while paused).
    pub fn checkpoint(&self, id: JobId) -> Result<Directive, JobError> {
        self.update_hinted(Some(id), |t, now| t.checkpoint(id, now))
    }

    /// The job finished well.
    pub fn succeed(&self, id: JobId, severity: Severity, message: &str) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.succeed(id, severity, message, now))
    }

    /// The job failed with the worker's code and message.
    pub fn fail(&self, id: JobId, code: i32, message: &str) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| t.fail(id, code, message, now))
    }

    /// The job failed for a reason of the adapter's own (see [`jobstate::JobTable::fail_with`]):
    /// a restartable job failed with [`FailReason::Interrupted`] is queued again instead.
    pub fn fail_with(
        &self,
        id: JobId,
        reason: FailReason,
        code: Option<i32>,
        message: &str,
    ) -> Result<(), JobError> {
        self.update_hinted(Some(id), |t, now| {
            t.fail_with(id, reason, code, message, now)
        })
    }

    /// Run the timer sweep now ([`jobstate::JobTable::expire`]): what the timer thread does
    /// when a deadline, lease or retention falls due.
    pub fn run_timers(&self) -> Expired {
        self.update(|t, now| t.expire(now))
    }

    /// How many waits (blocking and async) are registered right now.
    pub fn waiting(&self) -> usize {
        self.lock().waiters.len()
    }

    /// The loom model's clock: time moves on by `by`, and the engine's timer round runs —
    /// job timers (when enabled) and wait deadlines — as the timer thread would then.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn model_advance(&self, by: StdDuration) {
        let us = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.shared()
            .model_offset
            .fetch_add(us, sync::Ordering::SeqCst);
        let mut wl = WakeList::new();
        let _ = self.shared().timer_round(&mut wl);
        wl.wake_all();
    }
}

/// Reading jobs: snapshots (the core's [`Job`] with wall-clock reporting).
impl<S, const T: usize, Tb> Engine<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    pub(crate) fn snapshot(&self, job: Job<S, T>) -> Snapshot<S, T> {
        Snapshot::new(job, self.shared().clock)
    }

    /// A snapshot of the job, or why there is none (R-ID).
    pub fn get(&self, id: JobId) -> Result<Snapshot<S, T>, LookupError> {
        let job = self.lock().table.snapshot(id)?;
        Ok(self.snapshot(job))
    }

    /// Snapshots of every job in the table, oldest first (by submit time, to the millisecond;
    /// jobs submitted in the same millisecond in slot order).
    pub fn list(&self) -> Vec<Snapshot<S, T>> {
        let mut jobs: Vec<Job<S, T>> = self.lock().table.iter().map(|j| Tb::to_job(&j)).collect();
        jobs.sort_by_key(|j| j.created());
        jobs.into_iter().map(|j| self.snapshot(j)).collect()
    }
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};
    use std::time::{Duration as StdDuration, Instant as StdInstant};

    use jobstate::{Condition, NewJob};

    use super::{Engine, EngineConfig, FRESH_BATCH};

    /// Many long waits registered at once are placed in the wheel as they come — the timer
    /// thread is woken each time [`FRESH_BATCH`] of them are left unplaced — not all at the
    /// first deadline, a minute away (where every one of them would be late), nor at the
    /// thread's 30-second safety round.
    #[test]
    #[cfg_attr(miri, ignore = "a timer thread on the real clock")]
    fn the_timer_thread_places_fresh_waits_every_batch_not_at_the_first_deadline() {
        let e: Engine<jobstate::JobTable<u32, 4>> = Engine::new(EngineConfig::default());
        let id = e.submit(NewJob::new(1)).unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let mut held = Vec::new();
        let mut peak = 0;
        let n = 2 * FRESH_BATCH;
        for _ in 0..n {
            let mut f = Box::pin(e.wait_async(id, Condition::Terminal, StdDuration::from_secs(60)));
            assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
            held.push(f);
            peak = peak.max(e.shared().lock().waiters.fresh_len());
        }
        assert_eq!(e.waiting(), n);
        assert!(peak >= FRESH_BATCH - 1, "the fresh list reached {peak}");
        // The timer thread, woken when a batch was left, places it long before the deadlines
        // (60 s) and its safety round (30 s); a bound of 10 s keeps a failure from hanging.
        let bound = StdInstant::now() + StdDuration::from_secs(10);
        while e.shared().lock().waiters.fresh_len() >= FRESH_BATCH {
            assert!(
                StdInstant::now() < bound,
                "a batch of fresh waits left unplaced"
            );
            std::thread::yield_now();
        }
        assert_eq!(e.waiting(), n);
        drop(held);
        assert_eq!(e.waiting(), 0);
    }
}
