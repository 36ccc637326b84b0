//! The scenarios: each runs on its own shared table, with worker tasks doing the jobs and the
//! scenario itself acting as the client (submit, request, long-poll).

use core::mem::size_of;

use cortex_m_semihosting::hprintln;
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time::Timer;
use jobstate::shared::{SharedTable, Submitted};
use jobstate::{
    Condition, Config, Directive, Duration, FailReason, Instant, Job, JobId, JobTable, NewJob,
    Outcome, Revision, Severity, State, SubmitError,
};

use crate::check;

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

/// 4 slots, 32-byte texts, 2 dependencies per job, 16 journal events, 4 waiter registrations.
type Table = SharedTable<CriticalSectionRawMutex, Op, 4, 32, 2, 16, 4>;
type Snapshot = Job<Op, 32, 2>;

const LONG: Duration = Duration::from_secs(10);

static ORACLE: Table = SharedTable::new(Config {
    retention: Duration::from_secs(60),
});
static LONGPOLL: Table = SharedTable::new(Config::DEFAULT);
static CONTROL: Table = SharedTable::new(Config::DEFAULT);
static FULL: Table = SharedTable::new(Config {
    retention: Duration::from_millis(100),
});
static RETURN: Table = SharedTable::new(Config::DEFAULT);

/// Run every scenario; results go to [`check`].
pub async fn run(spawner: Spawner) {
    for table in [&ORACLE, &CONTROL, &FULL, &RETURN] {
        spawner.spawn(worker(table).unwrap_or_else(|_| panic!("spawn worker")));
    }
    spawner.spawn(timers(&FULL).unwrap_or_else(|_| panic!("spawn timers")));
    footprint();
    oracle_dependencies().await;
    long_poll(spawner).await;
    pause_resume_cancel().await;
    table_full().await;
    submit_and_wait().await;
}

/// Sizes of the core's types on this target, for `scripts/footprint`.
fn footprint() {
    type Default16 = JobTable<Op, 16>;
    type Default17 = JobTable<Op, 17>;
    let slot = size_of::<Default17>() - size_of::<Default16>();
    hprintln!(
        "footprint: job={} table16={} slot={} text={} journal_event={} shared_table={}",
        size_of::<Job<Op, 64, 4>>(),
        size_of::<Default16>(),
        slot,
        2 * size_of::<heapless::String<64, u16>>(), // the core keeps text lengths in 16 bits
        size_of::<jobstate::Event<64>>(),
        size_of::<Table>(),
    );
}

fn now() -> Instant {
    Instant::now()
}

fn snapshot(table: &Table, id: JobId) -> Option<Snapshot> {
    table.read(|t| t.get(id).ok().cloned()).ok().flatten()
}

fn submit(table: &Table, job: NewJob<'_, Op>) -> Result<JobId, SubmitError> {
    table
        .update(|t| t.submit(job, now()))
        .unwrap_or(Err(SubmitError::TableFull))
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

fn succeeded(job: &Option<Snapshot>) -> bool {
    job.as_ref().map(|j| j.state()) == Some(State::Succeeded)
}

/// A worker: start the oldest runnable job, do its steps with progress and checkpoints, end it.
#[embassy_executor::task(pool_size = 4)]
async fn worker(table: &'static Table) {
    loop {
        let next = table.update(|t| {
            let seen = t.revision();
            let job = t
                .start_next(now())
                .and_then(|id| t.get(id).ok().map(|j| (id, *j.spec())));
            (seen, job)
        });
        match next {
            Ok((_, Some((id, op)))) => run_job(table, id, op).await,
            Ok((seen, None)) => {
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
        let _ = table.update(|t| t.progress(id, percent.min(99), "working", now()));
        loop {
            match table.update(|t| t.checkpoint(id, now())) {
                Ok(Ok(Directive::Continue)) => break,
                Ok(Ok(Directive::Pause)) => {
                    // Parked: sleep until a resume or a cancel request changes the job.
                    let Some(job) = snapshot(table, id) else {
                        return;
                    };
                    defmt::info!("job {} parked", id);
                    let _ = table
                        .wait(id, Condition::ChangedSince(job.revision()), LONG)
                        .await;
                }
                _ => return,
            }
        }
    }
    let _ = table.update(|t| {
        if op.fail {
            t.fail(id, 42, "backend error", now())
        } else {
            t.succeed(id, Severity::Normal, "done", now())
        }
    });
}

/// Long-poll helper task: report progress on a job after a delay.
#[embassy_executor::task]
async fn reporter(table: &'static Table, id: JobId, after_ms: u64) {
    Timer::after_millis(after_ms).await;
    let _ = table.update(|t| t.progress(id, 60, "reported", now()));
}

/// Timer task: runs `expire` when deadlines, leases or retention come due.
#[embassy_executor::task]
async fn timers(table: &'static Table) {
    table.run_timers().await;
}

/// 1. Oracle's case: "add backend server" depends on "create backend set"; it starts only
///    after the set succeeds, and ends `DependencyFailed` when the set fails.
async fn oracle_dependencies() {
    let t = &ORACLE;
    let set = submit(
        t,
        NewJob::new(op(3, 10)).description("create backend set bs1"),
    );
    let Ok(set) = set else {
        return check("oracle: submit set", false);
    };
    let server = submit(
        t,
        NewJob::new(op(2, 10))
            .description("add backend server 10.0.0.3")
            .depends_on(&[set]),
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

    let bad = submit(
        t,
        NewJob::new(Op {
            fail: true,
            ..op(1, 10)
        })
        .description("create backend set bs2"),
    );
    let Ok(bad) = bad else {
        return check("oracle: submit failing set", false);
    };
    let dependent = submit(t, NewJob::new(op(1, 10)).depends_on(&[bad]));
    let Ok(dependent) = dependent else {
        return check("oracle: submit dependent", false);
    };
    let dep_done = wait_terminal(t, dependent, Duration::from_secs(2)).await;
    let bad_done = snapshot(t, bad);
    check(
        "oracle: failing set failed",
        failed_with(&bad_done, FailReason::Error),
    );
    check(
        "oracle: dependent DependencyFailed",
        failed_with(&dep_done, FailReason::DependencyFailed),
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
    let Ok(id) = submit(t, NewJob::new(op(1, 1)).description("long-poll target")) else {
        return check("long-poll: submit", false);
    };
    let _ = t.update(|t| t.start(id, now()));
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

    spawner.spawn(reporter(&LONGPOLL, id, 30).unwrap_or_else(|_| panic!("spawn reporter")));
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
        "long-poll: woken early",
        waited >= Duration::from_millis(30) && waited < Duration::from_secs(1),
    );
}

/// 3. Pause → the worker's checkpoint parks it → resume → it continues to success; cancel of
///    a paused job ends it `Canceled`.
async fn pause_resume_cancel() {
    let t = &CONTROL;
    for cancel in [false, true] {
        let Ok(id) = submit(t, NewJob::new(op(10, 10)).description("copy volume")) else {
            return check("control: submit", false);
        };
        let running = wait_leaves(t, id, State::Queued, Duration::from_secs(1)).await;
        check(
            "control: worker started it",
            running.is_some_and(|j| j.state() == State::Running),
        );
        Timer::after_millis(15).await;
        let asked = t.update(|t| t.request_pause(id, now()));
        check("control: pause requested", matches!(asked, Ok(Ok(()))));
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
            matches!((&paused, &still), (Some(a), Some(b)) if a.version() == b.version()),
        );
        if cancel {
            let asked = t.update(|t| t.request_cancel(id, now()));
            check("control: cancel requested", matches!(asked, Ok(Ok(()))));
            let done = wait_terminal(t, id, Duration::from_secs(1)).await;
            check(
                "control: paused job canceled",
                failed_with(&done, FailReason::Canceled),
            );
        } else {
            let asked = t.update(|t| t.request_resume(id, now()));
            check("control: resumed", matches!(asked, Ok(Ok(()))));
            let done = wait_terminal(t, id, Duration::from_secs(2)).await;
            check(
                "control: resumed job continued to success",
                succeeded(&done),
            );
        }
    }
}

/// 4. A table full of live jobs refuses a submit with `TableFull`; once one has finished and
///    its retention passed, a submit is accepted again.
async fn table_full() {
    let t = &FULL;
    let first = submit(t, NewJob::new(op(2, 10)).description("short"));
    let mut all = true;
    for _ in 0..3 {
        all &= submit(t, NewJob::new(op(20, 20)).description("long")).is_ok();
    }
    check("full: four live jobs accepted", first.is_ok() && all);
    check(
        "full: fifth refused with TableFull",
        submit(t, NewJob::new(op(1, 1))) == Err(SubmitError::TableFull),
    );
    let Ok(first) = first else { return };
    let done = wait_terminal(t, first, Duration::from_secs(1)).await;
    check("full: first job finished", succeeded(&done));
    check(
        "full: still full within retention",
        submit(t, NewJob::new(op(1, 1))) == Err(SubmitError::TableFull),
    );
    Timer::after_millis(110).await;
    let gone = t.read(|t| t.get(first).err()).ok().flatten();
    check(
        "full: timer task removed it after retention, tombstone kept",
        matches!(gone, Some(jobstate::LookupError::Expired(Some(ts))) if ts.state() == State::Succeeded),
    );
    check(
        "full: submit accepted after retention",
        submit(t, NewJob::new(op(1, 1)).description("after")).is_ok(),
    );
}

/// 5. Submit-and-wait with a return timeout: a short job answers Completed, a long one
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
