//! Wake latency: a change on one thread → the waiter of that job returns on another; and the
//! cost of many waiters on one job.
//!
//! Wake latency is measured as a ping-pong (two wakes per round trip), each against its
//! baseline in the same run:
//! * blocking: `Engine::wait` + `Engine::progress` vs a raw `Mutex` + `Condvar` pair (notified
//!   under the lock, the textbook way) and the same pair notified after the unlock;
//! * async: `Engine::wait_async` vs `tokio::sync::Notify`, two tasks on a 2-worker runtime,
//!   and vs `Notify` plus a `Mutex<HashMap>` of jobs changed and read around each wake.
//!
//! Criterion reports the mean round trip; afterwards p50 / p99 of single round trips are printed
//! (`wake = round trip / 2`) from `ROUNDS` interleaved rounds (each round runs every variant,
//! in a rotating order, so that machine noise falls on all of them): the median over rounds
//! of each variant's p50 / p99, and the median of the per-round ratios.
//!
//! Then, many waiters on one job: registering and dropping 100,000 waiters (O(1) each), and
//! the lateness of 100,000 async waits on one job timing out (deadline → the task has its
//! answer).
//!
//! Run: `cargo bench -p jobstate-std --bench wake` (`-- --skip-criterion` for the printed
//! figures only).

use std::future::Future;
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

/// The raw pair notified after the unlock (what the engine does).
fn raw_blocking_after_unlock(rounds: usize) -> Vec<Duration> {
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
                drop(g);
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
        drop(g);
        p.to_b.notify_one();
        let mut g = p.m.lock().unwrap();
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

/// p50 and p99 of a round-trip sample, as wake latency (half a round trip) in µs.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_nanos() as f64 / 2.0 / 1000.0;
    (at(0.50), at(0.99))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The quantile `q` of durations, in ms.
fn ms_at(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e3
}

/// Register `n` async waiters on one job, then drop them all in a scattered order. Answers
/// (registration, removal) times.
fn many_waiters(n: usize) -> (Duration, Duration) {
    let e: E = Engine::new(EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    });
    let id = e.submit(NewJob::new(0)).unwrap();
    e.start(id).unwrap();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let t = Instant::now();
    let mut futs: Vec<Option<_>> = (0..n)
        .map(|_| {
            let mut f = e.wait_async(id, Condition::Terminal, LONG);
            assert!(std::pin::Pin::new(&mut f).poll(&mut cx).is_pending());
            Some(f)
        })
        .collect();
    let register = t.elapsed();
    assert_eq!(e.waiting(), n);
    // A scattered order, fixed before the clock starts.
    let mut order: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let t = Instant::now();
    for k in order {
        drop(futs[k].take());
    }
    let remove = t.elapsed();
    assert_eq!(e.waiting(), 0);
    (register, remove)
}

/// `n` async waits on one job (tokio, 2 workers), each timing out after `timeout`: how late
/// each task has its answer after its deadline.
fn timeout_lateness(rt: &tokio::runtime::Runtime, n: usize, timeout: Duration) -> Vec<Duration> {
    let e: E = Engine::new(EngineConfig::default());
    let id = e.submit(NewJob::new(0)).unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let e = e.clone();
                tokio::spawn(async move {
                    // Taken just before the engine takes its own: the lateness is, if
                    // anything, overstated.
                    let deadline = Instant::now() + timeout;
                    let w = e
                        .wait_async(id, Condition::Terminal, timeout)
                        .await
                        .unwrap();
                    assert!(w.timed_out);
                    Instant::now().saturating_duration_since(deadline)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })
}

/// `--instructions <engine|notify|notify_map> <n>`: `n` async round trips of one variant on a
/// single-thread runtime and nothing else, for an instruction count that repeats
/// (`valgrind --tool=callgrind`): run it with `n` and `2n` and divide the difference by `n`
/// to get the instructions of one round trip, setup excluded.
fn instructions(variant: &str, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = match variant {
        "engine" => engine_async(&rt, n),
        "notify" => notify_async(&rt, n),
        "notify_map" => notify_with_state(&rt, n),
        other => panic!("unknown variant {other}"),
    };
    assert_eq!(out.len(), n);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--instructions") {
        let variant = args.get(at + 1).map_or("engine", String::as_str);
        let n = args
            .get(at + 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        instructions(variant, n);
        return;
    }
    let only_waiters = args.iter().any(|a| a == "--only-waiters");
    let skip_criterion = only_waiters || args.iter().any(|a| a == "--skip-criterion");
    let rt = runtime();
    if !skip_criterion {
        let mut c = Criterion::default()
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .configure_from_args();
        {
            let mut g = c.benchmark_group("wake_blocking_round_trip");
            g.bench_function("engine_wait", |b| {
                b.iter_custom(|n| total(engine_blocking(n as usize)))
            });
            g.bench_function("raw_mutex_condvar", |b| {
                b.iter_custom(|n| total(raw_blocking(n as usize)))
            });
            g.bench_function("raw_mutex_condvar_notify_after_unlock", |b| {
                b.iter_custom(|n| total(raw_blocking_after_unlock(n as usize)))
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
    }

    if !only_waiters {
        wake_percentiles(&rt);
    }
    waiters(&rt);
}

/// Percentiles of single wakes: interleaved rounds, every variant in each round.
fn wake_percentiles(rt: &tokio::runtime::Runtime) {
    const ROUNDS: usize = 7;
    const PER_ROUND: usize = 10_000;
    type Variant<'a> = (&'static str, Box<dyn Fn() -> Vec<Duration> + 'a>);
    let variants: Vec<Variant<'_>> = vec![
        (
            "blocking  engine.wait",
            Box::new(|| engine_blocking(PER_ROUND)),
        ),
        (
            "blocking  raw Mutex+Condvar",
            Box::new(|| raw_blocking(PER_ROUND)),
        ),
        (
            "blocking  raw, notify after unlock",
            Box::new(|| raw_blocking_after_unlock(PER_ROUND)),
        ),
        (
            "async     engine.wait_async",
            Box::new(|| engine_async(rt, PER_ROUND)),
        ),
        (
            "async     tokio Notify",
            Box::new(|| notify_async(rt, PER_ROUND)),
        ),
        (
            "async     Notify + job map",
            Box::new(|| notify_with_state(rt, PER_ROUND)),
        ),
    ];
    let mut p50s = vec![Vec::new(); variants.len()];
    let mut p99s = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        for k in 0..variants.len() {
            let v = (k + round) % variants.len();
            let (p50, p99) = percentiles((variants[v].1)());
            p50s[v].push(p50);
            p99s[v].push(p99);
        }
    }
    println!(
        "\nwake latency (round trip / 2), {ROUNDS} interleaved rounds of {PER_ROUND} round trips \
         per variant; median over rounds:"
    );
    println!(
        "{:<36} {:>9} {:>9} {:>9}",
        "", "p50 µs", "p99 µs", "best p50"
    );
    for (k, (name, _)) in variants.iter().enumerate() {
        let best = p50s[k].iter().cloned().fold(f64::MAX, f64::min);
        println!(
            "{name:<36} {:>9.2} {:>9.2} {:>9.2}",
            median(p50s[k].clone()),
            median(p99s[k].clone()),
            best
        );
    }
    let ratio = |a: usize, b: usize, of: &Vec<Vec<f64>>| {
        median(of[a].iter().zip(&of[b]).map(|(x, y)| x / y).collect())
    };
    println!(
        "ratios (median of per-round ratios): blocking vs raw p50 {:.2}x p99 {:.2}x; \
         blocking vs raw-after-unlock p50 {:.2}x p99 {:.2}x; async vs Notify p50 {:.2}x p99 {:.2}x; \
         async vs Notify + job map p50 {:.2}x p99 {:.2}x",
        ratio(0, 1, &p50s),
        ratio(0, 1, &p99s),
        ratio(0, 2, &p50s),
        ratio(0, 2, &p99s),
        ratio(3, 4, &p50s),
        ratio(3, 4, &p99s),
        ratio(3, 5, &p50s),
        ratio(3, 5, &p99s),
    );
}

/// Many waiters on one job.
fn waiters(rt: &tokio::runtime::Runtime) {
    const WAITERS: usize = 100_000;
    let mut reg = Vec::new();
    let mut rem = Vec::new();
    for _ in 0..5 {
        let (r, d) = many_waiters(WAITERS);
        reg.push(r);
        rem.push(d);
    }
    println!(
        "\n{WAITERS} waiters on one job, 5 rounds: register median {:.1} ms (best {:.1}), \
         drop all in a scattered order median {:.1} ms (best {:.1})",
        ms_at(&mut reg, 0.5),
        ms_at(&mut reg, 0.0),
        ms_at(&mut rem, 0.5),
        ms_at(&mut rem, 0.0),
    );
    // Three rounds: the figure depends on what else the machine runs at the time.
    let mut p99s = Vec::new();
    for round in 1..=3 {
        let mut late = timeout_lateness(rt, WAITERS, Duration::from_secs(2));
        let p99 = ms_at(&mut late, 0.99);
        println!(
            "{WAITERS} async waits on one job timing out (2 s), round {round}: lateness p50 \
             {:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
            ms_at(&mut late, 0.5),
            ms_at(&mut late, 1.0),
        );
        p99s.push(p99);
    }
    println!(
        "timeout lateness p99: median {:.2} ms, best {:.2} ms over 3 rounds",
        median(p99s.clone()),
        p99s.iter().cloned().fold(f64::MAX, f64::min)
    );
}
