//! Power-safe A/B images on NOR flash (R-PERSIST), over `embedded-storage`'s [`NorFlash`].
//!
//! [`AbStore`] owns two equal flash regions ("slots") and keeps one table image in each, with a
//! sequence number. A save goes to the slot that does **not** hold the newest valid image:
//! erase it, write the image, write the record header last. A power cut at any point of a save
//! (mid-erase, mid-image, mid-header) leaves the other slot untouched, so a load afterwards
//! finds either the new image or the previous one — never nothing, never a mix. A flipped bit in
//! a stored record fails its CRC and the load falls back to the other slot.
//!
//! A record in a slot:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `JSAB` |
//! | 4..8 | sequence number, `u32` LE (wrapping; the newer of two is the one ahead) |
//! | 8..12 | payload length, `u32` LE |
//! | 12..16 | CRC-32 of bytes 0..12 and the payload |
//! | 16..H | `0xFF` up to the flash's write (and read) granularity |
//! | H.. | the payload: a table image ([`crate::persist`]), padded with `0xFF` |
//!
//! The store needs a RAM buffer from the caller for the record: at least
//! [`AbStore::buffer_len`] bytes for a payload of a given size (the image bound plus the
//! header area and write padding). Slots must be a whole number of erase blocks.
//!
//! [`RamFlash`] is a NOR flash in RAM with power-cut injection, for host tests of the code
//! that uses the store.
//!
//! ```
//! use jobstate::flash::{AbStore, RamFlash};
//! use jobstate::{Config, Instant, JobTable, NewJob};
//!
//! type Table = JobTable<u8, 4>;
//! const BUF: usize = AbStore::<RamFlash<8192, 4, 1024>>::buffer_len(Table::image_size_bound(1));
//!
//! let mut store = AbStore::new(RamFlash::<8192, 4, 1024>::new(), 0, 4096).unwrap();
//! let mut buf = [0u8; BUF];
//! let mut table = Table::new(Config::DEFAULT);
//! let id = table.submit(NewJob::new(7), Instant::from_secs(0)).unwrap();
//! store.save_table(&table, &mut buf).unwrap();
//!
//! // ... power cycle: the table is restored where it lives (a `static` on firmware) ...
//! let mut restored = Table::new(Config::DEFAULT);
//! let report = store.restore_into(&mut restored, &mut buf, Instant::from_secs(1)).unwrap();
//! assert!(report.is_some(), "an image was saved");
//! assert_eq!(*restored.get(id).unwrap().spec(), 7);
//! ```

use core::fmt;

use embedded_storage::nor_flash::{
    check_erase, check_read, check_write, ErrorType, NorFlash, NorFlashError, NorFlashErrorKind,
    ReadNorFlash,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::persist::{DecodeError, EncodeError, Restored, CRC};
use crate::table::JobTable;
use crate::time::Instant;

/// The first bytes of a record in a slot.
pub const RECORD_MAGIC: [u8; 4] = *b"JSAB";
/// Bytes of a record header before padding.
pub const RECORD_HEADER: usize = 16;

/// Records are checked in chunks of this many bytes on the stack.
const CHUNK: usize = 256;

/// Why a store operation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StoreError<E> {
    /// The flash driver failed (the other slot is untouched).
    Flash(E),
    /// Regions not aligned to the erase size, overlapping the end of the flash, or too small for
    /// a record header; or a flash read size that does not divide 256.
    Layout,
    /// The caller's buffer is smaller than [`AbStore::buffer_len`] for this payload.
    BufferTooSmall,
    /// The record does not fit a slot.
    TooLarge,
    /// Encoding the table failed.
    Encode(EncodeError),
    /// The newest valid record holds an image this table refuses.
    Decode(DecodeError),
}

impl<E: fmt::Debug> fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Flash(e) => write!(f, "flash error: {e:?}"),
            StoreError::Layout => f.write_str("slot layout does not fit the flash"),
            StoreError::BufferTooSmall => f.write_str("buffer too small for the record"),
            StoreError::TooLarge => f.write_str("record larger than a slot"),
            StoreError::Encode(e) => write!(f, "{e}"),
            StoreError::Decode(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for StoreError<E> {}

/// Which slot holds the newest valid record, and its sequence number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Newest {
    /// 0 (slot A) or 1 (slot B).
    pub slot: u8,
    /// The record's sequence number.
    pub seq: u32,
}

const fn round_up(n: usize, to: usize) -> usize {
    if to <= 1 {
        return n;
    }
    match n.checked_rem(to) {
        Some(0) | None => n,
        Some(r) => n.saturating_add(to.saturating_sub(r)),
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Two-slot (A/B) image store on a NOR flash. See the [module docs](self).
pub struct AbStore<F> {
    flash: F,
    base: u32,
    slot_len: u32,
    /// `Some(None)`: scanned, no valid record. `None`: not scanned yet.
    newest: Option<Option<Newest>>,
    /// What `newest` was before the last save, for [`AbStore::retract_last_save`].
    before_last_save: Option<Option<Newest>>,
}

impl<F: NorFlash> AbStore<F> {
    /// Bytes before the payload in a record: the header, padded to the flash's write and read
    /// granularity.
    pub const HEADER_AREA: usize = round_up(
        round_up(RECORD_HEADER, max(F::WRITE_SIZE, 1)),
        max(F::READ_SIZE, 1),
    );

    /// The RAM buffer [`AbStore::save_table`] / [`AbStore::load`] need for a payload of up to
    /// `payload_max` bytes (use [`JobTable::image_size_bound`]). A `const fn`.
    pub const fn buffer_len(payload_max: usize) -> usize {
        let g = max(max(F::WRITE_SIZE, F::READ_SIZE), 1);
        round_up(Self::HEADER_AREA.saturating_add(payload_max), g)
    }

    /// A store using the slots `base..base+slot_len` (A) and `base+slot_len..base+2*slot_len`
    /// (B). Both must be whole erase blocks inside the flash. Reads nothing yet.
    pub fn new(flash: F, base: u32, slot_len: u32) -> Result<Self, StoreError<F::Error>> {
        let erase = u32::try_from(F::ERASE_SIZE).map_err(|_| StoreError::Layout)?;
        let end = slot_len
            .checked_mul(2)
            .and_then(|l| l.checked_add(base))
            .ok_or(StoreError::Layout)?;
        let aligned = erase == 0
            || (base.checked_rem(erase) == Some(0) && slot_len.checked_rem(erase) == Some(0));
        let fits = usize::try_from(end).is_ok_and(|e| e <= flash.capacity());
        let roomy = usize::try_from(slot_len).is_ok_and(|l| l > Self::HEADER_AREA);
        // Reads go through a stack chunk: the read size must divide it.
        let readable = F::READ_SIZE <= CHUNK && CHUNK.checked_rem(F::READ_SIZE.max(1)) == Some(0);
        if !aligned || !fits || !roomy || !readable {
            return Err(StoreError::Layout);
        }
        Ok(Self {
            flash,
            base,
            slot_len,
            newest: None,
            before_last_save: None,
        })
    }

    /// The flash driver back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The flash driver (for example to inspect it in a test).
    pub fn flash_mut(&mut self) -> &mut F {
        // Whatever the caller does to the flash, scan again before trusting the cache.
        self.newest = None;
        &mut self.flash
    }

    /// The flash driver, for an operation that leaves what the flash holds as it is (a
    /// driver's flush of written bytes, a sync): unlike [`AbStore::flash_mut`], the store keeps
    /// what it knows of the newest record, so the next [`save`](AbStore::save) does not read and
    /// check both slots again. Use [`AbStore::flash_mut`] for anything that may change the
    /// contents, and after the driver reported an error.
    pub fn flash_mut_unchanged(&mut self) -> &mut F {
        &mut self.flash
    }

    fn slot_offset(&self, slot: u8) -> u32 {
        if slot == 0 {
            self.base
        } else {
            self.base.saturating_add(self.slot_len)
        }
    }

    /// Check the record in `slot` (reading it in small chunks on the stack) and, with `into`,
    /// copy it there as well; its sequence number and payload length when valid.
    fn read_record(
        &mut self,
        slot: u8,
        mut into: Option<&mut [u8]>,
    ) -> Result<Option<(u32, usize)>, StoreError<F::Error>> {
        let off = self.slot_offset(slot);
        let read = max(F::READ_SIZE, 1);
        let mut chunk = [0u8; CHUNK];
        let head_len = round_up(RECORD_HEADER, read);
        let head = chunk.get_mut(..head_len).ok_or(StoreError::Layout)?;
        self.flash.read(off, head).map_err(StoreError::Flash)?;
        let field = |b: &[u8], at: usize| -> u32 {
            let mut w = [0u8; 4];
            if let Some(src) = b.get(at..at.saturating_add(4)) {
                w.copy_from_slice(src);
            }
            u32::from_le_bytes(w)
        };
        if head.get(..4) != Some(&RECORD_MAGIC[..]) {
            return Ok(None);
        }
        let seq = field(head, 4);
        let Ok(len) = usize::try_from(field(head, 8)) else {
            return Ok(None);
        };
        let crc = field(head, 12);
        let total = Self::HEADER_AREA.saturating_add(len);
        let slot_len = usize::try_from(self.slot_len).unwrap_or(0);
        if total > slot_len {
            return Ok(None);
        }
        let read_len = round_up(total, read);
        let mut digest = CRC.digest();
        digest.update(head.get(..12).unwrap_or(&[]));
        if let Some(dst) = into.as_deref_mut() {
            let dst = dst.get_mut(..head_len).ok_or(StoreError::BufferTooSmall)?;
            dst.copy_from_slice(chunk.get(..head_len).unwrap_or(&[]));
        }
        let mut pos = head_len;
        while pos < read_len {
            let n = CHUNK.min(read_len.saturating_sub(pos));
            let part = chunk.get_mut(..n).ok_or(StoreError::Layout)?;
            let at = u32::try_from(pos).map_err(|_| StoreError::Layout)?;
            self.flash
                .read(off.saturating_add(at), part)
                .map_err(StoreError::Flash)?;
            // The payload's bytes within this chunk.
            let from = Self::HEADER_AREA.max(pos).saturating_sub(pos).min(n);
            let to = total
                .min(pos.saturating_add(n))
                .saturating_sub(pos)
                .max(from);
            digest.update(part.get(from..to).unwrap_or(&[]));
            if let Some(dst) = into.as_deref_mut() {
                let dst = dst
                    .get_mut(pos..pos.saturating_add(n))
                    .ok_or(StoreError::BufferTooSmall)?;
                dst.copy_from_slice(part);
            }
            pos = pos.saturating_add(n);
        }
        if digest.finalize() != crc {
            return Ok(None);
        }
        Ok(Some((seq, len)))
    }

    /// Find the newest valid record (reads both slots, checks both CRCs).
    pub fn scan(&mut self) -> Result<Option<Newest>, StoreError<F::Error>> {
        let a = self.read_record(0, None)?;
        let b = self.read_record(1, None)?;
        let newest = match (a, b) {
            (None, None) => None,
            (Some((sa, _)), None) => Some(Newest { slot: 0, seq: sa }),
            (None, Some((sb, _))) => Some(Newest { slot: 1, seq: sb }),
            (Some((sa, _)), Some((sb, _))) => {
                // Serial-number order: b is newer when it is ahead of a by less than half the
                // sequence space.
                let ahead = sb.wrapping_sub(sa);
                if ahead != 0 && ahead < 1 << 31 {
                    Some(Newest { slot: 1, seq: sb })
                } else {
                    Some(Newest { slot: 0, seq: sa })
                }
            }
        };
        self.newest = Some(newest);
        Ok(newest)
    }

    /// Read the newest valid payload into `buf` and answer it (`None` when neither slot holds a
    /// valid record: a blank flash, or a first save cut short).
    pub fn load<'b>(
        &mut self,
        buf: &'b mut [u8],
    ) -> Result<Option<&'b [u8]>, StoreError<F::Error>> {
        let Some(newest) = self.scan()? else {
            return Ok(None);
        };
        match self.read_record(newest.slot, Some(&mut *buf))? {
            Some((_, len)) => Ok(buf.get(Self::HEADER_AREA..Self::HEADER_AREA.saturating_add(len))),
            // Changed between two reads: a flash that does not hold its contents.
            None => {
                self.newest = None;
                Ok(None)
            }
        }
    }

    /// The last save may not be durable — the driver's sync (a file's `fdatasync`) failed after
    /// it — although reading the flash back may still show it whole (a page cache keeps
    /// written bytes the disk never took). Forget it: the next save writes the same slot
    /// again and leaves the other slot — the record known to be durable — untouched, so a
    /// crash during that save still finds it. (Scanning again instead would trust the
    /// unsynced record and overwrite the durable one.)
    pub fn retract_last_save(&mut self) {
        if let Some(before) = self.before_last_save.take() {
            self.newest = Some(before);
        }
    }

    /// Write a payload as the next record: `buf[HEADER_AREA..HEADER_AREA + len]` holds it, the
    /// rest of `buf` (up to [`AbStore::buffer_len`]) is used for the header and padding. Goes to
    /// the slot without the newest valid record; answers the record's sequence number.
    pub fn save(&mut self, buf: &mut [u8], len: usize) -> Result<u32, StoreError<F::Error>> {
        let newest = match self.newest {
            Some(n) => n,
            None => self.scan()?,
        };
        self.before_last_save = Some(newest);
        let (target, seq) = match newest {
            None => (0u8, 1u32),
            Some(n) => (1u8.saturating_sub(n.slot), n.seq.wrapping_add(1)),
        };
        let total = Self::HEADER_AREA.saturating_add(len);
        let write_len = round_up(total, max(F::WRITE_SIZE, 1));
        if write_len > usize::try_from(self.slot_len).unwrap_or(0) {
            return Err(StoreError::TooLarge);
        }
        let rec = buf.get_mut(..write_len).ok_or(StoreError::BufferTooSmall)?;
        let len32 = u32::try_from(len).map_err(|_| StoreError::TooLarge)?;
        let (head, rest) = rec.split_at_mut(Self::HEADER_AREA.min(write_len));
        let (payload, pad) = rest.split_at_mut(len.min(rest.len()));
        pad.fill(0xFF);
        head.fill(0xFF);
        let mut fields = [0u8; RECORD_HEADER];
        for (dst, src) in fields.iter_mut().zip(
            RECORD_MAGIC
                .iter()
                .chain(seq.to_le_bytes().iter())
                .chain(len32.to_le_bytes().iter()),
        ) {
            *dst = *src;
        }
        let mut digest = CRC.digest();
        digest.update(fields.get(..12).unwrap_or(&[]));
        digest.update(payload);
        let crc = digest.finalize().to_le_bytes();
        for (dst, src) in fields.iter_mut().skip(12).zip(crc.iter()) {
            *dst = *src;
        }
        for (dst, src) in head.iter_mut().zip(fields.iter()) {
            *dst = *src;
        }

        let off = self.slot_offset(target);
        let end = off.saturating_add(self.slot_len);
        self.flash.erase(off, end).map_err(StoreError::Flash)?;
        // Payload first, header last: until the header is complete the slot is not a record.
        let header_area = u32::try_from(Self::HEADER_AREA).map_err(|_| StoreError::Layout)?;
        let body = rec
            .get(Self::HEADER_AREA..)
            .ok_or(StoreError::BufferTooSmall)?;
        if !body.is_empty() {
            self.flash
                .write(off.saturating_add(header_area), body)
                .map_err(StoreError::Flash)?;
        }
        let head = rec
            .get(..Self::HEADER_AREA)
            .ok_or(StoreError::BufferTooSmall)?;
        self.flash.write(off, head).map_err(StoreError::Flash)?;
        self.newest = Some(Some(Newest { slot: target, seq }));
        Ok(seq)
    }

    /// Encode `table` into `buf` and [`save`](AbStore::save) it.
    pub fn save_table<
        S: Serialize,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    >(
        &mut self,
        table: &JobTable<S, N, T, J, L, E, K, I>,
        buf: &mut [u8],
    ) -> Result<u32, StoreError<F::Error>> {
        let area = buf
            .get_mut(Self::HEADER_AREA..)
            .ok_or(StoreError::BufferTooSmall)?;
        let len = table.encode(area).map_err(|e| match e {
            EncodeError::BufferTooSmall => StoreError::BufferTooSmall,
            e => StoreError::Encode(e),
        })?;
        self.save(buf, len)
    }
}

impl<F: NorFlash> AbStore<F> {
    /// [`load`](AbStore::load) the newest image and restore it into `table`, in place (a table
    /// in a `static` or a `Box`; no table-sized temporary): see [`JobTable::restore_in_place`]
    /// — then save the restored table at once, so its new epoch is durable before it issues an
    /// id. `Ok(None)` (table unchanged) when the store holds no valid record. An error from
    /// that save leaves the table restored but not durable: do not serve from it.
    pub fn restore_into<
        S: DeserializeOwned + Serialize,
        const N: usize,
        const T: usize,
        const J: usize,
        const L: usize,
        const E: usize,
        const K: usize,
        const I: usize,
    >(
        &mut self,
        table: &mut JobTable<S, N, T, J, L, E, K, I>,
        buf: &mut [u8],
        now: Instant,
    ) -> Result<Option<Restored>, StoreError<F::Error>> {
        let restored = match self.load(buf)? {
            None => return Ok(None),
            Some(image) => table
                .restore_in_place(image, now)
                .map_err(StoreError::Decode)?,
        };
        // The new epoch is durable before the table issues its first id: restoring the same
        // image again after another crash cannot hand out the same ids (R-ID).
        self.save_table(table, buf)?;
        Ok(Some(restored))
    }
}

/// Errors of [`RamFlash`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RamFlashError {
    /// Offset or length not aligned to the read, write or erase size.
    NotAligned,
    /// Outside the flash.
    OutOfBounds,
    /// The injected power cut happened during this operation.
    PowerCut,
}

impl NorFlashError for RamFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            RamFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            RamFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            RamFlashError::PowerCut => NorFlashErrorKind::Other,
        }
    }
}

/// A NOR flash in RAM: `SIZE` bytes, writes of `W`-byte words, erases of `E`-byte blocks.
/// Erased bytes read `0xFF`; a write can only clear bits (like NOR cells). For tests, it can cut
/// the power after a number of byte operations ([`RamFlash::cut_after`]): the operation under
/// way stops half done, and every later one fails until [`RamFlash::power_on`].
#[derive(Clone)]
pub struct RamFlash<const SIZE: usize, const W: usize, const E: usize> {
    bytes: [u8; SIZE],
    budget: Option<usize>,
    dead: bool,
    /// Byte operations (erased or written bytes) so far.
    ops: usize,
}

impl<const SIZE: usize, const W: usize, const E: usize> Default for RamFlash<SIZE, W, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SIZE: usize, const W: usize, const E: usize> RamFlash<SIZE, W, E> {
    /// A blank (erased) flash.
    pub const fn new() -> Self {
        Self {
            bytes: [0xFF; SIZE],
            budget: None,
            dead: false,
            ops: 0,
        }
    }

    /// The contents.
    pub fn bytes(&self) -> &[u8; SIZE] {
        &self.bytes
    }

    /// The contents, to corrupt them on purpose.
    pub fn bytes_mut(&mut self) -> &mut [u8; SIZE] {
        &mut self.bytes
    }

    /// Cut the power after `ops` more byte operations (each erased or written byte counts one).
    pub fn cut_after(&mut self, ops: usize) {
        self.budget = Some(ops);
    }

    /// Power back on: no cut planned, operations work again.
    pub fn power_on(&mut self) {
        self.budget = None;
        self.dead = false;
    }

    /// Byte operations done so far (to plan a cut at every offset of a save).
    pub fn ops(&self) -> usize {
        self.ops
    }

    /// One byte operation: `false` when the power is (now) off.
    fn tick(&mut self) -> bool {
        if self.dead {
            return false;
        }
        if let Some(b) = self.budget.as_mut() {
            if *b == 0 {
                self.dead = true;
                return false;
            }
            *b = b.saturating_sub(1);
        }
        self.ops = self.ops.saturating_add(1);
        true
    }
}

impl<const SIZE: usize, const W: usize, const E: usize> ErrorType for RamFlash<SIZE, W, E> {
    type Error = RamFlashError;
}

fn kind_to_error(k: NorFlashErrorKind) -> RamFlashError {
    match k {
        NorFlashErrorKind::NotAligned => RamFlashError::NotAligned,
        _ => RamFlashError::OutOfBounds,
    }
}

impl<const SIZE: usize, const W: usize, const E: usize> ReadNorFlash for RamFlash<SIZE, W, E> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        check_read(self, offset, bytes.len()).map_err(kind_to_error)?;
        if self.dead {
            return Err(RamFlashError::PowerCut);
        }
        let start = usize::try_from(offset).map_err(|_| RamFlashError::OutOfBounds)?;
        let src = self
            .bytes
            .get(start..start.saturating_add(bytes.len()))
            .ok_or(RamFlashError::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl<const SIZE: usize, const W: usize, const E: usize> NorFlash for RamFlash<SIZE, W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        check_erase(self, from, to).map_err(kind_to_error)?;
        let from = usize::try_from(from).map_err(|_| RamFlashError::OutOfBounds)?;
        let to = usize::try_from(to).map_err(|_| RamFlashError::OutOfBounds)?;
        for i in from..to {
            if !self.tick() {
                return Err(RamFlashError::PowerCut);
            }
            if let Some(b) = self.bytes.get_mut(i) {
                *b = 0xFF;
            }
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        check_write(self, offset, bytes.len()).map_err(kind_to_error)?;
        let start = usize::try_from(offset).map_err(|_| RamFlashError::OutOfBounds)?;
        for (k, src) in bytes.iter().enumerate() {
            if !self.tick() {
                return Err(RamFlashError::PowerCut);
            }
            if let Some(b) = self.bytes.get_mut(start.saturating_add(k)) {
                *b &= *src;
            }
        }
        Ok(())
    }
}
