//! Model-based property test: random operation sequences run against the real `JobTable` and
//! the reference [`Model`]; every answer and the full observable state must match after every
//! operation, and an operation that answers an error must leave the table exactly as it was.
//!
//! Covers R-ID, R-TRANS, R-OUTCOME, R-CONTROL, R-VERSION, R-JOURNAL, R-DEPS, R-SCHED, R-FULL,
//! R-RETAIN, R-DEADLINE, R-INPUT, R-PRIORITY, R-RETRY, R-IDEMPOTENT and R-PERSIST (restarts
//! mid-sequence) together. The clock runs in ticks (microseconds on the host), finer than the
//! milliseconds a job keeps, so truncation is exercised all the time; operations come late to
//! jobs whose deadline or lease has passed, which the table fails itself (R-DEADLINE) before
//! answering `AlreadyTerminal` — or, for a lost lease with attempts left, queues again
//! (R-RETRY) before answering `NotRunning`.
//!
//! Retries: half of the jobs carry a retry policy (1–4 attempts, backoffs of 0–6 ms
//! doubling or not, a ceiling, jitter from a seed; now and then an invalid one); the worker's
//! `fail` and lost leases re-queue them, and operations reach them during and after their
//! backoff. Keys: a third of the submits carry one of 6 idempotency keys with one of 2
//! fingerprints, against a pool of 4 keys (2 in the tiny table). Restarts: now and then the
//! table is encoded and restored in place (epoch + 1), the model likewise.
//!
//! `JOBSTATE_MODEL_CASES` (default 2000) and `JOBSTATE_MODEL_OPS` (default 200) set the number
//! of cases and the operations per case. The long run (see docs/core.md):
//!
//! ```text
//! JOBSTATE_MODEL_CASES=6000 cargo test --release -p jobstate-tests --test model -- --nocapture
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use jobstate::MAX_DEPENDENCIES;
use jobstate::{
    Condition, Config, Duration, FailReason, Idempotent, Instant, JobError, JobId, JobOptions,
    JobTable, NewJob, Priority, RetryPolicy, Revision, Severity, State,
};
use jobstate_tests::{make_id, read_journal, JobView, Limits, Model, Snapshot};
use proptest::prelude::*;

/// Which id an operation names.
#[derive(Clone, Debug)]
enum IdSel {
    /// A running or paused job in the table.
    Active(u8),
    /// A queued, running or paused job in the table.
    Live(u8),
    /// Any job in the table.
    InTable(u8),
    /// A job waiting out a retry backoff.
    BackingOff(u8),
    /// One of the 8 most recently issued ids.
    Recent(u8),
    /// Any id issued so far.
    Any(u16),
    /// A slot index in range with a generation never issued.
    Unknown(u16),
    /// A slot index beyond the capacity.
    OutOfRange(u16),
    /// An issued id, but from the epoch before (stale when the table is in epoch 1).
    PrevEpoch(u16),
    /// An issued id, but from an epoch still to come.
    FutureEpoch(u16),
}

/// A text of `len` bytes; with `wide`, made of two-byte characters where it can.
#[derive(Clone, Debug)]
struct Txt {
    len: u8,
    wide: bool,
}

/// How the caller's clock moves before an operation.
#[derive(Clone, Debug)]
struct Tick {
    advance: u16,
    /// Pass an instant older than the newest one already passed (the table must clamp).
    back: bool,
}

/// A retry policy to submit with (durations in ticks; `u32::MAX`: 50 days, too long).
#[derive(Clone, Debug)]
struct Retry {
    max_attempts: u8,
    first: u32,
    multiplier: u8,
    ceiling: u32,
    jitter: u8,
    seed: u32,
}

impl Retry {
    fn policy(&self) -> RetryPolicy {
        let d = |t: u32| match t {
            u32::MAX => Duration::from_secs(50 * 86_400),
            t => Duration::from_ticks(u64::from(t)),
        };
        RetryPolicy {
            max_attempts: self.max_attempts,
            first_backoff: d(self.first),
            multiplier: self.multiplier,
            ceiling: d(self.ceiling),
            jitter_percent: self.jitter,
            seed: self.seed,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Submit {
        spec: u32,
        desc: Txt,
        deps: Vec<IdSel>,
        pausable: bool,
        cancelable: bool,
        restartable: bool,
        /// Priority level, 0 (low) to 3 (urgent).
        priority: u8,
        /// Ticks; `u32::MAX` stands for 50 days (longer than a table keeps).
        run_timeout: Option<u32>,
        lease: Option<u32>,
        retry: Option<Retry>,
        /// Idempotency key (one of 6) and fingerprint (one of 2).
        key: Option<(u8, u8)>,
    },
    Start(IdSel),
    StartNext,
    Progress(IdSel, u8, Txt),
    Log(IdSel, Txt),
    Heartbeat(IdSel),
    WorkerLost(IdSel),
    Pause(IdSel),
    Resume(IdSel),
    Cancel(IdSel),
    Checkpoint(IdSel),
    Succeed(IdSel, u8, Txt),
    Fail(IdSel, i32, Txt),
    FailFinal(IdSel, i32, Txt),
    FailWith(IdSel, u8, Option<i32>, Txt),
    /// Encode the table and restore it in place (a restart).
    Restore,
    /// Which job an idempotency key names.
    KeyJob(u8),
    Expire,
    Get(IdSel),
    Check(IdSel, u8, u16),
    Journal(i16),
    Peek,
}

fn id_sel() -> impl Strategy<Value = IdSel> {
    prop_oneof![
        8 => any::<u8>().prop_map(IdSel::Active),
        6 => any::<u8>().prop_map(IdSel::Live),
        3 => any::<u8>().prop_map(IdSel::BackingOff),
        3 => any::<u8>().prop_map(IdSel::InTable),
        4 => any::<u8>().prop_map(IdSel::Recent),
        2 => any::<u16>().prop_map(IdSel::Any),
        1 => any::<u16>().prop_map(IdSel::Unknown),
        1 => any::<u16>().prop_map(IdSel::OutOfRange),
        1 => any::<u16>().prop_map(IdSel::PrevEpoch),
        1 => any::<u16>().prop_map(IdSel::FutureEpoch),
    ]
}

/// Dependencies: mostly jobs in the table, sometimes bad ones.
fn dep_sel() -> impl Strategy<Value = IdSel> {
    prop_oneof![
        12 => any::<u8>().prop_map(IdSel::Live),
        6 => any::<u8>().prop_map(IdSel::InTable),
        1 => any::<u8>().prop_map(IdSel::Recent),
        1 => any::<u16>().prop_map(IdSel::Any),
        1 => any::<u16>().prop_map(IdSel::Unknown),
        1 => any::<u16>().prop_map(IdSel::PrevEpoch),
    ]
}

fn txt(cap: u8) -> impl Strategy<Value = Txt> {
    prop_oneof![
        12 => (0..=cap / 2, any::<bool>()).prop_map(|(len, wide)| Txt { len, wide }),
        2 => (cap.saturating_sub(2)..=cap.saturating_add(3), any::<bool>())
            .prop_map(|(len, wide)| Txt { len, wide }),
    ]
}

fn tick() -> impl Strategy<Value = Tick> {
    prop_oneof![
        8 => Just(Tick { advance: 0, back: false }),
        8 => (1u16..50).prop_map(|advance| Tick { advance, back: false }),
        3 => (100u16..2500).prop_map(|advance| Tick { advance, back: false }),
        1 => (1u16..300).prop_map(|advance| Tick { advance, back: true }),
    ]
}

/// A run timeout or lease in ticks, now and then one longer than a table keeps.
fn duration(max: u32) -> impl Strategy<Value = Option<u32>> {
    prop::option::weighted(0.3, prop_oneof![40 => 0..max, 1 => Just(u32::MAX)])
}

/// A backoff in ticks: often none, now and then too long for a table.
fn backoff() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(0u32), 12 => 1u32..1500, 4 => 1500u32..6000, 1 => Just(u32::MAX)]
}

fn retry() -> impl Strategy<Value = Option<Retry>> {
    let policy = (
        prop_oneof![1 => Just(0u8), 4 => Just(1u8), 30 => 2u8..=4],
        backoff(),
        prop_oneof![1 => Just(0u8), 12 => Just(1u8), 24 => Just(2u8), 6 => 3u8..=255],
        prop_oneof![3 => 1u32..8000, 1 => backoff()],
        prop_oneof![10 => Just(0u8), 10 => 1u8..=100, 1 => 101u8..=255],
        any::<u32>(),
    )
        .prop_map(
            |(max_attempts, first, multiplier, ceiling, jitter, seed)| Retry {
                max_attempts,
                first,
                multiplier,
                ceiling,
                jitter,
                seed,
            },
        );
    prop::option::weighted(0.5, policy)
}

fn op(text_cap: u8, max_deps: usize) -> impl Strategy<Value = Op> {
    let submit = (
        any::<u32>(),
        txt(text_cap),
        prop_oneof![
            18 => prop::collection::vec(dep_sel(), 0..=max_deps),
            1 => prop::collection::vec(dep_sel(), MAX_DEPENDENCIES..=MAX_DEPENDENCIES + 1),
        ],
        (
            prop::array::uniform2(prop::bool::weighted(0.85)),
            prop::bool::weighted(0.3),
            prop_oneof![3 => Just(1u8), 1 => 0u8..4],
        ),
        (duration(3000), duration(1500)),
        retry(),
        prop::option::weighted(0.3, (0u8..6, 0u8..2)),
    )
        .prop_map(
            |(
                spec,
                desc,
                deps,
                ([pausable, cancelable], restartable, priority),
                (run_timeout, lease),
                retry,
                key,
            )| {
                Op::Submit {
                    spec,
                    desc,
                    deps,
                    pausable,
                    cancelable,
                    restartable,
                    priority,
                    run_timeout,
                    lease,
                    retry,
                    key,
                }
            },
        );
    prop_oneof![
        6 => submit,
        2 => id_sel().prop_map(Op::Start),
        1 => any::<u8>().prop_map(|k| Op::Start(IdSel::BackingOff(k))),
        4 => Just(Op::StartNext),
        3 => (id_sel(), prop_oneof![9 => 0u8..=100, 1 => 101u8..=255], txt(text_cap))
            .prop_map(|(i, p, t)| Op::Progress(i, p, t)),
        1 => (id_sel(), txt(text_cap)).prop_map(|(i, t)| Op::Log(i, t)),
        1 => id_sel().prop_map(Op::Heartbeat),
        1 => id_sel().prop_map(Op::WorkerLost),
        2 => id_sel().prop_map(Op::Pause),
        2 => id_sel().prop_map(Op::Resume),
        2 => id_sel().prop_map(Op::Cancel),
        3 => id_sel().prop_map(Op::Checkpoint),
        3 => (id_sel(), 0u8..3, txt(text_cap)).prop_map(|(i, s, t)| Op::Succeed(i, s, t)),
        5 => (id_sel(), any::<i32>(), txt(text_cap)).prop_map(|(i, c, t)| Op::Fail(i, c, t)),
        1 => (id_sel(), any::<i32>(), txt(text_cap)).prop_map(|(i, c, t)| Op::FailFinal(i, c, t)),
        1 => (id_sel(), 0u8..5, prop::option::of(any::<i32>()), txt(text_cap))
            .prop_map(|(i, r, c, t)| Op::FailWith(i, r, c, t)),
        2 => Just(Op::Expire),
        1 => id_sel().prop_map(Op::Get),
        1 => (id_sel(), 0u8..4, 0u16..40).prop_map(|(i, k, b)| Op::Check(i, k, b)),
        1 => (-3i16..40).prop_map(Op::Journal),
        1 => Just(Op::Peek),
        1 => Just(Op::Restore),
        1 => (0u8..6).prop_map(Op::KeyJob),
    ]
}

fn make_text(t: &Txt) -> String {
    let mut s = String::new();
    while s.len() < usize::from(t.len) {
        let left = usize::from(t.len) - s.len();
        s.push(if t.wide && left >= 2 { 'é' } else { 'a' });
    }
    s
}

/// The harness state: the caller's clock and the ids issued so far, in issue order.
struct Run {
    clock: u64,
    ids: Vec<JobId>,
    capacity: u16,
    epoch: u32,
}

impl Run {
    fn now(&mut self, tick: &Tick) -> Instant {
        if tick.back {
            Instant::from_ticks(self.clock.saturating_sub(u64::from(tick.advance)))
        } else {
            self.clock += u64::from(tick.advance);
            Instant::from_ticks(self.clock)
        }
    }

    fn id(&self, sel: &IdSel, table: &Snapshot<u32>) -> JobId {
        let pick = |k: usize| self.ids.get(k % self.ids.len().max(1)).copied();
        let among = |k: u8, keep: &dyn Fn(State) -> bool| {
            let ids: Vec<JobId> = table
                .jobs
                .iter()
                .filter(|j| keep(j.state))
                .map(|j| j.id)
                .collect();
            ids.get(usize::from(k) % ids.len().max(1))
                .copied()
                .or_else(|| pick(usize::from(k)))
        };
        let known = match sel {
            IdSel::Active(k) => among(*k, &|s| matches!(s, State::Running | State::Paused)),
            IdSel::Live(k) => among(*k, &|s| !s.is_terminal()),
            IdSel::InTable(k) => among(*k, &|_| true),
            IdSel::BackingOff(k) => {
                let ids: Vec<JobId> = table
                    .jobs
                    .iter()
                    .filter(|j| j.retry_at.is_some())
                    .map(|j| j.id)
                    .collect();
                ids.get(usize::from(*k) % ids.len().max(1))
                    .copied()
                    .or_else(|| among(*k, &|s| !s.is_terminal()))
            }
            IdSel::Recent(k) => {
                let window = self.ids.len().clamp(1, 8);
                pick(self.ids.len().saturating_sub(1 + usize::from(*k) % window))
            }
            IdSel::Any(k) | IdSel::PrevEpoch(k) | IdSel::FutureEpoch(k) => pick(usize::from(*k)),
            IdSel::Unknown(k) => {
                return make_id(self.epoch, k % self.capacity, 1_000_000 + u32::from(*k));
            }
            IdSel::OutOfRange(k) => {
                return make_id(self.epoch, self.capacity.saturating_add(k % 1000), 1);
            }
        };
        let base = known.unwrap_or_else(|| make_id(self.epoch, 0, 1));
        match sel {
            IdSel::PrevEpoch(_) => {
                make_id(self.epoch.wrapping_sub(1), base.index(), base.generation())
            }
            IdSel::FutureEpoch(_) => make_id(self.epoch + 1, base.index(), base.generation()),
            _ => base,
        }
    }
}

/// Operations checked, per test.
static OPS: AtomicU64 = AtomicU64::new(0);
static TINY_OPS: AtomicU64 = AtomicU64::new(0);

/// What the generated sequences reached, printed with `--nocapture` (coverage of the generator).
mod stats {
    use super::*;
    use std::sync::Mutex;
    pub static SEEN: Mutex<std::collections::BTreeMap<String, u64>> =
        Mutex::new(std::collections::BTreeMap::new());
    pub fn bump(k: String) {
        *SEEN.lock().unwrap().entry(k).or_default() += 1;
    }
    pub fn error(op: &Op, e: String) {
        let name = format!("{op:?}");
        let name = name.split(['(', ' ']).next().unwrap_or("").to_string();
        // The variant, without ids, numbers or tombstones.
        let e: String = e
            .split(|c: char| c == '{' || c.is_ascii_digit())
            .next()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect();
        bump(format!("  {name} {e}"));
    }
    pub fn note(op: &Op, before: &Snapshot<u32>, after: &Snapshot<u32>, refused: bool) {
        let name = format!("{op:?}");
        let name = name.split(['(', ' ']).next().unwrap_or("").to_string();
        bump(format!("{name} {}", if refused { "err" } else { "ok" }));
        let removed = after.journal_kept.as_ref().map_or(0, |e| {
            e.iter()
                .filter(|e| {
                    e.revision > before.revision && e.kind == jobstate_tests::KindView::Removed
                })
                .count()
        });
        if removed > 1 {
            bump(format!("{name} removed>1"));
        }
        if removed == 1 && name == "Submit" {
            bump("Submit evicted".into());
        }
        if after.len == 8 {
            bump("table at 8".into());
        }
        let cascades = after
            .jobs
            .iter()
            .filter(|j| {
                j.outcome.is_some_and(|o| {
                    matches!(
                        o,
                        jobstate::Outcome::Failed {
                            reason: jobstate::FailReason::DependencyFailed,
                            ..
                        }
                    )
                }) && j.ended == Some(after.now)
                    && j.revision > before.revision
            })
            .count();
        if cascades > 1 {
            bump("cascade >1 in one op".into());
        }
        if after
            .jobs
            .iter()
            .any(|j| j.state == jobstate::State::Paused)
        {
            bump("a job paused".into());
        }
        if after.journal_from_zero.is_err() {
            bump("journal compacted".into());
        }
        for b in before.jobs.iter().filter(|j| j.retry_at.is_some()) {
            match after.jobs.iter().find(|j| j.id == b.id) {
                Some(a) if a.retry_at.is_none() => {
                    bump(format!("backoff left by {name}: {:?}", a.state));
                }
                None => bump(format!("backoff left by {name}: removed")),
                _ => {}
            }
        }
        if after.jobs.iter().any(|j| j.retry_at.is_some()) {
            bump("a job backing off".into());
        }
        if after
            .jobs
            .iter()
            .any(|j| j.attempt > 1 && j.state == jobstate::State::Running)
        {
            bump("a retried job running".into());
        }
        let ready = after.journal_kept.as_ref().map_or(0, |e| {
            e.iter()
                .filter(|e| {
                    e.revision > before.revision && e.kind == jobstate_tests::KindView::Ready
                })
                .count()
        });
        if ready > 0 {
            bump(format!("{name} made a job ready"));
        }
    }
}

fn severity(s: u8) -> Severity {
    match s {
        0 => Severity::Normal,
        1 => Severity::Warning,
        _ => Severity::PartialFailure,
    }
}

fn reason(r: u8) -> FailReason {
    match r {
        0 => FailReason::Error,
        1 => FailReason::Canceled,
        2 => FailReason::TimedOut,
        3 => FailReason::DependencyFailed,
        _ => FailReason::Interrupted,
    }
}

fn ticks(d: Option<u32>) -> Option<Duration> {
    d.map(|t| match t {
        u32::MAX => Duration::from_secs(50 * 86_400),
        t => Duration::from_ticks(u64::from(t)),
    })
}

/// The idempotency keys the sequences use.
const KEYS: [&[u8]; 6] = [b"k0", b"k1", b"key-2", b"k3", b"opc-retry-token-4", b"5"];

/// Run one sequence against a `JobTable<u32, N, T, J, L, E, K, I>` in `epoch` (1: restored
/// once from an empty table's image) and the model.
fn run_case<
    const N: usize,
    const T: usize,
    const J: usize,
    const L: usize,
    const E: usize,
    const K: usize,
    const I: usize,
>(
    ops: &[(Tick, Op)],
    retention: Duration,
    epoch: u32,
    counter: &AtomicU64,
) -> Result<(), TestCaseError> {
    let mut table: Box<JobTable<u32, N, T, J, L, E, K, I>> =
        Box::new(JobTable::new(Config { retention }));
    let mut image = vec![0u8; JobTable::<u32, N, T, J, L, E, K, I>::image_size_bound(5)];
    for _ in 0..epoch {
        let len = table.encode(&mut image).unwrap();
        table
            .restore_in_place(&image[..len], Instant::from_ticks(0))
            .unwrap();
    }
    let mut model = Model::<u32>::in_epoch(
        Limits {
            jobs: N,
            text: T,
            journal: J,
            log_ring: L,
            edges: E,
            tombstones: K,
            keys: I,
            retention,
        },
        epoch,
    );
    let mut run = Run {
        clock: 0,
        ids: Vec::new(),
        capacity: N as u16,
        epoch,
    };
    let mut before = Snapshot::of(&*table);
    prop_assert_eq!(&before, &model.snapshot());
    for (step, (tick, op)) in ops.iter().enumerate() {
        let now = run.now(tick);
        // `true` when the real table answered an error that must leave it unchanged: every
        // error of an operation for which the model took no revision (one that times a job
        // out, or makes a job whose backoff ended runnable, before it answers, changes it).
        let refused: bool;
        let model_revision = model.revision();
        macro_rules! same {
            ($id:expr, $real:expr, $model:expr) => {{
                let real = $real;
                let expected = $model;
                prop_assert_eq!(&real, &expected, "step {}: {:?}", step, op);
                let timed_out = real.already_terminal()
                    && before
                        .jobs
                        .iter()
                        .any(|j| j.id == $id && !j.state.is_terminal());
                if timed_out {
                    stats::bump("timed out by a late operation".into());
                }
                refused = real.is_err() && model.revision() == model_revision;
                if let Err(e) = &real {
                    stats::error(op, format!("{e:?}"));
                }
            }};
        }
        match op {
            Op::Submit {
                spec,
                desc,
                deps,
                pausable,
                cancelable,
                restartable,
                priority,
                run_timeout,
                lease,
                retry,
                key,
            } => {
                let desc = make_text(desc);
                let priority = Priority::of_level(*priority);
                let deps: Vec<JobId> = deps.iter().map(|s| run.id(s, &before)).collect();
                let options = JobOptions {
                    pausable: *pausable,
                    cancelable: *cancelable,
                    restartable: *restartable,
                    run_timeout: ticks(*run_timeout),
                    lease: ticks(*lease),
                };
                let policy = retry.as_ref().map(Retry::policy);
                let mut job = NewJob::new(*spec)
                    .description(&desc)
                    .depends_on(&deps)
                    .options(options)
                    .priority(priority);
                if let Some(p) = policy {
                    job = job.retry(p);
                }
                let (real, expected) = match key {
                    None => (
                        table.submit(job, now).map(Idempotent::New),
                        model
                            .submit_with(*spec, &desc, &deps, options, priority, policy, now)
                            .map(Idempotent::New),
                    ),
                    Some((k, fp)) => {
                        let key = KEYS[usize::from(*k)];
                        let fp = u64::from(*fp);
                        (
                            table.submit_idempotent(job, key, fp, now),
                            model.submit_idempotent(
                                (*spec, &desc, &deps, options, priority, policy),
                                key,
                                fp,
                                now,
                            ),
                        )
                    }
                };
                // A refusal hands the job back, spec included (R-FULL).
                let real = real.map_err(|r| {
                    let error = r.error;
                    assert_eq!(r.into_spec(), *spec, "the refused job comes back");
                    error
                });
                prop_assert_eq!(real, expected, "step {}: {:?}", step, op);
                match real {
                    Ok(Idempotent::New(id)) => run.ids.push(id),
                    Ok(Idempotent::Existing(_)) => stats::bump("  Submit Existing".into()),
                    Err(_) => {}
                }
                refused = real.is_err();
                if let Err(e) = &real {
                    stats::error(op, format!("{e:?}"));
                }
            }
            Op::Start(s) => {
                let id = run.id(s, &before);
                same!(id, table.start(id, now), model.start(id, now));
            }
            Op::StartNext => {
                let real = table.start_next(now);
                prop_assert_eq!(real, model.start_next(now), "step {}", step);
                refused = false;
            }
            Op::Progress(s, p, t) => {
                let (id, t) = (run.id(s, &before), make_text(t));
                same!(
                    id,
                    table.progress(id, *p, &t, now),
                    model.progress(id, *p, &t, now)
                );
            }
            Op::Log(s, t) => {
                let (id, t) = (run.id(s, &before), make_text(t));
                same!(id, table.log(id, &t, now), model.log(id, &t, now));
            }
            Op::Heartbeat(s) => {
                let id = run.id(s, &before);
                same!(id, table.heartbeat(id, now), model.heartbeat(id, now));
            }
            Op::WorkerLost(s) => {
                let id = run.id(s, &before);
                same!(id, table.worker_lost(id, now), model.worker_lost(id, now));
            }
            Op::Pause(s) => {
                let id = run.id(s, &before);
                same!(
                    id,
                    table.request_pause(id, now),
                    model.request_pause(id, now)
                );
            }
            Op::Resume(s) => {
                let id = run.id(s, &before);
                same!(
                    id,
                    table.request_resume(id, now),
                    model.request_resume(id, now)
                );
            }
            Op::Cancel(s) => {
                let id = run.id(s, &before);
                same!(
                    id,
                    table.request_cancel(id, now),
                    model.request_cancel(id, now)
                );
            }
            Op::Checkpoint(s) => {
                let id = run.id(s, &before);
                same!(id, table.checkpoint(id, now), model.checkpoint(id, now));
            }
            Op::Succeed(s, sev, t) => {
                let (id, t) = (run.id(s, &before), make_text(t));
                let sev = severity(*sev);
                same!(
                    id,
                    table.succeed(id, sev, &t, now),
                    model.succeed(id, sev, &t, now)
                );
            }
            Op::Fail(s, code, t) => {
                let (id, t) = (run.id(s, &before), make_text(t));
                same!(
                    id,
                    table.fail(id, *code, &t, now),
                    model.fail(id, *code, &t, now)
                );
            }
            Op::FailFinal(s, code, t) => {
                let (id, t) = (run.id(s, &before), make_text(t));
                same!(
                    id,
                    table.fail_final(id, *code, &t, now),
                    model.fail_final(id, *code, &t, now)
                );
            }
            Op::Restore => {
                let len = table.encode(&mut image).unwrap();
                let real = table.restore_in_place(&image[..len], now).unwrap();
                prop_assert_eq!(real, model.restore(now), "step {}: {:?}", step, op);
                run.epoch += 1;
                refused = false;
            }
            Op::KeyJob(k) => {
                let key = KEYS[usize::from(*k)];
                let real = table.key_job(key);
                prop_assert_eq!(real, model.key_job(key), "step {}: {:?}", step, op);
                if real.is_some() {
                    stats::bump("  KeyJob held".into());
                }
                refused = false;
            }
            Op::FailWith(s, r, code, t) => {
                let (id, t) = (run.id(s, &before), make_text(t));
                let r = reason(*r);
                same!(
                    id,
                    table.fail_with(id, r, *code, &t, now),
                    model.fail_with(id, r, *code, &t, now)
                );
            }
            Op::Expire => {
                let real = table.expire(now);
                prop_assert_eq!(real, model.expire(now), "step {}", step);
                refused = false;
            }
            Op::Get(s) => {
                let id = run.id(s, &before);
                let expected = model.get(id);
                // An owned copy does not carry the retry policy.
                prop_assert_eq!(
                    table.snapshot(id).map(|j| JobView::of_job(&j)),
                    expected.clone().map(|v| JobView {
                        retry_policy: None,
                        ..v
                    }),
                    "step {}: {:?}",
                    step,
                    op
                );
                same!(id, table.get(id).map(JobView::of), expected);
            }
            Op::Check(s, kind, back) => {
                let id = run.id(s, &before);
                let rev = Revision::new(table.revision().get().saturating_sub(u64::from(*back)));
                let at = Instant::from_ticks(
                    table
                        .now()
                        .as_ticks()
                        .saturating_sub(u64::from(*back) * 200),
                );
                let condition = match kind {
                    0 => Condition::ChangedSince(rev),
                    1 => Condition::StateChangedSince(rev),
                    2 => Condition::Terminal,
                    _ => Condition::ModifiedAfter(at),
                };
                same!(
                    id,
                    table.check(id, condition).map(|j| j.map(JobView::of)),
                    model.check(id, condition)
                );
            }
            Op::Journal(back) => {
                let after =
                    i64::try_from(table.revision().get()).unwrap_or(i64::MAX) - i64::from(*back);
                let after = Revision::new(u64::try_from(after.max(0)).unwrap_or(0));
                let real = read_journal(&*table, after);
                prop_assert_eq!(&real, &model.journal(after), "step {}: {:?}", step, op);
                refused = false;
            }
            Op::Peek => {
                prop_assert_eq!(table.peek_runnable(), model.peek_runnable());
                refused = false;
            }
        }
        let after = Snapshot::of(&*table);
        stats::note(op, &before, &after, refused);
        if refused {
            prop_assert_eq!(
                &after,
                &before,
                "step {}: an error changed the table: {:?}",
                step,
                op
            );
        }
        prop_assert_eq!(&after, &model.snapshot(), "step {}: {:?}", step, op);
        before = after;
    }
    // No id was ever issued twice (R-ID).
    let mut ids = run.ids.clone();
    ids.sort();
    ids.dedup();
    prop_assert_eq!(ids.len(), run.ids.len());
    counter.fetch_add(ops.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// Whether an answer is `Err(AlreadyTerminal)`.
trait AlreadyTerminal {
    fn already_terminal(&self) -> bool;
}
impl<V> AlreadyTerminal for Result<V, JobError> {
    fn already_terminal(&self) -> bool {
        matches!(self, Err(JobError::AlreadyTerminal))
    }
}
impl<V> AlreadyTerminal for Result<V, jobstate::LookupError> {
    fn already_terminal(&self) -> bool {
        false
    }
}

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ops_strategy(text_cap: u8, max_deps: usize) -> impl Strategy<Value = Vec<(Tick, Op)>> {
    let n = env("JOBSTATE_MODEL_OPS", 200) as usize;
    prop::collection::vec((tick(), op(text_cap, max_deps)), n..=n)
}

/// The main run: 8 jobs, 32-byte texts, a 16-event journal, a 64-byte log ring, a pool of 6
/// dependency edges, 4 tombstones; in epoch 1 (restored once), up to 3 dependencies a job.
#[test]
fn model_matches_table() {
    let config = ProptestConfig {
        cases: env("JOBSTATE_MODEL_CASES", 2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in ops_strategy(32, 3))| {
        run_case::<8, 32, 16, 64, 6, 4, 4>(&ops, Duration::from_ticks(1000), 1, &OPS)?;
    });
    let total = OPS.load(Ordering::Relaxed);
    eprintln!("model_matches_table: {total} operations checked against the model");
    for (k, v) in stats::SEEN.lock().unwrap().iter() {
        eprintln!("{k:30} {v}");
    }
}

/// Tight limits: 3 jobs, 8-byte texts, a 4-event journal (compaction all the time), a 12-byte
/// log ring (lines overwritten at once), 2 dependency edges, 2 tombstones, no retention; in
/// epoch 0 (a new table).
#[test]
fn model_matches_tiny_table() {
    let config = ProptestConfig {
        cases: env("JOBSTATE_MODEL_CASES", 2000) / 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in ops_strategy(8, 2))| {
        run_case::<3, 8, 4, 12, 2, 2, 2>(&ops, Duration::from_ticks(0), 0, &TINY_OPS)?;
    });
    let total = TINY_OPS.load(Ordering::Relaxed);
    eprintln!("model_matches_tiny_table: {total} operations checked against the model");
}
