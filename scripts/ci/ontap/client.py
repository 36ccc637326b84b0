"""The netapp-ontap Python client (PyPI `netapp-ontap`) against the appliance over HTTPS with
basic authentication: what an ONTAP automation script does, unchanged.

    python3 client.py HOST:PORT CA_FILE ADMIN_PASSWORD VIEWER_PASSWORD
"""

import logging
import sys

from netapp_ontap import HostConnection, config, utils
from netapp_ontap.error import NetAppRestError
from netapp_ontap.resources import Job

logging.basicConfig(level=logging.INFO, format="client: %(message)s")
host, port = sys.argv[1].rsplit(":", 1)
ca, admin_pw, viewer_pw = sys.argv[2], sys.argv[3], sys.argv[4]


def connect(user, password, verify):
    """Make this the library's connection, as ONTAP scripts do (config.CONNECTION)."""
    config.CONNECTION = HostConnection(host, port=int(port), username=user, password=password,
                                       verify=verify, poll_interval=1, poll_timeout=60)
    return config.CONNECTION


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


# verify=False, as ONTAP scripts against self-signed appliances often do.
if connect("admin", admin_pw, False):
    # An asynchronous request on the appliance's own endpoint: 202 with a job link, which the
    # library's poll() follows on /api/cluster/jobs/{uuid} until the job ends.
    conn = config.CONNECTION
    resp = conn.session.post(f"{conn.origin}/api/lb/backend-sets", json={"name": "web"})
    check(resp.status_code == 202, f"POST backend-sets -> 202 ({resp.status_code})")
    uuid = resp.json()["job"]["uuid"]
    utils.poll(resp)
    job = Job(uuid=uuid)
    job.get()
    check(job.state == "success", f"poll() followed job {uuid} to {job.state}: {job.message}")
    check(job.description == "create backend set web (round_robin)", f"description {job.description!r}")

    # A failing job: the library's poll() raises with the job's message.
    resp = conn.session.post(f"{conn.origin}/api/lb/backend-sets/web/backends",
                             json={"ip": "192.0.2.1", "port": 80})
    check(resp.status_code == 202, "POST backends -> 202")
    try:
        utils.poll(resp)
        check(False, "poll() raised for the failed job")
    except NetAppRestError as e:
        check("unreachable" in str(e), f"poll() raised: {e}")
    job = Job(uuid=resp.json()["job"]["uuid"])
    job.get(fields="state,message,code,error")
    check(job.state == "failure" and job.code == 1001, f"failed job: {job.code} {job.message}")

    # The collection, with ONTAP's query syntax.
    jobs = list(Job.get_collection(fields="state,description", state="success"))
    check(len(jobs) >= 1 and all(j.state == "success" for j in jobs), f"{len(jobs)} jobs listed by state")
    check(Job.count_collection() >= 2, "count_collection")
    # count_collection sends return_records=false: the count alone, filters applied.
    check(Job.count_collection(state="success") == len(jobs), "count_collection(state=success)")

    # order_by, as the library passes it (a query parameter), both ways.
    newest = [j.uuid for j in Job.get_collection(order_by="create_time desc", fields="create_time")]
    oldest = [j.uuid for j in Job.get_collection(order_by="create_time", fields="create_time")]
    check(newest == list(reversed(oldest)) and len(newest) >= 2, f"order_by create_time desc: {newest}")
    by_code = list(Job.get_collection(order_by="code desc", state="success|failure", fields="code"))
    check(by_code[0].code == 1001, f"order_by code desc puts the failed job first ({by_code[0].code})")

    # An idempotency key on the appliance's own call: the same key and body answer the same
    # job; another body with it is refused (409, the job beside the error).
    key = {"Idempotency-Key": "client-py-1"}
    first = conn.session.post(f"{conn.origin}/api/lb/backend-sets", json={"name": "keyed"}, headers=key)
    again = conn.session.post(f"{conn.origin}/api/lb/backend-sets", json={"name": "keyed"}, headers=key)
    check(first.status_code == 202 and again.status_code == 202
          and first.json()["job"]["uuid"] == again.json()["job"]["uuid"],
          "Idempotency-Key: the same request answers the same job")
    other = conn.session.post(f"{conn.origin}/api/lb/backend-sets", json={"name": "other"}, headers=key)
    check(other.status_code == 409 and other.json()["error"]["code"] == "460781"
          and other.json()["job"]["uuid"] == first.json()["job"]["uuid"],
          f"Idempotency-Key: another request -> {other.status_code} {other.json()}")
    utils.poll(first)

    # Cancel through the library (PATCH ?action=cancel) on a queued job.
    resp = conn.session.post(f"{conn.origin}/api/lb/backend-sets", json={"name": "slow"})
    slow = Job(uuid=resp.json()["job"]["uuid"])
    resp = conn.session.post(f"{conn.origin}/api/lb/backend-sets/slow/backends",
                             json={"ip": "10.0.0.9", "port": 80})
    queued = Job(uuid=resp.json()["job"]["uuid"])
    # A pause refused while it is queued: ONTAP's 458776 (not running).
    try:
        queued.patch(action="pause", poll=False)
        check(False, "pause of a queued job refused")
    except NetAppRestError as e:
        r = e.http_err_response.http_response
        check(r.status_code == 409 and r.json()["error"]["code"] == "458776", f"pause queued -> {r.json()}")
    queued.patch(action="cancel", poll=False)
    queued.get()
    check(queued.state == "failure" and queued.message == "canceled", f"canceled: {queued.state} {queued.message}")
    # Every action on an ended job: ONTAP's 458762 (already terminal).
    for action in ("pause", "resume", "cancel"):
        try:
            queued.patch(action=action, poll=False)
            check(False, f"{action} of an ended job refused")
        except NetAppRestError as e:
            r = e.http_err_response.http_response
            check(r.status_code == 409 and r.json()["error"]["code"] == "458762",
                  f"{action} of an ended job -> {r.json()['error']}")
    # Resume of a running job: 458771 (is running).
    slow.get()
    if slow.state == "running":
        try:
            slow.patch(action="resume", poll=False)
            check(False, "resume of a running job refused")
        except NetAppRestError as e:
            r = e.http_err_response.http_response
            check(r.json()["error"]["code"] == "458771", f"resume running -> {r.json()['error']}")
    slow.get()

# Verifying the certificate against its CA file.
if connect("viewer", viewer_pw, ca):
    jobs = list(Job.get_collection())
    check(len(jobs) >= 3, f"read-only user over verified TLS lists {len(jobs)} jobs")
    conn = config.CONNECTION
    resp = conn.session.post(f"{conn.origin}/api/lb/backend-sets", json={"name": "nope"})
    check(resp.status_code == 403 and resp.json()["error"]["code"] == "460776",
          f"read-only write -> {resp.status_code} {resp.json()}")
    try:
        Job(uuid=jobs[0].uuid).patch(action="cancel", poll=False)
        check(False, "read-only PATCH refused")
    except NetAppRestError as e:
        check(e.http_err_response.http_response.status_code == 403, f"read-only PATCH -> 403 ({e})")

if connect("admin", "wrong", ca):
    try:
        list(Job.get_collection())
        check(False, "wrong password refused")
    except NetAppRestError as e:
        r = e.http_err_response.http_response
        check(r.status_code == 401 and r.headers.get("WWW-Authenticate", "").startswith("Basic"),
              f"wrong password -> 401 with WWW-Authenticate ({e})")
print("netapp-ontap client: all checks passed")
