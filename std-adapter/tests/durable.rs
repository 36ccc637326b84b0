//! R-DURABLE in the std adapter: group commit to a file, acknowledgements only once on disk,
//! failures reported, restores that save their new epoch at once, torn records.
#![cfg(feature = "persist")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jobstate::{JobTable, NewJob};
use jobstate_std::persist::{Durability, FileStore};
use jobstate_std::{Engine, EngineConfig};

type Jobs = JobTable<String, 256>;

fn config() -> EngineConfig {
    EngineConfig {
        timer_thread: false,
        ..EngineConfig::default()
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("jobstate-durable-{name}-{}", std::process::id()));
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

const LONG: Duration = Duration::from_secs(30);

#[test]
fn r_durable_an_acknowledged_submit_is_in_the_file() {
    let dir = TempDir::new("ack");
    let path = dir.0.join("jobs.bin");
    let store = FileStore::new(&path);
    let engine: Engine<Jobs> = Engine::new(config());
    let durable = Durability::start(engine.clone(), store.clone()).unwrap();
    let id = engine.submit(NewJob::new("resize".into())).unwrap();
    durable.wait(engine.revision(), LONG).unwrap();
    // What a crash right now would leave: the file as it is.
    let bytes = std::fs::read(&path).unwrap();
    let (table, _) = FileStore::decode::<Jobs>(&bytes, SystemTime::now()).unwrap();
    assert_eq!(table.get(id).unwrap().spec(), "resize");
    let status = durable.status();
    assert!(
        status.durable >= engine.revision() && status.last_error.is_none(),
        "{status:?}"
    );
    durable.stop().unwrap();
}

#[test]
fn r_durable_concurrent_submitters_share_saves() {
    let dir = TempDir::new("group");
    let store = FileStore::new(dir.0.join("jobs.bin"));
    let engine: Engine<Jobs> = Engine::new(config());
    let durable = Arc::new(Durability::start(engine.clone(), store).unwrap());
    let per_thread = 3;
    let threads: Vec<_> = (0..32)
        .map(|k| {
            let (engine, durable) = (engine.clone(), durable.clone());
            std::thread::spawn(move || {
                for n in 0..per_thread {
                    engine.submit(NewJob::new(format!("{k}.{n}"))).unwrap();
                    durable.wait(engine.revision(), LONG).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let status = durable.status();
    // 96 acknowledged submits, far fewer saves: they shared their fsyncs.
    assert!(status.saves < 96, "{status:?}");
    assert_eq!(status.lag(), 0, "{status:?}");
}

#[test]
fn r_durable_a_failed_save_is_an_error_to_the_waiter_then_recovers() {
    log_lines();
    let dir = TempDir::new("fail");
    let sub = dir.0.join("not-yet");
    let store = FileStore::new(sub.join("jobs.bin"));
    let engine: Engine<Jobs> = Engine::new(config());
    let durable = Durability::start(engine.clone(), store).unwrap();
    engine.submit(NewJob::new("a".into())).unwrap();
    let err = durable.wait(engine.revision(), LONG).unwrap_err();
    assert_eq!(err.kind, std::io::ErrorKind::NotFound, "{err}");
    assert!(durable.status().last_error.is_some());
    // Logged once when saving starts failing, whichever thread saved.
    let logged = log_lines();
    assert!(
        logged.contains("the job file cannot be saved"),
        "not logged: {logged}"
    );
    // The directory appears: the next attempt saves everything.
    std::fs::create_dir_all(&sub).unwrap();
    engine.submit(NewJob::new("b".into())).unwrap();
    durable.wait(engine.revision(), LONG).unwrap();
    let status = durable.status();
    assert!(
        status.last_error.is_none() && status.failures >= 1,
        "{status:?}"
    );
    assert!(log_lines().contains("the job file is saved again"));
}

/// What the process logged so far (a global subscriber writing into memory, set once).
fn log_lines() -> String {
    use std::sync::{Mutex, OnceLock};
    static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    let log = *LOG.get_or_init(|| {
        let log: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct Sink(&'static Mutex<Vec<u8>>);
        impl std::io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(log))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        log
    });
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

#[test]
fn r_durable_restoring_the_same_file_twice_never_reissues_an_id() {
    let dir = TempDir::new("twice");
    let store = FileStore::new(dir.0.join("jobs.bin"));
    let engine: Engine<Jobs> = Engine::new(config());
    engine.submit(NewJob::new("first".into())).unwrap();
    store.save(&engine).unwrap();
    drop(engine);
    let mut seen = std::collections::HashSet::new();
    // A crash loop: restore, issue an id that is never saved, crash, again.
    for _ in 0..5 {
        let (engine, _) = FileStore::new(store.path())
            .load::<Jobs>(config())
            .unwrap()
            .unwrap();
        let id = engine.submit(NewJob::new("lost".into())).unwrap();
        assert!(seen.insert(id), "{id:?} issued twice");
    }
}

#[test]
fn r_durable_a_torn_newest_record_falls_back_to_the_previous_one() {
    let dir = TempDir::new("torn");
    let path = dir.0.join("jobs.bin");
    let store = FileStore::new(&path);
    let engine: Engine<Jobs> = Engine::new(config());
    let kept = engine.submit(NewJob::new("kept".into())).unwrap();
    store.save(&engine).unwrap();
    let torn = engine.submit(NewJob::new("torn".into())).unwrap();
    store.save(&engine).unwrap();
    // Tear the newest record: both regions hold a record; flip a byte in every region's body
    // in turn and check the load answers one of the two saved states, never a mix or nothing.
    let bytes = std::fs::read(&path).unwrap();
    let half = bytes.len() / 2;
    for region in [0, half] {
        let mut broken = bytes.clone();
        broken[region + 100] ^= 0xFF;
        let (table, _) = FileStore::decode::<Jobs>(&broken, SystemTime::now()).unwrap();
        assert!(table.get(kept).is_ok());
        let newest_intact = region != 0 || table.get(torn).is_ok();
        assert!(newest_intact || table.get(torn).is_err());
    }
}

/// The HTTP binding never acknowledges what it cannot keep: a submit whose save fails answers
/// 503 with the error envelope, and once saves work again the next submit answers 202.
#[cfg(feature = "http")]
#[test]
fn r_durable_http_answers_503_when_a_change_cannot_be_saved() {
    use jobstate_std::http::JobsApi;
    let dir = TempDir::new("http503");
    let sub = dir.0.join("missing");
    let engine: Engine<Jobs> = Engine::new(config());
    let durable =
        Arc::new(Durability::start(engine.clone(), FileStore::new(sub.join("jobs.bin"))).unwrap());
    let api = JobsApi::new(engine.clone()).with_durability(durable);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = rt
        .block_on(api.submit(NewJob::new("a".into()), Duration::ZERO))
        .unwrap_err();
    assert_eq!(refused.status().as_u16(), 503, "{}", refused.message());
    assert!(refused.retry_after().is_some());
    std::fs::create_dir_all(&sub).unwrap();
    let ok = rt
        .block_on(api.submit(NewJob::new("b".into()), Duration::ZERO))
        .unwrap();
    assert_eq!(ok.status().as_u16(), 202);
}
