"""NetApp's netapp-ontap library against every replica of the etcd example service: a job
submitted through one replica is followed by the library's poll() through another, read with
the Job resource, listed and canceled — unchanged client code, any replica."""

import sys

from netapp_ontap import HostConnection, config, utils
from netapp_ontap.resources import Job

replicas = sys.argv[1:]


def connect(addr):
    host, port = addr.rsplit(":", 1)
    config.CONNECTION = HostConnection(host, port=int(port), scheme="http", username="u",
                                       password="p", verify=False, poll_interval=1,
                                       poll_timeout=60)
    return config.CONNECTION


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


for i, submit_on in enumerate(replicas):
    follow_on = replicas[(i + 1) % len(replicas)]
    conn = connect(submit_on)
    resp = conn.session.post(f"{conn.origin}/api/work", json={"steps": 2, "step_ms": 50})
    check(resp.status_code == 202, f"POST /api/work on {submit_on} -> 202")
    uuid = resp.json()["job"]["uuid"]
    connect(follow_on)
    # poll() follows the job link through another replica until the job ends.
    utils.poll(resp, connection=config.CONNECTION)
    job = Job(uuid=uuid)
    job.get()
    check(job.state == "success", f"poll() on {follow_on} followed {uuid} to {job.state}")
    check(any(j.uuid == uuid for j in Job.get_collection(state="success")),
          f"Job.get_collection on {follow_on} lists it")

conn = connect(replicas[0])
resp = conn.session.post(f"{conn.origin}/api/work", json={"steps": 500, "step_ms": 50})
slow = Job(uuid=resp.json()["job"]["uuid"])
connect(replicas[-1])
slow.patch(action="cancel", poll=False)
slow.get()
while slow.state not in ("success", "failure"):
    slow.get(poll_timeout=10, revision=slow.revision)  # Deploy-style long-poll parameters
check(slow.state == "failure", f"a cancel through {replicas[-1]} ended the job ({slow.state})")
