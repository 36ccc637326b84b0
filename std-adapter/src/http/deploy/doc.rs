//! The Deploy dialect's part of the OpenAPI document.

use serde_json::{json, Value};

use super::STATES;
use crate::http::openapi::{add_operation, error_response};
use crate::http::params::MAX_TIMEOUT_SECS;

/// The Deploy operations and the job object's schema.
pub(crate) fn document(doc: &mut Value) {
    let id = json!({"name": "job_id", "in": "path", "required": true,
        "description": "The job's id: its UUID (the same in every dialect).",
        "schema": {"type": "string", "format": "uuid",
                   "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}});
    add_operation(
        doc,
        "/api/v3/jobs",
        "get",
        json!({"operationId": "deploy_job_collection_get", "tags": ["deploy"],
               "summary": "ONTAP Select Deploy: every job, oldest first.",
               "responses": {"200": {"description": "The jobs.", "content": {"application/json": {"schema": {
                   "type": "object", "required": ["records", "num_records"], "additionalProperties": false,
                   "properties": {"records": {"type": "array", "items": {"$ref": "#/components/schemas/deploy_job"}},
                                  "num_records": {"type": "integer", "minimum": 0}}}}}},
                             "400": error_response("A query parameter (this operation takes none).")}}),
    );
    add_operation(
        doc,
        "/api/v3/jobs/{job_id}",
        "get",
        json!({"operationId": "deploy_job_get", "tags": ["deploy"],
               "summary": "ONTAP Select Deploy: one job; long-poll with `poll_timeout` and `last_modified`.",
               "description": "Without `poll_timeout` the job is answered at once. With it, the answer waits until the job's state changed after `last_modified` (or, without it, after the request arrived) — progress and messages do not count — or `poll_timeout` seconds; a job that started after `last_modified`, or ended, is answered at once.",
               "parameters": [id,
                   {"name": "poll_timeout", "in": "query", "required": false,
                    "description": "Long-poll: seconds to wait for a change.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECS}},
                   {"name": "last_modified", "in": "query", "required": false,
                    "description": "Long-poll: answer once the job changed after this time (the job's `last_modified`).",
                    "schema": {"type": "string", "format": "date-time"}}],
               "responses": {"200": {"description": "The job.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/deploy_job"}}}},
                             "400": error_response("Malformed or unknown parameter, or an id that is not a UUID."),
                             "404": error_response("No such job.")}}),
    );
    let time = json!({"type": "string", "format": "date-time"});
    doc["components"]["schemas"]["deploy_job"] = json!({
        "type": "object", "required": ["id", "state", "message", "_links"], "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "description": {"type": "string"},
            "state": {"type": "string", "enum": STATES},
            "message": {"type": "string"},
            "code": {"type": "integer"},
            "percent_complete": {"type": "integer", "minimum": 0, "maximum": 100},
            "create_time": time, "start_time": time, "end_time": time, "last_modified": time,
            "_links": {"$ref": "#/components/schemas/self_link"}
        }
    });
}
