//! Stack high-water mark by stack painting.
//!
//! The stack runs down from `_stack_start` (top of RAM) to `_stack_end` (the end of the
//! statics), both from cortex-m-rt's `link.x`. [`paint`] fills the unused part, below the
//! current stack pointer, with a pattern at start-up; [`high_water`] finds the lowest word that
//! no longer holds it: the deepest the stack has been. [`measure`] does the same around one
//! operation. Everything runs on the one main stack (the executor runs tasks in thread mode),
//! so interrupt frames that land during a measurement count too (SysTick: a few dozen bytes).
//!
//! A word that is used but happens to hold the pattern reads as unused: the figures can be low
//! by such words at the very bottom of the used part, which is unlikely with this pattern.

use core::cell::Cell;
use core::ptr;

use critical_section::Mutex;

/// What an unused stack word holds.
const PAINT: u32 = 0x5AA5_C33C;

extern "C" {
    /// Top of the stack (exclusive; the first push goes just below it).
    static _stack_start: u32;
    /// Bottom of the stack (inclusive): the first word after the statics.
    static _stack_end: u32;
}

/// The deepest stack use found before the last repaint by [`measure`], in bytes.
static DEEPEST: Mutex<Cell<usize>> = Mutex::new(Cell::new(0));

fn top() -> usize {
    ptr::addr_of!(_stack_start) as usize
}

fn bottom() -> usize {
    ptr::addr_of!(_stack_end) as usize
}

/// The stack pointer now.
#[inline(always)]
fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads a register, touches no memory.
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// Bytes between the bottom of the stack and the top: the room the stack has.
pub fn size() -> usize {
    top().saturating_sub(bottom())
}

/// Paint every word from the bottom of the stack up to `below` (exclusive), and never at or
/// above the stack pointer. One assembly block reads the stack pointer and paints with
/// registers only, so no frame of this function's own can lie in the painted range (the
/// compiler may place a prologue after a stack-pointer read done in Rust).
#[inline(never)]
fn paint_below(below: usize) {
    // SAFETY: writes word-aligned words in `[_stack_end, min(below, sp))`: stack memory below
    // every live frame, which nothing refers to. An interrupt taken meanwhile pushes its frame
    // below the stack pointer too, and that frame is dead again once it returns. Thumb-1
    // instructions only, so that it assembles for thumbv6m as well.
    unsafe {
        core::arch::asm!(
            "mov {end}, sp",
            "cmp {end}, {below}",
            "bls 1f",
            "mov {end}, {below}",
            "1:",
            "cmp {p}, {end}",
            "bhs 2f",
            "str {paint}, [{p}]",
            "adds {p}, #4",
            "b 1b",
            "2:",
            p = inout(reg) bottom() => _,
            end = out(reg) _,
            below = in(reg) below & !3,
            paint = in(reg) PAINT,
            options(nostack),
        );
    }
}

/// Paint the unused stack. Call once at start-up, before interrupts are enabled.
#[inline(never)]
pub fn paint() {
    paint_below(usize::MAX);
}

/// The lowest address that no longer holds the pattern (the top when all of it does).
fn lowest_used() -> usize {
    let mut p = bottom() as *const u32;
    let top = top();
    while (p as usize) < top {
        // SAFETY: word-aligned, inside the stack region; a read only.
        if unsafe { ptr::read_volatile(p) } != PAINT {
            return p as usize;
        }
        // SAFETY: stays within the stack region (checked by the loop condition).
        p = unsafe { p.add(1) };
    }
    top
}

/// The deepest the stack has been since [`paint`], in bytes from its top.
pub fn high_water() -> usize {
    let now = top().saturating_sub(lowest_used());
    critical_section::with(|cs| DEEPEST.borrow(cs).get()).max(now)
}

/// Run `f` and answer the stack it used, in bytes below the caller's stack pointer: its own
/// frames, those of everything it calls, and any interrupt taken meanwhile.
///
/// Repaints the unused stack first (the deepest use so far is kept for [`high_water`]). For a
/// scenario measuring one operation, e.g. `stack::measure(|| { table.update(...); })`.
#[inline(never)]
#[allow(dead_code)] // for the scenarios to measure one operation with
pub fn measure(f: impl FnOnce()) -> usize {
    let deepest = high_water();
    critical_section::with(|cs| DEEPEST.borrow(cs).set(deepest));
    let from = sp();
    paint_below(from);
    call(f);
    from.saturating_sub(lowest_used())
}

/// Not inlined, so `f`'s frame lies below the stack pointer `measure` read.
#[inline(never)]
fn call(f: impl FnOnce()) {
    f();
}
