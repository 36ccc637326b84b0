//! The OpenAPI 3 document of the binding, served at `/api/openapi.json`.
//!
//! Written by hand as JSON (no code generator in the dependency tree) and checked against the
//! router by the test `http_openapi`: every route is documented, every documented operation
//! answers. A service that adds its own endpoints extends the document with
//! [`add_operation`] before serving it (see the `appliance` package).

use serde_json::{json, Value};

use super::params::MAX_TIMEOUT_SECS;

pub use super::oci::doc as oci;

/// The paths and methods the binding serves (lower-case methods, OpenAPI style).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/cluster/jobs"),
    ("get", "/api/cluster/jobs/{uuid}"),
    ("patch", "/api/cluster/jobs/{uuid}"),
    ("get", "/api/openapi.json"),
    ("get", "/20200501/workRequests"),
    ("get", "/20200501/workRequests/{workRequestId}"),
    ("delete", "/20200501/workRequests/{workRequestId}"),
    ("get", "/20200501/workRequests/{workRequestId}/errors"),
    ("get", "/20200501/workRequests/{workRequestId}/logs"),
    ("get", "/api/management-server/jobs"),
    ("get", "/api/management-server/jobs/{key}"),
    ("get", "/api/v3/jobs"),
    ("get", "/api/v3/jobs/{job_id}"),
];

/// A response with the error envelope.
pub fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error_response"}}}
    })
}

/// One `fields=` entry, as a regular expression (no anchors).
const FIELD: &str = r"(\*\*?|uuid|_links(\.self(\.href)?)?|description|state|message|code|start_time|end_time|error(\.code|\.message)?|create_time|last_modified|progress|revision|priority|attempt)";

/// One `order_by` field (no anchors).
const ORDER: &str = "(uuid|description|state|message|code|start_time|end_time|create_time|last_modified|progress|priority|attempt)";

/// One state name of a `state=` filter (no anchors).
const STATE: &str = "(queued|running|paused|success|failure)";

fn fields_param() -> Value {
    json!({
        "name": "fields", "in": "query", "required": false,
        "description": "Comma-separated fields to return (`*` for all). `uuid` and `_links` are always returned; `message` is always returned for a failed job.",
        "schema": {"type": "string", "pattern": format!("^ *{FIELD} *(, *{FIELD} *)*$")}
    })
}

fn timeout_param(name: &str, min: u64, description: &str) -> Value {
    json!({
        "name": name, "in": "query", "required": false, "description": description,
        "schema": {"type": "integer", "minimum": min, "maximum": MAX_TIMEOUT_SECS}
    })
}

/// The `return_timeout` query parameter of an asynchronous operation.
pub fn return_timeout_param() -> Value {
    timeout_param(
        "return_timeout",
        0,
        "Seconds to wait for the job to end before answering 202 (0, the default, answers at once). A job that ends in time answers 200 with its record, or the error envelope if it failed.",
    )
}

/// The `Idempotency-Key` header of an asynchronous operation ([`super::IdempotencyKey`]).
pub fn idempotency_key_param() -> Value {
    json!({
        "name": "Idempotency-Key", "in": "header", "required": false,
        "description": "Idempotency key (R-IDEMPOTENT): the same key for the same request, while its job is kept, answers that job again (nothing new starts); for another request it is refused with 409. Keys survive a restart.",
        "schema": {"type": "string", "pattern": "^[!-~]{1,64}$"}
    })
}

/// The responses of an asynchronous operation (`202`, `200`, `400`, `503`); the `202`
/// carries OpenAPI links to the job (`job_get`, `job_modify`), so stateful clients follow it.
pub fn async_responses() -> Value {
    json!({
        "202": {
            "description": "Accepted: the job is in the table; poll its link.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job_link_response"}}},
            "links": {
                "GetJob": {"operationId": "job_get", "parameters": {"uuid": "$response.body#/job/uuid"}},
                "ModifyJob": {"operationId": "job_modify", "parameters": {"uuid": "$response.body#/job/uuid"}},
                "GetWorkRequest": {"operationId": "oci_get_work_request", "parameters": {"workRequestId": "$response.body#/job/uuid"}},
                "GetUnifiedManagerJob": {"operationId": "aiqum_job_get", "parameters": {"key": "$response.body#/job/uuid"}},
                "GetDeployJob": {"operationId": "deploy_job_get", "parameters": {"job_id": "$response.body#/job/uuid"}}
            }
        },
        "200": {
            "description": "The job succeeded within `return_timeout`.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job_completed_response"}}},
            "links": {"GetJob": {"operationId": "job_get", "parameters": {"uuid": "$response.body#/job/uuid"}}}
        },
        "400": error_response("Malformed request, refused job, or a job that failed within `return_timeout`."),
        "503": {
            "description": "The job table is full; retry after `Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error_response"}}}
        }
    })
}

/// The refusals of a JSON request body ([`super::JsonBody`]): `413`, `415`, `422` (`400`,
/// malformed JSON, is among [`async_responses`]).
pub fn body_responses() -> Value {
    json!({
        "413": error_response("The body is larger than the service takes."),
        "415": error_response("The body is not `application/json`."),
        "422": error_response("The body is JSON but not the expected object: a missing, mistyped or unknown field.")
    })
}

/// The binding's document.
pub fn document() -> Value {
    let uuid_param = json!({
        "name": "uuid", "in": "path", "required": true,
        "description": "The job's UUID.",
        "schema": {"type": "string", "format": "uuid",
                   "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}
    });
    let state_enum = json!(["queued", "running", "paused", "success", "failure"]);
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "jobstate jobs",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Long-running operations as job objects, in ONTAP's job dialect with ONTAP Select Deploy's long-poll parameters. Every refusal carries the error envelope `{\"error\":{\"code\",\"message\",\"target\"}}`: an unknown or repeated query parameter is a 400 on every operation; a method a path does not list is a 405 (with `Allow`); an unknown path a 404."
        },
        "paths": {
            "/api/cluster/jobs": {
                "get": {
                    "operationId": "job_collection_get",
                    "summary": "List jobs, oldest first.",
                    "parameters": [
                        fields_param(),
                        {"name": "state", "in": "query", "required": false,
                         "description": "Filter by state: one state, several joined with `|`, or `!` before them to exclude.",
                         "schema": {"type": "string", "pattern": format!("^!? *{STATE} *(\\| *{STATE} *)*$")}},
                        {"name": "max_records", "in": "query", "required": false,
                         "description": "Page size; `_links.next` leads to the next page.",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 10_000}},
                        {"name": "order_by", "in": "query", "required": false,
                         "description": "Sort by one field, `asc` (the default) or `desc`; ties by create time (to the millisecond), then by job id (epoch, slot generation, slot index) — not always submit order — and reversed with `desc`. Absent values (`end_time` of a live job) sort first ascending. Paging is stable over `uuid`, `description`, `create_time` and `priority`; the other fields change as jobs run, and a job whose value changes between two pages can cross the cursor (repeated or missed).",
                         "schema": {"type": "string", "pattern": format!("^ *{ORDER} *( (asc|desc) *)?$")}},
                        {"name": "start", "in": "query", "required": false,
                         "description": "Paging cursor; copy it from `_links.next` (it belongs to the `order_by` it was made with).",
                         "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{36}(\\.(z|n[0-9a-fA-F]{1,32}|t([0-9a-fA-F]{2})*))?$"}},
                        {"name": "return_records", "in": "query", "required": false,
                         "description": "`false` returns no records, only `num_records` (and the links).",
                         "schema": {"type": "boolean"}},
                        timeout_param("return_timeout", 0, "Accepted for ONTAP clients; the list is answered at once.")
                    ],
                    "responses": {
                        "200": {"description": "A page of jobs.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job_list_response"}}}},
                        "400": error_response("Malformed or unknown parameter.")
                    }
                }
            },
            "/api/cluster/jobs/{uuid}": {
                "get": {
                    "operationId": "job_get",
                    "summary": "One job; long-polls with `poll_timeout`.",
                    "description": "Without `poll_timeout` the job is answered at once. With it, the answer waits until the job changes after `last_modified` (or after `revision`; or, with neither, after the request arrived) or for at most `poll_timeout` seconds, whichever comes first; a terminal job is answered at once. A job removed after its retention answers with the outcome its tombstone kept. With both `last_modified` and `revision`, the answer comes as soon as either says the job changed.",
                    "parameters": [
                        uuid_param.clone(),
                        fields_param(),
                        timeout_param("poll_timeout", 1, "Long-poll: seconds to wait for a change."),
                        {"name": "last_modified", "in": "query", "required": false,
                         "description": "Long-poll: answer once the job changed after this RFC 3339 time (the job's `last_modified`).",
                         "schema": {"type": "string", "format": "date-time"}},
                        {"name": "revision", "in": "query", "required": false,
                         "description": "Long-poll: answer once the job changed after this revision (the job's `revision`); never misses two changes within one clock tick.",
                         "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}}
                    ],
                    "responses": {
                        "200": {"description": "The job record.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job"}}}},
                        "400": error_response("Malformed or unknown parameter, or a UUID that is not one."),
                        "404": error_response("No such job.")
                    }
                },
                "patch": {
                    "operationId": "job_modify",
                    "summary": "Pause, resume or cancel a job.",
                    "description": "Clients request; workers act: a pause takes effect at the worker's next checkpoint, a cancel fails a queued job at once and a running or paused one at its next checkpoint.",
                    "parameters": [
                        uuid_param,
                        fields_param(),
                        {"name": "action", "in": "query", "required": true,
                         "schema": {"type": "string", "enum": ["pause", "resume", "cancel"]}},
                        timeout_param("return_timeout", 0, "Seconds to wait for the action to take effect (paused, or ended for cancel) before answering.")
                    ],
                    "responses": {
                        "200": {"description": "The request is recorded; the job record as it is now.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job"}}}},
                        "400": error_response("Missing, malformed or unknown parameter."),
                        "404": error_response("No such job."),
                        "409": error_response("The job's state or options refuse the action.")
                    }
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi_get",
                    "summary": "This document.",
                    "responses": {
                        "200": {"description": "OpenAPI 3 document.",
                                "content": {"application/json": {"schema": {"type": "object"}}}},
                        "400": error_response("A query parameter (this operation takes none).")
                    }
                }
            }
        },
        "components": {
            "schemas": {
                "href": {"type": "object", "required": ["href"], "additionalProperties": false,
                         "properties": {"href": {"type": "string"}}},
                "self_link": {"type": "object", "required": ["self"], "additionalProperties": false,
                              "properties": {"self": {"$ref": "#/components/schemas/href"}}},
                "job": {
                    "type": "object",
                    "required": ["uuid", "_links"],
                    "additionalProperties": false,
                    "properties": {
                        "uuid": {"type": "string", "format": "uuid"},
                        "description": {"type": "string"},
                        "state": {"type": "string", "enum": state_enum},
                        "message": {"type": "string", "description": "Progress message, or the final message; never empty for a failed job."},
                        "code": {"type": "integer", "description": "Final code once ended: 0 for success."},
                        "start_time": {"type": "string", "format": "date-time"},
                        "end_time": {"type": "string", "format": "date-time"},
                        "error": {"type": "object", "description": "Present for a failed job.",
                                  "required": ["code", "message"], "additionalProperties": false,
                                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                        "create_time": {"type": "string", "format": "date-time"},
                        "last_modified": {"type": "string", "format": "date-time"},
                        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                        "revision": {"type": "integer", "minimum": 0},
                        "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"],
                                     "description": "Extension: the job's priority level; runnable jobs start highest level first, oldest first within a level."},
                        "attempt": {"type": "integer", "minimum": 1, "maximum": 255,
                                    "description": "Extension: the attempt under way or last made (1 for the first; more when a retry policy re-queued the job)."},
                        "_links": {"$ref": "#/components/schemas/self_link"}
                    }
                },
                "job_link": {
                    "type": "object",
                    "required": ["uuid", "_links"],
                    "additionalProperties": false,
                    "properties": {
                        "uuid": {"type": "string", "format": "uuid"},
                        "_links": {"$ref": "#/components/schemas/self_link"}
                    }
                },
                "job_link_response": {"type": "object", "required": ["job"], "additionalProperties": false,
                                      "properties": {"job": {"$ref": "#/components/schemas/job_link"}}},
                "job_completed_response": {"type": "object", "required": ["job"], "additionalProperties": false,
                                           "properties": {"job": {"$ref": "#/components/schemas/job"}}},
                "job_list_response": {
                    "type": "object",
                    "required": ["records", "num_records", "_links"],
                    "additionalProperties": false,
                    "properties": {
                        "records": {"type": "array", "items": {"$ref": "#/components/schemas/job"}},
                        "num_records": {"type": "integer", "minimum": 0},
                        "_links": {"type": "object", "required": ["self"], "additionalProperties": false, "properties": {
                            "self": {"$ref": "#/components/schemas/href"},
                            "next": {"$ref": "#/components/schemas/href"}
                        }}
                    }
                },
                "error_response": {
                    "type": "object",
                    "required": ["error"],
                    "additionalProperties": false,
                    "properties": {
                        "error": {"type": "object", "required": ["code", "message"], "additionalProperties": false, "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "target": {"type": "string"}
                        }},
                        "job": {"$ref": "#/components/schemas/job_link"}
                    }
                }
            }
        }
    });
    oci::document(&mut doc);
    super::aiqum::doc::document(&mut doc);
    super::deploy::doc::document(&mut doc);
    complete(&mut doc);
    doc
}

/// Set the `max_records` maximum of the job list (the binding's [`super::ApiConfig`]).
pub fn set_max_records(doc: &mut Value, max: u64) {
    let params = doc
        .pointer_mut("/paths/~1api~1cluster~1jobs/get/parameters")
        .and_then(Value::as_array_mut);
    for p in params.into_iter().flatten() {
        if p["name"] == "max_records" {
            p["schema"]["maximum"] = json!(max);
        }
    }
}

/// The responses every operation can give beside its own: `405` (a method the path does not
/// list; with `Allow`) and `default` (the refusals of the HTTP layer: `413`, `414`, `431`,
/// `503` at the connection cap) — all with the error envelope. [`add_operation`] adds them.
fn common_responses() -> Value {
    json!({
        "405": {
            "description": "Method not allowed on this path (`Allow` lists the methods it serves).",
            "headers": {"Allow": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error_response"}}}
        },
        "default": error_response("A refusal of the HTTP layer: 413 body too large, 414 request target too long, 431 header fields too large, 503 at the connection cap or shutting down.")
    })
}

/// Add [`common_responses`] to every operation that lacks them.
fn complete(doc: &mut Value) {
    let common = common_responses();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for ops in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in ops.values_mut() {
            add_responses(op, &common);
        }
    }
}

/// Add `responses` (an object of status → response) to an operation, keeping those it has.
pub fn add_responses(operation: &mut Value, responses: &Value) {
    let (Some(have), Some(add)) = (
        operation
            .get_mut("responses")
            .and_then(Value::as_object_mut),
        responses.as_object(),
    ) else {
        return;
    };
    for (status, response) in add {
        have.entry(status.clone())
            .or_insert_with(|| response.clone());
    }
}

/// Declare HTTP basic authentication with two roles (the document's `securitySchemes.basic`
/// and a global `security` requirement): every operation gains `401` (no or wrong
/// credentials, with `WWW-Authenticate`), and every operation other than a `GET` gains `403`
/// (a read-only user's write).
pub fn require_basic_auth(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "basic": {"type": "http", "scheme": "basic",
                  "description": "Two roles: `readonly` (GET only) and `admin` (everything)."}
    });
    doc["security"] = json!([{"basic": []}]);
    let unauthorized = json!({"401": {
        "description": "No credentials, or wrong ones.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error_response"}}}
    }});
    let forbidden =
        json!({"403": error_response("The user's role (readonly) does not allow this method.")});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for ops in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, op) in ops.iter_mut() {
            add_responses(op, &unauthorized);
            if method != "get" {
                add_responses(op, &forbidden);
            }
        }
    }
}

/// Add a service's own operation to a document (`method` lower-case, `path` in OpenAPI form,
/// `{name}` for a path segment); it gains the `405` and `default` responses every operation
/// has.
pub fn add_operation(doc: &mut Value, path: &str, method: &str, operation: Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        if let Some(ops) = entry.as_object_mut() {
            let mut operation = operation;
            add_responses(&mut operation, &common_responses());
            ops.insert(method.to_owned(), operation);
        }
    }
}

/// Every `(method, path)` a document describes, sorted.
pub fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, ops) in paths {
            if let Some(ops) = ops.as_object() {
                for method in ops.keys() {
                    out.push((method.clone(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}
