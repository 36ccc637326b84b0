//! Prints the memory a table takes: `cargo run -p jobstate --example size`.
//!
//! All of a table's memory is inside the value, so `size_of` is the whole cost. The spec type
//! here is `u32`; a bigger spec adds its size to every slot. "per slot" is the difference
//! between a table of N + 64 and one of N jobs, over 64 with the pools fixed (record, spec entry, two text
//! buffers with their lengths); the pools (edges `E`, tombstones `K`) are shown apart, and the
//! default table sizes both as `N`.

use core::mem::size_of;

use jobstate::JobTable;

fn row<const N: usize, const N1: usize, const T: usize>() {
    // Pools pinned to 16 so that the slot difference is the slot alone; N1 = N + 64 spreads
    // alignment padding over 64 slots.
    let slot = (size_of::<JobTable<u32, N1, T, 64, 256, 16, 16>>()
        - size_of::<JobTable<u32, N, T, 64, 256, 16, 16>>())
        / 64;
    let default = size_of::<JobTable<u32, N, T>>();
    let record = slot - 2 * (T + 2) - 8;
    println!(
        "| {N:>5} | {T:>4} | {slot:>5} | {record:>3} | {:>5} | {default:>8} |",
        default / N
    );
}

fn main() {
    println!("| N (jobs) | T (text) | bytes/slot | record | average with pools (E = K = N) | table bytes (defaults) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    row::<16, 80, 64>();
    row::<64, 128, 64>();
    row::<16, 80, 32>();
    row::<64, 128, 128>();
    row::<4096, 4160, 64>();
}
