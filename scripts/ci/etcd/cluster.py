"""Three replicas of the etcd example service over HTTP, as a client sees them.

Submit on A, long-poll on B, run on C; kill -9 C mid-job; stop one etcd member; restart
everything and find every acknowledged job. Driven by scripts/ci/57-etcd.sh, which starts the
processes and passes their addresses; this file only talks HTTP (the standard library).
"""

import json
import sys
import urllib.error
import urllib.request

A, B, C = sys.argv[1:4]


acknowledged = {}


def call(addr, method, path, body=None, timeout=40):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def submit(addr, steps, step_ms, restartable=False):
    status, body = call(addr, "POST", "/api/work",
                        {"steps": steps, "step_ms": step_ms, "restartable": restartable})
    assert status == 202, (status, body)
    uuid = body["job"]["uuid"]
    acknowledged[uuid] = addr
    return uuid


def job(addr, uuid, query=""):
    status, body = call(addr, "GET", f"/api/cluster/jobs/{uuid}{query}")
    assert status == 200, (addr, uuid, status, body)
    return body


def poll_until(addr, uuid, states, timeout_s=60):
    """Long-poll (ONTAP Select Deploy style) until the job's state is one of `states`."""
    body = job(addr, uuid)
    waited = 0
    while body["state"] not in states:
        assert waited < timeout_s, (uuid, body)
        body = job(addr, uuid, f"?poll_timeout=10&revision={body['revision']}")
        waited += 1
    return body


def step(name):
    print(f"STEP {name}", flush=True)
    # The shell script acts on some steps (kills, restarts) and answers on stdin.
    line = sys.stdin.readline().strip()
    assert line == "go", line


# 1. Submit on A, long-poll on B, run on C (only C has workers).
u = submit(A, 3, 100)
done = poll_until(B, u, {"success", "failure"})
assert done["state"] == "success", done
assert job(A, u)["state"] == "success"
print("ok: submitted on A, long-polled on B, run on C")

# 2. A long-poll on B wakes on a change made through A (a cancel: at once for a queued job,
#    as a request the worker acts on at its next step for a running one).
busy = submit(A, 200, 50)
poll_until(A, busy, {"running"})
queued = submit(A, 100, 50)
seen = job(B, queued)
status, _ = call(A, "PATCH", f"/api/cluster/jobs/{queued}?action=cancel")
assert status in (200, 202), status
woken = job(B, queued, f"?poll_timeout=20&revision={seen['revision']}")
assert woken["revision"] > seen["revision"], woken
assert poll_until(B, queued, {"failure", "success"})["state"] == "failure"
print("ok: a cancel through A woke the long-poll on B")

# 3. kill -9 C mid-job: its lease expires, the running job fails (timed out: the lease); a restartable
#    one is queued again and runs once C is back.
plain = busy
restartable = submit(A, 400, 50, restartable=True)
step("kill-c")
failed = poll_until(A, plain, {"failure", "success"}, timeout_s=60)
assert failed["state"] == "failure", failed
assert "lease" in failed.get("message", ""), failed
again = job(B, restartable)
assert again["state"] in ("queued", "running"), again
print("ok: C killed mid-job: its job failed when C's lease ended; the restartable job is queued again")
step("start-c")
poll_until(A, restartable, {"running"}, timeout_s=60)
status, _ = call(B, "PATCH", f"/api/cluster/jobs/{restartable}?action=cancel")
assert status in (200, 202), status
print("ok: the restartable job runs again on the restarted C")

# 4. One etcd member stopped: quorum holds, submits and reads go on.
step("kill-member")
for _ in range(10):
    submit(B, 1, 10)
for uuid in list(acknowledged):
    job(C, uuid)
print("ok: one etcd member down: 10 submits acknowledged, every job readable")

# 5. Restart everything: every acknowledged job is found, on every replica.
step("restart-all")
for uuid in acknowledged:
    for addr in (A, B, C):
        job(addr, uuid)
print(f"ok: after a full restart all {len(acknowledged)} acknowledged jobs answer on every replica")
print("DONE", flush=True)
