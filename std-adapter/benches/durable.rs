//! R-DURABLE cost, against baselines measured in the same run on the same disk:
//!
//! * durable submit latency (submit, then wait until it is on disk) against a raw loop of
//!   `pwrite` + `fdatasync` of the same number of bytes as the table's image;
//! * throughput of 64 concurrent durable submitters against one (group commit).
//!
//! `cargo bench -p jobstate-std --features persist --bench durable` (set `JOBSTATE_BENCH_DIR`
//! to measure another disk; the default is the system's temporary directory).

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobstate::{JobTable, NewJob};
use jobstate_std::persist::{Durability, FileStore};
use jobstate_std::{Engine, EngineConfig};

type Jobs = JobTable<u32, 1024>;

fn dir() -> PathBuf {
    let base =
        std::env::var_os("JOBSTATE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let d = base.join(format!("jobstate-bench-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("bench directory");
    d
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn config() -> EngineConfig {
    EngineConfig {
        timer_thread: false,
        // Ended jobs make room at once: the table stays at its size whatever the rate.
        table: jobstate::Config {
            retention: jobstate::Duration::from_ticks(0),
        },
        ..EngineConfig::default()
    }
}

/// Durable submits one after the other, each right after one baseline operation (`pwrite` of
/// as many bytes as the table's image is at that moment, at alternating offsets, +
/// `fdatasync`), so that both see the same disk weather and write the same amount. Answers
/// both latency lists, the image sizes seen (smallest, largest) and how long each save took
/// (encode, write, `fdatasync`: the durable submit less the submit and the hand-offs).
fn latencies(
    dir: &Path,
    n: usize,
) -> (Vec<Duration>, Vec<Duration>, (usize, usize), Vec<Duration>) {
    let store = FileStore::new(dir.join("latency.bin"));
    let engine: Engine<Jobs> = Engine::new(config());
    // A realistic table: 256 jobs in it.
    for k in 0..256 {
        engine.submit(NewJob::new(k)).expect("submit");
    }
    let durable = Durability::start(engine.clone(), store).expect("start");
    durable
        .wait(engine.revision(), Duration::from_secs(30))
        .expect("first save");
    // Room for the largest image a 1,024-job table can have, twice.
    const MOST: usize = 1 << 20;
    let raw = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("raw.bin"))
        .expect("raw file");
    raw.set_len((2 * MOST) as u64).expect("size");
    let block = vec![0xA5u8; MOST];
    let (mut lat_raw, mut lat_durable) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut saves = Vec::with_capacity(n);
    let mut sizes = (usize::MAX, 0);
    for k in 0..n {
        // The image as the durable save will write it (the job submitted below adds a record:
        // measured after it, the baseline writes what the save wrote).
        let id = engine.submit(NewJob::new(k as u32)).expect("submit");
        let len = FileStore::encode(&engine)
            .expect("encode")
            .0
            .len()
            .min(MOST);
        let _ = engine.request_cancel(id);
        sizes = (sizes.0.min(len), sizes.1.max(len));
        let t = Instant::now();
        raw.write_all_at(&block[..len], ((k % 2) * MOST) as u64)
            .expect("write");
        raw.sync_data().expect("sync");
        lat_raw.push(t.elapsed());

        let t = Instant::now();
        let id = engine.submit(NewJob::new(k as u32)).expect("submit");
        durable
            .wait(engine.revision(), Duration::from_secs(30))
            .expect("durable");
        lat_durable.push(t.elapsed());
        saves.extend(durable.status().last_save);
        // Ended at once (retention 0): the table keeps its size from round to round.
        let _ = engine.request_cancel(id);
    }
    durable.stop().expect("stop");
    (lat_durable, lat_raw, sizes, saves)
}

/// Durable submits per second with `threads` submitters for `span`.
fn throughput(dir: &Path, threads: usize, span: Duration) -> f64 {
    let store = FileStore::new(dir.join(format!("tp-{threads}.bin")));
    let engine: Engine<Jobs> = Engine::new(config());
    let durable = Arc::new(Durability::start(engine.clone(), store).expect("start"));
    let end = Instant::now() + span;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (engine, durable) = (engine.clone(), durable.clone());
            std::thread::spawn(move || {
                let mut done = 0u64;
                while Instant::now() < end {
                    match engine.submit(NewJob::new(1)) {
                        Ok(id) => {
                            durable
                                .wait(engine.revision(), Duration::from_secs(30))
                                .expect("durable");
                            let _ = engine.request_cancel(id);
                            done += 1;
                        }
                        Err(_) => std::thread::yield_now(),
                    }
                }
                done
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    total as f64 / span.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = dir();
    let n = 300;
    let mut rounds = Vec::new();
    for round in 0..3 {
        let (durable, raw, image, saves) = latencies(&dir, n);
        let (d, r, e) = (median(durable), median(raw), median(saves));
        println!(
            "round {round}: durable submit p50 {:?}, raw pwrite+fdatasync of the same size ({}–{} B) p50 {:?}, ratio {:.2}; the save itself (encode, write, fdatasync) p50 {:?}",
            d,
            image.0,
            image.1,
            r,
            d.as_secs_f64() / r.as_secs_f64(),
            e
        );
        rounds.push(d.as_secs_f64() / r.as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    println!("durable / raw p50, median of rounds: {:.2}", rounds[1]);
    let one = throughput(&dir, 1, Duration::from_secs(2));
    let many = throughput(&dir, 64, Duration::from_secs(2));
    println!(
        "throughput: 1 submitter {one:.0}/s, 64 submitters {many:.0}/s, ratio {:.1}",
        many / one
    );
    let _ = std::fs::remove_dir_all(&dir);
}
