#!/usr/bin/env bash
# jobstate-std `http`: smoke run of the demo appliance (package `appliance`) over loopback
# with curl — create with return_timeout (200), create async (202) then long-poll to success,
# list, pause and cancel, a malformed parameter (400 envelope), then Ctrl-C with a long-poll
# open: the service must answer the poll, stop the workers and exit 0 within seconds. (The
# HTTP binding's own tests run in `cargo test --workspace`; the shutdown in detail, TLS and
# authentication, and the OpenAPI fuzzing have scripts of their own: 51-…, 52-…, 53-….)
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v curl >/dev/null 2>&1 || { apt-get update && apt-get install -y curl; }

echo "== http: build the appliance"
timeout 900 cargo build -p appliance

log=$(mktemp)
body=$(mktemp)
pollout=$(mktemp)
target/debug/appliance --ephemeral --listen 127.0.0.1:0 --workers 2 --step-ms 300 >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; rm -f "$log" "$body" "$pollout"; }
trap cleanup EXIT

addr=""
for _ in $(seq 1 300); do
  addr=$(grep listening "$log" | sed -n 's/.*addr=\([0-9.]*:[0-9]*\).*/\1/p' | head -n1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$log"; echo "FAIL: the appliance did not start"; exit 1; }
base="http://$addr"
echo "== http: appliance listening on $addr"

fail() { echo "FAIL: $*"; cat "$log"; exit 1; }
req() { curl -s --max-time 60 -o "$body" -w '%{http_code}' "$@"; }
uuid_of() { sed -n 's/.*"uuid":"\([0-9a-f-]*\)".*/\1/p' "$body" | head -n1; }
json='content-type: application/json'

code=$(req -X POST "$base/api/lb/backend-sets?return_timeout=30" -H "$json" -d '{"name":"web"}')
[ "$code" = 200 ] && grep -q '"state":"success"' "$body" || fail "return_timeout create: $code $(cat "$body")"
echo "ok: POST backend-sets?return_timeout=30 -> 200, job succeeded in time"

code=$(req -X POST "$base/api/lb/backend-sets/web/backends" -H "$json" -d '{"ip":"10.0.0.5","port":8080}')
[ "$code" = 202 ] || fail "async create: $code"
job=$(uuid_of)
grep -q "\"href\":\"/api/cluster/jobs/$job\"" "$body" || fail "202 without job link"
echo "ok: POST backends -> 202 with job link $job"

state=""
for _ in $(seq 1 20); do
  code=$(req "$base/api/cluster/jobs/$job?poll_timeout=30&fields=state")
  [ "$code" = 200 ] || fail "long-poll: $code"
  state=$(sed -n 's/.*"state":"\([a-z]*\)".*/\1/p' "$body")
  [ "$state" = success ] && break
done
[ "$state" = success ] || fail "job did not succeed: $state"
echo "ok: long-poll followed the job to success"

code=$(req "$base/api/cluster/jobs?state=success&max_records=1")
[ "$code" = 200 ] && grep -q '"next"' "$body" || fail "list paging: $code $(cat "$body")"
echo "ok: list with state filter and _links.next"

code=$(req -X POST "$base/api/lb/backend-sets" -H "$json" -d '{"name":"api"}')
[ "$code" = 202 ] || fail "create api: $code"
job=$(uuid_of)
code=$(req -X PATCH "$base/api/cluster/jobs/$job?action=pause&return_timeout=10&fields=state")
[ "$code" = 200 ] && grep -q '"state":"paused"' "$body" || fail "pause: $code $(cat "$body")"
code=$(req -X PATCH "$base/api/cluster/jobs/$job?action=cancel&return_timeout=10")
[ "$code" = 200 ] && grep -q '"state":"failure"' "$body" && grep -q '"message":"canceled"' "$body" \
  || fail "cancel: $code $(cat "$body")"
echo "ok: pause (paused) then cancel (failure, canceled)"

code=$(req "$base/api/cluster/jobs/$job?poll_timeout=0")
[ "$code" = 400 ] && grep -q '"target":"poll_timeout"' "$body" || fail "bad parameter: $code"
echo "ok: malformed poll_timeout -> 400 with the error envelope"

code=$(req -X POST "$base/api/lb/backend-sets" -H "$json" -d '{"name":"slow"}')
job=$(uuid_of)
curl -s --max-time 60 "$base/api/cluster/jobs/$job?poll_timeout=120&revision=999999999" >"$pollout" &
poll=$!
sleep 0.5
kill -INT "$pid"
for _ in $(seq 1 150); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then fail "still running 15 s after Ctrl-C"; fi
wait "$pid" || fail "exit status $?"
wait "$poll" || fail "open long-poll was not answered"
grep -q "\"uuid\":\"$job\"" "$pollout" || fail "open long-poll answer: $(cat "$pollout")"
grep -q "shut down cleanly" "$log" || fail "no clean shutdown"
echo "ok: Ctrl-C answered the open long-poll, stopped the workers, exit 0"
echo "== http: appliance smoke passed"
