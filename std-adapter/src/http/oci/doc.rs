//! The OCI dialect's part of the OpenAPI document (`openapi::oci`): the work-request
//! operations and schemas, and the helpers a service uses to document its own OCI calls.

use serde_json::{json, Value};

use super::{DEFAULT_LIMIT, MAX_LIMIT, STATUSES};

/// A response with OCI's error body (`oci_error`) and `opc-request-id`.
pub fn error(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {"opc-request-id": {"schema": {"type": "string"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/oci_error"}}}
    })
}

/// A response that is OCI's error body or the binding's envelope: what a refusal of the
/// service's front layers (limits, authentication) or of the OCI handler may be.
pub fn error_any(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/oci_error"},
            {"$ref": "#/components/schemas/error_response"}
        ]}}}
    })
}

/// The optional `opc-request-id` header parameter.
pub fn request_id_param() -> Value {
    json!({"name": "opc-request-id", "in": "header", "required": false,
           "description": "The client's request id, echoed back (one is made when absent).",
           "schema": {"type": "string", "pattern": "^[!-~]{1,98}$"}})
}

/// The responses of a mutating call: `202` (no body; `opc-work-request-id`, with an OpenAPI
/// link to the work request), `400`, `503`.
pub fn accepted_responses() -> Value {
    json!({
        "202": {
            "description": "Accepted: the work request (the job) is in the table; `opc-work-request-id` names it.",
            "headers": {
                "opc-work-request-id": {"required": true, "schema": {"type": "string", "format": "uuid"}},
                "opc-request-id": {"schema": {"type": "string"}}
            },
            "links": {"GetWorkRequest": {"operationId": "oci_get_work_request",
                                         "parameters": {"workRequestId": "$response.header.opc-work-request-id"}}}
        },
        "400": error("Malformed request (`InvalidParameter`): a parameter, header or body."),
        "503": {
            "description": "The job table (or its room for retry tokens) is full: `ServiceUnavailable`, retry after `Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}},
                        "opc-request-id": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/oci_error"}}}
        }
    })
}

/// Add an OCI operation: its `405` is OCI's error body; then as
/// [`crate::http::openapi::add_operation`].
pub fn add_operation(doc: &mut Value, path: &str, method: &str, mut operation: Value) {
    if operation["responses"].get("405").is_none() {
        operation["responses"]["405"] = json!({
            "description": "Method not allowed on this path (`Allow` lists the methods it serves).",
            "headers": {"Allow": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/oci_error"}}}
        });
    }
    if operation["responses"].get("default").is_none() {
        operation["responses"]["default"] = error_any("A refusal of the HTTP layer (413 body too large, 414, 431, 503 at the connection cap: the binding's envelope) or of the handler (OCI's error body).");
    }
    crate::http::openapi::add_operation(doc, path, method, operation);
}

/// The work-request operations and OCI's schemas.
pub(crate) fn document(doc: &mut Value) {
    let id = json!({"name": "workRequestId", "in": "path", "required": true,
        "description": "The work request's id: the job's UUID (the same in every dialect).",
        "schema": {"type": "string", "format": "uuid",
                   "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}});
    let compartment = json!({"name": "compartmentId", "in": "query", "required": true,
        "description": "The compartment; the work requests of another are none (an empty list; 404 for one work request's errors or logs).",
        "schema": {"type": "string", "minLength": 1}});
    let limit = json!({"name": "limit", "in": "query", "required": false,
        "description": format!("Page size (default {DEFAULT_LIMIT}); `opc-next-page` leads to the next page."),
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}});
    let list_page = json!({"name": "page", "in": "query", "required": false,
        "description": "Page token: copy it from `opc-next-page`.",
        "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{36}(\\.(z|n[0-9a-fA-F]{1,32}|t([0-9a-fA-F]{2})*))?$"}});
    let line_page = json!({"name": "page", "in": "query", "required": false,
        "description": "Page token: copy it from `opc-next-page`.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}});
    let list_ok = |schema: &str, what: &str| {
        json!({"description": what,
               "headers": {"opc-next-page": {"schema": {"type": "string"},
                                             "description": "Present when more follow: the next `page`."},
                           "opc-request-id": {"schema": {"type": "string"}}},
               "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
    };
    add_operation(
        doc,
        "/20200501/workRequests",
        "get",
        json!({"operationId": "oci_list_work_requests", "tags": ["oci"],
               "summary": "ListWorkRequests: newest first.",
               "parameters": [compartment.clone(), limit.clone(), list_page, request_id_param()],
               "responses": {"200": list_ok("oci_work_request_collection", "A page of work requests."),
                             "400": error("Malformed or unknown parameter (`InvalidParameter`).")}}),
    );
    add_operation(
        doc,
        "/20200501/workRequests/{workRequestId}",
        "get",
        json!({"operationId": "oci_get_work_request", "tags": ["oci"],
               "summary": "GetWorkRequest.",
               "parameters": [id.clone(), request_id_param()],
               "responses": {"200": {"description": "The work request.",
                                     "headers": {"opc-request-id": {"schema": {"type": "string"}}},
                                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/oci_work_request"}}}},
                             "400": error("A work request id that is not a UUID, or a parameter (`InvalidParameter`)."),
                             "404": error("No such work request (`NotAuthorizedOrNotFound`).")}}),
    );
    add_operation(
        doc,
        "/20200501/workRequests/{workRequestId}",
        "delete",
        json!({"operationId": "oci_cancel_work_request", "tags": ["oci"],
               "summary": "CancelWorkRequest: a queued one is CANCELED at once, a running one CANCELING until its worker acts.",
               "parameters": [id.clone(), request_id_param()],
               "responses": {"202": {"description": "The cancel is recorded.",
                                     "headers": {"opc-request-id": {"schema": {"type": "string"}}}},
                             "400": error("A work request id that is not a UUID, or a parameter (`InvalidParameter`)."),
                             "404": error("No such work request (`NotAuthorizedOrNotFound`)."),
                             "409": error("It already ended, or cannot be canceled (`Conflict`).")}}),
    );
    for (sub, op, schema, summary) in [
        ("errors", "oci_list_work_request_errors", "oci_work_request_error_collection",
         "ListWorkRequestErrors: a failed job's code and message (a cancel is no error), from the journal."),
        ("logs", "oci_list_work_request_logs", "oci_work_request_log_collection",
         "ListWorkRequestLogs: the job's events from the journal, oldest first."),
    ] {
        add_operation(
            doc,
            &format!("/20200501/workRequests/{{workRequestId}}/{sub}"),
            "get",
            json!({"operationId": op, "tags": ["oci"], "summary": summary,
                   "parameters": [id.clone(), compartment.clone(), limit.clone(), line_page.clone(), request_id_param()],
                   "responses": {"200": list_ok(schema, "A page of entries."),
                                 "400": error("Malformed or unknown parameter (`InvalidParameter`)."),
                                 "404": error("No such work request in this compartment (`NotAuthorizedOrNotFound`).")}}),
        );
    }
    let time = json!({"type": "string", "format": "date-time"});
    let work_request = json!({
        "type": "object",
        "required": ["id", "operationType", "status", "compartmentId", "resources", "percentComplete", "timeAccepted"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "operationType": {"type": "string"},
            "status": {"type": "string", "enum": STATUSES},
            "compartmentId": {"type": "string"},
            "resources": {"type": "array", "items": {"$ref": "#/components/schemas/oci_work_request_resource"}},
            "percentComplete": {"type": "number", "minimum": 0, "maximum": 100},
            "timeAccepted": time,
            "timeStarted": time,
            "timeFinished": time
        }
    });
    let items = |schema: Value| {
        json!({"type": "object", "required": ["items"], "additionalProperties": false,
               "properties": {"items": {"type": "array", "items": schema}}})
    };
    let schemas = &mut doc["components"]["schemas"];
    schemas["oci_error"] = json!({"type": "object", "required": ["code", "message"], "additionalProperties": false,
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}});
    schemas["oci_work_request_resource"] = json!({"type": "object",
        "required": ["entityType", "actionType", "identifier", "entityUri"], "additionalProperties": false,
        "properties": {"entityType": {"type": "string"},
                       "actionType": {"type": "string", "enum": ["CREATED", "UPDATED", "DELETED", "IN_PROGRESS", "RELATED"]},
                       "identifier": {"type": "string"}, "entityUri": {"type": "string"}}});
    schemas["oci_work_request_collection"] =
        items(json!({"$ref": "#/components/schemas/oci_work_request"}));
    schemas["oci_work_request"] = work_request;
    schemas["oci_work_request_error_collection"] = items(json!({"type": "object",
        "required": ["code", "message", "timestamp"], "additionalProperties": false,
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "timestamp": time}}));
    schemas["oci_work_request_log_collection"] = items(json!({"type": "object",
        "required": ["message", "timestamp"], "additionalProperties": false,
        "properties": {"message": {"type": "string"}, "timestamp": time}}));
}
