//! The scenarios: each runs on its own shared table, with worker tasks doing the jobs and the
//! scenario itself acting as the client (submit, request, long-poll).
//!
//! Every table is a `static` built with `SharedTable::new(Config::DEFAULT)`: all-zero, in
//! `.bss`. The two that keep jobs for another retention set it at start-up
//! ([`configure`]), through `update` and `JobTable::set_config`.

use core::fmt::Write as _;
use core::mem::size_of;

use embassy_executor::{SpawnError, SpawnToken, Spawner};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::Timer;
use jobstate::flash::{AbStore, RamFlash};
use jobstate::shared::{SharedError, SharedTable};
use jobstate::{
    Condition, Config, Detail, Directive, Duration, FailReason, Instant, Job, JobError, JobId,
    JobOptions, JobTable, LookupError, NewJob, Outcome, Revision, Severity, State, SubmitError,
    Submitted,
};

use crate::hostfile::HostFile;
use crate::{check, stack};

/// What a job does: `steps` steps of `step_ms` each, then success (or failure if `fail`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, defmt::Format, serde::Serialize, serde::Deserialize,
)]
pub struct Op {
    steps: u8,
    step_ms: u16,
    fail: bool,
}

const fn op(steps: u8, step_ms: u16) -> Op {
    Op {
        steps,
        step_ms,
        fail: false,
    }
}

/// The capacities, named once: 4 slots, 32-byte texts, 16 journal events, a 128-byte log
/// ring; dependency edges and tombstones default to 4.
type Jobs = JobTable<Op, 4, 32, 16, 128>;
/// Shared between tasks, with 4 waiter registrations.
type Table = SharedTable<CriticalSectionRawMutex, Jobs, 4>;
type Snapshot = Job<Op, 32>;

const LONG: Duration = Duration::from_secs(10);

// All-zero, so all in `.bss`; ORACLE and FULL get their retention in `configure`.
static ORACLE: Table = SharedTable::new(Config::DEFAULT);
static LONGPOLL: Table = SharedTable::new(Config::DEFAULT);
static CONTROL: Table = SharedTable::new(Config::DEFAULT);
static FULL: Table = SharedTable::new(Config::DEFAULT);
static RETURN: Table = SharedTable::new(Config::DEFAULT);
/// Restored in place from RETURN's image (scenario 7).
static RESTORED: Table = SharedTable::new(Config::DEFAULT);
/// Filled at given instants and written to the host (scenario 8).
static EXPORT: Table = SharedTable::new(Config::DEFAULT);

const ORACLE_RETENTION: Duration = Duration::from_secs(60);
const FULL_RETENTION: Duration = Duration::from_millis(100);

/// Run every scenario; results go to [`check`].
pub async fn run(spawner: Spawner) {
    configure();
    for table in [&ORACLE, &CONTROL, &FULL, &RETURN, &RESTORED] {
        spawn(spawner, worker(table), "worker");
    }
    spawn(spawner, timers(&FULL), "timers");
    spawn(spawner, timers(&CONTROL), "timers");
    footprint();
    oracle_dependencies().await;
    long_poll(spawner).await;
    pause_resume_cancel().await;
    deadline().await;
    table_full().await;
    submit_and_wait().await;
    persistence().await;
}

fn spawn<S>(spawner: Spawner, token: Result<SpawnToken<S>, SpawnError>, what: &str) {
    match token {
        Ok(token) => spawner.spawn(token),
        Err(_) => crate::fatal(what),
    }
}

/// The static tables stay all-zero (`Config::DEFAULT`, `.bss`); the ones that keep jobs for
/// another retention set it here, before any job is submitted.
fn configure() {
    let set = |table: &Table, retention| {
        let _ = table.update(|t| t.set_config(Config { retention }));
        table.read(|t| t.config().retention) == Ok(retention)
    };
    check(
        "config: ORACLE retention set at start-up",
        set(&ORACLE, ORACLE_RETENTION),
    );
    check(
        "config: FULL retention set at start-up",
        set(&FULL, FULL_RETENTION),
    );
}

/// Sizes of the core's types on this target, for `scripts/footprint`.
fn footprint() {
    // Per slot, spec `()`, no texts, no pools: the record, the spec entry (2 bytes: the slot
    // index) and the two 2-byte text lengths.
    type Bare<const N: usize> = JobTable<(), N, 0, 0, 0, 0, 0>;
    let record = (size_of::<Bare<32>>() - size_of::<Bare<16>>()) / 16 - 2 - 4;
    // Per slot with the defaults (T = 64, E = K = N) and spec `u32`.
    let slot = (size_of::<JobTable<u32, 32>>() - size_of::<JobTable<u32, 16>>()) / 16;
    // Per journal event.
    type Journal<const J: usize> = JobTable<(), 1, 0, J, 0, 0, 0>;
    let event = (size_of::<Journal<32>>() - size_of::<Journal<16>>()) / 16;
    println!(
        "footprint: record={} slot={} event={} job={} table16={} shared_table={}",
        record,
        slot,
        event,
        size_of::<Job<u32, 64>>(),
        size_of::<JobTable<u32, 16>>(),
        size_of::<Table>(),
    );
}

fn now() -> Instant {
    Instant::now()
}

fn snapshot(table: &Table, id: JobId) -> Option<Snapshot> {
    table.snapshot(id).ok()
}

/// Wait until the job leaves `state` (or `within` passes); the snapshot then.
async fn wait_leaves(table: &Table, id: JobId, state: State, within: Duration) -> Option<Snapshot> {
    let mut job = snapshot(table, id)?;
    while job.state() == state {
        let seen = table
            .wait(
                id,
                Condition::StateChangedSince(job.state_revision()),
                within,
            )
            .await
            .ok()?;
        if seen.timed_out {
            return Some(seen.job);
        }
        job = seen.job;
    }
    Some(job)
}

async fn wait_terminal(table: &Table, id: JobId, within: Duration) -> Option<Snapshot> {
    table
        .wait(id, Condition::Terminal, within)
        .await
        .ok()
        .map(|w| w.job)
}

fn failed_with(job: &Option<Snapshot>, reason: FailReason) -> bool {
    matches!(
        job.as_ref().and_then(|j| j.outcome()),
        Some(Outcome::Failed { reason: r, .. }) if r == reason
    )
}

/// Ended by the table itself: empty message, the reason in `detail()`.
fn table_made(job: &Option<Snapshot>, detail: Detail) -> bool {
    job.as_ref()
        .is_some_and(|j| j.message().is_empty() && j.detail() == Some(detail))
}

fn succeeded(job: &Option<Snapshot>) -> bool {
    job.as_ref().map(|j| j.state()) == Some(State::Succeeded)
}

/// A worker: start the oldest runnable job, do its steps with progress and checkpoints, end it.
#[embassy_executor::task(pool_size = 5)]
async fn worker(table: &'static Table) {
    loop {
        let seen = table.revision();
        let next = table.update(|t| {
            t.start_next(now())
                .and_then(|id| t.get(id).ok().map(|j| (id, *j.spec())))
        });
        match next {
            Ok(Some((id, op))) => run_job(table, id, op).await,
            Ok(None) => {
                let _ = table.changed(seen, LONG).await;
            }
            Err(_) => Timer::after_millis(1).await,
        }
    }
}

async fn run_job(table: &Table, id: JobId, op: Op) {
    for step in 1..=op.steps {
        Timer::after_millis(u64::from(op.step_ms)).await;
        let percent = u8::try_from(u32::from(step) * 100 / u32::from(op.steps)).unwrap_or(100);
        let _ = table.progress(id, percent.min(99), "working", now());
        // Parks here while the job is paused; answers Canceled once canceled, an error once
        // the table ended it (deadline, lease).
        match table.checkpoint(id).await {
            Ok(Directive::Continue) => {}
            _ => return,
        }
    }
    let _ = if op.fail {
        table.fail(id, 42, "backend error", now())
    } else {
        table.succeed(id, Severity::Normal, "done", now())
    };
}

/// Long-poll helper task: report progress on a job after a delay.
#[embassy_executor::task]
async fn reporter(table: &'static Table, id: JobId, after_ms: u64) {
    Timer::after_millis(after_ms).await;
    let _ = table.progress(id, 60, "reported", now());
}

/// Timer task: runs `expire` when deadlines, leases or retention come due.
#[embassy_executor::task(pool_size = 2)]
async fn timers(table: &'static Table) {
    table.run_timers().await;
}

/// 1. Oracle's case: "add backend server" depends on "create backend set"; it starts only
///    after the set succeeds, and ends `DependencyFailed` when the set fails. Any action on a
///    terminal job answers `AlreadyTerminal`.
async fn oracle_dependencies() {
    let t = &ORACLE;
    check(
        "oracle: a new table is in epoch 0",
        t.read(|t| t.epoch()) == Ok(0),
    );
    let set = t.submit(
        NewJob::new(op(3, 10)).description("create backend set bs1"),
        now(),
    );
    let Ok(set) = set else {
        return check("oracle: submit set", false);
    };
    let deps = [set];
    let server = t.submit(
        NewJob::new(op(2, 10))
            .description("add backend server 10.0.0.3")
            .depends_on(&deps),
        now(),
    );
    let Ok(server) = server else {
        return check("oracle: submit server", false);
    };
    let server_done = wait_terminal(t, server, Duration::from_secs(2)).await;
    let set_done = snapshot(t, set);
    check("oracle: set succeeded", succeeded(&set_done));
    check("oracle: server succeeded", succeeded(&server_done));
    let ordered = match (&set_done, &server_done) {
        (Some(s), Some(v)) => matches!((s.ended(), v.started()), (Some(e), Some(b)) if b >= e),
        _ => false,
    };
    check("oracle: server started after set ended", ordered);
    // Times are kept in whole milliseconds: 3 steps of 10 ms took at least 30 ms.
    check(
        "oracle: set ran its 3 x 10 ms",
        set_done.as_ref().is_some_and(|j| {
            matches!((j.started(), j.ended()), (Some(b), Some(e))
                if e - b >= Duration::from_millis(30))
        }),
    );

    // Any action on a terminal job answers AlreadyTerminal.
    let terminal = Err(SharedError::Job(JobError::AlreadyTerminal));
    check(
        "oracle: start of a terminal job: AlreadyTerminal",
        t.start(set, now()) == terminal,
    );
    check(
        "oracle: progress of a terminal job: AlreadyTerminal",
        t.progress(set, 5, "late", now()) == terminal,
    );
    check(
        "oracle: cancel of a terminal job: AlreadyTerminal",
        t.request_cancel(set, now()) == terminal,
    );
    check(
        "oracle: fail of a terminal job: AlreadyTerminal",
        t.fail(set, 1, "late", now()) == terminal,
    );
    check(
        "oracle: checkpoint of a terminal job: AlreadyTerminal",
        t.checkpoint(set).await == Err(SharedError::Job(JobError::AlreadyTerminal)),
    );

    let bad = t.submit(
        NewJob::new(Op {
            fail: true,
            ..op(1, 10)
        })
        .description("create backend set bs2"),
        now(),
    );
    let Ok(bad) = bad else {
        return check("oracle: submit failing set", false);
    };
    let deps = [bad];
    let dependent = t.submit(NewJob::new(op(1, 10)).depends_on(&deps), now());
    let Ok(dependent) = dependent else {
        return check("oracle: submit dependent", false);
    };
    let dep_done = wait_terminal(t, dependent, Duration::from_secs(2)).await;
    let bad_done = snapshot(t, bad);
    check(
        "oracle: failing set failed with the worker's message",
        failed_with(&bad_done, FailReason::Error)
            && bad_done
                .as_ref()
                .is_some_and(|j| j.message() == "backend error" && j.detail().is_none()),
    );
    check(
        "oracle: dependent DependencyFailed",
        failed_with(&dep_done, FailReason::DependencyFailed),
    );
    check(
        "oracle: dependent's message empty, detail names the dependency",
        table_made(&dep_done, Detail::Dependency(bad)),
    );
    check(
        "oracle: dependent never started",
        dep_done.is_some_and(|j| j.started().is_none()),
    );
}

/// 2. A long-poll that times out with the unchanged snapshot, and one woken early by another
///    task's progress report.
async fn long_poll(spawner: Spawner) {
    let t = &LONGPOLL;
    let Ok(id) = t.submit(NewJob::new(op(1, 1)).description("long-poll target"), now()) else {
        return check("long-poll: submit", false);
    };
    let _ = t.start(id, now());
    let before = snapshot(t, id);
    let rev = before.as_ref().map_or(Revision::ZERO, |j| j.revision());
    let t0 = now();
    let timeout = Duration::from_millis(100);
    let quiet = t.wait(id, Condition::ChangedSince(rev), timeout).await;
    let waited = now() - t0;
    check(
        "long-poll: quiet wait times out with the unchanged snapshot",
        matches!(&quiet, Ok(w) if w.timed_out && Some(&w.job) == before.as_ref()),
    );
    check("long-poll: not before its timeout", waited >= timeout);
    check(
        "long-poll: a timed-out wait holds no registration",
        t.registered_waiters() == 0,
    );

    spawn(spawner, reporter(&LONGPOLL, id, 30), "reporter");
    let t0 = now();
    let woken = t
        .wait(id, Condition::ChangedSince(rev), Duration::from_secs(5))
        .await;
    let waited = now() - t0;
    check(
        "long-poll: woken by progress from another task",
        matches!(&woken, Ok(w) if !w.timed_out && w.job.progress() == 60),
    );
    check(
        "long-poll: the job read in place (inspect) shows it",
        t.inspect(id, |j| (j.progress(), j.message() == "reported")) == Ok((60, true)),
    );
    check(
        "long-poll: woken early",
        waited >= Duration::from_millis(30) && waited < Duration::from_secs(1),
    );
}

/// 3. Pause → the worker's async checkpoint parks it → resume → it continues to success;
///    cancel of a paused job ends it `Canceled`.
async fn pause_resume_cancel() {
    let t = &CONTROL;
    for cancel in [false, true] {
        let Ok(id) = t.submit(NewJob::new(op(10, 10)).description("copy volume"), now()) else {
            return check("control: submit", false);
        };
        let running = wait_leaves(t, id, State::Queued, Duration::from_secs(1)).await;
        check(
            "control: worker started it",
            running.is_some_and(|j| j.state() == State::Running),
        );
        Timer::after_millis(15).await;
        check(
            "control: pause requested",
            t.request_pause(id, now()).is_ok(),
        );
        let paused = wait_leaves(t, id, State::Running, Duration::from_secs(1)).await;
        check(
            "control: checkpoint paused it",
            paused.as_ref().is_some_and(|j| j.state() == State::Paused),
        );
        // Parked: nothing changes while paused.
        Timer::after_millis(50).await;
        let still = snapshot(t, id);
        check(
            "control: worker parked while paused",
            matches!((&paused, &still), (Some(a), Some(b)) if a.revision() == b.revision()),
        );
        if cancel {
            check(
                "control: cancel requested",
                t.request_cancel(id, now()).is_ok(),
            );
            let done = wait_terminal(t, id, Duration::from_secs(1)).await;
            check(
                "control: paused job canceled",
                failed_with(&done, FailReason::Canceled),
            );
            check(
                "control: canceled: message empty, detail Canceled",
                table_made(&done, Detail::Canceled),
            );
        } else {
            check("control: resumed", t.request_resume(id, now()).is_ok());
            let done = wait_terminal(t, id, Duration::from_secs(2)).await;
            check(
                "control: resumed job continued to success",
                succeeded(&done),
            );
        }
    }
}

/// 4. A run timeout: the timer task fails the job `TimedOut` at its deadline, with an empty
///    message and `Detail::Deadline`; its worker's next checkpoint stops it.
async fn deadline() {
    let t = &CONTROL;
    let options = JobOptions {
        run_timeout: Some(Duration::from_millis(60)),
        ..JobOptions::DEFAULT
    };
    let Ok(id) = t.submit(
        NewJob::new(op(20, 20)).description("slow").options(options),
        now(),
    ) else {
        return check("deadline: submit", false);
    };
    let done = wait_terminal(t, id, Duration::from_secs(2)).await;
    check(
        "deadline: timer task failed it TimedOut",
        failed_with(&done, FailReason::TimedOut),
    );
    check(
        "deadline: message empty, detail Deadline",
        table_made(&done, Detail::Deadline),
    );
    check(
        "deadline: at its run timeout (ms)",
        done.as_ref().is_some_and(|j| {
            matches!((j.started(), j.ended()), (Some(b), Some(e))
                if e - b >= Duration::from_millis(60) && e - b < Duration::from_millis(200))
        }),
    );
}

/// 5. A table full of live jobs refuses a submit with `TableFull`; once one has finished and
///    its retention passed, the timer task removes it and a submit is accepted again.
async fn table_full() {
    let t = &FULL;
    let first = t.submit(NewJob::new(op(2, 10)).description("short"), now());
    let mut all = true;
    for _ in 0..3 {
        all &= t
            .submit(NewJob::new(op(20, 20)).description("long"), now())
            .is_ok();
    }
    check("full: four live jobs accepted", first.is_ok() && all);
    let full = Err(SharedError::Submit(SubmitError::TableFull));
    check(
        "full: fifth refused with TableFull",
        t.submit(NewJob::new(op(1, 1)), now()) == full,
    );
    check(
        "full: no slot frees while all are live",
        t.read(|t| t.next_free_at()) == Ok(None),
    );
    let refused = t.try_submit(NewJob::new(op(7, 7)), now());
    check(
        "full: try_submit hands the job back",
        refused.err().map(|r| r.into_spec()) == Some(op(7, 7)),
    );
    let Ok(first) = first else { return };
    let done = wait_terminal(t, first, Duration::from_secs(1)).await;
    check("full: first job finished", succeeded(&done));
    check(
        "full: still full within retention",
        t.submit(NewJob::new(op(1, 1)), now()) == full,
    );
    let frees = done
        .as_ref()
        .and_then(|j| j.ended())
        .map(|e| e + FULL_RETENTION);
    check(
        "full: a slot frees when its retention ends",
        frees.is_some() && t.read(|t| t.next_free_at()) == Ok(frees),
    );
    Timer::after_millis(110).await;
    let gone = t.read(|t| t.get(first).err()).ok().flatten();
    check(
        "full: timer task removed it after retention, tombstone kept",
        matches!(gone, Some(LookupError::Expired(Some(ts))) if ts.state() == State::Succeeded),
    );
    check(
        "full: submit accepted after retention",
        t.submit(NewJob::new(op(1, 1)).description("after"), now())
            .is_ok(),
    );
}

/// 6. Submit-and-wait with a return timeout: a short job answers Completed, a long one
///    Accepted (and is in the table).
async fn submit_and_wait() {
    let t = &RETURN;
    let quick = t
        .submit_and_wait(NewJob::new(op(2, 10)), Duration::from_millis(500), now())
        .await;
    check(
        "return: short job Completed",
        matches!(&quick, Ok(Submitted::Completed(j)) if j.state() == State::Succeeded),
    );
    let slow = t
        .submit_and_wait(NewJob::new(op(10, 50)), Duration::from_millis(100), now())
        .await;
    let accepted = match &slow {
        Ok(Submitted::Accepted(j)) => Some(j.id()),
        _ => None,
    };
    check("return: long job Accepted", accepted.is_some());
    check(
        "return: accepted job is in the table and live",
        accepted
            .and_then(|id| snapshot(t, id))
            .is_some_and(|j| !j.is_terminal()),
    );
}

// ----- persistence -------------------------------------------------------------------------------

/// A job spec encodes to at most 5 bytes with postcard (1 + 3 + 1).
const SPEC_MAX: usize = 5;
/// The A/B store: two 2 KiB slots in a 4 KiB RAM "flash" (1 KiB erase blocks, 4-byte writes).
const FLASH_SIZE: usize = 4096;
const SLOT: u32 = 2048;
type Flash = RamFlash<FLASH_SIZE, 4, 1024>;
/// The record buffer: the image bound of this table type plus the record header.
const BUF: usize = AbStore::<Flash>::buffer_len(Jobs::image_size_bound(SPEC_MAX));
const _: () = assert!(BUF <= SLOT as usize, "an image must fit an A/B slot");

/// 7 and 8: restore in place, and an image for the host.
async fn persistence() {
    // Both live across the awaits below, so they are kept in this task's future (in `.bss`),
    // not on the stack.
    let mut flash = Flash::new();
    let mut buf = [0u8; BUF];
    restore(&mut flash, &mut buf).await;
    export(&mut buf);
}

/// 7. Save RETURN's table to an A/B store (one job done, one running, one waiting for it),
///    "power-cycle", and restore it in place into the static RESTORED inside `update` (no
///    table-sized temporary), measuring the stack that takes.
async fn restore(flash: &mut Flash, buf: &mut [u8]) {
    let t = &RETURN;
    let running = t.read(|t| {
        t.iter()
            .find(|j| j.state() == State::Running)
            .map(|j| j.id())
    });
    let Ok(Some(running)) = running else {
        return check("restore: RETURN has a running job", false);
    };
    let done = t.read(|t| {
        t.iter()
            .find(|j| j.state() == State::Succeeded)
            .map(|j| j.id())
    });
    let Ok(Some(done)) = done else {
        return check("restore: RETURN has a finished job", false);
    };
    let deps = [running];
    let Ok(waiting) = t.submit(NewJob::new(op(1, 1)).depends_on(&deps), now()) else {
        return check("restore: submit a dependent", false);
    };
    let before = t.read(|t| (t.revision(), t.epoch()));
    let Ok((saved_revision, saved_epoch)) = before else {
        return check("restore: read RETURN", false);
    };

    let Ok(mut store) = AbStore::new(&mut *flash, 0, SLOT) else {
        return check("restore: A/B store layout", false);
    };
    let mut saved = None;
    let encode = stack::measure(|| saved = Some(t.read(|t| store.save_table(t, &mut *buf))));
    check(
        "restore: RETURN saved to the A/B store",
        matches!(saved, Some(Ok(Ok(1)))),
    );

    // The power cycle: a new store over the same flash, and RESTORED, a fresh static; the
    // image comes back in place.
    let Ok(mut store) = AbStore::new(&mut *flash, 0, SLOT) else {
        return check("restore: A/B store layout", false);
    };
    let mut report = None;
    let restore = stack::measure(|| {
        report = Some(RESTORED.update(|r| store.restore_into(r, &mut *buf, now())));
    });
    println!(
        "stack: save_table {} B, restore_into (in place, inside update) {} B",
        encode, restore
    );
    let report = match report {
        Some(Ok(Ok(Some(report)))) => report,
        _ => return check("restore: restore_into", false),
    };
    check(
        "restore: 3 jobs, the running one interrupted",
        report.jobs == 3 && report.interrupted == 1,
    );
    check(
        "restore: epoch advanced",
        RESTORED.read(|r| r.epoch()) == Ok(saved_epoch + 1),
    );
    check(
        "restore: revisions carry on past the saved one",
        RESTORED.revision() > saved_revision,
    );
    check(
        "restore: the store saved the restored table (new epoch durable)",
        store.scan().ok().flatten().map(|n| n.seq) == Some(2),
    );
    let gone = |job: &Option<Snapshot>, reason, detail| {
        failed_with(job, reason) && table_made(job, detail)
    };
    check(
        "restore: finished job kept, same id",
        succeeded(&snapshot(&RESTORED, done)),
    );
    check(
        "restore: running job failed Interrupted (empty message, detail)",
        gone(
            &snapshot(&RESTORED, running),
            FailReason::Interrupted,
            Detail::Interrupted,
        ),
    );
    check(
        "restore: its dependent failed with it",
        gone(
            &snapshot(&RESTORED, waiting),
            FailReason::DependencyFailed,
            Detail::Dependency(running),
        ),
    );
    // A long-poll with a revision seen before the crash answers at once.
    let polled = RESTORED
        .wait(done, Condition::ChangedSince(saved_revision), LONG)
        .await;
    check(
        "restore: a pre-crash revision answers at once",
        matches!(polled, Ok(w) if !w.timed_out),
    );
    // The restored static works on: its worker runs a new job to the end.
    let fresh = RESTORED
        .submit_and_wait(NewJob::new(op(2, 5)), Duration::from_secs(1), now())
        .await;
    check(
        "restore: a new job runs to completion, with an id of the new epoch",
        matches!(&fresh, Ok(Submitted::Completed(j))
            if j.id().epoch() == saved_epoch + 1 && j.id() != done && j.id() != running),
    );
}

/// Host paths (relative to QEMU's working directory, `firmware/`), NUL-terminated.
const IMAGE_PATH: &[u8] = b"target/fw-image.bin\0";
const EXPECTED_PATH: &[u8] = b"target/fw-image.txt\0";

/// The instants, in ms, at which EXPORT's jobs are submitted, started, ended.
mod at {
    pub const A_SUBMIT: u64 = 1_000;
    pub const A_START: u64 = 1_250;
    pub const A_PROGRESS: u64 = 1_500;
    pub const A_END: u64 = 2_750;
    pub const B_SUBMIT: u64 = 1_000;
    pub const C_SUBMIT: u64 = 1_500;
    pub const B_START: u64 = 3_001;
    pub const B_HEARTBEAT: u64 = 3_333;
    pub const D_SUBMIT: u64 = 4_000;
    pub const D_END: u64 = 4_321;
    pub const B_RUN_TIMEOUT: u64 = 5_000;
    pub const B_LEASE: u64 = 2_000;
    pub const RETENTION: u64 = 90_000;
}

/// 8. Tick-rate independence: EXPORT holds jobs with known instants (this firmware ticks at
///    1 kHz); its image and the instants in ms go to the host, where
///    `core/tests/firmware_image.rs` decodes it with a 1 MHz driver and checks the same
///    instants.
fn export(buf: &mut [u8]) {
    use at::*;
    let ms = Instant::from_millis;
    let ids = EXPORT.update(|t| -> Result<[JobId; 4], SharedError> {
        t.set_config(Config {
            retention: Duration::from_millis(RETENTION),
        });
        let b_options = JobOptions {
            run_timeout: Some(Duration::from_millis(B_RUN_TIMEOUT)),
            lease: Some(Duration::from_millis(B_LEASE)),
            ..JobOptions::DEFAULT
        };
        let a = t.submit(NewJob::new(op(1, 1)).description("a"), ms(A_SUBMIT))?;
        let b = t.submit(
            NewJob::new(op(2, 2)).description("b").options(b_options),
            ms(B_SUBMIT),
        )?;
        t.start(a, ms(A_START))?;
        t.progress(a, 50, "half", ms(A_PROGRESS))?;
        let deps = [b];
        let c = t.submit(
            NewJob::new(op(3, 3)).description("c").depends_on(&deps),
            ms(C_SUBMIT),
        )?;
        t.succeed(a, Severity::Normal, "done", ms(A_END))?;
        t.start(b, ms(B_START))?;
        t.heartbeat(b, ms(B_HEARTBEAT))?;
        let d = t.submit(NewJob::new(op(4, 4)).description("d"), ms(D_SUBMIT))?;
        t.fail(d, 7, "refused", ms(D_END))?;
        Ok([a, b, c, d])
    });
    let Ok(Ok(ids)) = ids else {
        return check("export: fill the table at given instants", false);
    };
    // The expected instants, from the schedule (not read back from the table).
    let expected = [
        Expected {
            name: "a",
            created: A_SUBMIT,
            started: Some(A_START),
            ended: Some(A_END),
            deadline: None,
            lease: None,
        },
        Expected {
            name: "b",
            created: B_SUBMIT,
            started: Some(B_START),
            ended: None,
            deadline: Some(B_START + B_RUN_TIMEOUT),
            lease: Some(B_HEARTBEAT + B_LEASE),
        },
        Expected {
            name: "c",
            created: C_SUBMIT,
            started: None,
            ended: None,
            deadline: None,
            lease: None,
        },
        Expected {
            name: "d",
            created: D_SUBMIT,
            started: None,
            ended: Some(D_END),
            deadline: None,
            lease: None,
        },
    ];
    // On target first: the table keeps them to the millisecond.
    let same = EXPORT.read(|t| {
        ids.iter().zip(expected.iter()).all(|(id, e)| {
            t.get(*id).is_ok_and(|j| {
                let ms_of = |i: Option<Instant>| i.map(|i| i.as_millis());
                j.description() == e.name
                    && j.created().as_millis() == e.created
                    && ms_of(j.started()) == e.started
                    && ms_of(j.ended()) == e.ended
                    && ms_of(j.deadline()) == e.deadline
                    && ms_of(j.lease_until()) == e.lease
            })
        })
    });
    check(
        "export: the table holds the instants it was given",
        same == Ok(true),
    );

    let len = EXPORT.read(|t| t.encode(&mut *buf));
    let image = match len {
        Ok(Ok(len)) => buf.get(..len),
        _ => None,
    };
    let Some(image) = image else {
        return check("export: encode", false);
    };
    let wrote_image = HostFile::create(IMAGE_PATH).is_some_and(|mut f| f.write(image));
    let wrote_text = HostFile::create(EXPECTED_PATH).is_some_and(|mut f| {
        let mut ok = writeln!(
            f,
            "# {} B image of JobTable<Op, 4, 32, 16, 128> written at 1 kHz; instants in ms, - = none",
            image.len()
        )
        .is_ok();
        ok &= writeln!(f, "table now={} retention={}", D_END, RETENTION).is_ok();
        for e in &expected {
            ok &= writeln!(
                f,
                "job {} created={} started={} ended={} deadline={} lease={}",
                e.name,
                e.created,
                Ms(e.started),
                Ms(e.ended),
                Ms(e.deadline),
                Ms(e.lease),
            )
            .is_ok();
        }
        ok
    });
    check(
        "export: image and instants written to the host",
        wrote_image && wrote_text,
    );
}

/// A job's instants as the schedule gives them, in ms.
struct Expected {
    name: &'static str,
    created: u64,
    started: Option<u64>,
    ended: Option<u64>,
    deadline: Option<u64>,
    lease: Option<u64>,
}

/// An instant in ms for the expected-instants file: `-` for none.
struct Ms(Option<u64>);

impl core::fmt::Display for Ms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(ms) => write!(f, "{}", ms),
            None => f.write_str("-"),
        }
    }
}
