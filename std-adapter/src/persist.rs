//! File persistence of an [`Engine`] (R-PERSIST, R-DURABLE): a change a client is told about
//! is on disk first; nothing acknowledged is lost, no id or revision is issued twice.
//!
//! * **The file** keeps the table the way the firmware's flash does: two regions and the core's
//!   A/B record store ([`jobstate::flash::AbStore`] over a file, see `region.rs`). A save
//!   writes one record into the region without the newest valid record and makes it durable
//!   with **one** `fdatasync`; a crash at any point leaves the previous record or the new one
//!   (a torn record fails its CRC). The file grows (rewritten whole, through a temporary file
//!   and a rename) only when an image outgrows its region; its regions are written with zeros
//!   when the file is made, so no save allocates blocks. A save reads nothing back: the store
//!   remembers which region holds the newest record (it reads both again after an error).
//! * [`FileStore::load`] restores an engine with the core's restart policy
//!   ([`jobstate::JobTable::restore_in_place`], into a table on the heap) and **saves it at once**,
//!   before it can issue an id: the new epoch is durable, so a crash loop that restores the
//!   same file again and again never hands out one id twice. The time spent down counts: a
//!   record holds the wall-clock time of the table's newest instant, and the restored table
//!   resumes that much later (retention keeps running).
//! * [`Durability`] is the group commit: a thread saves the table whenever it changed, covering
//!   every change made up to that moment with one write and one `fdatasync`, so concurrent
//!   changes share the cost. [`Durability::wait`] / [`Durability::wait_async`] answer when a
//!   revision is on disk — or with [`NotDurable`] when the save that should have covered it
//!   failed (disk full, read-only directory): the caller then answers an error (HTTP 503),
//!   never an acknowledgement it cannot keep. [`Durability::status`] reads the state while it
//!   runs (durable revision, lag, last error, saves, last save time); failures are retried.
//!
//! A record's payload is `JSTF`, a format byte (2), the wall-clock time of the table's `now` (µs
//! since the UNIX epoch, `u64` LE, stored twice, the second time inverted, as a check), then the
//! core's table image (its own header and CRC).
//!
//! ```
//! use jobstate::{JobTable, NewJob};
//! use jobstate_std::persist::{Durability, FileStore};
//! use jobstate_std::{Engine, EngineConfig};
//!
//! let dir = std::env::temp_dir().join(format!("jobstate-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = FileStore::new(dir.join("jobs.bin"));
//!
//! type Jobs = JobTable<String, 16>;
//! let engine: Engine<Jobs> = Engine::new(EngineConfig::default());
//! let durable = Durability::start(engine.clone(), store.clone()).unwrap();
//! let id = engine.submit(NewJob::new("resize".to_string())).unwrap();
//! // Acknowledge only once the submit is on disk.
//! durable.wait(engine.revision(), std::time::Duration::from_secs(5)).unwrap();
//! durable.stop().unwrap();
//! drop(engine);
//!
//! // Next start: restore into the same table type (and saved again at once).
//! let (engine, report) = store
//!     .load::<Jobs>(EngineConfig::default())
//!     .unwrap()
//!     .expect("a file was saved");
//! assert_eq!(report.jobs, 1);
//! assert_eq!(engine.get(id).unwrap().spec(), "resize");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use jobstate::flash::{AbStore, StoreError};
use jobstate::persist::{image_now, DecodeError, EncodeError, Restored};
use jobstate::{Instant, Revision, Table};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::{boxed_table, EngineTable};
use crate::region::{write_at, RegionError, RegionFile, BLOCK};
use crate::{Engine, EngineConfig};

const FILE_MAGIC: [u8; 4] = *b"JSTF";
const FILE_FORMAT: u8 = 2;
const PREFIX: usize = 4 + 1 + 8 + 8;
/// Images larger than this are refused (a runaway spec serializer, not a real table).
const MAX_IMAGE: usize = 1 << 30;
/// The smallest region: 64 KiB.
const MIN_REGION: u32 = 16 * BLOCK;
/// How often the [`Durability`] thread looks at its stop flag while nothing changes.
const STOP_CHECK: StdDuration = StdDuration::from_millis(200);
/// After a failed save, the next attempt waits this long (or the next change).
const RETRY_AFTER_FAILURE: StdDuration = StdDuration::from_millis(100);

type Store = AbStore<RegionFile>;

/// Why a file could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// Reading the file failed.
    Io(io::Error),
    /// The file does not hold a valid job-table record (another file, a former format, or
    /// both regions torn).
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

fn micros_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn store_error(e: StoreError<RegionError>, file: &mut Option<Store>) -> io::Error {
    let detail = file.as_mut().and_then(|s| s.flash_mut().last_error.take());
    match (e, detail) {
        (StoreError::Flash(_), Some(io)) => io,
        (StoreError::Flash(RegionError(kind)), None) => io::Error::from(kind),
        (other, _) => io::Error::other(format!("{other}")),
    }
}

/// The open file and the record buffer, shared by a store's clones.
struct Inner {
    store: Option<Store>,
    /// The record being written: header area, then the payload (encoded in place, the buffer
    /// kept from save to save).
    buf: Vec<u8>,
    /// The last payload's length: where the next encode starts.
    last_len: usize,
    /// Bytes per region of the open file.
    region: usize,
}

/// One file holding one engine's table. Clones share the open file: saves through any of them
/// happen one at a time, each writing what it encoded, so an older encoding never overwrites a
/// newer one.
#[derive(Clone)]
pub struct FileStore {
    path: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// A store at `path`. A temporary file (`path` with `.tmp` appended, same directory) is
    /// used only when the file is created or grown.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            inner: Arc::new(Mutex::new(Inner {
                store: None,
                buf: Vec::new(),
                last_len: 0,
                region: 0,
            })),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn temp_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    }

    /// Encode a record payload of the table — prefix (wall-clock time of its `now`) and
    /// image — into `out` from `at` on, growing `out` when the image does not fit (`hint`: the
    /// last payload's length). Answers the payload's length and the revision it covers.
    fn encode_into<Tb: Table>(
        t: &Tb,
        wall: u64,
        out: &mut Vec<u8>,
        at: usize,
        hint: usize,
    ) -> io::Result<(usize, Revision)>
    where
        Tb::Spec: Serialize,
    {
        let image_at = at.saturating_add(PREFIX);
        let first = hint.saturating_add(hint / 4).clamp(4096, MAX_IMAGE);
        if out.len() < image_at.saturating_add(first) {
            out.resize(image_at.saturating_add(first), 0);
        }
        loop {
            let image = out.get_mut(image_at..).unwrap_or_default();
            match t.encode(image) {
                Ok(len) => {
                    if let Some(head) = out.get_mut(at..image_at) {
                        let (magic, rest) = head.split_at_mut(FILE_MAGIC.len());
                        magic.copy_from_slice(&FILE_MAGIC);
                        let (format, rest) = rest.split_at_mut(1);
                        format.fill(FILE_FORMAT);
                        let (time, check) = rest.split_at_mut(8);
                        time.copy_from_slice(&wall.to_le_bytes());
                        check.copy_from_slice(&(!wall).to_le_bytes());
                    }
                    return Ok((PREFIX.saturating_add(len), t.revision()));
                }
                Err(EncodeError::BufferTooSmall) if out.len() < MAX_IMAGE => {
                    out.resize(out.len().saturating_mul(2), 0);
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }

    /// Encode the engine's table (a record payload), under the engine's lock.
    pub fn encode<Tb: EngineTable>(engine: &Engine<Tb>) -> io::Result<(Vec<u8>, Revision)>
    where
        Tb::Spec: Serialize,
    {
        let mut out = Vec::new();
        let (len, revision) = Self::encode_from(engine, &mut out, 0, 0)?;
        out.truncate(len);
        Ok((out, revision))
    }

    fn encode_from<Tb: EngineTable>(
        engine: &Engine<Tb>,
        out: &mut Vec<u8>,
        at: usize,
        hint: usize,
    ) -> io::Result<(usize, Revision)>
    where
        Tb::Spec: Serialize,
    {
        engine.with_table(|t| {
            let wall = micros_since_epoch(engine.to_system_time(t.now()));
            Self::encode_into(t, wall, out, at, hint)
        })
    }

    /// Save the engine's table durably (one record, one `fdatasync`). Answers the revision
    /// saved.
    pub fn save<Tb: EngineTable>(&self, engine: &Engine<Tb>) -> io::Result<Revision>
    where
        Tb::Spec: Serialize,
    {
        let mut inner = self.lock();
        let inner = &mut *inner;
        // Encoded straight into the record buffer, after the record's header area.
        let (len, revision) =
            Self::encode_from(engine, &mut inner.buf, Store::HEADER_AREA, inner.last_len)?;
        self.write_record(inner, len)?;
        Ok(revision)
    }

    /// Write `bytes` (a payload as [`FileStore::encode`] makes it) as the file's newest
    /// record, durably.
    pub fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        let mut inner = self.lock();
        let need = Store::buffer_len(bytes.len());
        if inner.buf.len() < need {
            inner.buf.resize(need, 0);
        }
        if let Some(dst) = inner
            .buf
            .get_mut(Store::HEADER_AREA..Store::HEADER_AREA.saturating_add(bytes.len()))
        {
            dst.copy_from_slice(bytes);
        }
        self.write_record(&mut inner, bytes.len())
    }

    /// Write the payload in `inner.buf[HEADER_AREA..HEADER_AREA + len]` as the file's newest
    /// record, durably (one `pwrite`, one `fdatasync`).
    fn write_record(&self, inner: &mut Inner, len: usize) -> io::Result<()> {
        let need = Store::buffer_len(len);
        let fits = inner.store.is_some() && need <= inner.region;
        if !fits {
            self.open_or_grow(inner, need)?;
        }
        if inner.buf.len() < need {
            inner.buf.resize(need, 0);
        }
        let Inner { store, buf, .. } = inner;
        let saved = match store.as_mut() {
            Some(s) => s.save(buf, len).map(|_| ()),
            None => return Err(io::Error::other("store not open")),
        };
        saved.map_err(|e| store_error(e, store))?;
        // The sync leaves the contents as the save made them: the store keeps knowing which
        // region holds the newest record, and the next save reads neither region. When it
        // fails, the record just written may not be on disk although the page cache still
        // shows it whole: the store retracts it, so the next save rewrites that region and
        // never touches the other, the last record known to be durable.
        let synced = store
            .as_mut()
            .map_or(Ok(()), |s| s.flash_mut_unchanged().sync());
        if let Err(e) = synced {
            if let Some(s) = store.as_mut() {
                s.retract_last_save();
            }
            return Err(e);
        }
        inner.last_len = len;
        Ok(())
    }

    /// Open the existing file if its regions hold `need` bytes, else write a new file with
    /// regions big enough (keeping the newest record) and rename it over the old one.
    fn open_or_grow(&self, inner: &mut Inner, need: usize) -> io::Result<()> {
        if inner.store.is_none() {
            if let Ok(f) = OpenOptions::new().read(true).write(true).open(&self.path) {
                let len = usize::try_from(f.metadata()?.len()).unwrap_or(0);
                let region = len / 2;
                if region >= need && region % BLOCK as usize == 0 && region > 0 {
                    inner.store = Some(open_store(f, len)?);
                    inner.region = region;
                    return Ok(());
                }
            }
        }
        // A new layout: regions of at least twice what is needed now, in whole blocks.
        let region = u32::try_from(need.saturating_mul(2))
            .unwrap_or(u32::MAX)
            .max(MIN_REGION)
            .div_ceil(BLOCK)
            .saturating_mul(BLOCK);
        let len = usize::try_from(region)
            .unwrap_or(usize::MAX)
            .saturating_mul(2);
        // Carry the newest record over, if there is one.
        let carried = match inner.store.as_mut() {
            Some(s) => {
                let mut buf = vec![0u8; Store::buffer_len(inner.region)];
                s.load(&mut buf)
                    .map_err(|e| store_error(e, &mut None))?
                    .map(<[u8]>::to_vec)
            }
            None => None,
        };
        let tmp = self.temp_path();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.set_len(u64::try_from(len).unwrap_or(u64::MAX))?;
        preallocate(&f, len)?;
        let mut store = open_store(f, len)?;
        if let Some(payload) = carried {
            let mut buf = vec![0u8; Store::buffer_len(payload.len())];
            if let Some(dst) = buf.get_mut(Store::HEADER_AREA..Store::HEADER_AREA + payload.len()) {
                dst.copy_from_slice(&payload);
            }
            let mut slot = Some(store);
            let saved = slot
                .as_mut()
                .map(|s| s.save(&mut buf, payload.len()))
                .unwrap_or(Ok(0));
            saved.map_err(|e| store_error(e, &mut slot))?;
            store = slot.ok_or_else(|| io::Error::other("store lost"))?;
        }
        store.flash_mut().sync()?;
        fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)?;
        inner.store = Some(store);
        inner.region = usize::try_from(region).unwrap_or(usize::MAX);
        Ok(())
    }

    /// Restore an engine from the file (see the [module docs](self)) and save it at once;
    /// `Ok(None)` when there is no file yet (first start). `config.table` is ignored: the table
    /// keeps the settings it was saved with. `Tb` is the table type: `store.load::<Jobs>(..)`.
    #[allow(clippy::type_complexity)]
    pub fn load<Tb: EngineTable>(
        &self,
        config: EngineConfig,
    ) -> Result<Option<(Engine<Tb>, Restored)>, LoadError>
    where
        Tb::Spec: DeserializeOwned + Serialize,
    {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LoadError::Io(e)),
        };
        let wall_now = SystemTime::now();
        let (table, report) = Self::decode::<Tb>(&bytes, wall_now)?;
        // The new epoch on disk before the first new id (R-ID, R-DURABLE).
        {
            let mut inner = self.lock();
            let inner = &mut *inner;
            inner.store = None;
            let (len, _) = Self::encode_into(
                &*table,
                micros_since_epoch(wall_now),
                &mut inner.buf,
                Store::HEADER_AREA,
                bytes.len() / 2,
            )
            .map_err(LoadError::Io)?;
            self.write_record(inner, len).map_err(LoadError::Io)?;
        }
        Ok(Some((Engine::from_boxed_table(table, config), report)))
    }

    /// Restore a table from a file's contents (or from one payload, as
    /// [`FileStore::encode`] makes it), as if the system came back at `wall_now`: the time
    /// spent down since the record was written is added to the table's clock. The table is
    /// built on the heap and restored there, in place. Saving it is the caller's (a restored
    /// table must be saved before it issues an id; [`FileStore::load`] does).
    #[allow(clippy::type_complexity)]
    pub fn decode<Tb: EngineTable>(
        bytes: &[u8],
        wall_now: SystemTime,
    ) -> Result<(Box<Tb>, Restored), LoadError>
    where
        Tb::Spec: DeserializeOwned,
    {
        if bytes.get(..4) == Some(&FILE_MAGIC[..]) {
            return Self::decode_payload(bytes, wall_now);
        }
        let len = bytes.len();
        let region = u32::try_from(len / 2).map_err(|_| LoadError::NotAStoreFile)?;
        let mut store = Store::new(RegionFile::memory(bytes.to_vec()), 0, region)
            .map_err(|_| LoadError::NotAStoreFile)?;
        let mut buf = vec![0u8; Store::buffer_len(len / 2)];
        let payload = store
            .load(&mut buf)
            .map_err(|_| LoadError::NotAStoreFile)?
            .ok_or(LoadError::NotAStoreFile)?;
        Self::decode_payload(payload, wall_now)
    }

    fn decode_payload<Tb: EngineTable>(
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

/// Write zeros over the whole file once, so that no save has to allocate blocks (a write into
/// a hole makes the `fdatasync` after it commit the file system's metadata as well).
fn preallocate(f: &File, len: usize) -> io::Result<()> {
    const STEP: usize = 64 * 1024;
    let zeros = vec![0u8; STEP.min(len)];
    let mut at = 0usize;
    while at < len {
        let n = STEP.min(len.saturating_sub(at));
        write_at(
            f,
            zeros.get(..n).unwrap_or_default(),
            u64::try_from(at).unwrap_or(u64::MAX),
        )?;
        at = at.saturating_add(n);
    }
    Ok(())
}

fn open_store(f: File, len: usize) -> io::Result<Store> {
    let region = u32::try_from(len / 2).map_err(|_| io::Error::other("job file too large"))?;
    Store::new(RegionFile::file(f, len), 0, region)
        .map_err(|e| io::Error::other(format!("job file layout: {e}")))
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

/// A change that could not be made durable: the save that should have covered it failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotDurable {
    /// The I/O error's kind.
    pub kind: io::ErrorKind,
    /// Its message.
    pub message: String,
}

impl std::fmt::Display for NotDurable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "change not saved: {}", self.message)
    }
}

impl std::error::Error for NotDurable {}

/// What a [`Durability`] has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurabilityStatus {
    /// Every change up to this revision is on disk.
    pub durable: Revision,
    /// The table's revision when the status was read: `table - durable` changes wait.
    pub table: Revision,
    /// Saves done.
    pub saves: u64,
    /// Saves that failed.
    pub failures: u64,
    /// The last save's error, until a save succeeds again.
    pub last_error: Option<NotDurable>,
    /// How long the last successful save took (encode, write, `fdatasync`).
    pub last_save: Option<StdDuration>,
}

impl DurabilityStatus {
    /// Changes not yet on disk.
    pub fn lag(&self) -> u64 {
        self.table.get().saturating_sub(self.durable.get())
    }
}

#[derive(Default)]
struct DState {
    status: DurabilityStatus,
    /// The revision the last failed save would have covered.
    failed_up_to: Option<Revision>,
    /// A save is under way (its leader is a waiter or the background thread).
    saving: bool,
    /// Blocking waiters asleep on [`DShared::saved`] (a save wakes them only when there are).
    sleepers: usize,
    wakers: Vec<(Revision, Waker)>,
}

/// Saves the table; answers the revision it covered.
type SaveFn = dyn Fn() -> io::Result<Revision> + Send + Sync;
/// The table's revision now.
type RevisionFn = dyn Fn() -> Revision + Send + Sync;

struct DShared {
    state: Mutex<DState>,
    /// A save ended: blocking waiters look again.
    saved: Condvar,
    /// The background thread looks again: an async waiter came, a save ended with async
    /// waiters it did not settle, or stop. (Not every save: the background thread stays asleep
    /// while waiters save.)
    nudge: Condvar,
    stop: AtomicBool,
    save: Box<SaveFn>,
    revision: Box<RevisionFn>,
}

impl DShared {
    fn lock(&self) -> MutexGuard<'_, DState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `rev` is settled: `Some(Ok)` durable, `Some(Err)` its save failed.
    fn settled(st: &DState, rev: Revision) -> Option<Result<(), NotDurable>> {
        if st.status.durable >= rev {
            return Some(Ok(()));
        }
        match (&st.failed_up_to, &st.status.last_error) {
            (Some(up_to), Some(e)) if *up_to >= rev => Some(Err(e.clone())),
            _ => None,
        }
    }

    /// Save as the leader (the caller set `saving`): every change made so far is covered by
    /// this one write and `fdatasync`; then wake whoever it settled.
    fn lead(&self) {
        let target = (self.revision)();
        let began = StdInstant::now();
        let result = (self.save)();
        let mut wake = Vec::new();
        let (sleepers, unsettled) = {
            let mut st = self.lock();
            match &result {
                Ok(r) => {
                    if st.status.last_error.is_some() {
                        tracing::info!(
                            revision = r.get(),
                            failures = st.status.failures,
                            "the job file is saved again"
                        );
                    }
                    st.status.durable = st.status.durable.max(*r);
                    st.status.saves = st.status.saves.saturating_add(1);
                    st.status.last_error = None;
                    st.status.last_save = Some(began.elapsed());
                    st.failed_up_to = None;
                }
                Err(e) => {
                    // Logged when saving starts failing (and counted every time): a disk that
                    // stays full does not flood the log with one line per attempt.
                    if st.status.last_error.is_none() {
                        tracing::warn!(
                            error = %e,
                            waiting = (self.revision)().get().saturating_sub(st.status.durable.get()),
                            "the job file cannot be saved: changes stay in memory, waiters are answered not durable"
                        );
                    }
                    st.status.failures = st.status.failures.saturating_add(1);
                    st.status.last_error = Some(NotDurable {
                        kind: e.kind(),
                        message: e.to_string(),
                    });
                    st.failed_up_to = Some(target);
                }
            }
            st.status.table = (self.revision)();
            st.saving = false;
            let mut k = 0;
            while k < st.wakers.len() {
                let settled = st
                    .wakers
                    .get(k)
                    .is_some_and(|(r, _)| Self::settled(&st, *r).is_some());
                if settled {
                    wake.push(st.wakers.swap_remove(k).1);
                } else {
                    k = k.saturating_add(1);
                }
            }
            (st.sleepers > 0, !st.wakers.is_empty())
        };
        if sleepers {
            self.saved.notify_all();
        }
        if unsettled {
            self.nudge.notify_all();
        }
        // Wakers run outside the lock.
        for w in wake {
            w.wake();
        }
    }
}

/// Group commit of an engine to a [`FileStore`] (R-DURABLE): see the [module docs](self).
///
/// A waiter whose change is not on disk yet saves the table itself when no save is under way
/// (it leads: one write and one `fdatasync` cover every change made so far), or waits for the
/// save under way and then, if that did not cover it, leads the next. A background thread
/// saves changes nobody waits for (a worker's progress) and serves async waiters.
pub struct Durability {
    shared: Arc<DShared>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// The former name of [`Durability`] (a background saver).
pub type Persister = Durability;

impl Durability {
    /// Save `engine` to `store`: every change a waiter waits for at once (the waiter leads the
    /// save), every other change within [`Durability::BACKGROUND_DELAY`] (or sooner, with the
    /// next waiter's save).
    pub fn start<Tb: EngineTable>(engine: Engine<Tb>, store: FileStore) -> io::Result<Self>
    where
        Tb::Spec: Serialize,
    {
        Self::spawn(engine, store, Self::BACKGROUND_DELAY)
    }

    /// How long after it sees a change nobody waits for (a worker's progress) the background
    /// thread saves it, unless a waiter's save covered it meanwhile: long enough that it does
    /// not take the disk from waiters, short enough that such changes are on disk soon.
    pub const BACKGROUND_DELAY: StdDuration = StdDuration::from_millis(10);

    /// Like [`Durability::start`], but the background thread saves a change `min_interval`
    /// after it sees it, so at most once per `min_interval` (a debounce; waiters still get
    /// their change saved at once; async waiters are served at once). Saves once more when
    /// stopped.
    pub fn spawn<Tb: EngineTable>(
        engine: Engine<Tb>,
        store: FileStore,
        min_interval: StdDuration,
    ) -> io::Result<Self>
    where
        Tb::Spec: Serialize,
    {
        let (saver, reader) = (engine.clone(), engine.clone());
        let shared = Arc::new(DShared {
            state: Mutex::new(DState::default()),
            saved: Condvar::new(),
            nudge: Condvar::new(),
            stop: AtomicBool::new(false),
            save: Box::new(move || store.save(&saver)),
            revision: Box::new(move || reader.revision()),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("jobstate-durable".into())
            .spawn(move || run(&engine, &worker, min_interval))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Block until every change up to `revision` is on disk (`Ok`), its save failed
    /// (`Err`), or `timeout` passed (`Err` with kind `TimedOut`). Saves itself when no save is
    /// under way.
    pub fn wait(&self, revision: Revision, timeout: StdDuration) -> Result<(), NotDurable> {
        let deadline = StdInstant::now().checked_add(timeout);
        let mut st = self.shared.lock();
        loop {
            if let Some(done) = DShared::settled(&st, revision) {
                return done;
            }
            if !st.saving {
                st.saving = true;
                drop(st);
                self.shared.lead();
                st = self.shared.lock();
                continue;
            }
            let left = deadline.map_or(STOP_CHECK, |d| {
                d.saturating_duration_since(StdInstant::now())
            });
            if left.is_zero() {
                return Err(NotDurable {
                    kind: io::ErrorKind::TimedOut,
                    message: "save still pending".into(),
                });
            }
            st.sleepers = st.sleepers.saturating_add(1);
            st = self
                .shared
                .saved
                .wait_timeout(st, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
            st.sleepers = st.sleepers.saturating_sub(1);
        }
    }

    /// [`Durability::wait`] as a future (no timeout: the save either happens or fails). The
    /// background thread saves for it.
    pub fn wait_async(&self, revision: Revision) -> DurableFuture {
        DurableFuture {
            shared: self.shared.clone(),
            revision,
        }
    }

    /// The state now.
    pub fn status(&self) -> DurabilityStatus {
        let mut status = self.shared.lock().status.clone();
        status.table = (self.shared.revision)();
        status
    }

    /// Stop after one last save of any unsaved change; answers that save's result.
    pub fn stop(mut self) -> io::Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.saved.notify_all();
        self.shared.nudge.notify_all();
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("durability thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Durability {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A wait for durability ([`Durability::wait_async`]).
pub struct DurableFuture {
    shared: Arc<DShared>,
    revision: Revision,
}

impl Future for DurableFuture {
    type Output = Result<(), NotDurable>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.lock();
        if let Some(done) = DShared::settled(&st, self.revision) {
            return Poll::Ready(done);
        }
        let waker = cx.waker();
        match st
            .wakers
            .iter_mut()
            .find(|(r, w)| *r == self.revision && w.will_wake(waker))
        {
            Some(_) => {}
            None => st.wakers.push((self.revision, waker.clone())),
        }
        drop(st);
        // The background thread may be asleep on a revision this change already passed.
        self.shared.nudge.notify_all();
        Poll::Pending
    }
}

/// The background loop: save changes nobody waits for, and those async waiters wait for.
fn run<Tb: EngineTable>(
    engine: &Engine<Tb>,
    shared: &DShared,
    min_interval: StdDuration,
) -> io::Result<()> {
    let mut last_attempt: Option<StdInstant> = None;
    // When the thread saw unsaved changes first, and the durable revision then: a save since
    // (a waiter's) restarts the delay.
    let mut behind_since: Option<(StdInstant, Revision)> = None;
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        let current = engine.revision();
        let mut st = shared.lock();
        if st.saving {
            // A waiter leads. Look again when it leaves async waiters unsettled, on stop, or
            // after the delay (changes made during its save).
            let _ = shared.nudge.wait_timeout(
                st,
                min_interval.clamp(StdDuration::from_millis(1), STOP_CHECK),
            );
            continue;
        }
        let behind = st.status.durable < current;
        if !behind {
            behind_since = None;
            if stopping {
                return match &st.status.last_error {
                    None => Ok(()),
                    Some(e) => Err(io::Error::new(e.kind, e.message.clone())),
                };
            }
            drop(st);
            let _ = engine.wait_table(current, STOP_CHECK);
            continue;
        }
        let seen = match behind_since {
            Some((at, durable)) if durable == st.status.durable => at,
            _ => {
                let now = StdInstant::now();
                behind_since = Some((now, st.status.durable));
                now
            }
        };
        let left = if st.status.last_error.is_some() {
            last_attempt.map_or(StdDuration::ZERO, |t| {
                RETRY_AFTER_FAILURE.saturating_sub(t.elapsed())
            })
        } else {
            // A change nobody waits for waits `min_interval` from when it was seen (and so
            // from the last save): a waiter's save covers it meanwhile, and the background
            // thread does not take the disk from waiters.
            min_interval.saturating_sub(seen.elapsed())
        };
        if !left.is_zero() && !stopping && st.wakers.is_empty() {
            let _ = shared.nudge.wait_timeout(st, left.min(STOP_CHECK));
            continue;
        }
        st.saving = true;
        drop(st);
        shared.lead();
        last_attempt = Some(StdInstant::now());
        behind_since = None;
        if stopping {
            let st = shared.lock();
            return match &st.status.last_error {
                None => Ok(()),
                Some(e) => Err(io::Error::new(e.kind, e.message.clone())),
            };
        }
    }
}
