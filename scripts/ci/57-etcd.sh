#!/usr/bin/env bash
# Scale-out on etcd: the store's tests against a real 3-member etcd cluster, then three
# replicas of the example service over HTTP (submit on A, long-poll on B, run on C; kill -9 C
# mid-job; one etcd member stopped; everything restarted), then the benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
command -v python3 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }
etcd --version | head -n1

echo "== etcd: store tests against a 3-member cluster"
timeout 900 cargo test -p jobstate-etcd -- --include-ignored

echo "== etcd: 3 members and 3 replicas on loopback"
timeout 900 cargo build -p jobstate-etcd --example replica
work=$(mktemp -d)
declare -a etcd_pids=(0 0 0) replica_pids=(0 0 0)
cleanup() {
  for p in "${replica_pids[@]}" "${etcd_pids[@]}"; do [ "$p" != 0 ] && kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -n 20 "$work"/*.log || true; exit 1; }

ports=($(python3 -c 'import socket
s=[socket.socket() for _ in range(9)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'))
initial="m0=http://127.0.0.1:${ports[3]},m1=http://127.0.0.1:${ports[4]},m2=http://127.0.0.1:${ports[5]}"
endpoints="http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]},http://127.0.0.1:${ports[2]}"

start_member() {
  local i=$1
  etcd --name "m$i" --data-dir "$work/m$i" \
    --listen-client-urls "http://127.0.0.1:${ports[$i]}" --advertise-client-urls "http://127.0.0.1:${ports[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${ports[$((i + 3))]}" --initial-advertise-peer-urls "http://127.0.0.1:${ports[$((i + 3))]}" \
    --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token jobstate-ci \
    >>"$work/m$i.log" 2>&1 &
  etcd_pids[$i]=$!
}
healthy() {
  for _ in $(seq 1 300); do
    ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}
names=(A B C)
workers=(0 0 2)
start_replica() {
  local i=$1
  RUST_LOG=info target/debug/examples/replica --etcd "$endpoints" --listen "127.0.0.1:${ports[$((i + 6))]}" \
    --workers "${workers[$i]}" --lease-ttl-secs 2 >>"$work/${names[$i]}.log" 2>&1 &
  replica_pids[$i]=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:${ports[$((i + 6))]}/api/cluster/jobs" && return 0
    sleep 0.1
  done
  fail "replica ${names[$i]} did not start"
}
kill9() { kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

for i in 0 1 2; do start_member "$i"; done
healthy || fail "etcd cluster not healthy"
for i in 0 1 2; do start_replica "$i"; done

coproc CLIENT { python3 -u scripts/ci/etcd/cluster.py "127.0.0.1:${ports[6]}" "127.0.0.1:${ports[7]}" "127.0.0.1:${ports[8]}" 2>&1; }
client_pid=$CLIENT_PID
while IFS= read -r line <&"${CLIENT[0]}"; do
  echo "$line"
  case "$line" in
    "STEP kill-c") kill9 "${replica_pids[2]}"; replica_pids[2]=0; echo go >&"${CLIENT[1]}" ;;
    "STEP start-c") start_replica 2; echo go >&"${CLIENT[1]}" ;;
    "STEP kill-member") kill9 "${etcd_pids[0]}"; etcd_pids[0]=0; echo go >&"${CLIENT[1]}" ;;
    "STEP restart-all")
      for i in 0 1 2; do kill9 "${replica_pids[$i]}"; replica_pids[$i]=0; done
      for i in 1 2; do kill9 "${etcd_pids[$i]}"; etcd_pids[$i]=0; done
      for i in 0 1 2; do start_member "$i"; done
      healthy || fail "etcd cluster not healthy after the restart"
      for i in 0 1 2; do start_replica "$i"; done
      echo go >&"${CLIENT[1]}" ;;
    DONE) break ;;
  esac
done
wait "$client_pid" || fail "the cluster client failed"
grep -q "^DONE" <(printf '%s\n' "$line") || fail "the cluster client stopped early"
echo "== etcd: the HTTP scenario passed"

echo "== etcd: NetApp's netapp-ontap client against every replica"
venv=target/ci-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"; }
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check netapp-ontap
env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE "$venv/bin/python" scripts/ci/etcd/ontap_client.py \
  "127.0.0.1:${ports[6]}" "127.0.0.1:${ports[7]}" "127.0.0.1:${ports[8]}" || fail "netapp-ontap client"

if [ -f etcd/examples/bench.rs ]; then
  echo "== etcd: benchmark (release; figures reported against baselines of the same run)"
  timeout 900 cargo run --release -q -p jobstate-etcd --example bench
fi
echo "== etcd: passed"
