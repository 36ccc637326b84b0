"""Oracle's own Python SDK (PyPI `oci`) against the appliance: its NetworkLoadBalancerClient,
unchanged, pointed at the appliance with `service_endpoint` and a throwaway signing key (the
appliance does not verify signatures), does what an OCI automation script does with work
requests.

    python3 client.py BASE_URL
"""

import logging
import sys
import tempfile
import time

import oci
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

NLB = "ocid1.networkloadbalancer.oc1..appliance"
COMPARTMENT = "ocid1.compartment.oc1..appliance"

logging.basicConfig(level=logging.INFO, format="client: %(message)s")
base = sys.argv[1]


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


# A throwaway key and config: the SDK signs every request with it.
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                        serialization.NoEncryption())
key_file = tempfile.NamedTemporaryFile(suffix=".pem", delete=False)
key_file.write(pem)
key_file.close()
config = {
    "user": "ocid1.user.oc1..throwaway",
    "tenancy": "ocid1.tenancy.oc1..throwaway",
    "fingerprint": "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",
    "key_file": key_file.name,
    "region": "us-ashburn-1",
}
oci.config.validate_config(config)
client = oci.network_load_balancer.NetworkLoadBalancerClient(config, service_endpoint=base)
models = oci.network_load_balancer.models

# Start a change: CreateBackendSet answers 202 with opc-work-request-id.
details = models.CreateBackendSetDetails(
    name="web", policy="FIVE_TUPLE",
    health_checker=models.HealthCheckerDetails(protocol="TCP", port=80))
resp = client.create_backend_set(NLB, details)
wr_id = resp.headers["opc-work-request-id"]
check(resp.status == 202 and wr_id, f"create_backend_set -> {resp.status}, opc-work-request-id {wr_id}")

wr = client.get_work_request(wr_id).data
check(wr.id == wr_id and wr.operation_type == "CREATE_BACKENDSET"
      and wr.status in ("ACCEPTED", "IN_PROGRESS") and wr.compartment_id == COMPARTMENT,
      f"get_work_request: {wr.operation_type} {wr.status} {wr.percent_complete}%")
check(wr.resources[0].entity_type == "backendset" and wr.resources[0].identifier == "web"
      and wr.resources[0].action_type == "IN_PROGRESS", f"resources while live: {wr.resources[0]}")
check(wr.time_accepted is not None, f"timeAccepted {wr.time_accepted}")

done = oci.wait_until(client, client.get_work_request(wr_id), "status", "SUCCEEDED",
                      max_interval_seconds=1, max_wait_seconds=60).data
check(done.status == "SUCCEEDED" and done.percent_complete == 100.0 and done.time_finished is not None
      and done.resources[0].action_type == "CREATED",
      f"wait_until SUCCEEDED: {done.percent_complete}% finished {done.time_finished}")

# The same opc-retry-token for the same change: the same work request, nothing new.
keyed = models.CreateBackendSetDetails(
    name="keyed", health_checker=models.HealthCheckerDetails(protocol="TCP"))
again = client.create_backend_set(NLB, keyed, opc_retry_token="token-web")
same = client.create_backend_set(NLB, keyed, opc_retry_token="token-web")
check(again.headers["opc-work-request-id"] == same.headers["opc-work-request-id"],
      "opc-retry-token: the same request answers the same work request")
try:
    other = models.CreateBackendSetDetails(
        name="api", health_checker=models.HealthCheckerDetails(protocol="TCP"))
    client.create_backend_set(NLB, other, opc_retry_token="token-web",
                              retry_strategy=oci.retry.NoneRetryStrategy())
    check(False, "another request with the token refused")
except oci.exceptions.ServiceError as e:
    check(e.status == 409 and e.code == "Conflict", f"opc-retry-token reused for another request -> {e.status} {e.code}")

# A failing change: its error, from the journal.
backend = models.CreateBackendDetails(ip_address="192.0.2.7", port=8080)
failed_id = client.create_backend(NLB, backend, "web").headers["opc-work-request-id"]
failed = oci.wait_until(client, client.get_work_request(failed_id), "status", "FAILED",
                        max_interval_seconds=1, max_wait_seconds=60).data
check(failed.status == "FAILED" and failed.operation_type == "CREATE_BACKEND", f"failed work request: {failed.status}")
errors = client.list_work_request_errors(failed_id, COMPARTMENT).data.items
check(len(errors) == 1 and errors[0].code == "1001" and "unreachable" in errors[0].message
      and errors[0].timestamp is not None, f"list_work_request_errors: {[(e.code, e.message) for e in errors]}")
check(client.list_work_request_errors(wr_id, COMPARTMENT).data.items == [], "a succeeded one has no errors")
logs = client.list_work_request_logs(wr_id, COMPARTMENT).data.items
messages = [entry.message for entry in logs]
check(messages[0].startswith("accepted") and "queued -> running" in messages
      and "programming data plane" in messages and messages[-1] == "running -> success",
      f"list_work_request_logs: {messages}")
page = client.list_work_request_logs(wr_id, COMPARTMENT, limit=2)
check(len(page.data.items) == 2 and page.has_next_page, "logs page by limit, opc-next-page")
all_logs = oci.pagination.list_call_get_all_results(
    client.list_work_request_logs, wr_id, COMPARTMENT, limit=2).data
check([entry.message for entry in all_logs] == messages, "all log pages in order")

# A cancel: CANCELING while the worker has yet to see it, then CANCELED. The worker checks for
# a cancel between steps (700 ms here), so the status read right after the DELETE is CANCELING —
# unless that check fell between the two calls. Either answer is right when the job's log shows
# the cancel request before its failure, so the check never depends on that race. A job that
# ended before the cancel reached it (a loaded machine) is tried again, a bounded number of
# times; every wait is bounded.
def cancel_one(n):
    """Cancel a running backend addition: its id and the status right after, or None when the
    job ended first."""
    wr = client.create_backend(NLB, models.CreateBackendDetails(ip_address=f"10.0.0.{20 + n}", port=80),
                               "web").headers["opc-work-request-id"]
    deadline = time.monotonic() + 60
    status = client.get_work_request(wr).data.status
    while status == "ACCEPTED" and time.monotonic() < deadline:
        time.sleep(0.05)
        status = client.get_work_request(wr).data.status
    if status != "IN_PROGRESS":
        check(status in ("SUCCEEDED",), f"the job to cancel ran through first ({status})")
        return None
    try:
        cancel = client.base_client.call_api(resource_path="/workRequests/{workRequestId}", method="DELETE",
                                             path_params={"workRequestId": wr},
                                             header_params={"accept": "application/json"})
    except oci.exceptions.ServiceError as e:
        check(e.status == 409, f"a cancel refused only because the job ended ({e.status} {e.code})")
        return None
    check(cancel.status == 202, f"cancel (DELETE workRequests/{{id}}) -> {cancel.status}")
    return wr, client.get_work_request(wr).data.status


attempt, tries = None, 0
while attempt is None and tries < 5:
    attempt = cancel_one(tries)
    tries += 1
check(attempt is not None, "a running job to cancel, within 5 tries")
slow_id, right_after = attempt
check(right_after in ("CANCELING", "CANCELED"), f"right after the cancel: {right_after}")
canceled = oci.wait_until(client, client.get_work_request(slow_id), "status", "CANCELED",
                          max_interval_seconds=1, max_wait_seconds=60).data
check(canceled.status == "CANCELED" and canceled.time_finished is not None, f"then {canceled.status}")
events = [entry.message for entry in client.list_work_request_logs(slow_id, COMPARTMENT).data.items]
requested = events.index("cancel requested") if "cancel requested" in events else -1
failed = next((k for k, m in enumerate(events) if m.endswith("-> failure")), -1)
check(0 <= requested < failed, f"the log shows the cancel request before the failure: {events}")
check(client.list_work_request_errors(slow_id, COMPARTMENT).data.items == [], "a cancel is no error")

# Many work requests, paged: the SDK follows opc-next-page.
for n in range(5):
    client.create_backend_set(NLB, models.CreateBackendSetDetails(
        name=f"set-{n}", health_checker=models.HealthCheckerDetails(protocol="TCP")))
first = client.list_work_requests(COMPARTMENT, limit=3)
check(len(first.data.items) == 3 and first.has_next_page, "list_work_requests: a page of 3 and opc-next-page")
everything = oci.pagination.list_call_get_all_results(client.list_work_requests, COMPARTMENT, limit=3).data
ids = [w.id for w in everything]
check(len(ids) == len(set(ids)) == 8 + tries and wr_id in ids and slow_id in ids,
      f"list_call_get_all_results: {len(ids)} work requests, each once")
accepted = [w.time_accepted for w in everything]
check(accepted == sorted(accepted, reverse=True), "newest first")
check(client.list_work_requests("ocid1.compartment.oc1..other").data.items == [], "another compartment: none")

# Refusals in OCI's shape.
try:
    client.get_work_request("00000000-0000-4000-8000-000000000000",
                            retry_strategy=oci.retry.NoneRetryStrategy())
    check(False, "unknown work request refused")
except oci.exceptions.ServiceError as e:
    check(e.status == 404 and e.code == "NotAuthorizedOrNotFound", f"unknown work request -> {e.status} {e.code}")
try:
    client.delete_backend_set("ocid1.networkloadbalancer.oc1..other", "web",
                              retry_strategy=oci.retry.NoneRetryStrategy())
    check(False, "another load balancer refused")
except oci.exceptions.ServiceError as e:
    check(e.status == 404 and e.code == "NotAuthorizedOrNotFound", f"another NLB -> {e.status} {e.code}")

# What the appliance does not do is refused, never ignored: a backend's name other than
# ip:port, drain/backup/offline, if-match (no ETags).
for what, call in [
    ("a backend name other than ip:port", lambda: client.create_backend(
        NLB, models.CreateBackendDetails(ip_address="10.0.0.8", port=80, name="frontend"), "web",
        retry_strategy=oci.retry.NoneRetryStrategy())),
    ("is_drain=True", lambda: client.create_backend(
        NLB, models.CreateBackendDetails(ip_address="10.0.0.8", port=80, is_drain=True), "web",
        retry_strategy=oci.retry.NoneRetryStrategy())),
    ("if_match", lambda: client.delete_backend_set(
        NLB, "web", if_match="etag", retry_strategy=oci.retry.NoneRetryStrategy())),
]:
    try:
        call()
        check(False, f"{what} refused")
    except oci.exceptions.ServiceError as e:
        check(e.status == 400 and e.code == "InvalidParameter", f"{what} -> {e.status} {e.code}")
named = client.create_backend(NLB, models.CreateBackendDetails(ip_address="10.0.0.8", port=80,
                                                                name="10.0.0.8:80"), "web")
check(named.status == 202, "a backend named ip:port is accepted")

# And the deletion, as a work request too.
deleted = client.delete_backend_set(NLB, "web").headers["opc-work-request-id"]
gone = oci.wait_until(client, client.get_work_request(deleted), "status", "SUCCEEDED",
                      max_interval_seconds=1, max_wait_seconds=60).data
check(gone.operation_type == "DELETE_BACKENDSET" and gone.resources[0].action_type == "DELETED",
      f"delete_backend_set: {gone.operation_type} {gone.status}")
print("oci client: all checks passed")
