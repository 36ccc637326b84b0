//! Persisted images of a table (R-PERSIST): encode into a caller's buffer, decode, restore.
//!
//! An **image** is a 13-byte header followed by a [postcard] body:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `JOBS` |
//! | 4 | format version ([`FORMAT_VERSION`]) |
//! | 5..9 | body length, `u32` little-endian |
//! | 9..13 | CRC-32 (ISO-HDLC) of bytes 0..9 and the body, `u32` little-endian |
//!
//! The body holds only what a caller can observe: the revision, epoch, clock and config; the
//! slot generations; the tombstones; every job with its slot index; and the order of the
//! runnable, running, retained and free lists (runnable order is start order; retained order
//! is eviction order; free order decides which slot the next job takes). The intrusive links,
//! dependency edges and unmet counts are **rebuilt** on decode, and everything is checked: a
//! truncated, corrupted or CRC-valid but inconsistent image is refused with a
//! [`DecodeError`]; decoding never panics, never loops, never yields a half-built table.
//!
//! The journal is not persisted: after a decode a journal reader gets
//! [`Compacted`](crate::Compacted) for any revision before the stored one ("re-list, then
//! resume"), and events from there on as usual.
//!
//! Two ways back:
//!
//! * [`JobTable::decode`] is lossless (same epoch, running jobs still running) — for tests and
//!   tools;
//! * [`JobTable::restore`] is what a program does after a restart: decode, advance the epoch,
//!   and apply the restart policy — queued jobs stay queued in their order; running and paused
//!   jobs fail with [`FailReason::Interrupted`] (their dependents with `DependencyFailed`, by
//!   the table's own cascade), or go back to the queue when [`JobOptions::restartable`]
//!   (a pending cancel request is honoured instead: `Failed(Canceled)`). Restored jobs keep their
//!   ids; other ids of the earlier epoch answer [`LookupError::Stale`](crate::LookupError).
//!   The revision continues from the stored one.
//!
//! ```
//! use jobstate::{Config, Instant, JobTable, NewJob, State, FailReason, Outcome};
//!
//! type Table = JobTable<u8, 4>;
//! // A flash page for this table, worst case, with a spec of at most 1 byte encoded:
//! const PAGE: usize = Table::image_size_bound(1);
//!
//! let mut table = Table::new(Config::DEFAULT);
//! let t = Instant::from_secs;
//! let a = table.submit(NewJob::new(1), t(0)).unwrap();
//! let b = table.submit(NewJob::new(2), t(0)).unwrap();
//! table.start(a, t(1)).unwrap();
//!
//! let mut page = [0u8; PAGE];
//! let len = table.encode(&mut page).unwrap();
//!
//! let (restored, report) = Table::restore(&page[..len], t(2)).unwrap();
//! assert_eq!(report.interrupted, 1);
//! assert!(matches!(
//!     restored.get(a).unwrap().outcome(),
//!     Some(Outcome::Failed { reason: FailReason::Interrupted, .. })
//! ));
//! assert_eq!(restored.get(b).unwrap().state(), State::Queued);
//! assert_eq!(restored.epoch(), table.epoch() + 1);
//! assert!(restored.revision() > table.revision());
//! ```
//!
//! [`JobOptions::restartable`]: crate::JobOptions::restartable

use core::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::id::Revision;
use crate::job::{Job, Text};
use crate::journal::{EventKind, Journal};
use crate::links::{Ends, Links, List, NIL};
use crate::retain::Tombstones;
use crate::state::{FailReason, Outcome, State};
use crate::table::{Config, JobTable};
use crate::time::{Instant, Stamp};
use crate::LookupError;

/// The first bytes of every image.
pub const MAGIC: [u8; 4] = *b"JOBS";
/// The image format this build writes and reads. An image of another version is refused with
/// [`DecodeError::UnsupportedVersion`]; a future format change migrates older versions
/// explicitly in [`JobTable::decode`].
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of the image header (magic, version, length, CRC).
pub const HEADER_LEN: usize = 13;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Why [`JobTable::encode`] failed. The buffer's contents are unspecified; the table is
/// unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EncodeError {
    /// The buffer is smaller than the image. [`JobTable::image_size_bound`] is always enough.
    BufferTooSmall,
    /// The spec type's `Serialize` failed.
    Spec,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall => f.write_str("buffer too small for the table image"),
            EncodeError::Spec => f.write_str("a job spec could not be serialized"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why an image was refused. Nothing was loaded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// Fewer bytes than the header announces (a cut-off write or read).
    Truncated,
    /// The bytes do not start with [`MAGIC`]: not an image (blank flash, another file).
    BadMagic,
    /// An image format this build does not read.
    UnsupportedVersion(u8),
    /// The CRC does not match: the image was corrupted.
    Checksum,
    /// The body is not a valid encoding of the table's types (a text longer than the table's
    /// capacity, more dependencies than `D`, bytes after the end, ...).
    Malformed,
    /// The image uses more slots than this table has (`N` is smaller than when it was written).
    CapacityTooSmall {
        /// Slots the image needs.
        needed: usize,
    },
    /// The body decodes but breaks a rule of the table.
    Inconsistent(Inconsistency),
    /// The epoch cannot advance any more (`u32::MAX` restores).
    EpochExhausted,
}

/// Which rule of the table a decoded image breaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Inconsistency {
    /// Epoch 0, or an id from a later epoch than the table's.
    Epoch,
    /// A job or list entry names a slot outside the used range.
    SlotIndex,
    /// Two jobs in one slot, or a slot on two lists.
    DuplicateSlot,
    /// A job's id does not carry its slot's generation.
    Generation,
    /// State, outcome, timestamps, flags or progress do not agree.
    JobState,
    /// A revision later than the table's.
    Revision,
    /// A dependency that cannot be: on itself, on a failed job while queued, on a live job
    /// while running, or a dependency cycle.
    Dependency,
    /// A job missing from its list, or on the wrong one (runnable order, running, retained,
    /// free slots).
    List,
    /// More entries than the table holds.
    Count,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("image truncated"),
            DecodeError::BadMagic => f.write_str("not a table image"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported image version {v}"),
            DecodeError::Checksum => f.write_str("image checksum mismatch"),
            DecodeError::Malformed => f.write_str("image body malformed"),
            DecodeError::CapacityTooSmall { needed } => {
                write!(f, "image needs {needed} slots, table has fewer")
            }
            DecodeError::Inconsistent(what) => write!(f, "inconsistent image: {what:?}"),
            DecodeError::EpochExhausted => f.write_str("table epoch exhausted"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// What [`JobTable::restore`] did to the jobs that were running or paused.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Restored {
    /// Jobs restored in total.
    pub jobs: usize,
    /// Running or paused jobs failed with `Interrupted` (not counting dependents).
    pub interrupted: usize,
    /// Restartable running or paused jobs put back in the queue.
    pub requeued: usize,
    /// Running or paused jobs with a pending cancel request, failed with `Canceled`.
    pub canceled: usize,
}

/// The fixed part of the body.
#[derive(Serialize, Deserialize)]
struct Meta {
    revision: Revision,
    epoch: u32,
    now: u64,
    config: Config,
    fresh: u16,
    tombstones: u16,
    jobs: u16,
    runnable: u16,
    active: u16,
    retained: u16,
    free: u16,
}

/// Longest postcard varint of a value up to `max`.
const fn varint_len(max: usize) -> usize {
    let mut n: usize = 1;
    let mut v = max >> 7;
    while v > 0 {
        n = n.saturating_add(1);
        v >>= 7;
    }
    n
}

/// Postcard worst cases of the fixed-size parts.
const U16: usize = 3;
const U32: usize = 5;
const U64: usize = 10;
const OPT_U64: usize = 1 + U64;
const ID: usize = U32 + U32 + U16;
const OUTCOME: usize = 1 + 1 + U32;
const META: usize = U64 + U32 + U64 + U64 + 7 * U16;
const TOMBSTONE: usize = ID + OUTCOME + U64;
/// A job without its spec and texts: id, state, progress, 4 times, 2 revisions, version,
/// optional outcome, options (3 flags, 2 optional durations), 2 flags, deadline, lease.
const JOB_FIXED: usize = ID
    + 1
    + 1
    + U64
    + OPT_U64
    + OPT_U64
    + U64
    + U64
    + U64
    + U32
    + (1 + OUTCOME)
    + (3 + OPT_U64 + OPT_U64)
    + 2
    + OPT_U64
    + OPT_U64;

struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Out<'_> {
    fn put<V: Serialize + ?Sized>(&mut self, v: &V) -> Result<(), EncodeError> {
        let rest = self
            .buf
            .get_mut(self.pos..)
            .ok_or(EncodeError::BufferTooSmall)?;
        let used = postcard::to_slice(v, rest)
            .map_err(|e| match e {
                postcard::Error::SerializeBufferFull => EncodeError::BufferTooSmall,
                _ => EncodeError::Spec,
            })?
            .len();
        self.pos = self.pos.saturating_add(used);
        Ok(())
    }
}

fn take<V: DeserializeOwned>(rest: &mut &[u8]) -> Result<V, DecodeError> {
    let (v, r) = postcard::take_from_bytes::<V>(rest).map_err(|_| DecodeError::Malformed)?;
    *rest = r;
    Ok(v)
}

fn bad(what: Inconsistency) -> DecodeError {
    DecodeError::Inconsistent(what)
}

fn crc_of(head: &[u8], body: &[u8]) -> u32 {
    let mut digest = CRC.digest();
    digest.update(head);
    digest.update(body);
    digest.finalize()
}

/// Checks the header and CRC and answers the body. Does not look into the body.
pub fn verify_image(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let (head, rest) = bytes.split_at_checked(HEADER_LEN).ok_or_else(|| {
        if bytes.len() >= 4 && bytes.get(..4) != Some(&MAGIC[..]) {
            DecodeError::BadMagic
        } else {
            DecodeError::Truncated
        }
    })?;
    let [m0, m1, m2, m3, version, l0, l1, l2, l3, c0, c1, c2, c3] =
        <[u8; HEADER_LEN]>::try_from(head).map_err(|_| DecodeError::Truncated)?;
    if [m0, m1, m2, m3] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let len = usize::try_from(u32::from_le_bytes([l0, l1, l2, l3]))
        .map_err(|_| DecodeError::Truncated)?;
    let body = rest.get(..len).ok_or(DecodeError::Truncated)?;
    let signed = head.get(..9).ok_or(DecodeError::Truncated)?;
    if crc_of(signed, body) != u32::from_le_bytes([c0, c1, c2, c3]) {
        return Err(DecodeError::Checksum);
    }
    Ok(body)
}

/// The length of the image at the start of `bytes` (header and body), read from its header;
/// `None` when the header is not one.
pub fn image_len(bytes: &[u8]) -> Option<usize> {
    match bytes.get(..HEADER_LEN)? {
        [m0, m1, m2, m3, FORMAT_VERSION, l0, l1, l2, l3, ..] if [*m0, *m1, *m2, *m3] == MAGIC => {
            usize::try_from(u32::from_le_bytes([*l0, *l1, *l2, *l3]))
                .ok()?
                .checked_add(HEADER_LEN)
        }
        _ => None,
    }
}

/// The table instant an image was taken at ([`JobTable::now`] when it was encoded), read
/// after checking the header and CRC. Lets a program compute the `now` to restore at, for
/// example the stored instant plus the time it was down.
pub fn image_now(bytes: &[u8]) -> Result<Instant, DecodeError> {
    let mut body = verify_image(bytes)?;
    let meta: Meta = take(&mut body)?;
    Ok(Instant::from_ticks(meta.now))
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> JobTable<S, N, T, D, J> {
    /// The most bytes an image of this table type can take, when a job spec encodes to at most
    /// `spec_max` bytes with postcard. A `const fn`: size a flash page or a buffer with it at
    /// compile time. It is a worst case (every varint at its longest, every text full, every
    /// option set); real images are much smaller (see `docs/persistence.md`).
    pub const fn image_size_bound(spec_max: usize) -> usize {
        let text = varint_len(T).saturating_add(T);
        let deps = varint_len(D).saturating_add(D.saturating_mul(ID));
        let job = JOB_FIXED
            .saturating_add(spec_max)
            .saturating_add(text.saturating_mul(2))
            .saturating_add(deps);
        // Per slot: its generation, its job, one list entry, one tombstone.
        let per_slot = U32
            .saturating_add(job)
            .saturating_add(U16)
            .saturating_add(TOMBSTONE);
        HEADER_LEN
            .saturating_add(META)
            .saturating_add(N.saturating_mul(per_slot))
    }

    /// Slot indices of a list from `head`, in order (bounded by `N` steps).
    fn walk(&self, head: u16) -> impl Iterator<Item = u16> + '_ {
        let mut i = head;
        core::iter::from_fn(move || {
            let slot = self.slot(i)?;
            let here = i;
            i = slot.links.next;
            Some(here)
        })
        .take(N)
    }

    fn count(&self, head: u16) -> u16 {
        u16::try_from(self.walk(head).count()).unwrap_or(u16::MAX)
    }
}

impl<S: Serialize, const N: usize, const T: usize, const D: usize, const J: usize>
    JobTable<S, N, T, D, J>
{
    /// Write the table's image into `buf` and answer its length (R-PERSIST).
    /// [`JobTable::image_size_bound`] bytes are always enough.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut out = Out {
            buf,
            pos: HEADER_LEN,
        };
        let meta = Meta {
            revision: self.revision,
            epoch: self.epoch,
            now: self.now.as_ticks(),
            config: self.config,
            fresh: self.fresh,
            tombstones: u16::try_from(self.tombstones.iter().count()).unwrap_or(u16::MAX),
            jobs: self.len,
            runnable: self.count(self.runnable.head),
            active: self.count(self.active.head),
            retained: self.count(self.retained.head),
            free: self.count(self.free),
        };
        out.put(&meta)?;
        for slot in self.slots.iter().take(usize::from(self.fresh)) {
            out.put(&slot.generation)?;
        }
        for t in self.tombstones.iter() {
            out.put(t)?;
        }
        for job in self.iter() {
            out.put(job)?;
        }
        for head in [
            self.runnable.head,
            self.active.head,
            self.retained.head,
            self.free,
        ] {
            for i in self.walk(head) {
                out.put(&i)?;
            }
        }
        let end = out.pos;
        let buf = out.buf;
        let len = u32::try_from(end.saturating_sub(HEADER_LEN))
            .map_err(|_| EncodeError::BufferTooSmall)?;
        let (head, rest) = buf
            .split_at_mut_checked(HEADER_LEN)
            .ok_or(EncodeError::BufferTooSmall)?;
        let body = rest
            .get(..end.saturating_sub(HEADER_LEN))
            .ok_or(EncodeError::BufferTooSmall)?;
        let mut fixed = [0u8; 9];
        for (dst, src) in fixed.iter_mut().zip(
            MAGIC
                .iter()
                .chain([FORMAT_VERSION].iter())
                .chain(len.to_le_bytes().iter()),
        ) {
            *dst = *src;
        }
        let crc = crc_of(&fixed, body);
        for (dst, src) in head
            .iter_mut()
            .zip(fixed.iter().chain(crc.to_le_bytes().iter()))
        {
            *dst = *src;
        }
        Ok(end)
    }
}

impl<S: DeserializeOwned, const N: usize, const T: usize, const D: usize, const J: usize>
    JobTable<S, N, T, D, J>
{
    /// Load an image exactly as it was written: same epoch, same states (a running job is
    /// still running). The journal starts empty and compacted at the stored revision. For tools
    /// and tests; after a restart use [`JobTable::restore`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let body = verify_image(bytes)?;
        Self::decode_body(body)
    }

    /// Load an image after a restart (R-PERSIST): [`JobTable::decode`], then advance the epoch
    /// and apply the restart policy (see the [module docs](crate::persist)) at `now`, through
    /// the table's own transitions, so dependents of interrupted jobs fail too and every change
    /// takes a new revision after the stored one.
    ///
    /// `now` is on the restored table's timeline: the table's clock never goes back, so an
    /// earlier `now` counts as the stored [`JobTable::now`]. A firmware whose clock restarts at
    /// zero keeps passing instants offset by the restored `now()`.
    pub fn restore(bytes: &[u8], now: Instant) -> Result<(Self, Restored), DecodeError> {
        let mut table = Self::decode(bytes)?;
        table.epoch = table
            .epoch
            .checked_add(1)
            .ok_or(DecodeError::EpochExhausted)?;
        let report = table.apply_restart_policy(now);
        Ok((table, report))
    }
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> JobTable<S, N, T, D, J> {
    fn apply_restart_policy(&mut self, now: Instant) -> Restored {
        self.clock(now);
        let mut report = Restored {
            jobs: self.len(),
            ..Restored::default()
        };
        let mut i = self.active.head;
        while let Some(slot) = self.slot(i) {
            let next = slot.links.next;
            if let Some(job) = &slot.job {
                let from = job.state;
                let cancel = job.cancel_requested;
                let restartable = job.options.restartable;
                let mut msg = Text::<T>::new();
                if cancel {
                    let _ = msg.push_str("canceled");
                    self.finish(i, Self::failure(FailReason::Canceled), msg);
                    report.canceled = report.canceled.saturating_add(1);
                } else if restartable {
                    self.unlink(i);
                    if let Some(job) = self.job_mut(i) {
                        job.state = State::Queued;
                        job.pause_requested = false;
                        job.deadline = Stamp::NEVER;
                        job.lease_until = Stamp::NEVER;
                        job.progress = 0;
                        job.message = Text::new();
                    }
                    self.push_back(List::Runnable, i);
                    self.change(
                        i,
                        EventKind::StateChanged {
                            from,
                            to: State::Queued,
                        },
                        true,
                    );
                    report.requeued = report.requeued.saturating_add(1);
                } else {
                    let _ = msg.push_str("interrupted by restart");
                    self.finish(i, Self::failure(FailReason::Interrupted), msg);
                    report.interrupted = report.interrupted.saturating_add(1);
                }
            }
            i = next;
        }
        report
    }
}

impl<S: DeserializeOwned, const N: usize, const T: usize, const D: usize, const J: usize>
    JobTable<S, N, T, D, J>
{
    fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let mut table = Self::new(Config::DEFAULT);
        table.load_body(body)?;
        Ok(table)
    }

    /// [`JobTable::restore`] into this table, in place: for a table in a `static` or too big
    /// for the stack. The table's previous contents are replaced. On an error in the header or
    /// CRC nothing changes; on an error in the body the table is left empty (as
    /// [`JobTable::new`] with its config), never half-loaded.
    pub fn restore_in_place(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Restored, DecodeError> {
        let body = verify_image(bytes)?;
        let config = self.config;
        if let Err(e) = self.load_body(body) {
            self.reset(config);
            return Err(e);
        }
        match self.epoch.checked_add(1) {
            Some(epoch) => self.epoch = epoch,
            None => {
                self.reset(config);
                return Err(DecodeError::EpochExhausted);
            }
        }
        Ok(self.apply_restart_policy(now))
    }

    /// Fill this table from a checked body. On error the table is in an unspecified (but
    /// memory-safe) state: callers reset or drop it.
    fn load_body(&mut self, body: &[u8]) -> Result<(), DecodeError> {
        let mut rest = body;
        let meta: Meta = take(&mut rest)?;
        let fresh = usize::from(meta.fresh);
        if fresh > N {
            return Err(DecodeError::CapacityTooSmall { needed: fresh });
        }
        if usize::from(meta.tombstones) > N
            || meta.jobs > meta.fresh
            || [meta.runnable, meta.active, meta.retained, meta.free]
                .iter()
                .any(|c| *c > meta.fresh)
        {
            return Err(bad(Inconsistency::Count));
        }
        if meta.epoch == 0 {
            return Err(bad(Inconsistency::Epoch));
        }
        let table = self;
        table.reset(meta.config);
        table.revision = meta.revision;
        table.epoch = meta.epoch;
        table.now = Instant::from_ticks(meta.now);
        table.fresh = meta.fresh;
        table.journal.dropped = meta.revision;

        for slot in table.slots.iter_mut().take(fresh) {
            slot.generation = take(&mut rest)?;
        }
        for _ in 0..meta.tombstones {
            let t: crate::Tombstone = take(&mut rest)?;
            if t.id.epoch() > meta.epoch || t.id.epoch() == 0 {
                return Err(bad(Inconsistency::Epoch));
            }
            table.tombstones.push(t);
        }

        for _ in 0..meta.jobs {
            let job: Job<S, T, D> = take(&mut rest)?;
            table.place(job)?;
        }
        table.link_all()?;

        // Lists, in stored order.
        let mut free_tail = NIL;
        for (list, count) in [
            (List::Runnable, meta.runnable),
            (List::Active, meta.active),
            (List::Retained, meta.retained),
            (List::Free, meta.free),
        ] {
            for _ in 0..count {
                let i: u16 = take(&mut rest)?;
                table.relist(list, i, &mut free_tail)?;
            }
        }
        if !rest.is_empty() {
            return Err(DecodeError::Malformed);
        }
        table.check_lists()
    }
}

impl<S, const N: usize, const T: usize, const D: usize, const J: usize> JobTable<S, N, T, D, J> {
    /// Empty, in place (no table-sized temporary): as [`JobTable::new`] with `config`.
    fn reset(&mut self, config: Config) {
        for slot in self.slots.iter_mut() {
            slot.generation = 0;
            slot.job = None;
            slot.links = Links::EMPTY;
        }
        self.fresh = 0;
        self.free = NIL;
        self.runnable = Ends::EMPTY;
        self.active = Ends::EMPTY;
        self.retained = Ends::EMPTY;
        self.len = 0;
        self.revision = Revision::ZERO;
        self.epoch = 1;
        self.now = Instant::from_ticks(0);
        self.config = config;
        self.journal = Journal::new();
        self.tombstones = Tombstones::new();
    }

    /// Put a decoded job into its slot, checking it on its own.
    fn place(&mut self, job: Job<S, T, D>) -> Result<(), DecodeError> {
        let id = job.id;
        if usize::from(id.index()) >= usize::from(self.fresh) {
            return Err(bad(Inconsistency::SlotIndex));
        }
        if id.epoch() == 0 || id.epoch() > self.epoch {
            return Err(bad(Inconsistency::Epoch));
        }
        if job.revision > self.revision || job.state_revision > job.revision {
            return Err(bad(Inconsistency::Revision));
        }
        let terminal = job.state.is_terminal();
        let consistent = job.outcome.map(Outcome::state) == terminal.then_some(job.state)
            && job.ended.get().is_some() == terminal
            && job.progress <= 100
            && (!job.pause_requested || job.state == State::Running)
            && (!job.cancel_requested || matches!(job.state, State::Running | State::Paused))
            && (job.lease_until.get().is_none()
                || matches!(job.state, State::Running | State::Paused))
            && (job.started.get().is_some()
                || !matches!(job.state, State::Running | State::Paused))
            && job
                .depends_on
                .iter()
                .enumerate()
                .all(|(k, d)| *d != id && !job.depends_on.iter().take(k).any(|e| e == d));
        if !consistent {
            return Err(bad(Inconsistency::JobState));
        }
        let slot = self
            .slot_mut(id.index())
            .ok_or(bad(Inconsistency::SlotIndex))?;
        if slot.job.is_some() {
            return Err(bad(Inconsistency::DuplicateSlot));
        }
        if id.generation() == 0 || id.generation() != slot.generation {
            return Err(bad(Inconsistency::Generation));
        }
        slot.job = Some(job);
        self.len = self.len.saturating_add(1);
        Ok(())
    }

    /// Check every dependency against the rules, link the edges of queued jobs on live
    /// dependencies, count unmet ones, and refuse cycles.
    fn link_all(&mut self) -> Result<(), DecodeError> {
        for i in 0..self.fresh {
            let Some(job) = self.job(i) else { continue };
            let state = job.state;
            if state.is_terminal() {
                continue;
            }
            for dep in job.depends_on.iter() {
                let dep_state = match self.locate(*dep) {
                    Ok(d) => self.job(d).map(|j| j.state),
                    Err(LookupError::Expired(Some(t))) => Some(t.state()),
                    // Removed with no tombstone kept: it ended long enough ago to be gone,
                    // and a queued job would have failed with it had it failed. Met.
                    Err(_) => None,
                };
                let ok = match (state, dep_state) {
                    (_, None | Some(State::Succeeded)) => true,
                    (_, Some(State::Failed)) => false,
                    (State::Queued, Some(_)) => true,
                    (_, Some(_)) => false,
                };
                if !ok {
                    return Err(bad(Inconsistency::Dependency));
                }
            }
            if state == State::Queued {
                self.link_dependencies(i);
            }
        }
        self.refuse_cycles()
    }

    /// Kahn's algorithm over the queued jobs' live edges, with the counters and the work stack
    /// threaded through the slots' `cascade` and `next` fields (unused until the lists are
    /// built). O(jobs + edges).
    fn refuse_cycles(&mut self) -> Result<(), DecodeError> {
        let mut stack = NIL;
        let mut jobs = 0usize;
        for i in 0..self.fresh {
            let Some(slot) = self.slot_mut(i) else {
                continue;
            };
            if slot.job.is_none() {
                continue;
            }
            jobs = jobs.saturating_add(1);
            slot.links.cascade = u16::from(slot.links.unmet);
            if slot.links.unmet == 0 {
                slot.links.next = stack;
                stack = i;
            }
        }
        let mut seen = 0usize;
        while let Some(slot) = self.slot(stack) {
            let x = stack;
            stack = slot.links.next;
            seen = seen.saturating_add(1);
            if seen > jobs {
                return Err(bad(Inconsistency::Dependency));
            }
            let mut e = slot.links.dependents;
            let mut steps = 0usize;
            while let Some(d) = self.edge_owner_of(e) {
                steps = steps.saturating_add(1);
                if steps > N.saturating_mul(D) {
                    return Err(bad(Inconsistency::Dependency));
                }
                let next_edge = self.edge_next(e);
                if let Some(ds) = self.slot_mut(d) {
                    ds.links.cascade = ds.links.cascade.saturating_sub(1);
                    if ds.links.cascade == 0 {
                        ds.links.next = stack;
                        stack = d;
                    }
                }
                e = next_edge;
            }
            if let Some(s) = self.slot_mut(x) {
                s.links.next = NIL;
            }
        }
        for slot in self.slots.iter_mut() {
            slot.links.cascade = NIL;
            slot.links.next = NIL;
        }
        if seen == jobs {
            Ok(())
        } else {
            Err(bad(Inconsistency::Dependency))
        }
    }

    fn edge_owner_of(&self, e: u32) -> Option<u16> {
        let d = u32::try_from(D).ok()?;
        let i = u16::try_from(e.checked_div(d)?).ok()?;
        self.slot(i).map(|_| i)
    }

    fn edge_next(&self, e: u32) -> u32 {
        let Ok(d) = u32::try_from(D) else {
            return crate::links::NIL_EDGE;
        };
        let owner = e.checked_div(d).and_then(|i| u16::try_from(i).ok());
        let k = e.checked_rem(d).and_then(|k| usize::try_from(k).ok());
        match (owner.and_then(|i| self.slot(i)), k) {
            (Some(s), Some(k)) => s
                .links
                .edges
                .get(k)
                .map_or(crate::links::NIL_EDGE, |edge| edge.next),
            _ => crate::links::NIL_EDGE,
        }
    }

    /// Append slot `i` to `list`, checking it belongs there and is on no list yet.
    fn relist(&mut self, list: List, i: u16, free_tail: &mut u16) -> Result<(), DecodeError> {
        if usize::from(i) >= usize::from(self.fresh) {
            return Err(bad(Inconsistency::SlotIndex));
        }
        let slot = self.slot(i).ok_or(bad(Inconsistency::SlotIndex))?;
        if slot.links.list != List::None {
            return Err(bad(Inconsistency::DuplicateSlot));
        }
        let belongs = match (&slot.job, list) {
            (None, List::Free) => true,
            (Some(j), List::Runnable) => j.state == State::Queued && slot.links.unmet == 0,
            (Some(j), List::Active) => matches!(j.state, State::Running | State::Paused),
            (Some(j), List::Retained) => j.state.is_terminal(),
            _ => false,
        };
        if !belongs {
            return Err(bad(Inconsistency::List));
        }
        if list == List::Free {
            // Append at the tail of the free list (the table keeps no tail for it).
            let tail = *free_tail;
            match self.slot_mut(tail) {
                Some(t) => t.links.next = i,
                None => self.free = i,
            }
            if let Some(s) = self.slot_mut(i) {
                s.links.list = List::Free;
                s.links.prev = tail;
                s.links.next = NIL;
            }
            *free_tail = i;
        } else {
            self.push_back(list, i);
        }
        Ok(())
    }

    /// Every used slot is on the list its content calls for.
    fn check_lists(&self) -> Result<(), DecodeError> {
        for slot in self.slots.iter().take(usize::from(self.fresh)) {
            let want = match &slot.job {
                None => List::Free,
                Some(j) => match j.state {
                    State::Queued if slot.links.unmet == 0 => List::Runnable,
                    State::Queued => List::None,
                    State::Running | State::Paused => List::Active,
                    State::Succeeded | State::Failed => List::Retained,
                },
            };
            if slot.links.list != want {
                return Err(bad(Inconsistency::List));
            }
        }
        Ok(())
    }
}
