//! File persistence of an [`Engine`] (R-PERSIST): save after changes, load on start.
//!
//! * [`FileStore::save`] encodes the table under the engine's lock
//!   ([`jobstate::JobTable::encode`]), then writes it outside the lock to `<path>.tmp`, `fsync`s it,
//!   renames it over `<path>` (atomic on POSIX file systems) and `fsync`s the directory. A
//!   crash at any point leaves either the previous file or the new one, never a mix.
//! * [`FileStore::load`] reads the file and restores an engine with the core's restart policy
//!   ([`jobstate::JobTable::restore_in_place`], into a table already on the heap): queued jobs stay
//!   queued in order; running and paused jobs fail with `Interrupted` (or go back to the queue
//!   when restartable); the epoch advances, so ids of jobs no longer in the table answer
//!   `Stale`; the revision continues. The time spent down counts: the file records the
//!   wall-clock time of the table's newest instant, and the restored table resumes that much
//!   later (retention keeps running).
//! * [`Persister`] saves in the background after every change, at most once per
//!   `min_interval`, and once more when it stops.
//!
//! A file is `JSTF`, a format byte, the wall-clock time of the table's `now` (µs since the UNIX
//! epoch, `u64` LE, stored twice, the second time inverted, as a check), then the core's table
//! image (its own header and CRC).
//!
//! ```
//! use jobstate::{JobTable, NewJob};
//! use jobstate_std::persist::FileStore;
//! use jobstate_std::{Engine, EngineConfig};
//!
//! let dir = std::env::temp_dir().join(format!("jobstate-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = FileStore::new(dir.join("jobs.bin"));
//!
//! type Jobs = JobTable<String, 16>;
//! let engine: Engine<Jobs> = Engine::new(EngineConfig::default());
//! let id = engine.submit(NewJob::new("resize".to_string())).unwrap();
//! store.save(&engine).unwrap();
//! drop(engine);
//!
//! // Next start: restore into the same table type.
//! let (engine, report) = store
//!     .load::<Jobs>(EngineConfig::default())
//!     .unwrap()
//!     .expect("a file was saved");
//! assert_eq!(report.jobs, 1);
//! assert_eq!(engine.get(id).unwrap().spec(), "resize");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use jobstate::persist::{image_now, DecodeError, EncodeError, Restored};
use jobstate::{Instant, Revision};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::{boxed_table, EngineTable};
use crate::{Engine, EngineConfig};

const FILE_MAGIC: [u8; 4] = *b"JSTF";
const FILE_FORMAT: u8 = 1;
const PREFIX: usize = 4 + 1 + 8 + 8;
/// Images larger than this are refused (a runaway spec serializer, not a real table).
const MAX_IMAGE: usize = 1 << 30;
/// How often a [`Persister`] looks at its stop flag while nothing changes.
const STOP_CHECK: StdDuration = StdDuration::from_millis(200);

/// Why a file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Reading the file failed.
    Io(io::Error),
    /// The file does not start with the store's prefix (another file, or cut short).
    NotAStoreFile,
    /// The table image in the file is refused (corrupt, truncated, another format, or a table
    /// smaller than the one that wrote it).
    Decode(DecodeError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(e) => write!(f, "reading the job file: {e}"),
            LoadError::NotAStoreFile => f.write_str("not a job-table file"),
            LoadError::Decode(e) => write!(f, "job-table image: {e}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io(e) => Some(e),
            LoadError::Decode(e) => Some(e),
            LoadError::NotAStoreFile => None,
        }
    }
}

/// One file holding one engine's table. Clones share a lock: saves through any of them happen
/// one at a time, each writing what it encoded under that lock, so an older encoding never
/// overwrites a newer one.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
    /// Held while writing; holds the length of the last image, where the next encode starts.
    writing: Arc<Mutex<usize>>,
}

fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl FileStore {
    /// A store at `path`; the temporary file is `path` with `.tmp` appended, in the same
    /// directory (so the rename stays on one file system).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            writing: Arc::new(Mutex::new(0)),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn temp_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    }

    /// Encode the engine's table into bytes (the file's contents), under the engine's lock.
    pub fn encode<Tb: EngineTable>(engine: &Engine<Tb>) -> io::Result<(Vec<u8>, Revision)>
    where
        Tb::Spec: Serialize,
    {
        Self::encode_from(engine, 0)
    }

    /// [`FileStore::encode`] into a buffer of at least `hint` image bytes to begin with (the
    /// last image's length: a table's image rarely changes size much between saves). The
    /// buffer doubles while the image does not fit ([`EncodeError::BufferTooSmall`]): the
    /// core's bound ([`jobstate::JobTable::image_size_bound`]) counts every text full and is far above
    /// a real image.
    fn encode_from<Tb: EngineTable>(
        engine: &Engine<Tb>,
        hint: usize,
    ) -> io::Result<(Vec<u8>, Revision)>
    where
        Tb::Spec: Serialize,
    {
        let first = hint.saturating_add(hint / 4).clamp(4096, MAX_IMAGE);
        let mut out = vec![0u8; PREFIX.saturating_add(first)];
        loop {
            let encoded = engine.with_table(|t| {
                let wall = micros_since_epoch(engine.to_system_time(t.now()));
                let image = out.get_mut(PREFIX..).unwrap_or_default();
                t.encode(image).map(|len| (len, wall, t.revision()))
            });
            match encoded {
                Ok((len, wall, revision)) => {
                    let mut prefix = Vec::with_capacity(PREFIX);
                    prefix.extend_from_slice(&FILE_MAGIC);
                    prefix.push(FILE_FORMAT);
                    prefix.extend_from_slice(&wall.to_le_bytes());
                    prefix.extend_from_slice(&(!wall).to_le_bytes());
                    if let Some(head) = out.get_mut(..PREFIX) {
                        head.copy_from_slice(&prefix);
                    }
                    out.truncate(PREFIX.saturating_add(len));
                    return Ok((out, revision));
                }
                Err(EncodeError::BufferTooSmall) if out.len() < MAX_IMAGE => {
                    out.resize(out.len().saturating_mul(2), 0);
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    /// Write the engine's table to the file: temporary file, `fsync`, rename, `fsync` of the
    /// directory. Answers the revision saved.
    pub fn save<Tb: EngineTable>(&self, engine: &Engine<Tb>) -> io::Result<Revision>
    where
        Tb::Spec: Serialize,
    {
        let mut last_len = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (bytes, revision) = Self::encode_from(engine, *last_len)?;
        self.write_file(&bytes)?;
        *last_len = bytes.len().saturating_sub(PREFIX);
        Ok(revision)
    }

    /// Replace the file's contents with `bytes` (as [`FileStore::encode`] made them),
    /// crash-safely.
    pub fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        self.write_file(bytes)
    }

    fn write_file(&self, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.temp_path();
        {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)
    }

    /// Restore an engine from the file (see the [module docs](self)); `Ok(None)` when there is
    /// no file yet (first start). `config.table` is ignored: the table keeps the settings it
    /// was saved with. `Tb` is the table type to restore into: `store.load::<Jobs>(config)`.
    #[allow(clippy::type_complexity)]
    pub fn load<Tb: EngineTable>(
        &self,
        config: EngineConfig,
    ) -> Result<Option<(Engine<Tb>, Restored)>, LoadError>
    where
        Tb::Spec: DeserializeOwned,
    {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LoadError::Io(e)),
        };
        let (table, report) = Self::decode(&bytes, SystemTime::now())?;
        Ok(Some((Engine::from_boxed_table(table, config), report)))
    }

    /// Restore a table from a file's contents, as if the system came back at `wall_now`: the
    /// time spent down since the file was written is added to the table's clock. The table is
    /// built on the heap and restored there, in place ([`jobstate::JobTable::restore_in_place`]).
    #[allow(clippy::type_complexity)]
    pub fn decode<Tb: EngineTable>(
        bytes: &[u8],
        wall_now: SystemTime,
    ) -> Result<(Box<Tb>, Restored), LoadError>
    where
        Tb::Spec: DeserializeOwned,
    {
        let (prefix, image) = bytes
            .split_at_checked(PREFIX)
            .ok_or(LoadError::NotAStoreFile)?;
        let field = |at: usize| -> u64 {
            let mut w = [0u8; 8];
            if let Some(src) = prefix.get(at..at.saturating_add(8)) {
                w.copy_from_slice(src);
            }
            u64::from_le_bytes(w)
        };
        let (wall, check) = (field(5), field(13));
        if prefix.get(..4) != Some(&FILE_MAGIC[..])
            || prefix.get(4) != Some(&FILE_FORMAT)
            || wall != !check
        {
            return Err(LoadError::NotAStoreFile);
        }
        let down = micros_since_epoch(wall_now).saturating_sub(wall);
        // Restore at the stored instant plus the time spent down.
        let stored_now = image_now(image).map_err(LoadError::Decode)?;
        let now = Instant::from_micros(stored_now.as_micros().saturating_add(down));
        let mut table: Box<Tb> = boxed_table(jobstate::Config::DEFAULT);
        let report = table
            .restore_in_place(image, now)
            .map_err(LoadError::Decode)?;
        Ok((table, report))
    }
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing here; the rename is as durable as the OS makes
    // it.
    Ok(())
}

/// Saves an engine to a [`FileStore`] in the background: after every change, at most once per
/// `min_interval` (`Duration::ZERO`: after every change), and once more when stopped or dropped.
/// Save errors are kept; the next change tries again.
pub struct Persister {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Persister {
    /// Start saving `engine` to `store`.
    pub fn spawn<Tb: EngineTable>(
        engine: Engine<Tb>,
        store: FileStore,
        min_interval: StdDuration,
    ) -> io::Result<Self>
    where
        Tb::Spec: Serialize,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("jobstate-persist".into())
            .spawn(move || {
                let mut saved: Option<Revision> = None;
                let mut last_save: Option<StdInstant> = None;
                let mut last_error: io::Result<()> = Ok(());
                loop {
                    let stopping = flag.load(Ordering::Acquire);
                    let current = engine.revision();
                    let due = last_save.is_none_or(|t| t.elapsed() >= min_interval);
                    if saved != Some(current) && (due || stopping) {
                        match store.save(&engine) {
                            Ok(r) => {
                                saved = Some(r);
                                last_error = Ok(());
                            }
                            Err(e) => last_error = Err(e),
                        }
                        last_save = Some(StdInstant::now());
                    }
                    if stopping {
                        return last_error;
                    }
                    let wait = if saved == Some(current) {
                        STOP_CHECK
                    } else {
                        let left = last_save.map_or(StdDuration::ZERO, |t| {
                            min_interval.saturating_sub(t.elapsed())
                        });
                        left.min(STOP_CHECK)
                    };
                    if saved == Some(engine.revision()) {
                        let _ = engine.wait_table(current, wait);
                    } else if !wait.is_zero() {
                        std::thread::park_timeout(wait);
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop after one last save of any unsaved change; answers that save's result.
    pub fn stop(mut self) -> io::Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(t) => {
                t.thread().unpark();
                t.join()
                    .unwrap_or_else(|_| Err(io::Error::other("persister thread panicked")))
            }
            None => Ok(()),
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
