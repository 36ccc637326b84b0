#!/usr/bin/env bash
# appliance: Oracle's Python SDK (PyPI `oci`), its NetworkLoadBalancerClient unchanged, pointed at
# the appliance with `service_endpoint` and a throwaway signing key: a change answered with
# `opc-work-request-id`, get_work_request, oci.wait_until, list_call_get_all_results over
# opc-next-page, the errors and logs sub-resources served from the journal, a cancel seen
# CANCELING then CANCELED, opc-retry-token idempotency (scripts/ci/oci/client.py).
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v python3 >/dev/null 2>&1 || { apt-get update && apt-get install -y python3 python3-venv; }
venv=target/ci-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { apt-get update && apt-get install -y python3-venv && python3 -m venv "$venv"; }
fi
echo "== oci: pip install oci"
timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check oci

echo "== oci: build the appliance"
timeout 900 cargo build -p appliance

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -n 60 "$work/log" 2>/dev/null || true; exit 1; }

# Steps of 700 ms: a cancel stays CANCELING until the worker's next checkpoint, within one step
# (the client accepts CANCELED too when the job's log shows the cancel before the failure).
RUST_LOG=info target/debug/appliance --ephemeral --listen 127.0.0.1:0 --step-ms 700 >"$work/log" 2>&1 &
pid=$!
addr=""
for _ in $(seq 1 300); do
  addr=$(grep listening "$work/log" | sed -n 's/.*addr=\([0-9.]*:[0-9]*\).*/\1/p' | head -n1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || fail "the appliance did not start"
echo "== oci: appliance on http://$addr/20200501"

timeout 300 "$venv/bin/python" scripts/ci/oci/client.py "http://$addr/20200501" || fail "oci client"

kill -TERM "$pid"
wait "$pid" || fail "exit status $?"
pid=""
echo "== oci: passed"
