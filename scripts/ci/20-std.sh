#!/usr/bin/env bash
# jobstate-std: the loom models — the wait protocol (register-wait / notify / timeout /
# deregister, blocking and async), the timer path (the timer round's job timers and wait
# deadlines, the timer thread's sleep and wake-up) and the worker pool's parking in
# `checkpoint` (resume, cancel, shutdown). `--cfg loom` swaps the engine's lock, condition
# variables, Arc, atomics and threads for loom's, which then explores every interleaving; a
# separate target dir keeps the cfg'd build from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== jobstate-std: loom models (no lost wake-up, timeout vs notify, timer thread, pool parking)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    timeout 1500 cargo test -p jobstate-std --test loom --release
echo "== jobstate-std: loom models passed"
