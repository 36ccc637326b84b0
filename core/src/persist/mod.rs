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
//!   jobs fail with [`FailReason::Interrupted`](crate::FailReason::Interrupted) (their dependents with `DependencyFailed`, by
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
use serde::{Deserialize, Serialize};

use crate::id::JobId;
use crate::job::MAX_DEPENDENCIES;
use crate::record::Slot;
use crate::table::JobTable;
use crate::time::{self, Instant, Ms};

mod decode;
mod record;

pub use record::JobRecord;

/// The first bytes of every image.
pub const MAGIC: [u8; 4] = *b"JOBS";
/// The image format this build writes and reads. An image of another version is refused with
/// [`DecodeError::UnsupportedVersion`]; a future format change migrates older versions
/// explicitly in [`JobTable::decode_in_place`]. Version 1 (tick-based times, 400-byte slots)
/// is refused: its tables predate the compact layout.
pub const FORMAT_VERSION: u8 = 2;
/// How far a restore moves the revision past the stored one: the most changes that may be
/// lost between two saves without a revision being issued twice (2^24, 16.7 million). A table
/// can be restored 2^24 times before its revisions run out.
pub const RESTORE_GAP: u64 = 1 << 24;
/// Bytes of the image header (magic, version, length, CRC).
pub const HEADER_LEN: usize = 13;

/// The CRC-32 table: one of 256 entries (1 KiB), or with the feature `fast-crc` sixteen of them
/// (16 KiB, several times faster over a large image). Both compute the same checksums.
#[cfg(not(feature = "fast-crc"))]
type CrcTable = crc::Table<1>;
#[cfg(feature = "fast-crc")]
type CrcTable = crc::Table<16>;

/// CRC-32 (ISO-HDLC, as zlib's) of images and of flash records.
pub(crate) const CRC: crc::Crc<u32, CrcTable> =
    crc::Crc::<u32, CrcTable>::new(&crc::CRC_32_ISO_HDLC);

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
    /// capacity, more than [`MAX_DEPENDENCIES`] dependencies, bytes
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
pub(super) struct Meta {
    pub(super) revision: u64,
    pub(super) epoch: u32,
    pub(super) now_ms: u64,
    pub(super) retention_ms: u64,
    pub(super) fresh: u16,
    pub(super) tombstones: u16,
    pub(super) jobs: u16,
    pub(super) runnable: u16,
    pub(super) active: u16,
    pub(super) retained: u16,
    pub(super) free: u16,
    /// Idempotency keys that name a job in the table.
    pub(super) keys: u16,
    /// Entries of the dependents lists (target, dependent), list by list, in list order.
    pub(super) dependents: u32,
}

/// One tombstone in the image.
#[derive(Serialize, Deserialize)]
pub(super) struct TombImage {
    pub(super) id: JobId,
    pub(super) ended_ms: u64,
    pub(super) outcome: u8,
    pub(super) succeeded: bool,
    pub(super) code: i32,
}

/// One job in the image: its slot's observable fields, texts borrowed from the image.
#[derive(Serialize, Deserialize)]
pub(super) struct JobImage<'a, S> {
    pub(super) index: u16,
    pub(super) epoch: u32,
    pub(super) generation: u32,
    pub(super) spec: S,
    pub(super) description: &'a str,
    pub(super) message: &'a str,
    pub(super) phase: u8,
    pub(super) progress: u8,
    pub(super) flags: u8,
    pub(super) outcome: u8,
    pub(super) cause: u8,
    pub(super) code_or_lease: u32,
    pub(super) run_timeout_ms: u32,
    pub(super) created_ms: u64,
    pub(super) modified_ms: u64,
    pub(super) started_ms: Option<u64>,
    pub(super) expiry_ms: Option<u64>,
    pub(super) revision: u64,
    pub(super) state_revision: u64,
    pub(super) depends_on: Vec<JobId, MAX_DEPENDENCIES>,
    /// Retry policy and retries made: max attempts, multiplier, jitter %, retries, first
    /// backoff ms, ceiling ms, seed (feature `retry`; `None` without it).
    pub(super) retry: Option<(u8, u8, u8, u8, u32, u32, u32)>,
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
const JOB_FIXED: usize =
    U16 + U32 + U32 + 5 + U32 + U32 + U64 + U64 + OPT_U64 + OPT_U64 + U64 + U64;

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
        let used = postcard::serialize_with_flavor(v, Cursor { buf: rest, pos: 0 }).map_err(
            |e| match e {
                postcard::Error::SerializeBufferFull => EncodeError::BufferTooSmall,
                _ => EncodeError::Spec,
            },
        )?;
        self.pos = self.pos.saturating_add(used);
        Ok(())
    }
}

/// postcard's output into a slice — the same bytes as `postcard::to_slice` — copying the short
/// runs an image is made of (varints, small fields) with moves of a known length instead of a
/// call to `memcpy` for each.
struct Cursor<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

/// Copy `src` into `dst` (of the same length).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    #[inline(always)]
    fn fixed<const L: usize>(dst: &mut [u8], src: &[u8]) {
        if let (Ok(d), Ok(s)) = (<&mut [u8; L]>::try_from(dst), <&[u8; L]>::try_from(src)) {
            *d = *s;
        }
    }
    match src.len() {
        0 => {}
        1 => fixed::<1>(dst, src),
        2 => fixed::<2>(dst, src),
        3 => fixed::<3>(dst, src),
        4 => fixed::<4>(dst, src),
        5 => fixed::<5>(dst, src),
        6 => fixed::<6>(dst, src),
        7 => fixed::<7>(dst, src),
        8 => fixed::<8>(dst, src),
        9 => fixed::<9>(dst, src),
        10 => fixed::<10>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

impl postcard::ser_flavors::Flavor for Cursor<'_> {
    type Output = usize;

    #[inline(always)]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        let dst = self
            .buf
            .get_mut(self.pos)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        *dst = b;
        self.pos = self.pos.saturating_add(1);
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self
            .pos
            .checked_add(data.len())
            .ok_or(postcard::Error::SerializeBufferFull)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        copy_short(dst, data);
        self.pos = end;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.pos)
    }
}

pub(super) fn take<'a, V: Deserialize<'a>>(rest: &mut &'a [u8]) -> Result<V, DecodeError> {
    let (v, r) = postcard::take_from_bytes::<V>(rest).map_err(|_| DecodeError::Malformed)?;
    *rest = r;
    Ok(v)
}

pub(super) fn bad(what: Inconsistency) -> DecodeError {
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

#[cfg(feature = "retry")]
fn retry_image(s: &Slot) -> Option<(u8, u8, u8, u8, u32, u32, u32)> {
    let r = &s.retry;
    (r.max_attempts != 0).then_some((
        r.max_attempts,
        r.multiplier,
        r.jitter_percent,
        r.retries,
        r.first_ms,
        r.ceiling_ms,
        r.seed,
    ))
}

#[cfg(not(feature = "retry"))]
fn retry_image(_: &Slot) -> Option<(u8, u8, u8, u8, u32, u32, u32)> {
    None
}

impl<
        S,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    > JobTable<S, N, T, J, L, E, K, I>
{
    /// Every dependents list entry as (target slot, dependent slot), list by list, in order.
    fn dependents(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        let edges = &self.edges[..];
        self.slots
            .iter()
            .enumerate()
            .take(usize::from(self.head.fresh))
            .flat_map(move |(t, s)| {
                let mut e = s.dependents;
                core::iter::from_fn(move || {
                    let edge = edges.get(usize::from(e.checked_sub(1)?))?;
                    e = edge.next_dep;
                    Some((u16::try_from(t).ok()?, edge.owner.checked_sub(1)?))
                })
                .take(edges.len())
            })
    }

    /// The key entries that name a job still in the table.
    fn live_keys(&self) -> impl Iterator<Item = &crate::table::KeyRecord> + '_ {
        self.keys.iter().filter(|k| {
            k.hash() != 0
                && k.slot
                    .checked_sub(1)
                    .and_then(|i| self.slots.get(usize::from(i)))
                    .is_some_and(|s| {
                        (s.phase.is_live() || s.phase.is_terminal()) && s.generation == k.generation
                    })
        })
    }
}

fn opt(ms: Ms) -> Option<u64> {
    (!ms.is_none()).then(|| ms.ms())
}

impl<
        S,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    > JobTable<S, N, T, J, L, E, K, I>
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
            .saturating_add(I.saturating_mul(U64 + U64 + U16))
            .saturating_add(E.saturating_mul(U16 + U16))
    }
}

impl<
        S: Serialize,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    > JobTable<S, N, T, J, L, E, K, I>
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
            runnable: h
                .runnable
                .iter()
                .fold(0u16, |n, l| n.saturating_add(count(slots, l.head))),
            active: count(slots, h.active.head),
            retained: count(slots, h.retained.head),
            free: count(slots, h.free),
            keys: u16::try_from(self.live_keys().count()).unwrap_or(u16::MAX),
            dependents: u32::try_from(self.dependents().count()).unwrap_or(u32::MAX),
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
                description: job.description(),
                message: job.message(),
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
                retry: retry_image(s),
            })?;
        }
        for pair in self.dependents() {
            out.put(&pair)?;
        }
        let [r0, r1, r2, r3] = h.runnable;
        for head in [
            r0.head,
            r1.head,
            r2.head,
            r3.head,
            h.active.head,
            h.retained.head,
            h.free,
        ] {
            for i in walk(slots, head) {
                out.put(&i)?;
            }
        }
        for k in self.live_keys() {
            out.put(&(k.hash(), k.fingerprint(), k.slot.saturating_sub(1)))?;
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    extern crate std;

    use super::{Cursor, CRC};

    /// The image's output flavor writes exactly what `postcard::to_slice` writes, for varints
    /// of every length and texts of every short length and some long ones; and refuses a
    /// buffer one byte short.
    #[test]
    fn cursor_writes_what_to_slice_writes() {
        let texts: std::vec::Vec<std::string::String> =
            (0..64).map(|k| "x".repeat(k % 40)).collect();
        let long = "é".repeat(300);
        let mut values: std::vec::Vec<(u64, u32, i64, &str)> = std::vec::Vec::new();
        for (shift, text) in texts.iter().enumerate() {
            let v = 1u64 << shift;
            values.push((
                v,
                (v as u32).wrapping_sub(1),
                (v as i64).wrapping_neg(),
                text,
            ));
        }
        values.push((u64::MAX, u32::MAX, i64::MIN, &long));
        for v in &values {
            let mut a = [0u8; 1024];
            let mut b = [0u8; 1024];
            let expected = postcard::to_slice(v, &mut a).unwrap().len();
            let used = postcard::serialize_with_flavor(
                v,
                Cursor {
                    buf: &mut b,
                    pos: 0,
                },
            )
            .unwrap();
            assert_eq!(used, expected);
            assert_eq!(a[..expected], b[..used]);
            let short = postcard::serialize_with_flavor(
                v,
                Cursor {
                    buf: &mut b[..expected - 1],
                    pos: 0,
                },
            );
            assert_eq!(short, Err(postcard::Error::SerializeBufferFull));
        }
    }

    /// Whichever table the CRC uses (feature `fast-crc`), it computes zlib's CRC-32.
    #[test]
    fn crc_is_crc32() {
        assert_eq!(CRC.checksum(b"123456789"), 0xCBF4_3926);
        let bytes: std::vec::Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let slow = crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);
        assert_eq!(CRC.checksum(&bytes), slow.checksum(&bytes));
    }
}
