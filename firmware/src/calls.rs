//! Feature `calls`: every operation of the core's public API used once, through glue that has
//! no panic path of its own. The program of the no-panic check (`--features calls,no-panic`):
//! that build's panic handler calls an undefined function (see `main.rs`), so it links exactly
//! when the core, as used here, has no panic path left after optimisation.
//!
//! Rules for the glue, each of which would put a panic path in the program: no `unwrap`/
//! `expect`, no slice indexing, no `async fn` that returns (its state machine panics when
//! resumed after completion): the one async function here and the timer task never return.
//! Results go through `black_box` so that nothing is optimised away, and a few are checked so
//! that the build also runs as a test under QEMU.
//!
//! It has to follow the core's API as it changes, like `probe.rs` and `scenarios.rs`.

use core::hint::black_box;

use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use jobstate::shared::SharedError;
use jobstate::{
    Condition, Config, Directive, Duration, FailReason, Instant, JobError, JobOptions, JobTable,
    NewJob, Revision, Severity, SharedTable, State, Submitted,
};

use crate::{check, stack};

/// 8 slots, 16-byte texts, 8 journal events, a 64-byte log ring; 4 waiter registrations.
type Table = SharedTable<CriticalSectionRawMutex, JobTable<u32, 8, 16, 8, 64>, 4>;
/// The default configuration: an all-zero table, in `.bss`.
static TABLE: Table = SharedTable::new(Config::DEFAULT);

#[embassy_executor::task]
async fn timers() -> ! {
    TABLE.run_timers().await;
    crate::fatal("run_timers returned")
}

pub async fn run(spawner: Spawner) -> ! {
    match timers() {
        Ok(token) => spawner.spawn(token),
        Err(_) => crate::fatal("spawn timers"),
    }
    let t = &TABLE;
    let now = Instant::now();
    let options = JobOptions {
        run_timeout: Some(Duration::from_secs(5)),
        lease: Some(Duration::from_secs(5)),
        ..JobOptions::DEFAULT
    };

    // Submit (measuring its stack), a dependent, then the worker side of the first job.
    let mut first = None;
    let used = stack::measure(|| {
        first = t
            .update(|t| t.submit(NewJob::new(black_box(1)).description("a"), now))
            .ok()
            .and_then(Result::ok);
    });
    check("submit", first.is_some());
    let Some(a) = first else { crate::finish() };
    let deps = [a];
    let b = t.update(|t| {
        t.submit(
            NewJob::new(black_box(2)).depends_on(&deps).options(options),
            now,
        )
    });
    check("submit dependent", matches!(b, Ok(Ok(_))));
    let started = t.update(|t| t.start_next(now));
    check("start_next", started == Ok(Some(a)));
    let _ = t.update(|t| {
        keep(t.progress(a, black_box(50), "half", now));
        keep(t.log(a, "line", now));
        keep(t.heartbeat(a, now));
        keep(t.request_pause(a, now));
        keep(t.checkpoint(a, now));
        keep(t.request_resume(a, now));
        keep(t.checkpoint(a, now) == Ok(Directive::Continue));
        keep(t.succeed(a, Severity::Normal, "ok", now));
        keep(t.expire(Instant::now()));
    });

    // Reads.
    let _ = t.read(|t| {
        keep(
            t.get(a)
                .map(|j| (j.state(), j.progress(), j.description().len())),
        );
        keep(t.check(a, Condition::Terminal).map(|j| j.is_some()));
        keep(t.iter().count());
        keep(t.tombstones().count());
        keep(t.peek_runnable());
        keep(t.journal(Revision::ZERO).map(|e| e.count()));
        keep(t.next_timer());
        keep((t.len(), t.revision(), t.epoch()));
    });
    let done = t.read(|t| t.get(a).map(|j| j.state()));
    check("succeeded", done == Ok(Ok(State::Succeeded)));

    // The dependent: started, then canceled by the client.
    if let Ok(Some(b)) = t.update(|t| t.start_next(now)) {
        let _ = t.update(|t| keep(t.request_cancel(b, now)));
        let _ = t.update(|t| keep(t.checkpoint(b, now)));
        let _ = t.update(|t| keep(t.fail(b, black_box(3), "err", now)));
    }

    // The typed calls of the shared table, and its async checkpoint.
    if let Ok(c) = t.submit(NewJob::new(black_box(5)).description("c"), now) {
        keep(t.start(c, now));
        keep(t.progress(c, 10, "typed", now));
        keep(t.log(c, "line", now));
        keep(t.heartbeat(c, now));
        keep(t.request_pause(c, now));
        keep(t.request_resume(c, now));
        check(
            "checkpoint",
            t.checkpoint(c).await == Ok(Directive::Continue),
        );
        keep(t.snapshot(c));
        keep(t.request_cancel(c, now));
        keep(t.fail(c, black_box(4), "err", now));
    }
    keep(t.start_next(now));
    keep(t.expire(Instant::now()));
    keep(t.next_timer());

    // A checkpoint that parks while its job is paused, until the job's deadline (the timer
    // side of the async checkpoint): the job fails TimedOut and the checkpoint says so.
    let short = JobOptions {
        run_timeout: Some(Duration::from_millis(20)),
        ..JobOptions::DEFAULT
    };
    if let Ok(d) = t.submit(NewJob::new(black_box(6)).options(short), Instant::now()) {
        keep(t.start(d, Instant::now()));
        keep(t.request_pause(d, Instant::now()));
        check(
            "parked checkpoint ends at the deadline",
            t.checkpoint(d).await == Err(SharedError::Job(JobError::AlreadyTerminal)),
        );
        keep(t.inspect(d, |j| (j.detail(), j.message().len())));
    }
    keep(t.registered_waiters());
    keep(
        t.try_submit(NewJob::new(black_box(7)), Instant::now())
            .is_ok(),
    );
    if let Ok(Some(e)) = t.start_next(Instant::now()) {
        keep(t.fail_with(e, FailReason::Interrupted, None, "", Instant::now()));
    }
    let _ = t.update(|t| {
        t.set_config(Config::DEFAULT);
        keep(t.config());
        keep(t.next_free_at());
        keep(t.changed_since(Revision::ZERO).map(|c| c.count()));
    });

    // Async: a wait that times out, a table-wide watch, submit-and-wait.
    let rev = t.read(|t| t.revision()).unwrap_or(Revision::ZERO);
    let waited = t
        .wait(a, Condition::ChangedSince(rev), Duration::from_millis(5))
        .await;
    check("wait answers", waited.is_ok());
    let changed = t.changed(rev, Duration::from_millis(5)).await;
    keep(changed);
    let quick = t
        .submit_and_wait(
            NewJob::new(black_box(4)),
            Duration::from_ticks(0),
            Instant::now(),
        )
        .await;
    check("submit_and_wait accepted", quick.is_ok());
    // With a return timeout: the job is not started, so the wait times out and answers Accepted.
    let later = t
        .submit_and_wait(
            NewJob::new(black_box(8)),
            Duration::from_millis(5),
            Instant::now(),
        )
        .await;
    check(
        "submit_and_wait with a timeout",
        matches!(later, Ok(Submitted::Accepted(_)) | Err(_)),
    );

    println!("stack: one submit through the shared table {} B", used);
    crate::finish()
}

/// Keep a result alive for the optimiser without looking at it.
fn keep<R>(r: R) {
    let _ = black_box(r);
}
