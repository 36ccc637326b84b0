"""schemathesis hooks for the appliance run (scripts/ci/53-appliance-schemathesis.sh)."""

import schemathesis


@schemathesis.hook
def filter_body(ctx, body):
    """The demo's simulated failure: a backend in 192.0.2.0/24 (TEST-NET-1) fails its health
    check, so a request with `return_timeout` answers 400 — ONTAP's answer for a job that
    failed in time — for a body that is valid. Keep that range out of the generated bodies."""
    return not (isinstance(body, dict) and str(body.get("ip", "")).startswith("192.0.2."))


@schemathesis.hook
def filter_case(ctx, case):
    """Drop negative cases whose mutation is a missing `Authorization` header.

    The run authenticates every request (`--auth`), and schemathesis adds those credentials
    back to a case generated without the header, so such a case goes out valid and its 200
    is then reported as "invalid data accepted". Requests without credentials are checked by
    the `ignored_auth` check (and answer 401), so nothing is lost."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return True
    header = next(
        (c for loc, c in meta.components.items() if getattr(loc, "value", loc) == "header"), None
    )
    if header is None or not header.mode.is_negative:
        return True
    sent = {k.lower() for k in (case.headers or {})}
    return "authorization" in sent
