//! A file seen as a NOR flash, so that the core's A/B image store
//! ([`jobstate::flash::AbStore`]) keeps a service's table exactly as it keeps a firmware's:
//! two regions, the new record written to the one without the newest valid record, a CRC over
//! header and payload. The rules of a power-safe save live once, in the core; this module only
//! moves bytes.
//!
//! Differences from a flash, and why they are safe: "erasing" a region writes nothing (a file
//! is overwritten, not erased — a record's CRC covers every byte it claims, so left-over bytes
//! of an older record beyond its length never count); a save is made durable with **one**
//! `fdatasync` after the record is written ([`RegionFile::sync`]): a crash before it completes
//! leaves a record whose CRC fails, and a load takes the other region — the previous durable
//! state, which is all that was acknowledged.

use std::fs::File;
use std::io;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Region granularity: regions are whole multiples of this.
pub(crate) const BLOCK: u32 = 4096;

/// An I/O error of a [`RegionFile`] (its kind; the message is kept by the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionError(pub io::ErrorKind);

impl NorFlashError for RegionError {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// Where a [`RegionFile`] keeps its bytes: a real file, or memory (to read a file's contents
/// that are already in memory).
#[derive(Debug)]
pub(crate) enum Backing {
    File(File),
    Memory(Vec<u8>),
}

/// A file (or a copy of one in memory) as a NOR flash of `len` bytes.
///
/// Writes are gathered while they are contiguous (the store writes a record's body, then its
/// header just before it) and reach the file as one `pwrite` at [`RegionFile::sync`] or before
/// the next read.
#[derive(Debug)]
pub(crate) struct RegionFile {
    backing: Backing,
    len: usize,
    /// Bytes written but not yet passed to the file: their offset and contents.
    pending: Option<(usize, Vec<u8>)>,
    /// The last I/O error, with its message.
    pub(crate) last_error: Option<io::Error>,
}

impl RegionFile {
    pub(crate) fn file(file: File, len: usize) -> Self {
        Self {
            backing: Backing::File(file),
            len,
            pending: None,
            last_error: None,
        }
    }

    pub(crate) fn memory(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        Self {
            backing: Backing::Memory(bytes),
            len,
            pending: None,
            last_error: None,
        }
    }

    /// Make every write so far durable (one `pwrite` of what is gathered, one `fdatasync`).
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        match &self.backing {
            Backing::File(f) => f.sync_data(),
            Backing::Memory(_) => Ok(()),
        }
    }

    /// Pass gathered writes to the file.
    fn flush(&mut self) -> io::Result<()> {
        let Some((start, bytes)) = self.pending.take() else {
            return Ok(());
        };
        match &mut self.backing {
            Backing::File(f) => write_at(f, &bytes, start as u64),
            Backing::Memory(m) => {
                if let Some(dst) = m.get_mut(start..start.saturating_add(bytes.len())) {
                    dst.copy_from_slice(&bytes);
                }
                Ok(())
            }
        }
    }

    fn fail(&mut self, e: io::Error) -> RegionError {
        let kind = e.kind();
        self.last_error = Some(e);
        RegionError(kind)
    }

    fn bounds(&self, offset: u32, n: usize) -> Result<usize, RegionError> {
        let start =
            usize::try_from(offset).map_err(|_| RegionError(io::ErrorKind::InvalidInput))?;
        match start.checked_add(n) {
            Some(end) if end <= self.len => Ok(start),
            _ => Err(RegionError(io::ErrorKind::InvalidInput)),
        }
    }
}

impl ErrorType for RegionFile {
    type Error = RegionError;
}

impl ReadNorFlash for RegionFile {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), RegionError> {
        let start = self.bounds(offset, bytes.len())?;
        if let Err(e) = self.flush() {
            return Err(self.fail(e));
        }
        match &self.backing {
            Backing::File(f) => {
                let r = read_at(f, bytes, start as u64);
                r.map_err(|e| self.fail(e))
            }
            Backing::Memory(m) => {
                let src = m
                    .get(start..start.saturating_add(bytes.len()))
                    .ok_or(RegionError(io::ErrorKind::UnexpectedEof))?;
                bytes.copy_from_slice(src);
                Ok(())
            }
        }
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for RegionFile {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = BLOCK as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), RegionError> {
        // Nothing to do (see the module docs); only check the range.
        let n = usize::try_from(to.saturating_sub(from)).unwrap_or(usize::MAX);
        self.bounds(from, n).map(|_| ())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), RegionError> {
        let start = self.bounds(offset, bytes.len())?;
        let end = start.saturating_add(bytes.len());
        match self.pending.as_mut() {
            // Just before what is gathered (a header before its body).
            Some((at, gathered)) if end == *at => {
                let mut joined = Vec::with_capacity(bytes.len().saturating_add(gathered.len()));
                joined.extend_from_slice(bytes);
                joined.extend_from_slice(gathered);
                *gathered = joined;
                *at = start;
            }
            // Just after it.
            Some((at, gathered)) if at.saturating_add(gathered.len()) == start => {
                gathered.extend_from_slice(bytes);
            }
            _ => {
                if let Err(e) = self.flush() {
                    return Err(self.fail(e));
                }
                self.pending = Some((start, bytes.to_vec()));
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, at)
}

#[cfg(unix)]
pub(crate) fn write_at(f: &File, buf: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, at)
}

#[cfg(not(unix))]
fn read_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(buf)
}

#[cfg(not(unix))]
pub(crate) fn write_at(f: &File, buf: &[u8], at: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = f;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(buf)
}
