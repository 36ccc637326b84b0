//! Prints the memory a table takes: `cargo run -p jobstate --example size`.
//!
//! All of a table's memory is inside the value, so `size_of` is the whole cost. The spec type
//! here is `u32`; a bigger spec adds its size to every slot.

use core::mem::size_of;

use jobstate::{Job, JobTable};

fn row<const N: usize, const T: usize, const D: usize, const J: usize>() {
    let total = size_of::<JobTable<u32, N, T, D, J>>();
    let empty = size_of::<JobTable<u32, 0, T, D, J>>();
    let per_slot = (total - empty) / N.max(1);
    println!(
        "| {N:>5} | {T:>4} | {D} | {J:>3} | {total:>8} | {per_slot:>5} | {empty:>6} | {:>4} |",
        size_of::<Job<u32, T, D>>()
    );
}

fn main() {
    println!("| N (jobs) | T (text) | D (deps) | J (journal) | table bytes | bytes/slot | fixed bytes | Job bytes |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    row::<16, 64, 4, 64>();
    row::<64, 64, 4, 64>();
    row::<16, 32, 4, 64>();
    row::<64, 32, 4, 64>();
    row::<16, 128, 4, 64>();
    row::<64, 128, 4, 64>();
    row::<16, 32, 4, 16>();
    row::<4096, 64, 4, 64>();
}
