#!/usr/bin/env python3
"""Crash-test client for the appliance (R-DURABLE): drive load, record every acknowledgement,
and after a restart check that every acknowledged job is still there, consistent with what was
seen, that no UUID names two jobs, and that a long-poll from a pre-crash revision answers at once.

    crash_client.py load   BASE LEDGER SECONDS   # submit and poll until killed or SECONDS pass
    crash_client.py verify BASE LEDGER           # check the ledger against the restarted service

The ledger is a JSON-lines file appended (and flushed) after every acknowledgement, so a kill of
the service at any moment leaves a ledger of exactly what the client was told.
"""
import json
import random
import sys
import time
import urllib.error
import urllib.request


def call(method, url, body=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read() or b"null")


def load(base, ledger_path, seconds):
    rnd = random.Random()
    end = time.time() + float(seconds)
    ledger = open(ledger_path, "a", buffering=1)
    n = 0
    while time.time() < end:
        n += 1
        name = "s%d-%d" % (int(time.time() * 1000) % 10**9, rnd.randrange(10**6))
        try:
            status, body = call("POST", base + "/api/lb/backend-sets", {"name": name})
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return  # the service is gone (killed): stop
        if status not in (200, 202):
            continue
        uuid = body["job"]["uuid"]
        ledger.write(json.dumps({"ack": uuid, "description": None, "name": name}) + "\n")
        # Read it back: what the client now knows of it.
        try:
            status, job = call("GET", base + "/api/cluster/jobs/" + uuid + "?fields=state,description,revision")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return
        if status == 200:
            ledger.write(json.dumps({"seen": uuid, "state": job.get("state"),
                                     "description": job.get("description"),
                                     "revision": job.get("revision")}) + "\n")


def verify(base, ledger_path):
    acks, seen, descriptions, verified = {}, {}, {}, set()
    max_revision = 0
    for line in open(ledger_path):
        line = line.strip()
        if not line:
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line cut by the kill of the client itself
        if "ack" in e:
            if e["ack"] in acks:
                fail("UUID %s acknowledged twice (for %s and %s)" % (e["ack"], acks[e["ack"]], e["name"]))
            acks[e["ack"]] = e["name"]
        elif "verified" in e:
            verified.add(e["verified"])
        elif "seen" in e:
            seen[e["seen"]] = e["state"]
            descriptions[e["seen"]] = e["description"]
            max_revision = max(max_revision, e["revision"] or 0)
    problems = 0
    removed = 0
    tombstones = 0
    present = []
    # Jobs acknowledged since the last verify first (they must all be there), then those an
    # earlier verify found: only those may since have ended and left the table.
    order = [u for u in acks if u not in verified] + [u for u in acks if u in verified]
    marks = open(ledger_path, "a", buffering=1)
    for uuid in order:
        name = acks[uuid]
        try:
            status, job = call("GET", base + "/api/cluster/jobs/" + uuid + "?fields=state,description")
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read() or b"{}").get("error", {}).get("message", "")
            except ValueError:
                message = ""
            # A job an earlier verify found, since ended and removed after its retention with
            # no tombstone left: "no longer kept", or — after a restart moved the id epoch on —
            # "from before a restart". A job never found before answering so is a loss.
            gone = "no longer kept" in message or "before a restart" in message
            if err.code == 404 and gone and uuid in verified:
                removed += 1
                continue
            print("lost: %s (%s) answers %d: %s" % (uuid, name, err.code, message))
            problems += 1
            continue
        present.append(uuid)
        if uuid not in verified:
            marks.write(json.dumps({"verified": uuid}) + "\n")
        if job.get("description") is None and job.get("state") in ("success", "failure"):
            tombstones += 1  # removed; its tombstone keeps the outcome, not the description
        elif uuid in descriptions and descriptions[uuid] != job.get("description"):
            print("UUID %s names another job: %r, was %r" % (uuid, job.get("description"), descriptions[uuid]))
            problems += 1
        before, now = seen.get(uuid), job.get("state")
        if before == "success" and now != "success":
            print("%s was success, now %s" % (uuid, now))
            problems += 1
        if before == "failure" and now != "failure":
            print("%s was failure, now %s" % (uuid, now))
            problems += 1
    # A long-poll from the newest pre-crash revision answers at once.
    if present and max_revision:
        uuid = present[-1]
        t = time.time()
        call("GET", base + "/api/cluster/jobs/%s?revision=%d&poll_timeout=30" % (uuid, max_revision), timeout=40)
        waited = time.time() - t
        if waited > 5:
            print("a long-poll from pre-crash revision %d waited %.1f s" % (max_revision, waited))
            problems += 1
    print("verified %d acknowledged jobs (%d answered by their tombstone, %d removed with none "
          "left), %d problems" % (len(acks), tombstones, removed, problems))
    if problems:
        sys.exit(1)


def fail(msg):
    print(msg)
    sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        verify(sys.argv[2], sys.argv[3])
