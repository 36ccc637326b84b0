//! Wake latency: a change on one thread → the waiter of that job returns on another.
//!
//! Measured as a ping-pong (two wakes per round trip), each against its baseline in the same
//! run:
//! * blocking: `Engine::wait` + `Engine::progress` vs a raw `Mutex` + `Condvar` pair;
//! * async: `Engine::wait_async` vs `tokio::sync::Notify`, two tasks on a 2-worker runtime,
//!   and vs `Notify` plus a `Mutex<HashMap>` of jobs changed and read around each wake.
//!
//! Criterion reports the mean round trip; afterwards p50 / p99 of single round trips are printed
//! (`wake = round trip / 2`). Run: `cargo bench -p jobstate-std --bench wake`.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use criterion::Criterion;
use jobstate::{Condition, JobId, NewJob, Revision};
use jobstate_std::{Engine, EngineConfig, DEFAULT_MAX_WAIT};
use tokio::sync::Notify;

type E = Engine<jobstate::JobTable<u32, 16>>;
const LONG: Duration = DEFAULT_MAX_WAIT;

fn running_pair(e: &E) -> (JobId, JobId) {
    let x = e.submit(NewJob::new(0)).unwrap();
    let y = e.submit(NewJob::new(1)).unwrap();
    e.start(x).unwrap();
    e.start(y).unwrap();
    (x, y)
}

/// Engine ping-pong: A changes X and waits for Y; B waits for X and changes Y. Returns the
/// duration of each round trip.
fn engine_blocking(rounds: usize) -> Vec<Duration> {
    let e: E = Engine::new(EngineConfig::default());
    let (x, y) = running_pair(&e);
    // Both revisions are read before either side moves.
    let rx0 = e.get(x).unwrap().revision();
    let b = {
        let e = e.clone();
        std::thread::spawn(move || {
            let mut rx = rx0;
            for _ in 0..rounds {
                rx = e
                    .wait(x, Condition::ChangedSince(rx), LONG)
                    .unwrap()
                    .job
                    .revision();
                e.progress(y, 1, "").unwrap();
            }
        })
    };
    let mut ry = e.get(y).unwrap().revision();
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        e.progress(x, 1, "").unwrap();
        ry = e
            .wait(y, Condition::ChangedSince(ry), LONG)
            .unwrap()
            .job
            .revision();
        out.push(t.elapsed());
    }
    b.join().unwrap();
    out
}

/// The raw pair: a counter per direction under one mutex, one condvar per direction.
fn raw_blocking(rounds: usize) -> Vec<Duration> {
    struct Pair {
        m: Mutex<(u64, u64)>,
        to_b: Condvar,
        to_a: Condvar,
    }
    let p = Arc::new(Pair {
        m: Mutex::new((0, 0)),
        to_b: Condvar::new(),
        to_a: Condvar::new(),
    });
    let b = {
        let p = p.clone();
        std::thread::spawn(move || {
            let mut seen = 0;
            for _ in 0..rounds {
                let mut g = p.m.lock().unwrap();
                while g.0 == seen {
                    g = p.to_b.wait(g).unwrap();
                }
                seen = g.0;
                g.1 += 1;
                p.to_a.notify_one();
            }
        })
    };
    let mut out = Vec::with_capacity(rounds);
    let mut seen = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let mut g = p.m.lock().unwrap();
        g.0 += 1;
        p.to_b.notify_one();
        while g.1 == seen {
            g = p.to_a.wait(g).unwrap();
        }
        seen = g.1;
        drop(g);
        out.push(t.elapsed());
    }
    b.join().unwrap();
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

fn engine_async(rt: &tokio::runtime::Runtime, rounds: usize) -> Vec<Duration> {
    let e: E = Engine::new(EngineConfig::default());
    let (x, y) = running_pair(&e);
    let (rx0, ry0) = (e.get(x).unwrap().revision(), e.get(y).unwrap().revision());
    rt.block_on(async {
        let b = {
            let e = e.clone();
            tokio::spawn(async move {
                let mut rx = rx0;
                for _ in 0..rounds {
                    let w = e
                        .wait_async(x, Condition::ChangedSince(rx), LONG)
                        .await
                        .unwrap();
                    rx = w.job.revision();
                    e.progress(y, 1, "").unwrap();
                }
            })
        };
        let a = tokio::spawn(async move {
            let mut ry: Revision = ry0;
            let mut out = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let t = Instant::now();
                e.progress(x, 1, "").unwrap();
                let w = e
                    .wait_async(y, Condition::ChangedSince(ry), LONG)
                    .await
                    .unwrap();
                ry = w.job.revision();
                out.push(t.elapsed());
            }
            out
        });
        b.await.unwrap();
        a.await.unwrap()
    })
}

fn notify_async(rt: &tokio::runtime::Runtime, rounds: usize) -> Vec<Duration> {
    let to_b = Arc::new(Notify::new());
    let to_a = Arc::new(Notify::new());
    rt.block_on(async {
        let b = {
            let (to_b, to_a) = (to_b.clone(), to_a.clone());
            tokio::spawn(async move {
                for _ in 0..rounds {
                    to_b.notified().await;
                    to_a.notify_one();
                }
            })
        };
        let a = tokio::spawn(async move {
            let mut out = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let t = Instant::now();
                to_b.notify_one();
                to_a.notified().await;
                out.push(t.elapsed());
            }
            out
        });
        b.await.unwrap();
        a.await.unwrap()
    })
}

/// `Notify` plus the state a job API keeps: a `Mutex<HashMap>` of jobs, changed before each
/// notify and read (a snapshot clone) after each wake — the async wait a team writes itself.
fn notify_with_state(rt: &tokio::runtime::Runtime, rounds: usize) -> Vec<Duration> {
    #[derive(Clone, Default)]
    #[allow(dead_code)]
    struct Job {
        description: String,
        message: String,
        progress: u8,
        version: u64,
    }
    let jobs: Arc<Mutex<std::collections::HashMap<u64, Job>>> = Arc::default();
    for k in [0u64, 1] {
        let job = Job {
            description: "a job of the bench".into(),
            ..Job::default()
        };
        jobs.lock().unwrap().insert(k, job);
    }
    let change = |jobs: &Mutex<std::collections::HashMap<u64, Job>>, k: u64| {
        if let Some(j) = jobs.lock().unwrap().get_mut(&k) {
            j.progress = 1;
            j.version += 1;
        }
    };
    let read = |jobs: &Mutex<std::collections::HashMap<u64, Job>>, k: u64| {
        jobs.lock().unwrap().get(&k).cloned()
    };
    let to_b = Arc::new(Notify::new());
    let to_a = Arc::new(Notify::new());
    rt.block_on(async {
        let b = {
            let (to_b, to_a, jobs) = (to_b.clone(), to_a.clone(), jobs.clone());
            tokio::spawn(async move {
                for _ in 0..rounds {
                    to_b.notified().await;
                    std::hint::black_box(read(&jobs, 0));
                    change(&jobs, 1);
                    to_a.notify_one();
                }
            })
        };
        let a = tokio::spawn(async move {
            let mut out = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let t = Instant::now();
                change(&jobs, 0);
                to_b.notify_one();
                to_a.notified().await;
                std::hint::black_box(read(&jobs, 1));
                out.push(t.elapsed());
            }
            out
        });
        b.await.unwrap();
        a.await.unwrap()
    })
}

fn total(v: Vec<Duration>) -> Duration {
    v.into_iter().sum()
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_nanos() as f64 / 2.0 / 1000.0;
    (at(0.50), at(0.99))
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let rt = runtime();
    {
        let mut g = c.benchmark_group("wake_blocking_round_trip");
        g.bench_function("engine_wait", |b| {
            b.iter_custom(|n| total(engine_blocking(n as usize)))
        });
        g.bench_function("raw_mutex_condvar", |b| {
            b.iter_custom(|n| total(raw_blocking(n as usize)))
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("wake_async_round_trip");
        g.bench_function("engine_wait_async", |b| {
            b.iter_custom(|n| total(engine_async(&rt, n as usize)))
        });
        g.bench_function("tokio_notify", |b| {
            b.iter_custom(|n| total(notify_async(&rt, n as usize)))
        });
        g.bench_function("tokio_notify_with_job_map", |b| {
            b.iter_custom(|n| total(notify_with_state(&rt, n as usize)))
        });
        g.finish();
    }
    c.final_summary();

    // Percentiles of single wakes, same process, alternating to share conditions.
    const ROUNDS: usize = 20_000;
    let mut rows = Vec::new();
    let (mut eb, mut rb, mut ea, mut na) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ns = Vec::new();
    for _ in 0..2 {
        eb.extend(engine_blocking(ROUNDS / 2));
        rb.extend(raw_blocking(ROUNDS / 2));
        ea.extend(engine_async(&rt, ROUNDS / 2));
        na.extend(notify_async(&rt, ROUNDS / 2));
        ns.extend(notify_with_state(&rt, ROUNDS / 2));
    }
    for (name, v) in [
        ("blocking  engine.wait", eb),
        ("blocking  raw Mutex+Condvar", rb),
        ("async     engine.wait_async", ea),
        ("async     tokio Notify", na),
        ("async     Notify + job map", ns),
    ] {
        let (p50, p99) = percentiles(v);
        rows.push((name, p50, p99));
    }
    println!("\nwake latency (round trip / 2), {ROUNDS} round trips each:");
    println!("{:<30} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    for (name, p50, p99) in &rows {
        println!("{name:<30} {p50:>10.2} {p99:>10.2}");
    }
    println!(
        "ratios: blocking p50 {:.2}x p99 {:.2}x; async vs Notify p50 {:.2}x p99 {:.2}x; \
         async vs Notify + job map p50 {:.2}x p99 {:.2}x",
        rows[0].1 / rows[1].1,
        rows[0].2 / rows[1].2,
        rows[2].1 / rows[3].1,
        rows[2].2 / rows[3].2,
        rows[2].1 / rows[4].1,
        rows[2].2 / rows[4].2
    );
}
