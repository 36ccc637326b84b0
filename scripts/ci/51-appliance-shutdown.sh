#!/usr/bin/env bash
# appliance: graceful shutdown on SIGTERM and on SIGINT, each with a long-poll open, a
# return_timeout wait open, a slow client dribbling a request head and an idle keep-alive
# connection. The appliance must: answer the long-poll and the wait at once with the job as
# it is, start none of the queued jobs, give the running jobs their grace (--shutdown-grace
# 2) and then fail them as interrupted, and exit 0 — within the grace plus one job step.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v curl >/dev/null 2>&1 || { apt-get update && apt-get install -y curl; }
command -v python3 >/dev/null 2>&1 || { apt-get update && apt-get install -y python3; }

echo "== shutdown: build the appliance"
timeout 900 cargo build -p appliance

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; cat "$work/log" 2>/dev/null || true; exit 1; }

run_case() {
  local sig=$1
  local log="$work/log"
  : >"$log"
  # A job step of 2 s: a set's creation takes 8 s, longer than the grace (2 s).
  target/debug/appliance --ephemeral --listen 127.0.0.1:0 --workers 2 --step-ms 2000 --shutdown-grace 2 \
    --header-timeout 30 >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  local addr=""
  for _ in $(seq 1 300); do
    addr=$(grep listening "$log" | sed -n 's/.*addr=\([0-9.]*:[0-9]*\).*/\1/p' | head -n1 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || fail "the appliance did not start"
  local base="http://$addr"
  local json='content-type: application/json'

  # Two running jobs (two workers), one queued.
  local jobs=()
  for name in one two three; do
    local out
    out=$(curl -s --max-time 10 -X POST "$base/api/lb/backend-sets" -H "$json" -d "{\"name\":\"$name\"}")
    jobs+=("$(echo "$out" | sed -n 's/.*"uuid":"\([0-9a-f-]*\)".*/\1/p')")
  done
  # Wait (by long-poll, no sleeping) until the first two run.
  for j in "${jobs[0]}" "${jobs[1]}"; do
    for _ in $(seq 1 20); do
      state=$(curl -s --max-time 30 "$base/api/cluster/jobs/$j?fields=state&poll_timeout=5" \
        | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p')
      [ "$state" = running ] && break
    done
    [ "$state" = running ] || fail "job $j did not start: $state"
  done

  # A long-poll that waits for a change that will not come before the signal.
  curl -s --max-time 60 -o "$work/poll" -w '%{http_code}' \
    "$base/api/cluster/jobs/${jobs[0]}?poll_timeout=120&revision=999999999" >"$work/poll.code" &
  local poll=$!
  # A submit that waits up to 120 s for its job (it stays queued: both workers are busy).
  curl -s --max-time 60 -o "$work/wait" -w '%{http_code}' -X POST \
    "$base/api/lb/backend-sets?return_timeout=120" -H "$json" -d '{"name":"four"}' >"$work/wait.code" &
  local wait=$!
  # A slow client dribbling a request head, and an idle keep-alive connection.
  python3 - "$addr" >"$work/slow" 2>&1 <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
slow = socket.create_connection((host, int(port)))
slow.sendall(b"GET /api/lb/backend-sets HTTP/1.1\r\nHost: x\r\n")
idle = socket.create_connection((host, int(port)))
idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
idle.recv(4096)
print("connected", flush=True)
start = time.time()
for s in (slow, idle):
    s.settimeout(60)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
print("closed after %.1f s" % (time.time() - start), flush=True)
PY
  local slow=$!
  # Both are held by the server before the signal.
  for _ in $(seq 1 100); do
    grep -q connected "$work/slow" 2>/dev/null && break
    sleep 0.1
  done
  grep -q connected "$work/slow" || fail "slow client did not connect"
  for _ in $(seq 1 100); do
    m=$(curl -s --max-time 5 "$base/metrics")
    echo "$m" | grep -q '^appliance_long_polls 1$' && break
    sleep 0.1
  done
  echo "$m" | grep -q '^appliance_long_polls 1$' || fail "the long-poll is not held"

  local t0
  t0=$(date +%s.%N)
  kill "-$sig" "$pid"
  local status=0
  wait "$pid" || status=$?
  local took
  took=$(python3 -c "import sys; print('%.2f' % ($(date +%s.%N) - $t0))")
  [ "$status" = 0 ] || fail "$sig: exit status $status"
  # Grace 2 s, then the running jobs stop within one step (2 s); 8 s allows for a slow machine.
  python3 -c "import sys; sys.exit(0 if $took < 8 else 1)" || fail "$sig: took ${took}s to exit"

  wait "$poll" || fail "$sig: the long-poll failed"
  [ "$(cat "$work/poll.code")" = 200 ] || fail "$sig: long-poll answered $(cat "$work/poll.code")"
  grep -q "\"uuid\":\"${jobs[0]}\"" "$work/poll" || fail "$sig: long-poll answer: $(cat "$work/poll")"
  grep -q '"state":"running"' "$work/poll" || fail "$sig: long-poll state: $(cat "$work/poll")"
  wait "$wait" || fail "$sig: the return_timeout wait failed"
  [ "$(cat "$work/wait.code")" = 202 ] || fail "$sig: return_timeout wait answered $(cat "$work/wait.code")"
  wait "$slow" || true

  grep -q "signal received.*$sig" "$log" || fail "$sig: not logged"
  local started
  started=$(grep -c "job started" "$log" || true)
  [ "$started" = 2 ] || fail "$sig: $started jobs started (queued ones must not start during the grace)"
  local interrupted
  interrupted=$(grep -c "job failed.*interrupted: the appliance shut down" "$log" || true)
  [ "$interrupted" = 2 ] || fail "$sig: $interrupted jobs interrupted, expected 2"
  grep -q "grace over: interrupting running jobs" "$log" || fail "$sig: no grace"
  grep -q "shut down cleanly" "$log" || fail "$sig: no clean shutdown"
  echo "ok: $sig: exit 0 after ${took}s; long-poll and return_timeout wait answered; 2 running jobs interrupted after the grace, queued ones not started; slow client: $(tail -n1 "$work/slow")"
}

run_case TERM
run_case INT
echo "== shutdown: passed"
