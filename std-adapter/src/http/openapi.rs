//! The OpenAPI 3 document of the binding, served at `/api/openapi.json`.
//!
//! Written by hand as JSON (no code generator in the dependency tree) and checked against the
//! router by the test `http_openapi`: every route is documented, every documented operation
//! answers. A service that adds its own endpoints extends the document with
//! [`add_operation`] before serving it (see the `appliance` example).

use serde_json::{json, Value};

use super::params::MAX_TIMEOUT_SECS;

/// The paths and methods the binding serves (lower-case methods, OpenAPI style).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/cluster/jobs"),
    ("get", "/api/cluster/jobs/{uuid}"),
    ("patch", "/api/cluster/jobs/{uuid}"),
    ("get", "/api/openapi.json"),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error_response"}}}
    })
}

fn fields_param() -> Value {
    json!({
        "name": "fields", "in": "query", "required": false,
        "description": "Comma-separated fields to return (`*` for all). `uuid` and `_links` are always returned; `message` is always returned for a failed job.",
        "schema": {"type": "string"}
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

/// The responses of an asynchronous operation (`202`, `200`, `400`, `503`).
pub fn async_responses() -> Value {
    json!({
        "202": {
            "description": "Accepted: the job is in the table; poll its link.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job_link_response"}}}
        },
        "200": {
            "description": "The job succeeded within `return_timeout`.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job_completed_response"}}}
        },
        "400": error_response("Malformed request, refused job, or a job that failed within `return_timeout`."),
        "503": {
            "description": "The job table is full; retry after `Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error_response"}}}
        }
    })
}

/// The binding's document.
pub fn document() -> Value {
    let uuid_param = json!({
        "name": "uuid", "in": "path", "required": true,
        "description": "The job's UUID.", "schema": {"type": "string", "format": "uuid"}
    });
    let state_enum = json!(["queued", "running", "paused", "success", "failure"]);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "jobstate jobs",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Long-running operations as job objects, in ONTAP's job dialect with ONTAP Select Deploy's long-poll parameters."
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
                         "schema": {"type": "string"}},
                        {"name": "max_records", "in": "query", "required": false,
                         "description": "Page size; `_links.next` leads to the next page.",
                         "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
                        {"name": "start", "in": "query", "required": false,
                         "description": "Paging cursor; copy it from `_links.next`.",
                         "schema": {"type": "string"}},
                        {"name": "return_records", "in": "query", "required": false,
                         "description": "`false` returns only `num_records`.",
                         "schema": {"type": "boolean"}},
                        timeout_param("return_timeout", 0, "Accepted for ONTAP clients; the list is answered at once.")
                    ],
                    "responses": {
                        "200": {"description": "A page of jobs.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job_list_response"}}}},
                        "400": error_response("Malformed parameter.")
                    }
                }
            },
            "/api/cluster/jobs/{uuid}": {
                "get": {
                    "operationId": "job_get",
                    "summary": "One job; long-polls with `poll_timeout`.",
                    "description": "Without `poll_timeout` the job is answered at once. With it, the answer waits until the job changes after `last_modified` (or after `revision`; or, with neither, after the request arrived) or for at most `poll_timeout` seconds, whichever comes first; a terminal job is answered at once. A job removed after its retention answers with the outcome its tombstone kept.",
                    "parameters": [
                        uuid_param.clone(),
                        fields_param(),
                        timeout_param("poll_timeout", 1, "Long-poll: seconds to wait for a change."),
                        {"name": "last_modified", "in": "query", "required": false,
                         "description": "Long-poll: answer once the job changed after this RFC 3339 time (the job's `last_modified`).",
                         "schema": {"type": "string", "format": "date-time"}},
                        {"name": "revision", "in": "query", "required": false,
                         "description": "Long-poll: answer once the job changed after this revision (the job's `revision`); never misses two changes within one clock tick.",
                         "schema": {"type": "integer", "minimum": 0}}
                    ],
                    "responses": {
                        "200": {"description": "The job record.",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/job"}}}},
                        "400": error_response("Malformed parameter."),
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
                        "400": error_response("Missing or malformed parameter."),
                        "404": error_response("No such job."),
                        "409": error_response("The job's state or options refuse the action.")
                    }
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "openapi_get",
                    "summary": "This document.",
                    "responses": {"200": {"description": "OpenAPI 3 document.",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}}
                }
            }
        },
        "components": {
            "schemas": {
                "href": {"type": "object", "properties": {"href": {"type": "string"}}},
                "self_link": {"type": "object", "properties": {"self": {"$ref": "#/components/schemas/href"}}},
                "job": {
                    "type": "object",
                    "required": ["uuid", "_links"],
                    "properties": {
                        "uuid": {"type": "string", "format": "uuid"},
                        "description": {"type": "string"},
                        "state": {"type": "string", "enum": state_enum},
                        "message": {"type": "string", "description": "Progress message, or the final message; never empty for a failed job."},
                        "code": {"type": "integer", "description": "Final code once ended: 0 for success."},
                        "start_time": {"type": "string", "format": "date-time"},
                        "end_time": {"type": "string", "format": "date-time"},
                        "error": {"type": "object", "description": "Present for a failed job.",
                                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                        "create_time": {"type": "string", "format": "date-time"},
                        "last_modified": {"type": "string", "format": "date-time"},
                        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
                        "revision": {"type": "integer", "minimum": 0},
                        "_links": {"$ref": "#/components/schemas/self_link"}
                    }
                },
                "job_link": {
                    "type": "object",
                    "required": ["uuid", "_links"],
                    "properties": {
                        "uuid": {"type": "string", "format": "uuid"},
                        "_links": {"$ref": "#/components/schemas/self_link"}
                    }
                },
                "job_link_response": {"type": "object", "properties": {"job": {"$ref": "#/components/schemas/job_link"}}},
                "job_completed_response": {"type": "object", "properties": {"job": {"$ref": "#/components/schemas/job"}}},
                "job_list_response": {
                    "type": "object",
                    "properties": {
                        "records": {"type": "array", "items": {"$ref": "#/components/schemas/job"}},
                        "num_records": {"type": "integer"},
                        "_links": {"type": "object", "properties": {
                            "self": {"$ref": "#/components/schemas/href"},
                            "next": {"$ref": "#/components/schemas/href"}
                        }}
                    }
                },
                "error_response": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "object", "required": ["code", "message"], "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "target": {"type": "string"}
                        }},
                        "job": {"$ref": "#/components/schemas/job_link"}
                    }
                }
            }
        }
    })
}

/// Add a service's own operation to a document (`method` lower-case, `path` in OpenAPI form,
/// `{name}` for a path segment).
pub fn add_operation(doc: &mut Value, path: &str, method: &str, operation: Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        if let Some(ops) = entry.as_object_mut() {
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
