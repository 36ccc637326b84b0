//! Throughput of submit → run → complete with 1, 2 and 4 workers, with 1,000 idle blocking
//! waiters present, against the engine a team writes itself: a `Mutex<HashMap<u64, Job>>`
//! with one `Condvar` and `notify_all` on every change (the baseline, in this file).
//!
//! One iteration = a batch of jobs submitted by one client thread, each waited for until it
//! ends. Run: `cargo bench -p jobstate-std --bench throughput`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use jobstate::{Condition, JobId, LookupError, NewJob, State};
use jobstate_std::{Engine, EngineConfig, Success, WaitError, WorkerPool, DEFAULT_MAX_WAIT};

const IDLE_WAITERS: usize = 1_000;
const BATCH: usize = 100;
const IDLE_STACK: usize = 64 * 1024;

// ----- the baseline -------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum NState {
    Queued,
    Running,
    Done,
}

#[derive(Clone)]
#[allow(dead_code)]
struct NJob {
    spec: u64,
    state: NState,
    progress: u8,
    message: String,
}

#[derive(Default)]
struct NTable {
    jobs: HashMap<u64, NJob>,
    queue: VecDeque<u64>,
    next: u64,
    stop: bool,
}

/// "What a team writes itself": one mutex, one condvar, wake everybody on every change.
#[derive(Default)]
struct Naive {
    t: Mutex<NTable>,
    cv: Condvar,
}

impl Naive {
    fn insert(&self, spec: u64, runnable: bool) -> u64 {
        let mut t = self.t.lock().unwrap();
        t.next += 1;
        let id = t.next;
        t.jobs.insert(
            id,
            NJob {
                spec,
                state: NState::Queued,
                progress: 0,
                message: String::new(),
            },
        );
        if runnable {
            t.queue.push_back(id);
        }
        self.cv.notify_all();
        id
    }
    fn update(&self, id: u64, f: impl FnOnce(&mut NJob)) {
        let mut t = self.t.lock().unwrap();
        if let Some(j) = t.jobs.get_mut(&id) {
            f(j);
        }
        self.cv.notify_all();
    }
    /// Wait until the job is done, or `stop`; a bounded wait like a long-poll.
    fn wait_done(&self, id: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut t = self.t.lock().unwrap();
        loop {
            if t.stop || t.jobs.get(&id).is_none_or(|j| j.state == NState::Done) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            t = self.cv.wait_timeout(t, left).unwrap().0;
        }
    }
    fn take(&self) -> Option<u64> {
        let mut t = self.t.lock().unwrap();
        loop {
            if t.stop {
                return None;
            }
            if let Some(id) = t.queue.pop_front() {
                if let Some(j) = t.jobs.get_mut(&id) {
                    j.state = NState::Running;
                }
                self.cv.notify_all();
                return Some(id);
            }
            t = self.cv.wait(t).unwrap();
        }
    }
    fn stop(&self) {
        self.t.lock().unwrap().stop = true;
        self.cv.notify_all();
    }
}

struct NaiveRig {
    naive: Arc<Naive>,
    threads: Vec<JoinHandle<()>>,
}

impl NaiveRig {
    fn start(workers: usize) -> Self {
        let naive = Arc::new(Naive::default());
        let mut threads = Vec::new();
        let ready = Arc::new(Barrier::new(IDLE_WAITERS + 1));
        for k in 0..IDLE_WAITERS {
            let id = naive.insert(k as u64, false); // never runnable
            let (n, ready) = (naive.clone(), ready.clone());
            threads.push(spawn_small(move || {
                ready.wait();
                while !n.wait_done(id, DEFAULT_MAX_WAIT) {}
            }));
        }
        ready.wait();
        for _ in 0..workers {
            let n = naive.clone();
            threads.push(std::thread::spawn(move || {
                while let Some(id) = n.take() {
                    n.update(id, |j| {
                        j.progress = 50;
                        j.message = "half".into();
                    });
                    n.update(id, |j| {
                        j.progress = 100;
                        j.state = NState::Done;
                        j.message = "done".into();
                    });
                }
            }));
        }
        Self { naive, threads }
    }
    fn batch(&self) {
        let ids: Vec<u64> = (0..BATCH)
            .map(|k| self.naive.insert(k as u64, true))
            .collect();
        for id in ids {
            assert!(self.naive.wait_done(id, DEFAULT_MAX_WAIT));
            self.naive.t.lock().unwrap().jobs.remove(&id); // like retention: keep the map small
        }
    }
    fn stop(self) {
        self.naive.stop();
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

// ----- the engine ---------------------------------------------------------------------------

type E = Engine<jobstate::JobTable<u64, 2048>>;

struct EngineRig {
    engine: E,
    pool: WorkerPool,
    stop: Arc<AtomicBool>,
    idle: Vec<JoinHandle<()>>,
}

impl EngineRig {
    fn start(workers: usize) -> Self {
        let engine: E = Engine::new(EngineConfig {
            // Completed jobs may be evicted to make room at once.
            table: jobstate::Config {
                retention: jobstate::Duration::from_ticks(0),
            },
            ..EngineConfig::default()
        });
        // The idle jobs depend on a job that stays running: they never become runnable.
        let blocker = engine.submit(NewJob::new(0)).unwrap();
        engine.start(blocker).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(IDLE_WAITERS + 1));
        let mut idle = Vec::new();
        for k in 0..IDLE_WAITERS {
            let id: JobId = engine
                .submit(NewJob::new(k as u64).depends_on(&[blocker]))
                .unwrap();
            let (e, stop, ready) = (engine.clone(), stop.clone(), ready.clone());
            idle.push(spawn_small(move || {
                ready.wait();
                while !stop.load(Ordering::SeqCst) {
                    let _ = e.wait(id, Condition::Terminal, DEFAULT_MAX_WAIT);
                }
            }));
        }
        ready.wait();
        let pool = WorkerPool::start(engine.clone(), workers, |ctx| {
            ctx.progress(50, "half")?;
            Ok(Success::normal("done"))
        })
        .unwrap();
        Self {
            engine,
            pool,
            stop,
            idle,
        }
    }
    fn batch(&self) {
        let ids: Vec<JobId> = (0..BATCH)
            .map(|k| self.engine.submit(NewJob::new(k as u64)).unwrap())
            .collect();
        for id in ids {
            // A job that ended may already have been evicted to make room (retention 0): its
            // tombstone tells how it ended.
            match self.engine.wait(id, Condition::Terminal, DEFAULT_MAX_WAIT) {
                Ok(w) => assert_eq!(w.job.state(), State::Succeeded),
                Err(WaitError::Lookup(LookupError::Expired(Some(t)))) => {
                    assert_eq!(t.state(), State::Succeeded)
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    fn stop(self) {
        self.pool.shutdown();
        self.stop.store(true, Ordering::SeqCst);
        // Wake the idle waiters: end the job they wait on (the blocker's dependents fail).
        let blocker = self.engine.with_table(|t| {
            t.iter()
                .find(|j| j.state() == State::Running)
                .map(|j| j.id())
        });
        if let Some(b) = blocker {
            let _ = self.engine.fail(b, 1, "bench over");
        }
        for t in self.idle {
            t.join().unwrap();
        }
    }
}

fn spawn_small(f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .stack_size(IDLE_STACK)
        .spawn(f)
        .unwrap()
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut summary = Vec::new();
    {
        let mut g = c.benchmark_group("submit_run_complete_1000_idle_waiters");
        g.throughput(Throughput::Elements(BATCH as u64));
        for workers in [1usize, 2, 4] {
            let rig = EngineRig::start(workers);
            let mut engine_t = Duration::ZERO;
            let mut engine_n = 0u64;
            g.bench_with_input(BenchmarkId::new("engine", workers), &workers, |b, _| {
                b.iter_custom(|n| {
                    let t = Instant::now();
                    for _ in 0..n {
                        rig.batch();
                    }
                    let d = t.elapsed();
                    engine_t += d;
                    engine_n += n;
                    d
                })
            });
            rig.stop();
            let rig = NaiveRig::start(workers);
            let mut naive_t = Duration::ZERO;
            let mut naive_n = 0u64;
            g.bench_with_input(
                BenchmarkId::new("naive_mutex_hashmap_notify_all", workers),
                &workers,
                |b, _| {
                    b.iter_custom(|n| {
                        let t = Instant::now();
                        for _ in 0..n {
                            rig.batch();
                        }
                        let d = t.elapsed();
                        naive_t += d;
                        naive_n += n;
                        d
                    })
                },
            );
            rig.stop();
            let per_s = |t: Duration, n: u64| (n as f64 * BATCH as f64) / t.as_secs_f64();
            summary.push((workers, per_s(engine_t, engine_n), per_s(naive_t, naive_n)));
        }
        g.finish();
    }
    c.final_summary();
    println!("\nthroughput, jobs/s (all iterations incl. warm-up), {IDLE_WAITERS} idle waiters:");
    println!(
        "{:>8} {:>14} {:>14} {:>8}",
        "workers", "engine", "naive", "ratio"
    );
    for (w, e, n) in summary {
        println!("{w:>8} {e:>14.0} {n:>14.0} {:>7.1}x", e / n);
    }
}
