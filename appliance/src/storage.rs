//! The appliance's data directory (`--data-dir`): the job table, kept durable by
//! `jobstate_std::persist` (every acknowledged change on disk before its answer leaves), the
//! configuration of backend sets, the UUID instance tag and the idempotency key secret
//! ([`crate::keys`]), so a restart keeps every job, every set, every UUID a client holds and
//! every idempotency key.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jobstate_std::http::JobUuids;
use jobstate_std::persist::{Durability, FileStore};
use jobstate_std::{Engine, EngineConfig};
use tracing::{info, warn};

use crate::keys::KeySecret;
use crate::model::{Config, Jobs};

/// What a data directory gives the appliance at start.
pub struct Opened {
    /// The engine, restored (and saved again at once) or new.
    pub engine: Engine<Jobs>,
    /// The group commit of the table.
    pub durability: Arc<Durability>,
    /// The UUID codec of this directory (the same across restarts).
    pub uuids: JobUuids,
    /// The idempotency key secret of this directory (the same across restarts).
    pub key_secret: KeySecret,
    /// The configuration kept from the last run.
    pub config: Config,
    /// Keeps the configuration on disk.
    pub config_file: Arc<ConfigFile>,
}

/// Open (or create) a data directory.
pub fn open(dir: &Path, engine_config: EngineConfig) -> io::Result<Opened> {
    fs::create_dir_all(dir)?;
    let store = FileStore::new(dir.join("jobs.bin"));
    let engine = match store
        .load::<Jobs>(engine_config)
        .map_err(io::Error::other)?
    {
        Some((engine, report)) => {
            info!(
                jobs = report.jobs,
                interrupted = report.interrupted,
                requeued = report.requeued,
                canceled = report.canceled,
                dir = %dir.display(),
                "job table restored"
            );
            engine
        }
        None => {
            let engine = Engine::try_new(engine_config)?;
            store.save(&engine)?;
            engine
        }
    };
    let durability = Arc::new(Durability::start(engine.clone(), store)?);
    let uuids = instance_tag(&dir.join("instance"))?;
    let key_secret = KeySecret::load_or_create(&dir.join("idempotency-secret"))?;
    let config_file = Arc::new(ConfigFile::new(dir.join("config.json")));
    let config = config_file.load()?;
    Ok(Opened {
        engine,
        durability,
        uuids,
        key_secret,
        config,
        config_file,
    })
}

/// The directory's UUID tag: read, or drawn once and kept.
fn instance_tag(path: &Path) -> io::Result<JobUuids> {
    match fs::read_to_string(path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16)
            .map(JobUuids::with_tag)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let uuids = JobUuids::random();
            write_atomically(path, format!("{:x}\n", uuids.tag()).as_bytes())?;
            Ok(uuids)
        }
        Err(e) => Err(e),
    }
}

/// The configuration file: JSON, replaced whole (temporary file, `fsync`, rename, directory
/// `fsync`) when the configuration changed.
pub struct ConfigFile {
    path: PathBuf,
    last: Mutex<Option<Config>>,
}

impl ConfigFile {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            last: Mutex::new(None),
        }
    }

    fn load(&self) -> io::Result<Config> {
        let config = match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(e),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.clone());
        Ok(config)
    }

    /// Keep `config` if it differs from what is on disk.
    pub fn save(&self, config: &Config) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref() == Some(config) {
            return;
        }
        match serde_json::to_vec(config)
            .map_err(io::Error::other)
            .and_then(|bytes| write_atomically(&self.path, &bytes))
        {
            Ok(()) => *last = Some(config.clone()),
            Err(e) => warn!(error = %e, path = %self.path.display(), "configuration not saved"),
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, bytes, false)
}

/// [`write_atomically`], the file readable and writable by its owner only (a secret).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, bytes, true)
}

fn write_with(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if private {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
