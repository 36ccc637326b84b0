//! The defmt global logger: frames go to a host file through semihosting.
//!
//! The scenario result line (`N passed, N failed`) goes to semihosting stdout, where CI reads
//! it. defmt frames are binary; sharing stdout would garble that line. So the logger opens
//! `target/defmt.bin` on the host (QEMU's `-semihosting-config target=native`) and appends the
//! encoded frames there. Decode them with
//! `defmt-print -e target/thumbv7m-none-eabi/release/jobstate-firmware < target/defmt.bin`.
//! Unlike a no-op logger this keeps the log (and proves the core's `defmt::Format` impls
//! encode on target); unlike RTT it needs no probe.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_semihosting::syscall;

/// Host path of the frame file, NUL-terminated as semihosting wants it.
const PATH: &[u8] = b"target/defmt.bin\0";
/// Semihosting open mode "wb".
const MODE_WB: usize = 5;

#[defmt::global_logger]
struct Logger;

struct Inner {
    restore: critical_section::RestoreState,
    encoder: defmt::Encoder,
    /// Host file handle: `None` before the first frame, `Some(None)` if opening failed.
    fd: Option<Option<usize>>,
}

struct Shared {
    taken: AtomicBool,
    inner: UnsafeCell<Inner>,
}

// SAFETY: `inner` is only touched between `acquire` and `release`, inside a critical section,
// and `taken` refuses re-entry.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    taken: AtomicBool::new(false),
    inner: UnsafeCell::new(Inner {
        restore: critical_section::RestoreState::invalid(),
        encoder: defmt::Encoder::new(),
        fd: None,
    }),
};

fn emit(fd: &mut Option<Option<usize>>, bytes: &[u8]) {
    let handle = *fd.get_or_insert_with(|| {
        // SAFETY: a semihosting OPEN with a valid NUL-terminated path and its length.
        let r = unsafe { syscall!(OPEN, PATH.as_ptr(), MODE_WB, PATH.len() - 1) };
        (r != usize::MAX).then_some(r)
    });
    if let Some(h) = handle {
        // SAFETY: a semihosting WRITE of a valid buffer to an open handle.
        unsafe {
            syscall!(WRITE, h, bytes.as_ptr(), bytes.len());
        }
    }
}

// SAFETY: defmt's contract — acquire/release pair up, write and flush only in between.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // SAFETY: paired with `critical_section::release` in `release`.
        let restore = unsafe { critical_section::acquire() };
        // Interrupts are off from here to `release`, so only a log from inside the logger
        // could re-enter; defmt forbids that and so do we. A plain load and store (thumbv6m has
        // no atomic swap; none is needed with interrupts off), and an exit rather than a panic.
        if SHARED.taken.load(Ordering::Relaxed) {
            crate::fatal("defmt logger taken reentrantly");
        }
        SHARED.taken.store(true, Ordering::Relaxed);
        // SAFETY: exclusive access, see `Shared`.
        let inner = unsafe { &mut *SHARED.inner.get() };
        inner.restore = restore;
        let Inner { encoder, fd, .. } = inner;
        encoder.start_frame(|b| emit(fd, b));
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: called after `acquire`, exclusive access.
        let inner = unsafe { &mut *SHARED.inner.get() };
        let Inner { encoder, fd, .. } = inner;
        encoder.end_frame(|b| emit(fd, b));
        let restore = inner.restore;
        SHARED.taken.store(false, Ordering::Relaxed);
        // SAFETY: paired with the acquire in `acquire`.
        unsafe { critical_section::release(restore) };
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called after `acquire`, exclusive access.
        let inner = unsafe { &mut *SHARED.inner.get() };
        let Inner { encoder, fd, .. } = inner;
        encoder.write(bytes, |b| emit(fd, b));
    }
}

defmt::timestamp!("{=u64:ms}", embassy_time::Instant::now().as_millis());
