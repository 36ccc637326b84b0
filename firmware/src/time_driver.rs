//! A SysTick time driver for embassy-time, with its own timer queue.
//!
//! No released embassy HAL covers the LM3S6965, so the firmware brings its own driver: SysTick
//! counts down from the core clock and interrupts `TICK_HZ` times a second; the handler
//! advances a 64-bit tick count and wakes the timers that are due. SysTick is part of every
//! Cortex-M, so the same driver serves the Cortex-M0 build.
//!
//! The timer queue is a fixed array of wakers rather than embassy's integrated queue, whose
//! `task_from_waker` panics on a waker that is not the executor's: this one works with any
//! waker and has no panic path (the `no-panic` build links it). When all `QUEUE` entries are
//! taken, a further timer's waker is woken at once, so its task polls again: a busy wait for
//! that task only, never a lost wake-up.
//!
//! QEMU's lm3s6965evb runs its core at 12.5 MHz out of reset (no PLL set up), so the reload
//! value is `12_500_000 / TICK_HZ - 1`; the micro:bit's nRF51 (feature `microbit`) runs at
//! 16 MHz. Time in QEMU follows the host clock, so the scenarios use timeouts of tens to hundreds
//! of milliseconds.

use core::cell::{Cell, RefCell};
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::{CriticalSection, Mutex};
use embassy_time_driver::Driver;

/// Core clock at reset: LM3S6965 (QEMU lm3s6965evb).
#[cfg(not(feature = "microbit"))]
pub const CORE_HZ: u32 = 12_500_000;
/// Core clock: nRF51822 (QEMU microbit).
#[cfg(feature = "microbit")]
pub const CORE_HZ: u32 = 16_000_000;
/// Interrupts per second; must equal the `tick-hz-*` feature chosen for embassy-time.
pub const TICK_HZ: u32 = 1_000;
const _: () = assert!(embassy_time_driver::TICK_HZ == TICK_HZ as u64);
const _: () = assert!(CORE_HZ.is_multiple_of(TICK_HZ) && CORE_HZ / TICK_HZ <= 1 << 24);

/// Timers that can be pending at once: one per task waiting on a timer (the scenarios have at
/// most 10: five workers, two timer tasks, the reporter, the main task).
const QUEUE: usize = 12;

struct Timers {
    /// Pending timers: when, and whom to wake.
    entries: [Option<(u64, Waker)>; QUEUE],
    /// The earliest `when` among them. `None` rather than a `u64::MAX` sentinel, so that the
    /// driver's initial state is all zero and lives in `.bss`, not `.data`.
    alarm: Option<u64>,
}

impl Timers {
    fn schedule(&mut self, at: u64, waker: &Waker) {
        let mut free = None;
        for entry in self.entries.iter_mut() {
            match entry {
                Some((when, w)) if w.will_wake(waker) => {
                    *when = (*when).min(at);
                    self.arm(at);
                    return;
                }
                Some(_) => {}
                None => {
                    if free.is_none() {
                        free = Some(entry);
                    }
                }
            }
        }
        match free {
            Some(entry) => {
                *entry = Some((at, waker.clone()));
                self.arm(at);
            }
            None => waker.wake_by_ref(),
        }
    }

    fn arm(&mut self, at: u64) {
        self.alarm = Some(self.alarm.map_or(at, |a| a.min(at)));
    }

    /// Wake every timer due at `now`; plan the next alarm.
    fn expire(&mut self, now: u64) {
        let mut next: Option<u64> = None;
        for entry in self.entries.iter_mut() {
            match entry {
                Some((when, _)) if *when <= now => {
                    if let Some((_, w)) = entry.take() {
                        w.wake();
                    }
                }
                Some((when, _)) => next = Some(next.map_or(*when, |n| n.min(*when))),
                None => {}
            }
        }
        self.alarm = next;
    }
}

struct SysTickDriver {
    ticks: Mutex<Cell<u64>>,
    timers: Mutex<RefCell<Timers>>,
}

impl SysTickDriver {
    /// The queue, inside a critical section. Nothing borrows it across one, so the borrow
    /// cannot fail; if it ever did, `f` is skipped and `or` runs instead (no panic path).
    fn with_timers(&self, cs: CriticalSection<'_>, f: impl FnOnce(&mut Timers), or: impl FnOnce()) {
        match self.timers.borrow(cs).try_borrow_mut() {
            Ok(mut timers) => f(&mut timers),
            Err(_) => or(),
        }
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    ticks: Mutex::new(Cell::new(0)),
    timers: Mutex::new(RefCell::new(Timers {
        entries: [const { None }; QUEUE],
        alarm: None,
    })),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.ticks.borrow(cs).get())
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            self.with_timers(cs, |t| t.schedule(at, waker), || waker.wake_by_ref());
        });
    }
}

/// Start SysTick. Call once, before the first timer.
pub fn init(mut syst: SYST) {
    syst.set_reload(CORE_HZ / TICK_HZ - 1);
    syst.set_clock_source(SystClkSource::Core);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let ticks = DRIVER.ticks.borrow(cs);
        let now = ticks.get().wrapping_add(1);
        ticks.set(now);
        DRIVER.with_timers(
            cs,
            |t| {
                if t.alarm.is_some_and(|a| now >= a) {
                    t.expire(now);
                }
            },
            || {},
        );
    });
}
