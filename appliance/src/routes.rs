//! The appliance's HTTP surface: its own endpoints (`/api/lb/backend-sets…`, `/`,
//! `/metrics`), the jobs binding, and the layers every request passes (request log, limits,
//! authentication, metrics), plus the OpenAPI document of all of it.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /api/lb/backend-sets` `{"name", "policy"}` | create a backend set (job) |
//! | `GET /api/lb/backend-sets`, `GET …/{name}` | the configuration |
//! | `DELETE /api/lb/backend-sets/{name}` | delete a set once its pending jobs ended (job) |
//! | `POST /api/lb/backend-sets/{name}/backends` `{"ip", "port"}` | add a backend (job) |
//! | `DELETE /api/lb/backend-sets/{name}/backends/{backend}` | remove a backend (job) |
//! | `/api/cluster/jobs…`, `/api/openapi.json` | the jobs binding ([`jobstate_std::http`]) |
//! | `/20200501/workRequests…`, `/api/management-server/jobs…`, `/api/v3/jobs…` | the same jobs in OCI's, Unified Manager's and Deploy's dialects |
//! | `/20200501/networkLoadBalancers/{id}/backendSets…` | the NLB API's calls ([`crate::oci`]) |
//! | `GET /metrics` | Prometheus text ([`crate::metrics`]) |
//! | `GET /` | links to the above |

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use jobstate::JobId;
use jobstate_std::http::{
    fallback, method_not_allowed, openapi, ApiError, ErrorCode, IdempotencyKey, JobLink, JsonBody,
    NoQuery, PathParams, ReturnTimeout,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::auth::{User, Users};
use crate::keys::KeySecret;
use crate::metrics::{self, Metrics};
use crate::model::{
    backend_address, valid_name, Accepted, BackendSet, Config, Lb, Lifecycle, Policy, Refusal,
};
use crate::Api;

/// The request limits the router enforces with the error envelope (hyper's own, larger,
/// limits behind them answer without it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body: `413`.
    pub max_body: usize,
    /// Longest request target (path and query): `414`.
    pub max_uri: usize,
    /// Most header fields: `431`.
    pub max_headers: usize,
    /// Most bytes of header fields (names, values and `: \r\n`): `431`.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 64 * 1024,
            max_uri: 8 * 1024,
            max_headers: 64,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// The state of the appliance's own handlers.
#[derive(Clone)]
pub struct App {
    /// The jobs binding.
    pub api: Api,
    /// The configuration.
    pub lb: Lb,
    /// The secret idempotency keys are derived with ([`crate::keys`]).
    pub keys: KeySecret,
}

impl App {
    /// The key the job table keeps for a request's idempotency header (R-IDEMPOTENT): scoped
    /// to the request's user and keyed with the appliance's secret ([`crate::keys`]), never the
    /// header itself.
    pub(crate) fn key(&self, caller: &Caller, header: Option<&[u8]>) -> Option<[u8; 32]> {
        self.keys.scope(caller.0.as_deref(), header)
    }
}

/// The authenticated user of a request, as the front layer found it (`None` without
/// authentication).
pub(crate) struct Caller(Option<Arc<str>>);

impl<St: Send + Sync> FromRequestParts<St> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            parts.extensions.get::<User>().map(|u| u.name.clone()),
        ))
    }
}

// ----- requests -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSet {
    name: String,
    #[serde(default, deserialize_with = "crate::oci::some")]
    policy: Option<Policy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBackend {
    ip: IpAddr,
    port: NonZeroU16,
}

/// The accepted request, or the envelope of its refusal.
pub(crate) async fn taken<A>(app: &App, r: Result<A, Refusal>) -> Result<A, ApiError> {
    match r {
        Ok(a) => Ok(a),
        Err(r) => Err(refusal(app, r).await),
    }
}

pub(crate) async fn refusal(app: &App, r: Refusal) -> ApiError {
    match r {
        Refusal::BadName(name) => ApiError::invalid(
            "name",
            format!("a backend set name is 1–32 characters of a-z, 0-9 and '-'; got {name:?}"),
        ),
        Refusal::NoSet(name) => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no backend set \"{name}\""),
        )
        .with_target(name),
        Refusal::NoBackend { set, backend } => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no backend \"{backend}\" in \"{set}\""),
        )
        .with_target(backend),
        Refusal::Conflict { target, message } => {
            ApiError::new(StatusCode::CONFLICT, ErrorCode::InvalidState, message)
                .with_target(target)
        }
        Refusal::Submit(e) => app.api.refused(e).await,
    }
}

async fn create_set(
    State(app): State<App>,
    ReturnTimeout(wait): ReturnTimeout,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<CreateSet>,
) -> Result<Response, ApiError> {
    let policy = body.policy.unwrap_or(Policy::RoundRobin);
    let accepted = taken(
        &app,
        app.lb.create_set_keyed(
            &body.name,
            policy,
            app.key(&caller, key.as_deref()).as_ref().map(|k| &k[..]),
        ),
    )
    .await?;
    info!(set = %body.name, job = %app.api.uuid_of(accepted.job), "backend set creation accepted");
    respond(&app, accepted, wait).await
}

async fn delete_set(
    State(app): State<App>,
    PathParams(name): PathParams<String>,
    ReturnTimeout(wait): ReturnTimeout,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let accepted = taken(
        &app,
        app.lb.delete_set_keyed(
            &name,
            app.key(&caller, key.as_deref()).as_ref().map(|k| &k[..]),
        ),
    )
    .await?;
    info!(set = %name, job = %app.api.uuid_of(accepted.job), "backend set deletion accepted");
    respond(&app, accepted, wait).await
}

async fn add_backend(
    State(app): State<App>,
    PathParams(set): PathParams<String>,
    ReturnTimeout(wait): ReturnTimeout,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<AddBackend>,
) -> Result<Response, ApiError> {
    if !backend_address(body.ip) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidBody,
            format!("{} is not a backend address", body.ip),
        )
        .with_target("ip"));
    }
    let addr = SocketAddr::new(body.ip, body.port.get());
    let accepted = taken(
        &app,
        app.lb.add_backend_keyed(
            &set,
            addr,
            app.key(&caller, key.as_deref()).as_ref().map(|k| &k[..]),
        ),
    )
    .await?;
    info!(%set, backend = %addr, job = %app.api.uuid_of(accepted.job), "backend addition accepted");
    respond(&app, accepted, wait).await
}

async fn remove_backend(
    State(app): State<App>,
    PathParams((set, backend)): PathParams<(String, String)>,
    ReturnTimeout(wait): ReturnTimeout,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let accepted = taken(
        &app,
        app.lb.remove_backend_keyed(
            &set,
            &backend,
            app.key(&caller, key.as_deref()).as_ref().map(|k| &k[..]),
        ),
    )
    .await?;
    info!(%set, %backend, job = %app.api.uuid_of(accepted.job), "backend removal accepted");
    respond(&app, accepted, wait).await
}

/// The answer for an accepted request: a new job is a submit, a replayed idempotency key's job
/// is answered the same but counted as a replay.
async fn respond(app: &App, accepted: Accepted, wait: Duration) -> Result<Response, ApiError> {
    if accepted.replayed {
        app.api.respond_again(accepted.job, wait).await
    } else {
        app.api.respond(accepted.job, wait).await
    }
}

// ----- the configuration as JSON -----------------------------------------------------------

#[derive(Serialize)]
struct BackendView {
    ip: IpAddr,
    port: u16,
    lifecycle: Lifecycle,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<JobLink>,
}

#[derive(Serialize)]
struct SetView {
    name: String,
    policy: Policy,
    lifecycle: Lifecycle,
    backends: BTreeMap<String, BackendView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<JobLink>,
}

fn view(app: &App, set: &BackendSet) -> SetView {
    let link = |j: Option<JobId>| j.map(|j| JobLink::new(&app.api.uuid_of(j)));
    SetView {
        name: set.name.clone(),
        policy: set.policy,
        lifecycle: set.lifecycle(),
        backends: set
            .backends
            .iter()
            .map(|(k, b)| {
                let v = BackendView {
                    ip: b.addr.ip(),
                    port: b.addr.port(),
                    lifecycle: b.lifecycle(),
                    job: link(b.job()),
                };
                (k.clone(), v)
            })
            .collect(),
        job: link(set.job()),
    }
}

async fn list_sets(State(app): State<App>, _: NoQuery) -> Response {
    let config: Config = app.lb.snapshot();
    let records: Vec<SetView> = config.sets.values().map(|s| view(&app, s)).collect();
    Json(json!({"records": records, "num_records": records.len()})).into_response()
}

async fn get_set(
    State(app): State<App>,
    PathParams(name): PathParams<String>,
    _: NoQuery,
) -> Result<Response, ApiError> {
    if !valid_name(&name) {
        return Err(refusal(&app, Refusal::BadName(name)).await);
    }
    let config = app.lb.snapshot();
    match config.sets.get(&name) {
        // Being deleted: gone for reads at once (the collection still lists it, `deleting`),
        // with the deletion job beside the error.
        Some(BackendSet {
            delete: Some(d), ..
        }) => {
            let job = app.api.uuid_of(d.job);
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("backend set \"{name}\" is being deleted (job {job})"),
            )
            .with_target(name)
            .with_job(JobLink::new(&job)))
        }
        Some(set) => Ok(Json(view(&app, set)).into_response()),
        None => Err(refusal(&app, Refusal::NoSet(name)).await),
    }
}

async fn index(_: NoQuery) -> Response {
    Json(json!({"_links": {
        "backend_sets": {"href": "/api/lb/backend-sets"},
        "jobs": {"href": "/api/cluster/jobs"},
        "work_requests": {"href": format!("/20200501/workRequests?compartmentId={}", crate::oci::COMPARTMENT)},
        "unified_manager_jobs": {"href": "/api/management-server/jobs"},
        "deploy_jobs": {"href": "/api/v3/jobs"},
        "openapi": {"href": "/api/openapi.json"},
        "metrics": {"href": "/metrics"}
    }}))
    .into_response()
}

// ----- the front layer ----------------------------------------------------------------------

/// What every request passes before its route: the limits, authentication, then — on the way
/// out — the metrics and the request log. One layer, so a request pays for one middleware.
struct Front {
    limits: Limits,
    users: Option<Users>,
    metrics: Arc<Metrics>,
}

async fn front(State(f): State<Arc<Front>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let mut user = None;
    let response = match limits(&f.limits, &req) {
        Err(refused) => *refused,
        Ok(()) => match f.users.as_ref().map(|u| u.authorize(&req)) {
            Some(Err(refused)) => *refused,
            Some(Ok(u)) => {
                let mut req = req;
                req.extensions_mut().insert(u.clone());
                user = Some(u);
                next.run(req).await
            }
            None => next.run(req).await,
        },
    };
    let status = response.status();
    f.metrics.count_request(&method, status);
    // The request log: method, path, status, time and user — never a credential. (Its
    // fields are only computed when the level is enabled.)
    let user = user.as_ref().map_or("", |u| &*u.name);
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if status.is_server_error() {
        warn!(%method, path = uri.path(), status = status.as_u16(), ms, user, "request");
    } else {
        info!(%method, path = uri.path(), status = status.as_u16(), ms, user, "request");
    }
    response
}

/// The request limits, answered with the envelope: 414, 431, 413 (by `Content-Length`; a
/// chunked body over the limit is refused by the body extractor, also 413).
fn limits(limits: &Limits, req: &Request) -> Result<(), Box<Response>> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > limits.max_uri {
        return Err(Box::new(
            ApiError::new(
                StatusCode::URI_TOO_LONG,
                ErrorCode::UriTooLong,
                format!("the request target is longer than {} bytes", limits.max_uri),
            )
            .into_response(),
        ));
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if headers.len() > limits.max_headers || bytes > limits.max_header_bytes {
        return Err(Box::new(
            ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::HeadersTooLarge,
                format!(
                    "at most {} header fields of {} bytes in all",
                    limits.max_headers, limits.max_header_bytes
                ),
            )
            .into_response(),
        ));
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > limits.max_body as u64) {
        // Answered before the body is read: the connection cannot carry another request, so
        // say so (a client that kept it would find it closed under its next request).
        let mut r = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {} bytes", limits.max_body),
        )
        .with_target("body")
        .into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Err(Box::new(r));
    }
    Ok(())
}

/// The whole router: the appliance's endpoints, the binding, `/metrics` and `/`, behind the
/// front layer (limits, authentication, metrics, request log).
pub fn router(app: App, metrics: Arc<Metrics>, users: Option<Users>, limits_: Limits) -> Router {
    let m = || method_not_allowed;
    // Only the routes that read a body carry its limit.
    let body = || DefaultBodyLimit::max(limits_.max_body);
    let front_ = Arc::new(Front {
        limits: limits_,
        users,
        metrics: metrics.clone(),
    });
    Router::new()
        .route(
            "/api/lb/backend-sets",
            post(create_set).layer(body()).get(list_sets).fallback(m()),
        )
        .route(
            "/api/lb/backend-sets/{name}",
            delete(delete_set).get(get_set).fallback(m()),
        )
        .route(
            "/api/lb/backend-sets/{name}/backends",
            post(add_backend).layer(body()).fallback(m()),
        )
        .route(
            "/api/lb/backend-sets/{name}/backends/{backend}",
            delete(remove_backend).fallback(m()),
        )
        .with_state(app.clone())
        .merge(crate::oci::router(app.clone(), limits_.max_body))
        .merge(app.api.router())
        .route(
            "/metrics",
            get(metrics::scrape)
                .fallback(m())
                .with_state((metrics, app.api.clone())),
        )
        .route("/", get(index).fallback(m()))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(front_, front))
}

// ----- the OpenAPI document ----------------------------------------------------------------

/// The served document: the binding's, the appliance's operations, `/metrics`, `/`, and —
/// with `auth` — basic authentication (`401`/`403` everywhere).
pub fn document(auth: bool) -> Value {
    let mut doc = openapi::document();
    doc["info"]["title"] = json!("jobstate appliance: a simulated load balancer");
    let err = openapi::error_response;
    let name = json!({"name": "name", "in": "path", "required": true,
        "description": "The backend set's name.", "example": "web",
        "schema": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"}});
    let backend = json!({"name": "backend", "in": "path", "required": true,
        "description": "The backend, as `ip:port` (`[ipv6]:port`), as the set's `backends` keys it.",
        "example": "10.0.0.5:8080", "schema": {"type": "string"}});
    let mut asynchronous = |path: &str,
                            method: &str,
                            id: &str,
                            summary: &str,
                            params: Vec<Value>,
                            body: Option<(Value, Value)>| {
        let mut responses = openapi::async_responses();
        responses["404"] = err("No such backend set or backend.");
        responses["409"] = err("It exists already, or is being created, changed or deleted (the message names the job); or the `Idempotency-Key` names a job of another request (code 460781, the job beside the error).");
        responses["503"]["description"] = json!("The job table, or its room for idempotency keys, is full; retry after `Retry-After` seconds.");
        let mut parameters = params;
        parameters.push(openapi::return_timeout_param());
        parameters.push(openapi::idempotency_key_param());
        let mut op = json!({"operationId": id, "summary": summary, "parameters": parameters,
                            "responses": responses});
        if let Some((schema, example)) = body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {
                "schema": schema, "example": example}}});
            openapi::add_responses(&mut op, &openapi::body_responses());
        }
        openapi::add_operation(&mut doc, path, method, op);
    };
    asynchronous(
        "/api/lb/backend-sets",
        "post",
        "backend_set_create",
        "Create a backend set (asynchronous).",
        vec![],
        Some((
            json!({"type": "object", "required": ["name"], "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"},
                "policy": {"type": "string", "enum": Policy::NAMES}}}),
            json!({"name": "web", "policy": "round_robin"}),
        )),
    );
    asynchronous(
        "/api/lb/backend-sets/{name}",
        "delete",
        "backend_set_delete",
        "Delete a backend set (asynchronous): the job waits for every pending job of the set to end.",
        vec![name.clone()],
        None,
    );
    asynchronous(
        "/api/lb/backend-sets/{name}/backends",
        "post",
        "backend_create",
        "Add a backend to a set (asynchronous; waits for the set's creation). 0.0.0.0 is not a backend address (422); a backend in 192.0.2.0/24 (TEST-NET-1) fails its health check (code 1001).",
        vec![name.clone()],
        Some((
            json!({"type": "object", "required": ["ip", "port"], "additionalProperties": false,
            "properties": {
                "ip": {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}],
                       "not": {"enum": ["0.0.0.0"]}},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535}}}),
            json!({"ip": "10.0.0.5", "port": 8080}),
        )),
    );
    asynchronous(
        "/api/lb/backend-sets/{name}/backends/{backend}",
        "delete",
        "backend_delete",
        "Remove a backend (asynchronous).",
        vec![name.clone(), backend],
        None,
    );
    let link = json!({"$ref": "#/components/schemas/job_link"});
    let lifecycle = json!({"type": "string", "enum": ["creating", "active", "deleting"]});
    doc["components"]["schemas"]["backend_set"] = json!({
        "type": "object", "required": ["name", "policy", "lifecycle", "backends"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string"},
            "policy": {"type": "string", "enum": Policy::NAMES},
            "lifecycle": lifecycle,
            "backends": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["ip", "port", "lifecycle"], "additionalProperties": false,
                "properties": {"ip": {"type": "string"}, "port": {"type": "integer"},
                               "lifecycle": lifecycle, "job": link}}},
            "job": link
        }
    });
    let set = json!({"$ref": "#/components/schemas/backend_set"});
    let query_refused = || err("A query parameter (this operation takes none).");
    openapi::add_operation(
        &mut doc,
        "/api/lb/backend-sets",
        "get",
        json!({"operationId": "backend_set_collection_get", "summary": "List backend sets.",
               "responses": {
                   "200": {"description": "The configuration.", "content": {"application/json": {"schema": {
                       "type": "object", "required": ["records", "num_records"], "additionalProperties": false,
                       "properties": {"records": {"type": "array", "items": set},
                                      "num_records": {"type": "integer", "minimum": 0}}}}}},
                   "400": query_refused()}}),
    );
    openapi::add_operation(
        &mut doc,
        "/api/lb/backend-sets/{name}",
        "get",
        json!({"operationId": "backend_set_get", "summary": "One backend set.", "parameters": [name],
               "responses": {"200": {"description": "The backend set.",
                                     "content": {"application/json": {"schema": set}}},
                             "400": err("A name that is not one, or a query parameter."),
                             "404": err("No such backend set, or one being deleted (the error names the deletion job, beside it as `job`).")}}),
    );
    openapi::add_operation(
        &mut doc,
        "/metrics",
        "get",
        json!({"operationId": "metrics_get", "summary": "Metrics in the Prometheus (OpenMetrics) text format.",
               "responses": {"200": {"description": "The metrics.",
                                     "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}},
                             "400": query_refused()}}),
    );
    let href = json!({"$ref": "#/components/schemas/href"});
    openapi::add_operation(
        &mut doc,
        "/",
        "get",
        json!({"operationId": "index_get", "summary": "Links to the collections, the document and the metrics.",
               "responses": {"200": {"description": "The links.", "content": {"application/json": {"schema": {
                   "type": "object", "required": ["_links"], "additionalProperties": false,
                   "properties": {"_links": {"type": "object", "additionalProperties": href}}}}}},
                             "400": query_refused()}}),
    );
    crate::oci::document(&mut doc);
    if auth {
        openapi::require_basic_auth(&mut doc);
    }
    doc
}
