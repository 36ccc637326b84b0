//! The appliance as one Oracle Cloud network load balancer: the NLB API's backend-set and
//! backend calls (version `20200501`), each answered `202` with `opc-work-request-id` — the
//! job, read as a work request under `/20200501/workRequests` ([`jobstate_std::http::oci`]).
//!
//! | route | SDK call | job |
//! | --- | --- | --- |
//! | `POST /20200501/networkLoadBalancers/{id}/backendSets` | `create_backend_set` | `CREATE_BACKENDSET` |
//! | `DELETE …/backendSets/{backendSetName}` | `delete_backend_set` | `DELETE_BACKENDSET` |
//! | `POST …/backendSets/{backendSetName}/backends` | `create_backend` | `CREATE_BACKEND` |
//! | `DELETE …/backendSets/{backendSetName}/backends/{backendName}` | `delete_backend` | `DELETE_BACKEND` |
//!
//! `{id}` is the appliance's own OCID ([`NLB_ID`]); any other is a 404. `opc-retry-token` is
//! the core's idempotency key (R-IDEMPOTENT), shared with ONTAP's `Idempotency-Key`: the same
//! token for the same change answers the same work request, another change with it is 409.
//! Signatures are not verified (the `Authorization` header of a signed request is ignored;
//! run the appliance without `--users` for OCI clients, or behind a proxy that checks them).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;

use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, post};
use axum::Router;
use jobstate_std::http::oci::{self, OciError, OpcRequestId, Operation, Resource};
use jobstate_std::http::{
    openapi, ApiError, ErrorCode, JsonBody, PathParams, QueryArgs, RetryToken,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use crate::model::{backend_address, Accepted, Op, Policy};
use crate::routes::{taken, App, Caller};

/// The appliance's OCID as a network load balancer.
pub const NLB_ID: &str = "ocid1.networkloadbalancer.oc1..appliance";
/// The compartment its work requests belong to.
pub const COMPARTMENT: &str = "ocid1.compartment.oc1..appliance";

const BASE: &str = "/20200501/networkLoadBalancers";

fn set_uri(set: &str) -> String {
    format!("{BASE}/{NLB_ID}/backendSets/{set}")
}

/// What a job is as a work request.
pub fn describe(op: &Op) -> Operation {
    let set = |name: &str, action| Resource {
        entity_type: "backendset".to_owned(),
        action_type: action,
        identifier: name.to_owned(),
        entity_uri: set_uri(name),
    };
    let backend = |s: &str, b: &str, action| Resource {
        entity_type: "backend".to_owned(),
        action_type: action,
        identifier: b.to_owned(),
        entity_uri: format!("{}/backends/{b}", set_uri(s)),
    };
    let (kind, resources) = match op {
        Op::CreateSet { name, .. } => ("CREATE_BACKENDSET", vec![set(name, "CREATED")]),
        Op::DeleteSet { name } => ("DELETE_BACKENDSET", vec![set(name, "DELETED")]),
        Op::AddBackend { set: s, addr } => (
            "CREATE_BACKEND",
            vec![backend(s, &addr.to_string(), "CREATED")],
        ),
        Op::RemoveBackend { set: s, backend: b } => {
            ("DELETE_BACKEND", vec![backend(s, b, "DELETED")])
        }
        Op::Barrier { set: s, .. } => ("UPDATE_BACKENDSET", vec![set(s, "UPDATED")]),
        Op::Hold => return Operation::default(),
    };
    Operation {
        operation_type: Cow::Borrowed(kind),
        resources,
    }
}

/// An optional field that, when present, must hold a value (`null` is not one: the API's
/// schemas type every field).
pub(crate) fn some<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `policy` of the NLB API.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(clippy::enum_variant_names)] // the API's names
enum NlbPolicy {
    TwoTuple,
    ThreeTuple,
    FiveTuple,
}

/// `healthChecker` (taken, checked for shape, not simulated beyond the appliance's own check).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct HealthChecker {
    protocol: HealthProtocol,
    #[serde(default, deserialize_with = "some")]
    port: Option<u16>,
    #[serde(default, deserialize_with = "some")]
    retries: Option<u32>,
    #[serde(default, deserialize_with = "some")]
    timeout_in_millis: Option<u32>,
    #[serde(default, deserialize_with = "some")]
    interval_in_millis: Option<u32>,
    #[serde(default, deserialize_with = "some")]
    url_path: Option<String>,
    #[serde(default, deserialize_with = "some")]
    response_body_regex: Option<String>,
    #[serde(default, deserialize_with = "some")]
    return_code: Option<u16>,
    #[serde(default, deserialize_with = "some")]
    request_data: Option<String>,
    #[serde(default, deserialize_with = "some")]
    response_data: Option<String>,
    #[serde(default, deserialize_with = "some")]
    dns: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum HealthProtocol {
    Http,
    Https,
    Tcp,
    Udp,
    Dns,
}

#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum IpVersion {
    Ipv4,
    Ipv6,
    Ipv4AndIpv6,
}

/// `CreateBackendSetDetails`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct CreateBackendSet {
    name: String,
    #[serde(default, deserialize_with = "some")]
    policy: Option<NlbPolicy>,
    health_checker: HealthChecker,
    #[serde(default, deserialize_with = "some")]
    is_preserve_source: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    is_fail_open: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    is_instant_failover_enabled: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    is_instant_failover_tcp_reset_enabled: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    are_operationally_active_backends_preferred: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    ip_version: Option<IpVersion>,
    #[serde(default, deserialize_with = "some")]
    backends: Option<Vec<Value>>,
}

/// `CreateBackendDetails`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct CreateBackend {
    #[serde(default, deserialize_with = "some")]
    name: Option<String>,
    #[serde(default, deserialize_with = "some")]
    ip_address: Option<IpAddr>,
    #[serde(default, deserialize_with = "some")]
    target_id: Option<String>,
    port: NonZeroU16,
    #[serde(default, deserialize_with = "some")]
    weight: Option<u16>,
    #[serde(default, deserialize_with = "some")]
    is_drain: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    is_backup: Option<bool>,
    #[serde(default, deserialize_with = "some")]
    is_offline: Option<bool>,
}

/// What of `CreateBackendDetails` the appliance does not do is refused, never ignored: a
/// backend is named `ip:port` (a `name` is taken only when it is that), every backend has
/// weight 1, and none is drained, a backup or offline.
fn supported(body: &CreateBackend, addr: SocketAddr) -> Result<(), ApiError> {
    if let Some(name) = &body.name {
        if *name != addr.to_string() {
            return Err(ApiError::invalid(
                "name",
                format!("a backend is named by its address: \"name\" can only be \"{addr}\"; got {name:?}"),
            ));
        }
    }
    if let Some(w) = body.weight.filter(|w| *w != 1) {
        return Err(ApiError::invalid(
            "weight",
            format!("every backend of this load balancer has weight 1; got {w}"),
        ));
    }
    for (field, set) in [
        ("isDrain", body.is_drain),
        ("isBackup", body.is_backup),
        ("isOffline", body.is_offline),
    ] {
        if set == Some(true) {
            return Err(ApiError::invalid(
                field,
                format!("\"{field}\": true is not supported by this load balancer (false only)"),
            ));
        }
    }
    Ok(())
}

/// The request headers of an NLB call: its `opc-retry-token` ([`RetryToken`]), and no
/// `if-match` — refused, since the appliance keeps no ETags and so cannot honour the condition.
struct Token(Option<Vec<u8>>);

impl<St: Send + Sync> FromRequestParts<St> for Token {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(axum::http::header::IF_MATCH) {
            return Err(ApiError::invalid(
                "if-match",
                "\"if-match\" is not supported: this load balancer has no ETags",
            ));
        }
        let RetryToken(key) = RetryToken::from_request_parts(parts, state).await?;
        Ok(Token(key))
    }
}

fn check_nlb(id: &str) -> Result<(), ApiError> {
    if id == NLB_ID {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no network load balancer {id}"),
        )
        .with_target("networkLoadBalancerId"))
    }
}

type Body<T> = Result<JsonBody<T>, ApiError>;

async fn create_set(
    State(app): State<App>,
    request: OpcRequestId,
    path: Result<PathParams<String>, ApiError>,
    query: QueryArgs,
    caller: Caller,
    token: Result<Token, ApiError>,
    body: Body<CreateBackendSet>,
) -> Result<Response, OciError> {
    let fail = |e: ApiError| OciError::from(e).with_request_id(&request);
    let PathParams(path) = path.map_err(fail)?;
    query.finish().map_err(fail)?;
    let nlb = path;
    check_nlb(&nlb).map_err(fail)?;
    let Token(key) = token.map_err(fail)?;
    let JsonBody(body) = body.map_err(fail)?;
    if body.backends.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(fail(ApiError::invalid(
            "backends",
            "add backends to a new backend set with CreateBackend once it is created",
        )));
    }
    let policy = match body.policy.unwrap_or(NlbPolicy::FiveTuple) {
        NlbPolicy::TwoTuple => Policy::TwoTuple,
        NlbPolicy::ThreeTuple => Policy::ThreeTuple,
        NlbPolicy::FiveTuple => Policy::FiveTuple,
    };
    let accepted = taken(
        &app,
        app.lb.create_set_keyed(
            &body.name,
            policy,
            app.key(&caller, key.as_deref()).as_ref().map(|k| &k[..]),
        ),
    )
    .await
    .map_err(fail)?;
    info!(set = %body.name, job = %app.api.uuid_of(accepted.job), "backend set creation accepted (OCI)");
    acknowledged(&app, accepted, &request).await
}

/// 202 with the work request id, once the job is on disk; a replayed `opc-retry-token`'s job
/// is answered the same but counted as a replay, not a submit.
async fn acknowledged(
    app: &App,
    accepted: Accepted,
    request: &OpcRequestId,
) -> Result<Response, OciError> {
    if accepted.replayed {
        oci::accepted_again(&app.api, accepted.job, request).await
    } else {
        oci::accepted(&app.api, accepted.job, request).await
    }
}

async fn delete_set(
    State(app): State<App>,
    request: OpcRequestId,
    path: Result<PathParams<(String, String)>, ApiError>,
    query: QueryArgs,
    caller: Caller,
    token: Result<Token, ApiError>,
) -> Result<Response, OciError> {
    let fail = |e: ApiError| OciError::from(e).with_request_id(&request);
    let PathParams(path) = path.map_err(fail)?;
    query.finish().map_err(fail)?;
    let (nlb, name) = path;
    check_nlb(&nlb).map_err(fail)?;
    let Token(key) = token.map_err(fail)?;
    let accepted = taken(
        &app,
        app.lb.delete_set_keyed(
            &name,
            app.key(&caller, key.as_deref()).as_ref().map(|k| &k[..]),
        ),
    )
    .await
    .map_err(fail)?;
    info!(set = %name, job = %app.api.uuid_of(accepted.job), "backend set deletion accepted (OCI)");
    acknowledged(&app, accepted, &request).await
}

async fn create_backend(
    State(app): State<App>,
    request: OpcRequestId,
    path: Result<PathParams<(String, String)>, ApiError>,
    query: QueryArgs,
    caller: Caller,
    token: Result<Token, ApiError>,
    body: Body<CreateBackend>,
) -> Result<Response, OciError> {
    let fail = |e: ApiError| OciError::from(e).with_request_id(&request);
    let PathParams(path) = path.map_err(fail)?;
    query.finish().map_err(fail)?;
    let (nlb, set) = path;
    check_nlb(&nlb).map_err(fail)?;
    let Token(key) = token.map_err(fail)?;
    let JsonBody(body) = body.map_err(fail)?;
    let Some(ip) = body.ip_address else {
        return Err(fail(ApiError::invalid(
            "ipAddress",
            "\"ipAddress\" is required (backends by targetId are not supported)",
        )));
    };
    if !backend_address(ip) {
        return Err(fail(ApiError::invalid(
            "ipAddress",
            format!("{ip} is not a backend address"),
        )));
    }
    let addr = SocketAddr::new(ip, body.port.get());
    supported(&body, addr).map_err(fail)?;
    let accepted = taken(
        &app,
        app.lb.add_backend_keyed(
            &set,
            addr,
            app.key(&caller, key.as_deref()).as_ref().map(|k| &k[..]),
        ),
    )
    .await
    .map_err(fail)?;
    info!(%set, backend = %addr, job = %app.api.uuid_of(accepted.job), "backend addition accepted (OCI)");
    acknowledged(&app, accepted, &request).await
}

async fn delete_backend(
    State(app): State<App>,
    request: OpcRequestId,
    path: Result<PathParams<(String, String, String)>, ApiError>,
    query: QueryArgs,
    caller: Caller,
    token: Result<Token, ApiError>,
) -> Result<Response, OciError> {
    let fail = |e: ApiError| OciError::from(e).with_request_id(&request);
    let PathParams(path) = path.map_err(fail)?;
    query.finish().map_err(fail)?;
    let (nlb, set, backend) = path;
    check_nlb(&nlb).map_err(fail)?;
    let Token(key) = token.map_err(fail)?;
    let accepted = taken(
        &app,
        app.lb.remove_backend_keyed(
            &set,
            &backend,
            app.key(&caller, key.as_deref()).as_ref().map(|k| &k[..]),
        ),
    )
    .await
    .map_err(fail)?;
    info!(%set, %backend, job = %app.api.uuid_of(accepted.job), "backend removal accepted (OCI)");
    acknowledged(&app, accepted, &request).await
}

/// The NLB routes (with the body limit on those that read one).
pub fn router(app: App, body_limit: usize) -> Router {
    let m = || oci::method_not_allowed;
    let limit = || axum::extract::DefaultBodyLimit::max(body_limit);
    Router::new()
        .route(
            "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets",
            post(create_set).layer(limit()).fallback(m()),
        )
        .route(
            "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}",
            delete(delete_set).fallback(m()),
        )
        .route(
            "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}/backends",
            post(create_backend).layer(limit()).fallback(m()),
        )
        .route(
            "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}/backends/{backendName}",
            delete(delete_backend).fallback(m()),
        )
        .with_state(app)
}

/// Add the NLB operations to the OpenAPI document.
pub fn document(doc: &mut Value) {
    let nlb = json!({"name": "networkLoadBalancerId", "in": "path", "required": true,
        "description": "The appliance's OCID; any other is a 404.",
        "schema": {"type": "string", "example": NLB_ID}, "example": NLB_ID});
    let set = json!({"name": "backendSetName", "in": "path", "required": true,
        "description": "The backend set's name.", "example": "web",
        "schema": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"}});
    let backend = json!({"name": "backendName", "in": "path", "required": true,
        "description": "The backend, `ip:port` (`[ipv6]:port`).", "example": "10.0.0.5:8080",
        "schema": {"type": "string"}});
    let token = json!({"name": "opc-retry-token", "in": "header", "required": false,
        "description": "Idempotency key (R-IDEMPOTENT): the same token for the same change answers the same work request; for another change it is a 409.",
        "schema": {"type": "string", "pattern": "^[!-~]{1,64}$"}});
    let health = json!({"type": "object", "required": ["protocol"], "additionalProperties": false,
        "properties": {
            "protocol": {"type": "string", "enum": ["HTTP", "HTTPS", "TCP", "UDP", "DNS"]},
            "port": {"type": "integer", "minimum": 0, "maximum": 65535},
            "retries": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295u64},
            "timeoutInMillis": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295u64},
            "intervalInMillis": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295u64},
            "urlPath": {"type": "string"},
            "responseBodyRegex": {"type": "string"},
            "returnCode": {"type": "integer", "minimum": 0, "maximum": 65535},
            "requestData": {"type": "string"},
            "responseData": {"type": "string"},
            "dns": {"type": "object"}}});
    let create_set_body = json!({"type": "object", "required": ["name", "healthChecker"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"},
            "policy": {"type": "string", "enum": ["TWO_TUPLE", "THREE_TUPLE", "FIVE_TUPLE"]},
            "healthChecker": health,
            "isPreserveSource": {"type": "boolean"},
            "isFailOpen": {"type": "boolean"},
            "isInstantFailoverEnabled": {"type": "boolean"},
            "isInstantFailoverTcpResetEnabled": {"type": "boolean"},
            "areOperationallyActiveBackendsPreferred": {"type": "boolean"},
            "ipVersion": {"type": "string", "enum": ["IPV4", "IPV6", "IPV4_AND_IPV6"]},
            "backends": {"type": "array", "maxItems": 0, "items": {"type": "object"}}}});
    let create_backend_body = json!({"type": "object", "required": ["ipAddress", "port"],
        "additionalProperties": false,
        "properties": {
            "ipAddress": {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}],
                          "not": {"enum": ["0.0.0.0"]}},
            "targetId": {"type": "string"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "weight": {"type": "integer", "minimum": 1, "maximum": 1,
                       "description": "Every backend has weight 1; another weight is a 400."},
            "isDrain": {"type": "boolean", "enum": [false], "description": "`true` is a 400."},
            "isBackup": {"type": "boolean", "enum": [false], "description": "`true` is a 400."},
            "isOffline": {"type": "boolean", "enum": [false], "description": "`true` is a 400."}}});
    let mut op = |path: &str,
                  method: &str,
                  id: &str,
                  summary: &str,
                  params: Vec<Value>,
                  body: Option<(Value, Value)>| {
        let mut parameters = params;
        parameters.push(token.clone());
        parameters.push(openapi::oci::request_id_param());
        let mut responses = openapi::oci::accepted_responses();
        responses["404"] =
            openapi::oci::error("No such network load balancer, backend set or backend.");
        responses["409"] = openapi::oci::error("It exists already, or is being created, changed or deleted (the message names the job); or the `opc-retry-token` names another change's work request.");
        let wr = "$response.header.opc-work-request-id";
        responses["202"]["links"]["ListWorkRequestLogs"] = json!({"operationId": "oci_list_work_request_logs",
            "parameters": {"workRequestId": wr, "compartmentId": COMPARTMENT}});
        responses["202"]["links"]["ListWorkRequestErrors"] = json!({"operationId": "oci_list_work_request_errors",
            "parameters": {"workRequestId": wr, "compartmentId": COMPARTMENT}});
        responses["202"]["links"]["CancelWorkRequest"] = json!({"operationId": "oci_cancel_work_request",
            "parameters": {"workRequestId": wr}});
        let mut o = json!({"operationId": id, "summary": summary, "tags": ["oci"],
                           "parameters": parameters, "responses": responses});
        if let Some((schema, example)) = body {
            o["requestBody"] = json!({"required": true, "content": {"application/json": {
                "schema": schema, "example": example}}});
            o["responses"]["413"] =
                openapi::oci::error("The body is larger than the service takes.");
            o["responses"]["415"] = openapi::oci::error("The body is not `application/json`.");
        }
        openapi::oci::add_operation(doc, path, method, o);
    };
    op(
        "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets",
        "post",
        "oci_create_backend_set",
        "CreateBackendSet: 202 with `opc-work-request-id`.",
        vec![nlb.clone()],
        Some((
            create_set_body,
            json!({"name": "web", "policy": "FIVE_TUPLE", "healthChecker": {"protocol": "TCP", "port": 80}}),
        )),
    );
    op(
        "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}",
        "delete",
        "oci_delete_backend_set",
        "DeleteBackendSet: 202 with `opc-work-request-id`; the job waits for the set's pending jobs.",
        vec![nlb.clone(), set.clone()],
        None,
    );
    op(
        "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}/backends",
        "post",
        "oci_create_backend",
        "CreateBackend: 202 with `opc-work-request-id`. A backend in 192.0.2.0/24 fails its health check. The subset this load balancer does: a backend is named `ipAddress:port` (a `name` is accepted only when it is that, so the schema leaves it out), `weight` 1, `isDrain`, `isBackup` and `isOffline` false; anything else is a 400 `InvalidParameter`, as is an `if-match` header on any NLB call (no ETags).",
        vec![nlb.clone(), set.clone()],
        Some((create_backend_body, json!({"ipAddress": "10.0.0.5", "port": 8080}))),
    );
    op(
        "/20200501/networkLoadBalancers/{networkLoadBalancerId}/backendSets/{backendSetName}/backends/{backendName}",
        "delete",
        "oci_delete_backend",
        "DeleteBackend: 202 with `opc-work-request-id`.",
        vec![nlb, set, backend],
        None,
    );
}
