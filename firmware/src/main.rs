//! Scenario firmware for jobstate on a Cortex-M3 under QEMU (`lm3s6965evb`).
//!
//! Runs the scenarios of `scenarios.rs` as embassy tasks sharing `jobstate` tables, prints
//! `N passed, N failed` on semihosting stdout, and exits QEMU through semihosting with status 0
//! only when every check passed. defmt frames go to `target/defmt.bin` (see `logger.rs`).
//!
//! `cargo run --release` in this directory builds and runs it (the runner is QEMU).
#![no_std]
#![no_main]

mod logger;
#[cfg(all(feature = "probe", not(feature = "scenarios")))]
mod probe;
#[cfg(feature = "scenarios")]
mod scenarios;
mod time_driver;

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_semihosting::{debug, hprintln};
use embassy_executor::Spawner;

/// Checks that held.
static PASSED: AtomicU32 = AtomicU32::new(0);
/// Checks that did not.
static FAILED: AtomicU32 = AtomicU32::new(0);

/// Record one check; a failure is printed with its name right away.
pub fn check(name: &str, ok: bool) {
    if ok {
        PASSED.fetch_add(1, Ordering::Relaxed);
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
        hprintln!("FAILED: {}", name);
    }
    defmt::info!("{=str}: {=bool}", name, ok);
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let Some(p) = cortex_m::Peripherals::take() else {
        finish();
    };
    time_driver::init(p.SYST);
    #[cfg(feature = "scenarios")]
    scenarios::run(spawner).await;
    #[cfg(all(feature = "probe", not(feature = "scenarios")))]
    probe::run(spawner).await;
    #[cfg(not(any(feature = "scenarios", feature = "probe")))]
    {
        let _ = spawner;
        embassy_time::Timer::after_millis(1).await;
    }
    finish();
}

fn finish() -> ! {
    let (passed, failed) = (
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
    );
    hprintln!("{} passed, {} failed", passed, failed);
    debug::exit(if failed == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
