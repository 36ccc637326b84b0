#!/usr/bin/env bash
# RTIC example: firmware-rtic/ (an RTIC 2 application around jobstate's SharedTable) is
# checked (fmt, clippy -D warnings), built in release (opt-level s, LTO) and run on a Cortex-M3
# under QEMU lm3s6965evb.
# Fails unless QEMU exits 0 within its bound and the program's last result line reads
# "N passed, 0 failed".
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root/firmware-rtic"
qemu_bound="${RTIC_QEMU_BOUND:-60}"
elf=target/thumbv7m-none-eabi/release/jobstate-rtic

echo "== rtic: tools (qemu-system-arm, thumbv7m target)"
if ! command -v qemu-system-arm >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq qemu-system-arm >/dev/null
fi
qemu-system-arm --version | head -n 1
rustup target add thumbv7m-none-eabi

echo "== rtic: fmt, clippy and release build (opt-level s, LTO) of firmware-rtic/"
cargo fmt --check
cargo clippy --release --locked -- -D warnings
cargo build --release --locked

echo "== rtic: size"
# Flash: vector table, code, read-only data and .data's initial values; static RAM: .data,
# .bss (the job table is all-zero: it lives here) and .uninit.
section_size() {
    local hex
    hex=$(readelf -SW "$elf" | awk -v s="$1" '{ sub(/^ *\[ *[0-9]+\] /, "") } $1 == s { print $5; exit }')
    echo $(( 16#${hex:-0} ))
}
flash=0
for sec in .vector_table .text .rodata .data; do flash=$(( flash + $(section_size "$sec") )); done
ram=0
for sec in .data .bss .uninit; do ram=$(( ram + $(section_size "$sec") )); done
echo "rtic: flash $flash B, static RAM $ram B (.bss $(section_size .bss) B)"

echo "== rtic: the scenario on a Cortex-M3 under QEMU lm3s6965evb (bound ${qemu_bound} s)"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
set +e
timeout -k 5 "$qemu_bound" qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" | tee "$out"
rc=${PIPESTATUS[0]}
set -e
result="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)"
if [ "$rc" -eq 124 ]; then
    echo "FAIL: rtic: QEMU did not exit within ${qemu_bound} s" >&2
    exit 1
fi
if [ -z "$result" ]; then
    echo "FAIL: rtic: the program printed no result line (QEMU exit status $rc)" >&2
    exit 1
fi
failed="$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed$/\1/' <<<"$result")"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
    echo "FAIL: rtic: $result (QEMU exit status $rc)" >&2
    exit 1
fi
echo "rtic: $result (QEMU exit status 0)"
