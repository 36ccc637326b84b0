//! The engine: the core table behind one lock, with waiters, timers and wall-clock time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use jobstate::{
    clamp_wait, Config, Directive, Expired, FailReason, Instant, Job, JobError, JobId, LookupError,
    NewJob, Refused, Revision, Severity, Table, MAX_WAIT,
};

use crate::clock::Clock;
use crate::registry::Registry;
use crate::snapshot::Snapshot;
#[cfg(loom)]
use crate::sync::AtomicBool;
use crate::sync::{self, Arc, Condvar, Mutex, MutexGuard};

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
    std_duration(clamp_wait(core_duration(timeout), core_duration(max)))
}

/// The timer thread re-checks at least this often, whatever it was told.
#[cfg(not(loom))]
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

/// When the timer thread is due, and whether it must stop.
#[derive(Default)]
pub(crate) struct TimerState {
    /// The job timer the timer thread sleeps until (`None`: nothing due).
    at: Option<Instant>,
    /// When the timer thread wakes next (`None`: it is not asleep).
    #[cfg_attr(loom, allow(dead_code))]
    wake_at: Option<StdInstant>,
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
    /// Deadlines of async waits: (deadline, registry key, token). Entries of waits that
    /// ended first stay until popped or pruned.
    #[cfg_attr(loom, allow(dead_code))]
    deadlines: BinaryHeap<Reverse<(StdInstant, usize, u64)>>,
    /// How many entries of `deadlines` belong to waits that already ended.
    #[cfg_attr(loom, allow(dead_code))]
    stale: usize,
}

/// What engine handles share.
pub(crate) struct Shared<Tb: Table> {
    pub(crate) state: Mutex<State<Tb>>,
    timer_cv: Condvar,
    /// Idle workers wait here; notified when a job is runnable.
    pub(crate) work_cv: Condvar,
    pub(crate) clock: Clock,
    pub(crate) config: EngineConfig,
    /// The loom model's clock: set when every pending wait's timeout has passed.
    #[cfg(loom)]
    pub(crate) time_up: AtomicBool,
}

/// Stops the timer thread when the last engine handle goes.
struct Owner<Tb: Table> {
    shared: Arc<Shared<Tb>>,
    timer: Option<std::thread::JoinHandle<()>>,
}

impl<Tb: Table> Drop for Owner<Tb> {
    fn drop(&mut self) {
        {
            let mut st = sync::lock(&self.shared.state);
            st.timer.stop = true;
            self.shared.timer_cv.notify_all();
        }
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
    pub(crate) shared: Arc<Shared<Tb>>,
    _owner: Arc<Owner<Tb>>,
}

impl<Tb: Table> Clone for Engine<Tb> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            _owner: self._owner.clone(),
        }
    }
}

impl<Tb: Table> std::fmt::Debug for Engine<Tb> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("capacity", &Tb::CAPACITY)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Build a table in place on the heap. `Table::new` returns the table by value (a 64-byte
/// record and two `T`-byte texts a slot), which can overflow a thread's stack for large `N` in
/// an unoptimised build, so large tables are built on a helper thread with a stack big enough
/// for them.
pub(crate) fn boxed_table<Tb: Table + Send>(config: Config) -> Box<Tb> {
    let size = std::mem::size_of::<Tb>();
    if size <= 64 * 1024 {
        return build_here(config);
    }
    let stack = size.saturating_mul(4).saturating_add(1 << 20);
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("jobstate-alloc".into())
            .stack_size(stack)
            .spawn_scoped(s, || build_here(config))
            .ok()
            .and_then(|h| h.join().ok())
    })
    .unwrap_or_else(|| build_here(config))
}

/// The table is built in this function's own frame, which only the thread that calls it
/// pays for (kept out of line so `boxed_table`'s frame stays small).
#[inline(never)]
fn build_here<Tb: Table>(config: Config) -> Box<Tb> {
    Box::new(Tb::new(config))
}

impl<Tb: EngineTable> Shared<Tb> {
    /// After a change to the table: learn from the journal which jobs changed and wake
    /// exactly their waiters whose condition now holds, the table watchers, an idle worker if
    /// a job is runnable, and the timer thread if something falls due sooner than it planned.
    pub(crate) fn commit(&self, st: &mut State<Tb>) {
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
        let mut wake = |id: JobId, waiters: &mut Registry<Box<Tb::Job>>| {
            if !waiters.is_empty() {
                waiters.notify_job(id, |condition| decide(table, id, condition));
            }
            if timers {
                if let Some(t) = timer_of(table, id) {
                    due = Some(due.map_or(t, |d| d.min(t)));
                }
            }
        };
        match table.changed_since(*seen) {
            Ok(changed) => {
                for id in changed {
                    wake(id, waiters);
                }
            }
            Err(_compacted) => {
                // Too far behind to know which jobs changed: re-check every waiter, and let
                // the timer thread re-plan.
                for id in waiters.watched_jobs() {
                    wake(id, waiters);
                }
                due = Some(Instant::from_ticks(0));
            }
        }
        waiters.notify_table(revision);
        *seen = revision;
        if *idle_workers > 0 && table.peek_runnable().is_some() {
            self.work_cv.notify_one();
        }
        if let Some(t) = due {
            if timer.at.is_none_or(|at| t < at) {
                timer.at = Some(t);
                self.timer_cv.notify_one();
            }
        }
    }

    /// The timer thread: sleep until the table's next job timer or the earliest async wait
    /// deadline (or until a change makes something due sooner); then run the job timers
    /// (`expire`, when enabled) and wake the async waits whose deadline passed.
    #[cfg(not(loom))]
    fn run_timer(&self) {
        let mut st = sync::lock(&self.state);
        loop {
            if st.timer.stop {
                return;
            }
            let mut wake = StdInstant::now().checked_add(TIMER_SAFETY_PERIOD);
            if self.config.timer_thread {
                st.table.expire(self.clock.now());
                self.commit(&mut st);
                let next = st.table.next_timer();
                st.timer.at = next;
                if let Some(t) = next {
                    let t = self.clock.std_instant_of(t);
                    wake = Some(wake.map_or(t, |w| w.min(t)));
                }
            }
            let now = StdInstant::now();
            let State {
                waiters,
                deadlines,
                stale,
                ..
            } = &mut *st;
            while let Some(Reverse((at, key, token))) = deadlines.peek().copied() {
                if at > now {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                    break;
                }
                deadlines.pop();
                if !waiters.expire(key, token) {
                    *stale = stale.saturating_sub(1);
                }
            }
            st.timer.wake_at = wake;
            let sleep = wake.map_or(TIMER_SAFETY_PERIOD, |w| w.saturating_duration_since(now));
            st = sync::wait_timeout(&self.timer_cv, st, sleep.max(StdDuration::from_micros(50)));
        }
    }
}

/// The async waits' deadlines (they touch only the registry and the heap).
impl<Tb: Table> Shared<Tb> {
    /// An async wait registered with this deadline: the timer thread wakes it then. Wakes
    /// the timer thread only if it planned to sleep past the deadline.
    #[cfg(not(loom))]
    pub(crate) fn add_deadline(&self, st: &mut State<Tb>, at: StdInstant, key: usize, token: u64) {
        st.deadlines.push(Reverse((at, key, token)));
        if st.timer.wake_at.is_none_or(|w| at < w) {
            st.timer.wake_at = Some(at);
            self.timer_cv.notify_one();
        }
    }

    /// An async wait with a deadline ended before it: its heap entry is stale now. When
    /// stale entries are the majority, drop them (amortised O(1) per wait).
    #[cfg(not(loom))]
    pub(crate) fn forget_deadline(&self, st: &mut State<Tb>) {
        st.stale = st.stale.saturating_add(1);
        if st.stale > 64 && st.stale.saturating_mul(2) > st.deadlines.len() {
            let State {
                waiters, deadlines, ..
            } = &mut *st;
            deadlines.retain(|Reverse((_, key, token))| waiters.is_live(*key, *token));
            st.stale = 0;
        }
    }
}

/// A waiter's answer when `id` changed: `Some` once its condition holds or the job is gone.
fn decide<Tb: Table>(
    table: &Tb,
    id: JobId,
    condition: jobstate::Condition,
) -> Option<Result<Box<Tb::Job>, LookupError>>
where
    Tb::Spec: Clone,
{
    match table.check(id, condition) {
        Ok(Some(job)) => Some(Ok(Box::new(Tb::to_job(&job)))),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

/// The timer a changed job arms now, if any: its deadline or lease while running or paused,
/// the end of its backoff while queued for a retry, the end of its retention once terminal. A
/// change only ever brings a timer forward through one of these, so the timer thread is woken
/// when one falls before what it planned.
fn timer_of<Tb: Table>(table: &Tb, id: JobId) -> Option<Instant> {
    let job = table.get(id).ok()?;
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
    /// [`EngineConfig::timer_thread`] is off; async wait timeouts always).
    pub fn new(config: EngineConfig) -> Self {
        Self::from_boxed_table(boxed_table(config.table), config)
    }

    /// An engine over an existing table, for example one restored from disk. The engine's
    /// clock continues from the table's newest instant ([`Table::now`]), which maps to the
    /// wall-clock time of this call. `config.table` is ignored: the table keeps its own.
    pub fn from_table(table: Tb, config: EngineConfig) -> Self {
        Self::from_boxed_table(Box::new(table), config)
    }

    /// [`Engine::from_table`] for a table already on the heap.
    pub fn from_boxed_table(table: Box<Tb>, config: EngineConfig) -> Self {
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
                deadlines: BinaryHeap::new(),
                stale: 0,
            }),
            timer_cv: Condvar::new(),
            work_cv: Condvar::new(),
            clock,
            config,
            #[cfg(loom)]
            time_up: AtomicBool::new(false),
        });
        let timer = Self::spawn_timer(&shared);
        Self {
            shared: shared.clone(),
            _owner: Arc::new(Owner { shared, timer }),
        }
    }

    #[cfg(not(loom))]
    fn spawn_timer(shared: &Arc<Shared<Tb>>) -> Option<std::thread::JoinHandle<()>> {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("jobstate-timer".into())
            .spawn(move || shared.run_timer())
            .ok()
    }

    /// Loom explores every interleaving; an endless timer thread would make that infinite,
    /// so the model runs without it.
    #[cfg(loom)]
    fn spawn_timer(_shared: &Arc<Shared<Tb>>) -> Option<std::thread::JoinHandle<()>> {
        None
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<Tb>> {
        sync::lock(&self.shared.state)
    }

    /// The settings in force (`table` as the table has it).
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The engine's clock: table instants ⇄ monotonic time ⇄ wall-clock time.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// The current table instant.
    pub fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    /// The wall-clock time of a table instant (for RFC 3339 reporting).
    pub fn to_system_time(&self, at: Instant) -> std::time::SystemTime {
        self.shared.clock.to_system_time(at)
    }

    /// The table instant of a wall-clock time, for timestamp-based long-polls
    /// ([`jobstate::Condition::ModifiedAfter`]).
    pub fn to_instant(&self, at: std::time::SystemTime) -> Instant {
        self.shared.clock.to_instant(at)
    }

    /// Read access to the table under the lock (keep it short: every other caller waits).
    pub fn with_table<R>(&self, f: impl FnOnce(&Tb) -> R) -> R {
        f(&self.lock().table)
    }

    /// Change the table through any core operation, under the lock, with the current instant;
    /// waiters of the jobs it changed are woken afterwards. Every state change of the engine
    /// goes through here.
    pub fn update<R>(&self, f: impl FnOnce(&mut Tb, Instant) -> R) -> R {
        let mut st = self.lock();
        let now = self.shared.clock.now();
        let r = f(&mut st.table, now);
        self.shared.commit(&mut st);
        r
    }

    // ----- clients ------------------------------------------------------------------------

    /// Accept a job (see [`jobstate::JobTable::submit`]). The job is in the table when this
    /// returns. A refusal hands the job back with the reason ([`Refused`]; `?` turns it into a
    /// [`jobstate::SubmitError`]).
    pub fn submit<'a>(&self, job: NewJob<'a, Tb::Spec>) -> Result<JobId, Refused<'a, Tb::Spec>> {
        self.update(|t, now| t.submit(job, now))
    }

    /// The table revision of the latest change (R-VERSION).
    pub fn revision(&self) -> Revision {
        self.lock().table.revision()
    }

    /// Ask a running job to pause at its next checkpoint (R-CONTROL).
    pub fn request_pause(&self, id: JobId) -> Result<(), JobError> {
        self.update(|t, now| t.request_pause(id, now))
    }

    /// Resume a paused job, or withdraw a pause request (R-CONTROL).
    pub fn request_resume(&self, id: JobId) -> Result<(), JobError> {
        self.update(|t, now| t.request_resume(id, now))
    }

    /// Cancel a job: at once when queued, at its next checkpoint when running or paused (a
    /// paused worker is woken for it) (R-CONTROL).
    pub fn request_cancel(&self, id: JobId) -> Result<(), JobError> {
        self.update(|t, now| t.request_cancel(id, now))
    }

    // ----- workers (the worker pool uses these; own worker loops may too) -------------------

    /// Start the oldest runnable job (R-SCHED).
    pub fn start_next(&self) -> Option<JobId> {
        self.update(|t, now| t.start_next(now))
    }

    /// Start this queued job.
    pub fn start(&self, id: JobId) -> Result<(), JobError> {
        self.update(|t, now| t.start(id, now))
    }

    /// Report progress (0–100 %) and a message; renews the lease.
    pub fn progress(&self, id: JobId, percent: u8, message: &str) -> Result<(), JobError> {
        self.update(|t, now| t.progress(id, percent, message, now))
    }

    /// Append a log line to the journal.
    pub fn log(&self, id: JobId, line: &str) -> Result<(), JobError> {
        self.update(|t, now| t.log(id, line, now))
    }

    /// Renew the heartbeat lease (R-DEADLINE).
    pub fn heartbeat(&self, id: JobId) -> Result<(), JobError> {
        self.update(|t, now| t.heartbeat(id, now))
    }

    /// The worker's checkpoint: applies pending requests, answers what to do. Does not block
    /// (the worker pool's [`crate::JobContext::checkpoint`] blocks while paused).
    pub fn checkpoint(&self, id: JobId) -> Result<Directive, JobError> {
        self.update(|t, now| t.checkpoint(id, now))
    }

    /// The job finished well.
    pub fn succeed(&self, id: JobId, severity: Severity, message: &str) -> Result<(), JobError> {
        self.update(|t, now| t.succeed(id, severity, message, now))
    }

    /// The job failed with the worker's code and message.
    pub fn fail(&self, id: JobId, code: i32, message: &str) -> Result<(), JobError> {
        self.update(|t, now| t.fail(id, code, message, now))
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
        self.update(|t, now| t.fail_with(id, reason, code, message, now))
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

    /// The loom model's clock: every pending wait's timeout passes now. Waiters are woken
    /// without an answer, as the operating system's timer would wake them.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn model_time_out_waiters(&self) {
        self.shared.time_up.store(true, sync::Ordering::SeqCst);
        let mut st = self.lock();
        st.waiters.poke_all();
    }
}

/// Reading jobs: snapshots (the core's [`Job`] with wall-clock reporting).
impl<S, const T: usize, Tb> Engine<Tb>
where
    Tb: EngineTable + Table<Spec = S, Job = Job<S, T>>,
{
    pub(crate) fn snapshot(&self, job: Job<S, T>) -> Snapshot<S, T> {
        Snapshot::new(job, self.shared.clock)
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
