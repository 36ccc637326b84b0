#!/usr/bin/env bash
# appliance: load figures with their goals, each against a baseline of the same run
# (`cargo bench -p appliance --bench load`, release build):
#   (a) job GET over TLS with basic auth and metrics >= 0.8x a plain axum handler behind the
#       same TLS server (median ratio of adjacent rounds);
#   (b) 5,000 slow connections (part of a request head, then nothing) held at once: GET
#       latency p99 <= 10 ms meanwhile, and every one closed by the server between the header
#       timeout (5 s) and 2 s after it.
# The bench prints each figure with its goal; it exits non-zero when a slow connection is not
# closed by the server in its window (a correctness property), and for missed goals only with
# --strict. On a machine busy with other work the
# ratio of (a) moves by a few hundredths between runs; the bench reports the spread.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "== load: cargo bench -p appliance --bench load"
timeout 1200 cargo bench -p appliance --bench load
echo "== load: done"
