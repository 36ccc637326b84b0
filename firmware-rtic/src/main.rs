//! jobstate in an RTIC 2 application, on QEMU's lm3s6965evb (Cortex-M3).
//!
//! One `static` [`SharedTable`], [`JOBS`], shared by RTIC tasks of three priorities:
//!
//! * `uart0` — a hardware task (the UART0 interrupt, priority 3): each interrupt "receives" the
//!   next command of [`COMMANDS`], submits it as a job and rings the worker's doorbell
//!   ([`WORK`]). Nothing drives the UART itself: the `operator` pends the interrupt with
//!   `rtic::pend`, as a received byte would.
//! * `worker` — a software task (priority 1): starts the oldest queued job, runs it step by step
//!   (progress, checkpoint), then succeeds or fails it. It parks on the doorbell when nothing is
//!   queued and while its job is paused.
//! * `timers` — a software task (priority 2): `JOBS.expire(now)` every few milliseconds (the
//!   RTIC stand-in for `SharedTable::run_timers`): heartbeat leases and deadlines.
//! * `operator` — a software task (priority 2): pends the commands, pauses the running job,
//!   cancels a queued one, resumes, waits for every job to end, checks the outcomes, prints
//!   `N passed, M failed` and exits QEMU with status 0 only if every check passed.
//!
//! Time: the SysTick monotonic of `rtic-monotonics` at 1 kHz. Every typed call takes its `now`
//! from it ([`now`]) and nothing calls `embassy_time::Instant::now()`, so no embassy-time driver
//! is linked. The `SharedTable` calls that sleep on embassy-time (`wait`, `changed`,
//! `submit_and_wait`, the async `checkpoint`, `run_timers`) are left out: the worker checks in
//! with the core's synchronous `checkpoint` inside `JOBS.update` and parks on the doorbell while
//! the job is paused.

#![no_std]
#![no_main]

use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_semihosting::{debug, hio, hprintln};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use jobstate::shared::{SharedError, SharedTable};
use jobstate::{
    Config, Detail, Directive, Duration, FailReason, Instant, JobId, JobOptions, JobTable, NewJob,
    Outcome, Severity, State,
};
use rtic_monotonics::systick::prelude::*;

// The SysTick monotonic (1 kHz): RTIC's delays, and the `now` of every table call.
systick_monotonic!(Mono, 1_000);

/// QEMU's lm3s6965evb core clock out of reset (no PLL set up).
const CORE_HZ: u32 = 12_500_000;
/// One step of a job's work.
const STEP_MS: u32 = 2;
/// How often the `timers` task sweeps the table.
const SWEEP_MS: u32 = 5;
/// The heartbeat lease of the job whose handler hangs.
const LEASE: Duration = Duration::from_millis(30);
/// How long the operator waits for a state before it gives up on it.
const PATIENCE_MS: u32 = 3_000;

/// What a job is to do: the table's spec type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Erase a flash sector (4 steps).
    Erase { sector: u16 },
    /// Program a sector, one step per chunk.
    Program { sector: u16, chunks: u8 },
    /// Read a sector back (2 steps); [`BAD_SECTOR`] fails with [`VERIFY_FAILED`].
    Verify { sector: u16 },
    /// A handler that hangs: it never reports back, and the job's lease fails it.
    Hang,
}

/// The sector whose verify fails.
const BAD_SECTOR: u16 = 7;
/// The worker's error code for a failed verify.
const VERIFY_FAILED: i32 = -5;

/// The commands that arrive over UART0, one per interrupt, in this order.
static COMMANDS: [NewJob<'static, Op>; 5] = [
    NewJob::new(Op::Erase { sector: 1 }).description("erase sector 1"),
    NewJob::new(Op::Program {
        sector: 1,
        chunks: 10,
    })
    .description("program sector 1"),
    NewJob::new(Op::Verify { sector: BAD_SECTOR }).description("verify sector 7"),
    NewJob::new(Op::Erase { sector: 2 }).description("erase sector 2"),
    NewJob::new(Op::Hang)
        .description("hanging handler")
        .options(JobOptions {
            lease: Some(LEASE),
            ..JobOptions::DEFAULT
        }),
];

/// The table's capacities, named once: 8 jobs, default texts, journal, edges and tombstones.
type Jobs = JobTable<Op, 8>;

/// The job table: const-initialised and all-zero, so it lives in `.bss` (no heap, no flash).
/// `CriticalSectionRawMutex` because tasks of different priorities (and an interrupt handler)
/// use it: each call is one short critical section.
static JOBS: SharedTable<CriticalSectionRawMutex, Jobs> = SharedTable::new(Config::DEFAULT);

/// The worker's doorbell: rung when a job is submitted and when a paused job is resumed. A
/// `Signal` latches, so a ring between the worker's look and its wait is not lost.
static WORK: Signal<CriticalSectionRawMutex, ()> = Signal::new();

/// How many times the worker's checkpoint answered `Pause` (it parked).
static PARKED: AtomicU32 = AtomicU32::new(0);
/// How many jobs the `timers` task failed `TimedOut`.
static TIMED_OUT: AtomicU32 = AtomicU32::new(0);

/// The monotonic's time as the table's `Instant` (whole milliseconds since start).
fn now() -> Instant {
    Instant::from_millis(u64::from(Mono::now().duration_since_epoch().as_millis()))
}

#[rtic::app(device = lm3s6965, dispatchers = [SSI0, QEI0])]
mod app {
    use super::*;
    use heapless::Vec;

    #[shared]
    struct Shared {
        /// The ids the UART0 handler got back, in arrival order.
        submitted: Vec<JobId, 8>,
    }

    #[local]
    struct Local {}

    #[init]
    fn init(cx: init::Context) -> (Shared, Local) {
        Mono::start(cx.core.SYST, CORE_HZ);
        hprintln!("rtic: {} commands, table of 8 jobs", COMMANDS.len());
        if worker::spawn().is_err() || timers::spawn().is_err() || operator::spawn().is_err() {
            fatal("spawn", ());
        }
        (
            Shared {
                submitted: Vec::new(),
            },
            Local {},
        )
    }

    /// UART0 "received" a command: submit it, ring the worker.
    #[task(binds = UART0, priority = 3, shared = [submitted], local = [received: usize = 0])]
    fn uart0(mut cx: uart0::Context) {
        let Some(job) = COMMANDS.get(*cx.local.received) else {
            return;
        };
        *cx.local.received += 1;
        match JOBS.submit(job.clone(), now()) {
            Ok(id) => {
                let _ = JOBS.inspect(id, |j| {
                    hprintln!("uart0: job {} submitted: {}", id, j.description())
                });
                if cx.shared.submitted.lock(|s| s.push(id)).is_err() {
                    fatal("uart0: id list full", id);
                }
                WORK.signal(());
            }
            Err(e) => fatal("uart0: submit", e),
        }
    }

    /// Runs the jobs, oldest first; parks on the doorbell when there is none.
    #[task(priority = 1)]
    async fn worker(_cx: worker::Context) {
        loop {
            match JOBS.start_next(now()) {
                Ok(Some(id)) => {
                    if let Err(e) = run(id).await {
                        fatal("worker", e);
                    }
                }
                Ok(None) => WORK.wait().await,
                Err(e) => fatal("worker: start_next", e),
            }
        }
    }

    /// The timer sweep, driven by the monotonic.
    #[task(priority = 2)]
    async fn timers(_cx: timers::Context) {
        loop {
            Mono::delay(SWEEP_MS.millis()).await;
            match JOBS.expire(now()) {
                Ok(expired) => {
                    if expired.timed_out > 0 {
                        hprintln!("timers: {} job(s) timed out", expired.timed_out);
                        TIMED_OUT.fetch_add(expired.timed_out as u32, Ordering::Relaxed);
                    }
                }
                Err(e) => fatal("timers: expire", e),
            }
        }
    }

    /// The scenario: commands in, pause, cancel, resume, then the checks.
    #[task(priority = 2, shared = [submitted])]
    async fn operator(mut cx: operator::Context) {
        let mut checks = Checks::default();

        // 1. The commands arrive: one UART0 interrupt each.
        for _ in 0..COMMANDS.len() {
            rtic::pend(lm3s6965::Interrupt::UART0);
            Mono::delay(STEP_MS.millis()).await;
        }
        let ids = cx.shared.submitted.lock(|s| s.clone());
        let &[erase1, program, verify, erase2, hang] = ids.as_slice() else {
            fatal("operator: submitted", ids.len());
        };
        checks.check("the UART0 handler submitted every command", true);

        // 2. Pause the program job once it has made progress.
        let running = until(|| {
            JOBS.inspect(program, |j| j.state() == State::Running && j.progress() > 0)
                .unwrap_or(false)
        })
        .await;
        checks.check("program job running, with progress", running);
        let requested = JOBS.request_pause(program, now());
        checks.check("pause requested", requested.is_ok());
        // Paused by the worker's checkpoint, which then parks (counted just after the change).
        let paused =
            until(|| state(program) == Some(State::Paused) && PARKED.load(Ordering::Relaxed) >= 1)
                .await;
        hprintln!(
            "operator: job {} {:?} at {} %",
            program,
            state(program),
            progress(program)
        );
        checks.check("the worker's checkpoint paused the job and parked", paused);

        // 3. While it is paused: no progress, and the worker does not move on.
        let before = progress(program);
        Mono::delay(20.millis()).await;
        checks.check(
            "no progress while paused",
            state(program) == Some(State::Paused) && progress(program) == before,
        );
        checks.check(
            "the next job stays queued while the worker is parked",
            state(verify) == Some(State::Queued),
        );

        // 4. Cancel a queued job: it ends at once, never started.
        checks.check(
            "cancel of a queued job accepted",
            JOBS.request_cancel(erase2, now()).is_ok(),
        );
        let canceled = JOBS
            .inspect(erase2, |j| {
                matches!(
                    j.outcome(),
                    Some(Outcome::Failed {
                        reason: FailReason::Canceled,
                        ..
                    })
                ) && j.detail() == Some(Detail::Canceled)
                    && j.started().is_none()
            })
            .unwrap_or(false);
        checks.check("the queued job failed Canceled, never started", canceled);

        // 5. Resume, and ring the worker parked at its checkpoint.
        checks.check(
            "resume accepted",
            JOBS.request_resume(program, now()).is_ok(),
        );
        WORK.signal(());
        hprintln!("operator: job {} resumed", program);

        // 6. Every job ends: the worker's own, and the hanging one by its lease.
        let ended = until(|| {
            ids.iter()
                .all(|&id| JOBS.inspect(id, |j| j.is_terminal()).unwrap_or(false))
        })
        .await;
        checks.check("every job ended", ended);

        // 7. The outcomes.
        for &id in ids.iter() {
            let _ = JOBS.inspect(id, |j| {
                hprintln!(
                    "job {}: {} {} % {:?} {:?} \"{}\" ({})",
                    id,
                    j.state(),
                    j.progress(),
                    j.outcome(),
                    j.detail(),
                    j.message(),
                    j.description()
                )
            });
        }
        checks.check(
            "erase 1 succeeded at 100 %",
            succeeded_at_100(erase1) && message_is(erase1, "done"),
        );
        checks.check(
            "program 1 succeeded at 100 % after the pause",
            succeeded_at_100(program),
        );
        let verify_failed = JOBS
            .inspect(verify, |j| {
                j.outcome()
                    == Some(Outcome::Failed {
                        reason: FailReason::Error,
                        code: VERIFY_FAILED,
                    })
            })
            .unwrap_or(false);
        checks.check(
            "verify 7 failed with the worker's code",
            verify_failed && message_is(verify, "crc mismatch"),
        );
        let lease_expired = JOBS
            .inspect(hang, |j| {
                matches!(
                    j.outcome(),
                    Some(Outcome::Failed {
                        reason: FailReason::TimedOut,
                        ..
                    })
                ) && j.detail() == Some(Detail::Lease)
            })
            .unwrap_or(false);
        checks.check(
            "the hanging job failed TimedOut by its lease (timers task)",
            lease_expired && TIMED_OUT.load(Ordering::Relaxed) == 1,
        );
        let starts = [erase1, program, verify, hang].map(|id| {
            JOBS.inspect(id, |j| j.started())
                .ok()
                .flatten()
                .unwrap_or(Instant::MAX)
        });
        checks.check(
            "jobs started in arrival order",
            starts.windows(2).all(|w| w[0] <= w[1]) && starts[3] != Instant::MAX,
        );
        checks.check(
            "no waiter registrations left",
            JOBS.registered_waiters() == 0,
        );

        checks.finish()
    }
}

/// Run one job to its end (or leave it, for `Hang`).
async fn run(id: JobId) -> Result<(), SharedError> {
    let op = JOBS.inspect(id, |job| *job.spec())?;
    hprintln!("worker: job {} started: {:?}", id, op);
    let (steps, doing) = match op {
        Op::Erase { .. } => (4u8, "erasing"),
        Op::Program { chunks, .. } => (chunks, "programming"),
        Op::Verify { .. } => (2, "verifying"),
        Op::Hang => return Ok(()),
    };
    for step in 1..=steps {
        // The work of one step.
        Mono::delay(STEP_MS.millis()).await;
        if op == (Op::Verify { sector: BAD_SECTOR }) && step == steps {
            hprintln!("worker: job {} failed", id);
            return JOBS.fail(id, VERIFY_FAILED, "crc mismatch", now());
        }
        let percent = u8::try_from(u16::from(step) * 100 / u16::from(steps)).unwrap_or(100);
        JOBS.progress(id, percent, doing, now())?;
        match checkpoint(id).await? {
            Directive::Continue => {}
            // Canceled: the table has failed the job already.
            _ => return Ok(()),
        }
    }
    hprintln!("worker: job {} succeeded", id);
    JOBS.succeed(id, Severity::Normal, "done", now())
}

/// The worker's check-in: the core's `checkpoint` at the monotonic's `now`. While the job is
/// paused it parks on the doorbell, and asks again when rung (a resume, a cancel, or a new job:
/// a ring that is not for it just asks again).
async fn checkpoint(id: JobId) -> Result<Directive, SharedError> {
    loop {
        let at = now();
        let directive = JOBS.update(|t| t.checkpoint(id, at))??;
        if directive != Directive::Pause {
            return Ok(directive);
        }
        if PARKED.fetch_add(1, Ordering::Relaxed) == 0 {
            hprintln!("worker: job {} paused, parked at its checkpoint", id);
        }
        WORK.wait().await;
    }
}

/// Poll `cond` every millisecond until it holds (true) or [`PATIENCE_MS`] pass (false).
async fn until(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..PATIENCE_MS {
        if cond() {
            return true;
        }
        Mono::delay(1.millis()).await;
    }
    cond()
}

fn state(id: JobId) -> Option<State> {
    JOBS.inspect(id, |j| j.state()).ok()
}

fn progress(id: JobId) -> u8 {
    JOBS.inspect(id, |j| j.progress()).unwrap_or(0)
}

fn succeeded_at_100(id: JobId) -> bool {
    JOBS.inspect(id, |j| j.state() == State::Succeeded && j.progress() == 100)
        .unwrap_or(false)
}

fn message_is(id: JobId, text: &str) -> bool {
    JOBS.inspect(id, |j| j.message() == text).unwrap_or(false)
}

/// The tally of checks.
#[derive(Default)]
struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool) {
        if ok {
            self.passed += 1;
            hprintln!("ok   {}", what);
        } else {
            self.failed += 1;
            hprintln!("FAIL {}", what);
        }
    }

    /// Print the result line and exit QEMU: status 0 only if every check passed.
    fn finish(self) -> ! {
        hprintln!("{} passed, {} failed", self.passed, self.failed);
        exit(self.failed == 0)
    }
}

/// Print what went wrong and exit QEMU with a failure.
fn fatal(what: &str, detail: impl fmt::Debug) -> ! {
    hprintln!("fatal: {}: {:?}", what, detail);
    exit(false)
}

fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only without a semihosting host (not under QEMU).
    loop {
        cortex_m::asm::wfi();
    }
}

/// A panic exits QEMU with a failure. It writes to the host stream directly, without
/// `hprintln!`'s shared cell, which the panicking code may hold.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(out, "panic: {}", info);
    }
    exit(false)
}
