//! The Unified Manager dialect's part of the OpenAPI document.

use serde_json::{json, Value};

use super::{MAX_RECORDS, STATES, STATUSES};
use crate::http::openapi::{add_operation, error_response};
use crate::http::params::MAX_TIMEOUT_SECS;

/// The Unified Manager operations and the job object's schema.
pub(crate) fn document(doc: &mut Value) {
    let key = json!({"name": "key", "in": "path", "required": true,
        "description": "The job's key: its UUID (the same in every dialect).",
        "schema": {"type": "string", "format": "uuid",
                   "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}});
    let href = json!({"$ref": "#/components/schemas/href"});
    add_operation(
        doc,
        "/api/management-server/jobs",
        "get",
        json!({"operationId": "aiqum_job_collection_get", "tags": ["aiqum"],
               "summary": "Active IQ Unified Manager: jobs, the most recent first.",
               "parameters": [
                   {"name": "max_records", "in": "query", "required": false,
                    "description": "Page size; `_links.next` leads to the next page.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RECORDS}},
                   {"name": "start", "in": "query", "required": false,
                    "description": "Paging cursor; copy it from `_links.next`.",
                    "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{36}(\\.(z|n[0-9a-fA-F]{1,32}|t([0-9a-fA-F]{2})*))?$"}}],
               "responses": {"200": {"description": "A page of jobs.", "content": {"application/json": {"schema": {
                   "type": "object", "required": ["records", "num_records", "total_records", "_links"], "additionalProperties": false,
                   "properties": {"records": {"type": "array", "items": {"$ref": "#/components/schemas/aiqum_job"}},
                                  "num_records": {"type": "integer", "minimum": 0},
                                  "total_records": {"type": "integer", "minimum": 0},
                                  "_links": {"type": "object", "required": ["self"], "additionalProperties": false,
                                             "properties": {"self": href.clone(), "next": href}}}}}}},
                             "400": error_response("Malformed or unknown parameter.")}}),
    );
    add_operation(
        doc,
        "/api/management-server/jobs/{key}",
        "get",
        json!({"operationId": "aiqum_job_get", "tags": ["aiqum"],
               "summary": "Active IQ Unified Manager: one job; long-poll with `poll_timeout` until it ends.",
               "description": "Without `poll_timeout` the job is answered at once. With it, the answer waits until the job ended (`state` NORMAL, WARNING, PARTIAL_FAILURES or ERROR), or `poll_timeout` seconds.",
               "parameters": [key,
                   {"name": "poll_timeout", "in": "query", "required": false,
                    "description": "Long-poll: seconds to wait for the job to end.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECS}}],
               "responses": {"200": {"description": "The job.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/aiqum_job"}}}},
                             "400": error_response("Malformed or unknown parameter, or a key that is not a UUID."),
                             "404": error_response("No such job.")}}),
    );
    let time = json!({"type": "string", "format": "date-time"});
    doc["components"]["schemas"]["aiqum_job"] = json!({
        "type": "object", "required": ["key", "status", "message", "_links"], "additionalProperties": false,
        "properties": {
            "key": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "state": {"type": "string", "enum": STATES, "description": "The outcome, once the job ended."},
            "status": {"type": "string", "enum": STATUSES},
            "progress_percentage": {"type": "integer", "minimum": 0, "maximum": 100},
            "message": {"type": "string"},
            "code": {"type": "integer"},
            "submit_time": time, "start_time": time, "completion_time": time,
            "_links": {"$ref": "#/components/schemas/self_link"}
        }
    });
}
