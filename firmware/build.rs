//! Puts the board's memory layout where the linker (cortex-m-rt's `link.x`) finds it as
//! `memory.x`: `memory-microbit.x` with feature `microbit`, `memory-lm3s6965.x` otherwise.
//! No file in this directory is called `memory.x`: the linker would take it from here first.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let layout: &[u8] = if env::var_os("CARGO_FEATURE_MICROBIT").is_some() {
        include_bytes!("memory-microbit.x")
    } else {
        include_bytes!("memory-lm3s6965.x")
    };
    fs::write(out.join("memory.x"), layout).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-lm3s6965.x");
    println!("cargo:rerun-if-changed=memory-microbit.x");
    println!("cargo:rerun-if-changed=build.rs");
}
