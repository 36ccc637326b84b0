#!/usr/bin/env bash
# appliance: schemathesis (PyPI) against the running appliance — over HTTPS with basic
# authentication, the document it serves at /api/openapi.json, every check, and its
# examples, coverage, fuzzing and stateful phases under a bounded budget. It must report no
# failure and no error. The document must say what the service enforces, both ways: valid
# requests are accepted (positive data), invalid ones refused with a 4xx (negative data),
# every status and body as documented, 405 with `Allow` for undocumented methods, 401
# without credentials.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v openssl >/dev/null 2>&1 || { apt-get update && apt-get install -y openssl; }
command -v python3 >/dev/null 2>&1 || { apt-get update && apt-get install -y python3 python3-venv; }
venv=target/ci-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { apt-get update && apt-get install -y python3-venv && python3 -m venv "$venv"; }
fi
echo "== schemathesis: pip install schemathesis"
"$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis

echo "== schemathesis: build the appliance"
timeout 900 cargo build -p appliance

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -n 50 "$work/log" 2>/dev/null || true; exit 1; }

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
pw="Adm1n-$RANDOM$RANDOM"
printf 'admin:admin:%s\nviewer:readonly:V-%s\n' "$pw" "$RANDOM" >"$work/users"

# As deployed (a data directory: every answer leaves once its change is on disk), with fast
# jobs (5 ms steps) and a short retention (10 s), so the run's thousands of submits never fill
# the job table.
target/debug/appliance --data-dir "$work/data" --listen 127.0.0.1:0 --workers 4 --step-ms 5 --retention 10 \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --users "$work/users" >"$work/log" 2>&1 &
pid=$!
addr=""
for _ in $(seq 1 300); do
  addr=$(grep listening "$work/log" | sed -n 's/.*addr=\([0-9.]*:[0-9]*\).*/\1/p' | head -n1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || fail "the appliance did not start"

echo "== schemathesis: https://$addr/api/openapi.json"
status=0
( cd scripts/ci/schemathesis && SCHEMATHESIS_HOOKS=hooks timeout 600 "../../../$venv/bin/schemathesis" \
    --config-file schemathesis.toml run "https://$addr/api/openapi.json" \
    --tls-verify "$work/cert.pem" --auth "admin:$pw" \
    --checks all --phases examples,coverage,fuzzing,stateful \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" --max-time "${SCHEMATHESIS_SECONDS:-180}" \
    --request-timeout 15 --workers 1 --no-color ) >target/ci-schemathesis.out 2>&1 || status=$?
if [ "$status" != 0 ]; then
  cat target/ci-schemathesis.out
  fail "schemathesis exit status $status (output in target/ci-schemathesis.out)"
fi
sed -n '/SUMMARY/,$p' target/ci-schemathesis.out
# The closing line counts failures and errors; neither may appear.
last=$(grep -E "^=+ .* in [0-9.]+s =+$" target/ci-schemathesis.out | tail -n1)
case "$last" in
  *failure*|*error*) fail "schemathesis: $last" ;;
esac
kill -TERM "$pid"; wait "$pid" || fail "appliance exit status $?"; pid=""
echo "== schemathesis: passed"
