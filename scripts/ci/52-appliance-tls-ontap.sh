#!/usr/bin/env bash
# appliance: HTTPS (rustls) with basic authentication, driven by NetApp's own Python client
# library (PyPI `netapp-ontap`): a self-signed pair made with openssl, two users (admin,
# readonly) from a file, the library's job polling (poll() on the 202's job link), the job
# collection, a cancel, a read-only user's 403, a wrong password's 401 — with the
# certificate not verified (verify=False) and verified against the pair (verify=<file>). The
# log must not hold a credential.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v curl >/dev/null 2>&1 || { apt-get update && apt-get install -y curl; }
command -v openssl >/dev/null 2>&1 || { apt-get update && apt-get install -y openssl; }
command -v python3 >/dev/null 2>&1 || { apt-get update && apt-get install -y python3 python3-venv; }

venv=target/ci-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { apt-get update && apt-get install -y python3-venv && python3 -m venv "$venv"; }
fi
echo "== tls+auth: pip install netapp-ontap"
"$venv/bin/pip" install --quiet --disable-pip-version-check netapp-ontap

echo "== tls+auth: build the appliance"
timeout 900 cargo build -p appliance

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$work/log" 2>/dev/null || true; exit 1; }

# The README's recipe: a self-signed pair for localhost and 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
admin_pw="Adm1n-$RANDOM$RANDOM"
viewer_pw="V1ew-$RANDOM$RANDOM"
printf '# user:role:password\nadmin:admin:%s\nviewer:readonly:%s\n' "$admin_pw" "$viewer_pw" >"$work/users"
chmod 600 "$work/users"

RUST_LOG=debug target/debug/appliance --ephemeral --listen 127.0.0.1:0 --step-ms 200 \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" --users "$work/users" >"$work/log" 2>&1 &
pid=$!
addr=""
for _ in $(seq 1 300); do
  addr=$(grep listening "$work/log" | sed -n 's/.*addr=\([0-9.]*:[0-9]*\).*/\1/p' | head -n1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || fail "the appliance did not start"
echo "== tls+auth: appliance on https://$addr"

code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/cert.pem" "https://$addr/api/cluster/jobs")
[ "$code" = 401 ] || fail "no credentials: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/api/cluster/jobs" || true)
[ "$code" != 200 ] || fail "plain HTTP served on the TLS port"
echo "ok: 401 without credentials; no plain HTTP on the TLS port"

# requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's verify=<file>.
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE "$venv/bin/python" scripts/ci/ontap/client.py \
  "$addr" "$work/cert.pem" "$admin_pw" "$viewer_pw" || fail "netapp-ontap client"

kill -TERM "$pid"
wait "$pid" || fail "exit status $?"
pid=""
auth_admin=$(printf 'admin:%s' "$admin_pw" | base64)
for secret in "$admin_pw" "$viewer_pw" "$auth_admin"; do
  if grep -qF "$secret" "$work/log"; then fail "a credential is in the log"; fi
done
grep -q "user=\"\\?viewer" "$work/log" || grep -q "user=viewer" "$work/log" || fail "the log names no user"
echo "ok: the log names users, never a credential"
echo "== tls+auth: passed"
