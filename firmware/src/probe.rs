//! The footprint probes (without `scenarios`): one use of each operation a firmware typically
//! needs, with as little glue as possible, so that "probe build minus baseline build" is what
//! the core costs a firmware (see `scripts/footprint`).
//!
//! * `probe`: the shared table with waits and timers — submit with a dependency, the worker
//!   side (start, progress, async checkpoint, succeed/fail), client requests, long-poll waits,
//!   `changed`, submit-and-wait, a snapshot, the timer task;
//! * `probe-core`: the core alone — the same operations on a `JobTable` under a blocking mutex,
//!   no shared table, no waits (`expire` and `next_timer` for the timers);
//! * `probe-two`: `probe` plus a second table type, other capacities, the same spec type, used
//!   the same way: what a second table type adds.

#[cfg(feature = "probe-core")]
use core::cell::RefCell;
use core::hint::black_box;

use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
#[cfg(feature = "probe-core")]
use embassy_sync::blocking_mutex::Mutex;
#[cfg(not(feature = "probe-core"))]
use jobstate::shared::SharedTable;
use jobstate::{Condition, Config, Directive, Instant, JobTable, NewJob, Revision, Severity};
#[cfg(not(feature = "probe-core"))]
use jobstate::{Duration, Table};

/// 8 slots, default texts (64 B), journal (64 events), log ring, edges and tombstones.
type Jobs = JobTable<u32, 8>;

#[cfg(not(feature = "probe-core"))]
static TABLE: SharedTable<CriticalSectionRawMutex, Jobs> = SharedTable::new(Config::DEFAULT);

/// The second table type: 4 slots, 32-byte texts, 16 journal events, a 128-byte log ring, 4
/// waiter registrations.
#[cfg(feature = "probe-two")]
static SECOND: SharedTable<CriticalSectionRawMutex, JobTable<u32, 4, 32, 16, 128>, 4> =
    SharedTable::new(Config::DEFAULT);

#[cfg(feature = "probe-core")]
static CORE: Mutex<CriticalSectionRawMutex, RefCell<Jobs>> =
    Mutex::new(RefCell::new(JobTable::new(Config::DEFAULT)));

#[cfg(not(feature = "probe-core"))]
#[embassy_executor::task]
async fn timers() {
    TABLE.run_timers().await;
}

#[cfg(feature = "probe-two")]
#[embassy_executor::task]
async fn timers_second() {
    SECOND.run_timers().await;
}

pub async fn run(spawner: Spawner) {
    #[cfg(not(feature = "probe-core"))]
    {
        if let Ok(token) = timers() {
            spawner.spawn(token);
        }
        shared(&TABLE).await;
    }
    #[cfg(feature = "probe-two")]
    {
        if let Ok(token) = timers_second() {
            spawner.spawn(token);
        }
        shared(&SECOND).await;
    }
    #[cfg(feature = "probe-core")]
    {
        let _ = spawner;
        CORE.lock(|t| {
            if let Ok(mut t) = t.try_borrow_mut() {
                core_only(&mut t, Instant::now());
            }
        });
    }
}

/// The shared table: typed calls, the async checkpoint, waits, submit-and-wait.
#[cfg(not(feature = "probe-core"))]
async fn shared<Tb: Table<Spec = u32>, const W: usize>(
    t: &SharedTable<CriticalSectionRawMutex, Tb, W>,
) {
    let now = Instant::now();
    let Ok(a) = t.submit(NewJob::new(black_box(1)).description("a"), now) else {
        return;
    };
    let deps = [a];
    let _ = t.submit(NewJob::new(black_box(2)).depends_on(&deps), now);
    if let Ok(Some(id)) = t.start_next(now) {
        let _ = t.progress(id, black_box(50), "half", now);
        let _ = t.request_pause(id, now);
        let _ = t.request_resume(id, now);
        let _ = t.request_cancel(id, now);
        match t.checkpoint(id).await {
            Ok(Directive::Continue) => {
                let _ = t.succeed(id, Severity::Normal, "ok", now);
            }
            _ => {
                let _ = t.fail(id, black_box(3), "err", now);
            }
        }
    }
    let w = t
        .wait(
            a,
            Condition::ChangedSince(Revision::ZERO),
            Duration::from_millis(1),
        )
        .await;
    black_box(w.is_ok());
    black_box(t.snapshot(a).is_ok());
    let r = t.changed(Revision::ZERO, Duration::from_millis(1)).await;
    black_box(r);
    let s = t
        .submit_and_wait(NewJob::new(black_box(3)), Duration::from_millis(1), now)
        .await;
    black_box(s.is_ok());
}

/// The core alone: the same operations on the table itself.
#[cfg(feature = "probe-core")]
fn core_only(t: &mut Jobs, now: Instant) {
    let Ok(a) = t.submit(NewJob::new(black_box(1)).description("a"), now) else {
        return;
    };
    let deps = [a];
    let _ = t.submit(NewJob::new(black_box(2)).depends_on(&deps), now);
    if let Some(id) = t.start_next(now) {
        let _ = t.progress(id, black_box(50), "half", now);
        let _ = t.request_pause(id, now);
        let _ = t.request_resume(id, now);
        let _ = t.request_cancel(id, now);
        match t.checkpoint(id, now) {
            Ok(Directive::Continue) => {
                let _ = t.succeed(id, Severity::Normal, "ok", now);
            }
            _ => {
                let _ = t.fail(id, black_box(3), "err", now);
            }
        }
    }
    black_box(t.check(a, Condition::ChangedSince(Revision::ZERO)).is_ok());
    // Read in place (a firmware without the shared table has no need to copy a job out).
    let _ = black_box(
        t.get(a)
            .map(|j| (j.state(), j.progress(), j.message().len(), j.outcome())),
    );
    black_box(t.changed_since(Revision::ZERO).map(|c| c.count()).ok());
    black_box(t.expire(now));
    black_box(t.next_timer());
}
