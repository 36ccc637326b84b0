//! File persistence of an engine (R-PERSIST), through the core's image: save, load into a boxed
//! table in place, the restart policy, time spent down, a background persister, refused files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use jobstate::persist::DecodeError;
use jobstate::{FailReason, JobOptions, JobTable, LookupError, NewJob, Outcome, Severity, State};
use jobstate_std::persist::{FileStore, LoadError, Persister};
use jobstate_std::{Engine, EngineConfig};

type Jobs = JobTable<String, 8>;

fn config() -> EngineConfig {
    EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    }
}

/// A fresh directory per test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("jobstate-std-{name}-{}", std::process::id()));
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

#[test]
fn r_persist_save_then_load_applies_the_restart_policy() {
    let dir = TempDir::new("load");
    let store = FileStore::new(dir.0.join("jobs.bin"));
    assert!(
        store.load::<Jobs>(config()).unwrap().is_none(),
        "no file yet"
    );

    let e: Engine<Jobs> = Engine::new(config());
    let done = e.submit(NewJob::new("done".into())).unwrap();
    let running = e.submit(NewJob::new("running".into())).unwrap();
    let again = e
        .submit(NewJob::new("again".into()).options(JobOptions {
            restartable: true,
            ..JobOptions::DEFAULT
        }))
        .unwrap();
    let queued = e.submit(NewJob::new("queued".into())).unwrap();
    for id in [done, running, again] {
        e.start(id).unwrap();
    }
    e.succeed(done, Severity::Normal, "ok").unwrap();
    let saved = store.save(&e).unwrap();
    assert_eq!(saved, e.revision());
    drop(e);

    let (e, report) = store.load::<Jobs>(config()).unwrap().unwrap();
    assert_eq!(
        (report.jobs, report.interrupted, report.requeued),
        (4, 1, 1)
    );
    assert!(e.revision() > saved, "revisions go on after a restore");
    assert_eq!(e.get(done).unwrap().message(), "ok");
    assert_eq!(
        e.get(running).unwrap().outcome(),
        Some(Outcome::Failed {
            reason: FailReason::Interrupted,
            code: FailReason::Interrupted.default_code()
        })
    );
    assert_eq!(e.get(again).unwrap().state(), State::Queued);
    assert_eq!(e.get(queued).unwrap().state(), State::Queued);
    assert_eq!(e.get(queued).unwrap().spec(), "queued");
    // A new job after the restart gets an id of the new epoch; the old ones still answer.
    let new = e.submit(NewJob::new("new".into())).unwrap();
    assert!(new.epoch() > done.epoch());
}

#[test]
fn r_persist_time_spent_down_counts() {
    let e: Engine<Jobs> = Engine::new(config());
    let id = e.submit(NewJob::new("x".into())).unwrap();
    let (bytes, _) = FileStore::encode(&e).unwrap();
    let stored_now = e.with_table(|t| t.now());
    // Restored as if the system came back an hour after the file was written.
    let later = SystemTime::now() + Duration::from_secs(3_600);
    let (table, report) = FileStore::decode::<Jobs>(&bytes, later).unwrap();
    assert_eq!(report.jobs, 1);
    assert!(table.now() >= stored_now + jobstate::Duration::from_secs(3_599));
    let e = Engine::from_boxed_table(table, config());
    assert_eq!(e.get(id).unwrap().state(), State::Queued);
}

#[test]
fn r_persist_refused_files_answer_typed_errors() {
    let dir = TempDir::new("refused");
    let path = dir.0.join("jobs.bin");
    let store = FileStore::new(&path);
    std::fs::write(&path, b"not a job file").unwrap();
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::NotAStoreFile)
    ));
    // A valid file, one bit flipped in the image: the core's CRC refuses it.
    let e: Engine<Jobs> = Engine::new(config());
    e.submit(NewJob::new("x".into())).unwrap();
    let (mut bytes, _) = FileStore::encode(&e).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    store.write_atomically(&bytes).unwrap();
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::Decode(DecodeError::Checksum))
    ));
    // A table smaller than the one that wrote the file.
    let big: Engine<JobTable<String, 16>> = Engine::new(config());
    for k in 0..12 {
        big.submit(NewJob::new(format!("{k}"))).unwrap();
    }
    store.save(&big).unwrap();
    assert!(matches!(
        store.load::<Jobs>(config()),
        Err(LoadError::Decode(DecodeError::CapacityTooSmall { .. }))
    ));
}

#[test]
fn r_persist_persister_saves_the_last_change_when_stopped() {
    let dir = TempDir::new("persister");
    let store = FileStore::new(dir.0.join("jobs.bin"));
    let e: Engine<Jobs> = Engine::new(config());
    let persister = Persister::spawn(e.clone(), store.clone(), Duration::from_secs(3_600)).unwrap();
    let id = e.submit(NewJob::new("x".into())).unwrap();
    e.request_cancel(id).unwrap();
    persister.stop().unwrap();
    let (restored, _) = store.load::<Jobs>(config()).unwrap().unwrap();
    assert_eq!(restored.get(id).unwrap().state(), State::Failed);
    // An id of a job that was not in the file is from before the restart.
    let (other, _) = FileStore::decode::<Jobs>(
        &FileStore::encode(&Engine::<Jobs>::new(config())).unwrap().0,
        SystemTime::now(),
    )
    .unwrap();
    assert!(matches!(
        Engine::from_boxed_table(other, config()).get(id),
        Err(LookupError::Stale)
    ));
}
