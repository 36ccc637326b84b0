#!/usr/bin/env bash
# jobstate-std under Miri: the adapter's unit tests, doctests and its wait, timer and worker
# tests (threads, condition variables, the registry, async waits under a plain executor).
# Skipped, with reasons (also in docs/std-adapter.md): stress.rs, async_waiters.rs and
# async_memory.rs (20,000 jobs / 10,000 waiters: far too slow interpreted; async_memory also
# replaces the global allocator), the tokio test in wait.rs (Miri has no epoll), loom.rs
# (a loom build). Isolation is off because the engine reads the wall clock (SystemTime) and
# the timer tests need real time to pass.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== jobstate-std: Miri"
if ! rustup toolchain install nightly --profile minimal --component miri,rust-src >/dev/null 2>&1; then
    echo "== jobstate-std: Miri SKIPPED: could not install the nightly toolchain with miri"
    exit 0
fi
export CARGO_TARGET_DIR=target/miri
export MIRIFLAGS="-Zmiri-disable-isolation"
timeout 600 cargo +nightly miri setup
timeout 1200 cargo +nightly miri test -p jobstate-std --doc
timeout 1200 cargo +nightly miri test -p jobstate-std --lib --test wait --test timers --test worker -- --skip tokio
echo "== jobstate-std: Miri passed"
