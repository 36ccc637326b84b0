//! Shared by the persistence tests: a compact operation generator over every table operation,
//! an interpreter, a comparison of every observable answer, and an image sealer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use jobstate::persist::{DecodeError, Restored, FORMAT_VERSION, HEADER_LEN, MAGIC};
use jobstate::{
    Condition, Config, Duration, Instant, JobError, JobId, JobOptions, JobTable, NewJob, Priority,
    Revision, Severity, SubmitError,
};
use jobstate_tests::JobView;
use proptest::prelude::*;

/// Small on purpose: tables fill up, slots get reused, tombstones, the journal, the log ring
/// and the dependency pool wrap or run out (6 jobs, 16-byte texts, 8 events, a 48-byte log
/// ring, 6 dependency edges, 4 tombstones).
pub type Table = JobTable<u32, 6, 16, 8, 48, 6, 4>;
/// Enough for any image of [`Table`] (a `u32` spec encodes to at most 5 bytes).
pub const IMAGE: usize = Table::image_size_bound(5);

/// One operation; `usize` picks among the ids issued so far (modulo their number).
#[derive(Clone, Debug)]
pub enum Op {
    Submit {
        spec: u32,
        deps: Vec<usize>,
        restartable: bool,
        pausable: bool,
        cancelable: bool,
        run_timeout: Option<u8>,
        lease: Option<u8>,
        long_text: bool,
        /// Priority level, 0 (low) to 3 (urgent).
        priority: u8,
    },
    StartNext,
    Start(usize),
    Progress(usize, u8),
    Log(usize),
    Heartbeat(usize),
    Checkpoint(usize),
    Succeed(usize),
    Fail(usize, i32),
    Pause(usize),
    Resume(usize),
    Cancel(usize),
    /// Move time forward this many seconds and run the timer sweep.
    Advance(u8),
}

pub fn op() -> impl Strategy<Value = Op> {
    let submit = (
        any::<u32>(),
        prop::collection::vec(any::<usize>(), 0..3),
        any::<[bool; 4]>(),
        prop::option::of(1u8..20),
        prop::option::of(1u8..20),
        0u8..4,
    )
        .prop_map(|(spec, deps, b, run_timeout, lease, priority)| Op::Submit {
            spec,
            deps,
            restartable: b[0],
            pausable: b[1],
            cancelable: b[2],
            run_timeout,
            lease,
            long_text: b[3] && spec % 7 == 0,
            priority,
        });
    prop_oneof![
        4 => submit,
        3 => Just(Op::StartNext),
        1 => any::<usize>().prop_map(Op::Start),
        2 => (any::<usize>(), 0u8..=110).prop_map(|(i, p)| Op::Progress(i, p)),
        1 => any::<usize>().prop_map(Op::Log),
        1 => any::<usize>().prop_map(Op::Heartbeat),
        2 => any::<usize>().prop_map(Op::Checkpoint),
        2 => any::<usize>().prop_map(Op::Succeed),
        1 => (any::<usize>(), any::<i32>()).prop_map(|(i, c)| Op::Fail(i, c)),
        1 => any::<usize>().prop_map(Op::Pause),
        1 => any::<usize>().prop_map(Op::Resume),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => (0u8..30).prop_map(Op::Advance),
    ]
}

pub fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..max)
}

/// The answer of one operation, to compare two tables answer by answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Submit(Result<JobId, SubmitError>),
    Started(Option<JobId>),
    Job(Result<(), JobError>),
    Directive(Result<jobstate::Directive, JobError>),
    Expired(jobstate::Expired),
    Nothing,
}

/// A driver: the table, the ids it issued, the clock.
#[derive(Clone)]
pub struct Run {
    pub ids: Vec<JobId>,
    pub now: Instant,
}

impl Run {
    pub fn new() -> Self {
        Self {
            ids: Vec::new(),
            now: Instant::from_secs(0),
        }
    }

    fn pick(&self, k: usize) -> JobId {
        // An id never issued when none was: answers NotFound, which is an answer too.
        self.ids
            .get(k % self.ids.len().max(1))
            .copied()
            .unwrap_or_else(|| JobId::from_bytes([0, 0, 0, 1, 0, 0, 0, 1, 0, 0]))
    }

    /// Apply `op`; new ids are remembered.
    pub fn apply(&mut self, table: &mut Table, op: &Op) -> Answer {
        let now = self.now;
        match op {
            Op::Submit {
                spec,
                deps,
                restartable,
                pausable,
                cancelable,
                run_timeout,
                lease,
                long_text,
                priority,
            } => {
                let deps: Vec<JobId> = deps.iter().map(|k| self.pick(*k)).collect();
                let options = JobOptions {
                    restartable: *restartable,
                    pausable: *pausable,
                    cancelable: *cancelable,
                    run_timeout: run_timeout.map(|s| Duration::from_secs(u64::from(s))),
                    lease: lease.map(|s| Duration::from_secs(u64::from(s))),
                };
                let text = if *long_text {
                    "a description that is too long for sixteen bytes"
                } else {
                    "job"
                };
                let r = table.submit(
                    NewJob::new(*spec)
                        .description(text)
                        .depends_on(&deps)
                        .options(options)
                        .priority(Priority::of_level(*priority)),
                    now,
                );
                if let Ok(id) = r {
                    self.ids.push(id);
                }
                // A refusal hands the job back (R-FULL).
                Answer::Submit(r.map_err(|refused| {
                    assert_eq!(*refused.job.spec(), *spec);
                    refused.error
                }))
            }
            Op::StartNext => Answer::Started(table.start_next(now)),
            Op::Start(k) => Answer::Job(table.start(self.pick(*k), now)),
            Op::Progress(k, p) => Answer::Job(table.progress(self.pick(*k), *p, "step", now)),
            Op::Log(k) => Answer::Job(table.log(self.pick(*k), "line", now)),
            Op::Heartbeat(k) => Answer::Job(table.heartbeat(self.pick(*k), now)),
            Op::Checkpoint(k) => Answer::Directive(table.checkpoint(self.pick(*k), now)),
            Op::Succeed(k) => {
                Answer::Job(table.succeed(self.pick(*k), Severity::Warning, "done", now))
            }
            Op::Fail(k, c) => Answer::Job(table.fail(self.pick(*k), *c, "broke", now)),
            Op::Pause(k) => Answer::Job(table.request_pause(self.pick(*k), now)),
            Op::Resume(k) => Answer::Job(table.request_resume(self.pick(*k), now)),
            Op::Cancel(k) => Answer::Job(table.request_cancel(self.pick(*k), now)),
            Op::Advance(s) => {
                self.now = Instant::from_ticks(
                    now.as_ticks() + Duration::from_secs(u64::from(*s)).as_ticks(),
                );
                Answer::Expired(table.expire(self.now))
            }
        }
    }

    pub fn apply_all(&mut self, table: &mut Table, ops: &[Op]) {
        for op in ops {
            self.apply(table, op);
        }
    }
}

pub fn table() -> Table {
    Table::new(Config {
        retention: Duration::from_secs(10),
    })
}

pub fn encode(t: &Table) -> Vec<u8> {
    let mut buf = vec![0u8; IMAGE];
    let len = t.encode(&mut buf).expect("the size bound is enough");
    buf.truncate(len);
    buf
}

/// Decode an image into a new table on the heap (`decode_in_place`).
pub fn decode(image: &[u8]) -> Result<Box<Table>, DecodeError> {
    let mut t = Box::new(table());
    t.decode_in_place(image)?;
    Ok(t)
}

/// Restore an image into a new table on the heap (`restore_in_place`).
pub fn restore(image: &[u8], now: Instant) -> Result<(Box<Table>, Restored), DecodeError> {
    let mut t = Box::new(table());
    let report = t.restore_in_place(image, now)?;
    Ok((t, report))
}

/// A copy of a table, through an image (the table itself is not `Clone`).
pub fn copy(t: &Table) -> Box<Table> {
    decode(&encode(t)).expect("own image decodes")
}

/// Every job as its getters answer, in slot order.
pub fn jobs(t: &Table) -> Vec<JobView<u32>> {
    t.iter().map(JobView::of).collect()
}

/// Every observable answer of the two tables is equal, for every id in `ids`; the journal is
/// compared only as far as a decoded table keeps it (compacted at its revision).
pub fn assert_same(a: &Table, b: &Table, ids: &[JobId]) {
    assert_eq!(a.revision(), b.revision(), "revision");
    assert_eq!(a.epoch(), b.epoch(), "epoch");
    assert_eq!(a.now(), b.now(), "now");
    assert_eq!(a.len(), b.len(), "len");
    assert_eq!(a.retired(), b.retired(), "retired");
    assert_eq!(a.config(), b.config(), "config");
    assert_eq!(a.peek_runnable(), b.peek_runnable(), "peek_runnable");
    assert_eq!(a.next_timer(), b.next_timer(), "next_timer");
    assert_eq!(a.next_free_at(), b.next_free_at(), "next_free_at");
    assert_eq!(jobs(a), jobs(b), "jobs");
    assert!(a.tombstones().eq(b.tombstones()), "tombstones");
    for id in ids {
        assert_eq!(
            a.get(*id).map(JobView::of),
            b.get(*id).map(JobView::of),
            "get {id}"
        );
        assert_eq!(a.snapshot(*id), b.snapshot(*id), "snapshot {id}");
        for c in [
            Condition::Terminal,
            Condition::ChangedSince(Revision::new(a.revision().get() / 2)),
        ] {
            assert_eq!(
                a.check(*id, c).map(|j| j.map(JobView::of)),
                b.check(*id, c).map(|j| j.map(JobView::of)),
                "check {id}"
            );
        }
    }
}

/// The runnable order: start every runnable job on a copy, oldest first.
pub fn start_order(t: &Table) -> Vec<JobId> {
    let mut c = copy(t);
    let now = c.now();
    std::iter::from_fn(|| c.start_next(now)).collect()
}

/// Wrap `body` in a valid header, so the body's own checks are what is tested.
pub fn seal(body: &[u8]) -> Vec<u8> {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    let mut d = CRC.digest();
    d.update(&out[..9]);
    d.update(body);
    out.extend_from_slice(&d.finalize().to_le_bytes());
    out.extend_from_slice(body);
    out
}
