//! The footprint probe (feature `probe`, without `scenarios`): one use of each operation a
//! firmware typically needs — submit with a dependency, the worker loop (start, progress,
//! checkpoint, succeed/fail), client requests, long-poll waits, submit-and-wait, the timer task —
//! with as little glue as possible, so that "probe build minus baseline build" is what the core
//! costs a firmware.

use core::hint::black_box;

use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use jobstate::shared::SharedTable;
use jobstate::{Condition, Config, Directive, Duration, Instant, NewJob, Revision, Severity};

/// Default text, dependency and journal capacities; 8 slots.
type Table = SharedTable<CriticalSectionRawMutex, u32, 8>;
static TABLE: Table = SharedTable::new(Config::DEFAULT);

#[embassy_executor::task]
async fn timers() {
    TABLE.run_timers().await;
}

pub async fn run(spawner: Spawner) {
    spawner.spawn(timers().unwrap_or_else(|_| panic!("spawn")));
    let now = Instant::now();
    let t = &TABLE;
    let a = t.update(|t| t.submit(NewJob::new(black_box(1)).description("a"), now));
    let Ok(Ok(a)) = a else { return };
    let deps = [a];
    let _ = t.update(|t| t.submit(NewJob::new(black_box(2)).depends_on(&deps), now));
    if let Ok(Some(id)) = t.update(|t| t.start_next(now)) {
        let _ = t.update(|t| t.progress(id, black_box(50), "half", now));
        let _ = t.update(|t| t.request_pause(id, now));
        let _ = t.update(|t| t.request_resume(id, now));
        let _ = t.update(|t| t.request_cancel(id, now));
        match t.update(|t| t.checkpoint(id, now)) {
            Ok(Ok(Directive::Continue)) => {
                let _ = t.update(|t| t.succeed(id, Severity::Normal, "ok", now));
            }
            _ => {
                let _ = t.update(|t| t.fail(id, black_box(3), "err", now));
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
    let r = t.changed(Revision::ZERO, Duration::from_millis(1)).await;
    black_box(r);
    let s = t
        .submit_and_wait(NewJob::new(black_box(3)), Duration::from_millis(1), now)
        .await;
    black_box(s.is_ok());
}
