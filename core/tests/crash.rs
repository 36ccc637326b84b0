//! R-ID, R-VERSION, R-DURABLE across crashes: random sequences of operations, saves, power cuts
//! (also in the middle of a save, and in the save that follows a restore) and restores — the
//! same image restored again and again included — never issue an id twice, and every revision
//! seen after a restore is greater than every revision seen before it.
#![cfg(feature = "persist")]

use std::collections::HashSet;

use jobstate::flash::{AbStore, RamFlash};
use jobstate::{Condition, Config, Duration, Instant, JobId, JobTable, NewJob, Revision, Severity};
use proptest::prelude::*;

type Table = JobTable<u32, 4, 16, 8, 64, 4, 4>;
type Flash = RamFlash<16384, 4, 1024>;
const BUF: usize = AbStore::<Flash>::buffer_len(Table::image_size_bound(5));

#[derive(Clone, Debug)]
enum Op {
    Submit,
    Start,
    Progress(u8),
    Succeed(u8),
    Fail(u8),
    Cancel(u8),
    Advance(u16),
    Save,
    /// Power cut now (whatever was not saved is lost), then reboot and restore.
    Crash,
    /// Power cut after this many byte operations of a save, then reboot and restore.
    CrashInSave(u16),
    /// Power cut this many byte operations into the save that follows a restore.
    CrashAfterRestore(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Submit),
        3 => Just(Op::Start),
        2 => any::<u8>().prop_map(Op::Progress),
        2 => any::<u8>().prop_map(Op::Succeed),
        1 => any::<u8>().prop_map(Op::Fail),
        1 => any::<u8>().prop_map(Op::Cancel),
        2 => (1u16..2_000).prop_map(Op::Advance),
        2 => Just(Op::Save),
        1 => Just(Op::Crash),
        1 => (0u16..3_000).prop_map(Op::CrashInSave),
        1 => (0u16..3_000).prop_map(Op::CrashAfterRestore),
    ]
}

struct World {
    table: Box<Table>,
    store: Option<AbStore<Flash>>,
    buf: Vec<u8>,
    now: Instant,
    live: Vec<JobId>,
    issued: HashSet<JobId>,
    /// The highest revision any caller was shown.
    seen: Revision,
}

impl World {
    fn new() -> Self {
        let mut store = AbStore::new(Flash::new(), 0, 8192).unwrap();
        let mut buf = vec![0; BUF];
        // A new table is saved before it serves, like a restored one.
        store
            .save_table(&Table::new(Config::DEFAULT), &mut buf)
            .unwrap();
        Self {
            table: Box::new(Table::new(Config {
                retention: Duration::from_millis(500),
            })),
            store: Some(store),
            buf: vec![0; BUF],
            now: Instant::from_millis(0),
            live: Vec::new(),
            issued: HashSet::new(),
            seen: Revision::ZERO,
        }
    }

    fn store(&mut self) -> &mut AbStore<Flash> {
        self.store.as_mut().unwrap()
    }

    fn observe(&mut self) {
        self.seen = self.seen.max(self.table.revision());
    }

    fn pick(&self, k: u8) -> Option<JobId> {
        (!self.live.is_empty()).then(|| self.live[usize::from(k) % self.live.len()])
    }

    /// Reboot: a new store over the same flash, a table restored in place. Loops while a cut
    /// hits the save that follows the restore (the table then must not serve).
    fn reboot(&mut self, mut cut_after_restore: Option<u16>) {
        let before = self.seen;
        loop {
            let mut flash = self.store.take().map(AbStore::into_inner).unwrap();
            flash.power_on();
            if let Some(cut) = cut_after_restore.take() {
                // Count the load's reads as nothing: a cut lands in the post-restore save.
                flash.cut_after(usize::from(cut));
            }
            let mut store = AbStore::new(flash, 0, 8192).unwrap();
            let mut table = Box::new(Table::new(Config::DEFAULT));
            let result = store.restore_into(&mut table, &mut self.buf, self.now);
            self.store = Some(store);
            match result {
                Ok(Some(_)) => {
                    self.table = table;
                    break;
                }
                Ok(None) => unreachable!("the new table was saved before it served"),
                Err(_) => {
                    // The post-restore save was cut: reboot again (nothing was served).
                }
            }
        }
        let first = self.table.revision();
        assert!(
            first > before,
            "revision {first:?} after restore is not past {before:?} seen before the crash"
        );
        // Every job that survived answers a pre-crash long-poll at once.
        for id in self.table.iter().map(|j| j.id()).collect::<Vec<_>>() {
            let held = self
                .table
                .check(id, Condition::ChangedSince(before))
                .unwrap();
            assert!(
                held.is_some(),
                "{id:?} does not answer a pre-crash long-poll"
            );
        }
        self.live = self
            .table
            .iter()
            .filter(|j| !j.is_terminal())
            .map(|j| j.id())
            .collect();
        self.observe();
    }

    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Submit => {
                if let Ok(id) = self.table.submit(NewJob::new(7), now) {
                    assert!(self.issued.insert(id), "{id:?} issued twice");
                    self.live.push(id);
                }
            }
            Op::Start => {
                let _ = self.table.start_next(now);
            }
            Op::Progress(k) => {
                if let Some(id) = self.pick(k) {
                    let _ = self.table.progress(id, k % 101, "p", now);
                }
            }
            Op::Succeed(k) => {
                if let Some(id) = self.pick(k) {
                    let _ = self.table.succeed(id, Severity::Normal, "ok", now);
                }
            }
            Op::Fail(k) => {
                if let Some(id) = self.pick(k) {
                    let _ = self.table.fail(id, 9, "no", now);
                }
            }
            Op::Cancel(k) => {
                if let Some(id) = self.pick(k) {
                    let _ = self.table.request_cancel(id, now);
                }
            }
            Op::Advance(ms) => {
                self.now += Duration::from_millis(u64::from(ms));
                self.table.expire(self.now);
            }
            Op::Save => {
                let table =
                    std::mem::replace(&mut self.table, Box::new(Table::new(Config::DEFAULT)));
                let mut buf = std::mem::take(&mut self.buf);
                self.store().save_table(&table, &mut buf).unwrap();
                self.buf = buf;
                self.table = table;
            }
            Op::Crash => self.reboot(None),
            Op::CrashInSave(cut) => {
                let table =
                    std::mem::replace(&mut self.table, Box::new(Table::new(Config::DEFAULT)));
                let mut buf = std::mem::take(&mut self.buf);
                let mut flash = self.store.take().map(AbStore::into_inner).unwrap();
                flash.cut_after(usize::from(cut));
                let mut store = AbStore::new(flash, 0, 8192).unwrap();
                let _ = store.save_table(&table, &mut buf);
                self.store = Some(store);
                self.buf = buf;
                self.reboot(None);
            }
            Op::CrashAfterRestore(cut) => {
                self.reboot(None);
                self.reboot(Some(cut));
            }
        }
        self.live
            .retain(|id| self.table.get(*id).is_ok_and(|j| !j.is_terminal()));
        self.observe();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("JOBSTATE_CRASH_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    /// R-ID, R-VERSION, R-DURABLE.
    #[test]
    fn r_durable_no_id_or_revision_is_issued_twice_across_crashes(ops in proptest::collection::vec(op(), 1..120)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
    }
}
