#!/usr/bin/env bash
# jobstate-std under Miri: the adapter's unit tests (registry lists, the timer wheel),
# doctests and its wait, timer, worker, panic and waker tests (threads, condition variables,
# the registry, async waits under a plain executor, the test wakers' raw vtables, panics
# contained on every path).
#
# Skipped, with reasons (also in docs/std-adapter.md):
# * the tokio tests in wait.rs (`--skip tokio`): Miri has no epoll;
# * stress.rs, async_waiters.rs, one_job.rs: 20,000 jobs, 10,000 and 100,000 waiters, and
#   tokio runtimes: far too slow interpreted, and no epoll;
# * async_memory.rs: 10,000 futures, and it replaces the global allocator to count bytes;
# * start_errors.rs: it re-runs its own binary as a child process and calls setrlimit and
#   setuid, which Miri does not provide;
# * loom.rs: a `--cfg loom` build, checked by loom instead (scripts/ci/20-std.sh);
# * http_*.rs, persist.rs, durable.rs: other features (sockets, files), covered by their own
#   scripts.
# Isolation is off because the engine reads the wall clock (SystemTime) and the timer tests
# need real time to pass.
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
timeout 2400 cargo +nightly miri test -p jobstate-std --lib \
    --test wait --test timers --test worker --test panics --test wakers -- --skip tokio
echo "== jobstate-std: Miri passed"
