#!/usr/bin/env bash
# The core with the features `cargo test --workspace` leaves off: retries (R-RETRY), the
# crash property test with the A/B store (R-DURABLE), idempotency keys (R-IDEMPOTENT) and the
# size budget of the slot record with retries. The embassy shared table is tested in
# 30-firmware.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== core: every test with persist + retry + serde"
cargo test -p jobstate --features persist,retry,serde
echo "== core: crash property test, longer run"
JOBSTATE_CRASH_CASES="${JOBSTATE_CRASH_CASES:-5000}" cargo test -p jobstate --features persist --test crash --release
