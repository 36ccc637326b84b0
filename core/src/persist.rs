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
//! slot generations; the tombstones; every job with its slot index and the epoch its id was
//! issued in; and the order of the runnable, running, retained and free lists (runnable order
//! is start order; retained order is eviction order; free order decides which slot the next job
//! takes). Every instant and duration is in **milliseconds**, so an image reads the same
//! whatever `embassy-time` tick rate the writer and the reader run at. The intrusive links,
//! dependency edges and unmet counts are **rebuilt** on decode, and everything is checked: a
//! truncated, corrupted or CRC-valid but inconsistent image is refused with a
//! [`DecodeError`]; decoding never panics, never loops, never yields a half-built table.
//! Decoding borrows texts from the image and never builds a table-sized temporary: the table
//! is filled where it lives (a `static`, a `Box`).
//!
//! The journal is not persisted: after a decode a journal reader gets
//! [`Compacted`](crate::Compacted) for any revision before the stored one ("re-list, then
//! resume"), and events from there on as usual.
//!
//! Two ways back, both in place:
//!
//! * [`JobTable::decode_in_place`] is lossless (same epoch, running jobs still running) — for
//!   tests and tools;
//! * [`JobTable::restore_in_place`] is what a program does after a restart: decode, advance the
//!   epoch, and apply the restart policy — queued jobs stay queued in their order; running and paused
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
//! let mut restored = Table::new(Config::DEFAULT);
//! let report = restored.restore_in_place(&page[..len], t(2)).unwrap();
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

use heapless::Vec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::id::JobId;
use crate::job::MAX_DEPENDENCIES;
use crate::record::{flag, Phase, Slot, Tomb};
use crate::table::{Core, Header, JobTable};
use crate::time::{self, Instant, Ms};

/// The first bytes of every image.
pub const MAGIC: [u8; 4] = *b"JOBS";
/// The image format this build writes and reads. An image of another version is refused with
/// [`DecodeError::UnsupportedVersion`]; a future format change migrates older versions
/// explicitly in [`JobTable::decode_in_place`]. Version 1 (tick-based times, 400-byte slots)
/// is refused: its tables predate the compact layout.
pub const FORMAT_VERSION: u8 = 2;
/// Bytes of the image header (magic, version, length, CRC).
pub const HEADER_LEN: usize = 13;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Why [`JobTable::encode`] failed. The buffer's contents are unspecified; the table is
/// unchanged.
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// capacity, more than [`MAX_DEPENDENCIES`](crate::MAX_DEPENDENCIES) dependencies, bytes
    /// after the end, ...).
    Malformed,
    /// The image uses more slots, dependency edges or tombstones than this table has (a
    /// capacity is smaller than when it was written).
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
#[non_exhaustive]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Inconsistency {
    /// An id from a later epoch than the table's.
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

/// What [`JobTable::restore_in_place`] did to the jobs that were running or paused.
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
    revision: u64,
    epoch: u32,
    now_ms: u64,
    retention_ms: u64,
    fresh: u16,
    tombstones: u16,
    jobs: u16,
    runnable: u16,
    active: u16,
    retained: u16,
    free: u16,
}

/// One tombstone in the image.
#[derive(Serialize, Deserialize)]
struct TombImage {
    id: JobId,
    ended_ms: u64,
    outcome: u8,
    succeeded: bool,
    code: i32,
}

/// One job in the image: its slot's observable fields, texts borrowed from the image.
#[derive(Serialize, Deserialize)]
struct JobImage<'a, S> {
    index: u16,
    epoch: u32,
    generation: u32,
    spec: S,
    description: &'a str,
    message: &'a str,
    phase: u8,
    progress: u8,
    flags: u8,
    outcome: u8,
    cause: u8,
    code_or_lease: u32,
    run_timeout_ms: u32,
    created_ms: u64,
    modified_ms: u64,
    started_ms: Option<u64>,
    expiry_ms: Option<u64>,
    revision: u64,
    state_revision: u64,
    depends_on: Vec<JobId, MAX_DEPENDENCIES>,
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
const META: usize = U64 + U32 + U64 + U64 + 7 * U16;
const TOMBSTONE: usize = ID + U64 + 1 + 1 + U32;
/// A job without its spec, texts and dependencies.
const JOB_FIXED: usize = U16 + U32 + U32 + 5 + U32 + U32 + U64 + U64 + OPT_U64 + OPT_U64 + U64 + U64;

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

fn take<'a, V: Deserialize<'a>>(rest: &mut &'a [u8]) -> Result<V, DecodeError> {
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

/// The table instant an image was taken at ([`JobTable::now`] when it was encoded, to the
/// millisecond), read after checking the header and CRC. Lets a program compute the `now` to
/// restore at, for example the stored instant plus the time it was down.
pub fn image_now(bytes: &[u8]) -> Result<Instant, DecodeError> {
    let mut body = verify_image(bytes)?;
    let meta: Meta = take(&mut body)?;
    Ok(time::instant_of_ms(meta.now_ms))
}

/// The slot indices of a list from `head`, in order (bounded by the slot count).
fn walk(slots: &[Slot], head: u16) -> impl Iterator<Item = u16> + '_ {
    let mut l = head;
    core::iter::from_fn(move || {
        let i = l.checked_sub(1)?;
        l = slots.get(usize::from(i))?.next;
        Some(i)
    })
    .take(slots.len())
}

fn count(slots: &[Slot], head: u16) -> u16 {
    u16::try_from(walk(slots, head).count()).unwrap_or(u16::MAX)
}

fn opt(ms: Ms) -> Option<u64> {
    (!ms.is_none()).then(|| ms.ms())
}

impl<S, const N: usize, const T: usize, const J: usize, const L: usize, const E: usize, const K: usize>
    JobTable<S, N, T, J, L, E, K>
{
    /// The most bytes an image of this table type can take, when a job spec encodes to at most
    /// `spec_max` bytes with postcard. A `const fn`: size a flash page or a buffer with it at
    /// compile time. It is a worst case (every varint at its longest, every text full, every
    /// option set); real images are much smaller (see `docs/persistence.md`).
    pub const fn image_size_bound(spec_max: usize) -> usize {
        let text = varint_len(T).saturating_add(T);
        let deps = 1 + MAX_DEPENDENCIES * ID;
        let job = JOB_FIXED
            .saturating_add(spec_max)
            .saturating_add(text.saturating_mul(2))
            .saturating_add(deps);
        // Per slot: its generation, its job, one list entry.
        let per_slot = U32.saturating_add(job).saturating_add(U16);
        HEADER_LEN
            .saturating_add(META)
            .saturating_add(N.saturating_mul(per_slot))
            .saturating_add(K.saturating_mul(TOMBSTONE))
    }
}

impl<S: Serialize, const N: usize, const T: usize, const J: usize, const L: usize, const E: usize, const K: usize>
    JobTable<S, N, T, J, L, E, K>
{
    /// Write the table's image into `buf` and answer its length (R-PERSIST).
    /// [`JobTable::image_size_bound`] bytes are always enough.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let h = &self.head;
        let slots = &self.slots[..];
        let mut out = Out {
            buf,
            pos: HEADER_LEN,
        };
        let meta = Meta {
            revision: h.revision,
            epoch: h.epoch,
            now_ms: Instant::from_ticks(h.now).as_millis(),
            retention_ms: h.retention().as_millis(),
            fresh: h.fresh,
            tombstones: u16::try_from(self.tombs.len()).unwrap_or(u16::MAX),
            jobs: h.len,
            runnable: count(slots, h.runnable.head),
            active: count(slots, h.active.head),
            retained: count(slots, h.retained.head),
            free: count(slots, h.free),
        };
        out.put(&meta)?;
        for slot in slots.iter().take(usize::from(h.fresh)) {
            out.put(&slot.generation)?;
        }
        for t in self.tombs.iter() {
            out.put(&TombImage {
                id: t.id,
                ended_ms: t.ended.ms(),
                outcome: t.outcome,
                succeeded: t.succeeded,
                code: t.code,
            })?;
        }
        for job in self.iter() {
            let s = job.slot;
            let mut depends_on = Vec::new();
            for d in job.depends_on() {
                let _ = depends_on.push(d);
            }
            out.put(&JobImage {
                index: job.id.index(),
                epoch: job.id.epoch(),
                generation: s.generation,
                spec: job.spec,
                description: job.description,
                message: job.message,
                phase: s.phase as u8,
                progress: s.progress,
                flags: s.flags,
                outcome: s.outcome,
                cause: s.cause,
                code_or_lease: s.word,
                run_timeout_ms: s.run_timeout,
                created_ms: s.created.ms(),
                modified_ms: s.modified.ms(),
                started_ms: opt(s.started),
                expiry_ms: opt(s.expiry),
                revision: s.revision.ms(),
                state_revision: s.state_revision(),
                depends_on,
            })?;
        }
        for head in [h.runnable.head, h.active.head, h.retained.head, h.free] {
            for i in walk(slots, head) {
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

impl<S: DeserializeOwned, const N: usize, const T: usize, const J: usize, const L: usize, const E: usize, const K: usize>
    JobTable<S, N, T, J, L, E, K>
{
    /// Load an image exactly as it was written, in place: same epoch, same states (a running
    /// job is still running). The journal starts empty and compacted at the stored revision.
    /// For tools and tests; after a restart use [`JobTable::restore_in_place`]. On an error in
    /// the header or CRC nothing changes; on an error in the body the table is left empty,
    /// never half-loaded.
    pub fn decode_in_place(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let body = verify_image(bytes)?;
        let keep = self.head;
        let result = self.load_body(body);
        if result.is_err() {
            self.reset(Header {
                retention: keep.retention,
                ..Header::default()
            });
        }
        result
    }

    /// Load an image after a restart (R-PERSIST), in place — for a table in a `static` or a
    /// `Box`, with no table-sized temporary: decode, then advance the epoch and apply the
    /// restart policy (see the [module docs](crate::persist)) at `now`, through the table's own
    /// transitions, so dependents of interrupted jobs fail too and every change takes a new
    /// revision after the stored one. The table's previous contents are replaced; on an error
    /// the table is as [`JobTable::decode_in_place`] leaves it.
    ///
    /// `now` is on the restored table's timeline: the table's clock never goes back, so an
    /// earlier `now` counts as the stored [`JobTable::now`]. A firmware whose clock restarts at
    /// zero keeps passing instants offset by the restored `now()`.
    pub fn restore_in_place(
        &mut self,
        bytes: &[u8],
        now: Instant,
    ) -> Result<Restored, DecodeError> {
        self.decode_in_place(bytes)?;
        let Some(epoch) = self.head.epoch.checked_add(1) else {
            let keep = self.head.retention;
            self.reset(Header {
                retention: keep,
                ..Header::default()
            });
            return Err(DecodeError::EpochExhausted);
        };
        self.head.epoch = epoch;
        for slot in self.slots.iter_mut() {
            if slot.phase.is_live() || slot.phase.is_terminal() {
                slot.epoch_lag = slot.epoch_lag.saturating_add(1);
            }
        }
        Ok(self.core().apply_restart_policy(now))
    }

    /// Empty, in place (no table-sized temporary), with this header.
    fn reset(&mut self, head: Header) {
        self.head = head;
        for slot in self.slots.iter_mut() {
            *slot = Slot::EMPTY;
        }
        self.specs.clear();
        for l in self.lens.iter_mut() {
            *l = [0; 2];
        }
        for e in self.edges.iter_mut() {
            *e = crate::record::Edge::EMPTY;
        }
        self.tombs.clear();
        self.events.clear();
    }

    /// Fill this table from a checked body. On error the table is in an unspecified (but
    /// memory-safe) state: callers reset it.
    fn load_body(&mut self, body: &[u8]) -> Result<(), DecodeError> {
        let mut rest = body;
        let meta: Meta = take(&mut rest)?;
        let fresh = usize::from(meta.fresh);
        if fresh > N {
            return Err(DecodeError::CapacityTooSmall { needed: fresh });
        }
        if usize::from(meta.tombstones) > K {
            return Err(DecodeError::CapacityTooSmall {
                needed: usize::from(meta.tombstones),
            });
        }
        if meta.jobs > meta.fresh
            || [meta.runnable, meta.active, meta.retained, meta.free]
                .iter()
                .any(|c| *c > meta.fresh)
            || meta.revision > crate::Revision::MAX.get()
        {
            return Err(bad(Inconsistency::Count));
        }
        let retention = Instant::try_from_millis(meta.retention_ms)
            .map(|_| crate::Duration::from_millis(meta.retention_ms).as_ticks())
            .ok_or(DecodeError::Malformed)?;
        self.reset(Header {
            revision: meta.revision,
            dropped: meta.revision,
            now: time::instant_of_ms(meta.now_ms).as_ticks(),
            retention: Header::of(crate::Config {
                retention: crate::Duration::from_ticks(retention),
            })
            .retention,
            epoch: meta.epoch,
            fresh: meta.fresh,
            ..Header::default()
        });
        for slot in self.slots.iter_mut().take(fresh) {
            slot.generation = take(&mut rest)?;
            if slot.generation == u32::MAX {
                // Retired unless a job turns up in it below.
                slot.phase = Phase::Retired;
            }
        }
        for _ in 0..meta.tombstones {
            let t: TombImage = take(&mut rest)?;
            if t.id.epoch() > meta.epoch {
                return Err(bad(Inconsistency::Epoch));
            }
            let _ = self.tombs.push_back(Tomb {
                id: t.id,
                ended: Ms::from_ms(t.ended_ms),
                outcome: t.outcome,
                succeeded: t.succeeded,
                code: t.code,
            });
        }
        let mut core = self.core();
        for _ in 0..meta.jobs {
            let job: JobImage<'_, S> = take(&mut rest)?;
            core.place(job)?;
        }
        core.link_all()?;
        for (list, n) in [
            (Listed::Runnable, meta.runnable),
            (Listed::Active, meta.active),
            (Listed::Retained, meta.retained),
            (Listed::Free, meta.free),
        ] {
            for _ in 0..n {
                let i: u16 = take(&mut rest)?;
                core.relist(list, i)?;
            }
        }
        if !rest.is_empty() {
            return Err(DecodeError::Malformed);
        }
        core.check_lists()?;
        core.h.retired = u16::try_from(
            core.slots
                .iter()
                .filter(|s| s.phase == Phase::Retired)
                .count(),
        )
        .unwrap_or(u16::MAX);
        Ok(())
    }
}

/// The lists an image names, in order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listed {
    Runnable,
    Active,
    Retained,
    Free,
}

/// A temporary mark while decoding: the slot was named on a list.
const LISTED: u8 = 1 << 7;

impl<S> Core<'_, S> {
    /// Put a decoded job into its slot, checking it on its own.
    fn place(&mut self, job: JobImage<'_, S>) -> Result<(), DecodeError> {
        let i = job.index;
        let epoch = self.h.epoch;
        if usize::from(i) >= usize::from(self.h.fresh) {
            return Err(bad(Inconsistency::SlotIndex));
        }
        if job.epoch > epoch {
            return Err(bad(Inconsistency::Epoch));
        }
        if job.revision > self.h.revision || job.state_revision > job.revision {
            return Err(bad(Inconsistency::Revision));
        }
        let phase = match job.phase {
            1 => Phase::Queued,
            2 => Phase::Running,
            3 => Phase::Paused,
            4 => Phase::Succeeded,
            5 => Phase::Failed,
            _ => return Err(bad(Inconsistency::JobState)),
        };
        let requests = flag::PAUSE_REQUESTED | flag::CANCEL_REQUESTED;
        let active = matches!(phase, Phase::Running | Phase::Paused);
        let consistent = job.progress <= 100
            && job.flags & !(flag::PAUSABLE | flag::CANCELABLE | flag::RESTARTABLE | requests | flag::RUNNABLE) == 0
            && (job.flags & flag::PAUSE_REQUESTED == 0 || phase == Phase::Running)
            && (job.flags & flag::CANCEL_REQUESTED == 0 || active)
            && (job.flags & flag::RUNNABLE == 0 || phase == Phase::Queued)
            && (job.started_ms.is_some() || !active)
            && (job.expiry_ms.is_none() || active)
            && job.description.len() <= self.t
            && job.message.len() <= self.t
            && job.modified_ms >= job.created_ms
            && job.depends_on.iter().enumerate().all(|(k, d)| {
                let itself = d.index() == i && d.generation() == job.generation;
                let twice = job.depends_on.iter().take(k).any(|e| e == d);
                !(itself || twice)
            })
            && usize::from(job.cause) <= job.depends_on.len();
        if !consistent {
            return Err(bad(Inconsistency::JobState));
        }
        if job.depends_on.len() > self.edges_free() {
            return Err(DecodeError::CapacityTooSmall {
                needed: self.edges.len().saturating_add(job.depends_on.len()),
            });
        }
        let slot = self.slot(i).ok_or(bad(Inconsistency::SlotIndex))?;
        if slot.phase.is_live() || slot.phase.is_terminal() {
            return Err(bad(Inconsistency::DuplicateSlot));
        }
        if job.generation == 0 || job.generation != slot.generation {
            return Err(bad(Inconsistency::Generation));
        }
        let pos = self.specs.len();
        if self.specs.push((i, job.spec)).is_err() {
            return Err(bad(Inconsistency::Count));
        }
        let revision = Ms::from_ms(job.revision);
        let Some(s) = self.slot_mut(i) else {
            return Err(bad(Inconsistency::SlotIndex));
        };
        *s = Slot {
            generation: job.generation,
            state_lag: u32::try_from(job.revision.saturating_sub(job.state_revision))
                .unwrap_or(u32::MAX),
            run_timeout: job.run_timeout_ms,
            word: job.code_or_lease,
            revision,
            created: Ms::from_ms(job.created_ms),
            modified: Ms::from_ms(job.modified_ms),
            started: job.started_ms.map_or(Ms::NONE, Ms::from_ms),
            expiry: job.expiry_ms.map_or(Ms::NONE, Ms::from_ms),
            spec: u16::try_from(pos.saturating_add(1)).unwrap_or(0),
            epoch_lag: u16::try_from(epoch.saturating_sub(job.epoch)).unwrap_or(u16::MAX),
            phase,
            flags: job.flags,
            progress: job.progress,
            outcome: job.outcome,
            cause: job.cause,
            ..Slot::EMPTY
        };
        self.write_text(i, crate::table::Text::Description, job.description);
        self.write_text(i, crate::table::Text::Message, job.message);
        self.h.len = self.h.len.saturating_add(1);
        // Edges now (owned, not yet linked to targets): `link_all` links them.
        self.store_edges(i, &job.depends_on);
        Ok(())
    }

    /// Check every dependency against the rules, link queued jobs' edges on live targets,
    /// count unmet ones, and refuse cycles.
    fn link_all(&mut self) -> Result<(), DecodeError> {
        for i in 0..self.h.fresh {
            let Some(slot) = self.slot(i).copied() else {
                continue;
            };
            if !(slot.phase.is_live() || slot.phase.is_terminal()) {
                continue;
            }
            let mut unmet: u8 = 0;
            let mut e = slot.deps;
            while let Some(edge) = self.edge(e).copied() {
                let target = self.ro().locate(edge.target).ok();
                let target_phase = target.and_then(|t| self.slot(t)).map(|s| s.phase);
                match (slot.phase, target_phase) {
                    (Phase::Queued, Some(p)) if p.is_live() => {
                        self.link_edge(e, target.unwrap_or(0));
                        unmet = unmet.saturating_add(1);
                    }
                    // A live job never waits on a failed one; a started one on a live one.
                    (Phase::Queued | Phase::Running | Phase::Paused, Some(Phase::Failed)) => {
                        return Err(bad(Inconsistency::Dependency))
                    }
                    (Phase::Running | Phase::Paused, Some(p)) if p.is_live() => {
                        return Err(bad(Inconsistency::Dependency))
                    }
                    _ => {}
                }
                e = edge.next_own;
            }
            let runnable = slot.has(flag::RUNNABLE);
            if slot.phase == Phase::Queued && runnable != (unmet == 0) {
                return Err(bad(Inconsistency::List));
            }
            if let Some(s) = self.slot_mut(i) {
                s.unmet = unmet;
            }
        }
        self.refuse_cycles()
    }

    /// Kahn's walk over the live jobs: starting from those waiting on nothing, release
    /// dependents; any live job never released sits on a cycle. The work list is threaded
    /// through `next` and the counters through `cause`, both unused until the lists are built.
    fn refuse_cycles(&mut self) -> Result<(), DecodeError> {
        let mut stack: u16 = 0;
        let mut live: usize = 0;
        for i in 0..self.h.fresh {
            let Some(s) = self.slot_mut(i) else { continue };
            if !s.phase.is_live() {
                continue;
            }
            live = live.saturating_add(1);
            s.cause = s.unmet;
            if s.unmet == 0 {
                s.next = stack;
                stack = i.saturating_add(1);
            }
        }
        let mut released: usize = 0;
        while let Some(x) = stack.checked_sub(1) {
            released = released.saturating_add(1);
            stack = self.slot(x).map_or(0, |s| s.next);
            let mut e = self.slot(x).map_or(0, |s| s.dependents);
            while let Some(edge) = self.edge(e).copied() {
                if let Some(d) = edge.owner.checked_sub(1) {
                    if let Some(s) = self.slot_mut(d) {
                        s.cause = s.cause.saturating_sub(1);
                        if s.cause == 0 {
                            s.next = stack;
                            stack = d.saturating_add(1);
                        }
                    }
                }
                e = edge.next_dep;
            }
        }
        for s in self.slots.iter_mut() {
            if s.phase.is_live() {
                s.cause = 0;
                s.next = 0;
            }
        }
        if released == live {
            Ok(())
        } else {
            Err(bad(Inconsistency::Dependency))
        }
    }

    /// Append slot `i` to a list named by the image, checking it belongs there.
    fn relist(&mut self, list: Listed, i: u16) -> Result<(), DecodeError> {
        if usize::from(i) >= usize::from(self.h.fresh) {
            return Err(bad(Inconsistency::SlotIndex));
        }
        let slot = self.slot(i).ok_or(bad(Inconsistency::SlotIndex))?;
        if slot.flags & LISTED != 0 {
            return Err(bad(Inconsistency::DuplicateSlot));
        }
        let fits = match list {
            Listed::Runnable => slot.phase == Phase::Queued && slot.has(flag::RUNNABLE),
            Listed::Active => matches!(slot.phase, Phase::Running | Phase::Paused),
            Listed::Retained => slot.phase.is_terminal(),
            Listed::Free => slot.phase == Phase::Empty,
        };
        if !fits {
            return Err(bad(Inconsistency::List));
        }
        if let Some(s) = self.slot_mut(i) {
            s.flags |= LISTED;
        }
        match list {
            Listed::Runnable => self.push_back(crate::table::List::Runnable, i),
            Listed::Active => self.push_back(crate::table::List::Active, i),
            Listed::Retained => self.push_back(crate::table::List::Retained, i),
            Listed::Free => self.push_free(i),
        }
        Ok(())
    }

    /// Every job and free slot is on exactly one list; clear the marks, and put the free list
    /// back in stored order.
    fn check_lists(&mut self) -> Result<(), DecodeError> {
        self.reverse_free();
        let fresh = usize::from(self.h.fresh);
        let mut ok = true;
        for s in self.slots.iter_mut().take(fresh) {
            let listed = s.flags & LISTED != 0;
            s.flags &= !LISTED;
            let must = match s.phase {
                Phase::Queued => s.has(flag::RUNNABLE),
                Phase::Retired => false,
                _ => true,
            };
            ok &= listed == must;
        }
        if ok {
            Ok(())
        } else {
            Err(bad(Inconsistency::List))
        }
    }

    /// The restart policy: running and paused jobs end (or go back to the queue).
    fn apply_restart_policy(&mut self, now: Instant) -> Restored {
        self.clock(now);
        let mut report = Restored {
            jobs: usize::from(self.h.len),
            ..Restored::default()
        };
        let mut i = self.h.active.head.checked_sub(1);
        while let Some(x) = i {
            let Some(slot) = self.slot(x).copied() else {
                break;
            };
            i = slot.next.checked_sub(1);
            if slot.has(flag::CANCEL_REQUESTED) {
                self.finish(
                    x,
                    Self::failure(crate::FailReason::Canceled),
                    Some(crate::Detail::Canceled),
                    None,
                );
                report.canceled = report.canceled.saturating_add(1);
            } else if slot.has(flag::RESTARTABLE) {
                self.requeue(x);
                report.requeued = report.requeued.saturating_add(1);
            } else {
                self.finish(
                    x,
                    Self::failure(crate::FailReason::Interrupted),
                    Some(crate::Detail::Interrupted),
                    None,
                );
                report.interrupted = report.interrupted.saturating_add(1);
            }
        }
        report
    }
}

