//! Files on the host through semihosting (QEMU `-semihosting-config target=native`), written
//! whole: the scenarios hand the host a table image and the instants it must hold.

use core::fmt;

use cortex_m_semihosting::syscall;

/// Semihosting open mode "wb".
const MODE_WB: usize = 5;

/// A host file open for writing; closed when dropped.
pub struct HostFile(usize);

impl HostFile {
    /// Create (or truncate) the file at `path`, relative to QEMU's working directory.
    /// `path` must end with a NUL byte.
    pub fn create(path: &[u8]) -> Option<HostFile> {
        if path.last() != Some(&0) {
            return None;
        }
        // SAFETY: a semihosting OPEN with a valid NUL-terminated path and its length.
        let fd = unsafe { syscall!(OPEN, path.as_ptr(), MODE_WB, path.len().saturating_sub(1)) };
        (fd != usize::MAX).then_some(HostFile(fd))
    }

    /// Write all of `bytes`; `false` if the host refused part of them.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        // SAFETY: a semihosting WRITE of a valid buffer to an open handle; it answers the
        // number of bytes not written.
        unsafe { syscall!(WRITE, self.0, bytes.as_ptr(), bytes.len()) == 0 }
    }
}

impl fmt::Write for HostFile {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.write(s.as_bytes()) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        // SAFETY: a semihosting CLOSE of the handle this value owns.
        unsafe {
            syscall!(CLOSE, self.0);
        }
    }
}
