//! Scenario firmware for jobstate on a Cortex-M3 under QEMU (`lm3s6965evb`); the same firmware
//! builds for a Cortex-M0 (`thumbv6m-none-eabi`, see `.cargo/config.toml` and `build.rs`).
//!
//! Runs the scenarios of `scenarios.rs` as embassy tasks sharing `jobstate` tables, prints the
//! stack high-water mark and `N passed, N failed` on semihosting stdout, and exits QEMU through
//! semihosting with status 0 only when every check passed. defmt frames go to
//! `target/defmt.bin` (see `logger.rs`).
//!
//! `cargo run --release` in this directory builds and runs it (the runner is QEMU).
//!
//! The runtime itself (entry, executor start, time driver, logger, result output) has no panic
//! path, so that the `no-panic` build of `calls.rs` links exactly when the core has none.
#![no_std]
#![no_main]

/// A line on semihosting stdout, through [`print`]: like `cortex_m_semihosting::hprintln!`
/// without its `RefCell`, whose borrow is a panic path.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::print(format_args!($($arg)*))
    };
}

#[cfg(all(feature = "calls", not(any(feature = "scenarios", feature = "probe"))))]
mod calls;
#[cfg(feature = "scenarios")]
mod hostfile;
mod logger;
#[cfg(all(feature = "probe", not(feature = "scenarios")))]
mod probe;
#[cfg(feature = "scenarios")]
mod scenarios;
pub mod stack;
mod time_driver;

use core::cell::Cell;
use core::fmt::{self, Write};

use cortex_m_semihosting::debug;
use cortex_m_semihosting::hio::{self, HostStream};
use critical_section::Mutex;
use embassy_executor::{Executor, Spawner};

/// Checks that held and checks that did not. A critical section rather than atomic read-modify-
/// write, which thumbv6m (Cortex-M0) lacks.
static COUNTS: Mutex<Cell<(u32, u32)>> = Mutex::new(Cell::new((0, 0)));

/// Record one check; a failure is printed with its name right away.
pub fn check(name: &str, ok: bool) {
    critical_section::with(|cs| {
        let counts = COUNTS.borrow(cs);
        let (passed, failed) = counts.get();
        counts.set(if ok {
            (passed.wrapping_add(1), failed)
        } else {
            (passed, failed.wrapping_add(1))
        });
    });
    if !ok {
        println!("FAILED: {}", name);
    }
    defmt::info!("{=str}: {=bool}", name, ok);
}

#[cortex_m_rt::entry]
fn entry() -> ! {
    // First, before any interrupt is enabled: everything below this frame is unused yet.
    stack::paint();
    let mut executor = Executor::new();
    // SAFETY: `run` never returns, so `executor` lives on this frame for the rest of the
    // program and is never moved or borrowed again (what `#[embassy_executor::main]` does).
    let executor: &'static mut Executor = unsafe { &mut *core::ptr::addr_of_mut!(executor) };
    // Spawned by hand rather than through `#[embassy_executor::main]`, whose `unwrap` is a
    // panic path.
    executor.run(|spawner| match main_task(spawner) {
        Ok(token) => spawner.spawn(token),
        Err(_) => fatal("spawn main task"),
    })
}

/// Never returns, so its state machine has no "resumed after completion" panic.
#[embassy_executor::task]
#[cfg_attr(
    all(feature = "calls", not(any(feature = "scenarios", feature = "probe"))),
    allow(unreachable_code) // `calls::run` finishes by itself
)]
async fn main_task(spawner: Spawner) -> ! {
    let Some(p) = cortex_m::Peripherals::take() else {
        fatal("core peripherals taken");
    };
    time_driver::init(p.SYST);
    #[cfg(feature = "scenarios")]
    scenarios::run(spawner).await;
    #[cfg(all(feature = "probe", not(feature = "scenarios")))]
    probe::run(spawner).await;
    #[cfg(all(feature = "calls", not(any(feature = "scenarios", feature = "probe"))))]
    calls::run(spawner).await;
    #[cfg(not(any(feature = "scenarios", feature = "probe", feature = "calls")))]
    {
        let _ = spawner;
        embassy_time::Timer::after_millis(1).await;
    }
    finish()
}

/// Print the stack high-water mark and the result line, and exit QEMU (status 0 only when
/// every check passed).
pub fn finish() -> ! {
    let (passed, failed) = critical_section::with(|cs| COUNTS.borrow(cs).get());
    println!(
        "stack: high-water {} B of {} B",
        stack::high_water(),
        stack::size()
    );
    println!("{} passed, {} failed", passed, failed);
    exit(failed == 0)
}

/// Semihosting stdout, opened on first use.
static STDOUT: Mutex<Cell<Option<HostStream>>> = Mutex::new(Cell::new(None));

/// Write one line to semihosting stdout (see [`println!`]); nothing if the host has none.
pub fn print(args: fmt::Arguments<'_>) {
    critical_section::with(|cs| {
        let cell = STDOUT.borrow(cs);
        let out = cell.get().or_else(|| hio::hstdout().ok());
        cell.set(out);
        if let Some(mut out) = out {
            let _ = out.write_fmt(args);
            let _ = out.write_str("\n");
        }
    });
}

/// An error the firmware cannot go on from, without a panic path: print `fatal: <what>` and
/// exit QEMU with a failure.
pub fn fatal(what: &str) -> ! {
    println!("fatal: {}", what);
    exit(false)
}

fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(not(feature = "no-panic"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {}", info);
    exit(false)
}

/// The `no-panic` build: a panic handler that calls a function defined nowhere. A panic path
/// that survives optimisation keeps this handler, and so this call, in the program: the link
/// fails with "undefined symbol: jobstate_firmware_panic_path_survived_optimisation".
/// `scripts/panic-paths` names the sources (on the same build with the ordinary handler).
#[cfg(feature = "no-panic")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    extern "C" {
        fn jobstate_firmware_panic_path_survived_optimisation() -> !;
    }
    // SAFETY: never runs: the symbol is undefined, so a program that could call it does not link.
    unsafe { jobstate_firmware_panic_path_survived_optimisation() }
}
