#!/usr/bin/env bash
# Firmware proof: the core's embassy shared table on the host (mock time driver), then the
# scenario firmware on a Cortex-M3 under QEMU (lm3s6965evb) with the host check of the table
# image it writes, the no-panic link check, the same firmware on a Cortex-M0, then the
# footprint report.
# Fails if a host test or any firmware run fails, if QEMU does not exit within its bound, if
# the firmware wrote no table image, or if a panic path survives in the no-panic program.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
qemu_bound="${FIRMWARE_QEMU_BOUND:-120}"

echo "== firmware: tools (qemu-system-arm, binutils-arm-none-eabi, thumbv7m and thumbv6m targets)"
if ! command -v qemu-system-arm >/dev/null 2>&1 || ! command -v arm-none-eabi-objdump >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq qemu-system-arm binutils-arm-none-eabi >/dev/null
fi
qemu-system-arm --version | head -n 1
rustup target add thumbv7m-none-eabi thumbv6m-none-eabi

echo "== firmware: host tests of the core's embassy feature (cargo test --workspace leaves it off)"
cargo test -p jobstate --features embassy --test embassy_shared
cargo test -p jobstate --features embassy --doc shared
cargo clippy -p jobstate --features embassy --all-targets -- -D warnings

echo "== firmware: fmt, clippy and release build (opt-level s, LTO) of firmware/"
(
    cd firmware
    cargo fmt --check
    cargo clippy --release --locked -- -D warnings
    cargo clippy --release --locked --no-default-features --features calls --target-dir target/calls \
        -- -D warnings
    for probe in probe probe,probe-core probe,probe-two; do
        cargo clippy --release --locked --no-default-features --features "$probe" \
            --target-dir target/calls -- -D warnings
    done
    cargo build --release --locked
)

# run_firmware LABEL ELF QEMU-ARGS...: run ELF (relative to firmware/) under QEMU within the bound;
# passes when QEMU exits 0 and the firmware's last result line reads "N passed, 0 failed".
# QEMU directly (the same command as the cargo runners in firmware/.cargo/config.toml), so the
# timeout reaches QEMU itself and not only cargo. defmt frames go to firmware/target/defmt.bin.
run_firmware() {
    local label="$1" elf="$2" out rc result failed
    shift 2
    out="$(mktemp)"
    set +e
    (cd firmware && timeout -k 5 "$qemu_bound" qemu-system-arm "$@" -nographic \
        -semihosting-config enable=on,target=native -kernel "$elf") | tee "$out"
    rc=${PIPESTATUS[0]}
    set -e
    result="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 || true)"
    rm -f "$out"
    if [ "$rc" -eq 124 ]; then
        echo "FAIL: $label: QEMU did not exit within ${qemu_bound} s" >&2
        return 1
    fi
    if [ -z "$result" ]; then
        echo "FAIL: $label: the firmware printed no result line (exit status $rc)" >&2
        return 1
    fi
    failed="$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed$/\1/' <<<"$result")"
    if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
        echo "FAIL: $label: $result (QEMU exit status $rc)" >&2
        return 1
    fi
    echo "$label: $result (QEMU exit status 0)"
}

# check_image LABEL: the table image the scenario firmware just wrote (1 kHz ticks) decodes on
# the host (mock driver, 1 MHz) to the instants the firmware gave its jobs
# (core/tests/firmware_image.rs). The files are removed before each run, so a run that wrote
# none fails here rather than passing on an old image.
image="$root/firmware/target/fw-image.bin"
check_image() {
    if [ ! -s "$image" ] || [ ! -s "${image%.bin}.txt" ]; then
        echo "FAIL: $1: the firmware wrote no table image ($image and .txt)" >&2
        return 1
    fi
    JOBSTATE_FIRMWARE_IMAGE="$image" cargo test -q -p jobstate --features persist \
        --test firmware_image -- --nocapture
    echo "$1: table image checked on the host"
}

echo "== firmware: scenarios on a Cortex-M3 under QEMU lm3s6965evb (bound ${qemu_bound} s)"
rm -f "$image" "${image%.bin}.txt"
run_firmware "firmware scenarios (Cortex-M3)" target/thumbv7m-none-eabi/release/jobstate-firmware \
    -cpu cortex-m3 -machine lm3s6965evb
check_image "firmware scenarios (Cortex-M3)"

echo "== firmware: no panic path (src/calls.rs with a panic handler that calls an undefined function)"
# Release profile: opt-level s, fat LTO, panic=abort. The build links only if no panic path
# survives optimisation; a panic path fails CI, with its sources named by scripts/panic-paths.
log="$(mktemp)"
if (cd firmware && cargo build --release --locked --no-default-features --features calls,no-panic \
    --target-dir target/calls) >"$log" 2>&1; then
    rm -f "$log"
    echo "no-panic: PASS: the core, as src/calls.rs uses every operation (shared table, waits," \
        "checkpoint, submit_and_wait, timers), has no panic path"
else
    if ! grep -q 'undefined symbol: jobstate_firmware_panic_path_survived_optimisation' "$log"; then
        cat "$log" >&2
        rm -f "$log"
        echo "FAIL: the no-panic build failed for another reason than a panic path" >&2
        exit 1
    fi
    grep -E 'undefined symbol' "$log" | sed 's/^ *= note: *//'
    rm -f "$log"
    echo "no-panic: panic paths survive; their sources (the same program with the ordinary handler):"
    (cd firmware && cargo build --release --locked --no-default-features --features calls \
        --target-dir target/calls --quiet)
    scripts/panic-paths firmware/target/calls/thumbv7m-none-eabi/release/jobstate-firmware || true
    echo "FAIL: no-panic: a panic path survives optimisation" >&2
    exit 1
fi
# The same program runs as a test (without `no-panic`: that build only links when it passes).
(cd firmware && cargo build --release --locked --no-default-features --features calls \
    --target-dir target/calls --quiet)
run_firmware "every core operation, src/calls.rs (Cortex-M3)" \
    target/calls/thumbv7m-none-eabi/release/jobstate-firmware -cpu cortex-m3 -machine lm3s6965evb

echo "== firmware: Cortex-M0 (thumbv6m-none-eabi)"
# QEMU's one Cortex-M0 machine is the micro:bit (nRF51822: 256 KiB flash, 16 KiB RAM). The
# scenarios' statics alone take about 17 KiB (seven tables, the task futures with the A/B
# store's RAM flash), and they need about 6 KiB of stack, so they run on the LM3S6965 board
# (64 KiB RAM) with its CPU swapped for a Cortex-M0, which QEMU 7.2 accepts (-cpu on an
# M-profile board); the micro:bit runs src/calls.rs. If the scenarios come to fit the micro:bit
# (memory-microbit.x asserts 4 KiB of stack room), they run there too.
(cd firmware && cargo build --release --locked --target thumbv6m-none-eabi)
rm -f "$image" "${image%.bin}.txt"
run_firmware "firmware scenarios (Cortex-M0 on lm3s6965evb)" \
    target/thumbv6m-none-eabi/release/jobstate-firmware -cpu cortex-m0 -machine lm3s6965evb
check_image "firmware scenarios (Cortex-M0 on lm3s6965evb)"
(cd firmware && cargo build --release --locked --target thumbv6m-none-eabi --no-default-features \
    --features microbit,calls --target-dir target/microbit)
run_firmware "every core operation, src/calls.rs (Cortex-M0, micro:bit)" \
    target/microbit/thumbv6m-none-eabi/release/jobstate-firmware -machine microbit
log="$(mktemp)"
if (cd firmware && cargo build --release --locked --target thumbv6m-none-eabi --features microbit \
    --target-dir target/microbit) >"$log" 2>&1; then
    rm -f "$log"
    run_firmware "firmware scenarios (Cortex-M0, micro:bit)" \
        target/microbit/thumbv6m-none-eabi/release/jobstate-firmware -machine microbit
elif grep -qE "will not fit in region|_stack_room" "$log"; then
    rm -f "$log"
    m0=firmware/target/thumbv6m-none-eabi/release/jobstate-firmware
    statics=0
    for sec in .data .bss; do
        hex=$(readelf -SW "$m0" | awk -v s="$sec" '{ sub(/^ *\[ *[0-9]+\] /, "") } $1 == s { print $5; exit }')
        statics=$(( statics + 16#${hex:-0} ))
    done
    echo "firmware scenarios (Cortex-M0, micro:bit): do not fit its 16 KiB of RAM: statics $statics B"
    echo "  (the Cortex-M0 build above) + 4 KiB of stack room > 16384 B; they ran on lm3s6965evb instead"
else
    cat "$log" >&2
    rm -f "$log"
    echo "FAIL: the micro:bit build of the scenarios failed for another reason than its RAM" >&2
    exit 1
fi

echo "== firmware: footprint"
scripts/footprint
