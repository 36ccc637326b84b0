#!/usr/bin/env bash
# Firmware proof: the core's embassy shared table on the host (mock time driver), then the
# scenario firmware on a Cortex-M3 under QEMU (lm3s6965evb), then the footprint report.
# Fails if a host test or any scenario fails, or if QEMU does not exit within its bound.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
qemu_bound="${FIRMWARE_QEMU_BOUND:-120}"

echo "== firmware: tools (qemu-system-arm, thumbv7m-none-eabi)"
if ! command -v qemu-system-arm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq qemu-system-arm >/dev/null
fi
qemu-system-arm --version | head -n 1
rustup target add thumbv7m-none-eabi

echo "== firmware: host tests of the core's embassy feature (cargo test --workspace leaves it off)"
cargo test -p jobstate --features embassy --test embassy_shared
cargo test -p jobstate --features embassy --doc shared

echo "== firmware: fmt, clippy and release build (opt-level s, LTO) of firmware/"
(
    cd firmware
    cargo fmt --check
    cargo clippy --release --locked -- -D warnings
    cargo build --release --locked
)

echo "== firmware: scenarios under QEMU (bound ${qemu_bound} s)"
out="$(mktemp)"
set +e
# QEMU directly (the same command as the cargo runner in firmware/.cargo/config.toml), so the
# timeout reaches QEMU itself and not only cargo.
# defmt frames go to firmware/target/defmt.bin.
(cd firmware && timeout -k 5 "$qemu_bound" qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb \
    -nographic -semihosting-config enable=on,target=native \
    -kernel target/thumbv7m-none-eabi/release/jobstate-firmware) | tee "$out"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 124 ]; then
    echo "FAIL: QEMU did not exit within ${qemu_bound} s" >&2
    exit 1
fi
result="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)"
rm -f "$out"
if [ -z "$result" ]; then
    echo "FAIL: the firmware printed no result line (exit status $rc)" >&2
    exit 1
fi
failed="$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed$/\1/' <<<"$result")"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
    echo "FAIL: firmware scenarios: $result (QEMU exit status $rc)" >&2
    exit 1
fi
echo "firmware scenarios: $result (QEMU exit status 0)"

echo "== firmware: footprint"
scripts/footprint
