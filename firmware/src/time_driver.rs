//! A SysTick time driver for embassy-time.
//!
//! No released embassy HAL covers the LM3S6965, so the firmware brings its own driver: SysTick
//! counts down from the core clock and interrupts `TICK_HZ` times a second; the handler
//! advances a 64-bit tick count and wakes the timers that are due. The timer queue is the
//! executor's integrated one (`embassy-time-queue-utils`).
//!
//! QEMU's lm3s6965evb runs its core at 12.5 MHz out of reset (no PLL set up), so the reload
//! value is `12_500_000 / TICK_HZ - 1`. Time in QEMU follows the host clock, so the scenarios
//! use timeouts of tens to hundreds of milliseconds.

use core::cell::RefCell;
use core::task::Waker;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

/// Core clock of the LM3S6965 at reset.
pub const CORE_HZ: u32 = 12_500_000;
/// Interrupts per second; must equal the `tick-hz-*` feature chosen for embassy-time.
pub const TICK_HZ: u32 = 1_000;
const _: () = assert!(embassy_time_driver::TICK_HZ == TICK_HZ as u64);
const _: () = assert!(CORE_HZ.is_multiple_of(TICK_HZ) && CORE_HZ / TICK_HZ <= 1 << 24);

struct State {
    ticks: u64,
    /// The tick at which the queue has its next expiry (`u64::MAX`: none).
    alarm: u64,
    queue: Queue,
}

struct SysTickDriver {
    state: Mutex<RefCell<State>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver {
    state: Mutex::new(RefCell::new(State { ticks: 0, alarm: u64::MAX, queue: Queue::new() })),
});

impl Driver for SysTickDriver {
    fn now(&self) -> u64 {
        critical_section::with(|cs| self.state.borrow_ref(cs).ticks)
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let mut s = self.state.borrow_ref_mut(cs);
            if s.queue.schedule_wake(at, waker) {
                let now = s.ticks;
                s.alarm = s.queue.next_expiration(now);
            }
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
        let mut s = DRIVER.state.borrow_ref_mut(cs);
        s.ticks += 1;
        if s.ticks >= s.alarm {
            let now = s.ticks;
            s.alarm = s.queue.next_expiration(now);
        }
    });
}
