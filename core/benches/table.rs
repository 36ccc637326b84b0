//! Per-operation cost of the job table at capacities 16, 256 and 4096 (R-SCHED: O(1) or
//! O(dependents), never O(table size)).
//!
//! Every table is kept at a steady fill: half of it holds queued jobs waiting on one running
//! job (they sit in its dependents list and in no scheduling list), and the measured operation
//! works on a small working set of `K` jobs that is replenished, untimed, between batches. So
//! the 4096 table really is 2048 jobs full while `submit`, `start`, `succeed`, … are timed.
//!
//! `cargo bench -p jobstate --bench table` (criterion, sequential), or
//! `JOBSTATE_BENCH_RATIO=30 cargo bench -p jobstate --bench table` for the sizes measured
//! round-robin, best of 30 rounds each, with the ratios to the 16-job table.

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

/// Time `iters` operations `name` on `table`. The same code serves criterion and the
/// interleaved ratio run.
fn measure<const N: usize>(table: &mut JobTable<u32, N>, name: &str, iters: u64) -> StdDuration {
    match name {
        "submit" => batched(
            table,
            iters,
            |_| [JobId::from_bytes([0; 10]); K],
            |t, _| submit_k(t),
            |t, ids| fail_all(t, ids),
        ),
        "get" => {
            let ids = submit_k(table);
            let t0 = StdInstant::now();
            for i in 0..iters {
                black_box(table.get(black_box(ids[i as usize % K])).is_ok());
            }
            let d = t0.elapsed();
            fail_all(table, &ids);
            d
        }
        "start" => batched(
            table,
            iters,
            submit_k,
            |t, ids| {
                for id in ids {
                    t.start(*id, now()).unwrap();
                }
                *ids
            },
            |t, ids| fail_all(t, ids),
        ),
        "progress" => {
            let ids = submit_k(table);
            for id in ids {
                table.start(id, now()).unwrap();
            }
            let t0 = StdInstant::now();
            for i in 0..iters {
                let pct = (i % 101) as u8;
                let id = black_box(ids[i as usize % K]);
                black_box(table.progress(id, pct, "copying", now())).unwrap();
            }
            let d = t0.elapsed();
            fail_all(table, &ids);
            d
        }
        "complete" => batched(
            table,
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
        ),
        "next_runnable" => batched(
            table,
            iters,
            submit_k,
            |t, _| core::array::from_fn(|_| t.start_next(now()).unwrap()),
            |t, ids| fail_all(t, ids),
        ),
        _ => unreachable!(),
    }
}

const OPS: [&str; 6] = [
    "submit",
    "get",
    "start",
    "progress",
    "complete",
    "next_runnable",
];

fn sizes<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>, name: &str) {
    let mut table = filled::<N>();
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter_custom(|iters| measure(&mut *table, name, iters))
    });
    // The fill the operation ran at: the background, the working set swept away again.
    assert_eq!(table.len(), N / 2);
}

fn table_ops(c: &mut Criterion) {
    for name in OPS {
        let mut g = c.benchmark_group(name);
        sizes::<16>(&mut g, name);
        sizes::<256>(&mut g, name);
        sizes::<4096>(&mut g, name);
        g.finish();
    }
}

/// `JOBSTATE_BENCH_RATIO=<rounds>`: measure the three sizes of each operation round-robin,
/// `rounds` times, and keep each size's best round (noise from other processes only ever adds
/// time). Prints a markdown table of ns/op and the ratio to the 16-job table of the same run.
fn ratio_run(rounds: u32) {
    const ITERS: u64 = 20_000;
    let mut t16 = filled::<16>();
    let mut t256 = filled::<256>();
    let mut t4096 = filled::<4096>();
    println!(
        "| operation | 16 jobs (ns) | 256 jobs (ns) | 4096 jobs (ns) | 256 / 16 | 4096 / 16 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for name in OPS {
        let mut best = [f64::MAX; 3];
        for _ in 0..rounds {
            let per_op = |d: StdDuration| d.as_secs_f64() * 1e9 / ITERS as f64;
            best[0] = best[0].min(per_op(measure(&mut *t16, name, ITERS)));
            best[1] = best[1].min(per_op(measure(&mut *t256, name, ITERS)));
            best[2] = best[2].min(per_op(measure(&mut *t4096, name, ITERS)));
        }
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
            best[0],
            best[1],
            best[2],
            best[1] / best[0],
            best[2] / best[0]
        );
    }
    assert_eq!((t16.len(), t256.len(), t4096.len()), (8, 128, 2048));
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
            if let Some(rounds) = std::env::var("JOBSTATE_BENCH_RATIO")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                return ratio_run(rounds);
            }
            benches();
            Criterion::default().configure_from_args().final_summary();
        })
        .unwrap()
        .join()
        .unwrap();
}
