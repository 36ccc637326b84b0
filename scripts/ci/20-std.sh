#!/usr/bin/env bash
# jobstate-std: the loom model of the wait protocol (register-wait / notify / timeout /
# deregister). `--cfg loom` swaps the engine's lock, condition variables, Arc and atomics for
# loom's, which then explores every interleaving; a separate target dir keeps the cfg'd build
# from invalidating the normal one.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== jobstate-std: loom model (no lost wake-up, timeout vs notify, no wake after deregistration)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    timeout 1500 cargo test -p jobstate-std --test loom --release
echo "== jobstate-std: loom model passed"
