//! R-PERSIST end to end with the std engine: run jobs, save, "crash" mid-run, restore, and
//! check the restart policy, ids across the restart, and long-pollers of the restarted engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use jobstate::persist::{DecodeError, RESTORE_GAP};
use jobstate::{
    Condition, Detail, Directive, FailReason, JobId, JobOptions, JobTable, LookupError, NewJob,
    Outcome, Severity, State,
};
use jobstate_std::persist::{FileStore, LoadError, Persister};
use jobstate_std::{Engine, EngineConfig};

type Jobs = JobTable<String, 16>;
type E = Engine<Jobs>;

fn config() -> EngineConfig {
    EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    }
}

/// A fresh directory per test (removed at the end).
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("jobstate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn submit(e: &E, what: &str, deps: &[JobId], options: JobOptions) -> JobId {
    e.submit(
        NewJob::new(what.to_string())
            .description(what)
            .depends_on(deps)
            .options(options),
    )
    .unwrap()
}

fn reason(e: &E, id: JobId) -> Option<FailReason> {
    match e.get(id).unwrap().outcome() {
        Some(Outcome::Failed { reason, .. }) => Some(reason),
        _ => None,
    }
}

/// Wait until `n` long-pollers are registered (they block on the engine, not on time).
fn until_waiting(e: &E, n: usize) {
    while e.waiting() < n {
        std::thread::yield_now();
    }
}

/// R-PERSIST: the restart scenario.
#[test]
fn r_persist_restart_scenario() {
    let dir = TempDir::new("restart");
    let store = FileStore::new(dir.0.join("jobs.bin"));
    let restartable = JobOptions {
        restartable: true,
        ..JobOptions::DEFAULT
    };
    let plain = JobOptions::DEFAULT;

    // ----- before the crash -----
    let e1: E = Engine::new(config());
    let backup = submit(&e1, "backup", &[], plain);
    let resize = submit(&e1, "resize", &[], plain);
    let after_resize = submit(&e1, "after resize", &[resize], plain);
    let scrub = submit(&e1, "scrub", &[], restartable);
    let migrate = submit(&e1, "migrate", &[], plain);
    let doomed = submit(&e1, "doomed", &[], restartable);
    let report = submit(&e1, "report", &[], plain);

    assert_eq!(e1.start_next(), Some(backup));
    e1.succeed(backup, Severity::Normal, "saved").unwrap();
    for id in [resize, scrub, migrate, doomed] {
        e1.start(id).unwrap();
    }
    e1.progress(resize, 60, "moving extents").unwrap();
    e1.request_pause(migrate).unwrap();
    assert_eq!(e1.checkpoint(migrate).unwrap(), Directive::Pause);
    e1.request_cancel(doomed).unwrap();
    let saved = store.save(&e1).unwrap();
    assert_eq!(saved, e1.revision());

    // Work after the last save is lost with the crash.
    let unsaved = submit(&e1, "unsaved", &[], plain);
    e1.succeed(resize, Severity::Normal, "done too late")
        .unwrap();
    drop(e1); // the crash

    // ----- after the restart -----
    let (e2, restored) = store.load::<Jobs>(config()).unwrap().unwrap();
    assert_eq!(restored.jobs, 7);
    assert_eq!(restored.interrupted, 2); // resize, migrate
    assert_eq!(restored.requeued, 1); // scrub
    assert_eq!(restored.canceled, 1); // doomed
    assert!(
        e2.revision() > saved,
        "the revision continues, never goes back"
    );

    assert_eq!(e2.get(backup).unwrap().state(), State::Succeeded);
    assert_eq!(reason(&e2, resize), Some(FailReason::Interrupted));
    assert_eq!(reason(&e2, migrate), Some(FailReason::Interrupted));
    assert_eq!(
        reason(&e2, after_resize),
        Some(FailReason::DependencyFailed)
    );
    assert_eq!(reason(&e2, doomed), Some(FailReason::Canceled));
    assert_eq!(e2.get(scrub).unwrap().state(), State::Queued);
    assert_eq!(e2.get(report).unwrap().state(), State::Queued);
    let interrupted = e2.get(resize).unwrap();
    assert_eq!(interrupted.message(), "");
    assert_eq!(interrupted.detail(), Some(Detail::Interrupted));
    assert_eq!(
        e2.get(after_resize).unwrap().detail(),
        Some(Detail::Dependency(resize))
    );
    // An id issued before the restart that the image never held is stale, not another job.
    assert_eq!(e2.get(unsaved).err(), Some(LookupError::Stale));

    // Long-pollers of the restarted engine: an interrupted job answers at once; queued ones
    // answer when a worker finishes them.
    let now = e2
        .wait(migrate, Condition::Terminal, Duration::from_secs(60))
        .unwrap();
    assert!(!now.timed_out);
    assert_eq!(now.job.state(), State::Failed);
    let pollers: Vec<_> = [scrub, report]
        .into_iter()
        .map(|id| {
            let e = e2.clone();
            std::thread::spawn(move || e.wait(id, Condition::Terminal, Duration::from_secs(60)))
        })
        .collect();
    until_waiting(&e2, 2);

    // Start order: what was runnable before the crash, then the re-queued job.
    assert_eq!(e2.start_next(), Some(report));
    assert_eq!(e2.start_next(), Some(scrub));
    e2.succeed(report, Severity::Normal, "written").unwrap();
    e2.fail(scrub, 17, "disk gone").unwrap();
    let answers: Vec<_> = pollers
        .into_iter()
        .map(|p| p.join().unwrap().unwrap())
        .collect();
    assert!(answers.iter().all(|w| !w.timed_out));
    assert_eq!(answers[0].job.state(), State::Failed); // scrub
    assert_eq!(answers[1].job.state(), State::Succeeded); // report

    // New ids carry the new epoch and work.
    let fresh = submit(&e2, "fresh", &[backup], plain);
    assert_eq!(fresh.epoch(), 1);
    assert_eq!(e2.start_next(), Some(fresh));
    e2.succeed(fresh, Severity::Normal, "ok").unwrap();

    // Background persistence, then a second restart: everything kept, epoch 3.
    let persister = Persister::spawn(e2.clone(), store.clone(), Duration::ZERO).unwrap();
    let last = submit(&e2, "last", &[], plain);
    persister.stop().unwrap();
    let revision = e2.revision();
    drop(e2);
    let (e3, _) = store.load::<Jobs>(config()).unwrap().unwrap();
    // Nothing was running: the revision moves the restore gap on, and one for each restored
    // job (a waiter holding any earlier revision hears of it).
    let jobs = e3.list().len() as u64;
    assert_eq!(e3.revision().get(), revision.get() + RESTORE_GAP + jobs);
    for id in [backup, resize, scrub, report, fresh, last] {
        assert!(e3.get(id).is_ok(), "{id}");
    }
    assert_eq!(e3.get(unsaved).err(), Some(LookupError::Stale));
    assert_eq!(e3.submit(NewJob::new("x".into())).unwrap().epoch(), 2);
}

/// R-PERSIST, R-RETAIN: time spent down counts; a terminal job whose retention passed while
/// the service was down is removed by the first timer sweep (its tombstone answers).
#[test]
fn r_persist_downtime_counts_for_retention() {
    let e: E = Engine::new(config());
    let done = submit(&e, "done", &[], JobOptions::DEFAULT);
    let waiting = submit(&e, "waiting", &[], JobOptions::DEFAULT);
    assert_eq!(e.start_next(), Some(done));
    e.succeed(done, Severity::Normal, "ok").unwrap();
    let (bytes, _) = FileStore::encode(&e).unwrap();
    drop(e);

    let later = SystemTime::now() + Duration::from_secs(600); // retention is 300 s
    let (table, _) = FileStore::decode::<Jobs>(&bytes, later).unwrap();
    let e = Engine::from_boxed_table(table, config());
    assert_eq!(e.run_timers().removed, 1);
    assert!(
        matches!(e.get(done), Err(LookupError::Expired(Some(t))) if t.state() == State::Succeeded)
    );
    assert_eq!(e.get(waiting).unwrap().state(), State::Queued);

    // Right after the save: nothing is due yet.
    let (table, _) = FileStore::decode::<Jobs>(&bytes, SystemTime::now()).unwrap();
    let e = Engine::from_boxed_table(table, config());
    assert_eq!(e.run_timers().removed, 0);
}

/// The two records of a job file (A/B regions): `(offset, sequence number)` of each valid-looking
/// record header, newest last.
fn records(file: &[u8]) -> Vec<(usize, u32)> {
    let region = file.len() / 2;
    let mut found: Vec<(usize, u32)> = [0, region]
        .into_iter()
        .filter(|&at| file.get(at..at + 4) == Some(&b"JSAB"[..]))
        .map(|at| {
            (
                at,
                u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()),
            )
        })
        .collect();
    found.sort_by_key(|&(_, seq)| seq);
    found
}

/// Flip one byte inside the table image of the record at `at` (its payload starts with
/// `JSTF`; the image follows the 21-byte payload prefix).
fn corrupt_record(file: &mut [u8], at: usize) {
    let region = file.len() / 2;
    let end = (at + region).min(file.len());
    let payload = at
        + file[at..end]
            .windows(4)
            .position(|w| w == b"JSTF")
            .expect("a payload");
    file[payload + 21 + 20] ^= 0x10;
}

/// R-PERSIST: no file is a first start; a torn temporary file is ignored; a corrupted newest
/// record falls back to the previous one (never a mix); a file with no valid record, a
/// truncated or foreign file is refused with a typed error and loads nothing; a valid record
/// whose image is refused answers the core's `DecodeError`.
#[test]
fn r_persist_file_errors_are_typed() {
    let dir = TempDir::new("files");
    let path = dir.0.join("jobs.bin");
    let store = FileStore::new(&path);
    assert!(store.load::<Jobs>(config()).unwrap().is_none());

    let e: E = Engine::new(config());
    let id = submit(&e, "keep", &[], JobOptions::DEFAULT);
    store.save(&e).unwrap();
    let later = submit(&e, "later", &[], JobOptions::DEFAULT);
    store.save(&e).unwrap();
    // A crash mid-save leaves a torn temporary file next to the good one.
    std::fs::write(dir.0.join("jobs.bin.tmp"), b"JSTF torn").unwrap();
    let good = std::fs::read(&path).unwrap();
    let (loaded, _) = store.load::<Jobs>(config()).unwrap().unwrap();
    assert!(loaded.get(id).is_ok() && loaded.get(later).is_ok());

    // The newest record corrupted: the previous save answers, whole.
    let both = records(&good);
    assert_eq!(both.len(), 2, "two saves, two records");
    let mut flipped = good.clone();
    corrupt_record(&mut flipped, both[1].0);
    std::fs::write(&path, &flipped).unwrap();
    let (older, _) = store.load::<Jobs>(config()).unwrap().unwrap();
    assert!(older.get(id).is_ok());
    assert_eq!(older.get(later).err(), Some(LookupError::Stale));
    // Both records corrupted: nothing loads.
    corrupt_record(&mut flipped, both[0].0);
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::NotAStoreFile)
    ));
    std::fs::write(&path, &good[..good.len() - 3]).unwrap();
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::NotAStoreFile)
    ));
    std::fs::write(&path, b"something else entirely").unwrap();
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::NotAStoreFile)
    ));
    // A record that is whole but holds a refused image: the core's error, typed (a new file,
    // written by a new store, as another process would).
    std::fs::remove_file(&path).unwrap();
    let store = FileStore::new(&path);
    let (payload, _) = FileStore::encode(&e).unwrap();
    let mut flipped = payload.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    store.write_atomically(&flipped).unwrap();
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::Decode(DecodeError::Checksum))
    ));
    let mut old_format = payload.clone();
    old_format[21 + 4] = 1;
    store.write_atomically(&old_format).unwrap();
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::Decode(DecodeError::UnsupportedVersion(1)))
    ));
    // A smaller table than the one that wrote the file refuses it.
    let big: Engine<JobTable<String, 32>> = Engine::new(config());
    for k in 0..20 {
        big.submit(NewJob::new(k.to_string())).unwrap();
    }
    store.save(&big).unwrap();
    drop(big);
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::Decode(DecodeError::CapacityTooSmall {
            needed: 20
        }))
    ));
}

/// R-PERSIST, R-VERSION: saves racing from several threads (clones of one store) while the
/// engine changes: every file a reader sees is complete, and the saved revision never goes
/// back.
#[test]
fn r_persist_concurrent_saves_never_go_back() {
    let dir = TempDir::new("concurrent");
    let store = FileStore::new(dir.0.join("jobs.bin"));
    let e: Engine<JobTable<String, 64>> = Engine::new(config());
    store.save(&e).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
    let writers: Vec<_> = (0..2)
        .map(|k| {
            let (e, store, barrier) = (e.clone(), store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..40 {
                    if k == 0 && n % 2 == 0 {
                        let _ = e.submit(NewJob::new(format!("{n}")));
                    }
                    store.save(&e).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        let barrier = barrier.clone();
        std::thread::spawn(move || {
            barrier.wait();
            let mut last = 0u64;
            for _ in 0..80 {
                let bytes = std::fs::read(store.path()).unwrap();
                let (t, _) =
                    FileStore::decode::<JobTable<String, 64>>(&bytes, SystemTime::now()).unwrap();
                assert!(t.revision().get() >= last, "went back");
                last = t.revision().get();
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    store.save(&e).unwrap();
    let (loaded, _) = store
        .load::<JobTable<String, 64>>(config())
        .unwrap()
        .unwrap();
    // The newest save holds the engine's revision; the restore moves on from there.
    let jobs = loaded.list().len() as u64;
    assert_eq!(
        loaded.revision().get(),
        e.revision().get() + RESTORE_GAP + jobs
    );
}
