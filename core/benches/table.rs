//! Per-operation cost of the job table at capacities 16, 256 and 4096 (R-SCHED: O(1) or
//! O(dependents), never O(table size)).
//!
//! Every table is kept at a steady fill: half of it holds queued jobs waiting on one running
//! job (they sit in its dependents list and in no scheduling list), and the measured operation
//! works on a small working set of `K` jobs that is replenished, untimed, between batches. So
//! the 4096 table really is 2048 jobs full while `submit`, `start`, `succeed`, … are timed.
//!
//! `cargo bench -p jobstate --bench table`

use std::hint::black_box;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, BenchmarkId, Criterion};
use jobstate::{Config, Duration, Instant, JobId, JobTable, NewJob, Severity};

/// Jobs in the working set of one batch.
const K: usize = 4;

fn now() -> Instant {
    Instant::from_ticks(1)
}

/// A table `N` jobs big, half full: one running job and `N/2 - 1` queued jobs depending on it.
/// Retention 0: a terminal job goes at the next sweep.
fn filled<const N: usize>() -> Box<JobTable<u32, N>> {
    let mut table = Box::new(JobTable::new(Config {
        retention: Duration::from_ticks(0),
    }));
    let root = table.submit(NewJob::new(0), now()).unwrap();
    table.start(root, now()).unwrap();
    for i in 1..N / 2 {
        table
            .submit(NewJob::new(i as u32).depends_on(&[root]), now())
            .unwrap();
    }
    table
}

fn submit_k<const N: usize>(table: &mut JobTable<u32, N>) -> [JobId; K] {
    core::array::from_fn(|k| table.submit(NewJob::new(k as u32), now()).unwrap())
}

fn fail_all<const N: usize>(table: &mut JobTable<u32, N>, ids: &[JobId]) {
    for id in ids {
        table.fail(*id, 1, "", now()).unwrap();
    }
    table.expire(now());
}

/// Time `iters` single operations done in batches of `K`: `op` runs the timed batch,
/// `reset` (untimed) brings the table back to the fill it had before.
fn batched<const N: usize>(
    table: &mut JobTable<u32, N>,
    iters: u64,
    mut prepare: impl FnMut(&mut JobTable<u32, N>) -> [JobId; K],
    mut op: impl FnMut(&mut JobTable<u32, N>, &[JobId; K]) -> [JobId; K],
    mut reset: impl FnMut(&mut JobTable<u32, N>, &[JobId; K]),
) -> StdDuration {
    let batches = iters.div_ceil(K as u64).max(1);
    let mut total = StdDuration::ZERO;
    for _ in 0..batches {
        let ids = prepare(table);
        let t0 = StdInstant::now();
        let out = op(table, &ids);
        total += t0.elapsed();
        reset(table, black_box(&out));
    }
    total.mul_f64(iters as f64 / (batches * K as u64) as f64)
}

fn sizes<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let mut table = filled::<N>();
    let id = BenchmarkId::from_parameter(N);
    match name {
        "submit" => g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                batched(
                    &mut table,
                    iters,
                    |_| [JobId::from_bytes([0; 10]); K],
                    |t, _| submit_k(t),
                    |t, ids| fail_all(t, ids),
                )
            })
        }),
        "get" => {
            let ids = submit_k(&mut *table);
            let mut i = 0;
            g.bench_function(id, |b| {
                b.iter(|| {
                    i = (i + 1) % K;
                    black_box(table.get(black_box(ids[i])).is_ok())
                })
            })
        }
        "start" => g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                batched(
                    &mut table,
                    iters,
                    |t| submit_k(t),
                    |t, ids| {
                        for id in ids {
                            t.start(*id, now()).unwrap();
                        }
                        *ids
                    },
                    |t, ids| fail_all(t, ids),
                )
            })
        }),
        "progress" => {
            let ids = submit_k(&mut *table);
            for id in ids {
                table.start(id, now()).unwrap();
            }
            let mut i = 0;
            let mut pct = 0u8;
            g.bench_function(id, |b| {
                b.iter(|| {
                    i = (i + 1) % K;
                    pct = (pct + 1) % 101;
                    table.progress(black_box(ids[i]), pct, "copying", now())
                })
            })
        }
        "complete" => g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                batched(
                    &mut table,
                    iters,
                    |t| {
                        let ids = submit_k(t);
                        for id in ids {
                            t.start(id, now()).unwrap();
                        }
                        ids
                    },
                    |t, ids| {
                        for id in ids {
                            t.succeed(*id, Severity::Normal, "done", now()).unwrap();
                        }
                        *ids
                    },
                    |t, _| {
                        t.expire(now());
                    },
                )
            })
        }),
        "next_runnable" => g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                batched(
                    &mut table,
                    iters,
                    |t| submit_k(t),
                    |t, _| core::array::from_fn(|_| t.start_next(now()).unwrap()),
                    |t, ids| fail_all(t, ids),
                )
            })
        }),
        _ => unreachable!(),
    };
    // The fill the operation ran at: the background plus at most one working set.
    assert!(table.len() >= N / 2 && table.len() <= N / 2 + K);
}

fn table_ops(c: &mut Criterion) {
    for name in [
        "submit",
        "get",
        "start",
        "progress",
        "complete",
        "next_runnable",
    ] {
        let mut g = c.benchmark_group(name);
        sizes::<16>(&mut g, name);
        sizes::<256>(&mut g, name);
        sizes::<4096>(&mut g, name);
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(StdDuration::from_millis(300))
        .measurement_time(StdDuration::from_secs(1))
        .sample_size(20);
    targets = table_ops
}

fn main() {
    // A 4096-job table is a few MB: build and use it on a thread with room for it.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            benches();
            Criterion::default().configure_from_args().final_summary();
        })
        .unwrap()
        .join()
        .unwrap();
}
