#!/usr/bin/env bash
# R-DURABLE end to end: the release appliance under load from a client that records every
# acknowledgement; kill -9 at random moments; restart on the same --data-dir; after every
# restart every acknowledged job is found, consistent with what the client saw, no UUID names
# two jobs, and a long-poll from a pre-crash revision answers at once. Retention is 10 s, so the
# table (1,024 jobs) keeps room and every round acknowledges new jobs. Every job acknowledged
# since the last verify must be there; one an earlier verify found may since have ended and
# left the table: it answers with its tombstone, or with the 404 that says it ended (no longer
# kept, or its id is from before a restart) — never as a job it was not.
#   CRASH_KILLS (default 50) kills; CRASH_SEED for a reproducible run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
kills="${CRASH_KILLS:-50}"
seed="${CRASH_SEED:-$RANDOM}"
RANDOM=$seed
echo "== crash: ${kills} kills of the appliance under load (seed ${seed})"
cargo build --release -q -p appliance
bin="$root/target/release/appliance"
work="$(mktemp -d)"
trap 'kill -9 ${pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"
ledger="$work/ledger.jsonl"
: > "$ledger"

start() {
    "$bin" --listen "127.0.0.1:$port" --data-dir "$work/data" --step-ms 20 --retention 10 >"$work/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen('$base/api/cluster/jobs?max_records=1', timeout=1)" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "FAIL: the appliance exited at start"; cat "$work/log"; exit 1
        fi
        sleep 0.05
    done
    echo "FAIL: the appliance did not answer"; cat "$work/log"; exit 1
}

start
for k in $(seq 1 "$kills"); do
    python3 scripts/ci/crash_client.py load "$base" "$ledger" 5 &
    client=$!
    # Kill at a random moment 50–800 ms into the load.
    sleep "0.$(printf '%03d' $((50 + RANDOM % 750)))"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    wait "$client" || true
    start
    python3 scripts/ci/crash_client.py verify "$base" "$ledger" > "$work/verify" || {
        echo "FAIL after kill $k:"; cat "$work/verify"; exit 1
    }
    echo "kill $k: $(tail -n 1 "$work/verify")"
done
tail -n 1 "$work/verify"
echo "crash: ${kills} kills, every acknowledged job found"
