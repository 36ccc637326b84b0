//! jobstate-etcd figures, each against a raw-etcd baseline measured in the same run:
//!
//! - submit p50 through `EtcdStore::submit` against a raw `put` of a value the size of a job
//!   record (goal ≤ 1.5×);
//! - cross-replica wake p50: replica B waits on a job (`ChangedSince`), replica A's worker
//!   reports progress; from the start of A's call to B's wait returning, against a raw etcd
//!   watch: from the start of a raw put of the key to the watch event arriving (goal ≤ 2×);
//! - throughput (submit → claim → succeed) with 1 replica and with 3, jobs/s and the 3/1 ratio.
//!
//! Starts a 3-member etcd cluster on loopback (Debian's `etcd` on PATH) unless
//! `JOBSTATE_ETCD_ENDPOINTS` (comma-separated URLs) is set. Figures are reported, not asserted:
//! it exits 0 either way.
//!
//! ```sh
//! cargo run --release -p jobstate-etcd --example bench
//! ```
//!
//! `JOBSTATE_BENCH_SAMPLES` (default 300) and `JOBSTATE_BENCH_JOBS` (default 500) change the
//! sizes.

#[path = "../tests/support/mod.rs"]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, GetOptions};
use jobstate::{Condition, NewJob, Severity};
use jobstate_etcd::{EtcdConfig, EtcdStore};

type Store = EtcdStore<String>;
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const WORKERS_PER_REPLICA: usize = 4;
const SUBMITTERS: usize = 6;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn p50(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn config(endpoints: &[String], prefix: &str) -> EtcdConfig {
    let mut c = EtcdConfig::new(endpoints.iter().cloned());
    c.prefix = prefix.to_owned();
    c.capacity = 1_000_000;
    c
}

async fn replica(endpoints: &[String], prefix: &str) -> Res<Store> {
    Ok(EtcdStore::connect(config(endpoints, prefix)).await?)
}

struct Row {
    what: &'static str,
    ours: String,
    baseline: String,
    ratio: f64,
    goal: &'static str,
    met: Option<bool>,
}

/// Submit p50 against a raw put of a value of the record's size; the two alternate sample by
/// sample so that drift of the shared machine hits both alike.
async fn submit_vs_put(endpoints: &[String], run: &str, samples: usize) -> Res<Row> {
    let prefix = format!("/bench-{run}/submit/");
    let store = replica(endpoints, &prefix).await?;
    let mut raw = Client::connect(endpoints, None).await?;
    // The size of a record as the store writes it.
    store.submit(NewJob::new("bench job".to_owned())).await?;
    let got = raw
        .get(
            format!("{prefix}jobs/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await?;
    let value = got
        .kvs()
        .first()
        .map(|kv| kv.value().to_vec())
        .ok_or("no record written")?;
    let record_len = value.len();
    let mut ours = Vec::with_capacity(samples);
    let mut base = Vec::with_capacity(samples);
    for i in 0..samples + 20 {
        let t = Instant::now();
        store.submit(NewJob::new("bench job".to_owned())).await?;
        let a = t.elapsed();
        let t = Instant::now();
        raw.put(format!("/bench-{run}/raw/{i}"), value.clone(), None)
            .await?;
        let b = t.elapsed();
        if i >= 20 {
            ours.push(a);
            base.push(b);
        }
    }
    let (o, b) = (p50(&mut ours), p50(&mut base));
    let ratio = us(o) / us(b);
    println!(
        "submit: p50 {:.0} µs (p99 {:.0}), raw put of {record_len} B p50 {:.0} µs (p99 {:.0})",
        us(o),
        us(p99(&mut ours)),
        us(b),
        us(p99(&mut base))
    );
    Ok(Row {
        what: "submit p50",
        ours: format!("{:.0} µs", us(o)),
        baseline: format!("raw put {:.0} µs", us(b)),
        ratio,
        goal: "≤ 1.5×",
        met: Some(ratio <= 1.5),
    })
}

/// Cross-replica wake: B waits, A's worker reports progress; against a raw put → watch event.
async fn wake_vs_watch(endpoints: &[String], run: &str, samples: usize) -> Res<Row> {
    let prefix = format!("/bench-{run}/wake/");
    let a = replica(endpoints, &prefix).await?;
    let b = replica(endpoints, &prefix).await?;
    let id = a.submit(NewJob::new("watched".to_owned())).await?;
    let job = a.claim_next().await?;
    if job.id() != id {
        return Err("claimed another job".into());
    }
    let mut ours = Vec::with_capacity(samples);
    for i in 0..samples + 20 {
        let seen = b.get(id).await?.revision();
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move {
                let r = b
                    .wait(id, Condition::ChangedSince(seen), Duration::from_secs(10))
                    .await;
                (r, Instant::now())
            })
        };
        // Let B's wait register and make its first read before A changes the job.
        while b.waited_jobs() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
        let t = Instant::now();
        job.progress(u8::try_from(i % 100).unwrap_or(0), &format!("step {i}"))
            .await?;
        let (woken, at) = waiting.await?;
        let woken = woken?;
        if woken.timed_out {
            return Err("wait timed out".into());
        }
        if i >= 20 {
            ours.push(at.duration_since(t));
        }
    }
    job.succeed(Severity::Normal, "done").await?;

    // The baseline: one client puts, another watches the key.
    let mut putter = Client::connect(endpoints, None).await?;
    let mut watcher = Client::connect(endpoints, None).await?;
    let key = format!("/bench-{run}/raw-watch");
    let mut stream = watcher.watch(key.as_str(), None).await?;
    let mut base = Vec::with_capacity(samples);
    for i in 0..samples + 20 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let t = Instant::now();
        putter.put(key.as_str(), format!("step {i}"), None).await?;
        loop {
            let msg = stream.message().await?.ok_or("watch ended")?;
            if !msg.events().is_empty() {
                break;
            }
        }
        if i >= 20 {
            base.push(t.elapsed());
        }
    }
    let (o, bl) = (p50(&mut ours), p50(&mut base));
    let ratio = us(o) / us(bl);
    println!(
        "wake: p50 {:.0} µs (p99 {:.0}), raw put → watch event p50 {:.0} µs (p99 {:.0})",
        us(o),
        us(p99(&mut ours)),
        us(bl),
        us(p99(&mut base))
    );
    Ok(Row {
        what: "cross-replica wake p50",
        ours: format!("{:.0} µs", us(o)),
        baseline: format!("raw watch {:.0} µs", us(bl)),
        ratio,
        goal: "≤ 2×",
        met: Some(ratio <= 2.0),
    })
}

/// submit → claim → succeed for `jobs` jobs over `n` replicas, each with a few workers;
/// submitters spread over the replicas. Answers jobs/s.
async fn throughput(
    endpoints: &[String],
    run: &str,
    n: usize,
    jobs: usize,
) -> Res<(f64, Duration)> {
    let prefix = format!("/bench-{run}/throughput-{n}/");
    let mut replicas = Vec::new();
    for _ in 0..n {
        replicas.push(replica(endpoints, &prefix).await?);
    }
    let done = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(tokio::sync::Notify::new());
    let mut workers = Vec::new();
    for r in &replicas {
        for _ in 0..WORKERS_PER_REPLICA {
            let r = r.clone();
            let done = done.clone();
            let all_done = all_done.clone();
            workers.push(tokio::spawn(async move {
                loop {
                    let Ok(job) = r.claim_next().await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    if job.succeed(Severity::Normal, "done").await.is_ok()
                        && done.fetch_add(1, Ordering::SeqCst) + 1 == jobs
                    {
                        all_done.notify_one();
                    }
                }
            }));
        }
    }
    let start = Instant::now();
    let finished = all_done.notified();
    tokio::pin!(finished);
    finished.as_mut().enable();
    let mut submitters = Vec::new();
    for s in 0..SUBMITTERS {
        let r = replicas[s % n].clone();
        let count = jobs / SUBMITTERS + usize::from(s < jobs % SUBMITTERS);
        submitters.push(tokio::spawn(async move {
            for _ in 0..count {
                while r.submit(NewJob::new("work".to_owned())).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    for s in submitters {
        s.await?;
    }
    if tokio::time::timeout(Duration::from_secs(60), finished)
        .await
        .is_err()
    {
        return Err(format!(
            "{} of {jobs} jobs done after 60 s",
            done.load(Ordering::SeqCst)
        )
        .into());
    }
    let took = start.elapsed();
    for w in workers {
        w.abort();
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = jobs as f64 / took.as_secs_f64();
    println!(
        "throughput, {n} replica(s) × {WORKERS_PER_REPLICA} workers, {SUBMITTERS} submitters: {jobs} jobs in {:.2} s = {rate:.0} jobs/s",
        took.as_secs_f64()
    );
    Ok((rate, took))
}

async fn bench(endpoints: Vec<String>) -> Res<Vec<Row>> {
    let samples = env_usize("JOBSTATE_BENCH_SAMPLES", 300).max(1);
    let jobs = env_usize("JOBSTATE_BENCH_JOBS", 500).max(1);
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let mut rows = vec![
        submit_vs_put(&endpoints, &run, samples).await?,
        wake_vs_watch(&endpoints, &run, samples).await?,
    ];
    let (one, _) = throughput(&endpoints, &run, 1, jobs).await?;
    let (three, _) = throughput(&endpoints, &run, 3, jobs).await?;
    rows.push(Row {
        what: "throughput 3 replicas / 1",
        ours: format!("{three:.0} jobs/s"),
        baseline: format!("1 replica {one:.0} jobs/s"),
        ratio: three / one,
        goal: "(reported)",
        met: None,
    });
    Ok(rows)
}

fn main() {
    let from_env = std::env::var("JOBSTATE_ETCD_ENDPOINTS").ok();
    let cluster = if from_env.is_none() {
        println!("starting a 3-member etcd cluster on loopback …");
        Some(support::Cluster::start(3))
    } else {
        None
    };
    let endpoints: Vec<String> = match (&from_env, &cluster) {
        (Some(e), _) => e.split(',').map(|s| s.trim().to_owned()).collect(),
        (None, Some(c)) => c.endpoints(),
        (None, None) => Vec::new(),
    };
    println!("etcd endpoints: {}", endpoints.join(","));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return;
        }
    };
    let started = Instant::now();
    match runtime.block_on(bench(endpoints)) {
        Ok(rows) => {
            println!();
            println!("| figure | jobstate-etcd | baseline | ratio | goal | met |");
            println!("| --- | --- | --- | --- | --- | --- |");
            for r in rows {
                let met = match r.met {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "—",
                };
                println!(
                    "| {} | {} | {} | {:.2}× | {} | {met} |",
                    r.what, r.ours, r.baseline, r.ratio, r.goal
                );
            }
            println!();
            println!("took {:.1} s", started.elapsed().as_secs_f64());
        }
        Err(e) => eprintln!("benchmark stopped: {e}"),
    }
    drop(runtime);
    drop(cluster);
}
