#!/usr/bin/env bash
# Persistence: `cargo test --workspace` already runs the round-trip, restore-policy, power-cut,
# bit-flip, arbitrary-bytes (proptest) and restart tests (the tests crate enables the `persist`
# features). This adds a short cargo-fuzz smoke of the image decoder when a nightly toolchain
# and cargo-fuzz can be had in reasonable time; otherwise it says so and the proptest
# `r_persist_arbitrary_bytes_never_panic` is the CI cover for "decoding never panics".
# A crash found by the fuzzers fails the script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
per_target="${PERSIST_FUZZ_SECONDS:-30}"

echo "== persist: no_std build of the persist feature (thumbv6m, thumbv7em)"
rustup target add thumbv6m-none-eabi thumbv7em-none-eabihf >/dev/null
cargo check -q -p jobstate --no-default-features --features persist --target thumbv6m-none-eabi
cargo check -q -p jobstate --no-default-features --features persist,defmt --target thumbv7em-none-eabihf

echo "== persist: fuzz smoke, ${per_target} s per target"
if [ "${PERSIST_SKIP_FUZZ:-0}" = "1" ]; then
    echo "skipped (PERSIST_SKIP_FUZZ=1); proptest covers decoding of arbitrary bytes"
    exit 0
fi
if ! timeout 300 rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    echo "nightly toolchain not available: skipping the fuzz smoke (proptest covers it)"
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    if ! timeout 600 cargo install cargo-fuzz --locked >/dev/null 2>&1; then
        echo "cargo-fuzz not installable in time: skipping the fuzz smoke (proptest covers it)"
        exit 0
    fi
fi
cd fuzz
cargo fmt --check
cargo +nightly fuzz build -O
for target in decode decode_operate operate_roundtrip; do
    echo "-- fuzz $target"
    cargo +nightly fuzz run "$target" -O -- -max_total_time="$per_target" -max_len=512 2>&1 \
        | grep -E '^(Done|==|SUMMARY|.*panicked)' || true
    # cargo fuzz exits non-zero on a crash; `pipefail` would hide it behind grep, so check
    # for artifacts instead.
    if compgen -G "artifacts/$target/*" >/dev/null; then
        echo "fuzz target $target found a failing input:"
        ls "artifacts/$target"
        exit 1
    fi
done
echo "persist: ok"
